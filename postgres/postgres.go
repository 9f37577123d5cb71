// Package postgres is Cronium's store on PostgreSQL, for several server
// nodes on one database: sqlstore's store with PostgreSQL's dialect and
// schema, through github.com/jackc/pgx/v5. Where SQLite's one writer made
// a read-then-write safe, advisory transaction locks do here.
package postgres

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/cronium/executor/sqlstore"
	"github.com/cronium/executor/store"
)

// The whole contract: sqlstore's parts and Backup.
var _ store.Store = (*Store)(nil)

// Store is the PostgreSQL store. It is safe for concurrent use, also by
// several processes on one database.
type Store struct {
	*sqlstore.Store
	db  *sql.DB
	cfg *pgx.ConnConfig
	url string // masked

	leaderMu sync.Mutex
	leader   *sql.Conn // holds the scheduler's lock while this store leads
}

// Dialect is PostgreSQL's: numbered placeholders, GREATEST, jsonb, and
// advisory transaction locks where two writers can race.
var Dialect = sqlstore.Dialect{
	Name:       "PostgreSQL",
	Migrations: migrations,
	Numbered:   true,
	Greatest:   "GREATEST",
	JSONSet: func(col, key string) string {
		return fmt.Sprintf("jsonb_set(%s, '{%s}', ?::jsonb)", col, key)
	},
	JSONText: func(col string, path ...string) string {
		return fmt.Sprintf("(%s #>> '{%s}')", col, strings.Join(path, ","))
	},
	IsUnique: func(err error) bool {
		var pe *pgconn.PgError
		return errors.As(err, &pe) && pe.Code == "23505"
	},
	Notify: func(ctx context.Context, db *sql.DB, what string) error {
		_, err := db.ExecContext(ctx, `SELECT pg_notify($1, '')`, "cronium_"+what)
		return err
	},
	Clock: `SELECT (extract(epoch from clock_timestamp()) * 1000000)::bigint * 1000`,
	Lock: func(ctx context.Context, tx *sql.Tx, key string) error {
		// Two keys: the kind (before the first ':', fixed by the code) and
		// the rest (which may come from users): a user's key can only ever
		// meet another of its kind, never the queue's or the nodes' lock,
		// nor the scheduler's (a one-key session lock, another key space).
		kind, rest, _ := strings.Cut(key, ":")
		_, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(hashtext($1), hashtext($2))`, kind, rest)
		return err
	},
}

// MaxConns is how many connections one store opens at most.
const MaxConns = 16

// Open connects to the database at rawURL (postgres://user:pass@host/db?…,
// or postgresql://), checks it answers and migrates it. A wrong URL, a
// database that does not answer and a schema newer than this cronium's are
// clear errors; the password never appears in them.
func Open(ctx context.Context, rawURL string) (*Store, error) {
	masked := MaskURL(rawURL)
	cfg, err := pgx.ParseConfig(rawURL)
	if err != nil {
		return nil, fmt.Errorf("store %s: not a PostgreSQL URL (postgres://user:password@host:5432/database): %s", masked, maskErr(err, rawURL))
	}
	db := stdlib.OpenDB(*cfg)
	db.SetMaxOpenConns(MaxConns)
	db.SetMaxIdleConns(MaxConns)
	db.SetConnMaxIdleTime(5 * time.Minute)
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	err = db.PingContext(pctx)
	cancel()
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("cannot reach PostgreSQL at %s: %s", masked, maskErr(err, rawURL))
	}
	st, err := sqlstore.New(ctx, db, Dialect)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("store %s: %s", masked, maskErr(err, rawURL))
	}
	return &Store{Store: st, db: db, cfg: cfg, url: masked}, nil
}

// Close releases the scheduler's lock, if held, and closes the database.
func (s *Store) Close() error {
	s.leaderMu.Lock()
	if s.leader != nil {
		s.leader.Close()
		s.leader = nil
	}
	s.leaderMu.Unlock()
	return s.Store.Close()
}

// Leader says whether this store's process leads the scheduler: it holds
// a session lock on a connection of its own, taken when free and kept
// while that connection answers (a process that dies, or loses the
// database, loses it; another then takes it).
func (s *Store) Leader(ctx context.Context) bool {
	s.leaderMu.Lock()
	defer s.leaderMu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, leaderWait)
	defer cancel()
	if s.leader != nil {
		if s.leader.PingContext(ctx) == nil {
			return true
		}
		s.leader.Raw(func(any) error { return driver.ErrBadConn }) // never back to the pool
		s.leader.Close()
		s.leader = nil
	}
	c, err := s.db.Conn(ctx)
	if err != nil {
		return false
	}
	// A leader whose machine dies leaves its session behind: PostgreSQL
	// drops it, and the lock, once the connection's keepalives go
	// unanswered for about 30s, instead of the system's default hours.
	c.ExecContext(ctx, `SET tcp_keepalives_idle = 10; SET tcp_keepalives_interval = 5; SET tcp_keepalives_count = 4; SET tcp_user_timeout = 30000`)
	var ok bool
	if err := c.QueryRowContext(ctx, `SELECT pg_try_advisory_lock(hashtext('cronium.scheduler'))`).Scan(&ok); err != nil || !ok {
		c.Close()
		return false
	}
	s.leader = c
	return true
}

// leaderWait bounds one leadership check: a database that does not answer
// holds no scheduler.
const leaderWait = 3 * time.Second

// Resign gives up leading the scheduler (at shutdown, so that another node
// takes over at once, not when this one's connections close).
func (s *Store) Resign() {
	s.leaderMu.Lock()
	defer s.leaderMu.Unlock()
	if s.leader != nil {
		s.leader.ExecContext(context.Background(), `SELECT pg_advisory_unlock(hashtext('cronium.scheduler'))`)
		s.leader.Raw(func(any) error { return driver.ErrBadConn })
		s.leader.Close()
		s.leader = nil
	}
}

// WatchEvents calls changed whenever a process on the database changes
// events (PutEvent, pause, delete...), and after each (re)connection, for
// what it may have missed, until ctx ends. It listens on a connection of
// its own, reconnecting every second while the database is away.
func (s *Store) WatchEvents(ctx context.Context, changed func()) {
	for ctx.Err() == nil {
		c, err := pgx.ConnectConfig(ctx, s.cfg.Copy())
		if err == nil {
			if _, err = c.Exec(ctx, `LISTEN cronium_events`); err == nil {
				changed()
				for err == nil {
					_, err = c.WaitForNotification(ctx)
					if err == nil {
						changed()
					}
				}
			}
			c.Close(context.Background())
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

// Backup is not this store's to do: PostgreSQL is backed up with its own tools.
func (s *Store) Backup(ctx context.Context, path string) error {
	return fmt.Errorf("the store is PostgreSQL (%s): back it up with pg_dump, e.g. pg_dump -Fc -f %s DATABASE_URL", s.url, path)
}

// MaskURL is a PostgreSQL URL (or key=value connection string) with its
// password replaced by ***, for messages: the user:password@ part and a
// password parameter alike.
func MaskURL(raw string) string {
	raw = kvPassword.ReplaceAllString(raw, "${1}***")
	if u, err := url.Parse(raw); err == nil && u.RawQuery != "" {
		q := u.Query()
		if q.Has("password") {
			q.Set("password", "***")
			u.RawQuery = strings.ReplaceAll(q.Encode(), "%2A%2A%2A", "***")
			raw = u.String()
		}
	}
	return maskUserinfo(raw)
}

// kvPassword finds password=VALUE in a key=value connection string (and
// in a URL's query, where MaskURL decodes it too).
var kvPassword = regexp.MustCompile(`((?:^|[\s?&])password=)('[^']*'|[^\s&]*)`)

// maskUserinfo masks the password of a URL's user:password@ part.
func maskUserinfo(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		if i := strings.Index(raw, "@"); i >= 0 {
			if j := strings.Index(raw, "://"); j >= 0 && j < i {
				if k := strings.Index(raw[j+3:i], ":"); k >= 0 {
					return raw[:j+3+k+1] + "***" + raw[i:]
				}
			}
		}
		return raw
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "***")
	}
	return strings.Replace(u.String(), "%2A%2A%2A", "***", 1)
}

// maskErr is err's text without the URL's password, should a driver
// message quote it.
func maskErr(err error, raw string) string {
	msg := err.Error()
	if u, perr := url.Parse(raw); perr == nil && u.User != nil {
		if p, ok := u.User.Password(); ok && p != "" {
			msg = strings.ReplaceAll(msg, p, "***")
		}
	}
	return msg
}
