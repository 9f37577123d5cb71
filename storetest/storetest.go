// Package storetest is the conformance suite every store passes (SQLite,
// and PostgreSQL next): the behaviour of the store contract (store.Store)
// tested through the contract alone, the same cases for every database.
// A store's test package runs it:
//
//	func TestConformance(t *testing.T) { storetest.Run(t, storetest.Harness{Open: ...}) }
package storetest

import (
	"testing"

	"github.com/cronium/executor/store"
)

// Harness opens stores of the kind under test.
type Harness struct {
	// Open returns a new, empty store; the test closes it. Required.
	Open func(t *testing.T) store.Store
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
	if h.Open == nil {
		t.Fatal("storetest.Run needs Harness.Open")
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			c.f(t, h)
		})
	}
}

// open opens a store for one case and closes it at the case's end.
func open(t *testing.T, h Harness) store.Store {
	t.Helper()
	st := h.Open(t)
	t.Cleanup(func() { st.Close() })
	return st
}
