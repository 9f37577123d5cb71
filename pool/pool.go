package pool

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	cronium "github.com/cronium/executor"
)

// Sandbox is one warm sandbox: the engine contract's (cronium.Sandbox).
type Sandbox = cronium.Sandbox

// Factory creates and starts a sandbox (takes ~300 ms with Docker). It
// should give up when ctx is done.
type Factory func(ctx context.Context) (Sandbox, error)

// Mode is how a pool uses its sandboxes.
type Mode string

// Modes.
const (
	// Prewarmed sandboxes are started ahead of need and used once.
	Prewarmed Mode = "prewarmed"
	// Reuse sandboxes serve many runs of one user and spec, reset between runs.
	Reuse Mode = "reuse"
	// User sandboxes are reuse sandboxes dedicated to one user, whose
	// workspace persists between runs (the sandbox keeps it at reset); the
	// pool is usually Min 0, Max 1, so an idle user's sandbox shuts down.
	User Mode = "user"
)

// Defaults of Config.
const (
	DefaultMin         = 1                 // Config.Min
	DefaultMax         = 4                 // Config.Max
	DefaultIdleTimeout = 300 * time.Second // Config.IdleTimeout
	DefaultMaxRuns     = 100               // Config.MaxRuns
	DefaultMaxAge      = 10 * time.Minute  // Config.MaxAge
)

// Refill backoff after a failed creation, and the bound on Reset.
const (
	minBackoff   = time.Second
	maxBackoff   = 30 * time.Second
	resetTimeout = 30 * time.Second
)

// ErrStopped is the error of runs on a stopped pool.
var ErrStopped = errors.New("pool stopped")

// Config configures one pool. Zero fields take defaults.
type Config struct {
	// Name is for logs and stats, e.g. "reuse/alice/bash-256Mi-0.5cpu".
	Name string
	// Mode is Prewarmed or Reuse. Required.
	Mode Mode
	// Min is how many sandboxes are kept ready (idle) when possible.
	// Default 1; a negative value means none are kept.
	Min int
	// Max is the hard cap on sandboxes of this pool at any moment: idle,
	// in use, being created and being closed. Default 4.
	Max int
	// IdleTimeout: idle sandboxes above Min are closed after this. Default 300s.
	IdleTimeout time.Duration
	// MaxRuns (reuse): a sandbox is recycled after this many runs. Default 100.
	MaxRuns int
	// MaxAge (reuse): sandboxes older than this are recycled. Default 10m.
	MaxAge time.Duration
	// Factory creates sandboxes. Required.
	Factory Factory
	// Logger receives warnings (refill failures) and debug events. Default discards.
	Logger *slog.Logger
	// Clock tells the time for ages and idle timeouts. Default time.Now;
	// tests may fake it. Phases are always measured with the real clock.
	Clock func() time.Time
	// PauseIdle pauses idle sandboxes, so they hold no CPU while they
	// wait; the sandbox resumes itself when used. Set it only for an engine
	// whose capabilities include Pause.
	PauseIdle bool
}

// withDefaults fills zero fields and checks the rest.
func (c Config) withDefaults() (Config, error) {
	if c.Mode != Prewarmed && c.Mode != Reuse && c.Mode != User {
		return c, fmt.Errorf("pool %q: mode %q: want %q, %q or %q", c.Name, c.Mode, Prewarmed, Reuse, User)
	}
	if c.Factory == nil {
		return c, fmt.Errorf("pool %q: no factory", c.Name)
	}
	switch {
	case c.Min == 0:
		c.Min = DefaultMin
	case c.Min < 0:
		c.Min = 0
	}
	if c.Max <= 0 {
		c.Max = DefaultMax
	}
	if c.Min > c.Max {
		return c, fmt.Errorf("pool %q: min %d is above max %d", c.Name, c.Min, c.Max)
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.MaxRuns <= 0 {
		c.MaxRuns = DefaultMaxRuns
	}
	if c.MaxAge <= 0 {
		c.MaxAge = DefaultMaxAge
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Clock == nil {
		c.Clock = time.Now
	}
	return c, nil
}

// Stats is a snapshot of a pool.
type Stats struct {
	// Name is Config.Name.
	Name string `json:"name"`
	// Mode is Config.Mode.
	Mode Mode `json:"mode"`
	// Size is every sandbox of the pool: idle + in use + creating + closing. Never above Max.
	Size int `json:"size"`
	// Idle sandboxes are ready to serve.
	Idle int `json:"idle"`
	// InUse sandboxes are running (or resetting after) an execution.
	InUse int `json:"in_use"`
	// Creating sandboxes are being made by the Factory.
	Creating int `json:"creating"`
	// Closing sandboxes are being destroyed; they still count against Max.
	Closing int `json:"closing"`
	// Min is the effective Config.Min.
	Min int `json:"min"`
	// Max is the effective Config.Max.
	Max int `json:"max"`
	// Hits are runs served by a ready sandbox.
	Hits int64 `json:"hits"`
	// Misses are runs that had to wait for a sandbox to be created (or for
	// one to be released), including those that then failed to get one.
	Misses int64 `json:"misses"`
	// Created counts successful Factory calls.
	Created int64 `json:"created"`
	// Recycled counts sandboxes the pool closed because they could not serve
	// again: a prewarmed sandbox after its run; a reuse sandbox for age, runs,
	// anomaly or failed Reset; any idle sandbox at idle timeout. Sandboxes
	// closed by Stop are not counted.
	Recycled int64 `json:"recycled"`
	// Runs counts executions run in a sandbox.
	Runs int64 `json:"runs"`
}

// entry is one sandbox the pool owns.
type entry struct {
	sb        Sandbox
	created   time.Time // by Config.Clock
	idleSince time.Time // by Config.Clock
	runs      int
	closed    bool // Close was called (or is being called) by Stop
}

// Pool keeps warm sandboxes of one spec. It is safe for concurrent use.
type Pool struct {
	cfg Config
	log *slog.Logger

	bg     context.Context // background work; cancelled by Stop
	cancel context.CancelFunc
	kickCh chan struct{} // wakes the refiller
	wg     sync.WaitGroup

	mu        sync.Mutex
	cond      *sync.Cond // broadcast whenever idle, counts or stopped change, or a waiter's ctx ends
	idle      []*entry   // oldest idle first; runs take the newest
	busy      map[*entry]struct{}
	creating  int // all creations in flight
	refilling int // creations by the refill, a subset of creating
	closing   int
	started   bool
	stopped   bool
	backoff   time.Duration // refill backoff; 0 when the last creation worked
	retryAt   time.Time     // no refill before this (real clock)

	hits, misses, created, recycled, runs int64
	lastUse                               time.Time // of the last Run (Clock), or of Start
}

// New checks cfg, fills its defaults and returns a pool that is not started yet.
func New(cfg Config) (*Pool, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	p := &Pool{
		cfg:    cfg,
		log:    cfg.Logger.With("pool", cfg.Name, "mode", string(cfg.Mode)),
		kickCh: make(chan struct{}, 1),
		busy:   map[*entry]struct{}{},
	}
	p.bg, p.cancel = context.WithCancel(context.Background())
	p.cond = sync.NewCond(&p.mu)
	return p, nil
}

// Start fills the pool to Min in the background and starts the idle reaper.
// It returns at once. ctx is not retained: the background work lives until
// Stop. Run works without Start, but then nothing is prepared ahead of need
// and idle sandboxes are never reaped.
func (p *Pool) Start(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped {
		return ErrStopped
	}
	if p.started {
		return fmt.Errorf("pool %q already started", p.cfg.Name)
	}
	p.started = true
	p.lastUse = p.cfg.Clock()
	p.wg.Add(2)
	go p.refiller()
	go p.reaper()
	return nil
}

// Run acquires a sandbox (a ready one, else creates one if under Max, else
// waits for one to be released or created), runs spec in it, then returns
// it to the pool (reuse, after a clean Reset) or closes it (prewarmed:
// always; reuse: on recycle), refilling towards Min in the background.
//
// Result.Phases.Start is the time spent acquiring; in reuse mode the Reset
// time is added to Result.Phases.Cleanup. It reports whether the run was a
// hit (served by a ready sandbox without waiting). If no sandbox could be
// had, the result is engine_error (factory error, or "pool stopped"), or
// cancelled when ctx ended while waiting.
func (p *Pool) Run(ctx context.Context, spec cronium.Spec) (cronium.Result, bool) {
	res, hit, _ := p.run(ctx, spec)
	return res, hit
}

// run is Run, also returning the error of a run that got no sandbox.
func (p *Pool) run(ctx context.Context, spec cronium.Spec) (cronium.Result, bool, error) {
	began := time.Now()
	p.mu.Lock()
	p.lastUse = p.cfg.Clock()
	p.mu.Unlock()
	e, hit, err := p.acquire(ctx)
	acquired := time.Since(began)
	if err != nil {
		return p.failed(ctx, spec, err, began, acquired), false, err
	}

	res := e.sb.Run(ctx, spec)
	res.Phases.Start = acquired

	p.mu.Lock()
	p.runs++
	e.runs++
	p.mu.Unlock()

	reason := p.recycleReason(e, res)
	if reason == "" {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), resetTimeout)
		t := time.Now()
		err := e.sb.Reset(rctx)
		cancel()
		res.Phases.Cleanup += time.Since(t)
		if err != nil {
			reason = "reset failed: " + err.Error()
		}
	}
	p.release(e, reason)
	return res, hit, nil
}

// recycleReason says why e must not serve again after res, or "" if it may
// (after a Reset).
func (p *Pool) recycleReason(e *entry, res cronium.Result) string {
	if p.cfg.Mode == Prewarmed {
		return "single use"
	}
	switch res.Outcome {
	case cronium.EngineError, cronium.OOMKilled, cronium.TimedOut, cronium.Cancelled, cronium.OutputLimit:
		return "anomaly: " + string(res.Outcome)
	}
	if e.runs >= p.cfg.MaxRuns {
		return fmt.Sprintf("max runs (%d)", p.cfg.MaxRuns)
	}
	if p.expired(e, p.cfg.Clock()) {
		return "max age"
	}
	return ""
}

// expired tells whether a reuse sandbox is too old to serve.
func (p *Pool) expired(e *entry, now time.Time) bool {
	return now.Sub(e.created) >= p.cfg.MaxAge // prewarmed ones too: an idle sandbox must not outlive its deadline label
}

// failed is the result of a run that got no sandbox.
func (p *Pool) failed(ctx context.Context, spec cronium.Spec, err error, began time.Time, acquired time.Duration) cronium.Result {
	res := cronium.Result{
		ID: spec.ID, Outcome: cronium.EngineError, ExitCode: -1, Error: err.Error(),
		Image: spec.Image, StartedAt: began, EndedAt: time.Now(),
		Phases: cronium.Phases{Start: acquired},
	}
	if !errors.Is(err, ErrStopped) && ctx.Err() != nil {
		res.Outcome = cronium.Cancelled
		res.Error = "cancelled while waiting for a sandbox: " + err.Error()
	}
	return res
}

// acquire gets a sandbox for one run and marks it in use.
func (p *Pool) acquire(ctx context.Context) (e *entry, hit bool, err error) {
	// Wake the waiters when ctx ends so this one can give up.
	stop := context.AfterFunc(ctx, func() {
		p.mu.Lock()
		p.cond.Broadcast()
		p.mu.Unlock()
	})
	defer stop()

	p.mu.Lock()
	defer p.mu.Unlock()
	waited := false
	count := func() {
		if waited {
			p.misses++
		} else {
			p.hits++
		}
	}
	for {
		if p.stopped {
			return nil, false, ErrStopped
		}
		if err := ctx.Err(); err != nil {
			p.misses++
			return nil, false, err
		}
		if e := p.takeIdleLocked(); e != nil {
			count()
			p.busy[e] = struct{}{}
			p.kickLocked()
			return e, !waited, nil
		}
		if p.sizeLocked() < p.cfg.Max {
			p.misses++
			return p.createLocked(ctx)
		}
		waited = true
		p.cond.Wait()
	}
}

// createLocked creates a sandbox for a run, unlocking p.mu meanwhile.
func (p *Pool) createLocked(ctx context.Context) (*entry, bool, error) {
	p.creating++
	p.mu.Unlock()
	sb, err := p.cfg.Factory(ctx)
	if err == nil && sb == nil {
		err = errors.New("factory returned no sandbox")
	}
	p.mu.Lock()
	p.creating--
	p.cond.Broadcast()
	if err != nil {
		return nil, false, fmt.Errorf("create sandbox: %w", err)
	}
	p.created++
	p.backoff, p.retryAt = 0, time.Time{}
	p.kickLocked()
	if p.stopped {
		p.closeInlineLocked(&entry{sb: sb})
		return nil, false, ErrStopped
	}
	now := p.cfg.Clock()
	e := &entry{sb: sb, created: now, idleSince: now}
	p.busy[e] = struct{}{}
	return e, false, nil
}

// takeIdleLocked takes the most recently idle sandbox, recycling any that
// are too old on the way.
func (p *Pool) takeIdleLocked() *entry {
	now := p.cfg.Clock()
	for len(p.idle) > 0 {
		e := p.idle[len(p.idle)-1]
		p.idle[len(p.idle)-1] = nil
		p.idle = p.idle[:len(p.idle)-1]
		if p.expired(e, now) {
			p.closeAsyncLocked(e, "max age", true)
			continue
		}
		return e
	}
	return nil
}

// release ends a run of e: back to idle when reason is "", else closed.
func (p *Pool) release(e *entry, reason string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.busy, e)
	defer p.cond.Broadcast()
	switch {
	case e.closed: // Stop gave up waiting and closed it under the run
	case p.stopped:
		p.closeInlineLocked(e)
	case reason != "":
		p.closeAsyncLocked(e, reason, true)
		p.kickLocked()
	default:
		e.idleSince = p.cfg.Clock()
		p.idle = append(p.idle, e)
		p.pauseLocked(e)
	}
}

// pauseLocked freezes an idle sandbox in a goroutine owned by the pool.
func (p *Pool) pauseLocked(e *entry) {
	if !p.cfg.PauseIdle || p.stopped {
		return
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		if err := e.sb.Pause(p.bg); err != nil && !errors.Is(err, cronium.ErrUnsupported) {
			p.log.Warn("pause idle sandbox", "sandbox", e.sb.ID(), "err", err)
		}
	}()
}

// sizeLocked counts every sandbox of the pool.
func (p *Pool) sizeLocked() int {
	return len(p.idle) + len(p.busy) + p.creating + p.closing
}

// closeAsyncLocked closes e in a goroutine owned by the pool; e still
// counts against Max until Close returns. Only while not stopped.
func (p *Pool) closeAsyncLocked(e *entry, reason string, recycle bool) {
	p.closing++
	if recycle {
		p.recycled++
	}
	p.log.Debug("closing sandbox", "sandbox", e.sb.ID(), "reason", reason, "runs", e.runs)
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		e.sb.Close()
		p.mu.Lock()
		p.closing--
		p.cond.Broadcast()
		p.kickLocked()
		p.mu.Unlock()
	}()
}

// closeInlineLocked closes e in the calling goroutine (used once stopped,
// when no new pool goroutine may start), unlocking p.mu meanwhile.
func (p *Pool) closeInlineLocked(e *entry) {
	p.closing++
	p.mu.Unlock()
	e.sb.Close()
	p.mu.Lock()
	p.closing--
	p.cond.Broadcast()
}

// kickLocked wakes the refiller without blocking.
func (p *Pool) kickLocked() {
	select {
	case p.kickCh <- struct{}{}:
	default:
	}
}

// deficitLocked is how many sandboxes the refill should start now.
func (p *Pool) deficitLocked() int {
	var ready int
	if p.cfg.Mode == Prewarmed {
		// In-use prewarmed sandboxes never come back; creations for runs are consumed.
		ready = len(p.idle) + p.refilling
	} else {
		// Reuse sandboxes in use (or being created for a run) come back.
		ready = len(p.idle) + len(p.busy) + p.creating
	}
	n := min(p.cfg.Min-ready, p.cfg.Max-p.sizeLocked())
	return max(n, 0)
}

// refiller keeps the pool at Min ready sandboxes, backing off on failures.
func (p *Pool) refiller() {
	defer p.wg.Done()
	for {
		p.mu.Lock()
		if p.stopped {
			p.mu.Unlock()
			return
		}
		wait := time.Until(p.retryAt)
		if wait <= 0 {
			for range p.deficitLocked() {
				p.creating++
				p.refilling++
				p.wg.Add(1)
				go p.createIdle()
			}
		}
		p.mu.Unlock()

		var retry <-chan time.Time
		var t *time.Timer
		if wait > 0 {
			t = time.NewTimer(wait)
			retry = t.C
		}
		select {
		case <-p.bg.Done():
		case <-p.kickCh:
		case <-retry:
		}
		if t != nil {
			t.Stop()
		}
	}
}

// createIdle creates one sandbox for the refill and makes it idle.
func (p *Pool) createIdle() {
	defer p.wg.Done()
	sb, err := p.cfg.Factory(context.WithValue(p.bg, refillKey{}, true))
	if err == nil && sb == nil {
		err = errors.New("factory returned no sandbox")
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.creating--
	p.refilling--
	p.cond.Broadcast()
	if err != nil {
		if p.stopped {
			return
		}
		now := time.Now()
		if !now.Before(p.retryAt) { // one backoff step per failing round
			p.backoff = min(max(2*p.backoff, minBackoff), maxBackoff)
			p.retryAt = now.Add(p.backoff)
		}
		p.log.Warn("refill: cannot create sandbox", "err", err, "retry_in", p.backoff)
		p.kickLocked()
		return
	}
	p.created++
	p.backoff, p.retryAt = 0, time.Time{}
	if p.stopped {
		p.closeInlineLocked(&entry{sb: sb})
		return
	}
	now := p.cfg.Clock()
	e := &entry{sb: sb, created: now, idleSince: now}
	p.idle = append(p.idle, e)
	p.pauseLocked(e)
	p.log.Debug("sandbox ready", "sandbox", sb.ID())
}

// reaper closes idle sandboxes past IdleTimeout (above Min) or MaxAge.
func (p *Pool) reaper() {
	defer p.wg.Done()
	every := min(max(p.cfg.IdleTimeout/4, 10*time.Millisecond), time.Second)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-p.bg.Done():
			return
		case <-t.C:
			p.reap()
		}
	}
}

// reap is one pass of the reaper.
func (p *Pool) reap() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped {
		return
	}
	now := p.cfg.Clock()
	keep := make([]*entry, 0, len(p.idle))
	for _, e := range p.idle {
		if p.expired(e, now) {
			p.closeAsyncLocked(e, "max age", true)
			continue
		}
		keep = append(keep, e)
	}
	surplus := len(keep) - p.cfg.Min
	kept := keep[:0]
	for _, e := range keep { // oldest idle first
		if surplus > 0 && now.Sub(e.idleSince) >= p.cfg.IdleTimeout {
			surplus--
			p.closeAsyncLocked(e, "idle timeout", true)
			continue
		}
		kept = append(kept, e)
	}
	if len(kept) < len(p.idle) {
		p.idle = kept
		p.cond.Broadcast()
	}
}

// Stop drains the pool: no new runs, idle sandboxes closed, runs in progress
// waited for (until ctx ends), then the rest closed. When ctx ends first,
// sandboxes still in use are closed under their runs and ctx's error is
// returned. Safe to call more than once.
func (p *Pool) Stop(ctx context.Context) error {
	p.mu.Lock()
	var idle []*entry
	if !p.stopped {
		p.stopped = true
		p.cancel()
		idle, p.idle = p.idle, nil
		for _, e := range idle {
			e.closed = true
		}
		p.closing += len(idle)
		p.cond.Broadcast()
	}
	p.mu.Unlock()

	closeAll(idle)
	if len(idle) > 0 {
		p.mu.Lock()
		p.closing -= len(idle)
		p.cond.Broadcast()
		p.mu.Unlock()
	}

	// Wait for runs, creations and closes in progress.
	stop := context.AfterFunc(ctx, func() {
		p.mu.Lock()
		p.cond.Broadcast()
		p.mu.Unlock()
	})
	defer stop()
	p.mu.Lock()
	for p.sizeLocked() > 0 && ctx.Err() == nil {
		p.cond.Wait()
	}
	if err := ctx.Err(); err != nil && len(p.busy) > 0 {
		var busy []*entry
		for e := range p.busy {
			if !e.closed {
				e.closed = true
				busy = append(busy, e)
			}
		}
		p.mu.Unlock()
		p.log.Warn("stop: closing sandboxes still in use", "count", len(busy), "err", err)
		closeAll(busy)
		return err
	}
	p.mu.Unlock()

	// Background goroutines end promptly once bg is cancelled.
	done := make(chan struct{})
	go func() {
		p.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// closeAll closes sandboxes in parallel and waits.
func closeAll(es []*entry) {
	var wg sync.WaitGroup
	for _, e := range es {
		wg.Go(e.sb.Close)
	}
	wg.Wait()
}

// unusedSince returns when the pool last served a run, and whether one
// is in progress or waiting.
func (p *Pool) unusedSince() (time.Time, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.lastUse, len(p.busy) > 0
}

// Stats returns a snapshot of the pool.
func (p *Pool) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return Stats{
		Name: p.cfg.Name, Mode: p.cfg.Mode,
		Size: p.sizeLocked(), Idle: len(p.idle), InUse: len(p.busy), Creating: p.creating, Closing: p.closing,
		Min: p.cfg.Min, Max: p.cfg.Max,
		Hits: p.hits, Misses: p.misses, Created: p.created, Recycled: p.recycled, Runs: p.runs,
	}
}

type refillKey struct{}

// IsRefill reports whether a Factory call is the pool's background refill
// (as opposed to a run waiting for a sandbox).
func IsRefill(ctx context.Context) bool {
	v, _ := ctx.Value(refillKey{}).(bool)
	return v
}

// evictIdle closes the pool's oldest idle sandbox, if any and the pool runs,
// to make room for another pool. It reports whether it did.
func (p *Pool) evictIdle() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped || len(p.idle) == 0 {
		return false
	}
	e := p.idle[0]
	p.idle = p.idle[1:]
	p.closeAsyncLocked(e, "evicted: the node's sandbox budget is full", true)
	return true
}
