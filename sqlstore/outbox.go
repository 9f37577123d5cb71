package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	cronium "github.com/cronium/executor"
	"github.com/cronium/executor/notify"
	"github.com/cronium/executor/store"
)

// The notification outbox: deliveries wait in the notifications table until
// a notify.Worker claims, sends and marks them. Times are Unix nanoseconds.

var _ notify.Store = (*Store)(nil)

const notificationCols = `id, execution_id, user_id, channel, reason, message, status, attempts, next_at, last_error, created_at, sent_at`

// EnqueueNotifications adds pending deliveries in one transaction. It fills
// in, in place, an empty ID (at random), CreatedAt (now), NextAt
// (CreatedAt), ExecutionID and Reason (from the Message), and sets Status
// pending and Attempts 0. A delivery of the same execution, channel and
// reason as a stored one is skipped, so enqueueing again after a crash
// sends nothing twice. An empty ExecutionID, Channel or UserID is refused.
func (s *Store) EnqueueNotifications(ctx context.Context, ds []notify.Delivery) error {
	if err := prepareDeliveries(ds); err != nil {
		return err
	}
	err := s.tx(ctx, func(tx *Tx) error { return insertDeliveries(ctx, tx, ds) })
	if err != nil {
		return fmt.Errorf("enqueue %d notification(s): %w", len(ds), err)
	}
	return nil
}

// prepareDeliveries fills in and checks deliveries for insertDeliveries (see
// EnqueueNotifications).
func prepareDeliveries(ds []notify.Delivery) error {
	now := time.Now().UTC()
	for i := range ds {
		d := &ds[i]
		if d.ID == "" {
			d.ID = store.NewExecutionID()
		}
		if d.CreatedAt.IsZero() {
			d.CreatedAt = now
		}
		if d.NextAt.IsZero() {
			d.NextAt = d.CreatedAt
		}
		if d.ExecutionID == "" {
			d.ExecutionID = d.Message.ExecutionID
		}
		if d.Reason == "" {
			d.Reason = d.Message.Reason
		}
		d.Status, d.Attempts = notify.StatusPending, 0
		switch {
		case d.ExecutionID == "":
			return cronium.Invalid("execution_id", "", "is required for a notification")
		case d.Channel == "":
			return cronium.Invalid("channel", "", "is required for a notification")
		case d.UserID == 0:
			return cronium.Invalid("user_id", "", "is required for a notification")
		}
	}
	return nil
}

// insertDeliveries inserts prepared deliveries in tx, skipping duplicates.
func insertDeliveries(ctx context.Context, tx *Tx, ds []notify.Delivery) error {
	for _, d := range ds {
		msg, err := json.Marshal(d.Message)
		if err != nil {
			return fmt.Errorf("encode notification %s: %w", d.ID, err)
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO notifications(id, execution_id, user_id, channel, reason, message, status, attempts, next_at, created_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?, ?) ON CONFLICT DO NOTHING`,
			d.ID, d.ExecutionID, d.UserID, d.Channel, d.Reason, string(msg), d.Status, d.NextAt.UnixNano(), d.CreatedAt.UnixNano())
		if err != nil {
			return fmt.Errorf("notification %s on %s: %w", d.ID, d.Channel, err)
		}
	}
	return nil
}

// ClaimDue implements notify.Store: it leases at most limit pending
// deliveries due at now for store.NotificationLease, the oldest of each
// channel (a user's channel by name) that has no delivery under lease, and
// counts the claim as an attempt. It is one UPDATE under the outbox lock,
// so claims by several stores (or nodes) on one database never overlap.
func (s *Store) ClaimDue(ctx context.Context, now time.Time, limit int) ([]notify.Delivery, error) {
	if limit <= 0 {
		return nil, nil
	}
	var out []notify.Delivery
	err := s.tx(ctx, func(tx *Tx) error {
		if err := s.lock(ctx, tx, "cronium.outbox"); err != nil {
			return err
		}
		rows, err := tx.QueryContext(ctx, `UPDATE notifications SET claimed_until = ?2, attempts = attempts + 1
		WHERE id IN (
			SELECT id FROM (
				SELECT n.id, n.next_at, n.created_at,
					ROW_NUMBER() OVER (PARTITION BY n.user_id, n.channel ORDER BY n.next_at, n.created_at, n.id) AS rn
				FROM notifications n
				WHERE n.status = 'pending' AND n.next_at <= ?1 AND n.claimed_until <= ?1
					AND NOT EXISTS (SELECT 1 FROM notifications b WHERE b.status = 'pending' AND b.user_id = n.user_id
						AND b.channel = n.channel AND b.claimed_until > ?1)
			) AS firsts WHERE rn = 1 ORDER BY next_at, created_at, id LIMIT ?3
		)
		RETURNING `+notificationCols, now.UnixNano(), now.Add(store.NotificationLease).UnixNano(), limit)
		if err != nil {
			return err
		}
		if out, err = scanDeliveries(rows); err != nil {
			return err
		}
		// A message that cannot be read can never be sent: it fails at once
		// rather than being claimed again and again.
		kept := out[:0]
		for _, d := range out {
			if d.LastError != errUnreadable {
				kept = append(kept, d)
				continue
			}
			if _, err := tx.ExecContext(ctx, `UPDATE notifications SET status = 'failed', last_error = ?, claimed_until = 0 WHERE id = ?`, errUnreadable, d.ID); err != nil {
				return fmt.Errorf("fail unreadable notification %s: %w", d.ID, err)
			}
		}
		out = kept
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("claim due notifications: %w", err)
	}
	// RETURNING has no order.
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if !a.NextAt.Equal(b.NextAt) {
			return a.NextAt.Before(b.NextAt)
		}
		if !a.CreatedAt.Equal(b.CreatedAt) {
			return a.CreatedAt.Before(b.CreatedAt)
		}
		return a.ID < b.ID
	})
	return out, nil
}

// MarkSent implements notify.Store. A delivery recorded as failed meanwhile
// (its lease ran out) is recorded as sent: it was.
func (s *Store) MarkSent(ctx context.Context, id string, at time.Time) error {
	r, err := s.db.ExecContext(ctx, `UPDATE notifications SET status = 'sent', sent_at = ?, claimed_until = 0 WHERE id = ?`, at.UnixNano(), id)
	if err != nil {
		return fmt.Errorf("mark notification %s sent: %w", id, err)
	}
	if n, _ := r.RowsAffected(); n == 0 {
		return fmt.Errorf("%w: notification %s", cronium.ErrNotFound, id)
	}
	return nil
}

// MarkFailed implements notify.Store. It returns an ErrConflict when the
// delivery is no longer pending with that many attempts (claimed again
// after its lease ran out, or already recorded), and changes nothing.
func (s *Store) MarkFailed(ctx context.Context, id string, attempts int, next time.Time, lastErr string, final bool) error {
	r, err := s.db.ExecContext(ctx, `UPDATE notifications SET status = CASE WHEN ? THEN 'failed' ELSE 'pending' END, next_at = ?, last_error = ?, claimed_until = 0
		WHERE id = ? AND status = 'pending' AND attempts = ?`, final, next.UnixNano(), lastErr, id, attempts)
	if err != nil {
		return fmt.Errorf("mark notification %s failed: %w", id, err)
	}
	if n, _ := r.RowsAffected(); n == 1 {
		return nil
	}
	var status string
	var have int
	err = s.db.QueryRowContext(ctx, `SELECT status, attempts FROM notifications WHERE id = ?`, id).Scan(&status, &have)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%w: notification %s", cronium.ErrNotFound, id)
	}
	if err != nil {
		return fmt.Errorf("mark notification %s failed: %w", id, err)
	}
	return fmt.Errorf("%w: notification %s is %s after %d attempt(s), not pending after %d: a later claim owns it", cronium.ErrConflict, id, status, have, attempts)
}

// NotificationsFor lists an execution's deliveries, oldest first.
func (s *Store) NotificationsFor(ctx context.Context, executionID string) ([]notify.Delivery, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+notificationCols+` FROM notifications WHERE execution_id = ? ORDER BY created_at, channel, reason, id`, executionID)
	if err != nil {
		return nil, fmt.Errorf("list notifications of execution %s: %w", executionID, err)
	}
	out, err := scanDeliveries(rows)
	if err != nil {
		return nil, fmt.Errorf("list notifications of execution %s: %w", executionID, err)
	}
	return out, nil
}

// errUnreadable is the LastError of a delivery whose stored message cannot
// be decoded (never written so by this package).
const errUnreadable = "the stored message cannot be read: it cannot be sent"

// scanDeliveries reads notificationCols rows and closes them. A delivery
// whose message cannot be decoded has an empty Message and LastError
// errUnreadable.
func scanDeliveries(rows *sql.Rows) ([]notify.Delivery, error) {
	defer rows.Close()
	var out []notify.Delivery
	for rows.Next() {
		var d notify.Delivery
		var msg string
		var next, created int64
		var sent sql.NullInt64
		if err := rows.Scan(&d.ID, &d.ExecutionID, &d.UserID, &d.Channel, &d.Reason, &msg, &d.Status, &d.Attempts, &next, &d.LastError, &created, &sent); err != nil {
			return nil, err
		}
		if err := json.Unmarshal([]byte(msg), &d.Message); err != nil {
			d.Message, d.LastError = notify.Message{}, errUnreadable
		}
		d.NextAt, d.CreatedAt = time.Unix(0, next).UTC(), time.Unix(0, created).UTC()
		if sent.Valid {
			d.SentAt = time.Unix(0, sent.Int64).UTC()
		}
		out = append(out, d)
	}
	return out, rows.Err()
}
