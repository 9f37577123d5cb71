package storetest

import (
	"context"
	"testing"
	"time"

	cronium "github.com/cronium/executor"
	"github.com/cronium/executor/notify"
	"github.com/cronium/executor/store"
)

func init() {
	add("PruneKeepsNewestRunsAndRecentOnes", testPruneKeepsNewestRunsAndRecentOnes)
}

// Prune keeps each event's newest runs and those finished within the
// retention time, with their logs; it never touches queued or running
// executions, nor another user's.
func testPruneKeepsNewestRunsAndRecentOnes(t *testing.T, h Harness) {
	st := open(t, h)
	ctx := context.Background()
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	alice, _ := st.CreateUser(ctx, "alice", "free", false)
	bob, _ := st.CreateUser(ctx, "bob", "free", false)
	event := func(u cronium.User, name string) cronium.Event { return putEvent(t, st, u, name) }
	a, b, other := event(alice, "a"), event(alice, "b"), event(bob, "c")
	// run adds an execution queued at `at`, finished a minute later unless open.
	run := func(u cronium.User, ev cronium.Event, at time.Time, open bool) string {
		x := &cronium.Execution{EventID: ev.ID, UserID: u.ID, Trigger: cronium.TriggerAPI, Attempt: 1, Strategy: "cold", QueuedAt: at}
		if _, err := st.Enqueue(ctx, x, nil); err != nil {
			t.Fatal(err)
		}
		if err := st.AppendLogs(ctx, x.ID, []store.LogChunk{{Seq: 1, Stream: 1, Data: []byte("hello\n")}}, false); err != nil {
			t.Fatal(err)
		}
		if !open {
			st.Finish(ctx, x.ID, cronium.Result{Outcome: cronium.Succeeded, EndedAt: at.Add(time.Minute)}, "")
		}
		return x.ID
	}
	day := 24 * time.Hour
	var aIDs []string
	for i := 5; i >= 1; i-- { // a: five runs, 5 to 1 days old
		aIDs = append(aIDs, run(alice, a, now.Add(-time.Duration(i)*day), false))
	}
	bOld := run(alice, b, now.Add(-10*day), false)
	aPending := run(alice, a, now.Add(-30*day), false) // old, but its notification is not sent yet
	if err := st.EnqueueNotifications(ctx, []notify.Delivery{
		{ExecutionID: aPending, UserID: alice.ID, Channel: "ops", Reason: "failure"},
		{ExecutionID: bOld, UserID: alice.ID, Channel: "ops", Reason: "failure"},
	}); err != nil {
		t.Fatal(err)
	}
	if err := st.Audit(ctx, store.AuditEntry{At: now.Add(-500 * day), Actor: "alice", Action: "event.trigger", Target: "alice/a"}); err != nil {
		t.Fatal(err)
	}
	exec(t, h, st, `UPDATE notifications SET status = 'sent' WHERE execution_id = ?`, bOld)
	bOpen := run(alice, b, now.Add(-20*day), true) // queued for 20 days: never pruned
	cOld := run(bob, other, now.Add(-10*day), false)

	// Keep 3 runs per event and 4 days.
	n, err := st.Prune(ctx, alice.ID, now.Add(-4*day), 3)
	if err != nil {
		t.Fatal(err)
	}
	gone := map[string]bool{aIDs[0]: true, aIDs[1]: true, bOld: true}
	if n != len(gone) {
		t.Errorf("pruned %d executions, want %d", n, len(gone))
	}
	for _, id := range append(aIDs, bOld, bOpen, cOld, aPending) {
		_, err := st.Execution(ctx, 0, id)
		logs, _ := st.Logs(ctx, id, 0, 10)
		switch {
		case gone[id] && err == nil:
			t.Errorf("execution %s was kept", id)
		case gone[id] && len(logs) > 0:
			t.Errorf("logs of pruned execution %s were kept", id)
		case !gone[id] && (err != nil || len(logs) != 1):
			t.Errorf("execution %s: %v, %d log chunks; want it kept with its logs", id, err, len(logs))
		}
	}
	if ns, _ := st.NotificationsFor(ctx, bOld); len(ns) != 0 {
		t.Errorf("the sent notification of a pruned execution was kept: %+v", ns)
	}
	// Twice is the same as once.
	if n, err := st.Prune(ctx, alice.ID, now.Add(-4*day), 3); n != 0 || err != nil {
		t.Errorf("second prune: %d %v", n, err)
	}
	// The tier's retention: free keeps 7 days, so bob's 10-day-old run goes.
	if n, err := st.PruneAll(ctx, cronium.DefaultTiers(), now); n != 1 || err != nil {
		t.Errorf("PruneAll: %d %v, want bob's old run", n, err)
	}
	if _, err := st.Execution(ctx, 0, cOld); err == nil {
		t.Errorf("bob's 10-day-old execution was kept under the free tier's 7 days")
	}
	if log, _ := st.AuditLog(ctx, store.AuditFilter{}); len(log) != 0 {
		t.Errorf("audit entries older than %s were kept: %+v", store.AuditRetention, log)
	}
}
