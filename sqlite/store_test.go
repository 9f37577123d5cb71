package sqlite

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	cronium "github.com/cronium/executor"
	"github.com/cronium/executor/store"
	"github.com/cronium/executor/storetest"
)

func setup(t *testing.T) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "cronium.db")
	st, err := Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st, path
}

func TestMigrationsRunOnceAndReopen(t *testing.T) {
	st, path := setup(t)
	st.Close()
	st2, err := Open(context.Background(), path)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer st2.Close()
	var n, v int
	st2.db.QueryRow(`SELECT COUNT(*), MAX(version) FROM schema_migrations`).Scan(&n, &v)
	if n != len(migrations) || v != len(migrations) {
		t.Errorf("schema_migrations has %d rows, version %d; want %d", n, v, len(migrations))
	}
	st2.db.Exec(`INSERT INTO schema_migrations(version, applied_at) VALUES (999, 0)`)
	st2.Close()
	if _, err := Open(context.Background(), path); err == nil || !strings.Contains(err.Error(), "newer") {
		t.Errorf("opening a newer schema: %v, want a clear refusal", err)
	}
}

func TestKeysAreHashed(t *testing.T) {
	st, _ := setup(t)
	ctx := context.Background()
	u, _ := st.CreateUser(ctx, "alice", "free", false)
	key, err := st.CreateKey(ctx, u.ID)
	if err != nil || !strings.HasPrefix(key, KeyPrefix) || len(key) < 40 {
		t.Fatalf("key %q %v", key, err)
	}
	var stored string
	st.db.QueryRow(`SELECT hash FROM api_keys`).Scan(&stored)
	if strings.Contains(stored, key[len(KeyPrefix):]) {
		t.Error("the API key is stored in plain text")
	}
	if got, err := st.UserByKey(ctx, key); err != nil || got.Name != "alice" {
		t.Errorf("UserByKey: %v %v", got, err)
	}
	if _, err := st.UserByKey(ctx, key+"x"); !errors.Is(err, cronium.ErrNotFound) {
		t.Errorf("wrong key: %v, want not found", err)
	}
	if _, err := st.CreateUser(ctx, "alice", "pro", false); !errors.Is(err, cronium.ErrConflict) {
		t.Errorf("duplicate user: %v, want conflict", err)
	}
}

// The store conformance suite, on SQLite: each store on a file of its own.
func TestConformance(t *testing.T) {
	var mu sync.Mutex
	paths := map[store.Store]string{}
	open := func(t *testing.T, path string) store.Store {
		st, err := Open(context.Background(), path)
		if err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		paths[st] = path
		mu.Unlock()
		return st
	}
	storetest.Run(t, storetest.Harness{
		Open: func(t *testing.T) store.Store { return open(t, filepath.Join(t.TempDir(), "cronium.db")) },
		Again: func(t *testing.T, st store.Store) store.Store {
			mu.Lock()
			path := paths[st]
			mu.Unlock()
			return open(t, path)
		},
		Exec: func(t *testing.T, st store.Store, query string, args ...any) {
			if _, err := st.(*Store).db.Exec(query, args...); err != nil {
				t.Fatalf("%s: %v", query, err)
			}
		},
	})
}
