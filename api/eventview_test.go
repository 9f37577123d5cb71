package api_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	cronium "github.com/cronium/executor"
	"github.com/cronium/executor/schedule"
)

// GET /v1/events and /v1/events/{name} show each event's state, next run
// (in its zone and UTC), last run and counts; /next lists fire times as
// the schedule tests compute them.
func TestEventStatusAndNextRuns(t *testing.T) {
	e := setup(t)
	nightly := map[string]any{"name": "nightly", "language": "bash", "script": "echo hi", "schedule": "30 2 * * *", "timezone": "Europe/Berlin"}
	if st, body := e.call(t, e.alice, "PUT", "/v1/events/nightly", nightly); st != 201 {
		t.Fatalf("apply: %d %v", st, body)
	}
	before := time.Now()
	_, ev := e.call(t, e.alice, "GET", "/v1/events/nightly", nil)
	status, _ := ev["status"].(map[string]any)
	if status["state"] != "scheduled" {
		t.Fatalf("status %v", status)
	}
	sched, err := schedule.Parse("30 2 * * *", "Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	local, err1 := time.Parse(time.RFC3339, status["next_run"].(string))
	utc, err2 := time.Parse(time.RFC3339, status["next_run_utc"].(string))
	if err1 != nil || err2 != nil || !local.Equal(utc) || !local.Equal(sched.Next(before)) || utc.Location() != time.UTC {
		t.Errorf("next_run %v, next_run_utc %v; want %v", status["next_run"], status["next_run_utc"], sched.Next(before))
	}
	if _, off := local.Zone(); off != 3600 && off != 7200 {
		t.Errorf("next_run %v is not in Berlin's offset", status["next_run"])
	}
	if status["runs"] != 0.0 || status["last_run"] != nil {
		t.Errorf("a new event has runs: %v", status)
	}

	_, next := e.call(t, e.alice, "GET", "/v1/events/nightly/next?n=3", nil)
	items, _ := next["items"].([]any)
	want := sched.Between(before, before.AddDate(0, 0, 4), 3)
	if len(items) != 3 {
		t.Fatalf("next: %v", next)
	}
	for i, it := range items {
		at, _ := time.Parse(time.RFC3339, it.(map[string]any)["at"].(string))
		if !at.Equal(want[i]) || at.Format("15:04") != "02:30" && at.Format("15:04") != "03:00" {
			t.Errorf("next[%d] = %v, want %v", i, it, want[i])
		}
	}
	for _, n := range []string{"0", "101", "x"} {
		st, body := e.call(t, e.alice, "GET", "/v1/events/nightly/next?n="+n, nil)
		if _, field, _ := errOf(body); st != 400 || field != "n" {
			t.Errorf("n=%s: %d %v", n, st, body)
		}
	}

	// A run shows as the last run.
	_, x := e.call(t, e.alice, "POST", "/v1/events/nightly/trigger", map[string]any{})
	_, ev = e.call(t, e.alice, "GET", "/v1/events/nightly", nil)
	last, _ := ev["status"].(map[string]any)["last_run"].(map[string]any)
	if last["execution_id"] != x["id"] || last["status"] != "queued" || last["trigger"] != "api" {
		t.Errorf("last_run %v, want execution %v queued", last, x["id"])
	}

	// Paused, on demand, and a stored schedule that no longer parses.
	e.call(t, e.alice, "POST", "/v1/events/nightly/pause", nil)
	ondemand := map[string]any{"name": "adhoc", "language": "bash", "script": "echo hi"}
	e.call(t, e.alice, "PUT", "/v1/events/adhoc", ondemand)
	usr, err := e.store.UserByName(context.Background(), "alice")
	if err != nil {
		t.Fatal(err)
	}
	legacy := cronium.Event{Name: "legacy", Language: cronium.Bash, Script: "echo", Schedule: "0 0 ? * *", Timezone: "UTC"}
	if _, err := e.store.PutEvent(context.Background(), usr.ID, &legacy); err != nil {
		t.Fatal(err)
	}
	_, list := e.call(t, e.alice, "GET", "/v1/events", nil)
	states := map[string]string{}
	for _, it := range list["items"].([]any) {
		m := it.(map[string]any)
		st := m["status"].(map[string]any)
		states[m["name"].(string)] = st["state"].(string)
		if m["name"] == "legacy" && st["problem"] == nil {
			t.Errorf("legacy event: no problem said: %v", st)
		}
	}
	if states["nightly"] != "paused" || states["adhoc"] != "on demand" || states["legacy"] != "never fires" {
		t.Errorf("states %v", states)
	}
	if st, body := e.call(t, e.alice, "GET", "/v1/events/adhoc/next", nil); st != 400 {
		t.Errorf("next of an on-demand event: %d %v", st, body)
	}
}

// Applying an event again keeps it paused unless the body says enabled;
// a secret the owner does not have is refused at apply, naming the field.
func TestApplyKeepsPausedAndChecksSecrets(t *testing.T) {
	e := setup(t)
	if st, _ := e.call(t, e.alice, "PUT", "/v1/events/job", okEvent); st != 201 {
		t.Fatal(st)
	}
	e.call(t, e.alice, "POST", "/v1/events/job/pause", nil)
	if _, ev := e.call(t, e.alice, "PUT", "/v1/events/job", okEvent); ev["enabled"] != false {
		t.Errorf("re-applied without enabled: %v, want it still paused", ev["enabled"])
	}
	if _, ev := e.call(t, e.alice, "PUT", "/v1/events/job", eventWith("enabled", true)); ev["enabled"] != true {
		t.Errorf("re-applied with enabled: true: %v", ev["enabled"])
	}
	st, body := e.call(t, e.alice, "PUT", "/v1/events/job", eventWith("secrets", []string{"db_password"}))
	if _, field, msg := errOf(body); st != 400 || field != "secrets" || !strings.Contains(msg, "cronium secret set db_password") {
		t.Errorf("a missing secret: %d %v", st, body)
	}
}

// Executions are filtered by outcome (as a status), trigger and time; a
// retry and the run it retries point at each other.
func TestExecutionFilters(t *testing.T) {
	e := setup(t)
	e.call(t, e.alice, "PUT", "/v1/events/job", okEvent)
	e.call(t, e.alice, "POST", "/v1/events/job/trigger", map[string]any{})
	for _, c := range []struct {
		query string
		n     int
	}{
		{"status=queued", 1}, {"status=failed", 0}, {"trigger=api", 1}, {"trigger=schedule", 0},
		{"since=1h", 1}, {"until=1h", 0}, {"since=2000-01-01T00:00:00Z", 1},
	} {
		st, body := e.call(t, e.alice, "GET", "/v1/executions?"+c.query, nil)
		if items, _ := body["items"].([]any); st != 200 || len(items) != c.n {
			t.Errorf("%s: %d, %d items, want %d", c.query, st, len(items), c.n)
		}
	}
	for _, bad := range []string{"status=broken", "trigger=cron", "since=yesterday"} {
		if st, body := e.call(t, e.alice, "GET", "/v1/executions?"+bad, nil); st != 400 {
			t.Errorf("%s: %d %v", bad, st, body)
		}
	}
}

// Two applies at once, each closing half of a cycle, cannot both pass.
func TestCycleCheckHoldsUnderRace(t *testing.T) {
	e := setup(t)
	for round := 0; round < 20; round++ {
		x, y := fmt.Sprintf("x%d", round), fmt.Sprintf("y%d", round)
		for _, n := range []string{x, y} {
			if st, body := e.call(t, e.alice, "PUT", "/v1/events/"+n, map[string]any{"name": n, "language": "bash", "script": "true"}); st != 201 {
				t.Fatalf("%s: %d %v", n, st, body)
			}
		}
		codes := make(chan int, 2)
		for _, pair := range [][2]string{{x, y}, {y, x}} {
			go func() {
				st, _ := e.call(t, e.alice, "PUT", "/v1/events/"+pair[0], map[string]any{"name": pair[0], "language": "bash", "script": "true",
					"on": map[string]any{"success": []any{map[string]any{"trigger": pair[1]}}}})
				codes <- st
			}()
		}
		a, b := <-codes, <-codes
		if a == 200 && b == 200 {
			t.Fatalf("round %d: both halves of the cycle %s <-> %s were stored", round, x, y)
		}
	}
}

// Values no environment or zone can hold are refused at apply, naming the field.
func TestApplyRefusesNulAndLocal(t *testing.T) {
	e := setup(t)
	for _, c := range []struct {
		ev    map[string]any
		field string
	}{
		{map[string]any{"name": "n", "language": "bash", "script": "true", "env": map[string]string{"A": "x\x00y"}}, "env.A"},
		{map[string]any{"name": "l", "language": "bash", "script": "true", "timezone": "Local"}, "timezone"},
	} {
		st, body := e.call(t, e.alice, "PUT", "/v1/events/"+c.ev["name"].(string), c.ev)
		if _, field, _ := errOf(body); st != 400 || field != c.field {
			t.Errorf("%v: %d %v, want 400 naming %s", c.ev, st, body, c.field)
		}
	}
}

// An event another event triggers cannot be deleted from under it; the
// refusal names who triggers it.
func TestTriggeredEventsAreKept(t *testing.T) {
	e := setup(t)
	e.call(t, e.alice, "PUT", "/v1/events/b", map[string]any{"name": "b", "language": "bash", "script": "true"})
	if st, body := e.call(t, e.alice, "PUT", "/v1/events/a", map[string]any{"name": "a", "language": "bash", "script": "true",
		"on": map[string]any{"success": []any{map[string]any{"trigger": "b"}}}}); st != 201 {
		t.Fatalf("apply a: %d %v", st, body)
	}
	if st, body := e.call(t, e.alice, "DELETE", "/v1/events/b", nil); st != 409 || !strings.Contains(fmt.Sprint(body), "triggered by a") {
		t.Errorf("delete b: %d %v", st, body)
	}
	if st, _ := e.call(t, e.alice, "DELETE", "/v1/events/a", nil); st != 204 {
		t.Errorf("delete a: %d", st)
	}
	if st, _ := e.call(t, e.alice, "DELETE", "/v1/events/b", nil); st != 204 {
		t.Errorf("delete b once a is gone: %d", st)
	}
}
