package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	cronium "github.com/cronium/executor"
	"github.com/cronium/executor/api"
	"github.com/cronium/executor/dispatch"
	"github.com/cronium/executor/secrets"
	"github.com/cronium/executor/store"
)

func newVarCmd() *cobra.Command {
	c := &cobra.Command{Use: "var", Short: "Manage your variables (shared by your events, read and written by scripts)"}
	cl := clientFlags(c)
	list := &cobra.Command{Use: "list", Short: "List variables", Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			var page struct {
				Items map[string]json.RawMessage `json:"items"`
			}
			if err := cl.do(c.Context(), "GET", "/v1/variables", nil, &page); err != nil {
				return err
			}
			keys := make([]string, 0, len(page.Items))
			for k := range page.Items {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			if cl.structured() {
				// A list, as every list prints: {"items": [{"key", "value"}]}.
				type item struct {
					Key   string          `json:"key"`
					Value json.RawMessage `json:"value"`
				}
				out := struct {
					Items []item `json:"items"`
				}{Items: []item{}}
				for _, k := range keys {
					out.Items = append(out.Items, item{k, page.Items[k]})
				}
				cl.printJSON(c.OutOrStdout(), out)
				return nil
			}
			var rows [][]string
			for _, k := range keys {
				rows = append(rows, []string{k, string(page.Items[k])})
			}
			table(c.OutOrStdout(), "KEY\tVALUE", rows)
			return nil
		}}
	get := &cobra.Command{Use: "get KEY", Short: "Print a variable's JSON value", Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			var v struct {
				Value json.RawMessage `json:"value"`
			}
			if err := cl.do(c.Context(), "GET", "/v1/variables/"+url.PathEscape(args[0]), nil, &v); err != nil {
				return err
			}
			fmt.Fprintln(c.OutOrStdout(), string(v.Value))
			return nil
		}}
	var asJSON, asString bool
	set := &cobra.Command{Use: "set KEY VALUE", Short: "Set a variable: VALUE is read as JSON (100, true, [1,2], {\"a\": 1}) when it is JSON, else as a string; --string forces a string",
		Args: cobra.ExactArgs(2),
		RunE: func(c *cobra.Command, args []string) error {
			if asJSON && asString {
				return usage(cronium.Invalid("--string", "", "and --json contradict each other: give one"))
			}
			v := json.RawMessage(args[1])
			switch {
			case asJSON && !json.Valid(v):
				return usage(cronium.Invalid("VALUE", abbreviate(args[1]), "is not JSON (drop --json to store it as a string)"))
			case asString || !json.Valid(v):
				v, _ = json.Marshal(args[1])
			}
			if err := cl.do(c.Context(), "PUT", "/v1/variables/"+url.PathEscape(args[0]), map[string]any{"value": v}, nil); err != nil {
				return err
			}
			fmt.Fprintf(c.OutOrStdout(), "variable %s set to %s (%s)\n", args[0], abbreviate(string(v)), jsonKind(v))
			return nil
		}}
	set.Flags().BoolVar(&asString, "string", false, "store VALUE as a string even when it is JSON (\"100\", not 100)")
	set.Flags().BoolVar(&asJSON, "json", false, "VALUE must be JSON (refused otherwise)")
	del := &cobra.Command{Use: "delete KEY", Short: "Delete a variable", Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if err := cl.do(c.Context(), "DELETE", "/v1/variables/"+url.PathEscape(args[0]), nil, nil); err != nil {
				return err
			}
			fmt.Fprintf(c.OutOrStdout(), "variable %s deleted\n", args[0])
			return nil
		}}
	c.AddCommand(list, get, set, del)
	return c
}

// jsonKind names the kind of a JSON value: "a number", "a string", ...
func jsonKind(v json.RawMessage) string {
	switch t := strings.TrimSpace(string(v)); {
	case t == "null":
		return "null"
	case t == "true" || t == "false":
		return "a boolean"
	case strings.HasPrefix(t, `"`):
		return "a string"
	case strings.HasPrefix(t, "{"):
		return "an object"
	case strings.HasPrefix(t, "["):
		return "a list"
	}
	return "a number"
}

func newSecretCmd() *cobra.Command {
	c := &cobra.Command{Use: "secret", Short: "Manage secrets: encrypted at rest, delivered to scripts as files under /run/secrets"}
	cl := clientFlags(c)
	set := &cobra.Command{Use: "set NAME", Short: "Set a secret from standard input (never from a flag: flags land in shell history)", Args: cobra.ExactArgs(1),
		Example: "  printf %s \"$DB_PASSWORD\" | cronium secret set db_password",
		RunE: func(c *cobra.Command, args []string) error {
			b, err := io.ReadAll(io.LimitReader(os.Stdin, 64<<10+1))
			if err != nil {
				return err
			}
			v := strings.TrimSuffix(string(b), "\n")
			if v == "" || len(v) > 64<<10 {
				return usage(cronium.Invalid("stdin", "", "must hold the secret value: 1 byte to 64 KiB"))
			}
			if err := cl.do(c.Context(), "PUT", "/v1/secrets/"+url.PathEscape(args[0]), map[string]string{"value": v}, nil); err != nil {
				return err
			}
			fmt.Fprintf(c.OutOrStdout(), "secret %s set\n", args[0])
			return nil
		}}
	list := &cobra.Command{Use: "list", Short: "List secret names (values are never shown)", Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			var page struct {
				Items []struct {
					Name      string `json:"name"`
					UpdatedAt string `json:"updated_at"`
				} `json:"items"`
			}
			if err := cl.do(c.Context(), "GET", "/v1/secrets", nil, &page); err != nil {
				return err
			}
			if cl.structured() {
				cl.printJSON(c.OutOrStdout(), page)
				return nil
			}
			var rows [][]string
			for _, s := range page.Items {
				rows = append(rows, []string{s.Name, s.UpdatedAt})
			}
			table(c.OutOrStdout(), "NAME\tUPDATED", rows)
			return nil
		}}
	del := &cobra.Command{Use: "delete NAME", Short: "Delete a secret", Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if err := cl.do(c.Context(), "DELETE", "/v1/secrets/"+url.PathEscape(args[0]), nil, nil); err != nil {
				return err
			}
			fmt.Fprintf(c.OutOrStdout(), "secret %s deleted\n", args[0])
			return nil
		}}
	keygen := &cobra.Command{Use: "keygen ID", Short: "Print a new master key line (ID:BASE64) for the key file", Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			line, err := secrets.GenerateKey(args[0])
			if err != nil {
				return usage(err)
			}
			fmt.Fprintln(c.OutOrStdout(), line)
			return nil
		}}
	f := &serveFlags{}
	rotate := &cobra.Command{Use: "rotate", Short: "Re-encrypt every stored secret under the primary (first) master key", Args: cobra.NoArgs,
		Long: `Key rotation: add a new key (cronium secret keygen) as the FIRST line of the
key file, keeping the old one below it; run cronium secret rotate; then remove
the old key. Works on the server's data directory directly.`,
		RunE: func(c *cobra.Command, _ []string) error {
			cfg, err := f.load(c)
			if err != nil {
				return usage(err)
			}
			kr, err := cfg.keyring(nil)
			if err != nil {
				return err
			}
			return withStore(c.Context(), cfg, func(st store.Store) error {
				n, m, err := rotateSecrets(c, st, kr)
				if err != nil {
					return err
				}
				fmt.Fprintf(c.OutOrStdout(), "re-encrypted %d secret(s) under key %s", n, kr.Primary())
				if m > 0 {
					fmt.Fprintf(c.OutOrStdout(), ", and %d notification channel(s)", m)
				}
				fmt.Fprintln(c.OutOrStdout())
				return nil
			})
		}}
	f.register(rotate)
	c.AddCommand(set, list, del, keygen, rotate)
	return c
}

func rotateSecrets(c *cobra.Command, st store.Store, kr *secrets.Keyring) (n, m int, err error) {
	all, err := st.Secrets(c.Context(), 0)
	if err != nil {
		return 0, 0, err
	}
	for _, sec := range all {
		id, blob, changed, err := kr.Rotate(sec.KeyID, sec.Blob, dispatch.SecretAAD(sec.UserID, sec.Name))
		if err != nil {
			return n, m, fmt.Errorf("secret %s of user %d: %w", sec.Name, sec.UserID, err)
		}
		if !changed {
			continue
		}
		sec.KeyID, sec.Blob = id, blob
		if err := st.PutSecret(c.Context(), sec); err != nil {
			return n, m, err
		}
		n++
	}
	// Users' notification channels are sealed with the same keys.
	chs, err := st.AllChannels(c.Context())
	if err != nil {
		return n, m, err
	}
	for _, ch := range chs {
		id, blob, changed, err := kr.Rotate(ch.KeyID, ch.Blob, api.ChannelAAD(ch.UserID, ch.Name))
		if err != nil {
			return n, m, fmt.Errorf("channel %s of user %d: %w", ch.Name, ch.UserID, err)
		}
		if !changed {
			continue
		}
		ch.KeyID, ch.Blob = id, blob
		if err := st.PutChannel(c.Context(), ch); err != nil {
			return n, m, err
		}
		m++
	}
	return n, m, nil
}
