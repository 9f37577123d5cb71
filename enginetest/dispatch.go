package enginetest

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	cronium "github.com/cronium/executor"
	"github.com/cronium/executor/dispatch"
	"github.com/cronium/executor/pool"
	"github.com/cronium/executor/sqlite"
)

// RunDispatcher runs the dispatcher with its pools on the engine under
// test: an execution of each strategy (cold, prewarmed, reuse) succeeds
// and records the strategy it ran with. Call it from a test of the
// engine's package, after Main.
func RunDispatcher(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	pools := pool.NewManager(map[pool.Mode]pool.Config{pool.Prewarmed: {Mode: pool.Prewarmed, Min: -1, Max: 2}, pool.Reuse: {Mode: pool.Reuse, Min: -1, Max: 2}})
	d, err := dispatch.New(dispatch.Config{Store: st, Engine: eng, Node: opts.NodeID, Poll: 20 * time.Millisecond, Pools: pools})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer func() {
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		d.Stop(sctx)
		pools.Stop(sctx)
	}()
	u, err := st.CreateUser(ctx, "alice", "free", false)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{}
	for _, strategy := range []string{"cold", "prewarmed", "reuse"} {
		ev := cronium.Event{Name: "e-" + strategy, Language: cronium.Python, Script: "print('ran', " + "'" + strategy + "')", Strategy: strategy}
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
		want[x.ID] = strategy
	}
	d.Wake()
	for id, strategy := range want {
		var x cronium.Execution
		for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			if x, err = st.Execution(ctx, 0, id); err != nil {
				t.Fatal(err)
			}
			if x.Status == cronium.StatusFinished || time.Now().After(deadline) {
				break
			}
		}
		if x.Status != cronium.StatusFinished || x.Outcome != cronium.Succeeded || x.Strategy != strategy {
			t.Errorf("%s: status %s outcome %s (%s) strategy %s (%s), want a %s success", id, x.Status, x.Outcome, x.Error, x.Strategy, x.StrategyReason, strategy)
		}
	}
}
