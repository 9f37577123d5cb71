package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"github.com/cronium/executor/store"
	"time"

	cronium "github.com/cronium/executor"
)

// PutChannel stores (creates or replaces) a user's channel.
func (s *Store) PutChannel(ctx context.Context, c store.SealedChannel) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO channels(user_id, name, type, key_id, blob, updated_at) VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT(user_id, name) DO UPDATE SET type = excluded.type, key_id = excluded.key_id, blob = excluded.blob, updated_at = excluded.updated_at`,
		c.UserID, c.Name, c.Type, c.KeyID, c.Blob, time.Now().UnixNano())
	if err != nil {
		return fmt.Errorf("store channel %s: %w", c.Name, err)
	}
	return nil
}

// Channel returns a user's channel, ErrNotFound when there is none.
func (s *Store) Channel(ctx context.Context, userID int64, name string) (store.SealedChannel, error) {
	c := store.SealedChannel{UserID: userID, Name: name}
	var at int64
	err := s.db.QueryRowContext(ctx, `SELECT type, key_id, blob, updated_at FROM channels WHERE user_id = ? AND name = ?`, userID, name).Scan(&c.Type, &c.KeyID, &c.Blob, &at)
	if errors.Is(err, sql.ErrNoRows) {
		return c, fmt.Errorf("%w: channel %s", cronium.ErrNotFound, name)
	}
	if err != nil {
		return c, fmt.Errorf("read channel %s: %w", name, err)
	}
	c.UpdatedAt = time.Unix(0, at).UTC()
	return c, nil
}

// Channels lists a user's channels (sealed).
func (s *Store) Channels(ctx context.Context, userID int64) ([]store.SealedChannel, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT name, type, key_id, blob, updated_at FROM channels WHERE user_id = ? ORDER BY name`, userID)
	if err != nil {
		return nil, fmt.Errorf("list channels: %w", err)
	}
	defer rows.Close()
	out := []store.SealedChannel{}
	for rows.Next() {
		c := store.SealedChannel{UserID: userID}
		var at int64
		if err := rows.Scan(&c.Name, &c.Type, &c.KeyID, &c.Blob, &at); err != nil {
			return nil, fmt.Errorf("list channels: %w", err)
		}
		c.UpdatedAt = time.Unix(0, at).UTC()
		out = append(out, c)
	}
	return out, rows.Err()
}

// DeleteChannel deletes a user's channel; false when there was none.
func (s *Store) DeleteChannel(ctx context.Context, userID int64, name string) (bool, error) {
	r, err := s.db.ExecContext(ctx, `DELETE FROM channels WHERE user_id = ? AND name = ?`, userID, name)
	if err != nil {
		return false, fmt.Errorf("delete channel %s: %w", name, err)
	}
	n, _ := r.RowsAffected()
	return n == 1, nil
}

// AllChannels lists every user's channels (sealed), for key rotation.
func (s *Store) AllChannels(ctx context.Context) ([]store.SealedChannel, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT user_id, name, type, key_id, blob, updated_at FROM channels ORDER BY user_id, name`)
	if err != nil {
		return nil, fmt.Errorf("list channels: %w", err)
	}
	defer rows.Close()
	var out []store.SealedChannel
	for rows.Next() {
		var c store.SealedChannel
		var at int64
		if err := rows.Scan(&c.UserID, &c.Name, &c.Type, &c.KeyID, &c.Blob, &at); err != nil {
			return nil, fmt.Errorf("list channels: %w", err)
		}
		c.UpdatedAt = time.Unix(0, at).UTC()
		out = append(out, c)
	}
	return out, rows.Err()
}
