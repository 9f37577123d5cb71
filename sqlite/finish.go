package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	cronium "github.com/cronium/executor"
	"github.com/cronium/executor/notify"
)

// FollowUps is what an execution's end queues: its retry, or the events
// its actions trigger and the notifications they send.
type FollowUps struct {
	Retry         *cronium.Execution
	Chained       []*cronium.Execution
	Notifications []notify.Delivery
}

// FinishWith records an execution's result and queues its follow-ups in
// the same transaction: a crash can lose neither, nor do them twice (only
// the first finish of an execution counts). It reports whether this call
// finished the execution.
func (s *Store) FinishWith(ctx context.Context, id string, res cronium.Result, reason string, f FollowUps) (bool, error) {
	if err := prepareDeliveries(f.Notifications); err != nil {
		return false, err
	}
	b, _ := json.Marshal(res)
	at := res.EndedAt
	if at.IsZero() {
		at = time.Now()
	}
	finished := false
	err := s.tx(ctx, func(tx *sql.Tx) error {
		r, err := tx.ExecContext(ctx, `UPDATE executions SET status = 'finished', outcome = ?, exit_code = ?, finished_at = ?, error = ?, result = ?, reason = ?
			WHERE id = ? AND status != 'finished'`, res.Outcome, res.ExitCode, at.UnixNano(), res.Error, string(b), reason, id)
		if err != nil {
			return err
		}
		if n, _ := r.RowsAffected(); n != 1 {
			return nil // finished before (a cancel that raced): nothing follows twice
		}
		finished = true
		xs := f.Chained
		if f.Retry != nil {
			xs = append([]*cronium.Execution{f.Retry}, xs...)
		}
		if len(xs) > 0 {
			ins, err := tx.PrepareContext(ctx, insertExecution)
			if err != nil {
				return err
			}
			defer ins.Close()
			for _, x := range xs {
				if _, err := enqueueOne(ctx, ins, x); err != nil {
					return err
				}
			}
		}
		return insertDeliveries(ctx, tx, f.Notifications)
	})
	if err != nil {
		return false, fmt.Errorf("finish execution %s: %w", id, err)
	}
	return finished, nil
}

// Finish records an execution's result. It reports false if it was finished already.
func (s *Store) Finish(ctx context.Context, id string, res cronium.Result, reason string) (bool, error) {
	return s.FinishWith(ctx, id, res, reason, FollowUps{})
}

// LogTail returns the last bytes (at most max) of an execution's stored
// output, both streams, for a notification's excerpt.
func (s *Store) LogTail(ctx context.Context, id string, max int) (string, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT data FROM logs WHERE execution_id = ? ORDER BY seq DESC LIMIT 64`, id)
	if err != nil {
		return "", fmt.Errorf("log tail of %s: %w", id, err)
	}
	defer rows.Close()
	var parts [][]byte
	n := 0
	for rows.Next() && n < max {
		var b []byte
		if err := rows.Scan(&b); err != nil {
			return "", fmt.Errorf("log tail of %s: %w", id, err)
		}
		parts = append(parts, b)
		n += len(b)
	}
	var out []byte
	for i := len(parts) - 1; i >= 0; i-- {
		out = append(out, parts[i]...)
	}
	if len(out) > max {
		out = out[len(out)-max:]
	}
	return string(out), rows.Err()
}
