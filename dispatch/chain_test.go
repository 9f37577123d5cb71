package dispatch

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	cronium "github.com/cronium/executor"
	"github.com/cronium/executor/sqlite"
)

// A tree of triggers, 5 wide at each of 3 levels (155 runs if unbounded),
// starts at most cronium.MaxChainRuns runs from one trigger, and the runs
// whose triggers were stopped say so.
func TestChainRunsAreBounded(t *testing.T) {
	st, eng, d := setup(t)
	ctx := context.Background()
	u, _ := st.CreateUser(ctx, "alice", "free", false)
	put := func(name string, next string) {
		ev := cronium.Event{Name: name, Language: cronium.Bash, Script: string(cronium.Succeeded)}
		if next != "" {
			for i := 1; i <= 5; i++ {
				ev.On.Success = append(ev.On.Success, cronium.Action{Trigger: fmt.Sprintf("%s%d", next, i)})
			}
		}
		if err := ev.Normalize(cronium.DefaultTiers()["free"]); err != nil {
			t.Fatal(err)
		}
		if _, err := st.PutEvent(ctx, u.ID, &ev); err != nil {
			t.Fatal(err)
		}
	}
	for i := 1; i <= 5; i++ {
		put(fmt.Sprintf("c%d", i), "")
		put(fmt.Sprintf("b%d", i), "c")
		put(fmt.Sprintf("a%d", i), "b")
	}
	put("root", "a")
	root, _ := st.Event(ctx, u.ID, "root")
	x := cronium.Execution{EventID: root.ID, UserID: u.ID, Trigger: cronium.TriggerManual, Attempt: 1}
	if _, err := st.Enqueue(ctx, &x, nil); err != nil {
		t.Fatal(err)
	}
	start(t, d)
	deadline := time.Now().Add(30 * time.Second)
	var xs []cronium.Execution
	for {
		xs, _ = st.Executions(ctx, sqlite.ExecutionFilter{Limit: 1000})
		done := true
		for _, x := range xs {
			done = done && x.Status == cronium.StatusFinished
		}
		if done && eng.started() == len(xs) && len(xs) > 1 {
			time.Sleep(200 * time.Millisecond) // nothing more comes
			if again, _ := st.Executions(ctx, sqlite.ExecutionFilter{Limit: 1000}); len(again) == len(xs) {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d executions, not all finished", len(xs))
		}
		time.Sleep(50 * time.Millisecond)
	}
	chained, noted := 0, 0
	for _, e := range xs {
		if e.Trigger == cronium.TriggerChain {
			chained++
			if e.ChainRoot != x.ID {
				t.Errorf("execution %s: chain root %q, want %s", e.ID, e.ChainRoot, x.ID)
			}
		}
		if strings.Contains(e.Reason, "the most one chain may") {
			noted++
		}
	}
	if chained != cronium.MaxChainRuns || noted == 0 {
		t.Errorf("%d chained runs (want %d), %d runs saying triggers were stopped", chained, cronium.MaxChainRuns, noted)
	}
}

// A run whose event was deleted while it ran is not retried, and its
// actions do not run.
func TestNothingFollowsADeletedEvent(t *testing.T) {
	st, _, d := setup(t)
	ctx := context.Background()
	ev, x := queue(t, st, cronium.Event{Name: "gone", Language: cronium.Bash, Script: string(cronium.Failed),
		Retry: cronium.RetryPolicy{MaxAttempts: 3, Backoff: cronium.Duration(time.Second)},
		On:    cronium.Actions{Failure: []cronium.Action{{Notify: "ops"}}}})
	res := cronium.Result{ID: x.ID, Outcome: cronium.Failed, ExitCode: 1}
	if f := d.followUps(ctx, x, res); f.Retry == nil {
		t.Fatalf("a live event's failed run is not retried: %+v", f)
	}
	if _, err := st.DeleteEvent(ctx, x.UserID, ev.Name); err != nil {
		t.Fatal(err)
	}
	if f := d.followUps(ctx, x, res); f.Retry != nil || len(f.Notifications) != 0 || len(f.Chained) != 0 || len(f.Notes) == 0 {
		t.Errorf("after the event was deleted: %+v", f)
	}
}
