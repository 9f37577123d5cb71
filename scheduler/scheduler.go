// Package scheduler turns event schedules into queued executions, exactly
// once per (event, scheduled time): the execution insert and the event's
// last-fire mark are one transaction, and a unique index on (event,
// scheduled time) stops any duplicate. After downtime the event's missed-run
// policy decides what runs; at each fire its concurrency policy decides
// whether to run alongside, skip, or replace what is still active.
package scheduler

import (
	"container/heap"
	"context"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	cronium "github.com/cronium/executor"
	"github.com/cronium/executor/schedule"
	"github.com/cronium/executor/store"
)

// Dispatcher is what the scheduler needs from the dispatcher.
type Dispatcher interface {
	Wake()
	Cancel(ctx context.Context, id, reason string) error
}

// Config configures a Scheduler.
type Config struct {
	// Store holds events and the queue. Required.
	Store store.Scheduling
	// Dispatcher is woken after fires and cancels replaced executions. Required.
	Dispatcher Dispatcher
	// Clock defaults to the wall clock.
	Clock Clock
	// Resync is how often events are re-read even without Notify. Default 30s.
	Resync time.Duration
	// Logger defaults to discard.
	Logger *slog.Logger
	// Leader, when set, says whether this scheduler may fire now: with
	// several nodes on one store, one leads (the others keep their
	// schedules, for NextFire, and fire nothing). Nil: this one always fires.
	Leader func(ctx context.Context) bool
	// Ahead is how long before its time a fire of an event whose runs may
	// overlap (concurrency allow) is written to the queue, not to be
	// started before its time (its not-before): at the second itself only
	// the start remains. Pausing or rescheduling the event removes what
	// was written ahead. 0: each fire is written at its time.
	Ahead time.Duration
	// Grace is how far back a scheduler that just became leader fires the
	// times its predecessor may have missed, whatever the events'
	// missed_runs policy says (older ones follow it). Default 1m.
	Grace time.Duration
	// Late, when set, is told by how much each fire was written after its
	// time (0 when written on time or ahead): a stalled scheduler shows.
	Late func(time.Duration)
}

// Scheduler fires scheduled events. Start it once; it is safe for concurrent use.
type Scheduler struct {
	cfg    Config
	log    *slog.Logger
	notify chan struct{}

	mu      sync.Mutex // guards the fields below
	entries map[int64]*entry
	queue   fireHeap
	stop    chan struct{}
	done    chan struct{}
	started bool
	fired   int64
	skipped int64
	// leading is whether this scheduler fired last time it asked Leader;
	// one that starts leading re-reads every event (takeover).
	leading  bool
	takeover time.Time // when it last took over: fires after it are not missed
}

type entry struct {
	ev     cronium.Event
	userID int64
	sched  *schedule.Schedule
	key    string
	next   time.Time
	// fireAt is when next is written to the queue: next, or Ahead before
	// it for an event whose runs may overlap (see plan).
	fireAt time.Time
	index  int
}

// plan sets e.fireAt from e.next (s.mu held).
func (s *Scheduler) plan(e *entry) {
	e.fireAt = e.next
	if c := e.ev.Concurrency; s.cfg.Ahead > 0 && (c == "" || c == cronium.ConcurrencyAllow) {
		e.fireAt = e.next.Add(-s.cfg.Ahead)
	}
}

// later is the later of a and b.
func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// New returns a stopped scheduler.
func New(cfg Config) (*Scheduler, error) {
	if cfg.Store == nil || cfg.Dispatcher == nil {
		return nil, fmt.Errorf("scheduler: Store and Dispatcher are required")
	}
	if cfg.Clock == nil {
		cfg.Clock = RealClock{}
	}
	if cfg.Resync <= 0 {
		cfg.Resync = 30 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Grace <= 0 {
		cfg.Grace = time.Minute
	}
	return &Scheduler{cfg: cfg, log: cfg.Logger, notify: make(chan struct{}, 1), entries: map[int64]*entry{}}, nil
}

// Start loads the events, handles runs missed while the scheduler was down,
// and starts firing. It returns once running.
func (s *Scheduler) Start(ctx context.Context) error {
	s.mu.Lock()
	if s.started {
		s.mu.Unlock()
		return nil
	}
	s.started = true
	s.stop, s.done = make(chan struct{}), make(chan struct{})
	s.mu.Unlock()
	if err := s.sync(ctx); err != nil {
		return err
	}
	go s.loop()
	return nil
}

// Stop stops firing and waits for the loop to end. Safe to call twice.
func (s *Scheduler) Stop(ctx context.Context) error {
	s.mu.Lock()
	if !s.started {
		s.mu.Unlock()
		return nil
	}
	s.started = false
	close(s.stop)
	s.mu.Unlock()
	select {
	case <-s.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Notify tells the scheduler that events changed; it re-reads them at once.
func (s *Scheduler) Notify() {
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

// NextFire returns when the scheduler will next fire the event with this
// ID, and false if it has not queued the event (on demand, paused, not
// read yet, or a schedule with no next time).
func (s *Scheduler) NextFire(eventID int64) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.entries[eventID]
	if !ok || e.index < 0 {
		return time.Time{}, false
	}
	return e.next, true
}

// Fired returns how many executions the scheduler has enqueued.
func (s *Scheduler) Fired() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fired
}

// Skipped returns how many scheduled runs were skipped: the event's
// earlier runs were still queued, or concurrency forbid found one active.
func (s *Scheduler) Skipped() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.skipped
}

func (s *Scheduler) skip() {
	s.mu.Lock()
	s.skipped++
	s.mu.Unlock()
}

// Events returns how many events are scheduled.
func (s *Scheduler) Events() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.entries)
}

func (s *Scheduler) loop() {
	defer close(s.done)
	// The loop's store calls end with Stop (a fire not stored is fired
	// again at the next start: the unique index makes that safe).
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-s.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	resync := s.cfg.Clock.After(s.cfg.Resync)
	for {
		s.mu.Lock()
		var wait <-chan time.Time
		if len(s.queue) > 0 {
			wait = s.cfg.Clock.After(s.queue[0].fireAt.Sub(s.cfg.Clock.Now()))
		}
		s.mu.Unlock()
		select {
		case <-s.stop:
			return
		case <-s.notify:
			if err := s.sync(ctx); err != nil {
				s.log.Error("re-read events", "err", err)
			}
		case <-resync:
			resync = s.cfg.Clock.After(s.cfg.Resync)
			if err := s.sync(ctx); err != nil {
				s.log.Error("re-read events", "err", err)
			}
		case <-wait:
			if err := s.fireDue(ctx); err != nil {
				s.log.Error("fire due events; retrying in a second", "err", err)
				select {
				case <-s.stop:
					return
				case <-s.cfg.Clock.After(time.Second):
				}
			}
		}
	}
}

// sync reconciles the in-memory schedule with the store: new and changed
// events are (re)planned, with missed runs handled; gone ones are dropped.
func (s *Scheduler) sync(ctx context.Context) error {
	leading, _ := s.lead(ctx)
	evs, err := s.cfg.Store.ScheduledEvents(ctx)
	if err != nil {
		return err
	}
	now := s.cfg.Clock.Now()
	seen := map[int64]bool{}
	var catchUp []fire
	s.mu.Lock()
	for _, se := range evs {
		ev := se.Event
		seen[ev.ID] = true
		key := ev.Schedule + "|" + ev.Timezone + "|" + ev.UpdatedAt.String()
		if e, ok := s.entries[ev.ID]; ok && e.key == key {
			e.ev = ev
			continue
		}
		sched, err := schedule.Parse(ev.Schedule, ev.Timezone)
		if err != nil {
			s.log.Error("event has a bad schedule; not scheduled", "event", ev.Name, "user", ev.User, "err", err)
			continue
		}
		e := &entry{ev: ev, userID: se.UserID, sched: sched, key: key, index: -1}
		if old, ok := s.entries[ev.ID]; ok && old.index >= 0 {
			heap.Remove(&s.queue, old.index)
		}
		s.entries[ev.ID] = e
		if se.LastFire.IsZero() {
			// First sight: from now on, fires count; nothing before now is "missed".
			e.next = next(sched, now)
			catchUp = append(catchUp, fire{e: e, mark: now})
		} else {
			policy, _ := schedule.ParseMissedPolicy(ev.MissedRuns)
			run, next := sched.CatchUp(se.LastFire, now, policy, ev.StartingDeadline.D())
			if !s.takeover.IsZero() {
				run = graceRuns(sched, se.LastFire, now.Add(-s.cfg.Grace), now, run)
			}
			if !next.After(now) {
				next = time.Time{} // never, or a broken answer: see push
			}
			e.next = next
			for _, t := range run {
				catchUp = append(catchUp, fire{e: e, at: t})
			}
			if len(run) == 0 && sched.Next(se.LastFire).Before(next) {
				catchUp = append(catchUp, fire{e: e, mark: now}) // skipped: remember they were handled
			}
		}
		s.push(e)
	}
	for id, e := range s.entries {
		if !seen[id] {
			if e.index >= 0 {
				heap.Remove(&s.queue, e.index)
			}
			delete(s.entries, id)
		}
	}
	s.takeover = time.Time{}
	s.mu.Unlock()
	if !leading {
		return nil // the leader fires and records them
	}
	return s.fire(ctx, catchUp)
}

// lead asks Leader (when set) whether this scheduler fires now. One that
// starts leading forgets its plan and says so (took): the next sync
// re-plans every event from the store's last fires, as a takeover. Times
// since an event's last fire that are younger than Grace are then fired
// (the previous leader may have died before firing them), older ones follow
// the event's missed_runs policy; a time the old leader did fire is a no-op
// (the unique (event, time) index).
func (s *Scheduler) lead(ctx context.Context) (leading, took bool) {
	if s.cfg.Leader == nil {
		return true, false
	}
	leading = s.cfg.Leader(ctx)
	s.mu.Lock()
	defer s.mu.Unlock()
	if leading && !s.leading {
		s.log.Info("this node leads the scheduler now: re-reading every event", "grace", s.cfg.Grace)
		s.entries, s.queue, took = map[int64]*entry{}, nil, true
		s.takeover = s.cfg.Clock.Now()
	}
	s.leading = leading
	return leading, took
}

// push queues e, unless its schedule has no next time (it matches no time
// in the 401 years Next searches, or its next time is not after now, which
// Next never returns): then it stays known, out of the queue, and is said
// once, so one event can never keep the scheduler busy.
func (s *Scheduler) push(e *entry) {
	if e.next.IsZero() {
		e.index = -1
		s.log.Error(unscheduled, "event", e.ev.Name, "user", e.ev.User, "schedule", e.ev.Schedule, "timezone", e.ev.Timezone)
		return
	}
	s.plan(e)
	heap.Push(&s.queue, e)
}

const unscheduled = "event's schedule has no next fire time: not scheduled until it changes or the server restarts"

// graceRuns adds to run the fire times in (max(last, from), now], at most
// MaxQueuedFires of the newest, in order.
func graceRuns(sched *schedule.Schedule, last, from, now time.Time, run []time.Time) []time.Time {
	if from.Before(last) {
		from = last
	}
	have := map[time.Time]bool{}
	for _, t := range run {
		have[t] = true
	}
	for t := sched.Next(from); !t.IsZero() && !t.After(now); t = sched.Next(t) {
		if !have[t] {
			run = append(run, t)
			have[t] = true
		}
	}
	sort.Slice(run, func(i, j int) bool { return run[i].Before(run[j]) })
	if len(run) > MaxQueuedFires {
		run = run[len(run)-MaxQueuedFires:]
	}
	return run
}

// next is sched.Next(now), or the zero time if that is not after now.
func next(sched *schedule.Schedule, now time.Time) time.Time {
	if n := sched.Next(now); n.After(now) {
		return n
	}
	return time.Time{}
}

// fire is one scheduled time of one event, or (mark set) a note that times up to mark were handled.
type fire struct {
	e    *entry
	at   time.Time
	mark time.Time
}

func (s *Scheduler) fireDue(ctx context.Context) error {
	leading, took := s.lead(ctx)
	if took {
		return s.sync(ctx)
	}
	now := s.cfg.Clock.Now()
	var due []fire
	s.mu.Lock()
	for len(s.queue) > 0 && !s.queue[0].fireAt.After(now) {
		e := s.queue[0]
		due = append(due, fire{e: e, at: e.next})
		// Fires between e.next and now (a stalled process) are skipped, not burst.
		e.next = next(e.sched, later(e.next, now))
		if e.next.IsZero() {
			heap.Pop(&s.queue)
			s.log.Error(unscheduled, "event", e.ev.Name, "user", e.ev.User, "schedule", e.ev.Schedule, "timezone", e.ev.Timezone)
			continue
		}
		s.plan(e)
		heap.Fix(&s.queue, 0)
	}
	s.mu.Unlock()
	if !leading {
		return nil // the leader fires these
	}
	if s.cfg.Late != nil {
		for _, f := range due {
			s.cfg.Late(max(0, now.Sub(f.at)))
		}
	}
	if err := s.fire(ctx, due); err != nil {
		// Nothing of the batch is stored: put the times back so the next
		// wake-up fires them again (the unique index makes that safe).
		s.mu.Lock()
		for _, f := range due {
			switch {
			case f.e.index >= 0 && f.at.Before(f.e.next):
				f.e.next = f.at
				s.plan(f.e)
				heap.Fix(&s.queue, f.e.index)
			case f.e.index < 0 && s.entries[f.e.ev.ID] == f.e:
				f.e.next = f.at // its last fire: out of the queue since
				s.plan(f.e)
				heap.Push(&s.queue, f.e)
			}
		}
		s.mu.Unlock()
		return err
	}
	return nil
}

// fire applies concurrency policies and enqueues, batching plain fires into one transaction.
// MaxQueuedFires is how many scheduled runs of one event may wait in the
// queue: a schedule that fires faster than its runs end (concurrency
// allow) skips fires past it instead of growing the queue without end.
const MaxQueuedFires = 10

func (s *Scheduler) fire(ctx context.Context, fs []fire) error {
	store := s.cfg.Store
	var ids []int64
	for _, f := range fs {
		if f.mark.IsZero() {
			ids = append(ids, f.e.ev.ID)
		}
	}
	queued, err := store.QueuedCounts(ctx, ids)
	if err != nil {
		return err
	}
	var batch []*cronium.Execution
	var times []time.Time
	for _, f := range fs {
		ev := f.e.ev
		if !f.mark.IsZero() {
			if err := store.AdvanceFire(ctx, ev.ID, f.mark); err != nil {
				return err
			}
			continue
		}
		if queued[ev.ID] >= MaxQueuedFires {
			s.log.Warn("skipped scheduled run: the event's earlier runs are still queued", "event", ev.Name, "user", ev.User, "scheduled_at", f.at, "queued", queued[ev.ID])
			s.skip()
			if err := store.AdvanceFire(ctx, ev.ID, f.at); err != nil {
				return err
			}
			continue
		}
		queued[ev.ID]++
		if ev.Concurrency == cronium.ConcurrencyForbid || ev.Concurrency == cronium.ConcurrencyReplace {
			active, err := store.Active(ctx, ev.ID)
			if err != nil {
				return err
			}
			if len(active) > 0 && ev.Concurrency == cronium.ConcurrencyForbid {
				s.log.Info("skipped scheduled run: concurrency forbid and an execution is active", "event", ev.Name, "user", ev.User, "scheduled_at", f.at)
				s.skip()
				if err := store.AdvanceFire(ctx, ev.ID, f.at); err != nil {
					return err
				}
				continue
			}
			for _, x := range active {
				if x.ScheduledAt != nil && x.ScheduledAt.Equal(f.at) {
					continue // this very fire, by another node: not replaced by itself
				}
				reason := "replaced by the run scheduled at " + f.at.UTC().Format(time.RFC3339)
				if err := s.cfg.Dispatcher.Cancel(ctx, x.ID, reason); err != nil {
					s.log.Warn("cancel replaced execution", "execution_id", x.ID, "err", err)
				}
			}
		}
		at := f.at.UTC()
		batch = append(batch, &cronium.Execution{
			EventID: ev.ID, UserID: f.e.userID, Trigger: cronium.TriggerSchedule, ScheduledAt: &at,
			Attempt: 1, Strategy: ev.Strategy, Priority: ev.Priority,
			NotBefore: at, // written ahead of its time, it waits for it
		})
		times = append(times, at)
	}
	if len(batch) == 0 {
		return nil
	}
	n, err := store.EnqueueMany(ctx, batch, times)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.fired += int64(n)
	s.mu.Unlock()
	s.cfg.Dispatcher.Wake()
	if w, ok := s.cfg.Dispatcher.(interface{ WakeAt(time.Time) }); ok {
		first := times[0]
		for _, t := range times {
			if t.Before(first) {
				first = t
			}
		}
		if first.After(s.cfg.Clock.Now()) {
			w.WakeAt(first) // written ahead: the dispatcher looks again at its time
		}
	}
	return nil
}

// fireHeap orders entries by next fire time.
type fireHeap []*entry

func (h fireHeap) Len() int           { return len(h) }
func (h fireHeap) Less(i, j int) bool { return h[i].fireAt.Before(h[j].fireAt) }
func (h fireHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i]; h[i].index = i; h[j].index = j }
func (h *fireHeap) Push(x any)        { e := x.(*entry); e.index = len(*h); *h = append(*h, e) }
func (h *fireHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	e.index = -1
	return e
}
