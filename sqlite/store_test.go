package sqlite

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
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

// A stored execution result that cannot be read is said on the
// execution, not dropped; a stored event spec that cannot be read is
// replaced by the next apply.
func TestUnreadableStoredDataIsSaid(t *testing.T) {
	st, _ := setup(t)
	ctx := context.Background()
	u, _ := st.CreateUser(ctx, "alice", "free", false)
	ev := cronium.Event{Name: "e", Language: cronium.Bash, Script: "x"}
	ev.Normalize(cronium.DefaultTiers()["free"])
	st.PutEvent(ctx, u.ID, &ev)
	x := cronium.Execution{EventID: ev.ID, UserID: u.ID, Trigger: cronium.TriggerManual, Attempt: 1}
	st.Enqueue(ctx, &x, nil)
	st.db.Exec(`UPDATE executions SET status = 'finished', result = '{"outcome": 42' WHERE id = ?`, x.ID)
	got, err := st.Execution(ctx, u.ID, x.ID)
	if err != nil || got.Result == nil || !strings.Contains(got.Result.Error, "could not be read") {
		t.Errorf("execution with a broken result: %+v %v", got.Result, err)
	}
	st.db.Exec(`UPDATE events SET spec = '{broken' WHERE id = ?`, ev.ID)
	ev2 := cronium.Event{Name: "e", Language: cronium.Bash, Script: "y"}
	ev2.Normalize(cronium.DefaultTiers()["free"])
	if _, err := st.PutEvent(ctx, u.ID, &ev2); err != nil {
		t.Fatal(err)
	}
	if e, err := st.Event(ctx, u.ID, "e"); err != nil || e.Script != "y" {
		t.Errorf("event after replacing a broken spec: %+v %v", e, err)
	}
}

// The store conformance suite, on SQLite.
func TestConformance(t *testing.T) {
	storetest.Run(t, storetest.Harness{Open: func(t *testing.T) store.Store {
		st, err := Open(context.Background(), filepath.Join(t.TempDir(), "cronium.db"))
		if err != nil {
			t.Fatal(err)
		}
		return st
	}})
}
