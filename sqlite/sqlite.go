// Package sqlite is Cronium's embedded store: users, API keys, events,
// executions (the durable queue) and logs in one SQLite file, through the
// pure-Go modernc.org/sqlite driver (no cgo). Migrations are versioned and
// run at Open. The store itself is sqlstore's, shared with PostgreSQL;
// this package gives it SQLite's dialect and schema, and backups.
//
// All writes go through one connection, so SQLite never reports "busy" and
// every multi-row change is one transaction.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"

	sqlitedrv "modernc.org/sqlite" // the driver
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/cronium/executor/sqlstore"
	"github.com/cronium/executor/store"
)

// The whole contract: sqlstore's parts and Backup.
var _ store.Store = (*Store)(nil)

// Store is the SQLite store. It is safe for concurrent use.
type Store struct {
	*sqlstore.Store
	db *sql.DB
}

// Dialect is SQLite's: ? placeholders, scalar MAX, json_set/json_extract,
// the queue index named for the planner, and no locks (one writer).
var Dialect = sqlstore.Dialect{
	Name:       "SQLite",
	Migrations: migrations,
	Greatest:   "MAX",
	QueueIndex: "executions_queue",
	JSONSet: func(col, key string) string {
		return fmt.Sprintf("json_set(%s, '$.%s', json(?))", col, key)
	},
	JSONText: func(col string, path ...string) string {
		return fmt.Sprintf("json_extract(%s, '$.%s')", col, strings.Join(path, "."))
	},
	IsUnique: isUnique,
}

// Open opens (creating if needed) the database at path and migrates it.
func Open(ctx context.Context, path string) (*Store, error) {
	// The store holds every user's scripts, logs and sealed secrets: only
	// its owner may read it, whatever the directory or umask says. SQLite
	// gives its -wal and -shm files the database's mode.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	f.Close()
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		if err := os.Chmod(p, 0o600); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("store %s: %w", p, err)
		}
	}
	// Transactions take the write lock when they begin: one that read
	// first could not get it later while another store on the file (a CLI
	// command beside the server) holds it, and the busy timeout would not help.
	dsn := "file:" + path + "?_txlock=immediate&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_pragma=foreign_keys(1)&_pragma=busy_timeout(30000)"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	db.SetMaxOpenConns(1)
	st, err := sqlstore.New(ctx, db, Dialect)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("store %s: %w", path, err)
	}
	return &Store{Store: st, db: db}, nil
}

// Backup writes a consistent copy of the store to path (which must not
// exist), while the server keeps running: SQLite's VACUUM INTO.
func (s *Store) Backup(ctx context.Context, path string) error {
	if _, err := s.db.ExecContext(ctx, `VACUUM INTO ?`, path); err != nil {
		return fmt.Errorf("back up the store to %s: %w", path, err)
	}
	return nil
}

// isUnique reports whether err is a UNIQUE (or primary key) constraint
// violation, by the driver's extended result code.
func isUnique(err error) bool {
	var se *sqlitedrv.Error
	if !errors.As(err, &se) {
		return false
	}
	return se.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE || se.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
}

// OpenReadOnly opens the database at path read-only, for a copy of it
// elsewhere: it must exist and be at the schema this cronium writes (a
// server started on it once migrates it).
func OpenReadOnly(ctx context.Context, path string) (*sql.DB, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("store %s: %w", path, err)
	}
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro&_pragma=busy_timeout(5000)")
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	var v int
	if err := db.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&v); err != nil {
		db.Close()
		return nil, fmt.Errorf("store %s: not a cronium store: %w", path, err)
	}
	if v != len(migrations) {
		db.Close()
		return nil, fmt.Errorf("store %s is at schema version %d, this cronium writes %d: start this cronium's server on it once (it migrates), or use the cronium that wrote it", path, v, len(migrations))
	}
	return db, nil
}
