package pool

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	cronium "github.com/cronium/executor"
)

// fakeFactory makes fake sandboxes and counts them. A sandbox is live from
// the moment its creation starts until Close (or a failed creation).
type fakeFactory struct {
	createDelay time.Duration
	runDelay    time.Duration

	live, maxLive atomic.Int64
	calls         atomic.Int64 // factory calls
	seq           atomic.Int64
	fail          atomic.Bool // creations fail
	failReset     atomic.Bool // Reset fails

	mu         sync.Mutex
	ids        []string
	violations []string // double close, concurrent run, run while dirty or closed
}

func newFake() *fakeFactory {
	return &fakeFactory{createDelay: 20 * time.Millisecond, runDelay: 3 * time.Millisecond}
}

func (f *fakeFactory) violate(format string, args ...any) {
	f.mu.Lock()
	f.violations = append(f.violations, fmt.Sprintf(format, args...))
	f.mu.Unlock()
}

func (f *fakeFactory) check(t *testing.T) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, v := range f.violations {
		t.Error(v)
	}
}

func (f *fakeFactory) New(ctx context.Context) (Sandbox, error) {
	f.calls.Add(1)
	n := f.live.Add(1)
	for {
		m := f.maxLive.Load()
		if n <= m || f.maxLive.CompareAndSwap(m, n) {
			break
		}
	}
	select {
	case <-time.After(f.createDelay):
	case <-ctx.Done():
		f.live.Add(-1)
		return nil, ctx.Err()
	}
	if f.fail.Load() {
		f.live.Add(-1)
		return nil, errors.New("boom: docker is down")
	}
	id := fmt.Sprintf("sbx-%d", f.seq.Add(1))
	f.mu.Lock()
	f.ids = append(f.ids, id)
	f.mu.Unlock()
	return &fakeSandbox{f: f, id: id}, nil
}

type fakeSandbox struct {
	f      *fakeFactory
	id     string
	inRun  atomic.Int32
	dirty  atomic.Bool // ran since the last successful Reset
	closed atomic.Bool
}

func (s *fakeSandbox) ID() string { return s.id }

// Run sleeps runDelay (or Env["SLEEP"]) and ends with Env["OUTCOME"].
func (s *fakeSandbox) Run(ctx context.Context, spec cronium.Spec) cronium.Result {
	if s.inRun.Add(1) > 1 {
		s.f.violate("%s: two runs at once", s.id)
	}
	defer s.inRun.Add(-1)
	if s.dirty.Swap(true) {
		s.f.violate("%s: run without a Reset since the last run", s.id)
	}
	if s.closed.Load() {
		s.f.violate("%s: run after Close", s.id)
	}
	res := cronium.Result{ID: spec.ID, Container: s.id, Outcome: cronium.Succeeded, StartedAt: time.Now()}
	d := s.f.runDelay
	if v, ok := spec.Env["SLEEP"]; ok {
		d, _ = time.ParseDuration(v)
	}
	select {
	case <-time.After(d):
		if o := spec.Env["OUTCOME"]; o != "" {
			res.Outcome = cronium.Outcome(o)
		}
		if s.closed.Load() {
			res.Outcome, res.Error = cronium.EngineError, "sandbox closed under the run"
		}
	case <-ctx.Done():
		res.Outcome = cronium.Cancelled
	}
	res.EndedAt = time.Now()
	res.Phases.Run = res.EndedAt.Sub(res.StartedAt)
	return res
}

func (s *fakeSandbox) Reset(ctx context.Context) error {
	if s.f.failReset.Load() {
		return errors.New("not clean: /tmp/leftover")
	}
	s.dirty.Store(false)
	return nil
}

// Pause implements cronium.Sandbox: a fake cannot freeze.
func (s *fakeSandbox) Pause(context.Context) error { return cronium.ErrUnsupported }

func (s *fakeSandbox) Close() {
	if s.closed.Swap(true) {
		s.f.violate("%s: closed twice", s.id)
		return
	}
	s.f.live.Add(-1)
}

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fakeClock { return &fakeClock{t: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// noLeak records the goroutine count and, at cleanup, checks it comes back.
func noLeak(t *testing.T) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(2 * time.Second)
		for runtime.NumGoroutine() > before {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<16)
				t.Errorf("goroutine leak: %d before, %d after\n%s", before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	})
}

func newPool(t *testing.T, cfg Config) *Pool {
	t.Helper()
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func stop(t *testing.T, p *Pool, f *fakeFactory) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if n := f.live.Load(); n != 0 {
		t.Errorf("%d sandboxes live after Stop", n)
	}
	if s := p.Stats(); s.Size != 0 {
		t.Errorf("stats after Stop: %+v", s)
	}
	f.check(t)
}

func spec(id string, env ...string) cronium.Spec {
	s := cronium.Spec{ID: id, Language: cronium.Bash, Script: []byte("true"), Env: map[string]string{}}
	for i := 0; i+1 < len(env); i += 2 {
		s.Env[env[i]] = env[i+1]
	}
	return s
}

func TestNewValidates(t *testing.T) {
	f := newFake()
	for _, cfg := range []Config{
		{Mode: Reuse},
		{Mode: "cold", Factory: f.New},
		{Mode: Reuse, Factory: f.New, Min: 5, Max: 2},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v) = nil error", cfg)
		}
	}
	p := newPool(t, Config{Mode: Prewarmed, Factory: f.New})
	s := p.Stats()
	if s.Min != DefaultMin || s.Max != DefaultMax || p.cfg.IdleTimeout != DefaultIdleTimeout || p.cfg.MaxRuns != DefaultMaxRuns || p.cfg.MaxAge != DefaultMaxAge {
		t.Errorf("defaults not applied: %+v %+v", s, p.cfg)
	}
	if p := newPool(t, Config{Mode: Reuse, Factory: f.New, Min: -1}); p.cfg.Min != 0 {
		t.Errorf("Min -1 gave %d, want 0", p.cfg.Min)
	}
}

func TestBurst(t *testing.T) {
	for _, mode := range []Mode{Prewarmed, Reuse} {
		t.Run(string(mode), func(t *testing.T) {
			noLeak(t)
			f := newFake()
			p := newPool(t, Config{Name: "burst", Mode: mode, Min: 1, Max: 4, Factory: f.New})
			if err := p.Start(context.Background()); err != nil {
				t.Fatal(err)
			}
			const n = 100
			var wg sync.WaitGroup
			results := make([]cronium.Result, n)
			for i := range n {
				wg.Go(func() {
					results[i], _ = p.Run(context.Background(), spec(fmt.Sprint("x", i)))
				})
			}
			wg.Wait()
			seen := map[string]bool{}
			for i, r := range results {
				if r.Outcome != cronium.Succeeded {
					t.Errorf("run %d: %s %s", i, r.Outcome, r.Error)
				}
				if mode == Prewarmed && seen[r.Container] {
					t.Errorf("prewarmed sandbox %s used twice", r.Container)
				}
				seen[r.Container] = true
			}
			if m := f.maxLive.Load(); m > 4 {
				t.Errorf("max live sandboxes %d > Max 4", m)
			}
			s := p.Stats()
			if s.Size > s.Max || s.InUse != 0 || s.Runs != n || s.Hits+s.Misses != n || s.Size != s.Idle+s.InUse+s.Creating+s.Closing {
				t.Errorf("inconsistent stats: %+v", s)
			}
			if mode == Prewarmed && s.Created < n {
				t.Errorf("prewarmed created %d sandboxes for %d runs", s.Created, n)
			}
			if mode == Reuse && s.Created > 8 {
				t.Errorf("reuse created %d sandboxes for %d runs", s.Created, n)
			}
			stop(t, p, f)
		})
	}
}

func TestPrewarmed(t *testing.T) {
	noLeak(t)
	f := newFake()
	p := newPool(t, Config{Name: "pw", Mode: Prewarmed, Min: 2, Max: 4, Factory: f.New})
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Second, "Min idle sandboxes", func() bool { return p.Stats().Idle == 2 })

	res, hit := p.Run(context.Background(), spec("first"))
	if !hit || res.Outcome != cronium.Succeeded {
		t.Errorf("first run after warm-up: hit %v, %s %s", hit, res.Outcome, res.Error)
	}
	if res.Phases.Start < 0 || res.Phases.Start > 10*time.Millisecond {
		t.Errorf("Phases.Start of a hit = %v", res.Phases.Start)
	}
	seen := map[string]bool{res.Container: true}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range 3 {
		wg.Go(func() {
			for j := range 10 {
				r, _ := p.Run(context.Background(), spec(fmt.Sprint(i, "-", j)))
				mu.Lock()
				if seen[r.Container] {
					t.Errorf("sandbox %s served two runs", r.Container)
				}
				seen[r.Container] = true
				mu.Unlock()
				time.Sleep(15 * time.Millisecond)
			}
		})
	}
	wg.Wait()
	waitFor(t, time.Second, "refill to Min", func() bool { s := p.Stats(); return s.Idle == 2 && s.Closing == 0 })
	s := p.Stats()
	if s.Hits < 2 || s.Runs != 31 || s.Recycled != 31 || s.Created != s.Recycled+int64(s.Size) {
		t.Errorf("stats: %+v", s)
	}
	if m := f.maxLive.Load(); m > 4 {
		t.Errorf("max live %d > 4", m)
	}
	stop(t, p, f)
}

func TestReuseSameSandbox(t *testing.T) {
	noLeak(t)
	f := newFake()
	p := newPool(t, Config{Name: "reuse/alice", Mode: Reuse, Min: 1, Max: 2, MaxRuns: 3, Factory: f.New})
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Second, "warm-up", func() bool { return p.Stats().Idle == 1 })
	var ids []string
	for i := range 7 {
		r, hit := p.Run(context.Background(), spec(fmt.Sprint(i)))
		if r.Outcome != cronium.Succeeded {
			t.Fatalf("run %d: %s %s", i, r.Outcome, r.Error)
		}
		if i == 0 && !hit {
			t.Error("first run after warm-up was a miss")
		}
		ids = append(ids, r.Container)
	}
	// Runs 0-2 share a sandbox, 3-5 another, 6 a third (MaxRuns 3).
	if ids[0] != ids[1] || ids[1] != ids[2] || ids[3] != ids[4] || ids[4] != ids[5] || ids[2] == ids[3] || ids[5] == ids[6] {
		t.Errorf("containers %v: want groups of 3", ids)
	}
	if s := p.Stats(); s.Recycled != 2 || s.Runs != 7 {
		t.Errorf("stats: %+v", s)
	}
	stop(t, p, f)
}

func TestReuseRecycles(t *testing.T) {
	cases := []struct {
		name    string
		outcome cronium.Outcome
		reset   bool // Reset fails
		recycle bool
	}{
		{"succeeded", cronium.Succeeded, false, false},
		{"failed", cronium.Failed, false, false},
		{"reset error", cronium.Succeeded, true, true},
		{"oom", cronium.OOMKilled, false, true},
		{"timeout", cronium.TimedOut, false, true},
		{"engine error", cronium.EngineError, false, true},
		{"cancelled", cronium.Cancelled, false, true},
		{"output limit", cronium.OutputLimit, false, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			noLeak(t)
			f := newFake()
			p := newPool(t, Config{Mode: Reuse, Min: -1, Max: 2, Factory: f.New})
			first, _ := p.Run(context.Background(), spec("a"))
			f.failReset.Store(c.reset)
			second, _ := p.Run(context.Background(), spec("b", "OUTCOME", string(c.outcome)))
			f.failReset.Store(false)
			third, _ := p.Run(context.Background(), spec("c"))
			if first.Container != second.Container {
				t.Errorf("second run not in the first sandbox")
			}
			if recycled := second.Container != third.Container; recycled != c.recycle {
				t.Errorf("recycled = %v, want %v", recycled, c.recycle)
			}
			if s := p.Stats(); (s.Recycled == 1) != c.recycle {
				t.Errorf("stats: %+v", s)
			}
			waitFor(t, time.Second, "recycled sandbox closed", func() bool { return f.live.Load() == 1 })
			stop(t, p, f)
		})
	}
}

func TestReuseMaxAge(t *testing.T) {
	noLeak(t)
	f := newFake()
	clock := newClock()
	p := newPool(t, Config{Mode: Reuse, Min: -1, Max: 2, MaxAge: time.Minute, Clock: clock.Now, Factory: f.New})
	a, _ := p.Run(context.Background(), spec("a"))
	clock.Advance(30 * time.Second)
	b, hit := p.Run(context.Background(), spec("b"))
	if a.Container != b.Container || !hit {
		t.Fatalf("young sandbox not reused: %s then %s (hit %v)", a.Container, b.Container, hit)
	}
	clock.Advance(31 * time.Second)
	c, hit := p.Run(context.Background(), spec("c"))
	if c.Container == a.Container || hit {
		t.Errorf("old sandbox reused: %s (hit %v)", c.Container, hit)
	}
	if s := p.Stats(); s.Recycled != 1 {
		t.Errorf("stats: %+v", s)
	}

	// The reaper recycles idle sandboxes past MaxAge too, and the refill replaces them.
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	clock.Advance(2 * time.Minute)
	waitFor(t, 3*time.Second, "reaper to recycle the old idle sandbox", func() bool { return p.Stats().Recycled == 2 })
	stop(t, p, f)
}

func TestIdleTimeout(t *testing.T) {
	noLeak(t)
	f := newFake()
	clock := newClock()
	p := newPool(t, Config{Mode: Reuse, Min: 1, Max: 4, IdleTimeout: 40 * time.Millisecond, Clock: clock.Now, Factory: f.New})
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() { p.Run(context.Background(), spec(fmt.Sprint(i), "SLEEP", "50ms")) })
	}
	wg.Wait()
	if s := p.Stats(); s.Idle != 4 {
		t.Fatalf("want 4 idle after 4 concurrent runs: %+v", s)
	}
	time.Sleep(100 * time.Millisecond) // real time passes, the fake clock does not
	if s := p.Stats(); s.Idle != 4 {
		t.Fatalf("reaped without the clock moving: %+v", s)
	}
	clock.Advance(time.Minute)
	waitFor(t, time.Second, "idle sandboxes above Min reaped", func() bool { return p.Stats().Idle == 1 })
	clock.Advance(time.Minute)
	time.Sleep(100 * time.Millisecond)
	if s := p.Stats(); s.Idle != 1 || s.Size != 1 || s.Recycled != 3 {
		t.Errorf("want Min kept: %+v", s)
	}
	waitFor(t, time.Second, "reaped sandboxes closed", func() bool { return f.live.Load() == 1 })
	stop(t, p, f)
}

func TestFactoryFailure(t *testing.T) {
	noLeak(t)
	f := newFake()
	f.fail.Store(true)
	p := newPool(t, Config{Mode: Prewarmed, Min: 2, Max: 2, Factory: f.New})
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		began := time.Now()
		r, hit := p.Run(context.Background(), spec(fmt.Sprint(i)))
		if r.Outcome != cronium.EngineError || !strings.Contains(r.Error, "boom") || hit {
			t.Errorf("run %d: %s %q hit %v", i, r.Outcome, r.Error, hit)
		}
		if d := time.Since(began); d > 500*time.Millisecond {
			t.Errorf("run %d took %v", i, d)
		}
	}
	waitFor(t, time.Second, "size back to 0", func() bool { return p.Stats().Size == 0 })
	// The refill backs off: no retry storm.
	calls := f.calls.Load()
	time.Sleep(300 * time.Millisecond)
	if n := f.calls.Load() - calls; n > 2 {
		t.Errorf("%d factory calls in 300ms while backing off", n)
	}
	if s := p.Stats(); s.Created != 0 || s.Misses != 3 {
		t.Errorf("stats: %+v", s)
	}
	// Runs work again once the factory does.
	f.fail.Store(false)
	if r, _ := p.Run(context.Background(), spec("ok")); r.Outcome != cronium.Succeeded {
		t.Errorf("after recovery: %s %s", r.Outcome, r.Error)
	}
	waitFor(t, time.Second, "refill after recovery", func() bool { return p.Stats().Idle == 2 })
	stop(t, p, f)
}

func TestCancelWhileWaiting(t *testing.T) {
	noLeak(t)
	f := newFake()
	p := newPool(t, Config{Mode: Reuse, Min: 1, Max: 1, Factory: f.New})
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	longCtx, cancelLong := context.WithCancel(context.Background())
	done := make(chan cronium.Result)
	go func() {
		r, _ := p.Run(longCtx, spec("long", "SLEEP", "10s"))
		done <- r
	}()
	waitFor(t, time.Second, "long run in progress", func() bool { return p.Stats().InUse == 1 })

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	began := time.Now()
	r, hit := p.Run(ctx, spec("waiter"))
	if r.Outcome != cronium.Cancelled || hit || r.ID != "waiter" {
		t.Errorf("waiter: %s %q hit %v", r.Outcome, r.Error, hit)
	}
	if d := time.Since(began); d > 300*time.Millisecond {
		t.Errorf("cancelled waiter returned after %v", d)
	}
	if r.Phases.Start < 40*time.Millisecond {
		t.Errorf("Phases.Start %v, want the wait", r.Phases.Start)
	}
	if m := f.maxLive.Load(); m > 1 {
		t.Errorf("max live %d > 1", m)
	}
	cancelLong()
	if r := <-done; r.Outcome != cronium.Cancelled {
		t.Errorf("long run: %s", r.Outcome)
	}
	stop(t, p, f)
}

func TestStop(t *testing.T) {
	noLeak(t)
	f := newFake()
	p := newPool(t, Config{Mode: Prewarmed, Min: 2, Max: 4, Factory: f.New})
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Second, "warm-up", func() bool { return p.Stats().Idle == 2 })
	done := make(chan cronium.Result)
	go func() {
		r, _ := p.Run(context.Background(), spec("inflight", "SLEEP", "200ms"))
		done <- r
	}()
	waitFor(t, time.Second, "run in progress", func() bool { return p.Stats().InUse == 1 })

	began := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(began); d < 100*time.Millisecond {
		t.Errorf("Stop returned after %v, before the run in flight ended", d)
	}
	if r := <-done; r.Outcome != cronium.Succeeded {
		t.Errorf("in-flight run: %s %s", r.Outcome, r.Error)
	}
	if n := f.live.Load(); n != 0 {
		t.Errorf("%d sandboxes live after Stop", n)
	}
	r, _ := p.Run(context.Background(), spec("late"))
	if r.Outcome != cronium.EngineError || r.Error != "pool stopped" {
		t.Errorf("run after Stop: %s %q", r.Outcome, r.Error)
	}
	if err := p.Start(context.Background()); err == nil {
		t.Error("Start after Stop succeeded")
	}
	stop(t, p, f) // a second Stop is fine
}

func TestStopDeadline(t *testing.T) {
	noLeak(t)
	f := newFake()
	p := newPool(t, Config{Mode: Reuse, Min: 1, Max: 2, Factory: f.New})
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	done := make(chan cronium.Result)
	go func() {
		r, _ := p.Run(context.Background(), spec("stuck", "SLEEP", "300ms"))
		done <- r
	}()
	waitFor(t, time.Second, "run in progress", func() bool { return p.Stats().InUse == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	if err := p.Stop(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Stop = %v, want deadline exceeded", err)
	}
	if n := f.live.Load(); n != 0 {
		t.Errorf("%d sandboxes live after Stop closed the rest", n)
	}
	if r := <-done; r.Outcome != cronium.EngineError {
		t.Errorf("run whose sandbox was closed: %s", r.Outcome)
	}
	stop(t, p, f)
}

func TestWaitersGetReleasedSandbox(t *testing.T) {
	noLeak(t)
	f := newFake()
	p := newPool(t, Config{Mode: Reuse, Min: 1, Max: 1, Factory: f.New})
	var wg sync.WaitGroup
	var hits atomic.Int64
	for i := range 10 {
		wg.Go(func() {
			r, hit := p.Run(context.Background(), spec(fmt.Sprint(i)))
			if r.Outcome != cronium.Succeeded {
				t.Errorf("run %d: %s", i, r.Outcome)
			}
			if hit {
				hits.Add(1)
			}
		})
	}
	wg.Wait()
	s := p.Stats()
	if s.Created != 1 || s.Runs != 10 || s.Misses < 9 || s.Hits != hits.Load() {
		t.Errorf("stats: %+v (hits seen %d)", s, hits.Load())
	}
	stop(t, p, f)
}

func TestManager(t *testing.T) {
	noLeak(t)
	f := newFake()
	m := NewManager(map[Mode]Config{
		Prewarmed: {Min: 1, Max: 3},
		Reuse:     {Min: -1, Max: 2, MaxRuns: 5},
	})
	ctx := context.Background()
	r1, _ := m.Run(ctx, Reuse, "reuse/bob/bash", f.New, spec("1"))
	r2, hit := m.Run(ctx, Reuse, "reuse/bob/bash", f.New, spec("2"))
	if r1.Outcome != cronium.Succeeded || r1.Container != r2.Container || !hit {
		t.Errorf("reuse pool: %s %s / %s hit %v", r1.Outcome, r1.Container, r2.Container, hit)
	}
	r3, _ := m.Run(ctx, Prewarmed, "prewarmed/bash", f.New, spec("3"))
	if r3.Outcome != cronium.Succeeded || r3.Container == r1.Container {
		t.Errorf("prewarmed pool: %s %s", r3.Outcome, r3.Container)
	}
	if r, _ := m.Run(ctx, Prewarmed, "reuse/bob/bash", f.New, spec("4")); r.Outcome != cronium.EngineError {
		t.Errorf("mode mismatch: %s", r.Outcome)
	}
	stats := m.Stats()
	if len(stats) != 2 || stats[0].Name != "prewarmed/bash" || stats[1].Name != "reuse/bob/bash" {
		t.Fatalf("stats: %+v", stats)
	}
	if stats[0].Mode != Prewarmed || stats[0].Max != 3 || stats[1].Mode != Reuse || stats[1].Max != 2 || stats[1].Runs != 2 {
		t.Errorf("stats: %+v", stats)
	}
	waitFor(t, time.Second, "prewarmed refill", func() bool { return m.Stats()[0].Idle == 1 })

	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := m.Stop(sctx); err != nil {
		t.Fatal(err)
	}
	if err := m.Stop(sctx); err != nil {
		t.Fatal(err)
	}
	if n := f.live.Load(); n != 0 {
		t.Errorf("%d sandboxes live after Stop", n)
	}
	if r, _ := m.Run(ctx, Reuse, "reuse/new", f.New, spec("5")); r.Outcome != cronium.EngineError || !strings.Contains(r.Error, "pool stopped") {
		t.Errorf("run after Stop: %s %q", r.Outcome, r.Error)
	}
	f.check(t)
}

// A retired pool (its image replaced) closes its idle sandboxes at once,
// lets the run in progress end as it would have, and the next run of the
// key gets a new pool.
func TestRetire(t *testing.T) {
	noLeak(t)
	f := newFake()
	m := NewManager(map[Mode]Config{Prewarmed: {Min: 2, Max: 3}})
	ctx := context.Background()
	m.Run(ctx, Prewarmed, "prewarmed/bash@old", f.New, spec("1"))
	m.Run(ctx, Prewarmed, "prewarmed/python@other", f.New, spec("2"))
	waitFor(t, 2*time.Second, "both pools warm", func() bool {
		s := m.Stats()
		return len(s) == 2 && s[0].Idle == 2 && s[1].Idle == 2
	})
	long := make(chan cronium.Result, 1)
	go func() {
		r, _ := m.Run(ctx, Prewarmed, "prewarmed/bash@old", f.New, spec("long", "SLEEP", "300ms"))
		long <- r
	}()
	waitFor(t, time.Second, "the long run to start", func() bool { return m.Stats()[0].InUse == 1 })
	if n := m.Retire(func(key string) bool { return strings.HasSuffix(key, "@old") }); n != 1 {
		t.Fatalf("retired %d pools, want 1", n)
	}
	if s := m.Stats(); len(s) != 1 || s[0].Name != "prewarmed/python@other" {
		t.Errorf("pools after retire: %+v", s)
	}
	// The retired pool's idle sandbox goes at once: the live ones are the
	// other pool's 2 and the busy one.
	waitFor(t, time.Second, "idle sandboxes of the retired pool closed", func() bool { return f.live.Load() == 3 })
	if r := <-long; r.Outcome != cronium.Succeeded {
		t.Errorf("the run in the retired pool ended %s %q: retiring must not interrupt it", r.Outcome, r.Error)
	}
	waitFor(t, time.Second, "the busy sandbox closed after its run", func() bool { return f.live.Load() == 2 })
	r, hit := m.Run(ctx, Prewarmed, "prewarmed/bash@old", f.New, spec("3"))
	if r.Outcome != cronium.Succeeded || hit {
		t.Errorf("a run after retire: %s, hit %v (want a new pool: a miss)", r.Outcome, hit)
	}
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := m.Stop(sctx); err != nil {
		t.Fatal(err)
	}
	if n := f.live.Load(); n != 0 {
		t.Errorf("%d sandboxes live after Stop", n)
	}
	f.check(t)
}

// Pools that served no run for a while are retired (their warm sandboxes
// go); pools in use stay; a later run of a retired key gets a new pool.
func TestRetireUnused(t *testing.T) {
	noLeak(t)
	f := newFake()
	clock := newClock()
	m := NewManager(map[Mode]Config{Prewarmed: {Min: 1, Max: 2, Clock: clock.Now}})
	ctx := context.Background()
	m.Run(ctx, Prewarmed, "old", f.New, spec("1"))
	clock.Advance(20 * time.Minute)
	m.Run(ctx, Prewarmed, "recent", f.New, spec("2"))
	clock.Advance(15 * time.Minute)
	if n := m.RetireUnused(30 * time.Minute); n != 1 {
		t.Fatalf("retired %d pools, want 1 (old)", n)
	}
	if s := m.Stats(); len(s) != 1 || s[0].Name != "recent" {
		t.Errorf("pools left: %+v", s)
	}
	if r, _ := m.Run(ctx, Prewarmed, "old", f.New, spec("3")); r.Outcome != cronium.Succeeded {
		t.Errorf("a run of a retired key: %s %q", r.Outcome, r.Error)
	}
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := m.Stop(sctx); err != nil {
		t.Fatal(err)
	}
	if n := f.live.Load(); n != 0 {
		t.Errorf("%d sandboxes live after Stop", n)
	}
	f.check(t)
}

// A run waiting for a sandbox of a pool that is retired meanwhile (an image
// update) is served by the key's new pool: it never fails "pool stopped".
func TestRetireDoesNotFailWaitingRuns(t *testing.T) {
	noLeak(t)
	f := newFake()
	m := NewManager(map[Mode]Config{Prewarmed: {Min: -1, Max: 1}})
	ctx := context.Background()
	busy := make(chan cronium.Result, 1)
	go func() {
		r, _ := m.Run(ctx, Prewarmed, "bash#old/", f.New, spec("busy", "SLEEP", "300ms"))
		busy <- r
	}()
	waitFor(t, time.Second, "the first run to hold the only sandbox", func() bool {
		s := m.Stats()
		return len(s) == 1 && s[0].InUse == 1
	})
	waiting := make(chan cronium.Result, 1)
	go func() {
		r, _ := m.Run(ctx, Prewarmed, "bash#old/", f.New, spec("waiting"))
		waiting <- r
	}()
	time.Sleep(50 * time.Millisecond) // the second run waits for the sandbox
	m.Retire(func(string) bool { return true })
	for _, ch := range []chan cronium.Result{busy, waiting} {
		if r := <-ch; r.Outcome != cronium.Succeeded {
			t.Errorf("run %s ended %s %q across a retire", r.ID, r.Outcome, r.Error)
		}
	}
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := m.Stop(sctx); err != nil {
		t.Fatal(err)
	}
	f.check(t)
}
