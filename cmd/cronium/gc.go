package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	cronium "github.com/cronium/executor"
)

func newGCCmd(g *globals) *cobra.Command {
	var grace string
	c := &cobra.Command{
		Use:   "gc",
		Short: "Remove sandboxes left behind by crashed runs",
		Long: `Remove this node's cronium containers that stopped more than --grace ago or
whose deadline (timeout + grace + backstop) passed more than --grace ago,
and their socket directories. Running executions within their deadline are
never touched. Every run path does this at its start too.`,
		RunE: func(c *cobra.Command, _ []string) error {
			d, err := cronium.ParseDuration("--grace", grace)
			if err != nil {
				return usage(err)
			}
			ctx := context.Background()
			eng, err := g.engine(ctx)
			if err != nil {
				return &exitError{code: 125, err: err}
			}
			defer eng.Close()
			n, err := eng.GC(ctx, d)
			if err != nil {
				return err
			}
			fmt.Fprintf(c.OutOrStdout(), "removed %d orphan container(s)\n", n)
			return nil
		},
	}
	c.Flags().StringVar(&grace, "grace", "1m", "how old an orphan must be before it is removed")
	return c
}
