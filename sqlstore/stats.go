package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"github.com/cronium/executor/store"
	"time"
)

// EventStats returns the stats of one user's events (every user's when
// userID is 0), by event ID. Events that never ran are absent.
func (s *Store) EventStats(ctx context.Context, userID int64) (map[int64]store.EventStats, error) {
	where, args := "", []any{}
	if userID != 0 {
		where, args = "WHERE user_id = ?", []any{userID}
	}
	out := map[int64]store.EventStats{}
	rows, err := s.db.QueryContext(ctx, `SELECT event_id, COUNT(finished_at), COUNT(*) FILTER (WHERE outcome = 'succeeded')
		FROM executions `+where+` GROUP BY event_id`, args...)
	if err != nil {
		return nil, fmt.Errorf("event stats: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var st store.EventStats
		if err := rows.Scan(&id, &st.Runs, &st.Succeeded); err != nil {
			return nil, fmt.Errorf("event stats: %w", err)
		}
		out[id] = st
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("event stats: %w", err)
	}
	rows.Close()

	rows, err = s.db.QueryContext(ctx, `SELECT event_id, id, trigger, status, outcome, queued_at, scheduled_at, finished_at FROM (
			SELECT event_id, id, trigger, status, outcome, queued_at, scheduled_at, finished_at,
				ROW_NUMBER() OVER (PARTITION BY event_id ORDER BY queued_at DESC, id DESC) AS rn
			FROM executions `+where+`) AS last WHERE rn = 1`, args...)
	if err != nil {
		return nil, fmt.Errorf("last runs: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id, queued int64
		var sched, finished sql.NullInt64
		var l store.LastRun
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
		in := "(" + placeholders(len(batch)) + ")"
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
