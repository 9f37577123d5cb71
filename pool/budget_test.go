package pool

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	cronium "github.com/cronium/executor"
)

// TestManagerBoundsAllPools: pools together never hold more sandboxes than
// the node's budget; a run evicts another pool's idle sandbox to get one.
func TestManagerBoundsAllPools(t *testing.T) {
	f := newFake()
	m := NewManager(map[Mode]Config{Reuse: {Min: 2, Max: 3, IdleTimeout: time.Hour}, Prewarmed: {Min: 2, Max: 3, IdleTimeout: time.Hour}})
	m.LimitTotal(2) // pool a alone fills it: the others must evict
	ctx := context.Background()
	// Pool a fills its Min of 2 in the background.
	if res, _ := m.Run(ctx, Reuse, "a", f.New, spec("x1")); res.Outcome != cronium.Succeeded {
		t.Fatalf("a: %+v", res)
	}
	waitFor(t, time.Second, "pool a to hold 2", func() bool { return m.Live() >= 2 })
	done := make(chan struct{})
	time.AfterFunc(20*time.Second, func() {
		select {
		case <-done:
		default:
			panic(fmt.Sprintf("runs did not get sandboxes: eviction does not work: live %d evicting %d reserved %d stats %+v", m.live, m.evicting, m.reserved, m.Stats()))
		}
	})
	defer close(done)
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			key := []string{"b", "c"}[i%2]
			if res, _ := m.Run(ctx, Prewarmed, key, f.New, spec("y")); res.Outcome != cronium.Succeeded {
				t.Errorf("%s: %s %s", key, res.Outcome, res.Error)
			}
		}(i)
	}
	wg.Wait()
	if got := f.maxLive.Load(); got > 2 {
		t.Errorf("%d sandboxes alive at once across pools, above the budget of 2", got)
	}
	if err := m.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if m.Live() != 0 {
		t.Errorf("%d sandboxes still counted after Stop", m.Live())
	}
}

type pausable struct {
	Sandbox
	paused *atomic.Int64
}

func (p pausable) Pause(context.Context) error { p.paused.Add(1); return nil }

func TestPauseIdle(t *testing.T) {
	f := newFake()
	var paused atomic.Int64
	factory := func(ctx context.Context) (Sandbox, error) {
		sb, err := f.New(ctx)
		if err != nil {
			return nil, err
		}
		return pausable{Sandbox: sb, paused: &paused}, nil
	}
	p, err := New(Config{Mode: Reuse, Min: 2, Max: 2, Factory: factory, PauseIdle: true})
	if err != nil {
		t.Fatal(err)
	}
	p.Start(context.Background())
	defer p.Stop(context.Background())
	waitFor(t, time.Second, "two idle sandboxes paused", func() bool { return paused.Load() >= 2 })
	if res, _ := p.Run(context.Background(), spec("x")); res.Outcome != cronium.Succeeded {
		t.Fatalf("%+v", res)
	}
	waitFor(t, time.Second, "the returned sandbox paused again", func() bool { return paused.Load() >= 3 })
}
