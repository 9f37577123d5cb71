package sqlite

import "github.com/cronium/executor/store"

// The shared types and constants moved to package store; these names stay
// for code that still says sqlite.X.
type (
	// AuditEntry is store.AuditEntry.
	AuditEntry = store.AuditEntry
	// AuditFilter is store.AuditFilter.
	AuditFilter = store.AuditFilter
	// EventStats is store.EventStats.
	EventStats = store.EventStats
	// LastRun is store.LastRun.
	LastRun = store.LastRun
	// ExecutionFilter is store.ExecutionFilter.
	ExecutionFilter = store.ExecutionFilter
	// FollowUps is store.FollowUps.
	FollowUps = store.FollowUps
	// KeyInfo is store.KeyInfo.
	KeyInfo = store.KeyInfo
	// ScheduledEvent is store.ScheduledEvent.
	ScheduledEvent = store.ScheduledEvent
	// SealedChannel is store.SealedChannel.
	SealedChannel = store.SealedChannel
	// SealedSecret is store.SealedSecret.
	SealedSecret = store.SealedSecret
	// LogChunk is store.LogChunk.
	LogChunk = store.LogChunk
)

// KeyPrefix is store.KeyPrefix.
const KeyPrefix = store.KeyPrefix

// NotificationLease is store.NotificationLease.
const NotificationLease = store.NotificationLease

// AuditRetention is store.AuditRetention.
const AuditRetention = store.AuditRetention

// NewExecutionID is store.NewExecutionID.
func NewExecutionID() string { return store.NewExecutionID() }
