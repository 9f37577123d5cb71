package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	cronium "github.com/cronium/executor"
	"github.com/cronium/executor/api"
)

// serverFields are what the server sets on an event: `event get -o yaml`
// shows them, and apply leaves them out, so that its output re-applies.
var serverFields = []string{"id", "user", "created_at", "updated_at", "package_lock", "image_pinned", "status"}

func stripServerFields(ev map[string]any) {
	for _, k := range serverFields {
		delete(ev, k)
	}
}

// printEvent shows an event for people: what it runs, when, and how it went.
func printEvent(w io.Writer, v api.EventView) {
	st := v.Status
	fmt.Fprintf(w, "event %s (user %s, %s)\n", v.Name, v.User, v.Language)
	sched := v.Schedule
	if sched == "" {
		sched = "(on demand)"
	}
	fmt.Fprintf(w, "  schedule:  %s in %s: %s\n", sched, zoneOr(v.Timezone), st.State)
	if st.Problem != "" {
		fmt.Fprintf(w, "  problem:   %s\n", st.Problem)
	}
	if st.NextRun != nil {
		fmt.Fprintf(w, "  next run:  %s (%s)\n", inZone(*st.NextRun, v.Timezone).Format("2006-01-02 15:04:05 MST"), st.NextRunUTC.Format("2006-01-02 15:04:05Z"))
	}
	if l := st.Last; l != nil {
		fmt.Fprintf(w, "  last run:  %s %s %s (execution %s)\n", l.QueuedAt.Local().Format("2006-01-02 15:04:05"), l.Status, l.Outcome, l.ExecutionID)
	}
	fmt.Fprintf(w, "  runs:      %d finished, %d succeeded\n", st.Runs, st.Succeeded)
	fmt.Fprintf(w, "  resources: memory %s, cpus %v, timeout %s, network %s, profile %s, strategy %s\n",
		v.Resources.Memory, v.Resources.CPUs, v.Timeout.D(), v.Network.Mode, v.Profile, v.Strategy)
	fmt.Fprintf(w, "  script:    %d bytes (cronium event get %s -o yaml shows it all)\n", len(v.Script), v.Name)
}

func zoneOr(tz string) string {
	if tz == "" {
		return "UTC"
	}
	return tz
}

// newEventDiffCmd shows how the server's events differ from a file's, as
// the server would save the file (it checks it without saving).
func newEventDiffCmd(cl *apiClient) *cobra.Command {
	var file string
	c := &cobra.Command{
		Use:   "diff -f FILE|DIR",
		Short: "Show what applying a file would change: the server's events against the file's, checked by the server (exit 1 when they differ)",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if file == "" {
				return usage(cronium.Invalid("-f", "", "is required: the event YAML file or directory, or - for stdin"))
			}
			evs, err := readEvents(file)
			if err != nil {
				return usage(err)
			}
			differ := false
			for _, ev := range evs {
				name, _ := ev["name"].(string)
				stripServerFields(ev)
				var want cronium.Event
				if err := cl.do(c.Context(), "PUT", "/v1/events/"+url.PathEscape(name)+"?dry_run=true", ev, &want); err != nil {
					return err
				}
				var have cronium.Event
				err := cl.do(c.Context(), "GET", "/v1/events/"+url.PathEscape(name), nil, &have)
				var ae *apiError
				switch {
				case errors.As(err, &ae) && ae.status == 404:
					fmt.Fprintf(c.OutOrStdout(), "event %s: new\n", name)
					differ = true
					continue
				case err != nil:
					return err
				}
				d := lineDiff(eventYAML(have), eventYAML(want))
				if d == "" {
					fmt.Fprintf(c.OutOrStdout(), "event %s: unchanged\n", name)
					continue
				}
				differ = true
				fmt.Fprintf(c.OutOrStdout(), "--- event %s (server)\n+++ event %s (%s)\n%s", name, name, file, d)
			}
			if differ {
				return &exitError{code: 1}
			}
			return nil
		},
	}
	c.Flags().StringVarP(&file, "file", "f", "", "YAML file, folder or directory, or - for stdin")
	return c
}

// eventYAML is an event as apply takes it, for comparing.
func eventYAML(ev cronium.Event) []string {
	var b strings.Builder
	m := map[string]any{}
	raw, _ := jsonRoundTrip(ev)
	for k, v := range raw {
		m[k] = v
	}
	stripServerFields(m)
	printData(&b, "yaml", m)
	return strings.SplitAfter(b.String(), "\n")
}

// lineDiff returns the lines only in a ("-") or only in b ("+"), in order,
// with the common lines around them (" "); "" when a and b are equal.
func lineDiff(a, b []string) string {
	if slices.Equal(a, b) {
		return ""
	}
	// Longest common subsequence, by dynamic programming: events are short.
	n, m := len(a), len(b)
	lcs := make([][]int, n+1)
	for i := range lcs {
		lcs[i] = make([]int, m+1)
	}
	for i := n - 1; i >= 0; i-- {
		for j := m - 1; j >= 0; j-- {
			if a[i] == b[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	var out strings.Builder
	line := func(prefix, s string) {
		if !strings.HasSuffix(s, "\n") {
			s += "\n"
		}
		out.WriteString(prefix + s)
	}
	i, j := 0, 0
	for i < n || j < m {
		switch {
		case i < n && j < m && a[i] == b[j]:
			line(" ", a[i])
			i, j = i+1, j+1
		case i < n && (j == m || lcs[i+1][j] >= lcs[i][j+1]):
			line("-", a[i])
			i++
		default:
			line("+", b[j])
			j++
		}
	}
	return out.String()
}

// readDir reads a directory of event files (*.yaml, *.yml) and event
// folders (directories with an event.yaml), in name order.
func readDir(dir string) ([]map[string]any, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, cronium.Invalid("-f", dir, "cannot be read: "+err.Error())
	}
	var out []map[string]any
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		isFolder := false
		if e.IsDir() {
			if _, err := os.Stat(filepath.Join(p, "event.yaml")); err == nil {
				isFolder = true
			}
		}
		if !isFolder && (e.IsDir() || !(strings.HasSuffix(e.Name(), ".yaml") || strings.HasSuffix(e.Name(), ".yml"))) {
			continue
		}
		evs, err := readEvents(p)
		if err != nil {
			return nil, err
		}
		out = append(out, evs...)
	}
	if len(out) == 0 {
		return nil, cronium.Invalid("-f", dir, "holds no event: want *.yaml files, folders with an event.yaml, or an event.yaml of its own")
	}
	return out, nil
}

// jsonRoundTrip returns v as a JSON object decoded into a map.
func jsonRoundTrip(v any) (map[string]any, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	return m, json.Unmarshal(b, &m)
}

// lastLines keeps the chunks that hold the last n lines of their text
// (the first kept chunk cut to where its last line begins).
func lastLines[T any](chunks []T, n int, text func(T) string, cut func(T, string) T) []T {
	lines := 0
	for i := len(chunks) - 1; i >= 0; i-- {
		s := text(chunks[i])
		for j := len(s) - 1; j >= 0; j-- {
			if s[j] != '\n' || (i == len(chunks)-1 && j == len(s)-1) {
				continue // the output's final newline ends the last line, not a new one
			}
			if lines++; lines == n {
				out := append([]T{cut(chunks[i], s[j+1:])}, chunks[i+1:]...)
				return out
			}
		}
	}
	return chunks
}
