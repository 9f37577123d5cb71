// Package store is what Cronium's stores hold and what their consumers
// (the scheduler, the dispatcher, the runtime API, the HTTP API, the CLI)
// ask of them, independent of the database: the shared types here, the
// contract as small interfaces (docs/research/postgres-design.md).
package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"time"

	cronium "github.com/cronium/executor"
	"github.com/cronium/executor/notify"
)

// SealedChannel is a user's notification channel as stored: its whole
// configuration (URLs and secrets alike) sealed with the master keys.
type SealedChannel struct {
	UserID    int64
	Name      string
	Type      string
	KeyID     string
	Blob      []byte
	UpdatedAt time.Time
}

// FollowUps is what an execution's end queues: its retry, or the events
// its actions trigger and the notifications they send.
type FollowUps struct {
	Retry         *cronium.Execution
	Chained       []*cronium.Execution
	Notifications []notify.Delivery
	// Notes say what its actions could not do (a chain at its limit, a
	// trigger's event gone); they are recorded as the execution's reason.
	// FinishWith adds one when the chain's run budget stops a trigger.
	Notes []string
}

// KeyInfo describes an API key; the key itself is shown once, at creation,
// and only its hash is stored.
type KeyInfo struct {
	ID         int64      `json:"id"`
	User       string     `json:"user"`
	Name       string     `json:"name,omitempty"`
	Prefix     string     `json:"prefix"` // the key's first characters, to recognise it
	CreatedAt  time.Time  `json:"created_at"`
	ExpiresAt  *time.Time `json:"expires_at,omitempty"`
	RevokedAt  *time.Time `json:"revoked_at,omitempty"`
	LastUsedAt *time.Time `json:"last_used_at,omitempty"`
}

// AuditEntry is one change or trigger: who did what, when, with which key.
type AuditEntry struct {
	ID     int64     `json:"id"`
	At     time.Time `json:"at"`
	Actor  string    `json:"actor"`            // user name, or "local" for commands on the data directory
	KeyID  int64     `json:"key_id,omitempty"` // 0 for local commands
	Action string    `json:"action"`           // e.g. "event.trigger"
	Target string    `json:"target"`           // e.g. "alice/nightly"
	Detail string    `json:"detail,omitempty"` // e.g. an execution ID
	Source string    `json:"source,omitempty"` // the client's address
}

// AuditFilter selects audit entries; zero fields select everything.
type AuditFilter struct {
	Actor  string
	Target string // exactly this target
	Action string // an action, or a prefix ending in "." ("event.")
	Since  time.Time
	Limit  int // default 100, at most 1000
}

// EventStats is what the stored executions of one event say about it.
type EventStats struct {
	// Runs counts its finished executions (those still stored), Succeeded
	// those that ended succeeded.
	Runs      int64 `json:"runs"`
	Succeeded int64 `json:"succeeded"`
	// Last is its newest execution, nil when it never ran.
	Last *LastRun `json:"last_run,omitempty"`
}

// LastRun is an event's newest execution, in short.
type LastRun struct {
	ExecutionID string          `json:"execution_id"`
	Trigger     cronium.Trigger `json:"trigger"`
	Status      cronium.Status  `json:"status"`
	Outcome     cronium.Outcome `json:"outcome,omitempty"`
	QueuedAt    time.Time       `json:"queued_at"`
	ScheduledAt *time.Time      `json:"scheduled_at,omitempty"`
	FinishedAt  *time.Time      `json:"finished_at,omitempty"`
}

// ScheduledEvent is what the scheduler needs of an event.
type ScheduledEvent struct {
	Event    cronium.Event
	UserID   int64
	LastFire time.Time // zero when never fired
}

// ExecutionFilter selects executions to list.
type ExecutionFilter struct {
	UserID  int64  // 0: every user
	Event   string // event name
	Status  cronium.Status
	Outcome cronium.Outcome
	Trigger cronium.Trigger
	// Since and Until bound when executions were queued (zero: no bound).
	Since, Until time.Time
	// Before is a cursor: list executions queued before this (id of the last item of the previous page).
	Before string
	Limit  int
}

// SealedSecret is a secret as stored: encrypted.
type SealedSecret struct {
	UserID    int64
	Name      string
	KeyID     string
	Blob      []byte
	UpdatedAt time.Time
}

// LogChunk is one stored piece of an execution's output.
type LogChunk = cronium.OutputChunk

// NotificationLease is how long a claimed delivery stays claimed: well over
// notify.MaxSendTime, so only a sender that died leaves a lease to run out.
const NotificationLease = 4 * notify.MaxSendTime

// AuditRetention is how long audit entries are kept.
const AuditRetention = 400 * 24 * time.Hour

// KeyPrefix starts every API key, so leaked keys are easy to recognise.
const KeyPrefix = "crn_"

// NewExecutionID returns a random execution id.
func NewExecutionID() string {
	var b [10]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Node is a server node on the store: its lease, capacity and where its
// sandboxes can be reached from.
type Node struct {
	Name string `json:"name"`
	// Instance changes at every start: a heartbeat of an instance that
	// lost its lease (another took the name) is refused.
	Instance string `json:"instance"`
	Host     string `json:"host"`
	// DataDir is its data directory, where its sandboxes' sockets are.
	DataDir string `json:"data_dir"`
	Engine  string `json:"engine"`
	// EngineKey says which sandboxes the node can reach (engine, address
	// and host): a node with the same key can re-attach to a dead node's
	// running executions.
	EngineKey string `json:"engine_key"`
	Capacity  int    `json:"capacity"`
	// Running is how many executions it ran at its last heartbeat.
	Running     int       `json:"running"`
	Version     string    `json:"version,omitempty"`
	StartedAt   time.Time `json:"started_at"`
	HeartbeatAt time.Time `json:"heartbeat_at"`
	LeaseUntil  time.Time `json:"lease_until"`
	// State is up, or down once its lease ran out (DownReason says when).
	State      string `json:"state"`
	DownReason string `json:"down_reason,omitempty"`
}

// Node states.
const (
	NodeUp   = "up"
	NodeDown = "down"
)

// Adopted is a running execution of a dead node that this node took over:
// to re-attach to (From is the dead node) or, when Lost is set, to record
// as lost with that reason.
type Adopted struct {
	Execution cronium.Execution
	From      Node
	Lost      string
}

// Reaped is what a reap did: the nodes it found dead, the claimed
// executions it returned to the queue, and the running ones this node adopted.
type Reaped struct {
	Down     []Node
	Requeued int
	Adopted  []Adopted
}

// Round is what one admission round sees, across every node: the queue's
// heads, their users' tiers and running counts, and this node's running count.
type Round struct {
	Heads []cronium.Execution
	// Tiers are the heads' users' tier names, by user ID.
	Tiers map[int64]string
	// RunningByUser counts running executions per user on every node, and
	// failed runs' sandboxes kept for debugging (which hold a slot);
	// KeptByUser counts those kept sandboxes alone.
	RunningByUser, KeptByUser map[int64]int
	// NodeRunning is how many executions this node runs.
	NodeRunning int
	// Running is how many executions run on every node.
	Running int
}

// Usage groupings.
const (
	ByDay   = "day"
	ByEvent = "event"
	ByUser  = "user"
)

// UsageFilter selects the usage a report sums.
type UsageFilter struct {
	// UserID limits it to one user; 0: every user.
	UserID int64
	// EventID limits it to one event; 0: every event.
	EventID int64
	// By groups it: ByDay, ByEvent, ByUser, or "" for one total.
	By string
	// Since and Until bound it by UTC day: the days from Since's to the
	// one before Until's. Zero: from the first, to the last.
	Since, Until time.Time
}

// UsageRow is the usage and cost of one group of a report.
type UsageRow struct {
	// Day is the UTC day, like "2026-12-03" (ByDay).
	Day string `json:"day,omitempty"`
	// User is the user's name (ByEvent, ByUser).
	User   string `json:"user,omitempty"`
	UserID int64  `json:"-"`
	// Event is the event's name (ByEvent).
	Event string `json:"event,omitempty"`
	// Executions counts the executions that ended on a node.
	Executions int64 `json:"executions"`
	// Metered sums their usage (PeakMemory is the highest).
	cronium.Metered
	// CostMicros sums their costs.
	CostMicros int64 `json:"cost_micros"`
}

// Add adds o to r (the highest peak memory of both).
func (r *UsageRow) Add(o UsageRow) {
	r.Executions += o.Executions
	r.CPUMicros += o.CPUMicros
	r.ReservedMiBMs += o.ReservedMiBMs
	r.PeakMemory = max(r.PeakMemory, o.PeakMemory)
	r.IORead += o.IORead
	r.IOWrite += o.IOWrite
	r.NetworkBytes += o.NetworkBytes
	r.CostMicros += o.CostMicros
}

// Day is the UTC day number of t (days since 1970-01-01), as usage is kept.
func Day(t time.Time) int64 { return t.UnixNano() / int64(24*time.Hour) }

// KeptSandbox is a failed run's sandbox kept for debugging.
type KeptSandbox struct {
	UserID int64
	Until  time.Time
}

// OverBudget says how userID's usage this month (UTC, at now) passes
// budget, read from u ("" when it does not, or budget bounds nothing).
func OverBudget(ctx context.Context, u interface {
	Usage(ctx context.Context, f UsageFilter) ([]UsageRow, error)
}, userID int64, budget cronium.Budget, currency string, now time.Time) (string, error) {
	if !budget.Set() {
		return "", nil
	}
	rows, err := u.Usage(ctx, UsageFilter{UserID: userID, Since: cronium.MonthStart(now)})
	if err != nil {
		return "", err
	}
	var month UsageRow
	for _, r := range rows {
		month.Add(r)
	}
	return budget.Exceeded(month.CPUMicros, month.CostMicros, currency, now), nil
}
