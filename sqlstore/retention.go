package sqlstore

import (
	"context"
	"fmt"
	"time"

	cronium "github.com/cronium/executor"
	"github.com/cronium/executor/store"
)

// pruneBatch is how many executions one prune transaction deletes at most,
// so that the store is never locked for long.
const pruneBatch = 500

// Prune deletes one user's finished executions, and their logs, that
// finished before olderThan or are not among the newest keepRuns of their
// event. Queued and running executions are never touched. It returns how
// many executions it deleted.
func (s *Store) Prune(ctx context.Context, userID int64, olderThan time.Time, keepRuns int) (int, error) {
	total := 0
	for {
		var ids []any
		rows, err := s.db.QueryContext(ctx, `SELECT id FROM (
				SELECT id, finished_at, ROW_NUMBER() OVER (PARTITION BY event_id ORDER BY queued_at DESC, id DESC) AS rn
				FROM executions WHERE user_id = ? AND status = 'finished') AS f
			WHERE (rn > ? OR finished_at < ?)
				AND id NOT IN (SELECT execution_id FROM notifications WHERE status = 'pending') LIMIT ?`, userID, keepRuns, olderThan.UnixNano(), pruneBatch)
		if err != nil {
			return total, fmt.Errorf("prune: find executions: %w", err)
		}
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return total, fmt.Errorf("prune: %w", err)
			}
			ids = append(ids, id)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return total, fmt.Errorf("prune: %w", err)
		}
		if len(ids) == 0 {
			return total, nil
		}
		in := "(" + placeholders(len(ids)) + ")"
		err = s.tx(ctx, func(tx *Tx) error {
			if _, err := tx.ExecContext(ctx, `DELETE FROM logs WHERE execution_id IN `+in, ids...); err != nil {
				return err
			}
			// Its notifications go with it, once they are sent or given up.
			if _, err := tx.ExecContext(ctx, `DELETE FROM notifications WHERE status != 'pending' AND execution_id IN `+in, ids...); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, `DELETE FROM executions WHERE status = 'finished' AND id IN `+in, ids...)
			return err
		})
		if err != nil {
			return total, fmt.Errorf("prune: delete %d executions: %w", len(ids), err)
		}
		total += len(ids)
		if len(ids) < pruneBatch {
			return total, nil
		}
	}
}

// PruneAll applies every user's tier retention (Tier.Retention) at now;
// users of an unknown tier get the free tier's. It also deletes audit
// entries older than store.AuditRetention. It returns how many executions it
// deleted.
func (s *Store) PruneAll(ctx context.Context, tiers map[string]cronium.Tier, now time.Time) (int, error) {
	if _, err := s.db.ExecContext(ctx, `DELETE FROM audit WHERE at < ?`, now.Add(-store.AuditRetention).UnixNano()); err != nil {
		return 0, fmt.Errorf("prune the audit log: %w", err)
	}
	users, err := s.Users(ctx)
	if err != nil {
		return 0, err
	}
	total := 0
	for _, u := range users {
		t, ok := tiers[u.Tier]
		if !ok {
			t = tiers["free"]
		}
		days, runs := t.Retention()
		n, err := s.Prune(ctx, u.ID, now.AddDate(0, 0, -days), runs)
		total += n
		if err != nil {
			return total, fmt.Errorf("user %s: %w", u.Name, err)
		}
	}
	return total, nil
}
