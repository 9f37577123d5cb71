package docker

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	cronium "github.com/cronium/executor"
	"github.com/cronium/executor/pool"
)

// countingFactory makes real sandboxes and counts how many are alive at once.
type countingFactory struct {
	template      cronium.Spec
	live, maxLive atomic.Int64
}

type countedSandbox struct {
	cronium.Sandbox
	f    *countingFactory
	once sync.Once
}

func (c *countedSandbox) Close() {
	c.once.Do(func() { c.f.live.Add(-1) })
	c.Sandbox.Close()
}

func (f *countingFactory) new(ctx context.Context) (pool.Sandbox, error) {
	sb, err := testEngine().NewSandbox(ctx, f.template, time.Minute)
	if err != nil {
		return nil, err
	}
	n := f.live.Add(1)
	for {
		m := f.maxLive.Load()
		if n <= m || f.maxLive.CompareAndSwap(m, n) {
			break
		}
	}
	return &countedSandbox{Sandbox: sb, f: f}, nil
}

func TestPoolsUnderABurstOfOneHundred(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	m := pool.NewManager(map[pool.Mode]pool.Config{
		pool.Prewarmed: {Mode: pool.Prewarmed, Min: 1, Max: 3},
		pool.Reuse:     {Mode: pool.Reuse, Min: 1, Max: 3},
	})
	defer m.Stop(ctx)
	for _, mode := range []pool.Mode{pool.Prewarmed, pool.Reuse} {
		f := &countingFactory{template: cronium.Spec{Language: cronium.Bash}}
		var wg sync.WaitGroup
		var mu sync.Mutex
		containers := map[string]int{}
		failed := 0
		for i := 0; i < 100; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				res, _ := m.Run(ctx, mode, "burst/"+string(mode), f.new, cronium.Spec{ID: NewID(), Language: cronium.Bash, Script: []byte("echo hi")})
				mu.Lock()
				defer mu.Unlock()
				if res.Outcome != cronium.Succeeded {
					failed++
					t.Logf("%s: %s %s", mode, res.Outcome, res.Error)
				}
				containers[res.Container]++
			}()
		}
		wg.Wait()
		if failed > 0 {
			t.Errorf("%s: %d of 100 runs failed", mode, failed)
		}
		if n := f.maxLive.Load(); n > 3 {
			t.Errorf("%s: %d sandboxes alive at once, above the pool's max of 3", mode, n)
		}
		for c, n := range containers {
			if mode == pool.Prewarmed && n > 1 {
				t.Errorf("prewarmed sandbox %.12s served %d runs: must be used once", c, n)
			}
		}
		if mode == pool.Reuse && len(containers) > 50 {
			t.Errorf("reuse: 100 runs used %d sandboxes: hardly reused", len(containers))
		}
		t.Logf("%s: 100 runs, %d sandboxes, at most %d alive at once", mode, len(containers), f.maxLive.Load())
	}
}

func TestReusePoolsAreNeverShared(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	m := pool.NewManager(map[pool.Mode]pool.Config{pool.Reuse: {Mode: pool.Reuse, Min: 1, Max: 2}})
	defer m.Stop(ctx)
	f := &countingFactory{template: cronium.Spec{Language: cronium.Bash}}
	seen := map[string]string{}
	for i := 0; i < 6; i++ {
		for _, user := range []string{"alice", "bob"} {
			res, _ := m.Run(ctx, pool.Reuse, "reuse/"+user+"/bash", f.new, cronium.Spec{ID: NewID(), Language: cronium.Bash, Script: []byte("echo hi")})
			if res.Outcome != cronium.Succeeded {
				t.Fatalf("%s: %s %s", user, res.Outcome, res.Error)
			}
			if other, ok := seen[res.Container]; ok && other != user {
				t.Fatalf("container %.12s served both %s and %s", res.Container, other, user)
			}
			seen[res.Container] = user
		}
	}
}
