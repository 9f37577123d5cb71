// Package sqlstore is the store both of Cronium's SQL databases share:
// users, API keys, events, executions (the durable queue), logs,
// variables, secrets, channels, the notification outbox and the audit log,
// written once in the SQL that SQLite and PostgreSQL both speak. What
// differs between them (placeholders, a few functions, JSON, locks, the
// schema's DDL) is a Dialect, given by the sqlite and postgres packages.
//
// Times are stored as Unix nanoseconds (BIGINT) and flags as 0/1 integers
// in both databases, so that scanning, cursors and copies between them
// are the same.
package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/cronium/executor/store"
)

// The contract's parts this store fulfils, with Backup from its database.
var (
	_ store.Scheduling  = (*Store)(nil)
	_ store.Runtime     = (*Store)(nil)
	_ store.Dispatching = (*Store)(nil)
	_ store.API         = (*Store)(nil)
)

// Dialect is what differs between the databases.
type Dialect struct {
	// Name names the database in messages ("SQLite", "PostgreSQL").
	Name string
	// Migrations are the schema's versions in order: Migrations[i] makes
	// version i+1. Each runs in one transaction with its version's record.
	Migrations []string
	// Numbered placeholders ($1, $2: PostgreSQL) instead of ? (SQLite).
	// Queries here are written with ?; they are rewritten when numbered.
	Numbered bool
	// Greatest is the scalar maximum of two values (SQLite's MAX, GREATEST).
	Greatest string
	// QueueIndex names the queue index where the planner must be told to
	// use it (SQLite's INDEXED BY); "" to leave it to the planner.
	QueueIndex string
	// JSONSet returns an expression for the JSON document col with key set
	// to the JSON text of one parameter.
	JSONSet func(col, key string) string
	// JSONText returns an expression for the text at path in the JSON document col.
	JSONText func(col string, path ...string) string
	// IsUnique reports whether err is a unique constraint violation.
	IsUnique func(err error) bool
	// Lock takes the lock key until tx ends, where writers can race
	// (PostgreSQL's advisory locks, several connections and nodes); nil
	// when every write is serialised already (SQLite's one connection).
	Lock func(ctx context.Context, tx *sql.Tx, key string) error
	// Notify, when set, tells the other processes on the database that
	// something changed (PostgreSQL's NOTIFY on channel cronium_<what>).
	Notify func(ctx context.Context, db *sql.DB, what string) error
	// Clock is a query for the database's time in Unix nanoseconds, which
	// node leases are measured on; "" when the database is one process's
	// (SQLite), whose clock is used.
	Clock string
}

// Store is the shared SQL store. It is safe for concurrent use.
type Store struct {
	db    *DB
	d     Dialect
	heads *sql.Stmt // one user's queue heads, prepared once: admission runs it per user per round
}

// New migrates db to the dialect's newest schema and returns the store on
// it. It refuses a schema newer than this binary's, and changes nothing
// then. The store owns db: Close closes it.
func New(ctx context.Context, db *sql.DB, d Dialect) (*Store, error) {
	s := &Store{db: &DB{DB: db, numbered: d.Numbered}, d: d}
	if err := s.migrate(ctx); err != nil {
		return nil, err
	}
	var err error
	s.heads, err = s.db.PrepareContext(ctx, `SELECT `+execCols+` FROM executions x`+s.indexedBy()+`
		JOIN events e ON e.id = x.event_id JOIN users u ON u.id = x.user_id WHERE x.status = 'queued' AND x.user_id = ? AND x.not_before <= ?
		ORDER BY x.priority DESC, x.queued_at, x.id LIMIT ?`)
	if err != nil {
		return nil, fmt.Errorf("prepare the queue query: %w", err)
	}
	return s, nil
}

// Close closes the database.
func (s *Store) Close() error {
	if s.heads != nil {
		s.heads.Close()
	}
	return s.db.Close()
}

// indexedBy is the queue index hint, if the dialect needs one.
func (s *Store) indexedBy() string {
	if s.d.QueueIndex == "" {
		return ""
	}
	return " INDEXED BY " + s.d.QueueIndex
}

// migrate brings the schema to the newest version, one transaction per
// version, under the dialect's lock so that servers starting together on
// one database do not race.
func (s *Store) migrate(ctx context.Context) error {
	for {
		var have int
		err := s.tx(ctx, func(tx *Tx) error {
			if err := s.lock(ctx, tx, "cronium.migrate"); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)`); err != nil {
				return fmt.Errorf("create the migrations table: %w", err)
			}
			if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&have); err != nil {
				return fmt.Errorf("read the schema version: %w", err)
			}
			if have >= len(s.d.Migrations) {
				return nil
			}
			if _, err := tx.ExecContext(ctx, s.d.Migrations[have]); err != nil {
				return fmt.Errorf("migrate the store to version %d: %w", have+1, err)
			}
			_, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations(version, applied_at) VALUES (?, ?)`, have+1, time.Now().Unix())
			return err
		})
		if err != nil {
			return err
		}
		if have > len(s.d.Migrations) {
			return fmt.Errorf("the %s store's schema version %d is newer than this cronium's (%d): upgrade cronium", s.d.Name, have, len(s.d.Migrations))
		}
		if have == len(s.d.Migrations) {
			return nil
		}
	}
}

// tx runs fn in a transaction, committed when fn returns nil.
func (s *Store) tx(ctx context.Context, fn func(*Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

// lock takes the dialect's lock key for the rest of tx (see Dialect.Lock).
func (s *Store) lock(ctx context.Context, tx *Tx, key string) error {
	if s.d.Lock == nil {
		return nil
	}
	if err := s.d.Lock(ctx, tx.Tx, key); err != nil {
		return fmt.Errorf("lock %s: %w", key, err)
	}
	return nil
}

// eventsChanged tells the other processes on the database that events
// changed, so that their schedulers re-read them at once (else within
// their resync). It is said after the change is committed; a failure is
// left to the resync.
func (s *Store) eventsChanged(ctx context.Context) {
	if s.d.Notify != nil {
		s.d.Notify(ctx, s.db.DB, "events")
	}
}

// isUnique reports whether err is a unique constraint violation.
func (s *Store) isUnique(err error) bool { return err != nil && s.d.IsUnique(err) }

// flag is a boolean as stored: 0 or 1.
func flag(b bool) int {
	if b {
		return 1
	}
	return 0
}

// DB is a database whose queries are written with ? placeholders and
// rewritten for databases that number them.
type DB struct {
	*sql.DB
	numbered bool
}

// ExecContext executes q.
func (d *DB) ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error) {
	return d.DB.ExecContext(ctx, rebind(q, d.numbered), args...)
}

// QueryContext runs q.
func (d *DB) QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	return d.DB.QueryContext(ctx, rebind(q, d.numbered), args...)
}

// QueryRowContext runs q for one row.
func (d *DB) QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row {
	return d.DB.QueryRowContext(ctx, rebind(q, d.numbered), args...)
}

// PrepareContext prepares q.
func (d *DB) PrepareContext(ctx context.Context, q string) (*sql.Stmt, error) {
	return d.DB.PrepareContext(ctx, rebind(q, d.numbered))
}

// BeginTx starts a transaction.
func (d *DB) BeginTx(ctx context.Context, opts *sql.TxOptions) (*Tx, error) {
	tx, err := d.DB.BeginTx(ctx, opts)
	if err != nil {
		return nil, err
	}
	return &Tx{Tx: tx, numbered: d.numbered}, nil
}

// Tx is a transaction whose queries are rewritten like DB's.
type Tx struct {
	*sql.Tx
	numbered bool
}

// ExecContext executes q.
func (t *Tx) ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error) {
	return t.Tx.ExecContext(ctx, rebind(q, t.numbered), args...)
}

// QueryContext runs q.
func (t *Tx) QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	return t.Tx.QueryContext(ctx, rebind(q, t.numbered), args...)
}

// QueryRowContext runs q for one row.
func (t *Tx) QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row {
	return t.Tx.QueryRowContext(ctx, rebind(q, t.numbered), args...)
}

// PrepareContext prepares q in the transaction.
func (t *Tx) PrepareContext(ctx context.Context, q string) (*sql.Stmt, error) {
	return t.Tx.PrepareContext(ctx, rebind(q, t.numbered))
}

// rebind rewrites ? placeholders as $1, $2, … (and ?N as $N) when
// numbered; text in single quotes is left alone.
func rebind(q string, numbered bool) string {
	if !numbered || !strings.Contains(q, "?") {
		return q
	}
	var b strings.Builder
	b.Grow(len(q) + 16)
	n, quoted := 0, false
	for i := 0; i < len(q); i++ {
		c := q[i]
		switch {
		case c == '\'':
			quoted = !quoted
			b.WriteByte(c)
		case c == '?' && !quoted:
			j := i + 1
			for j < len(q) && q[j] >= '0' && q[j] <= '9' {
				j++
			}
			b.WriteByte('$')
			if j > i+1 {
				b.WriteString(q[i+1 : j])
				i = j - 1
			} else {
				n++
				b.WriteString(strconv.Itoa(n))
			}
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}
