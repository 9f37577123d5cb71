package main

import (
	"fmt"
	"io"
	"net/url"

	"github.com/spf13/cobra"

	"github.com/cronium/executor/api"
	"github.com/cronium/executor/store"
)

func newUsageCmd() *cobra.Command {
	var by, since, until string
	c := &cobra.Command{Use: "usage", Short: "Usage and cost of executions, by day, event or user (this month unless --since)", Args: cobra.NoArgs,
		Long: "Usage and cost of the executions that ended, summed by UTC day, event or user: executions, CPU-seconds,\n" +
			"reserved memory in GiB-seconds, peak memory, disk and network bytes, and the cost by the server's price table.\n" +
			"A user sees their own; admins see everyone's, or one user's with --user."}
	cl := clientFlags(c)
	c.RunE = func(c *cobra.Command, _ []string) error {
		switch by {
		case store.ByDay, store.ByEvent, store.ByUser:
		default:
			return fmt.Errorf("--by %q: want day, event or user", by)
		}
		q := url.Values{"by": {by}}
		if since != "" {
			q.Set("since", since)
		}
		if until != "" {
			q.Set("until", until)
		}
		var rep api.UsageReport
		if err := cl.do(c.Context(), "GET", "/v1/usage?"+q.Encode(), nil, &rep); err != nil {
			return err
		}
		if cl.structured() {
			cl.printJSON(c.OutOrStdout(), rep)
			return nil
		}
		printUsage(c.OutOrStdout(), rep)
		return nil
	}
	c.Flags().StringVar(&by, "by", "day", "group by day, event or user")
	c.Flags().StringVar(&since, "since", "", "first day: 2026-12-01, or an age like 30d (default: the first of this month)")
	c.Flags().StringVar(&until, "until", "", "the day after the last (default: up to now)")
	return c
}

func printUsage(w io.Writer, rep api.UsageReport) {
	head := map[string]string{store.ByDay: "DAY", store.ByEvent: "EVENT", store.ByUser: "USER"}[rep.By]
	row := func(key string, it api.UsageItem) []string {
		return []string{key, fmt.Sprint(it.Executions), fmt.Sprintf("%.3f", it.CPUSeconds), fmt.Sprintf("%.1f", it.MemoryGiBSeconds),
			human(it.PeakMemory), human(it.IORead + it.IOWrite), human(it.NetworkBytes), it.Cost}
	}
	var rows [][]string
	for _, it := range rep.Items {
		key := it.Day
		switch rep.By {
		case store.ByEvent:
			key = it.User + "/" + it.Event
		case store.ByUser:
			key = it.User
		}
		rows = append(rows, row(key, it))
	}
	rows = append(rows, row("TOTAL", rep.Total))
	table(w, head+"\tEXECUTIONS\tCPU-S\tMEM GIB-S\tPEAK MEM\tDISK I/O\tNETWORK\tCOST ("+rep.Currency+")", rows)
	until := "now"
	if rep.Until != "" {
		until = rep.Until + " (not included)"
	}
	fmt.Fprintf(w, "from %s to %s, UTC days\n", rep.Since, until)
}
