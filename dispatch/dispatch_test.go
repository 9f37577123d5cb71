package dispatch

import (
	"context"
	"path/filepath"
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
	mu   sync.Mutex
	runs []cronium.Spec
}

func (e *scriptedEngine) Run(ctx context.Context, spec cronium.Spec) (cronium.Result, error) {
	e.mu.Lock()
	e.runs = append(e.runs, spec)
	e.mu.Unlock()
	now := time.Now()
	res := cronium.Result{ID: spec.ID, Outcome: cronium.Outcome(spec.Script), StartedAt: now, EndedAt: now}
	if res.Outcome != cronium.Succeeded {
		res.ExitCode = 1
	}
	return res, nil
}
func (e *scriptedEngine) GC(context.Context, time.Duration) (int, error) { return 0, nil }
func (e *scriptedEngine) Close() error                                   { return nil }

func setup(t *testing.T) (*sqlite.Store, *scriptedEngine, *Dispatcher) {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "cronium.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	eng := &scriptedEngine{}
	d, err := New(Config{Store: st, Engine: eng, Node: "test", Poll: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return st, eng, d
}

// A failed run with a retry policy queues the next attempt, which runs.
func TestFailedRunIsRetried(t *testing.T) {
	st, eng, d := setup(t)
	ctx := context.Background()
	u, _ := st.CreateUser(ctx, "alice", "free", false)
	ev := cronium.Event{Name: "flaky", Language: cronium.Bash, Script: string(cronium.Failed),
		Retry: cronium.RetryPolicy{MaxAttempts: 2, Backoff: cronium.Duration(time.Second)}}
	if err := ev.Normalize(cronium.DefaultTiers()["free"]); err != nil {
		t.Fatal(err)
	}
	st.PutEvent(ctx, u.ID, &ev)
	x := cronium.Execution{EventID: ev.ID, UserID: u.ID, Trigger: cronium.TriggerManual, Attempt: 1, QueuedAt: time.Now()}
	if _, err := st.Enqueue(ctx, &x, nil); err != nil {
		t.Fatal(err)
	}
	if err := d.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer d.Stop(ctx)
	d.Wake()
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
