package notify_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	cronium "github.com/cronium/executor"
	"github.com/cronium/executor/notify"
	"github.com/cronium/executor/sqlite"
)

// fakeClock moves only when told. Its After never fires: tests Wake the
// worker after moving it, so no poll happens behind their back.
type fakeClock struct {
	mu  sync.Mutex // guards now
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(time.Duration) <-chan time.Time { return nil }

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

// claimWatch is the store, telling each finished ClaimDue.
type claimWatch struct {
	notify.Store
	claims chan int
}

func (s claimWatch) ClaimDue(ctx context.Context, now time.Time, limit int) ([]notify.Delivery, error) {
	ds, err := s.Store.ClaimDue(ctx, now, limit)
	select {
	case s.claims <- len(ds):
	default: // nobody is looking
	}
	return ds, err
}

// outbox is a worker on a real store, with its channels.
type outbox struct {
	t        *testing.T
	store    *sqlite.Store
	path     string
	userID   int64
	clock    *fakeClock
	mu       sync.Mutex // guards channels
	channels map[string]notify.Channel
}

var wt0 = time.Date(2026, 6, 1, 2, 30, 0, 0, time.UTC)

func newOutbox(t *testing.T) *outbox {
	t.Helper()
	path := filepath.Join(t.TempDir(), "cronium.db")
	st, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	u, err := st.CreateUser(context.Background(), "alice", "free", false)
	if err != nil {
		t.Fatal(err)
	}
	return &outbox{t: t, store: st, path: path, userID: u.ID, clock: &fakeClock{now: wt0}, channels: map[string]notify.Channel{}}
}

func (o *outbox) setChannel(ch notify.Channel) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.channels[ch.Name] = ch
}

func (o *outbox) lookup(user, name string) (notify.Channel, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	ch, ok := o.channels[name]
	if !ok || user != "alice" {
		return ch, fmt.Errorf("%w: channel %s of %s", cronium.ErrNotFound, name, user)
	}
	return ch, nil
}

// worker returns a worker on store (o's by default) and runs it until the
// test ends; stop ends it early and waits for Run to return.
func (o *outbox) worker(store notify.Store, configure func(*notify.Worker)) (w *notify.Worker, stop func()) {
	if store == nil {
		store = o.store
	}
	w = &notify.Worker{Store: store, Sender: lan, Channels: o.lookup, Clock: o.clock}
	if configure != nil {
		configure(w)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				o.t.Errorf("Run: %v", err)
			}
		})
	}
	o.t.Cleanup(stop)
	return w, stop
}

// watched returns a running worker on o's store whose claims can be
// watched: look wakes it and returns how many deliveries the next claim got.
func (o *outbox) watched() (w *notify.Worker, look func() int) {
	claims := make(chan int, 100)
	w, _ = o.worker(claimWatch{o.store, claims}, nil)
	return w, func() int {
		for len(claims) > 0 {
			<-claims
		}
		w.Wake()
		return <-claims
	}
}

// enqueue adds a delivery of a new execution on channel.
func (o *outbox) enqueue(exec, channel string) notify.Delivery {
	o.t.Helper()
	m := message()
	m.ExecutionID = exec
	ds := []notify.Delivery{{UserID: o.userID, Channel: channel, Message: m, CreatedAt: o.clock.Now()}}
	if err := o.store.EnqueueNotifications(context.Background(), ds); err != nil {
		o.t.Fatal(err)
	}
	return ds[0]
}

// get returns the stored delivery of an execution.
func (o *outbox) get(exec string) notify.Delivery {
	o.t.Helper()
	ds, err := o.store.NotificationsFor(context.Background(), exec)
	if err != nil || len(ds) != 1 {
		o.t.Fatalf("NotificationsFor(%s): %v %v, want one", exec, ds, err)
	}
	return ds[0]
}

// waitFor waits (in real time) until cond holds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// settled waits for the delivery of exec to have had attempts attempts and be recorded.
func (o *outbox) settled(exec string, attempts int) notify.Delivery {
	o.t.Helper()
	var d notify.Delivery
	waitFor(o.t, fmt.Sprintf("attempt %d of %s to be recorded", attempts, exec), func() bool {
		d = o.get(exec)
		// A claimed delivery is due (NextAt not after now) until its
		// failure is recorded with a later NextAt.
		return d.Attempts == attempts && (d.Status != notify.StatusPending || d.NextAt.After(o.clock.Now()))
	})
	return d
}

func TestWorkerDeliversOnceSigned(t *testing.T) {
	o := newOutbox(t)
	r := newReceiver(t)
	o.setChannel(webhook(r.URL))
	w, look := o.watched()
	d := o.enqueue("x1", "ops")
	w.Wake()
	waitFor(t, "the delivery to be sent", func() bool { return o.get("x1").Status == notify.StatusSent })
	// More looks, even much later, send nothing more.
	o.clock.Set(wt0.Add(24 * time.Hour))
	for range 3 {
		if n := look(); n != 0 {
			t.Fatalf("a sent delivery was claimed again")
		}
	}
	got := r.requests()
	if len(got) != 1 {
		t.Fatalf("the receiver got %d requests, want 1", len(got))
	}
	if err := notify.Verify([]byte(secret), got[0].header, got[0].body, time.Minute); err != nil {
		t.Errorf("Verify: %v", err)
	}
	if id := got[0].header.Get(notify.HeaderDelivery); id != d.ID {
		t.Errorf("delivery header %q, want %q", id, d.ID)
	}
	if s := o.get("x1"); s.Attempts != 1 || !s.SentAt.Equal(wt0) || s.LastError != "" {
		t.Errorf("stored %+v, want sent at the first attempt", s)
	}
}

// A receiver that is down, then failing, then well is retried with
// backoff, never before it is due, and delivered once.
func TestWorkerRetriesWithBackoff(t *testing.T) {
	o := newOutbox(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // down: connection refused
	o.setChannel(webhook("http://" + addr + "/hook"))
	w, look := o.watched()
	o.enqueue("x1", "ops")
	w.Wake()
	d := o.settled("x1", 1)
	if d.Status != notify.StatusPending || !strings.Contains(d.LastError, "connection refused") {
		t.Fatalf("after the first attempt: %+v, want pending with connection refused", d)
	}
	if wait := d.NextAt.Sub(wt0); wait < 8*time.Second || wait > 12*time.Second {
		t.Errorf("first backoff %s, want 10s ± 20%%", wait)
	}

	// The receiver comes up, failing first.
	ln, err = net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen again on %s: %v", addr, err)
	}
	r := &receiver{statuses: []int{503, 200}}
	r.Server = &httptest.Server{Listener: ln, Config: &http.Server{Handler: http.HandlerFunc(r.serve)}}
	r.Start()
	defer r.Close()

	// Not yet due: a look sends nothing.
	o.clock.Set(d.NextAt.Add(-time.Millisecond))
	if n := look(); n != 0 || len(r.requests()) != 0 {
		t.Fatalf("claimed %d and sent %d before the backoff ended", n, len(r.requests()))
	}

	o.clock.Set(d.NextAt)
	w.Wake()
	d2 := o.settled("x1", 2)
	if d2.Status != notify.StatusPending || !strings.Contains(d2.LastError, "503") {
		t.Fatalf("after the second attempt: %+v, want pending with the 503", d2)
	}
	if wait := d2.NextAt.Sub(d.NextAt); wait < 16*time.Second || wait > 24*time.Second {
		t.Errorf("second backoff %s, want 20s ± 20%%", wait)
	}

	o.clock.Set(d2.NextAt)
	w.Wake()
	d3 := o.settled("x1", 3)
	if d3.Status != notify.StatusSent || !d3.SentAt.Equal(d2.NextAt) {
		t.Fatalf("after the third attempt: %+v, want sent", d3)
	}
	got := r.requests()
	if len(got) != 2 {
		t.Fatalf("the receiver got %d requests, want 2 (the 503 and the success)", len(got))
	}
	for _, req := range got {
		if err := notify.Verify([]byte(secret), req.header, req.body, time.Minute); err != nil {
			t.Errorf("Verify: %v", err)
		}
	}
}

func TestWorkerDoesNotRetryAPermanentFailure(t *testing.T) {
	o := newOutbox(t)
	r := newReceiver(t, http.StatusBadRequest)
	o.setChannel(webhook(r.URL))
	w, look := o.watched()
	o.enqueue("x1", "ops")
	w.Wake()
	d := o.settled("x1", 1)
	if d.Status != notify.StatusFailed || !strings.Contains(d.LastError, "400") {
		t.Fatalf("after a 400: %+v, want failed with the 400", d)
	}
	o.clock.Set(wt0.Add(48 * time.Hour))
	if n := look(); n != 0 {
		t.Errorf("a failed delivery was claimed again")
	}
	if n := len(r.requests()); n != 1 {
		t.Errorf("the receiver got %d requests, want 1", n)
	}
}

func TestWorkerFailsADeliveryWhoseChannelIsGone(t *testing.T) {
	o := newOutbox(t)
	w, _ := o.worker(nil, nil)
	o.enqueue("x1", "removed")
	w.Wake()
	d := o.settled("x1", 1)
	if d.Status != notify.StatusFailed || !strings.Contains(d.LastError, "channel removed no longer exists") {
		t.Errorf("got %+v, want failed saying the channel no longer exists", d)
	}
}

func TestWorkerGivesUpAfterMaxAttempts(t *testing.T) {
	o := newOutbox(t)
	r := newReceiver(t, http.StatusServiceUnavailable)
	o.setChannel(webhook(r.URL))
	w, _ := o.worker(nil, func(w *notify.Worker) { w.MaxAttempts = 3 })
	o.enqueue("x1", "ops")
	var d notify.Delivery
	for i := 1; i <= 3; i++ {
		if i > 1 {
			o.clock.Set(d.NextAt)
		}
		w.Wake()
		d = o.settled("x1", i)
	}
	if d.Status != notify.StatusFailed || !strings.Contains(d.LastError, "gave up after 3 attempts") {
		t.Errorf("after 3 attempts: %+v, want failed, given up", d)
	}
	if n := len(r.requests()); n != 3 {
		t.Errorf("the receiver got %d requests, want 3", n)
	}
}

// A receiver that hangs holds one delivery of its channel in flight; the
// other channels' deliveries go out meanwhile, even with one free slot.
func TestWorkerSlowReceiverDoesNotDelayOthers(t *testing.T) {
	o := newOutbox(t)
	release := make(chan struct{})
	var mu sync.Mutex
	inflight, most := 0, 0
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		inflight++
		most = max(most, inflight)
		mu.Unlock()
		<-release
		mu.Lock()
		inflight--
		mu.Unlock()
	}))
	defer slow.Close()
	defer close(release) // before slow.Close, which waits for its handlers
	fast := newReceiver(t)
	o.setChannel(notify.Channel{Name: "slow", Type: notify.Webhook, URL: slow.URL, Secret: secret})
	o.setChannel(notify.Channel{Name: "fast", Type: notify.Webhook, URL: fast.URL, Secret: secret})
	w, _ := o.worker(nil, func(w *notify.Worker) { w.Concurrency = 2 })
	for i := range 5 {
		o.enqueue(fmt.Sprintf("s%d", i), "slow")
	}
	w.Wake()
	waitFor(t, "the slow receiver to hang", func() bool { mu.Lock(); defer mu.Unlock(); return inflight == 1 })
	for i := range 3 {
		f := fmt.Sprintf("f%d", i)
		o.enqueue(f, "fast")
		w.Wake()
		waitFor(t, "the fast channel's delivery "+f, func() bool { return o.get(f).Status == notify.StatusSent })
	}
	started := 0
	for i := range 5 {
		if o.get(fmt.Sprintf("s%d", i)).Attempts > 0 {
			started++
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if most != 1 || started != 1 {
		t.Errorf("the slow channel had %d requests at once and %d deliveries started, want 1 and 1", most, started)
	}
}

// Two nodes (two stores on one file, a worker each) send every delivery once.
func TestWorkerTwoNodesSendEachDeliveryOnce(t *testing.T) {
	o := newOutbox(t)
	other, err := sqlite.Open(context.Background(), o.path)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	r := newReceiver(t)
	for i := range 6 {
		o.setChannel(notify.Channel{Name: fmt.Sprintf("ch%d", i), Type: notify.Webhook, URL: r.URL, Secret: secret})
	}
	const n = 36
	for i := range n {
		o.enqueue(fmt.Sprintf("x%d", i), fmt.Sprintf("ch%d", i%6))
	}
	w1, _ := o.worker(nil, nil)
	w2, _ := o.worker(other, nil)
	waitFor(t, "every delivery", func() bool {
		w1.Wake()
		w2.Wake()
		return len(r.requests()) >= n && o.get(fmt.Sprintf("x%d", n-1)).Status == notify.StatusSent
	})
	seen := map[string]int{}
	for _, req := range r.requests() {
		seen[req.header.Get(notify.HeaderDelivery)]++
	}
	if len(seen) != n {
		t.Errorf("%d distinct deliveries received, want %d", len(seen), n)
	}
	for id, k := range seen {
		if k != 1 {
			t.Errorf("delivery %s received %d times", id, k)
		}
	}
}

// A node that crashed mid-send (claimed, never marked) leaves the delivery
// to whoever looks after the lease ends.
func TestWorkerRetriesADeliveryLeftByACrash(t *testing.T) {
	o := newOutbox(t)
	r := newReceiver(t)
	o.setChannel(webhook(r.URL))
	o.enqueue("x1", "ops")
	if ds, err := o.store.ClaimDue(context.Background(), wt0, 10); err != nil || len(ds) != 1 {
		t.Fatalf("the crashed node's claim: %v %v", ds, err)
	}
	w, look := o.watched()
	if n := look(); n != 0 || len(r.requests()) != 0 {
		t.Fatalf("sent %d while another node's lease holds", n)
	}
	o.clock.Set(wt0.Add(sqlite.NotificationLease))
	w.Wake()
	d := o.settled("x1", 2)
	if d.Status != notify.StatusSent || len(r.requests()) != 1 {
		t.Errorf("after the lease: %+v and %d requests, want sent once", d, len(r.requests()))
	}
}

// Run returns only after the send in flight finished, and records it.
func TestWorkerStopWaitsForTheSendInFlight(t *testing.T) {
	o := newOutbox(t)
	arrived, release := make(chan struct{}), make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(arrived)
		<-release
	}))
	defer srv.Close()
	o.setChannel(webhook(srv.URL))
	w, stop := o.worker(nil, nil)
	o.enqueue("x1", "ops")
	w.Wake()
	<-arrived
	stopped := make(chan struct{})
	go func() { stop(); close(stopped) }()
	select {
	case <-stopped:
		t.Fatal("Run returned while a send was in flight")
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	<-stopped
	if d := o.get("x1"); d.Status != notify.StatusSent {
		t.Errorf("after stopping: %+v, want the send in flight recorded as sent", d)
	}
}

func TestWorkerNeedsStoreAndChannels(t *testing.T) {
	if err := (&notify.Worker{}).Run(context.Background()); err == nil {
		t.Error("Run without a store: nil, want an error")
	}
}

func TestDefaultBackoff(t *testing.T) {
	for _, tt := range []struct {
		attempt int
		base    time.Duration
	}{{1, 10 * time.Second}, {2, 20 * time.Second}, {4, 80 * time.Second}, {9, 2560 * time.Second}, {10, time.Hour}, {60, time.Hour}} {
		for range 20 {
			if got := notify.DefaultBackoff(tt.attempt); got < tt.base*8/10 || got > tt.base*12/10 {
				t.Errorf("DefaultBackoff(%d) = %s, want %s ± 20%%", tt.attempt, got, tt.base)
			}
		}
	}
}
