package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/cronium/executor/pool"
)

func newPoolCmd() *cobra.Command {
	c := &cobra.Command{Use: "pool", Short: "Inspect the warm sandbox pools"}
	cl := clientFlags(c)
	list := &cobra.Command{Use: "list", Short: "List pools: size, idle, in use, hits, misses", Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			var page struct {
				Items []pool.Stats `json:"items"`
			}
			if err := cl.do(c.Context(), "GET", "/v1/pools", nil, &page); err != nil {
				return err
			}
			if cl.structured() {
				cl.printJSON(c.OutOrStdout(), page)
				return nil
			}
			var rows [][]string
			for _, p := range page.Items {
				rows = append(rows, []string{p.Name, string(p.Mode), fmt.Sprint(p.Size), fmt.Sprint(p.Idle), fmt.Sprint(p.InUse),
					fmt.Sprintf("%d-%d", p.Min, p.Max), fmt.Sprint(p.Hits), fmt.Sprint(p.Misses), fmt.Sprint(p.Runs), fmt.Sprint(p.Recycled)})
			}
			table(c.OutOrStdout(), "POOL\tMODE\tSIZE\tIDLE\tIN USE\tMIN-MAX\tHITS\tMISSES\tRUNS\tRECYCLED", rows)
			return nil
		}}
	c.AddCommand(list)
	return c
}
