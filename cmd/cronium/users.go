package main

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	cronium "github.com/cronium/executor"
	"github.com/cronium/executor/api"
	"github.com/cronium/executor/store"
)

// localAudit records a change made on the data directory directly (user
// and key bootstrap); the actor is "local".
func localAudit(ctx context.Context, st store.Store, action, target, detail string) {
	st.Audit(ctx, store.AuditEntry{Actor: "local", Action: action, Target: target, Detail: detail, Source: "cronium on the data directory"})
}

// printList gets a list from the API ({"items": [...]}) and prints it: as
// that same JSON with -o json, else as a table of one row per item.
func printList[T any](c *cobra.Command, cl *apiClient, path, header string, row func(T) []string) error {
	var page struct {
		Items []T `json:"items"`
	}
	if err := cl.do(c.Context(), "GET", path, nil, &page); err != nil {
		return err
	}
	if page.Items == nil {
		page.Items = []T{}
	}
	if cl.structured() {
		cl.printJSON(c.OutOrStdout(), page)
		return nil
	}
	var rows [][]string
	for _, it := range page.Items {
		rows = append(rows, row(it))
	}
	table(c.OutOrStdout(), header, rows)
	return nil
}

// apiCmd is a client command with the API flags of its own.
func apiCmd(use, short string, args cobra.PositionalArgs, run func(c *cobra.Command, cl *apiClient, args []string) error) *cobra.Command {
	c := &cobra.Command{Use: use, Short: short, Args: args}
	cl := clientFlags(c)
	c.RunE = func(c *cobra.Command, a []string) error { return run(c, cl, a) }
	return c
}

func userListCmd() *cobra.Command {
	return apiCmd("list", "List users (admins)", cobra.NoArgs, func(c *cobra.Command, cl *apiClient, _ []string) error {
		return printList(c, cl, "/v1/users", "NAME\tTIER\tADMIN\tCREATED", func(u cronium.User) []string {
			return []string{u.Name, u.Tier, strconv.FormatBool(u.Admin), u.CreatedAt.Local().Format(time.DateTime)}
		})
	})
}

func userGetCmd() *cobra.Command {
	return apiCmd("get NAME", "Show a user (admins, or yourself)", cobra.ExactArgs(1), func(c *cobra.Command, cl *apiClient, args []string) error {
		var u cronium.User
		if err := cl.do(c.Context(), "GET", "/v1/users/"+url.PathEscape(args[0]), nil, &u); err != nil {
			return err
		}
		cl.printJSON(c.OutOrStdout(), u)
		return nil
	})
}

func userDeleteCmd() *cobra.Command {
	return apiCmd("delete NAME", "Delete a user: their keys stop working at once, their events are deleted, queued runs cancelled (admins)", cobra.ExactArgs(1),
		func(c *cobra.Command, cl *apiClient, args []string) error {
			if err := cl.do(c.Context(), "DELETE", "/v1/users/"+url.PathEscape(args[0]), nil, nil); err != nil {
				return err
			}
			fmt.Fprintf(c.OutOrStdout(), "user %s deleted: their keys no longer work, their events are gone and their queued executions cancelled\n", args[0])
			return nil
		})
}

func userSetTierCmd() *cobra.Command {
	return apiCmd("set-tier NAME TIER", "Change a user's tier (admins)", cobra.ExactArgs(2), func(c *cobra.Command, cl *apiClient, args []string) error {
		var u api.TierChange
		if err := cl.do(c.Context(), "PUT", "/v1/users/"+url.PathEscape(args[0])+"/tier", map[string]string{"tier": args[1]}, &u); err != nil {
			return err
		}
		if cl.structured() {
			cl.printJSON(c.OutOrStdout(), u)
			return nil
		}
		fmt.Fprintf(c.OutOrStdout(), "user %s is now in tier %s\n", u.Name, u.Tier)
		for _, e := range u.EventsOverTier {
			fmt.Fprintf(c.ErrOrStderr(), "warning: event %s (change it, or its runs fail)\n", e)
		}
		return nil
	})
}

// keyUser is whose keys a key command acts on: --user, else the caller.
func keyUser(c *cobra.Command, cl *apiClient) (string, error) {
	if cl.user != "" {
		return cl.user, nil
	}
	var me cronium.User
	if err := cl.do(c.Context(), "GET", "/v1/me", nil, &me); err != nil {
		return "", err
	}
	return me.Name, nil
}

func keyListCmd() *cobra.Command {
	return apiCmd("list [USER]", "List your API keys (admins: another user's, as USER or --user NAME)", cobra.MaximumNArgs(1), func(c *cobra.Command, cl *apiClient, args []string) error {
		if len(args) == 1 {
			cl.user = args[0]
		}
		name, err := keyUser(c, cl)
		if err != nil {
			return err
		}
		when := func(t *time.Time, none string) string {
			if t == nil {
				return none
			}
			return t.Local().Format(time.DateTime)
		}
		return printList(c, cl, "/v1/users/"+url.PathEscape(name)+"/keys", "ID\tNAME\tKEY\tSTATE\tCREATED\tEXPIRES\tLAST USED", func(k store.KeyInfo) []string {
			state := "active"
			switch {
			case k.RevokedAt != nil:
				state = "revoked"
			case k.ExpiresAt != nil && k.ExpiresAt.Before(time.Now()):
				state = "expired"
			}
			return []string{strconv.FormatInt(k.ID, 10), k.Name, k.Prefix + "...", state, when(&k.CreatedAt, ""), when(k.ExpiresAt, "never"), when(k.LastUsedAt, "never")}
		})
	})
}

func keyRevokeCmd() *cobra.Command {
	return apiCmd("revoke ID", "Revoke one of your API keys at once (admins: --user NAME)", cobra.ExactArgs(1), func(c *cobra.Command, cl *apiClient, args []string) error {
		name, err := keyUser(c, cl)
		if err != nil {
			return err
		}
		var k store.KeyInfo
		if err := cl.do(c.Context(), "DELETE", "/v1/users/"+url.PathEscape(name)+"/keys/"+url.PathEscape(args[0]), nil, &k); err != nil {
			return err
		}
		fmt.Fprintf(c.OutOrStdout(), "key %d of %s (%s...) revoked: it no longer works\n", k.ID, k.User, k.Prefix)
		return nil
	})
}

func newAuditCmd() *cobra.Command {
	var actor, action, since string
	var limit int
	c := apiCmd("audit", "Show the audit log: who changed or triggered what, when, with which key (admins)", cobra.NoArgs, func(c *cobra.Command, cl *apiClient, _ []string) error {
		q := url.Values{}
		for k, v := range map[string]string{"actor": actor, "action": action, "since": since} {
			if v != "" {
				q.Set(k, v)
			}
		}
		q.Set("limit", strconv.Itoa(limit))
		return printList(c, cl, "/v1/audit?"+q.Encode(), "AT\tWHO\tKEY\tACTION\tTARGET\tDETAIL\tFROM", func(e store.AuditEntry) []string {
			key := "-"
			if e.KeyID > 0 {
				key = strconv.FormatInt(e.KeyID, 10)
			}
			return []string{e.At.Local().Format(time.DateTime), e.Actor, key, e.Action, e.Target, e.Detail, e.Source}
		})
	})
	c.Flags().StringVar(&actor, "actor", "", "only this user's actions")
	c.Flags().StringVar(&action, "action", "", "only this action (event.trigger), or a kind (event.)")
	c.Flags().StringVar(&since, "since", "", "only the last DURATION, like 24h")
	c.Flags().IntVar(&limit, "limit", 100, "at most this many entries (1-1000)")
	return c
}
