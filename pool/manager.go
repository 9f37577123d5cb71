package pool

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	cronium "github.com/cronium/executor"
)

// Manager holds pools by key, creating each on first use from its mode's
// template Config. Pools live until Stop. It is safe for concurrent use.
type Manager struct {
	templates map[Mode]Config

	mu      sync.Mutex // guards pools, retired and stopped
	pools   map[string]*Pool
	retired map[*Pool]bool // draining: out of pools, their runs still going
	stopped bool
	drains  sync.WaitGroup // one per retired pool, until it is drained

	bmu      sync.Mutex // guards live, evicting, reserved, waiters and maxTotal
	maxTotal int        // sandboxes of all pools together; 0: no bound
	live     int
	evicting int           // evicted sandboxes whose budget unit is not back yet
	reserved int           // units freed by an eviction, kept for the runs that wait (refills may not take them)
	waiters  int           // runs waiting for a unit
	freed    chan struct{} // closed (and replaced) when a unit is released
}

// LimitTotal bounds the sandboxes of all pools together (the node's
// capacity). A run that needs a new sandbox at the bound evicts another
// pool's oldest idle one, or waits; a background refill at the bound does
// not evict and retries later. Call it before the first Run.
func (m *Manager) LimitTotal(n int) {
	m.bmu.Lock()
	defer m.bmu.Unlock()
	m.maxTotal = n
}

// budgeted wraps a factory so every sandbox holds one unit of the budget
// from its creation until it is closed.
func (m *Manager) budgeted(self *Pool, f Factory) Factory {
	return func(ctx context.Context) (Sandbox, error) {
		if err := m.acquireUnit(ctx, self); err != nil {
			return nil, err
		}
		sb, err := f(ctx)
		if err != nil || sb == nil {
			m.release()
			return sb, err
		}
		return &budgetedSandbox{Sandbox: sb, release: m.release}, nil
	}
}

// acquireUnit takes one unit of the budget. A refill takes a free unit or
// fails; a run takes a unit an eviction freed for it, or a free one, or
// evicts an idle sandbox (another pool's first) and waits for its unit.
func (m *Manager) acquireUnit(ctx context.Context, self *Pool) error {
	refill := IsRefill(ctx)
	m.bmu.Lock()
	if m.maxTotal <= 0 || m.live < m.maxTotal {
		m.live++
		m.bmu.Unlock()
		return nil
	}
	if refill {
		m.bmu.Unlock()
		return errors.New("the node's sandbox budget is full")
	}
	m.waiters++
	m.bmu.Unlock()
	defer func() {
		m.bmu.Lock()
		m.waiters--
		m.settleLocked()
		m.bmu.Unlock()
	}()
	for {
		m.bmu.Lock()
		if m.reserved > 0 { // a unit an eviction freed for a run: already counted in live
			m.reserved--
			m.bmu.Unlock()
			return nil
		}
		if m.live < m.maxTotal {
			m.live++
			m.bmu.Unlock()
			return nil
		}
		evict := m.evicting == 0 // an eviction in flight already frees a unit: wait for it
		if evict {
			// Counted before it happens: its close may release the unit before evictOther returns.
			m.evicting++
		}
		if m.freed == nil {
			m.freed = make(chan struct{})
		}
		freed := m.freed
		m.bmu.Unlock()
		if evict && !m.evictOther(self) {
			m.bmu.Lock()
			if m.evicting > 0 {
				m.evicting--
			}
			m.bmu.Unlock()
		}
		// Woken by the next release; the timer only covers an eviction
		// that found nothing to close while every sandbox is busy.
		t := time.NewTimer(time.Second)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-freed:
		case <-t.C:
		}
		t.Stop()
	}
}

// settleLocked frees reserved units no run waits for any more. m.bmu is held.
func (m *Manager) settleLocked() {
	for m.reserved > m.waiters {
		m.reserved--
		m.live--
	}
}

func (m *Manager) release() {
	m.bmu.Lock()
	defer m.bmu.Unlock()
	if m.freed != nil {
		close(m.freed) // wake the runs waiting for a unit
		m.freed = nil
	}
	if m.evicting > 0 {
		m.evicting--
		if m.waiters > 0 {
			m.reserved++ // handed to a waiting run: it stays counted in live
			return
		}
	}
	m.live--
}

// evictOther closes an idle sandbox of another pool or, failing that, of
// self: a run of self may be waiting for a unit that self's own idle
// sandboxes hold (a prewarmed pool refilled while the run was starting).
func (m *Manager) evictOther(self *Pool) bool {
	m.mu.Lock()
	pools := make([]*Pool, 0, len(m.pools))
	for _, p := range m.pools {
		if p != self {
			pools = append(pools, p)
		}
	}
	m.mu.Unlock()
	if self != nil {
		pools = append(pools, self)
	}
	for _, p := range pools {
		if p.evictIdle() {
			return true
		}
	}
	return false
}

// Live returns how many sandboxes all pools hold together.
func (m *Manager) Live() int {
	m.bmu.Lock()
	defer m.bmu.Unlock()
	return m.live
}

// budgetedSandbox gives its unit of the budget back when closed.
type budgetedSandbox struct {
	Sandbox
	once    sync.Once
	release func()
}

// Close closes the sandbox and releases its budget.
func (b *budgetedSandbox) Close() {
	b.Sandbox.Close()
	b.once.Do(b.release)
}

// NewManager returns a manager whose pools take Min, Max, IdleTimeout,
// MaxRuns, MaxAge, Logger and Clock from templates[mode]; a mode without a
// template gets the Config defaults. Name, Mode and Factory of a template
// are ignored.
func NewManager(templates map[Mode]Config) *Manager {
	t := make(map[Mode]Config, len(templates))
	for mode, cfg := range templates {
		t[mode] = cfg
	}
	return &Manager{templates: t, pools: map[string]*Pool{}}
}

// Run runs spec in the pool for key, creating and starting the pool on
// first use with factory and the mode's template (its Name is key). Later
// calls for the same key use the pool's first factory. A key already used
// with another mode, or a bad template, gives an engine_error result.
func (m *Manager) Run(ctx context.Context, mode Mode, key string, factory Factory, spec cronium.Spec) (cronium.Result, bool) {
	for attempt := 0; ; attempt++ {
		p, err := m.pool(mode, key, factory)
		if err != nil {
			now := time.Now()
			return cronium.Result{ID: spec.ID, Outcome: cronium.EngineError, ExitCode: -1, Error: err.Error(),
				Image: spec.Image, StartedAt: now, EndedAt: now}, false
		}
		res, hit, err := p.run(ctx, spec)
		// A pool retired between finding it and getting a sandbox: the
		// key's new pool serves the run.
		if errors.Is(err, ErrStopped) && attempt < 3 && ctx.Err() == nil {
			m.mu.Lock()
			stopped := m.stopped
			m.mu.Unlock()
			if !stopped {
				continue
			}
		}
		return res, hit
	}
}

// pool finds or creates the pool for key.
func (m *Manager) pool(mode Mode, key string, factory Factory) (*Pool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.stopped {
		return nil, fmt.Errorf("pool %q: %w", key, ErrStopped)
	}
	if p, ok := m.pools[key]; ok {
		if p.cfg.Mode != mode {
			return nil, fmt.Errorf("pool %q is a %s pool, not %s", key, p.cfg.Mode, mode)
		}
		return p, nil
	}
	cfg := m.templates[mode]
	cfg.Name, cfg.Mode = key, mode
	var p *Pool
	cfg.Factory = func(ctx context.Context) (Sandbox, error) { return m.budgeted(p, factory)(ctx) }
	p, err := New(cfg)
	if err != nil {
		return nil, err
	}
	if err := p.Start(context.Background()); err != nil {
		return nil, err
	}
	m.pools[key] = p
	return p, nil
}

// Stats returns a snapshot of every pool, sorted by name.
func (m *Manager) Stats() []Stats {
	m.mu.Lock()
	pools := make([]*Pool, 0, len(m.pools))
	for _, p := range m.pools {
		pools = append(pools, p)
	}
	m.mu.Unlock()
	out := make([]Stats, 0, len(pools))
	for _, p := range pools {
		out = append(out, p.Stats())
	}
	slices.SortFunc(out, func(a, b Stats) int { return cmp.Compare(a.Name, b.Name) })
	return out
}

// Retire takes the pools whose key matches out of service, e.g. those of
// an image that an update replaced: the next run of such a key gets a new
// pool. A retired pool closes its idle sandboxes at once and each busy
// one when its run ends; runs are never interrupted. It returns how many
// pools it retired.
func (m *Manager) Retire(match func(key string) bool) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.stopped {
		return 0
	}
	n := 0
	for key, p := range m.pools {
		if !match(key) {
			continue
		}
		delete(m.pools, key)
		if m.retired == nil {
			m.retired = map[*Pool]bool{}
		}
		m.retired[p] = true
		n++
		m.drains.Go(func() {
			if err := p.Stop(context.Background()); err != nil {
				p.log.Warn("drain a retired pool", "pool", key, "err", err)
			}
			m.mu.Lock()
			delete(m.retired, p)
			m.mu.Unlock()
		})
	}
	return n
}

// RetireUnused retires the pools that served no run for maxIdle (a pool
// per user and spec would otherwise keep its warm sandboxes forever, also
// for deleted events). It returns how many it retired. Call it
// periodically; a run for a retired key later gets a new pool.
func (m *Manager) RetireUnused(maxIdle time.Duration) int {
	m.mu.Lock()
	stale := map[string]bool{}
	for key, p := range m.pools {
		last, busy := p.unusedSince()
		if !busy && p.cfg.Clock().Sub(last) >= maxIdle {
			stale[key] = true
		}
	}
	m.mu.Unlock()
	return m.Retire(func(key string) bool { return stale[key] })
}

// Stop stops every pool in parallel (see Pool.Stop), retired ones too,
// and refuses new runs. Safe to call more than once.
func (m *Manager) Stop(ctx context.Context) error {
	m.mu.Lock()
	m.stopped = true
	pools := make([]*Pool, 0, len(m.pools)+len(m.retired))
	for _, p := range m.pools {
		pools = append(pools, p)
	}
	for p := range m.retired {
		pools = append(pools, p)
	}
	m.mu.Unlock()
	errs := make([]error, len(pools))
	var wg sync.WaitGroup
	for i, p := range pools {
		wg.Go(func() {
			if err := p.Stop(ctx); err != nil {
				errs[i] = fmt.Errorf("pool %q: %w", p.cfg.Name, err)
			}
		})
	}
	wg.Wait()
	// The retired pools' drains end with their pools, stopped above.
	drained := make(chan struct{})
	go func() {
		m.drains.Wait()
		close(drained)
	}()
	select {
	case <-drained:
	case <-ctx.Done():
		errs = append(errs, fmt.Errorf("retired pools still draining: %w", ctx.Err()))
	}
	return errors.Join(errs...)
}
