package sqlstore

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/cronium/executor/store"
	"strings"
	"time"

	cronium "github.com/cronium/executor"
)

// FinishWith records an execution's result and queues its follow-ups in
// the same transaction: a crash can lose neither, nor do them twice (only
// the first finish of an execution counts). It reports whether this call
// finished the execution.
func (s *Store) FinishWith(ctx context.Context, id, node string, res cronium.Result, reason string, f store.FollowUps) (bool, error) {
	if err := prepareDeliveries(f.Notifications); err != nil {
		return false, err
	}
	b, _ := json.Marshal(res)
	at := res.EndedAt
	if at.IsZero() {
		at = time.Now()
	}
	finished := false
	err := s.tx(ctx, func(tx *Tx) error {
		var keptUntil any
		keptNode := ""
		if k := res.Kept; k != nil {
			keptUntil, keptNode = k.Until.UnixNano(), k.Node
		}
		r, err := tx.ExecContext(ctx, `UPDATE executions SET status = 'finished', outcome = ?, exit_code = ?, finished_at = ?, error = ?, result = ?, reason = ?,
			kept_until = ?, kept_node = ?
			WHERE id = ? AND status != 'finished' AND (? = '' OR node = ?)`, res.Outcome, res.ExitCode, at.UnixNano(), res.Error, string(b), reason,
			keptUntil, keptNode, id, node, node)
		if err != nil {
			return err
		}
		if n, _ := r.RowsAffected(); n != 1 {
			return nil // finished before (a cancel that raced): nothing follows twice
		}
		finished = true
		if err := s.addUsage(ctx, tx, id, at, res); err != nil {
			return err
		}
		chained, dropped, err := s.chainBudget(ctx, tx, f.Chained)
		if err != nil {
			return err
		}
		if dropped > 0 {
			f.Notes = append(f.Notes, fmt.Sprintf("on: %d trigger(s) not run: the chain has started %d runs, the most one chain may", dropped, cronium.MaxChainRuns))
		}
		if len(f.Notes) > 0 {
			if _, err := tx.ExecContext(ctx, `UPDATE executions SET reason = ? WHERE id = ?`, strings.Join(f.Notes, "; "), id); err != nil {
				return err
			}
		}
		xs := chained
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
	return s.FinishWith(ctx, id, "", res, reason, store.FollowUps{})
}

// chainBudget keeps the chained runs their chains still have room for
// (cronium.MaxChainRuns each, counted in the transaction that adds them,
// so branches finishing at once cannot overshoot), and says how many it
// dropped.
func (s *Store) chainBudget(ctx context.Context, tx *Tx, xs []*cronium.Execution) ([]*cronium.Execution, int, error) {
	room := map[string]int{}
	var keep []*cronium.Execution
	dropped := 0
	for _, x := range xs {
		r, ok := room[x.ChainRoot]
		if !ok {
			if err := s.lock(ctx, tx, "cronium.chain:"+x.ChainRoot); err != nil {
				return nil, 0, err
			}
			var n int
			if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM executions WHERE chain_root = ?`, x.ChainRoot).Scan(&n); err != nil {
				return nil, 0, err
			}
			r = cronium.MaxChainRuns - n
		}
		if r <= 0 {
			dropped++
		} else {
			keep = append(keep, x)
			r--
		}
		room[x.ChainRoot] = r
	}
	return keep, dropped, nil
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
