package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	cronium "github.com/cronium/executor"
	"github.com/cronium/executor/store"
)

var _ store.Usage = (*Store)(nil)

// addUsage adds a finished execution's usage and cost to its user's,
// event's and day's sums, in the transaction that finishes it.
func (s *Store) addUsage(ctx context.Context, tx *Tx, id string, at time.Time, res cronium.Result) error {
	m := cronium.Meter(res)
	_, err := tx.ExecContext(ctx, `INSERT INTO usage_days(user_id, event_id, day, executions, cpu_us, reserved_mib_ms, peak_memory, io_read, io_write, net_bytes, cost_micros)
		SELECT user_id, event_id, ?, 1, ?, ?, ?, ?, ?, ?, ? FROM executions WHERE id = ?
		ON CONFLICT (user_id, day, event_id) DO UPDATE SET executions = usage_days.executions + 1,
			cpu_us = usage_days.cpu_us + excluded.cpu_us, reserved_mib_ms = usage_days.reserved_mib_ms + excluded.reserved_mib_ms,
			peak_memory = `+s.d.Greatest+`(usage_days.peak_memory, excluded.peak_memory),
			io_read = usage_days.io_read + excluded.io_read, io_write = usage_days.io_write + excluded.io_write,
			net_bytes = usage_days.net_bytes + excluded.net_bytes, cost_micros = usage_days.cost_micros + excluded.cost_micros`,
		store.Day(at), m.CPUMicros, m.ReservedMiBMs, m.PeakMemory, m.IORead, m.IOWrite, m.NetworkBytes, max(0, res.Usage.CostMicros), id)
	if err != nil {
		return fmt.Errorf("add the execution's usage: %w", err)
	}
	return nil
}

// Usage sums usage and cost by f.By over f's days.
func (s *Store) Usage(ctx context.Context, f store.UsageFilter) ([]store.UsageRow, error) {
	var cols, group, order string
	switch f.By {
	case store.ByDay:
		cols, group, order = "g.day, '', 0, ''", "GROUP BY g.day", "ORDER BY g.day"
	case store.ByUser:
		cols, group, order = "0, COALESCE(u.name, ''), g.user_id, ''", "GROUP BY g.user_id, u.name", "ORDER BY u.name, g.user_id"
	case store.ByEvent:
		cols, group, order = "0, COALESCE(u.name, ''), g.user_id, COALESCE(e.name, '')", "GROUP BY g.user_id, u.name, g.event_id, e.name", "ORDER BY u.name, e.name, g.event_id"
	case "":
		cols = "0, '', 0, ''"
	default:
		return nil, cronium.Invalid("by", f.By, "is not day, event or user")
	}
	where, args := "WHERE 1 = 1", []any{}
	if f.UserID != 0 {
		where, args = where+" AND g.user_id = ?", append(args, f.UserID)
	}
	if f.EventID != 0 {
		where, args = where+" AND g.event_id = ?", append(args, f.EventID)
	}
	if !f.Since.IsZero() {
		where, args = where+" AND g.day >= ?", append(args, store.Day(f.Since))
	}
	if !f.Until.IsZero() {
		where, args = where+" AND g.day < ?", append(args, store.Day(f.Until))
	}
	rows, err := s.db.QueryContext(ctx, `SELECT `+cols+`, COALESCE(SUM(g.executions), 0), COALESCE(SUM(g.cpu_us), 0), COALESCE(SUM(g.reserved_mib_ms), 0),
		COALESCE(MAX(g.peak_memory), 0), COALESCE(SUM(g.io_read), 0), COALESCE(SUM(g.io_write), 0), COALESCE(SUM(g.net_bytes), 0), COALESCE(SUM(g.cost_micros), 0)
		FROM usage_days g LEFT JOIN users u ON u.id = g.user_id LEFT JOIN events e ON e.id = g.event_id `+where+` `+group+` `+order, args...)
	if err != nil {
		return nil, fmt.Errorf("usage: %w", err)
	}
	defer rows.Close()
	out := []store.UsageRow{}
	for rows.Next() {
		var r store.UsageRow
		var day int64
		if err := rows.Scan(&day, &r.User, &r.UserID, &r.Event, &r.Executions, &r.CPUMicros, &r.ReservedMiBMs, &r.PeakMemory,
			&r.IORead, &r.IOWrite, &r.NetworkBytes, &r.CostMicros); err != nil {
			return nil, fmt.Errorf("usage: %w", err)
		}
		if f.By == store.ByDay {
			r.Day = time.Unix(day*86400, 0).UTC().Format(time.DateOnly)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("usage: %w", err)
	}
	return out, nil
}

// QueueDepth counts queued executions by tier, and those due at now.
func (s *Store) QueueDepth(ctx context.Context, now time.Time) (queued, due map[string]int64, err error) {
	rows, err := s.db.QueryContext(ctx, `SELECT u.tier, COUNT(*), COUNT(*) FILTER (WHERE x.not_before <= ?)
		FROM executions x JOIN users u ON u.id = x.user_id WHERE x.status = 'queued' GROUP BY u.tier`, now.UnixNano())
	if err != nil {
		return nil, nil, fmt.Errorf("queue depth: %w", err)
	}
	defer rows.Close()
	queued, due = map[string]int64{}, map[string]int64{}
	for rows.Next() {
		var tier sql.NullString
		var q, d int64
		if err := rows.Scan(&tier, &q, &d); err != nil {
			return nil, nil, fmt.Errorf("queue depth: %w", err)
		}
		queued[tier.String], due[tier.String] = q, d
	}
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("queue depth: %w", err)
	}
	return queued, due, nil
}

// KeptOn lists the executions whose sandboxes node keeps for debugging,
// with until when.
func (s *Store) KeptOn(ctx context.Context, node string) (map[string]store.KeptSandbox, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, user_id, kept_until FROM executions WHERE kept_until IS NOT NULL AND kept_node = ?`, node)
	if err != nil {
		return nil, fmt.Errorf("kept sandboxes: %w", err)
	}
	defer rows.Close()
	out := map[string]store.KeptSandbox{}
	for rows.Next() {
		var id string
		var k store.KeptSandbox
		var until int64
		if err := rows.Scan(&id, &k.UserID, &until); err != nil {
			return nil, fmt.Errorf("kept sandboxes: %w", err)
		}
		k.Until = time.Unix(0, until)
		out[id] = k
	}
	return out, rows.Err()
}

// Unkeep records that an execution's kept sandbox is gone.
func (s *Store) Unkeep(ctx context.Context, id string) error {
	if _, err := s.db.ExecContext(ctx, `UPDATE executions SET kept_until = NULL WHERE id = ?`, id); err != nil {
		return fmt.Errorf("unkeep execution %s: %w", id, err)
	}
	return nil
}
