package dispatch

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	cronium "github.com/cronium/executor"
	"github.com/cronium/executor/sqlite"
)

// scriptedEngine stands in for the container engine at the dispatcher's
// seam (the engine has its own tests against Docker): each run ends with
// the outcome its script names.
type scriptedEngine struct {
	cronium.ColdOnly
	mu   sync.Mutex
	runs []cronium.Spec
}

func (e *scriptedEngine) Run(ctx context.Context, spec cronium.Spec) (cronium.Result, error) {
	e.mu.Lock()
	e.runs = append(e.runs, spec)
	e.mu.Unlock()
	if string(spec.Script) == "starting" { // making its sandbox until cancelled, as a slow Docker call does
		<-ctx.Done()
		return cronium.Result{}, fmt.Errorf("create container for execution %s: %w", spec.ID, context.Cause(ctx))
	}
	now := time.Now()
	res := cronium.Result{ID: spec.ID, Outcome: cronium.Outcome(spec.Script), StartedAt: now, EndedAt: now, Limits: spec.Limits,
		Phases: cronium.Phases{Create: time.Millisecond, Run: 3 * time.Millisecond},
		Usage:  cronium.Usage{CPUSeconds: 0.001234567 + float64(len(e.runs)%7)/1000, PeakMemory: 5 << 20}}
	if res.Outcome != cronium.Succeeded {
		res.ExitCode = 1
	}
	return res, nil
}
func (e *scriptedEngine) started() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.runs)
}

func (e *scriptedEngine) GC(context.Context, time.Duration) (int, error) { return 0, nil }
func (e *scriptedEngine) Close() error                                   { return nil }

// Capabilities implements cronium.Engine: cold runs only.
func (e *scriptedEngine) Capabilities() cronium.Capabilities {
	return cronium.Capabilities{Name: "scripted", Networks: []cronium.NetworkMode{cronium.NetworkNone}}
}

func setup(t *testing.T) (*sqlite.Store, *scriptedEngine, *Dispatcher) {
	st, eng, d, _ := setupAt(t)
	return st, eng, d
}

func setupAt(t *testing.T) (*sqlite.Store, *scriptedEngine, *Dispatcher, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "cronium.db")
	st, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	eng := &scriptedEngine{}
	d, err := New(Config{Store: st, Engine: eng, Node: "test", Poll: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return st, eng, d, path
}

// A failed run with a retry policy queues the next attempt, which runs.
func TestFailedRunIsRetried(t *testing.T) {
	st, eng, d := setup(t)
	ctx := context.Background()
	queue(t, st, cronium.Event{Name: "flaky", Language: cronium.Bash, Script: string(cronium.Failed),
		Retry: cronium.RetryPolicy{MaxAttempts: 2, Backoff: cronium.Duration(time.Second)}})
	start(t, d)
	deadline := time.Now().Add(10 * time.Second)
	for {
		xs, _ := st.Executions(ctx, sqlite.ExecutionFilter{Event: "flaky", Limit: 10})
		finished := 0
		for _, x := range xs {
			if x.Status == cronium.StatusFinished {
				finished++
			}
		}
		if finished == 2 {
			if xs[0].Attempt != 2 || xs[0].RetryOf != xs[1].ID || xs[0].Trigger != cronium.TriggerRetry {
				t.Errorf("the retry: %+v", xs[0])
			}
			if first, err := st.Execution(ctx, 0, xs[1].ID); err != nil || first.RetriedBy != xs[0].ID {
				t.Errorf("the first attempt does not point at its retry: %v %q", err, first.RetriedBy)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("executions %+v, want the failed run and its retry", xs)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(eng.runs) != 2 {
		t.Errorf("%d runs, want 2", len(eng.runs))
	}
}

// An execution cancelled while its sandbox is being made is cancelled, not
// an engine error, and so never retried.
func TestCancelWhileStartingIsNotRetried(t *testing.T) {
	st, eng, d := setup(t)
	ctx := context.Background()
	_, x := queue(t, st, cronium.Event{Name: "slow", Language: cronium.Bash, Script: "starting",
		Retry: cronium.RetryPolicy{MaxAttempts: 3, Backoff: cronium.Duration(time.Second), On: []cronium.Outcome{cronium.EngineError}}})
	start(t, d)
	deadline := time.Now().Add(10 * time.Second)
	for eng.started() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the execution never reached the engine")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := d.Cancel(ctx, x.ID, "cancelled by alice"); err != nil {
		t.Fatal(err)
	}
	for {
		got, _ := st.Execution(ctx, 0, x.ID)
		if got.Status == cronium.StatusFinished {
			if got.Outcome != cronium.Cancelled || got.Error != "cancelled by alice" {
				t.Errorf("got %s %q, want cancelled \"cancelled by alice\"", got.Outcome, got.Error)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still %s after the cancel", got.Status)
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // a retry would be queued by now
	if xs, _ := st.Executions(ctx, sqlite.ExecutionFilter{Event: "slow", Limit: 10}); len(xs) != 1 {
		t.Errorf("%d executions, want the cancelled one alone: %+v", len(xs), xs)
	}
}

// A user's tier that could not be read gives the free tier to that one
// decision, never for the life of the process.
func TestTierLookupFailureIsNotCached(t *testing.T) {
	st, _, d := setup(t)
	ctx := context.Background()
	u, _ := st.CreateUser(ctx, "bob", "pro", false)
	x := cronium.Execution{UserID: u.ID, User: "bob"}
	broken, cancel := context.WithCancel(ctx)
	cancel() // the store cannot answer
	if got := d.tierOf(broken, x); got.Name != "free" {
		t.Fatalf("a failed lookup gave %s, want free for this decision", got.Name)
	}
	if got := d.tierOf(ctx, x); got.Name != "pro" {
		t.Errorf("after a failed lookup the tier is %s, want pro: the failure was cached", got.Name)
	}
}

// Log chunks the store could not take are kept for the next flush and not
// published meanwhile: followers never see what the store lost.
func TestLogsAreKeptWhenTheStoreFails(t *testing.T) {
	st, _, d, path := setupAt(t)
	ctx := context.Background()
	_, x := queued(t, st)
	// The fault: a second connection to the same database makes log inserts fail.
	db := faults(t, path)
	if _, err := db.Exec(`CREATE TRIGGER fail_logs BEFORE INSERT ON logs BEGIN SELECT RAISE(FAIL, 'disk full'); END`); err != nil {
		t.Fatal(err)
	}
	sub, cancel := d.Hub().Subscribe(x.ID)
	defer cancel()
	sink := newLogSink(d, x.ID, 1<<20)
	sink.add(cronium.OutputChunk{Seq: 1, Stream: cronium.Stdout, Data: []byte("first\n")})
	if sink.flush() {
		t.Fatal("flush reported success while the store failed")
	}
	select {
	case c := <-sub:
		t.Fatalf("published %q that the store does not have", c.Data)
	case <-time.After(100 * time.Millisecond):
	}
	db.Exec(`DROP TRIGGER fail_logs`)
	sink.add(cronium.OutputChunk{Seq: 2, Stream: cronium.Stdout, Data: []byte("second\n")})
	if !sink.flush() {
		t.Fatal("flush failed after the store recovered")
	}
	for _, want := range []string{"first\n", "second\n"} {
		select {
		case c := <-sub:
			if string(c.Data) != want {
				t.Errorf("published %q, want %q", c.Data, want)
			}
		case <-time.After(time.Second):
			t.Fatalf("%q was not published", want)
		}
	}
	chunks, _ := st.Logs(ctx, x.ID, 0, 10)
	if len(chunks) != 2 || string(chunks[0].Data) != "first\n" {
		t.Errorf("stored %+v, want both chunks in order", chunks)
	}
}

// The event a retry is decided on is read again when the store fails for a
// moment: the retry is not dropped.
func TestRetryDecisionSurvivesAStoreHiccup(t *testing.T) {
	st, _, d, path := setupAt(t)
	ctx := context.Background()
	ev, _ := queued(t, st)
	// The fault: the events table is gone for a moment.
	db := faults(t, path)
	if _, err := db.Exec(`ALTER TABLE events RENAME TO events_away`); err != nil {
		t.Fatal(err)
	}
	back := time.AfterFunc(150*time.Millisecond, func() { db.Exec(`ALTER TABLE events_away RENAME TO events`) })
	defer back.Stop()
	got, err := d.eventForRetry(ctx, ev.ID)
	if err != nil || got.Name != "e" {
		t.Fatalf("eventForRetry across a store hiccup: %+v %v", got.Name, err)
	}
}

// queued stores alice's event "e" and one queued execution of it.
func queued(t *testing.T, st *sqlite.Store) (cronium.Event, cronium.Execution) {
	t.Helper()
	return queue(t, st, cronium.Event{Name: "e", Language: cronium.Bash, Script: "x"})
}

// queue stores ev as alice's and one queued execution of it.
func queue(t *testing.T, st *sqlite.Store, ev cronium.Event) (cronium.Event, cronium.Execution) {
	t.Helper()
	ctx := context.Background()
	u, err := st.CreateUser(ctx, "alice", "free", false)
	if err != nil {
		t.Fatal(err)
	}
	if err := ev.Normalize(cronium.DefaultTiers()["free"]); err != nil {
		t.Fatal(err)
	}
	if _, err := st.PutEvent(ctx, u.ID, &ev); err != nil {
		t.Fatal(err)
	}
	x := cronium.Execution{EventID: ev.ID, UserID: u.ID, Trigger: cronium.TriggerManual, Attempt: 1, QueuedAt: time.Now()}
	if _, err := st.Enqueue(ctx, &x, nil); err != nil {
		t.Fatal(err)
	}
	return ev, x
}

// start starts d until the test ends, and has it look at the queue.
func start(t *testing.T, d *Dispatcher) {
	t.Helper()
	ctx := context.Background()
	if err := d.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Stop(ctx) })
	d.Wake()
}

// faults opens a second connection to the store's database, for a test to
// break it (a trigger that fails, a table renamed) as a real fault would.
func faults(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// An engine that cannot re-attach: what this node was running when it
// stopped ends engine_error, saying so and naming the engine, and nothing
// is started twice.
func TestRecoveryOnAnEngineWithoutReattachSaysWhy(t *testing.T) {
	st, eng, d := setup(t)
	ctx := context.Background()
	_, x := queued(t, st)
	if ok, err := st.Claim(ctx, x.ID, "test", time.Now()); err != nil || !ok {
		t.Fatalf("claim: %v %v", ok, err)
	}
	start(t, d)
	got := finished(t, st, x.ID)
	if got.Outcome != cronium.EngineError || !strings.Contains(got.Error, "scripted engine cannot re-attach") {
		t.Errorf("outcome %s error %q, want engine_error naming the engine that cannot re-attach", got.Outcome, got.Error)
	}
	if n := eng.started(); n != 0 {
		t.Errorf("%d runs started: a recovered execution must not run again", n)
	}
}

// A warm strategy on an engine without warm sandboxes runs cold, and the
// execution says why.
func TestWarmStrategyOnAColdOnlyEngineSaysWhy(t *testing.T) {
	st, _, d := setup(t)
	_, x := queue(t, st, cronium.Event{Name: "warm", Language: cronium.Bash, Script: string(cronium.Succeeded), Strategy: cronium.StrategyPrewarmed})
	start(t, d)
	got := finished(t, st, x.ID)
	if got.Strategy != cronium.StrategyCold || !strings.Contains(got.StrategyReason, "the scripted engine has no warm sandboxes") {
		t.Errorf("strategy %s (%s), want cold, saying the engine has no warm sandboxes", got.Strategy, got.StrategyReason)
	}
}

// A network mode the engine does not enforce is never run without it: the
// execution fails, saying so.
func TestNetworkModeTheEngineCannotEnforceFails(t *testing.T) {
	st, eng, d := setup(t)
	_, x := queue(t, st, cronium.Event{Name: "net", Language: cronium.Bash, Script: string(cronium.Succeeded), Network: cronium.Net(cronium.NetworkEgress)})
	start(t, d)
	got := finished(t, st, x.ID)
	if got.Outcome != cronium.EngineError || !strings.Contains(got.Error, "scripted engine does not enforce the egress mode") {
		t.Errorf("outcome %s error %q, want engine_error saying the engine does not enforce egress", got.Outcome, got.Error)
	}
	if n := eng.started(); n != 0 {
		t.Errorf("%d runs started without the network policy", n)
	}
}

// finished waits up to 5s for execution id to finish and returns it.
func finished(t *testing.T, st *sqlite.Store, id string) cronium.Execution {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got, err := st.Execution(context.Background(), 0, id)
		if err != nil {
			t.Fatal(err)
		}
		if got.Status == cronium.StatusFinished {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("execution %s is %s after 5s", id, got.Status)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
