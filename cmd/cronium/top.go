package main

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"os"
	"time"

	"github.com/spf13/cobra"

	cronium "github.com/cronium/executor"
	"github.com/cronium/executor/api"
)

// topLimit bounds the executions exec top shows (each costs a request a refresh).
const topLimit = 50

func newExecTopCmd(cl *apiClient) *cobra.Command {
	var once bool
	var interval time.Duration
	c := &cobra.Command{Use: "top", Short: "Show the running executions with their live usage, refreshed every second", Args: cobra.NoArgs,
		Long: "Show the running executions with their live usage (CPU, memory, processes, disk and network so far),\n" +
			"sampled about every second by the node that runs each. On a terminal the table is redrawn in place;\n" +
			"otherwise (or with --once) tables are printed one after another.",
		RunE: func(c *cobra.Command, _ []string) error {
			if interval < 100*time.Millisecond {
				return usage(cronium.Invalid("--interval", interval.String(), "is too short: want at least 100ms, like 1s"))
			}
			w := c.OutOrStdout()
			tty := false
			if f, ok := w.(*os.File); ok {
				if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
					tty = true
				}
			}
			for {
				rows, note, err := topRows(c.Context(), cl)
				if err != nil {
					return err
				}
				if cl.structured() {
					cl.printJSON(w, map[string]any{"items": rows})
				} else {
					if tty && !once {
						io.WriteString(w, "\x1b[H") // home: the new table over the old, no flicker
					}
					printTop(w, rows, note)
					if tty && !once {
						io.WriteString(w, "\x1b[J") // and what the old one had below it goes
					}
				}
				if once {
					return nil
				}
				select {
				case <-c.Context().Done():
					return nil
				case <-time.After(interval):
				}
				if !tty {
					fmt.Fprintln(w)
				}
			}
		}}
	c.Flags().BoolVar(&once, "once", false, "print the table once and exit")
	c.Flags().DurationVar(&interval, "interval", time.Second, "how often to refresh")
	return c
}

// topRow is one running execution and its latest usage sample.
type topRow struct {
	cronium.Execution
	Live *cronium.UsageSample `json:"live,omitempty"`
}

func topRows(ctx context.Context, cl *apiClient) ([]topRow, string, error) {
	var page struct {
		Items []cronium.Execution `json:"items"`
	}
	if err := cl.do(ctx, "GET", "/v1/executions?"+url.Values{"status": {"running"}, "limit": {fmt.Sprint(topLimit)}}.Encode(), nil, &page); err != nil {
		return nil, "", err
	}
	rows := make([]topRow, 0, len(page.Items))
	for _, x := range page.Items {
		var v api.ExecutionView
		if err := cl.do(ctx, "GET", "/v1/executions/"+url.PathEscape(x.ID), nil, &v); err != nil {
			continue // ended and pruned meanwhile, or the server went away: the next refresh says
		}
		if v.Status != cronium.StatusRunning {
			continue
		}
		rows = append(rows, topRow{Execution: v.Execution, Live: v.Live})
	}
	note := ""
	if len(page.Items) == topLimit {
		note = fmt.Sprintf("(the first %d running executions)", topLimit)
	}
	return rows, note, nil
}

func printTop(w io.Writer, rows []topRow, note string) {
	var table_ [][]string
	elsewhere := false
	for _, r := range rows {
		row := []string{r.ID, r.User, r.Event, r.Strategy, orDash(r.Node)}
		if u := r.Live; u != nil {
			net := "-"
			if n := u.Network; n != nil {
				net = human(n.BytesIn) + "/" + human(n.BytesOut)
			}
			row = append(row, time.Duration(u.Elapsed).Round(time.Second).String(), fmt.Sprintf("%.2f", u.CPUSeconds), human(u.MemoryBytes), human(u.PeakMemory),
				fmt.Sprint(u.Pids), human(u.IORead)+"/"+human(u.IOWrite), net)
		} else {
			elsewhere = true
			row = append(row, "-", "-", "-", "-", "-", "-", "-")
		}
		table_ = append(table_, row)
	}
	fmt.Fprintf(w, "running: %d, at %s %s\n", len(rows), time.Now().Format(time.TimeOnly), note)
	table(w, "ID\tUSER\tEVENT\tSTRATEGY\tNODE\tRAN\tCPU-S\tMEMORY\tPEAK\tPIDS\tDISK R/W\tNET IN/OUT", table_)
	if elsewhere {
		fmt.Fprintln(w, "- : no sample yet, or the execution runs on another node than the one answering (ask that node's server)")
	}
}
