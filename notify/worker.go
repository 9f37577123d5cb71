package notify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	cronium "github.com/cronium/executor"
)

// Status is where a delivery stands.
type Status string

// Statuses of a delivery.
const (
	// StatusPending: not delivered yet; the next attempt is due at NextAt.
	StatusPending Status = "pending"
	// StatusSent: the receiver accepted it at SentAt.
	StatusSent Status = "sent"
	// StatusFailed: given up; LastError says why.
	StatusFailed Status = "failed"
)

// Delivery is one message on one channel, as an outbox holds it.
type Delivery struct {
	// ID identifies the delivery; receivers see it in X-Cronium-Delivery.
	ID string `json:"id"`
	// ExecutionID is the execution the message is about (Message.ExecutionID).
	ExecutionID string `json:"execution_id"`
	// UserID is the owner of the execution.
	UserID int64 `json:"-"`
	// Channel names the channel, looked up when sending (so a changed URL
	// or secret applies to pending deliveries).
	Channel string `json:"channel"`
	// Reason is the action that asked for it (Message.Reason).
	Reason string `json:"reason"`
	// Message is what is said.
	Message Message `json:"message"`
	// Attempts counts the attempts started, the current one included.
	Attempts int `json:"attempts"`
	// NextAt is when the next attempt is due (while pending).
	NextAt time.Time `json:"next_at"`
	// Status is pending, sent or failed.
	Status Status `json:"status"`
	// LastError says why the last attempt failed; empty if none did.
	LastError string `json:"last_error,omitempty"`
	// CreatedAt is when it was enqueued.
	CreatedAt time.Time `json:"created_at"`
	// SentAt is when the receiver accepted it; zero until then.
	SentAt time.Time `json:"sent_at,omitzero"`
}

// Store is the durable outbox a Worker drains. Implementations must be
// safe for concurrent use, also by several Workers (on several nodes).
type Store interface {
	// ClaimDue claims at most limit pending deliveries due at now and
	// returns them. A claim is a lease, longer than MaxSendTime: nobody
	// else claims the delivery until it is marked or the lease ends (after
	// a crash), when it is due again. At most one delivery per channel is
	// claimed at a time, so a slow receiver holds one worker slot, not all.
	// The claim counts as an attempt: Attempts includes it, so a delivery
	// whose sender dies every time still runs out of attempts.
	ClaimDue(ctx context.Context, now time.Time, limit int) ([]Delivery, error)
	// MarkSent records that a claimed delivery was accepted at at.
	MarkSent(ctx context.Context, id string, at time.Time) error
	// MarkFailed records a failed attempt of a claimed delivery: attempts
	// is the claimed Delivery's Attempts, next when the next is due, and
	// final that there will be none (the status becomes failed). It does
	// nothing to a delivery claimed again since (a lease that ran out).
	MarkFailed(ctx context.Context, id string, attempts int, next time.Time, lastErr string, final bool) error
}

// Clock is the worker's source of time; the scheduler's clocks fit it.
type Clock interface {
	Now() time.Time
	// After returns a channel that receives once d has passed.
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// Defaults of a Worker.
const (
	// DefaultMaxAttempts is how many attempts a delivery gets.
	DefaultMaxAttempts = 8
	// DefaultConcurrency is how many sends run at once.
	DefaultConcurrency = 4
	// DefaultPoll is how often the store is asked for due deliveries.
	DefaultPoll = 2 * time.Second
)

// maxLastError is how much of an error a delivery keeps.
const maxLastError = 1000

// DefaultBackoff is the wait after the attempt-th failed attempt: 10s,
// doubling up to an hour, each time 20% more or less at random so that
// deliveries that failed together do not retry together.
func DefaultBackoff(attempt int) time.Duration {
	d := 10 * time.Second
	for i := 1; i < attempt && d < time.Hour; i++ {
		d *= 2
	}
	d = min(d, time.Hour)
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}

// Worker delivers an outbox's due notifications. Set its fields, then call
// Run in one goroutine, once; Wake, from anywhere, makes it look at once.
// Store and Channels are required; every other field has a default.
type Worker struct {
	// Store is the outbox. Required.
	Store Store
	// Sender sends. Default: a Sender that reaches public addresses only.
	Sender *Sender
	// Channels returns the channel a user's delivery names. An error
	// wrapping cronium.ErrNotFound fails the delivery for good (the
	// channel was removed); other errors are retried. Required.
	Channels func(user, name string) (Channel, error)
	// Clock tells the time of claims, marks and backoffs. Default: the wall clock.
	Clock Clock
	// MaxAttempts is how many attempts a delivery gets. Default 8 (with the
	// default backoff, about 21 minutes of trying).
	MaxAttempts int
	// Backoff is the wait after the attempt-th failed attempt. Default DefaultBackoff.
	Backoff func(attempt int) time.Duration
	// Concurrency is how many sends run at once. Default 4.
	Concurrency int
	// Poll is how often the store is asked for due deliveries (retries,
	// and deliveries other nodes enqueued) besides Wake. Default 2s.
	Poll time.Duration
	// Logger receives a line per failed attempt. Default: discarded.
	Logger *slog.Logger

	once sync.Once
	wake chan struct{} // holds at most one pending wake-up
}

func (w *Worker) init() { w.once.Do(func() { w.wake = make(chan struct{}, 1) }) }

// Wake makes the worker look for due deliveries now, as after an enqueue.
// It never blocks, and may be called before Run.
func (w *Worker) Wake() {
	w.init()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// Run delivers due notifications until ctx ends, then waits for the sends
// in flight to finish (each at most MaxSendTime; their results are
// recorded) and returns nil. It returns an error at once when Store or
// Channels is missing. Store errors are logged and retried at the next poll.
func (w *Worker) Run(ctx context.Context) error {
	if w.Store == nil || w.Channels == nil {
		return fmt.Errorf("%w: notify worker: Store and Channels are required", cronium.ErrInternal)
	}
	w.init()
	limit := w.Concurrency
	if limit <= 0 {
		limit = DefaultConcurrency
	}
	poll := w.Poll
	if poll <= 0 {
		poll = DefaultPoll
	}
	clock := w.clock()
	sender := w.Sender
	if sender == nil {
		sender = &Sender{}
	}
	done := make(chan struct{})
	inflight := 0
	defer func() {
		for ; inflight > 0; inflight-- {
			<-done
		}
	}()
	for {
		if free := limit - inflight; free > 0 && ctx.Err() == nil {
			ds, err := w.Store.ClaimDue(ctx, clock.Now(), free)
			if err != nil && ctx.Err() == nil {
				w.logger().Warn("notifications: cannot claim due deliveries; trying again at the next poll", "error", err)
			}
			for _, d := range ds {
				inflight++
				go func() {
					defer func() { done <- struct{}{} }() // Run receives until inflight is 0
					w.deliver(ctx, sender, d)
				}()
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-w.wake:
		case <-done:
			inflight--
		case <-clock.After(poll):
		}
	}
}

// deliver makes one attempt at d and records its result. It outlives
// ctx: a send under way finishes, and its result is written.
func (w *Worker) deliver(ctx context.Context, sender *Sender, d Delivery) {
	ctx = context.WithoutCancel(ctx)
	maxAttempts := w.MaxAttempts
	if maxAttempts <= 0 {
		maxAttempts = DefaultMaxAttempts
	}
	var err error
	if d.Attempts > maxAttempts {
		err = Permanent(fmt.Errorf("gave up after %d attempts: the last ones never reported (the sender stopped mid-send)", maxAttempts))
	} else if ch, cerr := w.Channels(d.Message.User, d.Channel); cerr != nil {
		if errors.Is(cerr, cronium.ErrNotFound) {
			err = Permanent(fmt.Errorf("channel %s no longer exists: %w", d.Channel, cerr))
		} else {
			err = fmt.Errorf("look up channel %s: %w", d.Channel, cerr)
		}
	} else {
		err = sender.Send(ctx, ch, d.ID, d.Message)
	}
	now := w.clock().Now()
	log := w.logger().With("delivery_id", d.ID, "execution_id", d.ExecutionID, "channel", d.Channel, "attempt", d.Attempts)
	if err == nil {
		if err := w.Store.MarkSent(ctx, d.ID, now); err != nil {
			log.Error("notifications: sent, but the store did not record it: it may be sent again", "error", err)
		}
		return
	}
	final := errors.Is(err, ErrPermanent) || d.Attempts >= maxAttempts
	text := err.Error()
	if final && !errors.Is(err, ErrPermanent) {
		text = fmt.Sprintf("%s (gave up after %d attempts)", text, d.Attempts)
	}
	text = cut(text, maxLastError)
	next := now.Add(w.backoff(d.Attempts))
	if err := w.Store.MarkFailed(ctx, d.ID, d.Attempts, next, text, final); err != nil {
		log.Error("notifications: the store did not record a failed attempt", "error", err)
	}
	if final {
		log.Warn("notifications: not delivered, given up", "error", text)
	} else {
		log.Info("notifications: not delivered, will retry", "next_at", next, "error", text)
	}
}

func (w *Worker) clock() Clock {
	if w.Clock == nil {
		return realClock{}
	}
	return w.Clock
}

func (w *Worker) backoff(attempt int) time.Duration {
	if w.Backoff == nil {
		return DefaultBackoff(attempt)
	}
	return w.Backoff(attempt)
}

func (w *Worker) logger() *slog.Logger {
	if w.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return w.Logger
}
