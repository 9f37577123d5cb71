package postgres

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
)

// copyTables are the tables a store copy moves, in an order that keeps
// references valid, with their columns (the same in both schemas) and
// which of those are bytes.
var copyTables = []struct {
	name, cols string
	bytes      []string
	identity   bool
}{
	{"users", "id, name, tier, admin, created_at, deleted_at", nil, true},
	{"api_keys", "id, user_id, hash, prefix, created_at, name, expires_at, revoked_at, last_used_at", nil, true},
	{"events", "id, user_id, name, spec, enabled, last_fire, deleted, created_at, updated_at", nil, true},
	{"executions", "id, event_id, user_id, trigger, scheduled_at, queued_at, not_before, started_at, finished_at, status, outcome, exit_code, attempt, reason, strategy, priority, node, error, input, result, log_bytes, log_truncated, retry_of, output, condition, strategy_reason, sandbox, chained_from, chain_depth, chain_root, launched_at, cancel_reason, kept_until, kept_node", []string{"input"}, false},
	{"logs", "execution_id, seq, stream, data, at", []string{"data"}, false},
	{"variables", "user_id, key, value, updated_at", nil, false},
	{"secrets", "user_id, name, key_id, blob, created_at, updated_at", []string{"blob"}, false},
	{"channels", "user_id, name, type, key_id, blob, updated_at", []string{"blob"}, false},
	{"notifications", "id, execution_id, user_id, channel, reason, message, status, attempts, next_at, claimed_until, last_error, created_at, sent_at", nil, false},
	{"audit", "id, at, actor, key_id, action, target, detail, source", nil, true},
	{"usage_days", "user_id, event_id, day, executions, cpu_us, reserved_mib_ms, peak_memory, io_read, io_write, net_bytes, cost_micros", nil, false},
}

// CopyFrom copies everything a store holds from src (an SQLite store's
// database, at the schema this cronium writes, not in use) into this
// store, which must be empty: users (their IDs kept), API keys, events,
// executions and their logs, variables, secrets and channels (sealed as
// they are: the same master keys open them), notifications and the audit
// log, in one transaction. Running executions are copied as they are;
// nodes are not (they register). It returns how many rows of each table
// it copied, having checked that the counts match.
func (s *Store) CopyFrom(ctx context.Context, src *sql.DB) (map[string]int, error) {
	var rows int
	if err := s.db.QueryRowContext(ctx, `SELECT (SELECT COUNT(*) FROM users) + (SELECT COUNT(*) FROM events) + (SELECT COUNT(*) FROM executions)`).Scan(&rows); err != nil {
		return nil, fmt.Errorf("look into %s: %w", s.url, err)
	}
	if rows > 0 {
		return nil, fmt.Errorf("%s is not empty (%d users, events and executions): copy into a new database", s.url, rows)
	}
	counts := map[string]int{}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	for _, t := range copyTables {
		n, err := copyTable(ctx, src, tx, t.name, t.cols, t.bytes)
		if err != nil {
			return nil, fmt.Errorf("copy %s: %w", t.name, err)
		}
		counts[t.name] = n
		if t.identity {
			if _, err := tx.ExecContext(ctx, fmt.Sprintf(`SELECT setval(pg_get_serial_sequence('%[1]s', 'id'), GREATEST(MAX(id), 1), MAX(id) IS NOT NULL) FROM %[1]s`, t.name)); err != nil {
				return nil, fmt.Errorf("the id sequence of %s: %w", t.name, err)
			}
		}
	}
	for _, t := range copyTables {
		var have int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM `+t.name).Scan(&have); err != nil {
			return nil, err
		}
		if have != counts[t.name] {
			return nil, fmt.Errorf("copy %s: %d rows read, %d in the target", t.name, counts[t.name], have)
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("commit the copy: %w", err)
	}
	return counts, nil
}

// copyTable copies one table's rows in batches.
func copyTable(ctx context.Context, src *sql.DB, tx *sql.Tx, table, cols string, bytes []string) (int, error) {
	names := strings.Split(cols, ", ")
	isBytes := map[int]bool{}
	for i, c := range names {
		for _, b := range bytes {
			if c == b {
				isBytes[i] = true
			}
		}
	}
	rows, err := src.QueryContext(ctx, `SELECT `+cols+` FROM `+table)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	const batch = 500
	var args []any
	n := 0
	flush := func() error {
		if len(args) == 0 {
			return nil
		}
		k := len(args) / len(names)
		var vals []string
		for i := range k {
			ph := make([]string, len(names))
			for j := range names {
				ph[j] = fmt.Sprintf("$%d", i*len(names)+j+1)
			}
			vals = append(vals, "("+strings.Join(ph, ", ")+")")
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO `+table+`(`+cols+`) VALUES `+strings.Join(vals, ", "), args...)
		args = args[:0]
		return err
	}
	for rows.Next() {
		vals := make([]any, len(names))
		ptrs := make([]any, len(names))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return n, err
		}
		for i, v := range vals {
			if s, ok := v.(string); ok && isBytes[i] {
				vals[i] = []byte(s)
			}
		}
		args = append(args, vals...)
		n++
		if n%batch == 0 {
			if err := flush(); err != nil {
				return n, err
			}
		}
	}
	if err := rows.Err(); err != nil {
		return n, err
	}
	return n, flush()
}
