package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	cronium "github.com/cronium/executor"
	"github.com/cronium/executor/store"
)

// Queue, events, variables, keys and the audit: what every store keeps.
func init() {
	add("QueueExactlyOnce", testQueueExactlyOnce)
	add("SetPackageLock", testSetPackageLock)
	add("IncrementRefusesNonFiniteValues", testIncrementRefusesNonFiniteValues)
	add("KeyLifecycleAndAudit", testKeyLifecycleAndAudit)
	add("ConcurrentIncrementsSumExactly", testConcurrentIncrementsSumExactly)
	add("ConcurrentEnqueueOfOneFireIsOnce", testConcurrentEnqueueOfOneFireIsOnce)
	add("UnreadableStoredDataIsSaid", testUnreadableStoredDataIsSaid)
	add("WrittenAheadFires", testWrittenAheadFires)
}

func testQueueExactlyOnce(t *testing.T, h Harness) {
	st := open(t, h)
	ctx := context.Background()
	u, _ := st.CreateUser(ctx, "alice", "free", false)
	ev := cronium.Event{Name: "e", Language: cronium.Bash, Script: "x", Schedule: "@every 5s"}
	ev.Normalize(cronium.DefaultTiers()["free"])
	st.PutEvent(ctx, u.ID, &ev)
	at := time.Date(2026, 6, 1, 10, 0, 0, 0, time.UTC)
	mk := func() *cronium.Execution {
		return &cronium.Execution{EventID: ev.ID, UserID: u.ID, Trigger: cronium.TriggerSchedule, ScheduledAt: &at, Attempt: 1, Strategy: "cold"}
	}
	if ok, err := st.Enqueue(ctx, mk(), &at); !ok || err != nil {
		t.Fatalf("first enqueue: %v %v", ok, err)
	}
	if ok, err := st.Enqueue(ctx, mk(), &at); ok || err != nil {
		t.Errorf("second enqueue of the same (event, time): inserted=%v err=%v, want ignored", ok, err)
	}
	se, _ := st.ScheduledEvents(ctx)
	if len(se) != 1 || !se[0].LastFire.Equal(at) {
		t.Errorf("last fire %v, want %v", se, at)
	}
	xs, _ := st.ReadyHeads(ctx, time.Now(), 10)
	if len(xs) != 1 {
		t.Fatalf("ready: %d", len(xs))
	}
	id := xs[0].ID
	claimed, _ := st.ClaimMany(ctx, []string{id, id}, "n1", time.Now())
	if len(claimed) != 1 {
		t.Errorf("claimed %v, want the execution once", claimed)
	}
	if ok, _ := st.CancelQueued(ctx, id, "x"); ok {
		t.Error("cancelled a running execution as if it were queued")
	}
	res := cronium.Result{ID: id, Outcome: cronium.Succeeded, EndedAt: time.Now()}
	if ok, _ := st.FinishWith(ctx, id, "", res, "", store.FollowUps{}); !ok {
		t.Error("finish failed")
	}
	if ok, _ := st.FinishWith(ctx, id, "", cronium.Result{Outcome: cronium.Failed}, "", store.FollowUps{}); ok {
		t.Error("an execution finished twice")
	}
	x, _ := st.Execution(ctx, u.ID, id)
	if x.Outcome != cronium.Succeeded || x.Result == nil {
		t.Errorf("stored %+v", x)
	}
	// Logs: duplicates by sequence number are ignored.
	chunks := []store.LogChunk{{Seq: 1, Stream: 1, Data: []byte("a")}, {Seq: 2, Stream: 2, Data: []byte("bc")}}
	st.AppendLogs(ctx, id, chunks, false)
	st.AppendLogs(ctx, id, chunks[1:], true)
	got, _ := st.Logs(ctx, id, 0, 10)
	x, _ = st.Execution(ctx, u.ID, id)
	if len(got) != 2 || x.LogBytes != 3 || !x.LogTruncated {
		t.Errorf("logs %v, bytes %d truncated %v; want 2 chunks, 3 bytes, truncated", got, x.LogBytes, x.LogTruncated)
	}
	st.AppendLogs(ctx, id, []store.LogChunk{{Seq: 3, Stream: 1, Data: []byte("d")}, {Seq: 4, Stream: 1, Data: []byte("e")}}, true)
	if last, err := st.LastLogs(ctx, id, 2); err != nil || len(last) != 2 || last[0].Seq != 3 || string(last[1].Data) != "e" {
		t.Errorf("the last 2 chunks: %+v %v, want seq 3 and 4, oldest first", last, err)
	}
	if _, err := st.Execution(ctx, u.ID+1, id); !errors.Is(err, cronium.ErrNotFound) {
		t.Errorf("another user's execution: %v, want not found", err)
	}
}

// A rebuilt layer is recorded only on an event still using the old one:
// an apply in between (its own lock) wins. The user's updated_at stays.
func testSetPackageLock(t *testing.T, h Harness) {
	st := open(t, h)
	ctx := context.Background()
	u, _ := st.CreateUser(ctx, "alice", "free", false)
	ev := cronium.Event{Name: "e", Language: cronium.Bash, Script: "jq --version",
		Packages:    cronium.Packages{Apt: []string{"jq"}},
		PackageLock: &cronium.PackageLock{Image: "cronium/pkgs-bash:old", Base: "cronium/runtime-bash:1", BaseID: "sha256:a"}}
	if _, err := st.PutEvent(ctx, u.ID, &ev); err != nil {
		t.Fatal(err)
	}
	before, _ := st.Event(ctx, u.ID, "e")
	lock := cronium.PackageLock{Image: "cronium/pkgs-bash:new", Base: "cronium/runtime-bash:1", BaseID: "sha256:b", Apt: []string{"jq=1.6"}}
	if ok, err := st.SetPackageLock(ctx, ev.ID, "cronium/pkgs-bash:other", lock); ok || err != nil {
		t.Errorf("a lock over another image: %v %v, want not recorded", ok, err)
	}
	if ok, err := st.SetPackageLock(ctx, ev.ID, "cronium/pkgs-bash:old", lock); !ok || err != nil {
		t.Fatalf("SetPackageLock: %v %v", ok, err)
	}
	got, _ := st.Event(ctx, u.ID, "e")
	if got.PackageLock == nil || got.PackageLock.Image != lock.Image || got.PackageLock.BaseID != "sha256:b" || got.PackageLock.Apt[0] != "jq=1.6" {
		t.Errorf("lock after update: %+v", got.PackageLock)
	}
	if got.Script != ev.Script || got.Packages.Apt[0] != "jq" || !got.UpdatedAt.Equal(before.UpdatedAt) {
		t.Errorf("the rest of the event changed: %+v", got)
	}
	st.DeleteEvent(ctx, u.ID, "e")
	if ok, _ := st.SetPackageLock(ctx, ev.ID, lock.Image, lock); ok {
		t.Error("recorded a lock on a deleted event")
	}
}

// Increments that cannot be represented are refused before anything is
// stored: listing the user's variables keeps working.
func testIncrementRefusesNonFiniteValues(t *testing.T, h Harness) {
	st := open(t, h)
	ctx := context.Background()
	u, _ := st.CreateUser(ctx, "alice", "free", false)
	if _, err := st.Increment(ctx, u.ID, "n", math.NaN()); !errors.Is(err, cronium.ErrInvalid) {
		t.Errorf("increment by NaN: %v, want invalid", err)
	}
	if _, err := st.Increment(ctx, u.ID, "n", math.Inf(1)); !errors.Is(err, cronium.ErrInvalid) {
		t.Errorf("increment by +Inf: %v, want invalid", err)
	}
	if v, err := st.Increment(ctx, u.ID, "big", 1<<53); err != nil || v != 1<<53 {
		t.Fatalf("increment to 2^53: %v %v", v, err)
	}
	// 2^53 + 1 is not a float64: it would be kept as 2^53, silently.
	if _, err := st.Increment(ctx, u.ID, "big", 1); !errors.Is(err, cronium.ErrInvalid) || !strings.Contains(err.Error(), "not kept exactly") {
		t.Errorf("increment past 2^53: %v, want invalid", err)
	}
	if _, err := st.Increment(ctx, u.ID, "huge", math.MaxFloat64); !errors.Is(err, cronium.ErrInvalid) {
		t.Errorf("increment to the largest float: %v, want invalid", err)
	}
	vars, err := st.Variables(ctx, u.ID)
	if err != nil || len(vars) != 1 || !json.Valid(vars["big"]) {
		t.Errorf("variables after refused increments: %v %v", vars, err)
	}
}

// A key works until it is revoked or expires, at once; a deleted user's
// keys stop; the audit log filters by actor and action kind.
func testKeyLifecycleAndAudit(t *testing.T, h Harness) {
	st := open(t, h)
	ctx := context.Background()
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	u, _ := st.CreateUser(ctx, "alice", "free", false)
	until := now.Add(time.Hour)
	key, info, err := st.NewKey(ctx, u.ID, "ci", &until)
	if err != nil || info.ID == 0 || info.Prefix != key[:10] {
		t.Fatalf("NewKey: %v %+v", err, info)
	}
	if got, k, err := st.Authenticate(ctx, key, now); err != nil || got.Name != "alice" || k.ID != info.ID || k.Name != "ci" {
		t.Fatalf("Authenticate: %v %+v %+v", err, got, k)
	}
	if _, _, err := st.Authenticate(ctx, key, until); !errors.Is(err, cronium.ErrNotFound) {
		t.Errorf("at its expiry: %v, want not found", err)
	}
	if _, err := st.RevokeKey(ctx, u.ID+1, info.ID, now); !errors.Is(err, cronium.ErrNotFound) {
		t.Errorf("revoking through another user: %v", err)
	}
	if k, err := st.RevokeKey(ctx, u.ID, info.ID, now); err != nil || k.RevokedAt == nil {
		t.Fatalf("revoke: %v %+v", err, k)
	}
	if _, _, err := st.Authenticate(ctx, key, now); !errors.Is(err, cronium.ErrNotFound) {
		t.Errorf("a revoked key: %v", err)
	}
	if _, err := st.RevokeKey(ctx, u.ID, info.ID, now); !errors.Is(err, cronium.ErrConflict) {
		t.Errorf("revoking twice: %v", err)
	}
	other, _ := st.CreateKey(ctx, u.ID)
	if err := st.SetVariable(ctx, u.ID, "k", []byte(`1`)); err != nil {
		t.Fatal(err)
	}
	if err := st.DeleteUser(ctx, u.ID, now); err != nil {
		t.Fatal(err)
	}
	if vars, _ := st.Variables(ctx, u.ID); len(vars) != 0 {
		t.Errorf("a deleted user's variables were kept: %v", vars)
	}
	if _, _, err := st.Authenticate(ctx, other, now); !errors.Is(err, cronium.ErrNotFound) {
		t.Errorf("a deleted user's key: %v", err)
	}
	if _, err := st.UserByName(ctx, "alice"); !errors.Is(err, cronium.ErrNotFound) {
		t.Errorf("a deleted user is still found: %v", err)
	}
	if _, err := st.CreateUser(ctx, "alice", "free", false); !errors.Is(err, cronium.ErrConflict) || !strings.Contains(err.Error(), "was deleted") {
		t.Errorf("a deleted user's name was given again: %v", err)
	}

	for _, e := range []store.AuditEntry{{Actor: "alice", Action: "event.trigger", Target: "alice/a"}, {Actor: "bob", Action: "event.apply", Target: "bob/b"},
		{Actor: "alice", Action: "key.revoke", Target: "alice/key 1"}, {Actor: "alice", Action: "event.triggered", Target: "x"}} {
		if err := st.Audit(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	got, err := st.AuditLog(ctx, store.AuditFilter{Actor: "alice", Action: "event."})
	if err != nil || len(got) != 2 || got[0].Action != "event.triggered" || got[1].Action != "event.trigger" {
		t.Errorf("alice's event actions, newest first: %v %+v", err, got)
	}
	if got, _ := st.AuditLog(ctx, store.AuditFilter{Action: "event.trigger"}); len(got) != 1 {
		t.Errorf("an exact action: %+v", got)
	}
	if got, _ := st.AuditLog(ctx, store.AuditFilter{Action: "key"}); len(got) != 1 || got[0].Action != "key.revoke" {
		t.Errorf("a kind without its dot: %+v", got)
	}
}

// Increments from many goroutines at once lose none.
func testConcurrentIncrementsSumExactly(t *testing.T, h Harness) {
	st := open(t, h)
	ctx := context.Background()
	u, _ := st.CreateUser(ctx, "alice", "free", false)
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for i := 0; i < 100; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := st.Increment(ctx, u.ID, "n", 1)
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	v, err := st.Variable(ctx, u.ID, "n")
	if err != nil || string(v) != "100" {
		t.Errorf("after 100 concurrent increments: %s %v, want 100", v, err)
	}
}

// The same scheduled fire enqueued by many at once (several schedulers)
// becomes one execution.
func testConcurrentEnqueueOfOneFireIsOnce(t *testing.T, h Harness) {
	st := open(t, h)
	ctx := context.Background()
	u, _ := st.CreateUser(ctx, "alice", "free", false)
	ev := cronium.Event{Name: "e", Language: cronium.Bash, Script: "x", Schedule: "@every 5s"}
	ev.Normalize(cronium.DefaultTiers()["free"])
	if _, err := st.PutEvent(ctx, u.ID, &ev); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 6, 1, 10, 0, 0, 0, time.UTC)
	var wg sync.WaitGroup
	inserted := make(chan int, 10)
	for i := 0; i < 10; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			x := &cronium.Execution{EventID: ev.ID, UserID: u.ID, Trigger: cronium.TriggerSchedule, ScheduledAt: &at, Attempt: 1, Strategy: "cold"}
			n, err := st.EnqueueMany(ctx, []*cronium.Execution{x}, []time.Time{at})
			if err != nil {
				t.Error(err)
			}
			inserted <- n
		}()
	}
	wg.Wait()
	close(inserted)
	total := 0
	for n := range inserted {
		total += n
	}
	active, err := st.Active(ctx, ev.ID)
	if total != 1 || err != nil || len(active) != 1 {
		t.Errorf("%d inserted, %d active (%v): want the fire once", total, len(active), err)
	}

}

// A stored execution result that cannot be read is said on the
// execution, not dropped; a stored event spec that cannot be read is
// replaced by the next apply.
func testUnreadableStoredDataIsSaid(t *testing.T, h Harness) {
	st := open(t, h)
	ctx := context.Background()
	u, _ := st.CreateUser(ctx, "alice", "free", false)
	ev := cronium.Event{Name: "e", Language: cronium.Bash, Script: "x"}
	ev.Normalize(cronium.DefaultTiers()["free"])
	st.PutEvent(ctx, u.ID, &ev)
	x := cronium.Execution{EventID: ev.ID, UserID: u.ID, Trigger: cronium.TriggerManual, Attempt: 1}
	st.Enqueue(ctx, &x, nil)
	exec(t, h, st, `UPDATE executions SET status = 'finished', result = '{"outcome": 42' WHERE id = ?`, x.ID)
	got, err := st.Execution(ctx, u.ID, x.ID)
	if err != nil || got.Result == nil || !strings.Contains(got.Result.Error, "could not be read") {
		t.Errorf("execution with a broken result: %+v %v", got.Result, err)
	}
	// Valid JSON that is not an event: every database can hold it.
	exec(t, h, st, `UPDATE events SET spec = '{"script": 42}' WHERE id = ?`, ev.ID)
	ev2 := cronium.Event{Name: "e", Language: cronium.Bash, Script: "y"}
	ev2.Normalize(cronium.DefaultTiers()["free"])
	if _, err := st.PutEvent(ctx, u.ID, &ev2); err != nil {
		t.Fatal(err)
	}
	if e, err := st.Event(ctx, u.ID, "e"); err != nil || e.Script != "y" {
		t.Errorf("event after replacing a broken spec: %+v %v", e, err)
	}
}

// A fire written ahead of its time waits for it, and pausing or
// rescheduling its event cancels it, saying why.
func testWrittenAheadFires(t *testing.T, h Harness) {
	st := open(t, h)
	ctx := context.Background()
	u, _ := st.CreateUser(ctx, "alice", "free", false)
	ev := cronium.Event{Name: "e", Language: cronium.Bash, Script: "x", Schedule: "@every 1m"}
	ev.Normalize(cronium.DefaultTiers()["free"])
	st.PutEvent(ctx, u.ID, &ev)
	base := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	write := func(k int) (string, time.Time) {
		at := base.Add(time.Duration(k) * time.Minute)
		x := &cronium.Execution{EventID: ev.ID, UserID: u.ID, Trigger: cronium.TriggerSchedule, ScheduledAt: &at, NotBefore: at, Attempt: 1, Strategy: "cold"}
		if n, err := st.EnqueueMany(ctx, []*cronium.Execution{x}, []time.Time{at}); n != 1 || err != nil {
			t.Fatalf("write ahead: %d %v", n, err)
		}
		return x.ID, at
	}
	cancelled := func(id, why string) {
		t.Helper()
		x, err := st.Execution(ctx, u.ID, id)
		if err != nil || x.Status != cronium.StatusFinished || x.Outcome != cronium.Cancelled || !strings.Contains(x.Reason, why) {
			t.Errorf("the fire written ahead: %s %s %q %v, want cancelled: %s", x.Status, x.Outcome, x.Reason, err, why)
		}
	}
	id, at := write(0)
	if xs, _ := st.ReadyHeads(ctx, time.Now(), 10); len(xs) != 0 {
		t.Errorf("a fire written ahead is ready before its time: %+v", xs)
	}
	if xs, _ := st.ReadyHeads(ctx, at, 10); len(xs) != 1 || xs[0].ID != id {
		t.Errorf("at its time: %+v, want it ready", xs)
	}
	if err := st.SetEnabled(ctx, u.ID, "e", false); err != nil {
		t.Fatal(err)
	}
	cancelled(id, "paused before its time")
	later := base.Add(time.Minute)
	if n, _ := st.EnqueueMany(ctx, []*cronium.Execution{{EventID: ev.ID, UserID: u.ID, Trigger: cronium.TriggerSchedule, ScheduledAt: &later, NotBefore: later, Attempt: 1}}, []time.Time{later}); n != 0 {
		t.Error("a paused event's fire was stored")
	}
	st.SetEnabled(ctx, u.ID, "e", true)
	id, _ = write(2)
	ev.Schedule = "@every 2m"
	if _, err := st.PutEvent(ctx, u.ID, &ev); err != nil {
		t.Fatal(err)
	}
	cancelled(id, "schedule changed before its time")
	id, _ = write(3)
	ev.Script = "y"
	st.PutEvent(ctx, u.ID, &ev)
	if x, err := st.Execution(ctx, u.ID, id); err != nil || x.Status != cronium.StatusQueued {
		t.Errorf("a script edit touched the fire written ahead: %s %v", x.Status, err)
	}
}
