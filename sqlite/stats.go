package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"github.com/cronium/executor/store"
	"strings"
	"time"
)

// EventStats is store.EventStats.
type EventStats = store.EventStats

// LastRun is store.LastRun.
type LastRun = store.LastRun

// EventStats returns the stats of one user's events (every user's when
// userID is 0), by event ID. Events that never ran are absent.
func (s *Store) EventStats(ctx context.Context, userID int64) (map[int64]EventStats, error) {
	where, args := "", []any{}
	if userID != 0 {
		where, args = "WHERE user_id = ?", []any{userID}
	}
	out := map[int64]EventStats{}
	rows, err := s.db.QueryContext(ctx, `SELECT event_id, COUNT(finished_at), COALESCE(SUM(outcome = 'succeeded'), 0)
		FROM executions `+where+` GROUP BY event_id`, args...)
	if err != nil {
		return nil, fmt.Errorf("event stats: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var st EventStats
		if err := rows.Scan(&id, &st.Runs, &st.Succeeded); err != nil {
			return nil, fmt.Errorf("event stats: %w", err)
		}
		out[id] = st
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("event stats: %w", err)
	}
	rows.Close()

	// SQLite takes the other columns from the row that has the maximum.
	rows, err = s.db.QueryContext(ctx, `SELECT event_id, id, trigger, status, outcome, MAX(queued_at), scheduled_at, finished_at
		FROM executions `+where+` GROUP BY event_id`, args...)
	if err != nil {
		return nil, fmt.Errorf("last runs: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id, queued int64
		var sched, finished sql.NullInt64
		var l LastRun
		if err := rows.Scan(&id, &l.ExecutionID, &l.Trigger, &l.Status, &l.Outcome, &queued, &sched, &finished); err != nil {
			return nil, fmt.Errorf("last runs: %w", err)
		}
		l.QueuedAt, l.ScheduledAt, l.FinishedAt = time.Unix(0, queued).UTC(), unixNano(sched), unixNano(finished)
		st := out[id]
		st.Last = &l
		out[id] = st
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("last runs: %w", err)
	}
	return out, nil
}

// unixNano is a stored nanosecond time, nil when NULL.
func unixNano(n sql.NullInt64) *time.Time {
	if !n.Valid {
		return nil
	}
	v := time.Unix(0, n.Int64).UTC()
	return &v
}

// NodeSeen reports whether any stored execution ran on node.
func (s *Store) NodeSeen(ctx context.Context, node string) (bool, error) {
	var one int
	err := s.db.QueryRowContext(ctx, `SELECT 1 FROM executions WHERE node = ? LIMIT 1`, node).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("executions of node %s: %w", node, err)
	}
	return true, nil
}

// Backup writes a consistent copy of the store to path (which must not
// exist), while the server keeps running: SQLite's VACUUM INTO.
func (s *Store) Backup(ctx context.Context, path string) error {
	if _, err := s.db.ExecContext(ctx, `VACUUM INTO ?`, path); err != nil {
		return fmt.Errorf("back up the store to %s: %w", path, err)
	}
	return nil
}

// QueuedCounts returns how many executions of each event are queued.
func (s *Store) QueuedCounts(ctx context.Context, eventIDs []int64) (map[int64]int, error) {
	out := map[int64]int{}
	for len(eventIDs) > 0 {
		batch := eventIDs[:min(len(eventIDs), 500)]
		eventIDs = eventIDs[len(batch):]
		args := make([]any, len(batch))
		for i, id := range batch {
			args[i] = id
		}
		in := "(" + strings.TrimSuffix(strings.Repeat("?,", len(batch)), ",") + ")"
		rows, err := s.db.QueryContext(ctx, `SELECT event_id, COUNT(*) FROM executions WHERE status = 'queued' AND event_id IN `+in+` GROUP BY event_id`, args...)
		if err != nil {
			return nil, fmt.Errorf("queued executions: %w", err)
		}
		for rows.Next() {
			var id int64
			var n int
			if err := rows.Scan(&id, &n); err != nil {
				rows.Close()
				return nil, fmt.Errorf("queued executions: %w", err)
			}
			out[id] = n
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("queued executions: %w", err)
		}
	}
	return out, nil
}
