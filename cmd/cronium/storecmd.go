package main

import (
	"fmt"
	"path/filepath"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/cronium/executor/postgres"
	"github.com/cronium/executor/sqlite"
)

func newStoreCmd() *cobra.Command {
	c := &cobra.Command{Use: "store", Short: "Move a server's store between databases"}
	var from, to string
	cp := &cobra.Command{
		Use:   "copy --from sqlite:PATH --to postgres://...",
		Short: "Copy an SQLite store into an empty PostgreSQL database",
		Long: `Copy everything an SQLite store holds into an empty PostgreSQL database, in
one transaction: users (with their IDs), API keys, events, executions and
their logs, variables, secrets and channels (still sealed: give the servers
on PostgreSQL the same master keys), notifications and the audit log.

Stop the server that uses the SQLite store first (its data directory is
locked while it runs). Then start the servers with --store postgres://...`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			src, err := parseStore("--from", from, "")
			if err != nil || src.kind != "sqlite" || from == "" {
				return usage(fmt.Errorf("--from %q: give the SQLite store to copy, like --from sqlite:/var/lib/cronium/cronium.db", from))
			}
			dst, err := parseStore("--to", to, "")
			if err != nil || dst.kind != "postgres" {
				return usage(fmt.Errorf("--to %q: give the PostgreSQL database to copy into, like --to postgres://user:password@host:5432/cronium", postgres.MaskURL(to)))
			}
			lock, err := lockDataDir(filepath.Dir(src.target))
			if err != nil {
				return fmt.Errorf("%s is in use (%v): stop the server that uses it first", src.target, err)
			}
			defer lock.Close()
			db, err := sqlite.OpenReadOnly(c.Context(), src.target)
			if err != nil {
				return err
			}
			defer db.Close()
			st, err := postgres.Open(c.Context(), dst.target)
			if err != nil {
				return err
			}
			defer st.Close()
			counts, err := st.CopyFrom(c.Context(), db)
			if err != nil {
				return err
			}
			var parts []string
			for t, n := range counts {
				parts = append(parts, fmt.Sprintf("%s %d", t, n))
			}
			sort.Strings(parts)
			fmt.Fprintf(c.OutOrStdout(), "copied %s into %s: %s\n", src, dst, strings.Join(parts, ", "))
			return nil
		},
	}
	cp.Flags().StringVar(&from, "from", "", "the SQLite store: sqlite:PATH")
	cp.Flags().StringVar(&to, "to", "", "the PostgreSQL database: postgres://user:password@host:5432/database")
	c.AddCommand(cp)
	return c
}
