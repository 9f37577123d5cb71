package main

import (
	"bufio"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	cronium "github.com/cronium/executor"
	"github.com/cronium/executor/api"
)

func newChannelCmd() *cobra.Command {
	c := &cobra.Command{Use: "channel", Short: "Manage your notification channels (webhook, slack) that events' on: actions notify"}
	var typ, u string
	set := apiCmd("set NAME", "Create or replace a channel; a webhook's signing secret is read from standard input", cobra.ExactArgs(1),
		func(c *cobra.Command, cl *apiClient, args []string) error {
			body := map[string]string{"type": typ, "url": u}
			in := bufio.NewReader(os.Stdin)
			if u == "-" { // a Slack URL is a secret: not in argv and shell history
				line, _ := in.ReadString('\n')
				if body["url"] = strings.TrimSpace(line); body["url"] == "" {
					return usage(cronium.Invalid("--url", "-", "reads the URL from standard input, which held none"))
				}
			}
			if typ == "webhook" {
				line, err := in.ReadString('\n')
				if strings.TrimSpace(line) == "" {
					return usage(cronium.Invalid("stdin", "", fmt.Sprintf("must hold the webhook's signing secret, 16 characters or more (%v)", err)))
				}
				body["secret"] = strings.TrimSpace(line)
			}
			var info api.ChannelInfo
			if err := cl.do(c.Context(), "PUT", "/v1/channels/"+url.PathEscape(args[0]), body, &info); err != nil {
				return err
			}
			if cl.structured() {
				cl.printJSON(c.OutOrStdout(), info)
				return nil
			}
			fmt.Fprintf(c.OutOrStdout(), "channel %s set (%s to %s)\n", info.Name, info.Type, info.URL)
			return nil
		})
	set.Example = `  printf '%s\n' "$HOOK_SECRET" | cronium channel set ops --type webhook --url https://hooks.example.com/cronium
  printf '%s\n' "$SLACK_URL" | cronium channel set team --type slack --url -      # the URL is the secret: stdin`
	set.Flags().StringVar(&typ, "type", "", "webhook or slack")
	set.Flags().StringVar(&u, "url", "", "where it posts: https, a public address; - reads it from standard input (first line)")
	list := apiCmd("list", "List your channels (secrets are never shown)", cobra.NoArgs, func(c *cobra.Command, cl *apiClient, _ []string) error {
		return printList(c, cl, "/v1/channels", "NAME\tTYPE\tURL\tUPDATED", func(ch api.ChannelInfo) []string {
			return []string{ch.Name, ch.Type, ch.URL, ch.UpdatedAt.Local().Format(time.DateTime)}
		})
	})
	del := apiCmd("delete NAME", "Delete a channel (refused while an event notifies it)", cobra.ExactArgs(1), func(c *cobra.Command, cl *apiClient, args []string) error {
		if err := cl.do(c.Context(), "DELETE", "/v1/channels/"+url.PathEscape(args[0]), nil, nil); err != nil {
			return err
		}
		fmt.Fprintf(c.OutOrStdout(), "channel %s deleted\n", args[0])
		return nil
	})
	c.AddCommand(set, list, del)
	return c
}
