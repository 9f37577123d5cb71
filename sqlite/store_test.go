package sqlite

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"path/filepath"
	"strings"
	"testing"
	"time"

	cronium "github.com/cronium/executor"
)

func setup(t *testing.T) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "cronium.db")
	st, err := Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st, path
}

func TestMigrationsRunOnceAndReopen(t *testing.T) {
	st, path := setup(t)
	st.Close()
	st2, err := Open(context.Background(), path)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer st2.Close()
	var n, v int
	st2.db.QueryRow(`SELECT COUNT(*), MAX(version) FROM schema_migrations`).Scan(&n, &v)
	if n != len(migrations) || v != len(migrations) {
		t.Errorf("schema_migrations has %d rows, version %d; want %d", n, v, len(migrations))
	}
	st2.db.Exec(`INSERT INTO schema_migrations(version, applied_at) VALUES (999, 0)`)
	st2.Close()
	if _, err := Open(context.Background(), path); err == nil || !strings.Contains(err.Error(), "newer") {
		t.Errorf("opening a newer schema: %v, want a clear refusal", err)
	}
}

func TestKeysAreHashed(t *testing.T) {
	st, _ := setup(t)
	ctx := context.Background()
	u, _ := st.CreateUser(ctx, "alice", "free", false)
	key, err := st.CreateKey(ctx, u.ID)
	if err != nil || !strings.HasPrefix(key, KeyPrefix) || len(key) < 40 {
		t.Fatalf("key %q %v", key, err)
	}
	var stored string
	st.db.QueryRow(`SELECT hash FROM api_keys`).Scan(&stored)
	if strings.Contains(stored, key[len(KeyPrefix):]) {
		t.Error("the API key is stored in plain text")
	}
	if got, err := st.UserByKey(ctx, key); err != nil || got.Name != "alice" {
		t.Errorf("UserByKey: %v %v", got, err)
	}
	if _, err := st.UserByKey(ctx, key+"x"); !errors.Is(err, cronium.ErrNotFound) {
		t.Errorf("wrong key: %v, want not found", err)
	}
	if _, err := st.CreateUser(ctx, "alice", "pro", false); !errors.Is(err, cronium.ErrConflict) {
		t.Errorf("duplicate user: %v, want conflict", err)
	}
}

func TestQueueExactlyOnce(t *testing.T) {
	st, _ := setup(t)
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
	xs, _ := st.Ready(ctx, time.Now(), 10)
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
	if ok, _ := st.Finish(ctx, id, res, ""); !ok {
		t.Error("finish failed")
	}
	if ok, _ := st.Finish(ctx, id, cronium.Result{Outcome: cronium.Failed}, ""); ok {
		t.Error("an execution finished twice")
	}
	x, _ := st.Execution(ctx, u.ID, id)
	if x.Outcome != cronium.Succeeded || x.Result == nil {
		t.Errorf("stored %+v", x)
	}
	// Logs: duplicates by sequence number are ignored.
	chunks := []LogChunk{{Seq: 1, Stream: 1, Data: []byte("a")}, {Seq: 2, Stream: 2, Data: []byte("bc")}}
	st.AppendLogs(ctx, id, chunks, false)
	st.AppendLogs(ctx, id, chunks[1:], true)
	got, _ := st.Logs(ctx, id, 0, 10)
	x, _ = st.Execution(ctx, u.ID, id)
	if len(got) != 2 || x.LogBytes != 3 || !x.LogTruncated {
		t.Errorf("logs %v, bytes %d truncated %v; want 2 chunks, 3 bytes, truncated", got, x.LogBytes, x.LogTruncated)
	}
	if _, err := st.Execution(ctx, u.ID+1, id); !errors.Is(err, cronium.ErrNotFound) {
		t.Errorf("another user's execution: %v, want not found", err)
	}
}

// A rebuilt layer is recorded only on an event still using the old one:
// an apply in between (its own lock) wins. The user's updated_at stays.
func TestSetPackageLock(t *testing.T) {
	st, _ := setup(t)
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
func TestIncrementRefusesNonFiniteValues(t *testing.T) {
	st, _ := setup(t)
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

// A stored execution result that cannot be read is said on the
// execution, not dropped; a stored event spec that cannot be read is
// replaced by the next apply.
func TestUnreadableStoredDataIsSaid(t *testing.T) {
	st, _ := setup(t)
	ctx := context.Background()
	u, _ := st.CreateUser(ctx, "alice", "free", false)
	ev := cronium.Event{Name: "e", Language: cronium.Bash, Script: "x"}
	ev.Normalize(cronium.DefaultTiers()["free"])
	st.PutEvent(ctx, u.ID, &ev)
	x := cronium.Execution{EventID: ev.ID, UserID: u.ID, Trigger: cronium.TriggerManual, Attempt: 1}
	st.Enqueue(ctx, &x, nil)
	st.db.Exec(`UPDATE executions SET status = 'finished', result = '{"outcome": 42' WHERE id = ?`, x.ID)
	got, err := st.Execution(ctx, u.ID, x.ID)
	if err != nil || got.Result == nil || !strings.Contains(got.Result.Error, "could not be read") {
		t.Errorf("execution with a broken result: %+v %v", got.Result, err)
	}
	st.db.Exec(`UPDATE events SET spec = '{broken' WHERE id = ?`, ev.ID)
	ev2 := cronium.Event{Name: "e", Language: cronium.Bash, Script: "y"}
	ev2.Normalize(cronium.DefaultTiers()["free"])
	if _, err := st.PutEvent(ctx, u.ID, &ev2); err != nil {
		t.Fatal(err)
	}
	if e, err := st.Event(ctx, u.ID, "e"); err != nil || e.Script != "y" {
		t.Errorf("event after replacing a broken spec: %+v %v", e, err)
	}
}
