package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	cronium "github.com/cronium/executor"
	"github.com/cronium/executor/store"
)

// Several nodes on one database: admission rounds under one lock, node
// leases on the database's clock, and what happens to a dead node's work.

// clock is the database's time (Dialect.Clock), or this process's where
// the database is this process's alone.
func (s *Store) clock(ctx context.Context, tx *Tx) (time.Time, error) {
	if s.d.Clock == "" {
		return time.Now(), nil
	}
	var ns int64
	if err := tx.QueryRowContext(ctx, s.d.Clock).Scan(&ns); err != nil {
		return time.Time{}, fmt.Errorf("read the database's clock: %w", err)
	}
	return time.Unix(0, ns), nil
}

// AdmitRound implements store.Dispatching.
func (s *Store) AdmitRound(ctx context.Context, node string, now time.Time, perUser int, pick func(store.Round) []string) ([]cronium.Execution, store.Round, error) {
	var r store.Round
	var claimed []cronium.Execution
	// The heads are read before the round's transaction, which then stays
	// short (SQLite's one connection serves running executions meanwhile):
	// a head another node claims meanwhile is not claimed again (the claim
	// wants it queued), and the counts the limits are checked against are
	// read under the lock.
	heads, err := s.ReadyHeads(ctx, now, perUser)
	if err != nil {
		return nil, r, fmt.Errorf("admission round: %w", err)
	}
	err = s.tx(ctx, func(tx *Tx) error {
		r.Heads = heads
		if err := s.lock(ctx, tx, "cronium.admit"); err != nil {
			return err
		}
		// A node taken for dead claims nothing, until it registers again.
		var down int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM nodes WHERE name = ? AND state = 'down'`, node).Scan(&down); err != nil {
			return err
		}
		if down > 0 {
			return errNodeDown
		}
		// The claim time is taken here, before the running counts are read:
		// an execution recorded as started then was admitted against counts
		// no older than its start.
		claimAt := time.Now()
		r.RunningByUser, r.KeptByUser, r.Tiers = map[int64]int{}, map[int64]int{}, map[int64]string{}
		// Running executions, and sandboxes kept for debugging, which hold
		// their owners' slots and their nodes' too.
		for _, q := range []struct{ what, query string }{
			{"running executions", `SELECT user_id, node, COUNT(*) FROM executions WHERE status = 'running' GROUP BY user_id, node`},
			{"kept sandboxes", `SELECT user_id, kept_node, COUNT(*) FROM executions WHERE kept_until > ? GROUP BY user_id, kept_node`},
		} {
			var args []any
			if strings.Contains(q.query, "?") {
				args = append(args, claimAt.UnixNano())
			}
			var kept map[int64]int
			if len(args) > 0 {
				kept = r.KeptByUser
			}
			if err := countRunning(ctx, tx, q.query, args, node, &r, kept); err != nil {
				return fmt.Errorf("count %s: %w", q.what, err)
			}
		}
		if len(r.Heads) == 0 {
			return nil
		}
		users := map[int64]bool{}
		var args []any
		for _, x := range r.Heads {
			if !users[x.UserID] {
				users[x.UserID] = true
				args = append(args, x.UserID)
			}
		}
		rows, err := tx.QueryContext(ctx, `SELECT id, tier FROM users WHERE id IN (`+placeholders(len(args))+`)`, args...)
		if err != nil {
			return fmt.Errorf("users' tiers: %w", err)
		}
		for rows.Next() {
			var u int64
			var t string
			if err := rows.Scan(&u, &t); err != nil {
				rows.Close()
				return err
			}
			r.Tiers[u] = t
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		ids := pick(r)
		byID := map[string]cronium.Execution{}
		for _, x := range r.Heads {
			byID[x.ID] = x
		}
		for _, id := range ids {
			x, ok := byID[id]
			if !ok {
				continue
			}
			res, err := tx.ExecContext(ctx, `UPDATE executions SET status = 'running', started_at = ?, node = ?, reason = '' WHERE id = ? AND status = 'queued'`, claimAt.UnixNano(), node, id)
			if err != nil {
				return fmt.Errorf("claim %s: %w", id, err)
			}
			if n, _ := res.RowsAffected(); n == 1 {
				delete(byID, id)
				x.Status, x.Node, x.StartedAt, x.Reason = cronium.StatusRunning, node, &claimAt, ""
				claimed = append(claimed, x)
			}
		}
		return nil
	})
	if err != nil {
		return nil, r, fmt.Errorf("admission round: %w", err)
	}
	return claimed, r, nil
}

// errNodeDown refuses work to a node the others took for dead.
var errNodeDown = errors.New("this node's lease ran out and the other nodes took it for dead: it claims nothing until it registers again")

// notDown is the condition that the node named by its one parameter is
// not taken for dead.
const notDown = `NOT EXISTS (SELECT 1 FROM nodes WHERE name = ? AND state = 'down')`

// countRunning adds the (user, node, count) rows of query to r's running
// counts, and to also when it is not nil.
func countRunning(ctx context.Context, tx *Tx, query string, args []any, node string, r *store.Round, also map[int64]int) error {
	rows, err := tx.QueryContext(ctx, query, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var u int64
		var n int
		var on string
		if err := rows.Scan(&u, &on, &n); err != nil {
			return err
		}
		r.RunningByUser[u] += n
		if also != nil {
			also[u] += n
		}
		r.Running += n
		if on == node {
			r.NodeRunning += n
		}
	}
	return rows.Err()
}

// placeholders is n comma-separated ? placeholders.
func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?,", n), ",")
}

// RequestCancel implements store.Dispatching.
func (s *Store) RequestCancel(ctx context.Context, id, reason string) (bool, error) {
	if reason == "" {
		reason = "cancelled"
	}
	r, err := s.db.ExecContext(ctx, `UPDATE executions SET cancel_reason = ? WHERE id = ? AND status = 'running'`, reason, id)
	if err != nil {
		return false, fmt.Errorf("ask to cancel execution %s: %w", id, err)
	}
	n, _ := r.RowsAffected()
	return n == 1, nil
}

// CancelRequests implements store.Dispatching.
func (s *Store) CancelRequests(ctx context.Context, node string) (map[string]string, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, cancel_reason FROM executions WHERE status = 'running' AND node = ? AND cancel_reason <> ''`, node)
	if err != nil {
		return nil, fmt.Errorf("cancel requests: %w", err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var id, why string
		if err := rows.Scan(&id, &why); err != nil {
			return nil, err
		}
		out[id] = why
	}
	return out, rows.Err()
}

const nodeCols = `name, instance, host, data_dir, engine, engine_key, capacity, running, version, started_at, heartbeat_at, lease_until, state, down_reason`

func scanNode(sc interface{ Scan(...any) error }) (store.Node, error) {
	var n store.Node
	var started, beat, lease int64
	err := sc.Scan(&n.Name, &n.Instance, &n.Host, &n.DataDir, &n.Engine, &n.EngineKey, &n.Capacity, &n.Running, &n.Version, &started, &beat, &lease, &n.State, &n.DownReason)
	n.StartedAt, n.HeartbeatAt, n.LeaseUntil = time.Unix(0, started).UTC(), time.Unix(0, beat).UTC(), time.Unix(0, lease).UTC()
	return n, err
}

// RegisterNode implements store.Dispatching.
func (s *Store) RegisterNode(ctx context.Context, n store.Node, lease time.Duration) error {
	err := s.tx(ctx, func(tx *Tx) error {
		if err := s.lock(ctx, tx, "cronium.nodes"); err != nil {
			return err
		}
		now, err := s.clock(ctx, tx)
		if err != nil {
			return err
		}
		old, err := scanNode(tx.QueryRowContext(ctx, `SELECT `+nodeCols+` FROM nodes WHERE name = ?`, n.Name))
		switch {
		case errors.Is(err, sql.ErrNoRows):
		case err != nil:
			return err
		case old.State == store.NodeUp && old.LeaseUntil.After(now) && (old.Host != n.Host || old.DataDir != n.DataDir):
			return fmt.Errorf("%w: node %s is alive (its last heartbeat was %s ago, on host %s with data directory %s): give this node another node_id",
				cronium.ErrConflict, n.Name, now.Sub(old.HeartbeatAt).Round(time.Millisecond), old.Host, old.DataDir)
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO nodes(`+nodeCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?, 'up', '')
			ON CONFLICT(name) DO UPDATE SET instance = excluded.instance, host = excluded.host, data_dir = excluded.data_dir, engine = excluded.engine,
				engine_key = excluded.engine_key, capacity = excluded.capacity, running = 0, version = excluded.version, started_at = excluded.started_at,
				heartbeat_at = excluded.heartbeat_at, lease_until = excluded.lease_until, state = 'up', down_reason = ''`,
			n.Name, n.Instance, n.Host, n.DataDir, n.Engine, n.EngineKey, n.Capacity, n.Version, now.UnixNano(), now.UnixNano(), now.Add(lease).UnixNano())
		return err
	})
	if err != nil {
		return fmt.Errorf("register node %s: %w", n.Name, err)
	}
	return nil
}

// Heartbeat implements store.Dispatching.
func (s *Store) Heartbeat(ctx context.Context, n store.Node, lease time.Duration) (bool, error) {
	var ok bool
	err := s.tx(ctx, func(tx *Tx) error {
		now, err := s.clock(ctx, tx)
		if err != nil {
			return err
		}
		r, err := tx.ExecContext(ctx, `UPDATE nodes SET heartbeat_at = ?, lease_until = ?, running = ? WHERE name = ? AND instance = ? AND state = 'up'`,
			now.UnixNano(), now.Add(lease).UnixNano(), n.Running, n.Name, n.Instance)
		if err != nil {
			return err
		}
		c, _ := r.RowsAffected()
		ok = c == 1
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("heartbeat of node %s: %w", n.Name, err)
	}
	return ok, nil
}

// ReapNodes implements store.Dispatching.
func (s *Store) ReapNodes(ctx context.Context, me store.Node) (store.Reaped, error) {
	var out store.Reaped
	err := s.tx(ctx, func(tx *Tx) error {
		if err := s.lock(ctx, tx, "cronium.nodes"); err != nil {
			return err
		}
		now, err := s.clock(ctx, tx)
		if err != nil {
			return err
		}
		all, err := s.nodes(ctx, tx)
		if err != nil {
			return err
		}
		liveKeys := map[string]bool{}
		down := map[string]store.Node{}
		for _, n := range all {
			switch {
			case n.State == store.NodeUp && n.LeaseUntil.Before(now) && n.Name != me.Name:
				n.State = store.NodeDown
				n.DownReason = fmt.Sprintf("its lease ran out at %s (last heartbeat %s)", n.LeaseUntil.Format(time.RFC3339Nano), n.HeartbeatAt.Format(time.RFC3339Nano))
				// Only if no heartbeat renewed it meanwhile.
				r, err := tx.ExecContext(ctx, `UPDATE nodes SET state = 'down', down_reason = ? WHERE name = ? AND instance = ? AND state = 'up' AND lease_until < ?`,
					n.DownReason, n.Name, n.Instance, now.UnixNano())
				if err != nil {
					return err
				}
				if c, _ := r.RowsAffected(); c != 1 {
					liveKeys[n.EngineKey] = true
					continue
				}
				out.Down = append(out.Down, n)
				down[n.Name] = n
			case n.State == store.NodeDown:
				down[n.Name] = n
			default:
				liveKeys[n.EngineKey] = true
			}
		}
		// Running executions of nodes that are down, or that no node on the
		// store is (a node renamed, a copied store): every reap, as a node
		// taken for dead may have claimed more before it knew.
		xs, err := scanRunning(tx.QueryContext(ctx, `SELECT `+execCols+`, x.launched_at, x.cancel_reason`+execFrom+` WHERE x.status = 'running'
			AND x.node NOT IN (SELECT name FROM nodes WHERE state = 'up')`))
		if err != nil {
			return err
		}
		for _, x := range xs {
			from, ok := down[x.Node]
			if !ok {
				from = store.Node{Name: x.Node, State: store.NodeDown, DownReason: "no node of that name is on the store"}
			}
			if !x.launchedAt.Valid {
				// Claimed, never launched: back to the queue (or, asked to
				// cancel meanwhile, cancelled).
				var r sql.Result
				if x.cancelReason != "" {
					r, err = tx.ExecContext(ctx, `UPDATE executions SET status = 'finished', outcome = 'cancelled', finished_at = ?, reason = ?
						WHERE id = ? AND status = 'running' AND node = ? AND launched_at IS NULL`, now.UnixNano(), x.cancelReason, x.ID, x.Node)
				} else {
					r, err = tx.ExecContext(ctx, `UPDATE executions SET status = 'queued', node = '', started_at = NULL,
						reason = ? WHERE id = ? AND status = 'running' AND node = ? AND launched_at IS NULL`, "requeued: node "+x.Node+" stopped before starting it", x.ID, x.Node)
				}
				if err != nil {
					return err
				}
				if c, _ := r.RowsAffected(); c == 1 {
					out.Requeued++
				}
				continue
			}
			// Launched: mine to re-attach when I reach its sandbox; mine to
			// record as lost when no live node does.
			a := store.Adopted{From: from}
			switch {
			case from.EngineKey != "" && from.EngineKey == me.EngineKey:
			case !liveKeys[from.EngineKey] || from.EngineKey == "":
				a.Lost = fmt.Sprintf("lost: node %s stopped (%s), and no live node can reach its sandboxes", from.Name, from.DownReason)
				if from.EngineKey != "" {
					a.Lost += " (" + from.EngineKey + ")"
				}
			default:
				continue // a live node that reaches them adopts them
			}
			// The sandbox as it is now: read with the adoption.
			var sandbox string
			err := tx.QueryRowContext(ctx, `UPDATE executions SET node = ? WHERE id = ? AND status = 'running' AND node = ? RETURNING sandbox`, me.Name, x.ID, x.Node).Scan(&sandbox)
			if errors.Is(err, sql.ErrNoRows) {
				continue
			}
			if err != nil {
				return err
			}
			a.Execution = x.Execution
			a.Execution.Node, a.Execution.Sandbox = me.Name, sandbox
			out.Adopted = append(out.Adopted, a)
		}
		return nil
	})
	if err != nil {
		return store.Reaped{}, fmt.Errorf("reap dead nodes: %w", err)
	}
	return out, nil
}

// runningRow is a running execution with what a reap needs to know.
type runningRow struct {
	cronium.Execution
	launchedAt   sql.NullInt64
	cancelReason string
}

// extraScanner scans a row's execCols and then extra columns.
type extraScanner struct {
	rows  *sql.Rows
	extra []any
}

func (e extraScanner) Scan(dest ...any) error { return e.rows.Scan(append(dest, e.extra...)...) }

// scanRunning reads rows of execCols, launched_at and cancel_reason.
func scanRunning(rows *sql.Rows, err error) ([]runningRow, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []runningRow
	for rows.Next() {
		var r runningRow
		if r.Execution, err = scanExecution(extraScanner{rows, []any{&r.launchedAt, &r.cancelReason}}); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// Ping implements store.API: one round trip to the database.
func (s *Store) Ping(ctx context.Context) error {
	var one int
	return s.db.QueryRowContext(ctx, `SELECT 1`).Scan(&one)
}

// Nodes implements store.API.
func (s *Store) Nodes(ctx context.Context) ([]store.Node, error) {
	return s.nodes(ctx, s.db)
}

// querier runs queries: the database or a transaction.
type querier interface {
	QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error)
}

func (s *Store) nodes(ctx context.Context, q querier) ([]store.Node, error) {
	rows, err := q.QueryContext(ctx, `SELECT `+nodeCols+` FROM nodes ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list nodes: %w", err)
	}
	defer rows.Close()
	var out []store.Node
	for rows.Next() {
		n, err := scanNode(rows)
		if err != nil {
			return nil, fmt.Errorf("list nodes: %w", err)
		}
		out = append(out, n)
	}
	return out, rows.Err()
}
