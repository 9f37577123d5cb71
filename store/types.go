// Package store is what Cronium's stores hold and what their consumers
// (the scheduler, the dispatcher, the runtime API, the HTTP API, the CLI)
// ask of them, independent of the database: the shared types here, the
// contract as small interfaces (docs/research/postgres-design.md).
package store

import (
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
