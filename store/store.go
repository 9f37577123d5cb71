package store

import (
	"context"
	"encoding/json"
	"time"

	cronium "github.com/cronium/executor"
)

// Scheduling is what the scheduler asks of a store: the scheduled events,
// what is queued and running of them, and the fires it enqueues.
type Scheduling interface {
	// ScheduledEvents lists the enabled events with a schedule, with their last fire.
	ScheduledEvents(ctx context.Context) ([]ScheduledEvent, error)
	// QueuedCounts says how many executions of each event are queued.
	QueuedCounts(ctx context.Context, eventIDs []int64) (map[int64]int, error)
	// AdvanceFire records t as the event's last fire without enqueueing.
	AdvanceFire(ctx context.Context, eventID int64, t time.Time) error
	// Active lists the event's queued and running executions.
	Active(ctx context.Context, eventID int64) ([]cronium.Execution, error)
	// EnqueueMany enqueues scheduled executions, each exactly once per
	// (event, fire), and returns how many were new.
	EnqueueMany(ctx context.Context, xs []*cronium.Execution, fires []time.Time) (int, error)
}

// Runtime is what the runtime API (scripts' calls) asks of a store.
type Runtime interface {
	Execution(ctx context.Context, userID int64, id string) (cronium.Execution, error)
	SetCondition(ctx context.Context, id string, v bool) error
	SetOutput(ctx context.Context, id string, v json.RawMessage) error
	Variable(ctx context.Context, userID int64, key string) (json.RawMessage, error)
	Variables(ctx context.Context, userID int64) (map[string]json.RawMessage, error)
	SetVariable(ctx context.Context, userID int64, key string, v json.RawMessage) error
	DeleteVariable(ctx context.Context, userID int64, key string) (bool, error)
	// Increment adds delta to a numeric variable atomically and returns the sum.
	Increment(ctx context.Context, userID int64, key string, delta float64) (float64, error)
}
