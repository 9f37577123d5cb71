package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"time"

	cronium "github.com/cronium/executor"
	"github.com/cronium/executor/store"
)

// ---- users and keys

// CreateUser adds a user.
func (s *Store) CreateUser(ctx context.Context, name, tier string, admin bool) (cronium.User, error) {
	u := cronium.User{Name: name, Tier: tier, Admin: admin, CreatedAt: time.Now().UTC().Truncate(time.Second)}
	err := s.db.QueryRowContext(ctx, `INSERT INTO users(name, tier, admin, created_at) VALUES (?, ?, ?, ?) RETURNING id`, name, tier, flag(admin), u.CreatedAt.Unix()).Scan(&u.ID)
	if s.isUnique(err) {
		var deleted sql.NullInt64
		s.db.QueryRowContext(ctx, `SELECT deleted_at FROM users WHERE name = ?`, name).Scan(&deleted)
		if deleted.Valid {
			return u, fmt.Errorf("%w: user %s was deleted, and a deleted user's name is not given again (the audit log and past executions name them): choose another name", cronium.ErrConflict, name)
		}
		return u, fmt.Errorf("%w: user %s already exists", cronium.ErrConflict, name)
	}
	if err != nil {
		return u, fmt.Errorf("create user %s: %w", name, err)
	}
	return u, nil
}

// UserByName returns a user.
func (s *Store) UserByName(ctx context.Context, name string) (cronium.User, error) {
	return s.scanUser(s.db.QueryRowContext(ctx, `SELECT id, name, tier, admin, created_at FROM users WHERE name = ? AND deleted_at IS NULL`, name), name)
}

func (s *Store) scanUser(row *sql.Row, what string) (cronium.User, error) {
	var u cronium.User
	var created int64
	err := row.Scan(&u.ID, &u.Name, &u.Tier, &u.Admin, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return u, fmt.Errorf("%w: user %s", cronium.ErrNotFound, what)
	}
	if err != nil {
		return u, fmt.Errorf("read user %s: %w", what, err)
	}
	u.CreatedAt = time.Unix(created, 0).UTC()
	return u, nil
}

// Users lists every user.
func (s *Store) Users(ctx context.Context) ([]cronium.User, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, name, tier, admin, created_at FROM users WHERE deleted_at IS NULL ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	defer rows.Close()
	var out []cronium.User
	for rows.Next() {
		var u cronium.User
		var created int64
		if err := rows.Scan(&u.ID, &u.Name, &u.Tier, &u.Admin, &created); err != nil {
			return nil, err
		}
		u.CreatedAt = time.Unix(created, 0).UTC()
		out = append(out, u)
	}
	return out, rows.Err()
}

// UserByKey authenticates an API key now (see Authenticate).
func (s *Store) UserByKey(ctx context.Context, key string) (cronium.User, error) {
	u, _, err := s.Authenticate(ctx, key, time.Now())
	return u, err
}

// ---- events

// PutEvent creates or replaces the event (user, name). It reports whether it was created.
func (s *Store) PutEvent(ctx context.Context, userID int64, ev *cronium.Event) (created bool, err error) {
	now := time.Now().UTC().Truncate(time.Second)
	err = s.tx(ctx, func(tx *Tx) error {
		if err := s.lock(ctx, tx, fmt.Sprintf("cronium.event:%d:%s", userID, ev.Name)); err != nil {
			return err
		}
		var id, createdAt int64
		var oldSpec string
		err := tx.QueryRowContext(ctx, `SELECT id, created_at, spec FROM events WHERE user_id = ? AND name = ? AND deleted = 0`, userID, ev.Name).Scan(&id, &createdAt, &oldSpec)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			created = true
			ev.CreatedAt, ev.UpdatedAt = now, now
			spec, _ := json.Marshal(ev)
			return tx.QueryRowContext(ctx, `INSERT INTO events(user_id, name, spec, enabled, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?) RETURNING id`,
				userID, ev.Name, string(spec), flag(ev.IsEnabled()), now.Unix(), now.Unix()).Scan(&ev.ID)
		case err != nil:
			return err
		}
		ev.ID = id
		ev.CreatedAt = time.Unix(createdAt, 0).UTC()
		var old cronium.Event
		unreadable := json.Unmarshal([]byte(oldSpec), &old) != nil
		if unreadable {
			old = cronium.Event{} // an unreadable stored spec is replaced by this one
		}
		// A changed schedule starts afresh: fires before now are not "missed".
		restart := unreadable || old.Schedule != ev.Schedule || old.Timezone != ev.Timezone
		old.ID, old.CreatedAt = ev.ID, ev.CreatedAt
		ev.UpdatedAt = old.UpdatedAt
		if a, b := mustJSON(old), mustJSON(ev); a == b {
			return nil // unchanged: apply is idempotent
		}
		ev.UpdatedAt = now
		spec, _ := json.Marshal(ev)
		if _, err = tx.ExecContext(ctx, `UPDATE events SET spec = ?, enabled = ?, updated_at = ?,
			last_fire = CASE WHEN ? THEN NULL ELSE last_fire END WHERE id = ?`, string(spec), flag(ev.IsEnabled()), now.Unix(), restart, id); err != nil {
			return err
		}
		switch {
		case !ev.IsEnabled():
			return cancelWrittenAhead(ctx, tx, id, "the event was paused before its time")
		case restart:
			return cancelWrittenAhead(ctx, tx, id, "the event's schedule changed before its time")
		}
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("save event %s: %w", ev.Name, err)
	}
	s.eventsChanged(ctx)
	return created, nil
}

func mustJSON(v any) string { b, _ := json.Marshal(v); return string(b) }

const eventCols = `e.id, e.spec, e.enabled, u.name, e.created_at, e.updated_at`

func scanEvent(sc interface{ Scan(...any) error }) (cronium.Event, error) {
	var ev cronium.Event
	var id, created, updated int64
	var spec, user string
	var enabled bool
	if err := sc.Scan(&id, &spec, &enabled, &user, &created, &updated); err != nil {
		return ev, err
	}
	if err := json.Unmarshal([]byte(spec), &ev); err != nil {
		return ev, fmt.Errorf("decode event %d: %w", id, err)
	}
	ev.ID, ev.User = id, user
	ev.Enabled = &enabled
	ev.CreatedAt, ev.UpdatedAt = time.Unix(created, 0).UTC(), time.Unix(updated, 0).UTC()
	return ev, nil
}

// Event returns the user's event by name.
func (s *Store) Event(ctx context.Context, userID int64, name string) (cronium.Event, error) {
	ev, err := scanEvent(s.db.QueryRowContext(ctx, `SELECT `+eventCols+` FROM events e JOIN users u ON u.id = e.user_id WHERE e.user_id = ? AND e.name = ? AND e.deleted = 0`, userID, name))
	if errors.Is(err, sql.ErrNoRows) {
		return ev, fmt.Errorf("%w: event %s", cronium.ErrNotFound, name)
	}
	return ev, err
}

// EventByID returns an event, deleted or not.
func (s *Store) EventByID(ctx context.Context, id int64) (cronium.Event, error) {
	ev, err := scanEvent(s.db.QueryRowContext(ctx, `SELECT `+eventCols+` FROM events e JOIN users u ON u.id = e.user_id WHERE e.id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return ev, fmt.Errorf("%w: event %d", cronium.ErrNotFound, id)
	}
	return ev, err
}

// Events lists events: one user's, or everyone's when userID is 0.
func (s *Store) Events(ctx context.Context, userID int64) ([]cronium.Event, error) {
	q := `SELECT ` + eventCols + ` FROM events e JOIN users u ON u.id = e.user_id WHERE e.deleted = 0`
	args := []any{}
	if userID != 0 {
		q += ` AND e.user_id = ?`
		args = append(args, userID)
	}
	rows, err := s.db.QueryContext(ctx, q+` ORDER BY u.name, e.name`, args...)
	if err != nil {
		return nil, fmt.Errorf("list events: %w", err)
	}
	defer rows.Close()
	var out []cronium.Event
	for rows.Next() {
		ev, err := scanEvent(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, ev)
	}
	return out, rows.Err()
}

// ScheduledEvents lists enabled events that have a schedule.
func (s *Store) ScheduledEvents(ctx context.Context) ([]store.ScheduledEvent, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+eventCols+`, e.user_id, e.last_fire FROM events e JOIN users u ON u.id = e.user_id
		WHERE e.deleted = 0 AND e.enabled = 1 AND `+s.d.JSONText("e.spec", "schedule")+` <> ''`)
	if err != nil {
		return nil, fmt.Errorf("list scheduled events: %w", err)
	}
	defer rows.Close()
	var out []store.ScheduledEvent
	for rows.Next() {
		var se store.ScheduledEvent
		var last sql.NullInt64
		var id, created, updated int64
		var spec, user string
		var enabled bool
		if err := rows.Scan(&id, &spec, &enabled, &user, &created, &updated, &se.UserID, &last); err != nil {
			return nil, err
		}
		if err := json.Unmarshal([]byte(spec), &se.Event); err != nil {
			return nil, fmt.Errorf("decode event %d: %w", id, err)
		}
		se.Event.ID, se.Event.User, se.Event.Enabled = id, user, &enabled
		if last.Valid {
			se.LastFire = time.Unix(0, last.Int64).UTC()
		}
		out = append(out, se)
	}
	return out, rows.Err()
}

// SetEnabled pauses or resumes an event. Resuming starts the schedule afresh.
func (s *Store) SetEnabled(ctx context.Context, userID int64, name string, enabled bool) error {
	err := s.tx(ctx, func(tx *Tx) error {
		var id int64
		err := tx.QueryRowContext(ctx, `UPDATE events SET enabled = ?, spec = `+s.d.JSONSet("spec", "enabled")+`, updated_at = ?,
			last_fire = CASE WHEN ? THEN NULL ELSE last_fire END WHERE user_id = ? AND name = ? AND deleted = 0 RETURNING id`,
			flag(enabled), fmt.Sprint(enabled), time.Now().Unix(), enabled, userID, name).Scan(&id)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("%w: event %s", cronium.ErrNotFound, name)
		}
		if err != nil || enabled {
			return err
		}
		return cancelWrittenAhead(ctx, tx, id, "the event was paused before its time")
	})
	if err != nil {
		return fmt.Errorf("set event %s enabled=%v: %w", name, enabled, err)
	}
	s.eventsChanged(ctx)
	return nil
}

// cancelWrittenAhead cancels the event's scheduled executions written
// ahead of their time (queued, not yet due), saying why: a paused or
// rescheduled event does not run them. They stay, cancelled, in its
// history; their times are not fired again.
func cancelWrittenAhead(ctx context.Context, tx *Tx, eventID int64, why string) error {
	now := time.Now().UnixNano()
	_, err := tx.ExecContext(ctx, `UPDATE executions SET status = 'finished', outcome = 'cancelled', finished_at = ?, reason = ?
		WHERE event_id = ? AND status = 'queued' AND scheduled_at IS NOT NULL AND not_before > ?`, now, why, eventID, now)
	return err
}

// SetPackageLock records a rebuilt package layer on event id, if the event
// still uses the layer prev (an apply meanwhile wins: it built its own).
// It reports whether it did. The event's updated_at is left alone: the
// user changed nothing.
func (s *Store) SetPackageLock(ctx context.Context, id int64, prev string, lock cronium.PackageLock) (bool, error) {
	j, err := json.Marshal(lock)
	if err != nil {
		return false, err
	}
	r, err := s.db.ExecContext(ctx, `UPDATE events SET spec = `+s.d.JSONSet("spec", "package_lock")+`
		WHERE id = ? AND deleted = 0 AND `+s.d.JSONText("spec", "package_lock", "image")+` = ?`, string(j), id, prev)
	if err != nil {
		return false, fmt.Errorf("record the package layer of event %d: %w", id, err)
	}
	n, _ := r.RowsAffected()
	if n == 1 {
		s.eventsChanged(ctx)
	}
	return n == 1, nil
}

// DeleteEvent deletes an event; its executions stay, and queued ones are cancelled.
func (s *Store) DeleteEvent(ctx context.Context, userID int64, name string) (int64, error) {
	var id int64
	err := s.tx(ctx, func(tx *Tx) error {
		if err := tx.QueryRowContext(ctx, `SELECT id FROM events WHERE user_id = ? AND name = ? AND deleted = 0`, userID, name).Scan(&id); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("%w: event %s", cronium.ErrNotFound, name)
			}
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE events SET deleted = 1, enabled = 0 WHERE id = ?`, id); err != nil {
			return err
		}
		now := time.Now().UnixNano()
		_, err := tx.ExecContext(ctx, `UPDATE executions SET status = 'finished', outcome = 'cancelled', finished_at = ?, reason = 'event deleted' WHERE event_id = ? AND status = 'queued'`, now, id)
		return err
	})
	if err == nil {
		s.eventsChanged(ctx)
	}
	return id, err
}

// ---- executions

func nanos(t *time.Time) any {
	if t == nil || t.IsZero() {
		return nil
	}
	return t.UnixNano()
}

// Enqueue inserts a queued execution. A scheduled execution whose (event,
// scheduled time) already exists is not inserted again: inserted is false.
// When fire is set, the event's last fire time is advanced in the same transaction.
func (s *Store) Enqueue(ctx context.Context, x *cronium.Execution, fire *time.Time) (inserted bool, err error) {
	var fires []time.Time
	if fire != nil {
		fires = []time.Time{*fire}
	}
	n, err := s.EnqueueMany(ctx, []*cronium.Execution{x}, fires)
	return n == 1, err
}

// EnqueueMany inserts queued executions in one transaction, skipping
// scheduled ones that exist already, and returns how many were inserted.
// fires, when given, holds one fire time per execution: each event's last
// fire time is advanced to it in the same transaction, so a restart can
// never fire the same (event, time) twice nor forget that it fired.
func (s *Store) EnqueueMany(ctx context.Context, xs []*cronium.Execution, fires []time.Time) (int, error) {
	inserted := 0
	err := s.tx(ctx, func(tx *Tx) error {
		live, err := s.liveEvents(ctx, tx, xs, fires)
		if err != nil {
			return err
		}
		ins, err := tx.PrepareContext(ctx, insertExecution)
		if err != nil {
			return err
		}
		defer ins.Close()
		for i, x := range xs {
			if live != nil && !live[x.EventID] {
				continue // paused or deleted since the scheduler read it (on this node or another)
			}
			ok, err := enqueueOne(ctx, ins, x)
			if err != nil {
				return err
			}
			if ok {
				inserted++
			}
			if i < len(fires) {
				if _, err := tx.ExecContext(ctx, `UPDATE events SET last_fire = `+s.d.Greatest+`(COALESCE(last_fire, 0), ?) WHERE id = ?`, fires[i].UnixNano(), x.EventID); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("enqueue %d execution(s): %w", len(xs), err)
	}
	return inserted, nil
}

// liveEvents, for scheduled fires (fires given), says which of the
// executions' events are still enabled and not deleted; nil otherwise.
func (s *Store) liveEvents(ctx context.Context, tx *Tx, xs []*cronium.Execution, fires []time.Time) (map[int64]bool, error) {
	if len(fires) == 0 {
		return nil, nil
	}
	seen := map[int64]bool{}
	var ids []any
	for _, x := range xs {
		if !seen[x.EventID] {
			seen[x.EventID] = true
			ids = append(ids, x.EventID)
		}
	}
	live := map[int64]bool{}
	for len(ids) > 0 {
		batch := ids[:min(len(ids), 500)]
		ids = ids[len(batch):]
		rows, err := tx.QueryContext(ctx, `SELECT id FROM events WHERE enabled = 1 AND deleted = 0 AND id IN (`+placeholders(len(batch))+`)`, batch...)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var id int64
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return nil, err
			}
			live[id] = true
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	return live, nil
}

const insertExecution = `INSERT INTO executions(id, event_id, user_id, trigger, scheduled_at, queued_at, not_before, status, attempt, reason, strategy, priority, input, retry_of, chained_from, chain_depth, chain_root)
	VALUES (?, ?, ?, ?, ?, ?, ?, 'queued', ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`

// enqueueOne inserts x as queued with the prepared insertExecution,
// filling its ID, times and status; it reports whether it was inserted.
func enqueueOne(ctx context.Context, ins *sql.Stmt, x *cronium.Execution) (bool, error) {
	if x.ID == "" {
		x.ID = store.NewExecutionID()
	}
	if x.QueuedAt.IsZero() {
		x.QueuedAt = time.Now().UTC() // per row: a large batch shows its real spread
	}
	if x.NotBefore.IsZero() {
		x.NotBefore = x.QueuedAt
	}
	x.Status = cronium.StatusQueued
	r, err := ins.ExecContext(ctx, x.ID, x.EventID, x.UserID, x.Trigger, nanos(x.ScheduledAt), x.QueuedAt.UnixNano(), x.NotBefore.UnixNano(),
		x.Attempt, x.Reason, x.Strategy, x.Priority, []byte(x.Input), x.RetryOf, x.ChainedFrom, x.ChainDepth, x.ChainRoot)
	if err != nil {
		return false, err
	}
	n, _ := r.RowsAffected()
	return n == 1, nil
}

// AdvanceFire records that fire times up to t were handled without an execution (skipped).
func (s *Store) AdvanceFire(ctx context.Context, eventID int64, t time.Time) error {
	_, err := s.db.ExecContext(ctx, `UPDATE events SET last_fire = `+s.d.Greatest+`(COALESCE(last_fire, 0), ?) WHERE id = ?`, t.UnixNano(), eventID)
	return err
}

const execCols = `x.id, x.event_id, e.name, u.name, x.user_id, x.trigger, x.scheduled_at, x.queued_at, x.not_before, x.started_at, x.finished_at,
	x.status, x.outcome, x.exit_code, x.attempt, x.reason, x.strategy, x.priority, x.node, x.error, x.input, x.result, x.log_bytes, x.log_truncated, x.retry_of,
	x.output, x.condition, x.strategy_reason, x.sandbox, x.chained_from, x.chain_depth, x.chain_root`

const execFrom = ` FROM executions x JOIN events e ON e.id = x.event_id JOIN users u ON u.id = x.user_id`

func scanExecution(sc interface{ Scan(...any) error }) (cronium.Execution, error) {
	var x cronium.Execution
	var sched, started, finished, exit sql.NullInt64
	var queued, notBefore int64
	var input []byte
	var result, output sql.NullString
	var cond sql.NullBool
	err := sc.Scan(&x.ID, &x.EventID, &x.Event, &x.User, &x.UserID, &x.Trigger, &sched, &queued, &notBefore, &started, &finished,
		&x.Status, &x.Outcome, &exit, &x.Attempt, &x.Reason, &x.Strategy, &x.Priority, &x.Node, &x.Error, &input, &result, &x.LogBytes, &x.LogTruncated, &x.RetryOf,
		&output, &cond, &x.StrategyReason, &x.Sandbox, &x.ChainedFrom, &x.ChainDepth, &x.ChainRoot)
	if err != nil {
		return x, err
	}
	x.ScheduledAt, x.StartedAt, x.FinishedAt = unixNano(sched), unixNano(started), unixNano(finished)
	x.QueuedAt, x.NotBefore = time.Unix(0, queued).UTC(), time.Unix(0, notBefore).UTC()
	if exit.Valid {
		c := int(exit.Int64)
		x.ExitCode = &c
	}
	if len(input) > 0 {
		x.Input = json.RawMessage(input)
	}
	if output.Valid {
		x.Output = json.RawMessage(output.String)
	}
	if cond.Valid {
		c := cond.Bool
		x.Condition = &c
	}
	if result.Valid && result.String != "" {
		var r cronium.Result
		if err := json.Unmarshal([]byte(result.String), &r); err != nil {
			// Said, not dropped: the rest of the execution is still shown.
			r = cronium.Result{ID: x.ID, Error: "the stored result could not be read: " + err.Error()}
		}
		x.Result = &r
	}
	return x, nil
}

// Execution returns one execution. userID 0 means any user (admin).
func (s *Store) Execution(ctx context.Context, userID int64, id string) (cronium.Execution, error) {
	q := `SELECT ` + execCols + execFrom + ` WHERE x.id = ?`
	args := []any{id}
	if userID != 0 {
		q += ` AND x.user_id = ?`
		args = append(args, userID)
	}
	x, err := scanExecution(s.db.QueryRowContext(ctx, q, args...))
	if errors.Is(err, sql.ErrNoRows) {
		return x, fmt.Errorf("%w: execution %s", cronium.ErrNotFound, id)
	}
	if err != nil {
		return x, err
	}
	err = s.db.QueryRowContext(ctx, `SELECT id FROM executions WHERE retry_of = ? LIMIT 1`, id).Scan(&x.RetriedBy)
	if errors.Is(err, sql.ErrNoRows) {
		err = nil
	}
	return x, err
}

// Executions lists executions, newest first.
func (s *Store) Executions(ctx context.Context, f store.ExecutionFilter) ([]cronium.Execution, error) {
	q := `SELECT ` + execCols + execFrom + ` WHERE 1=1`
	var args []any
	if f.UserID != 0 {
		q += ` AND x.user_id = ?`
		args = append(args, f.UserID)
	}
	if f.Event != "" {
		q += ` AND e.name = ?`
		args = append(args, f.Event)
	}
	if f.Status != "" {
		q += ` AND x.status = ?`
		args = append(args, f.Status)
	}
	if f.Outcome != "" {
		q += ` AND x.outcome = ?`
		args = append(args, f.Outcome)
	}
	if f.Trigger != "" {
		q += ` AND x.trigger = ?`
		args = append(args, f.Trigger)
	}
	if !f.Since.IsZero() {
		q += ` AND x.queued_at >= ?`
		args = append(args, f.Since.UnixNano())
	}
	if !f.Until.IsZero() {
		q += ` AND x.queued_at < ?`
		args = append(args, f.Until.UnixNano())
	}
	if f.Before != "" {
		q += ` AND (x.queued_at, x.id) < (SELECT queued_at, id FROM executions WHERE id = ?)`
		args = append(args, f.Before)
	}
	if f.Limit <= 0 || f.Limit > 1000 {
		f.Limit = 50
	}
	q += ` ORDER BY x.queued_at DESC, x.id DESC LIMIT ?`
	args = append(args, f.Limit)
	return s.queryExecutions(ctx, q, args...)
}

func (s *Store) queryExecutions(ctx context.Context, q string, args ...any) ([]cronium.Execution, error) {
	return scanExecutions(s.db.QueryContext(ctx, q, args...))
}

func scanExecutions(rows *sql.Rows, err error) ([]cronium.Execution, error) {
	if err != nil {
		return nil, fmt.Errorf("list executions: %w", err)
	}
	defer rows.Close()
	var out []cronium.Execution
	for rows.Next() {
		x, err := scanExecution(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, x)
	}
	return out, rows.Err()
}

// Ready lists queued executions whose not-before time has come, by priority then age.
func (s *Store) Ready(ctx context.Context, now time.Time, limit int) ([]cronium.Execution, error) {
	return s.queryExecutions(ctx, `SELECT `+execCols+execFrom+` WHERE x.status = 'queued' AND x.not_before <= ? ORDER BY x.priority DESC, x.queued_at, x.id LIMIT ?`, now.UnixNano(), limit)
}

// ReadyHeads lists, for every user, at most perUser of their queued
// executions whose not-before time has come, in admission order (priority,
// then age). Admission only ever looks at queue heads, so this keeps each
// round's work proportional to users, not to the backlog.
func (s *Store) ReadyHeads(ctx context.Context, now time.Time, perUser int) ([]cronium.Execution, error) {
	// A skip-scan over the queue index finds the users with queued work in
	// O(users log n); each user's heads then come from the same index.
	rows, err := s.db.QueryContext(ctx, `WITH RECURSIVE qu(id) AS (
			SELECT MIN(user_id) FROM executions`+s.indexedBy()+` WHERE status = 'queued'
			UNION ALL
			SELECT (SELECT MIN(user_id) FROM executions`+s.indexedBy()+` WHERE status = 'queued' AND user_id > qu.id) FROM qu WHERE qu.id IS NOT NULL)
		SELECT id FROM qu WHERE id IS NOT NULL`)
	if err != nil {
		return nil, fmt.Errorf("list users with queued executions: %w", err)
	}
	var users []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return nil, err
		}
		users = append(users, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	var out []cronium.Execution
	for _, u := range users {
		xs, err := scanExecutions(s.heads.QueryContext(ctx, u, now.UnixNano(), perUser))
		if err != nil {
			return nil, err
		}
		out = append(out, xs...)
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Priority != b.Priority {
			return a.Priority > b.Priority
		}
		if !a.QueuedAt.Equal(b.QueuedAt) {
			return a.QueuedAt.Before(b.QueuedAt)
		}
		return a.ID < b.ID
	})
	return out, nil
}

// ClaimMany moves queued executions to running on node in one transaction
// and returns the ids it claimed (those still queued).
func (s *Store) ClaimMany(ctx context.Context, ids []string, node string, at time.Time) ([]string, error) {
	var claimed []string
	err := s.tx(ctx, func(tx *Tx) error {
		for _, id := range ids {
			r, err := tx.ExecContext(ctx, `UPDATE executions SET status = 'running', started_at = ?, node = ?, reason = '' WHERE id = ? AND status = 'queued'`, at.UnixNano(), node, id)
			if err != nil {
				return err
			}
			if n, _ := r.RowsAffected(); n == 1 {
				claimed = append(claimed, id)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("claim %d execution(s): %w", len(ids), err)
	}
	return claimed, nil
}

// SetUserReasons records, per user, why their ready queued executions wait.
func (s *Store) SetUserReasons(ctx context.Context, now time.Time, reasons map[int64]string) error {
	if len(reasons) == 0 {
		return nil
	}
	return s.tx(ctx, func(tx *Tx) error {
		for uid, r := range reasons {
			if _, err := tx.ExecContext(ctx, `UPDATE executions`+s.indexedBy()+` SET reason = ? WHERE status = 'queued' AND user_id = ? AND not_before <= ? AND reason != ?`, r, uid, now.UnixNano(), r); err != nil {
				return err
			}
		}
		return nil
	})
}

// Running lists running executions, of one node or all when node is "".
func (s *Store) Running(ctx context.Context, node string) ([]cronium.Execution, error) {
	q := `SELECT ` + execCols + execFrom + ` WHERE x.status = 'running'`
	var args []any
	if node != "" {
		q += ` AND x.node = ?`
		args = append(args, node)
	}
	return s.queryExecutions(ctx, q, args...)
}

// Active lists the queued and running executions of an event.
func (s *Store) Active(ctx context.Context, eventID int64) ([]cronium.Execution, error) {
	return s.queryExecutions(ctx, `SELECT `+execCols+execFrom+` WHERE x.event_id = ? AND x.status IN ('queued', 'running')`, eventID)
}

// SetReasons records why queued executions wait, in one transaction.
func (s *Store) SetReasons(ctx context.Context, reasons map[string]string) error {
	if len(reasons) == 0 {
		return nil
	}
	return s.tx(ctx, func(tx *Tx) error {
		for id, r := range reasons {
			if _, err := tx.ExecContext(ctx, `UPDATE executions SET reason = ? WHERE id = ? AND status = 'queued'`, r, id); err != nil {
				return err
			}
		}
		return nil
	})
}

// Claim moves a queued execution to running on node. It reports false if
// the execution is no longer queued (cancelled meanwhile).
func (s *Store) Claim(ctx context.Context, id, node string, at time.Time) (bool, error) {
	r, err := s.db.ExecContext(ctx, `UPDATE executions SET status = 'running', started_at = ?, node = ?, reason = '' WHERE id = ? AND status = 'queued'`, at.UnixNano(), node, id)
	if err != nil {
		return false, fmt.Errorf("claim execution %s: %w", id, err)
	}
	n, _ := r.RowsAffected()
	return n == 1, nil
}

// CancelQueued cancels an execution that has not started. It reports false if it was not queued.
func (s *Store) CancelQueued(ctx context.Context, id, reason string) (bool, error) {
	r, err := s.db.ExecContext(ctx, `UPDATE executions SET status = 'finished', outcome = 'cancelled', finished_at = ?, reason = ? WHERE id = ? AND status = 'queued'`,
		time.Now().UnixNano(), reason, id)
	if err != nil {
		return false, fmt.Errorf("cancel execution %s: %w", id, err)
	}
	n, _ := r.RowsAffected()
	return n == 1, nil
}

// Counts returns how many executions are in each status, for health and tests.
func (s *Store) Counts(ctx context.Context) (map[cronium.Status]int, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT status, COUNT(*) FROM executions GROUP BY status`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	m := map[cronium.Status]int{}
	for rows.Next() {
		var st cronium.Status
		var n int
		if err := rows.Scan(&st, &n); err != nil {
			return nil, err
		}
		m[st] = n
	}
	return m, rows.Err()
}

// ---- logs

// AppendLogs stores chunks (duplicates by seq are ignored) and adds to the execution's log size.
func (s *Store) AppendLogs(ctx context.Context, id string, chunks []store.LogChunk, truncated bool) error {
	if len(chunks) == 0 && !truncated {
		return nil
	}
	return s.tx(ctx, func(tx *Tx) error {
		var added int64
		for _, c := range chunks {
			var at int64
			if !c.Time.IsZero() {
				at = c.Time.UnixNano()
			}
			r, err := tx.ExecContext(ctx, `INSERT INTO logs(execution_id, seq, stream, data, at) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`, id, c.Seq, c.Stream, c.Data, at)
			if err != nil {
				return err
			}
			if n, _ := r.RowsAffected(); n == 1 {
				added += int64(len(c.Data))
			}
		}
		_, err := tx.ExecContext(ctx, `UPDATE executions SET log_bytes = log_bytes + ?, log_truncated = `+s.d.Greatest+`(log_truncated, ?) WHERE id = ?`, added, flag(truncated), id)
		return err
	})
}

// Logs returns stored chunks with seq > after, in order, at most limit.
func (s *Store) Logs(ctx context.Context, id string, after uint64, limit int) ([]store.LogChunk, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT seq, stream, data, at FROM logs WHERE execution_id = ? AND seq > ? ORDER BY seq LIMIT ?`, id, after, limit)
	if err != nil {
		return nil, fmt.Errorf("read logs of %s: %w", id, err)
	}
	return scanChunks(rows)
}

// LastLogs returns an execution's newest chunks, at most limit, oldest first.
func (s *Store) LastLogs(ctx context.Context, id string, limit int) ([]store.LogChunk, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT seq, stream, data, at FROM logs WHERE execution_id = ? ORDER BY seq DESC LIMIT ?`, id, limit)
	if err != nil {
		return nil, fmt.Errorf("read the last logs of %s: %w", id, err)
	}
	out, err := scanChunks(rows)
	slices.Reverse(out)
	return out, err
}

func scanChunks(rows *sql.Rows) ([]store.LogChunk, error) {
	defer rows.Close()
	var out []store.LogChunk
	for rows.Next() {
		var c store.LogChunk
		var at int64
		if err := rows.Scan(&c.Seq, &c.Stream, &c.Data, &at); err != nil {
			return nil, err
		}
		if at != 0 {
			c.Time = time.Unix(0, at).UTC()
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// LastSeq returns the highest stored log sequence number of an execution.
func (s *Store) LastSeq(ctx context.Context, id string) (uint64, error) {
	var n sql.NullInt64
	err := s.db.QueryRowContext(ctx, `SELECT MAX(seq) FROM logs WHERE execution_id = ?`, id).Scan(&n)
	return uint64(n.Int64), err
}

// ---- runtime API: output, condition, variables

// SetOutput stores an execution's output value.
func (s *Store) SetOutput(ctx context.Context, id string, v json.RawMessage) error {
	_, err := s.db.ExecContext(ctx, `UPDATE executions SET output = ? WHERE id = ?`, string(v), id)
	return err
}

// SetStrategy implements store.Dispatching: the strategy a running
// execution got and why, and that it is launched (see ReapNodes).
func (s *Store) SetStrategy(ctx context.Context, id, node, strategy, reason string) (bool, error) {
	r, err := s.db.ExecContext(ctx, `UPDATE executions SET strategy = ?, strategy_reason = ?, launched_at = ? WHERE id = ? AND status = 'running' AND (? = '' OR node = ?) AND `+notDown,
		strategy, reason, time.Now().UnixNano(), id, node, node, node)
	if err != nil {
		return false, fmt.Errorf("record the strategy of execution %s: %w", id, err)
	}
	n, _ := r.RowsAffected()
	return n == 1, nil
}

// SetSandbox records the sandbox a running execution of node is handed
// to; a conflict when it is no longer node's (taken for dead meanwhile).
func (s *Store) SetSandbox(ctx context.Context, id, node, sandbox string) error {
	r, err := s.db.ExecContext(ctx, `UPDATE executions SET sandbox = ? WHERE id = ? AND status = 'running' AND (? = '' OR node = ?) AND `+notDown,
		sandbox, id, node, node, node)
	if err != nil {
		return err
	}
	if n, _ := r.RowsAffected(); n != 1 {
		return fmt.Errorf("%w: execution %s is no longer node %s's to run", cronium.ErrConflict, id, node)
	}
	return nil
}

// SetCondition stores an execution's condition.
func (s *Store) SetCondition(ctx context.Context, id string, v bool) error {
	_, err := s.db.ExecContext(ctx, `UPDATE executions SET condition = ? WHERE id = ?`, flag(v), id)
	return err
}

// Variable returns a user's variable, or nil when unset.
func (s *Store) Variable(ctx context.Context, userID int64, key string) (json.RawMessage, error) {
	var v string
	err := s.db.QueryRowContext(ctx, `SELECT value FROM variables WHERE user_id = ? AND key = ?`, userID, key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read variable %s: %w", key, err)
	}
	return json.RawMessage(v), nil
}

// SetVariable stores a user's variable.
func (s *Store) SetVariable(ctx context.Context, userID int64, key string, v json.RawMessage) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO variables(user_id, key, value, updated_at) VALUES (?, ?, ?, ?)
		ON CONFLICT(user_id, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at`, userID, key, string(v), time.Now().Unix())
	if err != nil {
		return fmt.Errorf("set variable %s: %w", key, err)
	}
	return nil
}

// DeleteVariable deletes a user's variable; it reports whether it existed.
func (s *Store) DeleteVariable(ctx context.Context, userID int64, key string) (bool, error) {
	r, err := s.db.ExecContext(ctx, `DELETE FROM variables WHERE user_id = ? AND key = ?`, userID, key)
	if err != nil {
		return false, fmt.Errorf("delete variable %s: %w", key, err)
	}
	n, _ := r.RowsAffected()
	return n == 1, nil
}

// Variables returns all of a user's variables.
func (s *Store) Variables(ctx context.Context, userID int64) (map[string]json.RawMessage, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT key, value FROM variables WHERE user_id = ? ORDER BY key`, userID)
	if err != nil {
		return nil, fmt.Errorf("list variables: %w", err)
	}
	defer rows.Close()
	out := map[string]json.RawMessage{}
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			return nil, err
		}
		out[k] = json.RawMessage(v)
	}
	return out, rows.Err()
}

// Increment atomically adds delta to a numeric variable (a missing one
// counts as 0; a number stored as a string, as the bash helper stores
// values, is accepted) and returns the new value.
func (s *Store) Increment(ctx context.Context, userID int64, key string, delta float64) (float64, error) {
	var out float64
	err := s.tx(ctx, func(tx *Tx) error {
		if err := s.lock(ctx, tx, fmt.Sprintf("cronium.variable:%d:%s", userID, key)); err != nil {
			return err
		}
		var cur string
		err := tx.QueryRowContext(ctx, `SELECT value FROM variables WHERE user_id = ? AND key = ?`, userID, key).Scan(&cur)
		var n float64
		switch {
		case errors.Is(err, sql.ErrNoRows):
		case err != nil:
			return err
		default:
			var v any
			json.Unmarshal([]byte(cur), &v)
			switch t := v.(type) {
			case float64:
				n = t
			case string:
				f, perr := strconv.ParseFloat(t, 64)
				if perr != nil {
					return cronium.Invalid("key", key, "holds a value that is not a number: increment needs a number")
				}
				n = f
			default:
				return cronium.Invalid("key", key, "holds a value that is not a number: increment needs a number")
			}
		}
		if out, err = cronium.Increment(key, n, delta); err != nil {
			return err
		}
		b, err := json.Marshal(out)
		if err != nil {
			return fmt.Errorf("encode %s: %w", key, err)
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO variables(user_id, key, value, updated_at) VALUES (?, ?, ?, ?)
			ON CONFLICT(user_id, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at`, userID, key, string(b), time.Now().Unix())
		return err
	})
	return out, err
}

// ---- secrets (sealed by the caller; the store never sees plaintext)

// PutSecret stores a sealed secret.
func (s *Store) PutSecret(ctx context.Context, sec store.SealedSecret) error {
	now := time.Now().Unix()
	_, err := s.db.ExecContext(ctx, `INSERT INTO secrets(user_id, name, key_id, blob, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT(user_id, name) DO UPDATE SET key_id = excluded.key_id, blob = excluded.blob, updated_at = excluded.updated_at`,
		sec.UserID, sec.Name, sec.KeyID, sec.Blob, now, now)
	if err != nil {
		return fmt.Errorf("store secret %s: %w", sec.Name, err)
	}
	return nil
}

// Secret returns a sealed secret.
func (s *Store) Secret(ctx context.Context, userID int64, name string) (store.SealedSecret, error) {
	sec := store.SealedSecret{UserID: userID, Name: name}
	var updated int64
	err := s.db.QueryRowContext(ctx, `SELECT key_id, blob, updated_at FROM secrets WHERE user_id = ? AND name = ?`, userID, name).Scan(&sec.KeyID, &sec.Blob, &updated)
	if errors.Is(err, sql.ErrNoRows) {
		return sec, fmt.Errorf("%w: secret %s is not set (cronium secret set %s)", cronium.ErrNotFound, name, name)
	}
	sec.UpdatedAt = time.Unix(updated, 0).UTC()
	return sec, err
}

// Secrets lists sealed secrets: one user's, or all when userID is 0.
func (s *Store) Secrets(ctx context.Context, userID int64) ([]store.SealedSecret, error) {
	q := `SELECT user_id, name, key_id, blob, updated_at FROM secrets`
	var args []any
	if userID != 0 {
		q += ` WHERE user_id = ?`
		args = append(args, userID)
	}
	rows, err := s.db.QueryContext(ctx, q+` ORDER BY user_id, name`, args...)
	if err != nil {
		return nil, fmt.Errorf("list secrets: %w", err)
	}
	defer rows.Close()
	var out []store.SealedSecret
	for rows.Next() {
		var sec store.SealedSecret
		var updated int64
		if err := rows.Scan(&sec.UserID, &sec.Name, &sec.KeyID, &sec.Blob, &updated); err != nil {
			return nil, err
		}
		sec.UpdatedAt = time.Unix(updated, 0).UTC()
		out = append(out, sec)
	}
	return out, rows.Err()
}

// DeleteSecret deletes a secret; it reports whether it existed.
func (s *Store) DeleteSecret(ctx context.Context, userID int64, name string) (bool, error) {
	r, err := s.db.ExecContext(ctx, `DELETE FROM secrets WHERE user_id = ? AND name = ?`, userID, name)
	if err != nil {
		return false, fmt.Errorf("delete secret %s: %w", name, err)
	}
	n, _ := r.RowsAffected()
	return n == 1, nil
}

// EventCounts returns how many of an event's executions succeeded and failed.
func (s *Store) EventCounts(ctx context.Context, eventID int64) (success, failure int, err error) {
	err = s.db.QueryRowContext(ctx, `SELECT COUNT(*) FILTER (WHERE outcome = 'succeeded'), COUNT(*) FILTER (WHERE status = 'finished' AND outcome NOT IN ('succeeded', 'cancelled'))
		FROM executions WHERE event_id = ?`, eventID).Scan(&success, &failure)
	return success, failure, err
}
