package storetest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	cronium "github.com/cronium/executor"
	"github.com/cronium/executor/store"
)

// Two stores on one database, as two nodes: what one writer made safe
// must hold with two.
func init() {
	add("ClaimsAcrossStoresAreExclusive", testClaimsAcrossStoresAreExclusive)
	add("ConcurrentFinishesFollowOnce", testConcurrentFinishesFollowOnce)
	add("ConcurrentCreatesOfOneEvent", testConcurrentCreatesOfOneEvent)
	add("ChainBudgetHoldsUnderConcurrentFinishes", testChainBudgetHoldsUnderConcurrentFinishes)
	add("QueueOrderAndHeadLimit", testQueueOrderAndHeadLimit)
}

// newEvent creates user name's event "e" and returns both.
func newEvent(t *testing.T, st Store, name string) (cronium.User, cronium.Event) {
	t.Helper()
	ctx := context.Background()
	u, err := st.CreateUser(ctx, name, "pro", false)
	if err != nil {
		t.Fatal(err)
	}
	ev := cronium.Event{Name: "e", Language: cronium.Bash, Script: "x"}
	ev.Normalize(cronium.DefaultTiers()["pro"])
	if _, err := st.PutEvent(ctx, u.ID, &ev); err != nil {
		t.Fatal(err)
	}
	return u, ev
}

func manual(u cronium.User, ev cronium.Event) *cronium.Execution {
	return &cronium.Execution{EventID: ev.ID, UserID: u.ID, Trigger: cronium.TriggerAPI, Attempt: 1, Strategy: "cold"}
}

// Claimers on two stores, racing for one queue, claim every execution
// exactly once.
func testClaimsAcrossStoresAreExclusive(t *testing.T, h Harness) {
	st := open(t, h)
	other := again(t, h, st)
	ctx := context.Background()
	const n = 200
	var xs []*cronium.Execution
	for i := range 4 {
		u, ev := newEvent(t, st, fmt.Sprintf("u%d", i))
		for range n / 4 {
			xs = append(xs, manual(u, ev))
		}
	}
	if _, err := st.EnqueueMany(ctx, xs, nil); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	claims := map[string]int{}
	var wg sync.WaitGroup
	for i := range 6 {
		s := []Store{st, other}[i%2]
		node := fmt.Sprintf("n%d", i%2)
		wg.Go(func() {
			for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); {
				heads, err := s.ReadyHeads(ctx, time.Now(), 3)
				if err != nil {
					t.Errorf("ReadyHeads: %v", err)
					return
				}
				if len(heads) == 0 {
					return
				}
				ids := make([]string, len(heads))
				for j, x := range heads {
					ids[j] = x.ID
				}
				got, err := s.ClaimMany(ctx, ids, node, time.Now())
				if err != nil {
					t.Errorf("ClaimMany: %v", err)
					return
				}
				mu.Lock()
				for _, id := range got {
					claims[id]++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(claims) != n {
		t.Errorf("%d executions claimed, want %d", len(claims), n)
	}
	for id, k := range claims {
		if k != 1 {
			t.Errorf("execution %s claimed %d times", id, k)
		}
	}
	if running, _ := st.Running(ctx, ""); len(running) != n {
		t.Errorf("%d running, want %d", len(running), n)
	}
}

// An execution finished at once from two stores finishes once, and its
// follow-ups (a retry) are queued once.
func testConcurrentFinishesFollowOnce(t *testing.T, h Harness) {
	st := open(t, h)
	other := again(t, h, st)
	ctx := context.Background()
	u, ev := newEvent(t, st, "alice")
	for round := range 10 {
		x := manual(u, ev)
		st.Enqueue(ctx, x, nil)
		st.ClaimMany(ctx, []string{x.ID}, "n1", time.Now())
		var wg sync.WaitGroup
		var mu sync.Mutex
		wins := 0
		for i := range 4 {
			s := []Store{st, other}[i%2]
			wg.Go(func() {
				retry := manual(u, ev)
				retry.Attempt, retry.RetryOf = 2, x.ID
				ok, err := s.FinishWith(ctx, x.ID, "", cronium.Result{Outcome: cronium.Failed, EndedAt: time.Now()}, "", store.FollowUps{Retry: retry})
				if err != nil {
					t.Errorf("FinishWith: %v", err)
				}
				if ok {
					mu.Lock()
					wins++
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		retries, _ := st.Executions(ctx, store.ExecutionFilter{UserID: u.ID, Status: cronium.StatusQueued, Limit: 100})
		if wins != 1 || len(retries) != 1 {
			t.Fatalf("round %d: %d finishes counted, %d retries queued; want 1 and 1", round, wins, len(retries))
		}
		st.CancelQueued(ctx, retries[0].ID, "test")
	}
}

// Creating one event from two stores at once creates it once; the others
// see it and update it, none fails.
func testConcurrentCreatesOfOneEvent(t *testing.T, h Harness) {
	st := open(t, h)
	other := again(t, h, st)
	ctx := context.Background()
	u, _ := st.CreateUser(ctx, "alice", "pro", false)
	for round := range 5 {
		name := fmt.Sprintf("e%d", round)
		var wg sync.WaitGroup
		var mu sync.Mutex
		created := 0
		for i := range 6 {
			s := []Store{st, other}[i%2]
			wg.Go(func() {
				ev := cronium.Event{Name: name, Language: cronium.Bash, Script: fmt.Sprintf("echo %d", i)}
				ev.Normalize(cronium.DefaultTiers()["pro"])
				c, err := s.PutEvent(ctx, u.ID, &ev)
				if err != nil {
					t.Errorf("PutEvent: %v", err)
				}
				if c {
					mu.Lock()
					created++
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if created != 1 {
			t.Errorf("%s: created %d times, want once", name, created)
		}
	}
	if evs, _ := st.Events(ctx, u.ID); len(evs) != 5 {
		t.Errorf("%d events, want 5", len(evs))
	}
}

// Branches of one chain finishing at once on two stores never start more
// than cronium.MaxChainRuns runs of the chain.
func testChainBudgetHoldsUnderConcurrentFinishes(t *testing.T, h Harness) {
	st := open(t, h)
	other := again(t, h, st)
	ctx := context.Background()
	u, ev := newEvent(t, st, "alice")
	root := manual(u, ev)
	st.Enqueue(ctx, root, nil)
	root.ChainRoot = root.ID
	// Branches of the chain, each running, each to trigger 5 more.
	var branches []string
	for len(branches) < cronium.MaxChainRuns/5+4 {
		b := manual(u, ev)
		b.ChainRoot, b.ChainedFrom, b.ChainDepth = root.ID, root.ID, 1
		if _, err := st.Enqueue(ctx, b, nil); err != nil {
			t.Fatal(err)
		}
		branches = append(branches, b.ID)
	}
	st.ClaimMany(ctx, branches, "n1", time.Now())
	var wg sync.WaitGroup
	for i, id := range branches {
		s := []Store{st, other}[i%2]
		wg.Go(func() {
			var next []*cronium.Execution
			for range 5 {
				c := manual(u, ev)
				c.ChainRoot, c.ChainedFrom, c.ChainDepth = root.ID, id, 2
				next = append(next, c)
			}
			if _, err := s.FinishWith(ctx, id, "", cronium.Result{Outcome: cronium.Succeeded, EndedAt: time.Now()}, "", store.FollowUps{Chained: next}); err != nil {
				t.Errorf("FinishWith: %v", err)
			}
		})
	}
	wg.Wait()
	all, _ := st.Executions(ctx, store.ExecutionFilter{UserID: u.ID, Limit: 1000})
	n := 0
	for _, x := range all {
		if x.ChainRoot == root.ID {
			n++
		}
	}
	if n > cronium.MaxChainRuns {
		t.Errorf("the chain has %d runs, more than the %d one chain may start", n, cronium.MaxChainRuns)
	}
	if n < cronium.MaxChainRuns {
		t.Errorf("the chain has %d runs; the budget (%d) should have been used up", n, cronium.MaxChainRuns)
	}
}

// ReadyHeads gives each user's heads in admission order (priority, then
// age, then id), at most perUser each, and nothing not yet due.
func testQueueOrderAndHeadLimit(t *testing.T, h Harness) {
	st := open(t, h)
	ctx := context.Background()
	a, ea := newEvent(t, st, "a")
	b, eb := newEvent(t, st, "b")
	t0 := time.Now().Add(-time.Hour).UTC()
	mk := func(u cronium.User, ev cronium.Event, age int, prio int) *cronium.Execution {
		x := manual(u, ev)
		x.QueuedAt, x.Priority = t0.Add(time.Duration(age)*time.Second), prio
		return x
	}
	later := mk(a, ea, 0, 9)
	later.NotBefore = time.Now().Add(time.Hour)
	xs := []*cronium.Execution{mk(a, ea, 3, 0), mk(a, ea, 1, 0), mk(a, ea, 2, 5), mk(a, ea, 0, 0), mk(b, eb, 5, 0), mk(b, eb, 4, 0), later}
	if _, err := st.EnqueueMany(ctx, xs, nil); err != nil {
		t.Fatal(err)
	}
	heads, err := st.ReadyHeads(ctx, time.Now(), 2)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, x := range heads {
		got = append(got, x.ID)
	}
	want := []string{xs[2].ID, xs[3].ID, xs[5].ID, xs[4].ID}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("heads %v, want %v (a's priority 5, a's oldest, then b's two by age)", got, want)
	}
}
