// Package storetest is the conformance suite every store passes (SQLite
// and PostgreSQL): the behaviour of the store contract (store.Store)
// tested through the contract alone, the same cases for every database.
// A store's test package runs it:
//
//	func TestConformance(t *testing.T) { storetest.Run(t, storetest.Harness{Open: ...}) }
package storetest

import (
	"context"
	"testing"
	"time"

	cronium "github.com/cronium/executor"
	"github.com/cronium/executor/notify"
	"github.com/cronium/executor/store"
)

// Harness opens stores of the kind under test. Every hook is required.
type Harness struct {
	// Open returns a new, empty store on a database of its own; the test
	// closes it.
	Open func(t *testing.T) store.Store
	// Again opens another store on st's database, as a second node (or a
	// restart) would; the test closes it.
	Again func(t *testing.T, st store.Store) store.Store
	// Exec runs one statement, written with ? placeholders, directly on
	// st's database: a fault the store must survive, such as a stored
	// value it cannot read.
	Exec func(t *testing.T, st store.Store, query string, args ...any)
}

// Store is what the suite asks of a store: the contract, and the helpers
// its tests use to set up and finish executions.
type Store interface {
	store.Store
	// Finish records an execution's result without follow-ups.
	Finish(ctx context.Context, id string, res cronium.Result, reason string) (bool, error)
	// EnqueueNotifications adds pending deliveries.
	EnqueueNotifications(ctx context.Context, ds []notify.Delivery) error
	// Prune applies one user's retention.
	Prune(ctx context.Context, userID int64, olderThan time.Time, keepRuns int) (int, error)
}

// cases are the suite's cases, by name, registered by the files' init functions.
var cases []struct {
	name string
	f    func(t *testing.T, h Harness)
}

func add(name string, f func(t *testing.T, h Harness)) {
	cases = append(cases, struct {
		name string
		f    func(t *testing.T, h Harness)
	}{name, f})
}

// Run runs every case against stores h opens, each case in parallel on a
// store of its own.
func Run(t *testing.T, h Harness) {
	if h.Open == nil || h.Again == nil || h.Exec == nil {
		t.Fatal("storetest.Run needs every Harness hook")
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			c.f(t, h)
		})
	}
}

// open opens a store for one case and closes it at the case's end.
func open(t *testing.T, h Harness) Store {
	t.Helper()
	return suite(t, h.Open(t))
}

// again opens a second store on st's database, closed at the case's end.
func again(t *testing.T, h Harness, st Store) Store {
	t.Helper()
	return suite(t, h.Again(t, st))
}

// suite closes st at the case's end and gives it as a Store.
func suite(t *testing.T, st store.Store) Store {
	t.Helper()
	t.Cleanup(func() { st.Close() })
	s, ok := st.(Store)
	if !ok {
		t.Fatalf("%T lacks the suite's helpers (storetest.Store)", st)
	}
	return s
}

// exec runs a statement directly on st's database (Harness.Exec).
func exec(t *testing.T, h Harness, st Store, query string, args ...any) {
	t.Helper()
	h.Exec(t, st, query, args...)
}
