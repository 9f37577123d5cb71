// Package dispatch turns queued executions into running ones: admission by
// node capacity and per-user tier concurrency, fairness between users,
// priority, cancellation, retries with backoff, live logs, and recovery of
// executions that were running when the node stopped.
package dispatch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"sync"
	"time"

	cronium "github.com/cronium/executor"
	"github.com/cronium/executor/agent"
	"github.com/cronium/executor/metrics"
	"github.com/cronium/executor/notify"
	"github.com/cronium/executor/pool"
	"github.com/cronium/executor/redact"
	"github.com/cronium/executor/runtimeapi"
	"github.com/cronium/executor/schedule"
	"github.com/cronium/executor/secrets"
	"github.com/cronium/executor/store"
	"github.com/cronium/executor/tailbuf"
)

// Config configures a Dispatcher.
type Config struct {
	// Store is the durable queue. Required.
	Store store.Dispatching
	// Engine runs executions. Required.
	Engine cronium.Engine
	// Network are the operator's network rules (default modes, services) each execution's policy is resolved with.
	Network cronium.NetworkRules
	// Tiers maps tier names to limits. Default cronium.DefaultTiers().
	Tiers map[string]cronium.Tier
	// Node names this node in the store and on containers. Required.
	Node string
	// Notified is called when an execution's end queued notifications (to
	// wake the notification worker). Optional.
	Notified func()
	// Capacity is how many executions this node runs at once. Default 8.
	Capacity int
	// LogLimit caps the stored logs of one execution. Default 1Mi.
	LogLimit int64
	// Poll is how often the queue is checked without a wake-up. Default 250ms.
	Poll time.Duration
	// Hub receives live output. Default: a new hub.
	Hub *Hub
	// Logger receives operational logs. Default: discard.
	Logger *slog.Logger
	// Runtime answers scripts' runtime API calls. Default: a handler over Store.
	Runtime *runtimeapi.Handler
	// Keyring decrypts the secrets events reference. Nil: events with secrets fail, saying so.
	Keyring *secrets.Keyring
	// Rules is the hybrid rule that picks each execution's strategy.
	Rules cronium.StrategyRules
	// Pools serve the warm strategies; nil makes every execution cold (and says so).
	Pools *pool.Manager
	// UserWorkspace is the size quota of a user strategy's persistent workspace. Default 1Gi.
	UserWorkspace cronium.Size
	// SandboxLifetime bounds how long a warm sandbox may be kept (its
	// pool's max age plus one run). Default 1h.
	SandboxLifetime time.Duration
	// Lease is how long this node's lease lasts without a heartbeat (one
	// every third of it): past it, other nodes return its claims to the
	// queue and adopt its running executions. Default 15s.
	Lease time.Duration
	// Self describes this node to the others: its host, data directory,
	// engine and engine key. Name and capacity come from Node and Capacity.
	Self store.Node
	// Bases names the exact runtime image of each language (see
	// images.Bases). Runs and pool keys use it, so that an image update
	// moves new runs and new warm sandboxes to the new image, and never
	// mixes the two within one pool. Nil: the engine's references.
	Bases interface {
		Base(lang cronium.Language) (ref, id string)
	}
	// Metrics is told of every execution this node finishes, with the
	// result the store recorded, and of queued executions cancelled here.
	// Nil: none.
	Metrics *metrics.Metrics
	// Prices is the price table each execution's cost is computed with
	// when it ends (zero: executions cost nothing).
	Prices cronium.Prices
}

// Dispatcher runs the queue. Start it once; it is safe for concurrent use.
type Dispatcher struct {
	cfg  Config
	log  *slog.Logger
	wake chan struct{}

	mu       sync.Mutex // guards the fields below
	running  map[string]*running
	tiers    map[int64]cachedTier             // user id -> tier, for tierTTL
	budgets  map[int64]cachedBudget           // user id -> their month against their tier's budget, for budgetTTL
	kept     map[string]*keptBox              // execution id -> its sandbox, kept for debugging
	samples  map[string][]cronium.UsageSample // execution id -> its usage samples so far (the timeline)
	rates    map[string]float64               // schedule|zone -> fires per minute, cached
	stop     chan struct{}
	started  bool
	loopDone chan struct{}
	// leaseStop ends the lease loop, which closes leaseDone.
	leaseStop, leaseDone chan struct{}
	self                 store.Node // this node on the store
	// cancelErrSaid: reading cancel requests failed and was said (loop-owned).
	cancelErrSaid bool
	// storeDownSince is when heartbeats started failing (zero: they work).
	storeDownSince time.Time
	// reapAfter is when this node may take other nodes for dead again
	// (after the store was away, every lease ran out).
	reapAfter time.Time
	work      sync.WaitGroup // running executions

	lastReasons time.Time // when waiting reasons were last written; used by the loop goroutine only
	// admitErrSince and admitErrSaid are when admission started failing
	// and when that was last said; used by the loop goroutine only.
	admitErrSince, admitErrSaid time.Time
}

type running struct {
	userID int64
	cancel context.CancelCauseFunc
	asked  bool // a cancel request from the store was passed on
}

// runInfo is what execute learnt about a run beyond its result (for metrics).
type runInfo struct {
	language    cronium.Language
	strategy    string
	pooled, hit bool
	queue, late time.Duration // negative: unknown, not scheduled
	ran         bool          // the event was read and its script handed to a sandbox
	forcedCold  bool          // cold because keep_failed or an audit needs it (no cold-start hint)
	perMinute   float64       // how often the event runs on schedule
}

// New validates cfg and returns a stopped dispatcher.
func New(cfg Config) (*Dispatcher, error) {
	if cfg.Store == nil || cfg.Engine == nil || cfg.Node == "" {
		return nil, errors.New("dispatch: Store, Engine and Node are required")
	}
	if cfg.Tiers == nil {
		cfg.Tiers = cronium.DefaultTiers()
	}
	if cfg.Capacity <= 0 {
		cfg.Capacity = 8
	}
	if cfg.LogLimit <= 0 {
		cfg.LogLimit = 1 << 20
	}
	if cfg.Poll <= 0 {
		cfg.Poll = 250 * time.Millisecond
	}
	if cfg.Hub == nil {
		cfg.Hub = NewHub()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Runtime == nil {
		cfg.Runtime = runtimeapi.New(cfg.Store)
	}
	if cfg.UserWorkspace == 0 {
		cfg.UserWorkspace = 1 << 30
	}
	if cfg.SandboxLifetime <= 0 {
		cfg.SandboxLifetime = time.Hour
	}
	if cfg.Lease <= 0 {
		cfg.Lease = 15 * time.Second
	}
	return &Dispatcher{cfg: cfg, log: cfg.Logger, wake: make(chan struct{}, 1), running: map[string]*running{}, tiers: map[int64]cachedTier{}, budgets: map[int64]cachedBudget{}, kept: map[string]*keptBox{}, samples: map[string][]cronium.UsageSample{}, rates: map[string]float64{}}, nil
}

// Hub returns the live-output hub.
func (d *Dispatcher) Hub() *Hub { return d.cfg.Hub }

// Start recovers executions this node was running when it stopped, then
// starts admitting queued executions. It returns once running.
func (d *Dispatcher) Start(ctx context.Context) error {
	d.mu.Lock()
	if d.started {
		d.mu.Unlock()
		return nil
	}
	d.started = true
	d.stop = make(chan struct{})
	d.loopDone = make(chan struct{})
	d.leaseStop, d.leaseDone = make(chan struct{}), make(chan struct{})
	d.self = d.cfg.Self
	d.self.Name, d.self.Capacity = d.cfg.Node, d.cfg.Capacity
	d.mu.Unlock()
	err := d.register(ctx)
	if err == nil {
		err = d.recover(ctx)
	}
	if err == nil {
		err = d.reloadKept(ctx)
	}
	if err != nil {
		d.mu.Lock()
		d.started = false
		d.mu.Unlock()
		return err
	}
	go d.loop()
	go d.leaseLoop(d.leaseStop, d.leaseDone) // ends with Stop, once its executions are done or left
	return nil
}

// Stop stops admitting and waits for running executions until ctx is done.
// Executions still running then are left alone: their sandboxes keep going
// and the next start re-attaches to them. Safe to call twice.
func (d *Dispatcher) Stop(ctx context.Context) error {
	d.mu.Lock()
	if !d.started {
		d.mu.Unlock()
		return nil
	}
	d.started = false
	close(d.stop)
	d.mu.Unlock()
	d.stopKept()
	// The lease is renewed while executions run; then it lapses and, unless
	// this node restarts first, other nodes adopt what is left.
	defer func() { close(d.leaseStop); <-d.leaseDone }()
	select {
	case <-d.loopDone:
	case <-ctx.Done():
		return fmt.Errorf("stop dispatcher: the admission loop did not end: %w", ctx.Err())
	}
	done := make(chan struct{})
	go func() { d.work.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		d.mu.Lock()
		n := len(d.running)
		d.mu.Unlock()
		return fmt.Errorf("stop dispatcher: %d execution(s) still running are left to recovery: %w", n, ctx.Err())
	}
}

// Wake asks the dispatcher to look at the queue now.
func (d *Dispatcher) Wake() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// Cancel cancels a queued execution, or a running one on any node: this
// node's at once, another's by asking it through the store (it cancels
// within its poll interval).
func (d *Dispatcher) Cancel(ctx context.Context, id, reason string) error {
	d.mu.Lock()
	r := d.running[id]
	d.mu.Unlock()
	if r != nil {
		r.cancel(errors.New(reason))
		return nil
	}
	ok, err := d.cfg.Store.CancelQueued(ctx, id, reason)
	if err != nil {
		return err
	}
	if ok {
		d.cfg.Hub.End(id)
		d.cfg.Metrics.CancelledQueued()
		return nil
	}
	if ok, err = d.cfg.Store.RequestCancel(ctx, id, reason); err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("%w: execution %s is not queued or running", cronium.ErrConflict, id)
	}
	d.mu.Lock()
	r = d.running[id] // adopted meanwhile
	d.mu.Unlock()
	if r != nil {
		r.cancel(errors.New(reason))
	}
	return nil
}

// WakeAt asks the dispatcher to look at the queue at t (an execution
// written ahead of its time becomes ready then).
func (d *Dispatcher) WakeAt(t time.Time) {
	time.AfterFunc(time.Until(t), d.Wake)
}

// Runs says whether this node runs the execution now.
func (d *Dispatcher) Runs(id string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.running[id] != nil
}

// Running returns how many executions this node runs now.
func (d *Dispatcher) Running() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.running)
}

// admitTimeout bounds one admission pass's store calls.
const admitTimeout = 30 * time.Second

func (d *Dispatcher) loop() {
	defer close(d.loopDone)
	t := time.NewTicker(d.cfg.Poll)
	defer t.Stop()
	var last time.Time // the last admission round
	for {
		select {
		case <-d.stop:
			return
		case <-t.C:
			d.pollCancels()
		case <-d.wake:
		}
		// A round costs the same for one free slot as for many: while work
		// ends fast, rounds are spaced by roundGap unless a quarter of the
		// capacity is free, so that each admits several (a lone trigger on
		// an idle node is admitted at once).
		if gap := time.Since(last); gap < roundGap && d.Running() > d.cfg.Capacity*3/4 {
			select {
			case <-d.stop:
				return
			case <-time.After(roundGap - gap):
			}
		}
		last = time.Now()
		for {
			// Bounded: a stuck store must not hold the loop (and Stop) forever.
			// Not cancelled by Stop: a pass that claimed executions launches them.
			actx, cancel := context.WithTimeout(context.Background(), admitTimeout)
			more, err := d.admit(actx)
			cancel()
			d.admitFailed(err)
			if !more {
				break
			}
		}
	}
}

// roundGap spaces admission rounds while the node is nearly full.
const roundGap = 10 * time.Millisecond

// admitFailed says an admission pass's error, once when the store starts
// failing and then at most every admitErrorEvery, and when it answers again.
func (d *Dispatcher) admitFailed(err error) {
	switch {
	case err == nil && !d.admitErrSince.IsZero():
		d.log.Info("admission works again", "failed_for", time.Since(d.admitErrSince).Round(time.Millisecond))
		d.admitErrSince, d.admitErrSaid = time.Time{}, time.Time{}
	case err == nil:
	case d.admitErrSince.IsZero():
		d.admitErrSince, d.admitErrSaid = time.Now(), time.Now()
		d.log.Error("admit queued executions: nothing starts until the store answers; retrying", "err", err)
	case time.Since(d.admitErrSaid) > admitErrorEvery:
		d.admitErrSaid = time.Now()
		d.log.Error("admit queued executions: still failing; retrying", "since", d.admitErrSince, "err", err)
	}
}

// admitErrorEvery is how often a failing admission is said again.
const admitErrorEvery = 30 * time.Second

// tierTTL is how long a user's tier is cached: a changed tier applies
// within it.
const tierTTL = time.Minute

type cachedTier struct {
	tier cronium.Tier
	at   time.Time
}

// tierOf returns the tier of x's user. A failed lookup gives the free tier
// for this decision only: it is never cached.
func (d *Dispatcher) tierOf(ctx context.Context, x cronium.Execution) cronium.Tier {
	d.mu.Lock()
	c, ok := d.tiers[x.UserID]
	d.mu.Unlock()
	if ok && time.Since(c.at) < tierTTL {
		return c.tier
	}
	u, err := d.cfg.Store.UserByName(ctx, x.User)
	if err != nil {
		d.log.Warn("look up the user's tier; the free tier applies to this decision", "user", x.User, "err", err)
		return d.cfg.Tiers["free"]
	}
	t, ok := d.cfg.Tiers[u.Tier]
	if !ok {
		d.log.Warn("the user's tier is not configured; the free tier applies", "user", x.User, "tier", u.Tier)
		t = d.cfg.Tiers["free"]
	}
	d.mu.Lock()
	d.tiers[x.UserID] = cachedTier{tier: t, at: time.Now()}
	d.mu.Unlock()
	return t
}

// admit starts as many ready executions as capacity and tiers allow, fairly:
// the user with the fewest running executions (on every node) goes next,
// then priority, then age. Users left waiting get the reason on their queued
// executions. It looks only at the first few queued executions of each
// user; more reports that a user's heads ran out while capacity remains, so
// the caller should admit again at once. The round runs in the store under
// one lock, so tier limits and fairness hold across nodes.
func (d *Dispatcher) admit(ctx context.Context) (more bool, err error) {
	d.mu.Lock()
	local := len(d.running) + len(d.kept) // a kept sandbox holds its slot
	d.mu.Unlock()
	now := time.Now()
	// At most 4 heads per user, and no more than there are free slots: a
	// round after one run ended reads each user's first only.
	heads := min(4, max(1, d.cfg.Capacity-local))
	var (
		queues  map[int64][]cronium.Execution
		perUser map[int64]int
		users   []int64
		total   = local
		unread  bool // a user with a budget waited for their usage to be read
	)
	pick := func(r store.Round) []string {
		queues, perUser, users, total, unread = map[int64][]cronium.Execution{}, map[int64]int{}, nil, local, false
		for u, n := range r.RunningByUser {
			perUser[u] = n
		}
		for _, x := range r.Heads {
			if _, ok := queues[x.UserID]; !ok {
				users = append(users, x.UserID)
			}
			queues[x.UserID] = append(queues[x.UserID], x)
		}
		var ids []string
		for total < d.cfg.Capacity {
			best := int64(-1)
			for _, u := range users {
				q := queues[u]
				if len(q) == 0 {
					continue
				}
				tier := d.tierNamed(q[0].User, r.Tiers[u])
				if perUser[u] >= tier.Concurrency {
					continue
				}
				if tier.Budget.Set() {
					// Not before the month's usage is known: read after
					// this round, for the next.
					if over, known := d.overBudget(u); !known || over != "" {
						unread = unread || !known
						continue
					}
				}
				if best < 0 || less(q[0], perUser[u], queues[best][0], perUser[best]) {
					best = u
				}
			}
			if best < 0 {
				break
			}
			ids = append(ids, queues[best][0].ID)
			queues[best] = queues[best][1:]
			perUser[best]++
			total++
		}
		return ids
	}
	claimed, round, err := d.cfg.Store.AdmitRound(ctx, d.cfg.Node, now, heads, pick)
	if err != nil {
		return false, err
	}
	for _, x := range claimed {
		d.launch(x, nil)
	}
	if err := d.budget(ctx, now, round); err != nil {
		return false, err
	}
	more = unread // admit them now that it is read
	loaded := map[int64]int{}
	for _, x := range round.Heads {
		loaded[x.UserID]++
	}
	for _, u := range users {
		if len(queues[u]) == 0 && loaded[u] == heads && total < d.cfg.Capacity {
			more = true // this user may have more behind the heads we loaded
		}
	}
	return more, d.setReasons(ctx, now, round, perUser, total, queues)
}

// budgetTTL is how long a user's month of usage is taken as it was read:
// a budget may be passed by what starts within it (and by what runs
// when it is reached).
const budgetTTL = 5 * time.Second

type cachedBudget struct {
	over string // why the user is past their budget; "" if not
	at   time.Time
}

// overBudget says why user is past their tier's monthly budget, as last
// read ("" if not), and whether it was read since their last execution here ended.
func (d *Dispatcher) overBudget(user int64) (over string, known bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	c, ok := d.budgets[user]
	return c.over, ok
}

// budget reads the month's usage of the round's users whose tier has a
// budget (when their last reading is older than budgetTTL), and for those
// whose tier refuses work past it, cancels their queued heads saying why.
func (d *Dispatcher) budget(ctx context.Context, now time.Time, round store.Round) error {
	seen := map[int64]bool{}
	for _, x := range round.Heads {
		u := x.UserID
		if seen[u] {
			continue
		}
		seen[u] = true
		tier := d.tierNamed(x.User, round.Tiers[u])
		if !tier.Budget.Set() {
			d.mu.Lock()
			delete(d.budgets, u)
			d.mu.Unlock()
			continue
		}
		d.mu.Lock()
		c, ok := d.budgets[u]
		d.mu.Unlock()
		if !ok || now.Sub(c.at) >= budgetTTL {
			over, err := store.OverBudget(ctx, d.cfg.Store, u, tier.Budget, d.cfg.Prices.Unit(), now)
			if err != nil {
				return fmt.Errorf("read %s's usage for the tier's budget: %w", x.User, err)
			}
			c = cachedBudget{over: over, at: now}
			d.mu.Lock()
			d.budgets[u] = c
			d.mu.Unlock()
		}
		if c.over == "" || tier.Budget.OnExceed != cronium.BudgetRefuse {
			continue
		}
		for _, h := range round.Heads {
			if h.UserID != u {
				continue
			}
			ok, err := d.cfg.Store.CancelQueued(ctx, h.ID, "refused: "+c.over)
			if err != nil {
				return err
			}
			if ok {
				d.cfg.Hub.End(h.ID)
				d.cfg.Metrics.CancelledQueued()
			}
		}
	}
	return nil
}

// tierNamed is the configured tier of that name (the free tier, said once
// per lookup, when it is not configured).
func (d *Dispatcher) tierNamed(user, name string) cronium.Tier {
	t, ok := d.cfg.Tiers[name]
	if !ok {
		d.log.Warn("the user's tier is not configured; the free tier applies", "user", user, "tier", name)
		t = d.cfg.Tiers["free"]
	}
	return t
}

// setReasons writes, per waiting user, why their queued executions wait. It
// writes at most twice a second: reasons are for people, and rewriting a deep
// queue on every admission would cost more than the admission itself.
func (d *Dispatcher) setReasons(ctx context.Context, now time.Time, round store.Round, perUser map[int64]int, total int, queues map[int64][]cronium.Execution) error {
	if time.Since(d.lastReasons) < 500*time.Millisecond {
		return nil
	}
	d.lastReasons = time.Now()
	if perUser == nil {
		perUser = round.RunningByUser
	}
	reasons := map[int64]string{}
	for _, x := range round.Heads {
		u := x.UserID
		if _, done := reasons[u]; done || (queues != nil && len(queues[u]) == 0) {
			continue
		}
		tier := d.tierNamed(x.User, round.Tiers[u])
		if over, _ := d.overBudget(u); over != "" {
			reasons[u] = "waiting: " + over
		} else if perUser[u] >= tier.Concurrency && round.KeptByUser[u] > 0 {
			reasons[u] = fmt.Sprintf("waiting: %d of %d concurrent executions for your tier (%s) are running or held by failed runs' sandboxes kept for debugging (%d; `cronium exec debug ID --remove` frees one)",
				perUser[u], tier.Concurrency, tier.Name, round.KeptByUser[u])
		} else if perUser[u] >= tier.Concurrency {
			reasons[u] = fmt.Sprintf("waiting: %d of %d concurrent executions for your tier (%s) are running", perUser[u], tier.Concurrency, tier.Name)
		} else {
			reasons[u] = fmt.Sprintf("waiting: the node is at capacity (%d of %d executions running)", total, d.cfg.Capacity)
		}
	}
	return d.cfg.Store.SetUserReasons(ctx, now, reasons)
}

// less orders queue heads: fewer running first, then higher priority, then older.
func less(a cronium.Execution, ra int, b cronium.Execution, rb int) bool {
	if ra != rb {
		return ra < rb
	}
	if a.Priority != b.Priority {
		return a.Priority > b.Priority
	}
	return a.QueuedAt.Before(b.QueuedAt)
}

// launch runs x in its own goroutine. With re set it resumes a recovered
// (or adopted) execution instead of starting it: re says whose sandbox it
// is, the rest is filled in.
func (d *Dispatcher) launch(x cronium.Execution, re *cronium.Reattach) {
	ctx, cancel := context.WithCancelCause(context.Background())
	d.mu.Lock()
	d.running[x.ID] = &running{userID: x.UserID, cancel: cancel}
	d.mu.Unlock()
	d.work.Add(1)
	info := unknownRun
	if re == nil { // a new run: claimed just now
		now := time.Now()
		info.queue = max(0, now.Sub(later(x.QueuedAt, x.NotBefore)))
		if x.ScheduledAt != nil && x.Trigger == cronium.TriggerSchedule {
			info.late = max(0, now.Sub(*x.ScheduledAt))
		}
	}
	go func() { // owned by the dispatcher's work group
		defer d.work.Done()
		defer cancel(nil)
		res := d.execute(ctx, x, re, &info)
		d.finish(x, res, info)
	}()
}

// unknownRun is the runInfo of an execution that did not run here.
var unknownRun = runInfo{queue: -1, late: -1}

// later returns the later of a and b.
func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

func (d *Dispatcher) execute(ctx context.Context, x cronium.Execution, re *cronium.Reattach, info *runInfo) cronium.Result {
	reattach := re != nil
	store := d.cfg.Store
	fail := func(err error) cronium.Result {
		now := time.Now()
		if ctx.Err() != nil {
			// Cancelled (by Cancel: nothing else cancels ctx before
			// execute returns) while its sandbox was being made: the
			// engine's error only echoes the cancel. Recorded as an engine
			// error, it would be retried.
			return cronium.Result{ID: x.ID, Outcome: cronium.Cancelled, ExitCode: -1, Error: context.Cause(ctx).Error(), StartedAt: now, EndedAt: now}
		}
		return cronium.Result{ID: x.ID, Outcome: cronium.EngineError, ExitCode: -1, Error: err.Error(), StartedAt: now, EndedAt: now}
	}
	sink := newLogSink(d, x.ID, d.cfg.LogLimit)
	if reattach {
		sink.resume(x.LogBytes) // what the previous process stored counts
	}
	defer sink.finish()
	stopFlush := sink.startFlusher()
	defer stopFlush()

	defer d.cfg.Runtime.Close(x.ID)
	if reattach {
		// The runtime API and the second line of redaction, as at the start
		// (the agent, which kept running, redacts with its own copy first).
		ev, err := d.eventForRetry(ctx, x.EventID)
		var vals map[string][]byte
		if err == nil {
			vals, err = d.secretValues(ctx, x, ev)
		}
		if err != nil {
			d.log.Warn("re-attach: the event's secrets could not be read; the agent still redacts the output", "execution_id", x.ID, "err", err)
		}
		sink.secrets = values(vals)
		d.cfg.Runtime.Open(x.ID, x.UserID, sink.secrets)
		after, err := store.LastSeq(context.Background(), x.ID)
		if err != nil {
			return fail(err)
		}
		sink.lastSeq = after
		r := *re
		r.ExecutionID, r.Sandbox, r.AfterSeq, r.Output, r.Runtime = x.ID, x.Sandbox, after, sink.add, d.cfg.Runtime
		r.Sample = d.sampler(x.ID)
		res, err := d.cfg.Engine.Reattach(ctx, r)
		switch {
		case errors.Is(err, cronium.ErrNotFound) && r.Node != "" && x.Sandbox == "":
			// The dead node never handed the script to a sandbox (it records
			// the sandbox first): the script never ran. Start it now, once.
			d.log.Info("an adopted execution never reached its sandbox; starting it", "execution_id", x.ID, "from", r.Node)
		case errors.Is(err, cronium.ErrNotFound) && r.Node != "":
			return fail(fmt.Errorf("lost: node %s stopped and the execution's sandbox is gone", r.Node))
		case errors.Is(err, cronium.ErrNotFound):
			return fail(errors.New("lost: node restarted and the execution's sandbox is gone"))
		case errors.Is(err, cronium.ErrNeverStarted):
			// The script never ran: start it now, once.
			d.log.Info("re-attached execution never started; starting it", "execution_id", x.ID)
		case err != nil:
			return fail(fmt.Errorf("re-attach: %w", err))
		default:
			return res
		}
	}
	ev, err := store.EventByID(ctx, x.EventID)
	if err != nil {
		return fail(err)
	}
	info.language = ev.Language
	tier := d.tierOf(ctx, x)
	limits, err := ev.Limits(tier)
	if err != nil {
		return fail(err)
	}
	profile, err := cronium.LookupProfile("profile", ev.Profile)
	if err != nil {
		return fail(err)
	}
	netPolicy, err := d.cfg.Network.Resolve("network", ev.Network, profile, tier)
	if err != nil {
		return fail(err)
	}
	caps := d.cfg.Engine.Capabilities()
	if mode := netPolicy.Mode; mode != "" && !caps.CanNetwork(mode) {
		return fail(fmt.Errorf("network: the %s engine does not enforce the %s mode: use one of %v, or run this node on an engine that does", caps.Name, mode, caps.Networks))
	}
	input := x.Input
	if len(input) == 0 {
		input = ev.Input
	}
	secretMap, err := d.secretValues(ctx, x, ev)
	if err != nil {
		return fail(err)
	}
	sink.secrets = values(secretMap)
	d.cfg.Runtime.Open(x.ID, x.UserID, sink.secrets)
	spec := cronium.Spec{
		ID: x.ID, Language: ev.Language, Script: []byte(ev.Script), Files: ev.Files, Input: input,
		Env: withTZ(ev.Env, ev.Timezone), Limits: limits, Profile: profile, Network: netPolicy, Output: sink.add, Sample: d.sampler(x.ID),
		Runtime: d.cfg.Runtime, Context: d.context(ctx, x, ev, limits), Secrets: secretMap, DataMode: ev.DataMode,
	}
	if d.cfg.Bases != nil {
		if ref, id := d.cfg.Bases.Base(ev.Language); id != "" {
			spec.Image, spec.ImageID = ref, id
		}
	}
	if ev.PackageLock != nil {
		spec.Image, spec.ImageID = ev.PackageLock.Image, "" // the event's packages, layered on its runtime image
	}
	if ev.ImagePinned != "" {
		spec.Image, spec.ImageID = ev.ImagePinned, "" // the custom image, by the digest pinned at apply time
	}
	strategy, why := d.cfg.Rules.Choose(ev, tier.Name, d.perMinute(ev))
	if !profile.ReadOnlyRoot && (strategy == cronium.StrategyReuse || strategy == cronium.StrategyUser) {
		// A writable root file system cannot be wiped between runs.
		strategy, why = cronium.StrategyPrewarmed, why+"; the "+profile.Name+" profile has a writable root, which a reset cannot wipe: prewarmed instead"
	}
	if ev.Audit == cronium.AuditStrict {
		spec.Audit = true
		if strategy != cronium.StrategyCold {
			strategy, why = cronium.StrategyCold, why+"; audit: strict observes the run in a sandbox of its own: cold instead"
			info.forcedCold = true
		}
	}
	if keep := ev.Debug.KeepFailed.D(); keep > 0 {
		if caps.Debug {
			spec.KeepFailed = keep
			if strategy != cronium.StrategyCold {
				strategy, why = cronium.StrategyCold, why+"; debug.keep_failed keeps a failed run's sandbox, which a warm pool would reuse: cold instead"
				info.forcedCold = true
			}
		} else {
			why += "; the " + caps.Name + " engine keeps no failed sandboxes: debug.keep_failed does nothing here"
		}
	}
	switch {
	case strategy == cronium.StrategyCold:
	case !caps.Warm:
		strategy, why = cronium.StrategyCold, why+"; the "+caps.Name+" engine has no warm sandboxes: cold"
	case strategy == cronium.StrategyUser && !caps.Workspaces:
		strategy, why = cronium.StrategyReuse, why+"; the "+caps.Name+" engine keeps no user workspaces: reuse"
	case d.cfg.Pools == nil:
		strategy, why = cronium.StrategyCold, why+"; this node has no warm pools: cold"
	}
	// From here on the script may run: the store says so first, and
	// refuses if the claim is no longer this node's (its lease ran out and
	// the claim went back to the queue), so that it never runs twice.
	if ok, err := store.SetStrategy(ctx, x.ID, d.cfg.Node, strategy, why); err != nil || !ok {
		if err == nil {
			err = fmt.Errorf("not started: execution %s is no longer node %s's to run (its lease ran out and it went back to the queue)", x.ID, d.cfg.Node)
		}
		return fail(err)
	}
	info.strategy, info.ran, info.perMinute = strategy, true, d.perMinute(ev)
	// The sandbox is recorded before the script is handed to it: to re-attach
	// after a crash, and so that a run that never reached one is known
	// never to have started (it may then start elsewhere).
	spec.Attached = func(sandbox string) error {
		if err := store.SetSandbox(context.WithoutCancel(ctx), x.ID, d.cfg.Node, sandbox); err != nil {
			return fmt.Errorf("record the execution's sandbox: %w", err)
		}
		return nil
	}
	var res cronium.Result
	if strategy == cronium.StrategyCold {
		if res, err = d.cfg.Engine.Run(ctx, spec); err != nil {
			return fail(err)
		}
	} else {
		template := cronium.Spec{Language: ev.Language, Image: spec.Image, ImageID: spec.ImageID, Limits: limits, Profile: profile, Network: netPolicy}
		mode, owner := pool.Prewarmed, "shared"
		switch strategy {
		case cronium.StrategyReuse:
			mode, owner = pool.Reuse, fmt.Sprintf("user%d", x.UserID) // users never share a reused sandbox
		case cronium.StrategyUser:
			mode, owner = pool.User, fmt.Sprintf("user%d", x.UserID)
			template.Workspace = &cronium.Volume{Name: fmt.Sprintf("cronium-ws-%s-user%d", d.cfg.Node, x.UserID), Size: d.cfg.UserWorkspace}
		}
		// Every limit the container itself enforces is part of the key; the
		// ones the agent enforces per run (timeout, output) travel with the run.
		key := fmt.Sprintf("%s/%s/%s%s/%s/%gcpu/%gguaranteed/%dpids/%dnofile/%dnproc/tmp%s/ws%s/io%d-%d/%s/%s", mode, owner, ev.Language, imageKey(spec.Image, spec.ImageID),
			limits.Memory, limits.CPUs, limits.CPUGuaranteed, limits.Pids, limits.NoFile, limits.NProc, limits.TmpSize, limits.WorkspaceSize,
			limits.IOReadBPS, limits.IOWriteBPS, profile.Name, netPolicy)
		info.pooled = true
		res, info.hit = d.cfg.Pools.Run(ctx, mode, key, func(ctx context.Context) (pool.Sandbox, error) {
			return d.cfg.Engine.NewSandbox(ctx, template, d.cfg.SandboxLifetime)
		}, spec)
	}
	if res.Audit != nil {
		auditUsage(&res, ev, tier)
	}
	if len(res.Output) > 0 {
		if err := d.cfg.Runtime.Output(ctx, x.ID, res.Output); err != nil {
			res.OutputError = err.Error()
		}
		res.Output = nil // stored on the execution, redacted
	}
	if res.Outcome == cronium.EngineError && ctx.Err() != nil {
		res.Outcome = cronium.Cancelled // as in fail: a warm sandbox cancelled while being made
	}
	if res.Outcome == cronium.Cancelled {
		if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
			res.Error = cause.Error()
		}
	}
	return res
}

func (d *Dispatcher) finish(x cronium.Execution, res cronium.Result, info runInfo) {
	ctx := context.Background()
	// Usage is recorded in the whole units reports add up (CPU to the
	// microsecond), with the cost computed from them once, here.
	res.Usage.CPUSeconds = math.Round(max(0, res.Usage.CPUSeconds)*1e6) / 1e6
	if res.Kept != nil {
		res.Kept.Node = d.cfg.Node
	}
	res.Timeline = d.timeline(x.ID)
	if info.queue < 0 && x.StartedAt != nil && !res.EndedAt.IsZero() {
		// Re-attached: the run began before this process took it over.
		res.Phases.Run = max(res.Phases.Run, res.EndedAt.Sub(*x.StartedAt)-res.Phases.Cleanup)
	}
	if !d.cfg.Prices.Zero() {
		res.Usage.CostMicros = d.cfg.Prices.Cost(cronium.Meter(res), res.Outcome != cronium.EngineError)
		res.Usage.Currency = d.cfg.Prices.Unit()
	}
	if info.ran {
		res.Hints = d.hints(ctx, x, res, info)
	}
	f := d.followUps(ctx, x, res)
	// A result is recorded once the store takes it: while it does not
	// answer, this node keeps trying (the execution still counts as
	// running here), until Stop, which leaves it to the next start.
	var finished bool
	var err error
	for wait := 100 * time.Millisecond; ; wait = min(2*wait, 5*time.Second) {
		finished, err = d.cfg.Store.FinishWith(ctx, x.ID, d.cfg.Node, res, "", f)
		if err == nil {
			break
		}
		d.log.Error("record the execution's result; retrying", "execution_id", x.ID, "err", err)
		select {
		case <-d.stopping():
			d.log.Warn("stopping with an execution's result not recorded: the next start finds it running and says it is lost", "execution_id", x.ID)
		case <-time.After(wait):
			continue
		}
		break
	}
	if finished && len(f.Notes) > 0 {
		d.log.Warn("on: actions not done", "execution_id", x.ID, "why", f.Notes)
	}
	if k := res.Kept; k != nil {
		if finished {
			d.keep(x.ID, x.UserID, x.EventID, k.Until)
		} else {
			d.work.Go(func() { d.discard(x.ID, "its result was not recorded here") })
		}
	}
	if finished {
		d.cfg.Metrics.Finished(metrics.Execution{Language: info.language, Strategy: info.strategy, Result: res,
			Queue: info.queue, Start: res.Phases.Create + res.Phases.Start, Pooled: info.pooled, PoolHit: info.hit, Late: info.late})
	}
	d.cfg.Hub.End(x.ID)
	d.mu.Lock()
	delete(d.running, x.ID)
	delete(d.budgets, x.UserID) // their month's usage changed: read it again before the next admission
	d.mu.Unlock()
	if finished || err != nil {
		d.log.Info("execution finished", "execution_id", x.ID, "event", x.Event, "outcome", res.Outcome, "exit_code", res.ExitCode)
	} else {
		d.log.Info("execution ended here, its result not recorded: it was finished already, or is no longer this node's", "execution_id", x.ID, "event", x.Event, "outcome", res.Outcome)
	}
	if finished && len(f.Notifications) > 0 && d.cfg.Notified != nil {
		d.cfg.Notified()
	}
	d.Wake()
}

// auditUsage adds to an audited run's findings what its usage says the
// strict profile would have stopped: more memory or processes than the
// event would get under strict (its own resources, strict's defaults).
func auditUsage(res *cronium.Result, ev cronium.Event, tier cronium.Tier) {
	strict := ev
	strict.Profile = "strict"
	l, err := strict.Limits(tier)
	if err != nil {
		res.Audit.NotObserved = append(res.Audit.NotObserved, "limits: the event's limits under strict: "+err.Error())
		return
	}
	u := res.Usage
	if u.PeakMemory > int64(l.Memory) {
		res.Audit.Findings = append(res.Audit.Findings, cronium.Finding{Kind: "memory", Message: fmt.Sprintf(
			"peak memory %s is above the %s strict would allow: the run would be OOM-killed (set resources.memory to at least %s)", cronium.Size(u.PeakMemory), l.Memory, cronium.Size(u.PeakMemory)*5/4&^(1<<20-1))})
	}
	if u.PidsPeak > 0 {
		if n := u.PidsPeak - agent.AgentThreads; n > l.Pids {
			res.Audit.Findings = append(res.Audit.Findings, cronium.Finding{Kind: "processes", Message: fmt.Sprintf(
				"%d processes and threads at once, above the %d strict would allow (set resources.pids)", n, l.Pids)})
		}
	} else {
		res.Audit.NotObserved = append(res.Audit.NotObserved, "processes: the engine did not say how many processes the run had at once")
	}
}

// hints computes a finished run's optimisation hints, with its event's
// runs of the last 7 days (without them when the store cannot say).
func (d *Dispatcher) hints(ctx context.Context, x cronium.Execution, res cronium.Result, info runInfo) []cronium.Hint {
	in := cronium.HintInput{Strategy: info.strategy, PerMinute: info.perMinute, Prices: d.cfg.Prices}
	if info.forcedCold {
		in.Strategy = "" // cold for a reason of its own: no warm strategy to suggest
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	rows, err := d.cfg.Store.Usage(ctx, store.UsageFilter{UserID: x.UserID, EventID: x.EventID, Since: time.Now().AddDate(0, 0, -7)})
	if err != nil {
		d.log.Debug("read the event's recent usage for hints", "execution_id", x.ID, "err", err)
	}
	for _, r := range rows {
		in.Runs += r.Executions
		in.PeakMemory = max(in.PeakMemory, r.PeakMemory)
	}
	return cronium.Hints(res, in)
}

// maxSamples bounds an execution's timeline kept while it runs (10
// minutes at one a second); a longer run keeps every other one.
const maxSamples = 600

// sampler publishes an execution's usage samples to its followers and
// keeps them for its timeline.
func (d *Dispatcher) sampler(id string) func(cronium.UsageSample) {
	return func(u cronium.UsageSample) {
		d.cfg.Hub.PublishUsage(id, u)
		d.mu.Lock()
		ss := append(d.samples[id], u)
		if len(ss) > maxSamples {
			ss = thin(ss, maxSamples/2)
		}
		d.samples[id] = ss
		d.mu.Unlock()
	}
}

// timeline takes an execution's samples, at most 60, evenly spread.
func (d *Dispatcher) timeline(id string) []cronium.UsageSample {
	d.mu.Lock()
	ss := d.samples[id]
	delete(d.samples, id)
	d.mu.Unlock()
	if len(ss) < 2 {
		return nil
	}
	return thin(ss, 60)
}

// thin keeps n of ss, evenly spread, the last one included.
func thin(ss []cronium.UsageSample, n int) []cronium.UsageSample {
	if len(ss) <= n {
		return ss
	}
	out := make([]cronium.UsageSample, 0, n)
	for i := range n {
		out = append(out, ss[(i+1)*len(ss)/n-1])
	}
	return out
}

// stopping is closed when Stop is called.
func (d *Dispatcher) stopping() <-chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.stop
}

// withTZ returns env with TZ set to the event's zone (UTC when it has
// none), unless the event sets TZ itself: the script's clock reads as its
// schedule does.
func withTZ(env map[string]string, zone string) map[string]string {
	if _, ok := env["TZ"]; ok {
		return env
	}
	if zone == "" {
		zone = "UTC"
	}
	out := make(map[string]string, len(env)+1)
	for k, v := range env {
		out[k] = v
	}
	out["TZ"] = zone
	return out
}

// followUps decides what an execution's end queues, recorded with its
// result in one transaction: the next attempt when the event's retry
// policy says so; otherwise (the last attempt) what its on: actions ask.
func (d *Dispatcher) followUps(ctx context.Context, x cronium.Execution, res cronium.Result) store.FollowUps {
	ev, err := d.eventForRetry(ctx, x.EventID)
	if err != nil {
		d.log.Error("the event could not be read: no retry and no on: action follows", "execution_id", x.ID, "event_id", x.EventID, "outcome", res.Outcome, "err", err)
		return store.FollowUps{}
	}
	if live, err := d.cfg.Store.Event(ctx, x.UserID, ev.Name); err != nil || live.ID != ev.ID {
		// Deleted (or its user deleted) while it ran: nothing of it runs again.
		return store.FollowUps{Notes: []string{"its event was deleted: no retry and no on: action follows"}}
	}
	if p := ev.Retry; res.Outcome != cronium.Succeeded && res.Outcome != cronium.Cancelled && x.Attempt < p.MaxAttempts && retryable(p.On, res.Outcome) {
		wait := Backoff(p, x.Attempt)
		now := time.Now().UTC()
		return store.FollowUps{Retry: &cronium.Execution{
			EventID: x.EventID, UserID: x.UserID, Trigger: cronium.TriggerRetry, Attempt: x.Attempt + 1,
			Strategy: x.Strategy, Priority: x.Priority, Input: x.Input, RetryOf: x.ID, ChainedFrom: x.ChainedFrom, ChainDepth: x.ChainDepth, ChainRoot: x.ChainRoot,
			QueuedAt: now, NotBefore: now.Add(wait),
			Reason: fmt.Sprintf("waiting: retry %d of %d after %s, not before %s", x.Attempt+1, p.MaxAttempts, res.Outcome, now.Add(wait).Format(time.RFC3339)),
		}}
	}
	if ev.On.IsZero() {
		return store.FollowUps{}
	}
	return d.actions(ctx, ev, x, res)
}

// actions turns an event's on: actions for this end into notifications and
// chained executions.
func (d *Dispatcher) actions(ctx context.Context, ev cronium.Event, x cronium.Execution, res cronium.Result) store.FollowUps {
	var f store.FollowUps
	cur, err := d.cfg.Store.Execution(ctx, 0, x.ID) // its output and condition, as the script set them
	if err != nil {
		d.log.Error("on: actions: the execution could not be read; none follows", "execution_id", x.ID, "err", err)
		return f
	}
	excerpt, _ := d.cfg.Store.LogTail(ctx, x.ID, notify.MaxOutput)
	msg := notify.Message{Event: ev.Name, User: ev.User, ExecutionID: x.ID, Outcome: string(res.Outcome), Condition: cur.Condition,
		Error: res.Error, StartedAt: res.StartedAt, FinishedAt: res.EndedAt, Output: excerpt}
	if res.Outcome == cronium.Succeeded || res.Outcome == cronium.Failed {
		code := res.ExitCode
		msg.ExitCode = &code
	}
	now := time.Now().UTC()
	root := x.ChainRoot
	if root == "" {
		root = x.ID
	}
	var notes []string
	for _, k := range ev.On.For(res.Outcome, cur.Condition) {
		for _, a := range k.Actions {
			switch {
			case a.Notify != "":
				m := msg
				m.Reason = k.Reason
				f.Notifications = append(f.Notifications, notify.Delivery{ExecutionID: x.ID, UserID: x.UserID, Channel: a.Notify, Reason: k.Reason, Message: m})
			case x.ChainDepth >= cronium.MaxChainDepth:
				notes = append(notes, fmt.Sprintf("on.%s: trigger %s not run: the chain is %d links long, the most there may be", k.Reason, a.Trigger, x.ChainDepth))
			default:
				target, err := d.cfg.Store.Event(ctx, x.UserID, a.Trigger)
				if err != nil {
					notes = append(notes, fmt.Sprintf("on.%s: trigger %s not run: %v", k.Reason, a.Trigger, err))
					continue
				}
				next := &cronium.Execution{EventID: target.ID, UserID: x.UserID, Trigger: cronium.TriggerChain, Attempt: 1,
					Strategy: target.Strategy, Priority: target.Priority, ChainedFrom: x.ID, ChainDepth: x.ChainDepth + 1, ChainRoot: root, QueuedAt: now,
					Reason: fmt.Sprintf("waiting: triggered by %s's %s (execution %s)", ev.Name, k.Reason, x.ID)}
				switch a.InputFrom {
				case "output":
					next.Input = cur.Output
				case "input":
					next.Input = x.Input
				}
				f.Chained = append(f.Chained, next)
			}
		}
	}
	f.Notes = notes
	return f
}

// eventForRetry reads the event a retry is decided on, trying a few times:
// a busy store must not drop a retry.
func (d *Dispatcher) eventForRetry(ctx context.Context, id int64) (cronium.Event, error) {
	var err error
	for i, wait := 0, 50*time.Millisecond; i < 5; i, wait = i+1, wait*2 {
		var ev cronium.Event
		if ev, err = d.cfg.Store.EventByID(ctx, id); err == nil || errors.Is(err, cronium.ErrNotFound) {
			return ev, err
		}
		select {
		case <-ctx.Done():
			return ev, ctx.Err()
		case <-time.After(wait):
		}
	}
	return cronium.Event{}, err
}

func retryable(on []cronium.Outcome, o cronium.Outcome) bool {
	for _, v := range on {
		if v == o {
			return true
		}
	}
	return false
}

// Backoff is the wait before attempt+1: Backoff doubled per attempt, capped, with ±20% jitter.
func Backoff(p cronium.RetryPolicy, attempt int) time.Duration {
	base := float64(p.Backoff.D()) * math.Pow(2, float64(attempt-1))
	if m := float64(p.MaxBackoff.D()); base > m {
		base = m
	}
	return time.Duration(base * (0.8 + 0.4*rand.Float64()))
}

// recover resumes executions this node was running when it stopped.
func (d *Dispatcher) recover(ctx context.Context) error {
	xs, err := d.cfg.Store.Running(ctx, d.cfg.Node)
	if err != nil {
		return fmt.Errorf("recover running executions: %w", err)
	}
	caps := d.cfg.Engine.Capabilities()
	for _, x := range xs {
		if !caps.Reattach {
			now := time.Now()
			d.finish(x, cronium.Result{ID: x.ID, Outcome: cronium.EngineError, ExitCode: -1, StartedAt: now, EndedAt: now,
				Error: "lost: the node restarted, and the " + caps.Name + " engine cannot re-attach to a running execution"}, unknownRun)
			continue
		}
		d.log.Info("re-attaching to execution", "execution_id", x.ID, "event", x.Event)
		d.launch(x, &cronium.Reattach{})
	}
	return nil
}

// perMinute is how often ev fires, for the hybrid rule (0: on demand).
func (d *Dispatcher) perMinute(ev cronium.Event) float64 {
	if ev.Schedule == "" {
		return 0
	}
	key := ev.Schedule + "|" + ev.Timezone
	d.mu.Lock()
	v, ok := d.rates[key]
	d.mu.Unlock()
	if ok {
		return v
	}
	sched, err := schedule.Parse(ev.Schedule, ev.Timezone)
	if err != nil {
		return 0
	}
	v = sched.PerMinute(time.Now())
	d.mu.Lock()
	d.rates[key] = v
	d.mu.Unlock()
	return v
}

// secretValues decrypts the secrets the event references, by name.
func (d *Dispatcher) secretValues(ctx context.Context, x cronium.Execution, ev cronium.Event) (map[string][]byte, error) {
	if len(ev.Secrets) == 0 {
		return nil, nil
	}
	if d.cfg.Keyring == nil {
		return nil, errors.New("the event references secrets but no master key is configured (master_key_file or CRONIUM_MASTER_KEYS)")
	}
	out := map[string][]byte{}
	for _, name := range ev.Secrets {
		sealed, err := d.cfg.Store.Secret(ctx, x.UserID, name)
		if err != nil {
			return nil, err
		}
		v, err := d.cfg.Keyring.Open(sealed.KeyID, sealed.Blob, SecretAAD(x.UserID, name))
		if err != nil {
			return nil, fmt.Errorf("secret %s: %w", name, err)
		}
		out[name] = v
	}
	return out, nil
}

// SecretAAD binds a sealed secret to its owner and name.
func SecretAAD(userID int64, name string) []byte {
	return []byte(fmt.Sprintf("user:%d/name:%s", userID, name))
}

func values(m map[string][]byte) [][]byte {
	var out [][]byte
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

// context is what the event helper returns: Cronium's documented fields
// (id, name, type, runLocation, successCount, failureCount) and ours.
func (d *Dispatcher) context(ctx context.Context, x cronium.Execution, ev cronium.Event, l cronium.Limits) json.RawMessage {
	ok, bad, _ := d.cfg.Store.EventCounts(ctx, ev.ID)
	types := map[cronium.Language]string{cronium.Bash: "BASH", cronium.Python: "PYTHON", cronium.Node: "NODEJS"}
	b, _ := json.Marshal(map[string]any{
		"id": ev.ID, "name": ev.Name, "type": types[ev.Language], "runLocation": "local",
		"successCount": ok, "failureCount": bad, "user": ev.User,
		"executionId": x.ID, "trigger": x.Trigger, "scheduledAt": x.ScheduledAt, "attempt": x.Attempt,
		"limits": l, "timezone": ev.Timezone, "schedule": ev.Schedule,
	})
	return b
}

// logSink stores an execution's output in batches, capped, and publishes
// it live. Within the cap it keeps the head and the tail of the output,
// where errors usually are: the first half of the cap is stored (and
// published) as it comes; after that the newest output is held back, the
// oldest of it dropped to stay within the other half, and stored when the
// run ends, after a line that says how much was left out.
type logSink struct {
	d     *Dispatcher
	id    string
	head  int64 // bytes stored as they come, at most
	limit int64 // the cap: head and tail together

	flushMu sync.Mutex // serialises flushes so chunks are stored and published in order
	secrets [][]byte   // redacted again here, a second line behind the agent's

	mu        sync.Mutex // guards the fields below
	pending   []cronium.OutputChunk
	stored    int64
	inTail    bool         // the head is full: output goes to tail
	tail      tailbuf.Tail // the newest output
	truncated bool         // the tail dropped some, as the store is told once (truncSent)
	truncSent bool
	lastSeq   uint64
	failing   bool // the last store of logs failed (said once)
}

// markerRoom is what the cap leaves for the line that says what was omitted.
const markerRoom = 256

func newLogSink(d *Dispatcher, id string, limit int64) *logSink {
	return &logSink{d: d, id: id, head: limit / 2, limit: limit}
}

// resume starts the sink of a re-attached execution with the bytes stored
// before: the head and the cap go on from there.
func (s *logSink) resume(stored int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stored = stored
	if stored >= s.head {
		s.inTail = true
		s.tail.Max = max(s.limit-stored-markerRoom, 0)
	}
}

func (s *logSink) add(c cronium.OutputChunk) {
	s.mu.Lock()
	if c.Seq <= s.lastSeq {
		s.mu.Unlock()
		return
	}
	s.lastSeq = c.Seq
	c.Time = time.Now().UTC()
	c.Data = append([]byte(nil), c.Data...)
	if len(s.secrets) > 0 {
		c.Data = redact.Bytes(c.Data, s.secrets)
	}
	if !s.inTail && s.stored+int64(len(c.Data)) > s.head {
		// The tail gets all of the cap the head did not use: output that
		// fits the cap is kept whole.
		s.inTail = true
		s.tail.Max = max(s.limit-s.stored-markerRoom, 0)
	}
	if s.inTail {
		s.tail.Add(tailbuf.Chunk{Stream: uint8(c.Stream), Seq: c.Seq, Data: c.Data, Time: c.Time})
		s.truncated = s.tail.Dropped() > 0
		s.mu.Unlock()
		return
	}
	s.stored += int64(len(c.Data))
	s.pending = append(s.pending, c)
	big := len(s.pending) >= 256
	s.mu.Unlock()
	if big {
		s.flush()
	}
}

// closeTail moves the tail into pending, after a line saying what was left
// out. Called once, when the run has ended.
func (s *logSink) closeTail() {
	s.mu.Lock()
	defer s.mu.Unlock()
	tail := s.tail.Take()
	if len(tail) > 0 && s.tail.Dropped() > 0 {
		marker := fmt.Sprintf("\n[cronium] log truncated: %d bytes left out here; stored are the first %d and the last %d bytes\n", s.tail.Dropped(), s.stored, s.tail.Bytes())
		tail[0].Data = append([]byte(marker), tail[0].Data...)
	}
	for _, c := range tail {
		s.stored += int64(len(c.Data))
		s.pending = append(s.pending, cronium.OutputChunk{Seq: c.Seq, Stream: cronium.Stream(c.Stream), Data: c.Data, Time: c.Time})
	}
}

// flush stores the pending chunks and then publishes them. It reports
// whether they were stored (or there were none).
func (s *logSink) flush() bool {
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	s.mu.Lock()
	batch, trunc := s.pending, s.truncated && !s.truncSent
	s.pending = nil
	s.mu.Unlock()
	if len(batch) == 0 && !trunc {
		return true
	}
	if err := s.d.cfg.Store.AppendLogs(context.Background(), s.id, batch, trunc); err != nil {
		// Kept for the next flush, not published: what followers see is
		// always what the store has.
		s.mu.Lock()
		if !s.failing {
			s.d.log.Error("store logs; keeping them until the store takes them", "execution_id", s.id, "chunks", len(batch), "err", err)
		}
		s.failing = true
		s.pending = append(batch, s.pending...)
		s.mu.Unlock()
		return false
	}
	s.mu.Lock()
	if s.failing {
		s.d.log.Info("stored the logs kept while the store did not take them", "execution_id", s.id)
		s.failing = false
	}
	s.mu.Unlock()
	if trunc {
		s.mu.Lock()
		s.truncSent = true
		s.mu.Unlock()
	}
	// Published only once stored: a follower that subscribes and then reads
	// the store can never miss a chunk.
	for _, c := range batch {
		s.d.cfg.Hub.Publish(s.id, c)
	}
	return true
}

// finish flushes what is left at the end of the run, the tail included,
// trying a few times when the store fails.
func (s *logSink) finish() {
	s.closeTail()
	for i, wait := 0, 100*time.Millisecond; !s.flush() && i < 5; i, wait = i+1, wait*2 {
		time.Sleep(wait)
	}
}

func (s *logSink) startFlusher() (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() { // owned by execute: stopped before it returns
		defer close(finished)
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				s.flush()
			}
		}
	}()
	return func() { close(done); <-finished }
}

// imageKey is the image part of a pool key: empty for the engine's runtime
// image, and with the exact image ID when there is one (see Config.Bases).
func imageKey(image, id string) string {
	if image == "" {
		return ""
	}
	if id != "" {
		return "@" + image + "#" + id
	}
	return "@" + image
}
