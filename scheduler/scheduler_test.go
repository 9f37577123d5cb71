package scheduler

import (
	"context"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	cronium "github.com/cronium/executor"
	"github.com/cronium/executor/sqlite"
)

// fakeDispatcher stands in for the dispatcher at its seam: it cancels
// queued executions in the real store and counts wake-ups.
type fakeDispatcher struct {
	store *sqlite.Store
	mu    sync.Mutex
	wakes int
}

func (f *fakeDispatcher) Wake() { f.mu.Lock(); f.wakes++; f.mu.Unlock() }
func (f *fakeDispatcher) Cancel(ctx context.Context, id, reason string) error {
	_, err := f.store.CancelQueued(ctx, id, reason)
	return err
}

type bundle struct {
	store *sqlite.Store
	clock *FakeClock
	disp  *fakeDispatcher
	user  cronium.User
	path  string
}

func setup(t *testing.T, start time.Time) *bundle {
	t.Helper()
	path := filepath.Join(t.TempDir(), "cronium.db")
	st, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	u, err := st.CreateUser(context.Background(), "alice", "pro", false)
	if err != nil {
		t.Fatal(err)
	}
	return &bundle{store: st, clock: NewFakeClock(start), disp: &fakeDispatcher{store: st}, user: u, path: path}
}

func (b *bundle) event(t *testing.T, name, sched, tz string, mod func(*cronium.Event)) cronium.Event {
	t.Helper()
	ev := cronium.Event{Name: name, Language: cronium.Bash, Script: "echo hi", Schedule: sched, Timezone: tz}
	if mod != nil {
		mod(&ev)
	}
	if err := ev.Normalize(cronium.DefaultTiers()["pro"]); err != nil {
		t.Fatal(err)
	}
	if _, err := b.store.PutEvent(context.Background(), b.user.ID, &ev); err != nil {
		t.Fatal(err)
	}
	return ev
}

func (b *bundle) start(t *testing.T) *Scheduler {
	t.Helper()
	s, err := New(Config{Store: b.store, Dispatcher: b.disp, Clock: b.clock, Resync: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Stop(context.Background()) })
	return s
}

// scheduled returns the scheduled times of the event's executions, in order.
func (b *bundle) scheduled(t *testing.T, event string) []time.Time {
	t.Helper()
	xs, err := b.store.Executions(context.Background(), sqlite.ExecutionFilter{Event: event, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	var out []time.Time
	for _, x := range xs {
		if x.ScheduledAt != nil {
			out = append(out, *x.ScheduledAt)
		}
	}
	// By scheduled time: in a synctest bubble the wall clock stands still,
	// so executions queued together have the same queue time.
	slices.SortFunc(out, func(a, b time.Time) int { return a.Compare(b) })
	return out
}

// waitFor polls until the event has n scheduled executions.
func (b *bundle) waitFor(t *testing.T, event string, n int) []time.Time {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for {
		got := b.scheduled(t, event)
		if len(got) == n {
			return got
		}
		if len(got) > n || time.Now().After(deadline) {
			t.Fatalf("event %s has %d scheduled executions %v, want %d", event, len(got), got, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// settle waits until the scheduler loop has done everything a clock change
// asked of it (every goroutine of the test's bubble is blocked), for checks
// that nothing happened.
func settle() { synctest.Wait() }

func utc(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t.UTC()
}

func wantTimes(t *testing.T, got []time.Time, want ...string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d times %v, want %v", len(got), got, want)
	}
	for i := range want {
		if !got[i].Equal(utc(want[i])) {
			t.Errorf("time %d = %s, want %s", i, got[i].UTC().Format(time.RFC3339), want[i])
		}
	}
}

func TestSecondsField(t *testing.T) {
	b := setup(t, utc("2026-06-01T10:00:00Z"))
	b.event(t, "tick", "*/15 * * * * *", "UTC", nil)
	b.start(t)
	for i := 1; i <= 4; i++ {
		b.clock.Advance(15 * time.Second)
		b.waitFor(t, "tick", i)
	}
	wantTimes(t, b.scheduled(t, "tick"), "2026-06-01T10:00:15Z", "2026-06-01T10:00:30Z", "2026-06-01T10:00:45Z", "2026-06-01T10:01:00Z")
}

func TestTimeZone(t *testing.T) { synctest.Test(t, testTimeZone) }

func testTimeZone(t *testing.T) {
	b := setup(t, utc("2026-06-01T06:00:00Z"))
	b.event(t, "berlin", "0 9 * * *", "Europe/Berlin", nil)
	b.event(t, "newyork", "0 9 * * *", "America/New_York", nil)
	b.start(t)
	b.clock.Set(utc("2026-06-01T07:00:00Z")) // 09:00 CEST
	wantTimes(t, b.waitFor(t, "berlin", 1), "2026-06-01T07:00:00Z")
	b.clock.Set(utc("2026-06-01T13:00:00Z")) // 09:00 EDT
	wantTimes(t, b.waitFor(t, "newyork", 1), "2026-06-01T13:00:00Z")
	settle()
	if n := len(b.scheduled(t, "berlin")); n != 1 {
		t.Errorf("berlin fired %d times by 13:00 UTC, want 1", n)
	}
}

func TestDaylightSavingTransition(t *testing.T) { synctest.Test(t, testDaylightSavingTransition) }

func testDaylightSavingTransition(t *testing.T) {
	// Europe/Berlin springs forward on 2026-03-29 at 02:00 -> 03:00: 02:30 does not exist
	// that day, so the job runs once at 03:00 CEST (01:00 UTC), then at 02:30 the next day.
	// It falls back on 2026-10-25 at 03:00 -> 02:00: 02:30 happens twice; the job runs once.
	b := setup(t, utc("2026-03-28T12:00:00Z"))
	b.event(t, "nightly", "30 2 * * *", "Europe/Berlin", nil)
	b.start(t)
	for h := 1; h <= 40; h++ {
		b.clock.Set(utc("2026-03-28T12:00:00Z").Add(time.Duration(h) * time.Hour))
		settle()
	}
	wantTimes(t, b.scheduled(t, "nightly"), "2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z")

	b2 := setup(t, utc("2026-10-24T12:00:00Z"))
	b2.event(t, "nightly", "30 2 * * *", "Europe/Berlin", nil)
	b2.start(t)
	for m := 30; m <= 24*60; m += 30 {
		b2.clock.Set(utc("2026-10-24T12:00:00Z").Add(time.Duration(m) * time.Minute))
		if m%120 == 0 {
			settle()
		}
	}
	settle()
	wantTimes(t, b2.scheduled(t, "nightly"), "2026-10-25T00:30:00Z")
}

func TestMissedRunsSkip(t *testing.T) { synctest.Test(t, testMissedRunsSkip) }

func testMissedRunsSkip(t *testing.T) {
	b := setup(t, utc("2026-06-01T10:00:30Z"))
	b.event(t, "minutely", "* * * * *", "UTC", nil)
	s := b.start(t)
	b.clock.Set(utc("2026-06-01T10:01:30Z"))
	b.waitFor(t, "minutely", 1)
	s.Stop(context.Background())

	b.clock.Set(utc("2026-06-01T10:10:30Z")) // down for nine minutes
	b.start(t)
	settle()
	if got := b.scheduled(t, "minutely"); len(got) != 1 {
		t.Fatalf("skip policy ran missed fires: %v", got)
	}
	b.clock.Set(utc("2026-06-01T10:11:00Z"))
	wantTimes(t, b.waitFor(t, "minutely", 2), "2026-06-01T10:01:00Z", "2026-06-01T10:11:00Z")
}

func TestMissedRunsRunOnce(t *testing.T) { synctest.Test(t, testMissedRunsRunOnce) }

func testMissedRunsRunOnce(t *testing.T) {
	b := setup(t, utc("2026-06-01T10:00:30Z"))
	b.event(t, "minutely", "* * * * *", "UTC", func(e *cronium.Event) { e.MissedRuns = "run_once" })
	b.event(t, "strict", "* * * * *", "UTC", func(e *cronium.Event) {
		e.MissedRuns = "run_once"
		e.StartingDeadline = cronium.Duration(10 * time.Second)
	})
	s := b.start(t)
	b.clock.Set(utc("2026-06-01T10:01:30Z"))
	b.waitFor(t, "minutely", 1)
	b.waitFor(t, "strict", 1)
	s.Stop(context.Background())

	b.clock.Set(utc("2026-06-01T10:10:30Z"))
	b.start(t)
	// Exactly one catch-up run, for the latest missed time (10:10), not nine.
	wantTimes(t, b.waitFor(t, "minutely", 2), "2026-06-01T10:01:00Z", "2026-06-01T10:10:00Z")
	// The latest missed time is 30s old, past the 10s starting deadline: nothing runs.
	settle()
	if got := b.scheduled(t, "strict"); len(got) != 1 {
		t.Errorf("run_once ran a fire older than its starting deadline: %v", got)
	}
}

func TestRestartNeverFiresTwice(t *testing.T) { synctest.Test(t, testRestartNeverFiresTwice) }

func testRestartNeverFiresTwice(t *testing.T) {
	b := setup(t, utc("2026-06-01T10:00:00Z"))
	b.event(t, "every5", "@every 5s", "UTC", func(e *cronium.Event) { e.MissedRuns = "run_once" })
	for i := 0; i < 3; i++ {
		s := b.start(t)
		b.clock.Advance(5 * time.Second)
		b.waitFor(t, "every5", i+1)
		s.Stop(context.Background())
	}
	// A restart at the same instant as the last fire replays nothing.
	b.start(t)
	settle()
	got := b.scheduled(t, "every5")
	seen := map[time.Time]bool{}
	for _, g := range got {
		if seen[g] {
			t.Errorf("scheduled time %s fired twice", g)
		}
		seen[g] = true
	}
	if len(got) != 3 {
		t.Errorf("got %d fires %v, want 3", len(got), got)
	}
}

func TestConcurrencyPolicies(t *testing.T) { synctest.Test(t, testConcurrencyPolicies) }

func testConcurrencyPolicies(t *testing.T) {
	b := setup(t, utc("2026-06-01T10:00:00Z"))
	for _, p := range []cronium.ConcurrencyPolicy{cronium.ConcurrencyAllow, cronium.ConcurrencyForbid, cronium.ConcurrencyReplace} {
		b.event(t, string(p), "@every 10s", "UTC", func(e *cronium.Event) { e.Concurrency = p })
	}
	b.start(t)
	// Nothing dispatches in this test, so the first fire stays queued: active.
	b.clock.Advance(10 * time.Second)
	for _, p := range []string{"allow", "forbid", "replace"} {
		b.waitFor(t, p, 1)
	}
	b.clock.Advance(10 * time.Second)
	b.waitFor(t, "allow", 2)
	b.waitFor(t, "replace", 2)
	settle()
	if n := len(b.scheduled(t, "forbid")); n != 1 {
		t.Errorf("forbid: %d executions, want 1 (the second fire skipped while the first is active)", n)
	}
	ctx := context.Background()
	status := func(event string) map[string]int {
		xs, _ := b.store.Executions(ctx, sqlite.ExecutionFilter{Event: event})
		m := map[string]int{}
		for _, x := range xs {
			m[string(x.Status)+"/"+string(x.Outcome)]++
		}
		return m
	}
	if got := status("allow"); got["queued/"] != 2 {
		t.Errorf("allow: %v, want two queued side by side", got)
	}
	if got := status("replace"); got["queued/"] != 1 || got["finished/cancelled"] != 1 {
		t.Errorf("replace: %v, want the old one cancelled and the new one queued", got)
	}
	xs, _ := b.store.Executions(ctx, sqlite.ExecutionFilter{Event: "replace", Status: cronium.StatusFinished})
	if len(xs) != 1 || xs[0].Reason != "replaced by the run scheduled at 2026-06-01T10:00:20Z" {
		t.Errorf("replaced execution reason: %+v", xs)
	}
}

// A stored event whose schedule never fires (stored before apply refused
// such schedules) is skipped and said; it never stalls the other events,
// and Stop still stops.
func TestNeverFiringScheduleStallsNothing(t *testing.T) {
	b := setup(t, utc("2026-06-01T10:00:00Z"))
	b.event(t, "feb30", "0 0 30 2 *", "UTC", nil)
	b.event(t, "tick", "*/15 * * * * *", "UTC", nil)
	s := b.start(t)
	for i := 1; i <= 3; i++ {
		b.clock.Advance(15 * time.Second)
		b.waitFor(t, "tick", i)
	}
	if n := len(b.scheduled(t, "feb30")); n != 0 {
		t.Errorf("feb30 fired %d times", n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := s.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
}

// A leap-day schedule fires on 2096-02-29; its next match is eight years
// later (2104-02-29, as 2100 is no leap year): it waits without spinning,
// and the others go on.
func TestScheduleWithADistantNextTime(t *testing.T) {
	b := setup(t, utc("2096-02-28T23:59:00Z"))
	b.event(t, "leap", "0 0 29 2 *", "UTC", nil)
	b.event(t, "minutely", "* * * * *", "UTC", nil)
	s := b.start(t)
	b.clock.Set(utc("2096-02-29T00:00:00Z"))
	wantTimes(t, b.waitFor(t, "leap", 1), "2096-02-29T00:00:00Z")
	b.waitFor(t, "minutely", 1)
	b.clock.Set(utc("2096-02-29T00:01:00Z"))
	b.waitFor(t, "minutely", 2)
	if got := b.scheduled(t, "leap"); len(got) != 1 {
		t.Errorf("leap fired %v", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := s.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
}

// Past the zone data's listed changes, where Go's ZoneBounds is wrong
// (golang/go#81583), an hourly Berlin schedule once got the instant it was
// asked about as its next time, and the scheduler fired it forever. Now it
// fires once an hour, and a minutely event beside it goes on.
func TestScheduleInTheLastDayOf2040(t *testing.T) {
	b := setup(t, utc("2040-12-30T23:59:30Z"))
	b.event(t, "hourly", "0 * * * *", "Europe/Berlin", nil)
	b.event(t, "minutely", "* * * * *", "UTC", nil)
	s := b.start(t)
	for i, at := range []string{"2040-12-31T00:00:00Z", "2040-12-31T00:01:00Z", "2040-12-31T01:00:00Z", "2040-12-31T01:01:00Z"} {
		b.clock.Set(utc(at))
		b.waitFor(t, "minutely", i+1)
	}
	wantTimes(t, b.waitFor(t, "hourly", 2), "2040-12-31T00:00:00Z", "2040-12-31T01:00:00Z")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := s.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
}

// A schedule that fires faster than its runs leave the queue skips fires
// past MaxQueuedFires waiting runs, instead of growing the queue without
// end (nothing runs here: every run stays queued).
func TestQueuedFiresAreBounded(t *testing.T) {
	b := setup(t, utc("2026-06-01T10:00:00Z"))
	b.event(t, "fast", "* * * * * *", "UTC", nil)
	b.event(t, "tick", "*/15 * * * * *", "UTC", nil)
	s := b.start(t)
	for i := 1; i <= 15; i++ {
		b.clock.Advance(time.Second)
		if i <= MaxQueuedFires {
			b.waitFor(t, "fast", i)
		}
	}
	b.waitFor(t, "tick", 1) // the fire at :15 is done, and with it fast's
	if n := len(b.scheduled(t, "fast")); n != MaxQueuedFires {
		t.Errorf("fast has %d queued runs, want %d", n, MaxQueuedFires)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := s.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
}
