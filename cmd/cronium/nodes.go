package main

import (
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/cronium/executor/store"
)

// nodesPage is GET /v1/nodes.
type nodesPage struct {
	Items []struct {
		store.Node
		Self         bool   `json:"self"`
		HeartbeatAge string `json:"heartbeat_age"`
	} `json:"items"`
	Self  string `json:"self"`
	Store struct {
		Reachable        bool       `json:"reachable"`
		UnreachableSince *time.Time `json:"unreachable_since,omitempty"`
		Error            string     `json:"error,omitempty"`
	} `json:"store"`
}

func newNodeCmd() *cobra.Command {
	c := &cobra.Command{Use: "node", Short: "Inspect the server nodes on the store"}
	cl := clientFlags(c)
	list := &cobra.Command{Use: "list", Short: "List nodes: state, lease, capacity, running executions, engine (admins)", Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			var page nodesPage
			if err := cl.do(c.Context(), "GET", "/v1/nodes", nil, &page); err != nil {
				return err
			}
			if cl.structured() {
				cl.printJSON(c.OutOrStdout(), page)
				return nil
			}
			printNodes(c.OutOrStdout(), page)
			return nil
		}}
	c.AddCommand(list)
	return c
}

func printNodes(w io.Writer, page nodesPage) {
	var rows [][]string
	for _, n := range page.Items {
		name := n.Name
		if n.Self {
			name += " (this)"
		}
		state := n.State
		if n.DownReason != "" {
			state += ": " + n.DownReason
		}
		lease := "-"
		if !n.LeaseUntil.IsZero() {
			lease = n.LeaseUntil.Local().Format(time.TimeOnly)
		}
		rows = append(rows, []string{name, state, n.HeartbeatAge, lease, fmt.Sprintf("%d/%d", n.Running, n.Capacity), n.Engine, n.Host})
	}
	table(w, "NODE\tSTATE\tHEARTBEAT\tLEASE UNTIL\tRUNNING\tENGINE\tHOST", rows)
	if !page.Store.Reachable {
		since := ""
		if page.Store.UnreachableSince != nil {
			since = " since " + page.Store.UnreachableSince.Local().Format(time.TimeOnly)
		}
		fmt.Fprintf(w, "the store is unreachable from %s%s: it shows itself alone %s\n", page.Self, since, page.Store.Error)
	}
}
