package sqlstore

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/cronium/executor/store"
	"strings"
	"time"

	cronium "github.com/cronium/executor"
)

// NewKey makes an API key for a user, named (may be empty) and expiring
// at expires (nil: never). It returns the key, shown only this once.
func (s *Store) NewKey(ctx context.Context, userID int64, name string, expires *time.Time) (string, store.KeyInfo, error) {
	var b [24]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", store.KeyInfo{}, err
	}
	key := store.KeyPrefix + hex.EncodeToString(b[:])
	sum := sha256.Sum256([]byte(key))
	info := store.KeyInfo{Name: name, Prefix: key[:10], CreatedAt: time.Now().UTC().Truncate(time.Second), ExpiresAt: expires}
	err := s.db.QueryRowContext(ctx, `INSERT INTO api_keys(user_id, hash, prefix, created_at, name, expires_at) VALUES (?, ?, ?, ?, ?, ?) RETURNING id`,
		userID, hex.EncodeToString(sum[:]), info.Prefix, info.CreatedAt.Unix(), name, nanos(expires)).Scan(&info.ID)
	if err != nil {
		return "", info, fmt.Errorf("create key: %w", err)
	}
	return key, info, nil
}

// CreateKey makes a new API key for a user that never expires and returns
// it; only its hash is stored.
func (s *Store) CreateKey(ctx context.Context, userID int64) (string, error) {
	key, _, err := s.NewKey(ctx, userID, "", nil)
	return key, err
}

const keyCols = `k.id, u.name, k.name, k.prefix, k.created_at, k.expires_at, k.revoked_at, k.last_used_at`

func scanKey(sc interface{ Scan(...any) error }) (store.KeyInfo, error) {
	var k store.KeyInfo
	var created int64
	var expires, revoked, used sql.NullInt64
	if err := sc.Scan(&k.ID, &k.User, &k.Name, &k.Prefix, &created, &expires, &revoked, &used); err != nil {
		return k, err
	}
	k.CreatedAt = time.Unix(created, 0).UTC()
	k.ExpiresAt, k.RevokedAt, k.LastUsedAt = unixNano(expires), unixNano(revoked), unixNano(used)
	return k, nil
}

// Authenticate returns the user of an API key and the key, if the key is
// known, not revoked, not expired at now, and its user not deleted. It
// notes when the key was last used (at most once a minute).
func (s *Store) Authenticate(ctx context.Context, key string, now time.Time) (cronium.User, store.KeyInfo, error) {
	sum := sha256.Sum256([]byte(key))
	var u cronium.User
	var created int64
	row := s.db.QueryRowContext(ctx, `SELECT u.id, u.tier, u.admin, u.created_at, `+keyCols+` FROM api_keys k JOIN users u ON u.id = k.user_id
		WHERE k.hash = ? AND k.revoked_at IS NULL AND (k.expires_at IS NULL OR k.expires_at > ?) AND u.deleted_at IS NULL`,
		hex.EncodeToString(sum[:]), now.UnixNano())
	var k store.KeyInfo
	var kcreated int64
	var expires, revoked, used sql.NullInt64
	err := row.Scan(&u.ID, &u.Tier, &u.Admin, &created, &k.ID, &u.Name, &k.Name, &k.Prefix, &kcreated, &expires, &revoked, &used)
	if errors.Is(err, sql.ErrNoRows) {
		return u, k, fmt.Errorf("%w: API key", cronium.ErrNotFound)
	}
	if err != nil {
		return u, k, fmt.Errorf("authenticate: %w", err)
	}
	u.CreatedAt, k.User, k.CreatedAt = time.Unix(created, 0).UTC(), u.Name, time.Unix(kcreated, 0).UTC()
	k.ExpiresAt, k.RevokedAt, k.LastUsedAt = unixNano(expires), unixNano(revoked), unixNano(used)
	if k.LastUsedAt == nil || now.Sub(*k.LastUsedAt) > time.Minute {
		s.db.ExecContext(ctx, `UPDATE api_keys SET last_used_at = ? WHERE id = ?`, now.UnixNano(), k.ID)
	}
	return u, k, nil
}

// Keys lists a user's API keys, revoked and expired ones included.
func (s *Store) Keys(ctx context.Context, userID int64) ([]store.KeyInfo, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+keyCols+` FROM api_keys k JOIN users u ON u.id = k.user_id WHERE k.user_id = ? ORDER BY k.id`, userID)
	if err != nil {
		return nil, fmt.Errorf("list keys: %w", err)
	}
	defer rows.Close()
	out := []store.KeyInfo{}
	for rows.Next() {
		k, err := scanKey(rows)
		if err != nil {
			return nil, fmt.Errorf("list keys: %w", err)
		}
		out = append(out, k)
	}
	return out, rows.Err()
}

// RevokeKey revokes a user's key by its ID, at once. It is ErrNotFound
// when the user has no such key, ErrConflict when it is revoked already.
func (s *Store) RevokeKey(ctx context.Context, userID, keyID int64, at time.Time) (store.KeyInfo, error) {
	r, err := s.db.ExecContext(ctx, `UPDATE api_keys SET revoked_at = ? WHERE id = ? AND user_id = ? AND revoked_at IS NULL`, at.UnixNano(), keyID, userID)
	if err != nil {
		return store.KeyInfo{}, fmt.Errorf("revoke key %d: %w", keyID, err)
	}
	k, err := scanKey(s.db.QueryRowContext(ctx, `SELECT `+keyCols+` FROM api_keys k JOIN users u ON u.id = k.user_id WHERE k.id = ? AND k.user_id = ?`, keyID, userID))
	if errors.Is(err, sql.ErrNoRows) {
		return k, fmt.Errorf("%w: key %d", cronium.ErrNotFound, keyID)
	}
	if err != nil {
		return k, fmt.Errorf("revoke key %d: %w", keyID, err)
	}
	if n, _ := r.RowsAffected(); n == 0 {
		return k, fmt.Errorf("%w: key %d was revoked already", cronium.ErrConflict, keyID)
	}
	return k, nil
}

// SetTier changes a user's tier.
func (s *Store) SetTier(ctx context.Context, userID int64, tier string) error {
	if _, err := s.db.ExecContext(ctx, `UPDATE users SET tier = ? WHERE id = ? AND deleted_at IS NULL`, tier, userID); err != nil {
		return fmt.Errorf("set tier: %w", err)
	}
	return nil
}

// DeleteUser deletes a user: their keys stop working at once, their
// events are deleted and their queued executions cancelled, in one
// transaction. The record stays (for the audit log and past executions),
// so the name stays taken.
func (s *Store) DeleteUser(ctx context.Context, userID int64, at time.Time) error {
	stamp := at.UnixNano()
	err := s.tx(ctx, func(tx *Tx) error {
		for _, st := range []struct {
			q    string
			args []any
		}{
			{`UPDATE users SET deleted_at = ? WHERE id = ? AND deleted_at IS NULL`, []any{stamp, userID}},
			{`UPDATE api_keys SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL`, []any{stamp, userID}},
			{`UPDATE events SET deleted = 1, enabled = 0, updated_at = ? WHERE user_id = ? AND deleted = 0`, []any{at.Unix(), userID}},
			{`UPDATE executions SET status = 'finished', outcome = 'cancelled', finished_at = ?, reason = 'its user was deleted' WHERE user_id = ? AND status = 'queued'`, []any{stamp, userID}},
			// Their secrets, variables and channels go at once.
			{`DELETE FROM secrets WHERE user_id = ?`, []any{userID}},
			{`DELETE FROM variables WHERE user_id = ?`, []any{userID}},
			{`DELETE FROM channels WHERE user_id = ?`, []any{userID}},
		} {
			if _, err := tx.ExecContext(ctx, st.q, st.args...); err != nil {
				return fmt.Errorf("delete user: %w", err)
			}
		}
		return nil
	})
	if err == nil {
		s.eventsChanged(ctx)
	}
	return err
}

// Audit records an entry.
func (s *Store) Audit(ctx context.Context, e store.AuditEntry) error {
	if e.At.IsZero() {
		e.At = time.Now()
	}
	_, err := s.db.ExecContext(ctx, `INSERT INTO audit(at, actor, key_id, action, target, detail, source) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		e.At.UnixNano(), e.Actor, e.KeyID, e.Action, e.Target, e.Detail, e.Source)
	if err != nil {
		return fmt.Errorf("audit %s %s: %w", e.Action, e.Target, err)
	}
	return nil
}

// AuditLog lists entries, newest first.
func (s *Store) AuditLog(ctx context.Context, f store.AuditFilter) ([]store.AuditEntry, error) {
	q, args := `SELECT id, at, actor, key_id, action, target, detail, source FROM audit WHERE at >= ?`, []any{f.Since.UnixNano()}
	if f.Actor != "" {
		q, args = q+` AND actor = ?`, append(args, f.Actor)
	}
	if f.Target != "" {
		q, args = q+` AND target = ?`, append(args, f.Target)
	}
	if prefix, ok := strings.CutSuffix(f.Action, "."); ok || f.Action != "" && !strings.Contains(f.Action, ".") {
		// A kind ("event." or "event"): every action of it.
		prefix = strings.TrimSuffix(f.Action, ".")
		q, args = q+` AND substr(action, 1, ?) = ?`, append(args, len(prefix)+1, prefix+".")
	} else if f.Action != "" {
		q, args = q+` AND action = ?`, append(args, f.Action)
	}
	limit := f.Limit
	if limit <= 0 || limit > 1000 {
		limit = 100
	}
	rows, err := s.db.QueryContext(ctx, q+` ORDER BY id DESC LIMIT ?`, append(args, limit)...)
	if err != nil {
		return nil, fmt.Errorf("audit log: %w", err)
	}
	defer rows.Close()
	out := []store.AuditEntry{}
	for rows.Next() {
		var e store.AuditEntry
		var at int64
		if err := rows.Scan(&e.ID, &at, &e.Actor, &e.KeyID, &e.Action, &e.Target, &e.Detail, &e.Source); err != nil {
			return nil, fmt.Errorf("audit log: %w", err)
		}
		e.At = time.Unix(0, at).UTC()
		out = append(out, e)
	}
	return out, rows.Err()
}
