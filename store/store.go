package store

import (
	"context"
	"encoding/json"
	"time"

	cronium "github.com/cronium/executor"
	"github.com/cronium/executor/notify"
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

// Dispatching is what the dispatcher asks of a store: the queue's heads,
// claims, the run's records (strategy, sandbox, logs, result and its
// follow-ups), and what its scripts ask through the runtime API.
type Dispatching interface {
	Runtime
	// Usage, for tier budgets.
	Usage
	// AdmitRound is one admission round of node, across every node: it
	// reads the queue's heads (at most perUser per user, due at now) with
	// the running counts, lets pick choose from them (pick must not use the
	// store), and claims what pick chose for node at now, all under one
	// lock, so that tier limits and fairness hold between nodes. It
	// returns the executions it claimed and the round pick saw.
	AdmitRound(ctx context.Context, node string, now time.Time, perUser int, pick func(Round) []string) ([]cronium.Execution, Round, error)
	// RequestCancel asks the node running an execution to cancel it; false
	// if it is not running.
	RequestCancel(ctx context.Context, id, reason string) (bool, error)
	// CancelRequests lists node's running executions asked to cancel, with why.
	CancelRequests(ctx context.Context, node string) (map[string]string, error)
	// RegisterNode records n as up with a lease for the store's clock now
	// plus lease. Another live node of the same name is a conflict,
	// unless it is this one restarting (same host and data directory).
	RegisterNode(ctx context.Context, n Node, lease time.Duration) error
	// Heartbeat renews n's lease and records its running count; false when
	// the lease was lost (the node was found dead, or another took its name).
	Heartbeat(ctx context.Context, n Node, lease time.Duration) (bool, error)
	// ReapNodes finds nodes whose lease ran out: their claimed executions
	// that never launched go back to the queue, and their running ones are
	// adopted by me when my engine key matches theirs (to re-attach), or
	// recorded for me to finish as lost when no live node's key does.
	ReapNodes(ctx context.Context, me Node) (Reaped, error)
	// ReadyHeads lists, for every user, at most perUser of their queued
	// executions whose not-before time has come, in admission order.
	ReadyHeads(ctx context.Context, now time.Time, perUser int) ([]cronium.Execution, error)
	// ClaimMany moves queued executions to running on node and returns
	// the ids it claimed (those still queued).
	ClaimMany(ctx context.Context, ids []string, node string, at time.Time) ([]string, error)
	// SetUserReasons records, per user, why their ready executions wait.
	SetUserReasons(ctx context.Context, now time.Time, reasons map[int64]string) error
	// CancelQueued cancels an execution that has not started; false if it was not queued.
	CancelQueued(ctx context.Context, id, reason string) (bool, error)
	// Running lists running executions, of one node or all when node is "".
	Running(ctx context.Context, node string) ([]cronium.Execution, error)
	// FinishWith records a result and queues its follow-ups at once; it
	// reports whether this call finished the execution (only the first
	// counts). With node set, only that node's running execution finishes:
	// a node that lost it (its lease ran out) changes nothing.
	FinishWith(ctx context.Context, id, node string, res cronium.Result, reason string, f FollowUps) (bool, error)
	// SetStrategy records the strategy a running execution of node got and
	// why, and that it is launched from now on; false when it is no longer
	// node's to run (its claim was returned to the queue).
	SetStrategy(ctx context.Context, id, node, strategy, reason string) (bool, error)
	// SetSandbox records the sandbox a running execution of node is handed
	// to, before the script is; an error (ErrConflict: it is no longer
	// node's) means it must not be handed over.
	SetSandbox(ctx context.Context, id, node, sandbox string) error
	// LastSeq is the highest stored log sequence number of an execution.
	LastSeq(ctx context.Context, id string) (uint64, error)
	// AppendLogs stores chunks (duplicates by seq are ignored).
	AppendLogs(ctx context.Context, id string, chunks []LogChunk, truncated bool) error
	// LogTail is the last bytes (at most max) of an execution's output.
	LogTail(ctx context.Context, id string, max int) (string, error)
	// EventByID returns an event, deleted or not.
	EventByID(ctx context.Context, id int64) (cronium.Event, error)
	Event(ctx context.Context, userID int64, name string) (cronium.Event, error)
	EventCounts(ctx context.Context, eventID int64) (success, failure int, err error)
	Secret(ctx context.Context, userID int64, name string) (SealedSecret, error)
	UserByName(ctx context.Context, name string) (cronium.User, error)
}

// API is what the HTTP API asks of a store: users and keys, events,
// executions and their logs, variables, secrets, channels and the audit.
type API interface {
	// Users and keys.
	CreateUser(ctx context.Context, name, tier string, admin bool) (cronium.User, error)
	UserByName(ctx context.Context, name string) (cronium.User, error)
	Users(ctx context.Context) ([]cronium.User, error)
	SetTier(ctx context.Context, userID int64, tier string) error
	// DeleteUser removes a user's keys, events, secrets, variables and
	// channels and cancels their executions; the name stays taken.
	DeleteUser(ctx context.Context, userID int64, at time.Time) error
	// Authenticate returns the user and key an API key belongs to.
	Authenticate(ctx context.Context, key string, now time.Time) (cronium.User, KeyInfo, error)
	NewKey(ctx context.Context, userID int64, name string, expires *time.Time) (string, KeyInfo, error)
	Keys(ctx context.Context, userID int64) ([]KeyInfo, error)
	RevokeKey(ctx context.Context, userID, keyID int64, at time.Time) (KeyInfo, error)
	Audit(ctx context.Context, e AuditEntry) error
	AuditLog(ctx context.Context, f AuditFilter) ([]AuditEntry, error)

	// Events and executions.
	PutEvent(ctx context.Context, userID int64, ev *cronium.Event) (created bool, err error)
	Event(ctx context.Context, userID int64, name string) (cronium.Event, error)
	Events(ctx context.Context, userID int64) ([]cronium.Event, error)
	EventStats(ctx context.Context, userID int64) (map[int64]EventStats, error)
	SetEnabled(ctx context.Context, userID int64, name string, enabled bool) error
	DeleteEvent(ctx context.Context, userID int64, name string) (int64, error)
	// Enqueue queues an execution; with fire, once per (event, fire).
	Enqueue(ctx context.Context, x *cronium.Execution, fire *time.Time) (inserted bool, err error)
	Execution(ctx context.Context, userID int64, id string) (cronium.Execution, error)
	Executions(ctx context.Context, f ExecutionFilter) ([]cronium.Execution, error)
	// Logs returns an execution's chunks after seq after, at most limit.
	Logs(ctx context.Context, id string, after uint64, limit int) ([]LogChunk, error)
	// LastLogs returns an execution's newest chunks, at most limit, in order.
	LastLogs(ctx context.Context, id string, limit int) ([]LogChunk, error)
	NotificationsFor(ctx context.Context, executionID string) ([]notify.Delivery, error)
	// Nodes lists the nodes on the store, by name.
	Nodes(ctx context.Context) ([]Node, error)
	// Ping says whether the store answers.
	Ping(ctx context.Context) error
	// Usage reports.
	Usage(ctx context.Context, f UsageFilter) ([]UsageRow, error)

	// Variables, secrets (sealed) and notification channels (sealed).
	Variable(ctx context.Context, userID int64, key string) (json.RawMessage, error)
	Variables(ctx context.Context, userID int64) (map[string]json.RawMessage, error)
	SetVariable(ctx context.Context, userID int64, key string, v json.RawMessage) error
	DeleteVariable(ctx context.Context, userID int64, key string) (bool, error)
	PutSecret(ctx context.Context, sec SealedSecret) error
	Secret(ctx context.Context, userID int64, name string) (SealedSecret, error)
	Secrets(ctx context.Context, userID int64) ([]SealedSecret, error)
	DeleteSecret(ctx context.Context, userID int64, name string) (bool, error)
	PutChannel(ctx context.Context, c SealedChannel) error
	Channel(ctx context.Context, userID int64, name string) (SealedChannel, error)
	Channels(ctx context.Context, userID int64) ([]SealedChannel, error)
	DeleteChannel(ctx context.Context, userID int64, name string) (bool, error)
}

// Admin is what the server and its commands ask of a store beyond the
// parts above: its health, retention, backups of what it holds and the
// bootstrap commands.
type Admin interface {
	// Counts says how many executions are in each status (the readiness probe).
	Counts(ctx context.Context) (map[cronium.Status]int, error)
	// NodeSeen reports whether node ever ran an execution here.
	NodeSeen(ctx context.Context, node string) (bool, error)
	// PruneAll applies every tier's retention at now and returns what it removed.
	PruneAll(ctx context.Context, tiers map[string]cronium.Tier, now time.Time) (int, error)
	// CreateKey makes an API key for a user (the bootstrap commands).
	CreateKey(ctx context.Context, userID int64) (string, error)
	// AllChannels lists every user's sealed channels (key rotation).
	AllChannels(ctx context.Context) ([]SealedChannel, error)
	// SetPackageLock records an event's package lock if it is still prev.
	SetPackageLock(ctx context.Context, id int64, prev string, lock cronium.PackageLock) (bool, error)
	// Backup writes a consistent copy of the store to path.
	Backup(ctx context.Context, path string) error
}

// Usage is what usage reports, budgets and metrics ask of a store.
type Usage interface {
	// Usage sums the usage and cost of the executions that ended in f's
	// days, grouped by f.By. It is kept per user, event and day as
	// executions finish, so retention does not change it.
	Usage(ctx context.Context, f UsageFilter) ([]UsageRow, error)
	// QueueDepth counts the queued executions of every node by their
	// user's tier, and of them those due at now.
	QueueDepth(ctx context.Context, now time.Time) (queued, due map[string]int64, err error)
	// KeptOn lists the executions whose sandboxes node keeps for debugging
	// (FinishWith records a Result.Kept), by id.
	KeptOn(ctx context.Context, node string) (map[string]KeptSandbox, error)
	// Unkeep records that an execution's kept sandbox is gone.
	Unkeep(ctx context.Context, id string) error
}

// Store is a whole store: every consumer's part, the notification outbox,
// and Close.
type Store interface {
	Scheduling
	Dispatching
	API
	Admin
	Usage
	notify.Store
	Close() error
}
