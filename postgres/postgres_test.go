package postgres

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/cronium/executor/internal/pgtest"
	"github.com/cronium/executor/store"
	"github.com/cronium/executor/storetest"
)

// server is the package's PostgreSQL: one per test binary, a database per test.
var server *pgtest.Server

func TestMain(m *testing.M) {
	var err error
	server, err = pgtest.Start(context.Background())
	if err != nil {
		fmt.Fprintln(os.Stderr, "start PostgreSQL:", err)
		os.Exit(1)
	}
	code := m.Run()
	server.Stop()
	os.Exit(code)
}

var dbs atomic.Int64

// newURL is the URL of a new, empty database.
func newURL(t *testing.T) string {
	t.Helper()
	u, err := server.NewDatabase(context.Background(), fmt.Sprintf("t%d", dbs.Add(1)))
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func openURL(t *testing.T, u string) *Store {
	t.Helper()
	st, err := Open(context.Background(), u)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// The store conformance suite, on PostgreSQL: each store on a database of its own.
func TestConformance(t *testing.T) {
	var mu sync.Mutex
	urls := map[store.Store]string{}
	open := func(t *testing.T, u string) store.Store {
		st := openURL(t, u)
		mu.Lock()
		urls[st] = u
		mu.Unlock()
		return st
	}
	storetest.Run(t, storetest.Harness{
		Open: func(t *testing.T) store.Store { return open(t, newURL(t)) },
		Again: func(t *testing.T, st store.Store) store.Store {
			mu.Lock()
			u := urls[st]
			mu.Unlock()
			return open(t, u)
		},
		Exec: func(t *testing.T, st store.Store, query string, args ...any) {
			if _, err := st.(*Store).db.Exec(rebindForTest(query), args...); err != nil {
				t.Fatalf("%s: %v", query, err)
			}
		},
	})
}

// rebindForTest numbers a test's ? placeholders.
func rebindForTest(q string) string {
	for n := 1; strings.Contains(q, "?"); n++ {
		q = strings.Replace(q, "?", fmt.Sprintf("$%d", n), 1)
	}
	return q
}

func TestMigrationsRunOnceAndRefuseANewerSchema(t *testing.T) {
	u := newURL(t)
	st := openURL(t, u)
	st.Close()
	st = openURL(t, u)
	var n, v int
	st.db.QueryRow(`SELECT COUNT(*), MAX(version) FROM schema_migrations`).Scan(&n, &v)
	if n != len(migrations) || v != len(migrations) {
		t.Errorf("schema_migrations has %d rows, version %d; want %d", n, v, len(migrations))
	}
	st.db.Exec(`INSERT INTO schema_migrations(version, applied_at) VALUES (999, 0)`)
	st.Close()
	if _, err := Open(context.Background(), u); err == nil || !strings.Contains(err.Error(), "newer") {
		t.Errorf("opening a newer schema: %v, want a clear refusal", err)
	}
}

// Servers starting together on one new database migrate it once.
func TestConcurrentOpensMigrateOnce(t *testing.T) {
	u := newURL(t)
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Go(func() {
			st, err := Open(context.Background(), u)
			if err != nil {
				errs <- err
				return
			}
			st.Close()
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent open: %v", err)
	}
	st := openURL(t, u)
	defer st.Close()
	var n int
	st.db.QueryRow(`SELECT COUNT(*) FROM schema_migrations`).Scan(&n)
	if n != len(migrations) {
		t.Errorf("%d migrations recorded, want %d", n, len(migrations))
	}
}

// A password never shows in what MaskURL gives, whichever way it is written.
func TestMaskURL(t *testing.T) {
	for in, want := range map[string]string{
		"postgres://u:s3cret@h/db":                          "postgres://u:***@h/db",
		"postgres://u@h/db?password=s3cret":                 "postgres://u@h/db?password=***",
		"postgres://h/db?sslmode=disable&password=s3cret":   "postgres://h/db?password=***&sslmode=disable",
		"postgres://u:s3%40cret@h/db":                       "postgres://u:***@h/db",
		"postgresql:///db?host=/tmp&user=u&password=s3cret": "postgresql:///db?host=%2Ftmp&password=***&user=u",
		"host=db user=u password=s3cret dbname=cronium":     "host=db user=u password=*** dbname=cronium",
		"host=db password='s3 cret' user=u":                 "host=db password=*** user=u",
		"postgres://cronium@/cronium?host=/tmp/crpg123":     "postgres://cronium@/cronium?host=/tmp/crpg123",
	} {
		got := MaskURL(in)
		if got != want || strings.Contains(got, "s3") {
			t.Errorf("MaskURL(%q) = %q, want %q", in, got, want)
		}
	}
	for _, u := range []string{"postgres://u@127.0.0.1:1/db?connect_timeout=1&password=s3cret", "postgres://u:s3cret@127.0.0.1:1/db?sslmode=bogus"} {
		if _, err := Open(context.Background(), u); err == nil || strings.Contains(err.Error(), "s3cret") {
			t.Errorf("Open(%s): %v, want an error without the password", u, err)
		}
	}
}
