package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cronium/executor/api"
	"github.com/cronium/executor/schedule"
)

// `event next` prints the fire times the schedule package computes, in the
// event's zone and in UTC; `event list` shows state and next run, and its
// JSON is {"items": [...]} like every list.
func TestEventNextAndList(t *testing.T) {
	t.Parallel()
	s := newServer(t, 1)
	s.env = append(s.env, "CRONIUM_TOKEN="+s.user("alice", "free"))
	s.start()
	file := filepath.Join(t.TempDir(), "nightly.yaml")
	os.WriteFile(file, []byte("name: nightly\nlanguage: bash\nscript: echo hi\nschedule: \"30 2 * * *\"\ntimezone: Europe/Berlin\n"), 0o600)
	if _, err := s.cli("event", "apply", "-f", file); err != nil {
		t.Fatal(err)
	}
	before := time.Now()
	out, err := s.cli("event", "next", "nightly", "-n", "5", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var next api.NextRuns
	if err := json.Unmarshal([]byte(out), &next); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	sched, _ := schedule.Parse("30 2 * * *", "Europe/Berlin")
	want := sched.Between(before, before.AddDate(0, 0, 7), 5)
	if len(next.Items) != 5 {
		t.Fatalf("event next: %s", out)
	}
	for i, r := range next.Items {
		if !r.At.Equal(want[i]) || !r.UTC.Equal(want[i]) || r.UTC.Location() != time.UTC {
			t.Errorf("event next [%d] = %v / %v, want %v", i, r.At, r.UTC, want[i])
		}
	}
	table, err := s.cli("event", "next", "nightly", "-n", "2")
	if err != nil || !strings.Contains(table, want[0].Format("2006-01-02 15:04:05 MST")) || !strings.Contains(table, want[1].UTC().Format(time.RFC3339)) {
		t.Errorf("event next table: %v\n%s", err, table)
	}
	if _, stderr, err := s.run("event", "next", "nightly", "-n", "0"); err == nil || !strings.Contains(stderr, "want a whole number 1-100") {
		t.Errorf("event next -n 0: %v %s", err, stderr)
	}

	list, err := s.cli("event", "list")
	if err != nil || !strings.Contains(list, "scheduled") || !strings.Contains(list, want[0].Format("2006-01-02 15:04:05 MST")) {
		t.Errorf("event list: %v\n%s", err, list)
	}
	js, err := s.cli("event", "list", "-o", "json")
	var page struct {
		Items []api.EventView `json:"items"`
	}
	if err != nil || json.Unmarshal([]byte(js), &page) != nil || len(page.Items) != 1 || page.Items[0].Status.State != "scheduled" {
		t.Errorf("event list -o json: %v\n%s", err, js)
	}
}

// The script's clock reads in its event's zone: TZ is the event's timezone
// (UTC when it has none), unless the event sets TZ itself.
func TestScriptsGetTheirEventsZone(t *testing.T) {
	t.Parallel()
	s := newServer(t, 2)
	key := s.user("alice", "free")
	s.env = append(s.env, "CRONIUM_TOKEN="+key)
	s.start()
	script := `echo "$TZ $(date -d @0 +%Z)"`
	for name, ev := range map[string]map[string]any{
		"berlin": {"timezone": "Europe/Berlin"},
		"plain":  {},
		"own":    {"timezone": "Europe/Berlin", "env": map[string]string{"TZ": "America/New_York"}},
	} {
		ev["name"], ev["language"], ev["script"] = name, "bash", script
		if st := s.api(key, "PUT", "/v1/events/"+name, ev, nil); st != 201 {
			t.Fatalf("apply %s: %d", name, st)
		}
	}
	want := map[string]string{"berlin": "Europe/Berlin CET", "plain": "UTC UTC", "own": "America/New_York EST"}
	for name, w := range want {
		out, stderr, err := s.run("trigger", name, "--follow")
		if err != nil || strings.TrimSpace(out) != w {
			t.Errorf("%s: %v %q %q, want %q", name, err, out, stderr, w)
		}
	}
}
