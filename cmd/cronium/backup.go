package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/cronium/executor/store"
)

// newBackupCmd copies what a server cannot be rebuilt without: the store
// and the secrets' master keys (and the node identity), into a new
// directory, while the server runs.
func newBackupCmd() *cobra.Command {
	f := &serveFlags{}
	c := &cobra.Command{
		Use:   "backup DIR",
		Short: "Back up the store, the master keys and the node identity into a new directory, while the server runs",
		Long: `Back up a server's data directory into DIR (created, mode 0700; it must
not exist). The store is copied consistently while the server runs
(SQLite's VACUUM INTO; a PostgreSQL store is backed up with pg_dump
instead); the secrets' master keys and the node identity are
copied as they are. Keep DIR as safe as the keys: with them, the store's
secrets can be read.

To restore: stop the server, copy the files of DIR into the data directory
(cronium.db, master.keys, node-id), and start it.`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			cfg, err := f.load(c)
			if err != nil {
				return usage(err)
			}
			dir := args[0]
			st := cfg.storeTarget()
			if _, err := os.Stat(st.target); st.kind == "sqlite" && err != nil {
				return usage(fmt.Errorf("there is no store to back up at %s (%v): give the server's data directory with --data-dir or CRONIUM_DATA_DIR", st.target, err))
			}
			if err := os.Mkdir(dir, 0o700); err != nil {
				return usage(fmt.Errorf("backup directory %s: %w (give a new directory)", dir, err))
			}
			var copied []string
			if st.kind == "sqlite" {
				if err := withStore(c.Context(), cfg, func(st store.Store) error {
					return st.Backup(c.Context(), filepath.Join(dir, "cronium.db"))
				}); err != nil {
					return err
				}
				copied = append(copied, "cronium.db")
			} else {
				fmt.Fprintf(c.ErrOrStderr(), "note: the store is PostgreSQL (%s): back it up with pg_dump; this copies the master keys and the node identity\n", st)
			}
			keys := filepath.Join(cfg.DataDir, "master.keys")
			if cfg.MasterKeyFile != "" {
				keys = cfg.MasterKeyFile
			}
			for _, src := range []string{keys, filepath.Join(cfg.DataDir, "node-id")} {
				switch err := copyPrivate(src, filepath.Join(dir, filepath.Base(src))); {
				case errors.Is(err, os.ErrNotExist):
				case err != nil:
					return err
				default:
					copied = append(copied, filepath.Base(src))
				}
			}
			if os.Getenv("CRONIUM_MASTER_KEYS") != "" && cfg.MasterKeyFile == "" {
				fmt.Fprintln(c.ErrOrStderr(), "note: the master keys come from CRONIUM_MASTER_KEYS: keep a copy of that value with the backup")
			}
			fmt.Fprintf(c.OutOrStdout(), "backed up %s into %s: %v\n", cfg.DataDir, dir, copied)
			return nil
		},
	}
	f.register(c)
	return c
}

// copyPrivate copies a regular file (never through a symlink) to a new
// file of mode 0600.
func copyPrivate(src, dst string) error {
	in, err := os.OpenFile(src, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copy %s: %w", src, err)
	}
	return out.Close()
}
