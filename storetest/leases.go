package storetest

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	cronium "github.com/cronium/executor"
	"github.com/cronium/executor/store"
)

// Node leases, a dead node's work, admission across nodes, cancel requests.
func init() {
	add("ReapRequeuesUnlaunchedAndAdoptsLaunched", testReapRequeuesUnlaunchedAndAdoptsLaunched)
	add("ReapLeavesOrLosesWhatItCannotReach", testReapLeavesOrLosesWhatItCannotReach)
	add("RegisterRefusesALiveNodesName", testRegisterRefusesALiveNodesName)
	add("AdmitRoundsHoldTiersAcrossStores", testAdmitRoundsHoldTiersAcrossStores)
	add("CancelRequestsReachTheRunningNode", testCancelRequestsReachTheRunningNode)
	add("ZombieClaimsNothing", testZombieClaimsNothing)
	add("ZombieRecordsNoSandbox", testZombieRecordsNoSandbox)
	add("CancelOfAnUnlaunchedClaimHolds", testCancelOfAnUnlaunchedClaimHolds)
	add("RunningOfAnUnknownNodeIsReaped", testRunningOfAnUnknownNodeIsReaped)
}

func node(name, key string) store.Node {
	return store.Node{Name: name, Instance: name + "-1", Host: "h-" + name, DataDir: "/var/lib/" + name, Engine: "docker", EngineKey: key, Capacity: 4}
}

// expire registers n with a lease that is over at once.
func expire(t *testing.T, st Store, n store.Node) {
	t.Helper()
	if err := st.RegisterNode(context.Background(), n, time.Nanosecond); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Millisecond)
}

// claimed queues n executions of a new user and claims them for node.
func claimed(t *testing.T, st Store, user, node string, n int) []cronium.Execution {
	t.Helper()
	ctx := context.Background()
	u, ev := newEvent(t, st, user)
	var ids []string
	for range n {
		x := manual(u, ev)
		if _, err := st.Enqueue(ctx, x, nil); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, x.ID)
	}
	got, err := st.ClaimMany(ctx, ids, node, time.Now())
	if err != nil || len(got) != n {
		t.Fatalf("claim: %v %v", got, err)
	}
	var xs []cronium.Execution
	for _, id := range ids {
		x, _ := st.Execution(ctx, 0, id)
		xs = append(xs, x)
	}
	return xs
}

// A dead node's claim that never launched goes back to the queue at once;
// its launched one is adopted by a node on the same engine, and the dead
// node can neither launch nor finish what it lost.
func testReapRequeuesUnlaunchedAndAdoptsLaunched(t *testing.T, h Harness) {
	a := open(t, h)
	b := again(t, h, a)
	ctx := context.Background()
	na, nb := node("a", "docker on h"), node("b", "docker on h")
	xs := claimed(t, a, "alice", "a", 2)
	if ok, err := a.SetStrategy(ctx, xs[0].ID, "a", "cold", "test"); !ok || err != nil {
		t.Fatalf("launch on a: %v %v", ok, err)
	}
	if err := b.RegisterNode(ctx, nb, time.Minute); err != nil {
		t.Fatal(err)
	}
	expire(t, a, na)
	r, err := b.ReapNodes(ctx, nb)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Down) != 1 || r.Down[0].Name != "a" || r.Requeued != 1 || len(r.Adopted) != 1 {
		t.Fatalf("reap: %+v, want a down, one requeued, one adopted", r)
	}
	if ad := r.Adopted[0]; ad.Execution.ID != xs[0].ID || ad.Lost != "" || ad.From.Name != "a" || ad.From.DataDir != "/var/lib/a" || ad.Execution.Node != "b" {
		t.Errorf("adopted: %+v", ad)
	}
	if again, _ := b.ReapNodes(ctx, nb); len(again.Down)+again.Requeued+len(again.Adopted) != 0 {
		t.Errorf("a second reap did more: %+v", again)
	}
	x1, _ := b.Execution(ctx, 0, xs[1].ID)
	if x1.Status != cronium.StatusQueued || x1.Node != "" || x1.StartedAt != nil || !strings.Contains(x1.Reason, "requeued: node a") {
		t.Errorf("the unlaunched claim: %+v, want queued again, saying why", x1)
	}
	if ok, _ := a.SetStrategy(ctx, xs[1].ID, "a", "cold", "late"); ok {
		t.Error("the dead node launched a claim it lost")
	}
	res := cronium.Result{Outcome: cronium.Succeeded, EndedAt: time.Now()}
	if ok, _ := a.FinishWith(ctx, xs[0].ID, "a", res, "", store.FollowUps{}); ok {
		t.Error("the dead node finished an execution another node adopted")
	}
	if ok, _ := a.Heartbeat(ctx, na, time.Minute); ok {
		t.Error("the dead node's heartbeat renewed a lease it lost")
	}
	if ok, err := b.FinishWith(ctx, xs[0].ID, "b", res, "", store.FollowUps{}); !ok || err != nil {
		t.Errorf("the adopter's finish: %v %v", ok, err)
	}
	nodes, _ := b.Nodes(ctx)
	if len(nodes) != 2 || nodes[0].State != store.NodeDown || !strings.Contains(nodes[0].DownReason, "lease ran out") || nodes[1].State != store.NodeUp {
		t.Errorf("nodes: %+v", nodes)
	}
	// The dead node comes back: a new instance, and up again.
	na.Instance = "a-2"
	if err := a.RegisterNode(ctx, na, time.Minute); err != nil {
		t.Fatal(err)
	}
	if ok, _ := a.Heartbeat(ctx, na, time.Minute); !ok {
		t.Error("the restarted node's heartbeat was refused")
	}
}

// A node adopts a dead node's running executions only if it reaches their
// sandboxes (the same engine key); when a live node does, it is left to
// that node; when none does, they are recorded as lost, saying why.
func testReapLeavesOrLosesWhatItCannotReach(t *testing.T, h Harness) {
	a := open(t, h)
	b := again(t, h, a)
	ctx := context.Background()
	na, nb, nc := node("a", "docker on ha"), node("b", "docker on hb"), node("c", "docker on ha")
	xs := claimed(t, a, "alice", "a", 1)
	a.SetStrategy(ctx, xs[0].ID, "a", "cold", "test")
	b.RegisterNode(ctx, nb, time.Minute)
	b.RegisterNode(ctx, nc, time.Minute)
	expire(t, a, na)
	if r, _ := b.ReapNodes(ctx, nb); len(r.Down) != 1 || len(r.Adopted) != 0 {
		t.Errorf("b reaped %+v; c reaches a's sandboxes and should adopt them", r)
	}
	if r, _ := b.ReapNodes(ctx, nc); len(r.Adopted) != 1 || r.Adopted[0].Lost != "" {
		t.Errorf("c reaped %+v, want a's execution to re-attach", r)
	}
	// Now with no node on a's engine alive: a comes back, launches, and
	// dies with c.
	na.Instance = "a-2"
	if err := a.RegisterNode(ctx, na, time.Minute); err != nil {
		t.Fatal(err)
	}
	ys := claimed(t, a, "bob", "a", 1)
	if ok, _ := a.SetStrategy(ctx, ys[0].ID, "a", "cold", "test"); !ok {
		t.Fatal("launch on a")
	}
	expire(t, a, na)
	expire(t, a, nc)
	r, _ := b.ReapNodes(ctx, nb)
	var lost *store.Adopted
	for i := range r.Adopted {
		if r.Adopted[i].Execution.ID == ys[0].ID {
			lost = &r.Adopted[i]
		}
	}
	if lost == nil || !strings.HasPrefix(lost.Lost, "lost: node a stopped") || !strings.Contains(lost.Lost, "docker on ha") {
		t.Errorf("reap with no node reaching a's sandboxes: %+v", r)
	}
}

// A node's name is taken while its lease lives, except by the same node
// restarting (same host and data directory).
func testRegisterRefusesALiveNodesName(t *testing.T, h Harness) {
	st := open(t, h)
	ctx := context.Background()
	n := node("a", "k")
	if err := st.RegisterNode(ctx, n, time.Minute); err != nil {
		t.Fatal(err)
	}
	impostor := n
	impostor.Instance, impostor.DataDir = "x", "/srv/other"
	if err := st.RegisterNode(ctx, impostor, time.Minute); !errors.Is(err, cronium.ErrConflict) || !strings.Contains(err.Error(), "give this node another node_id") {
		t.Errorf("a second live node a: %v, want a conflict that says what to do", err)
	}
	restart := n
	restart.Instance = "a-2"
	if err := st.RegisterNode(ctx, restart, time.Minute); err != nil {
		t.Errorf("node a restarting: %v", err)
	}
	if ok, _ := st.Heartbeat(ctx, n, time.Minute); ok {
		t.Error("the old instance's heartbeat was accepted after a restart")
	}
}

// Admission rounds on two stores at once never run a user above their
// tier: the round counts every node's running executions under one lock.
func testAdmitRoundsHoldTiersAcrossStores(t *testing.T, h Harness) {
	a := open(t, h)
	b := again(t, h, a)
	ctx := context.Background()
	var xs []*cronium.Execution
	for _, name := range []string{"u1", "u2", "u3"} {
		u, err := a.CreateUser(ctx, name, "free", false) // 2 at once
		if err != nil {
			t.Fatal(err)
		}
		ev := cronium.Event{Name: "e", Language: cronium.Bash, Script: "x"}
		ev.Normalize(cronium.DefaultTiers()["free"])
		a.PutEvent(ctx, u.ID, &ev)
		for range 15 {
			xs = append(xs, manual(u, ev))
		}
	}
	a.EnqueueMany(ctx, xs, nil)
	var mu sync.Mutex
	running, peak, done := map[int64]int{}, 0, 0
	tiers := cronium.DefaultTiers()
	var wg sync.WaitGroup
	for i := range 4 {
		s, nodeName := []Store{a, b}[i%2], []string{"n1", "n2"}[i%2]
		wg.Go(func() {
			for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); {
				got, _, err := s.AdmitRound(ctx, nodeName, time.Now(), 4, func(r store.Round) []string {
					var ids []string
					room := map[int64]int{}
					for _, x := range r.Heads {
						if r.RunningByUser[x.UserID]+room[x.UserID] < tiers[r.Tiers[x.UserID]].Concurrency {
							room[x.UserID]++
							ids = append(ids, x.ID)
						}
					}
					return ids
				})
				if err != nil {
					t.Errorf("AdmitRound: %v", err)
					return
				}
				mu.Lock()
				for _, x := range got {
					running[x.UserID]++
					peak = max(peak, running[x.UserID])
				}
				finished := done == len(xs)
				mu.Unlock()
				if finished {
					return
				}
				time.Sleep(time.Millisecond)
				for _, x := range got {
					mu.Lock()
					running[x.UserID]--
					done++
					mu.Unlock()
					s.FinishWith(ctx, x.ID, nodeName, cronium.Result{Outcome: cronium.Succeeded, EndedAt: time.Now()}, "", store.FollowUps{})
				}
			}
		})
	}
	wg.Wait()
	if done != len(xs) {
		t.Errorf("%d of %d executions ran", done, len(xs))
	}
	if peak > 2 {
		t.Errorf("a free user ran %d executions at once across two nodes, over the tier's 2", peak)
	}
}

// A cancel asked of the store reaches the node running the execution; an
// execution that is not running cannot be asked.
func testCancelRequestsReachTheRunningNode(t *testing.T, h Harness) {
	a := open(t, h)
	b := again(t, h, a)
	ctx := context.Background()
	xs := claimed(t, a, "alice", "a", 2)
	if ok, err := b.RequestCancel(ctx, xs[0].ID, "cancelled by alice"); !ok || err != nil {
		t.Fatalf("RequestCancel: %v %v", ok, err)
	}
	reqs, err := a.CancelRequests(ctx, "a")
	if err != nil || len(reqs) != 1 || reqs[xs[0].ID] != "cancelled by alice" {
		t.Errorf("a's cancel requests: %v %v", reqs, err)
	}
	if reqs, _ := a.CancelRequests(ctx, "b"); len(reqs) != 0 {
		t.Errorf("b's cancel requests: %v, want none", reqs)
	}
	a.FinishWith(ctx, xs[0].ID, "a", cronium.Result{Outcome: cronium.Cancelled, EndedAt: time.Now()}, "", store.FollowUps{})
	if ok, _ := b.RequestCancel(ctx, xs[0].ID, "again"); ok {
		t.Error("asked to cancel a finished execution")
	}
}

// A node taken for dead while still alive (a partition, a pause) claims
// nothing more; what it claimed just before it knew goes back to the queue
// at the next reap, never recorded lost: it never started.
func testZombieClaimsNothing(t *testing.T, h Harness) {
	a := open(t, h)
	b := again(t, h, a)
	ctx := context.Background()
	na, nb := node("a", "docker on ha"), node("b", "docker on hb")
	b.RegisterNode(ctx, nb, time.Minute)
	u, ev := newEvent(t, a, "zed")
	x, y := manual(u, ev), manual(u, ev)
	a.EnqueueMany(ctx, []*cronium.Execution{x, y}, nil)
	a.ClaimMany(ctx, []string{y.ID}, "a", time.Now()) // claimed just before a knew
	expire(t, a, na)
	if r, err := b.ReapNodes(ctx, nb); err != nil || len(r.Down) != 1 || r.Requeued != 1 {
		t.Fatalf("reap: %+v %v", r, err)
	}
	got, _, err := a.AdmitRound(ctx, "a", time.Now(), 4, func(r store.Round) []string {
		var ids []string
		for _, h := range r.Heads {
			ids = append(ids, h.ID)
		}
		return ids
	})
	if len(got) != 0 || err == nil || !strings.Contains(err.Error(), "taken it for dead") && !strings.Contains(err.Error(), "took it for dead") {
		t.Errorf("a node taken for dead claimed %d (%v)", len(got), err)
	}
	// A claim the dead node made anyway (before its reap was seen) is
	// requeued by the next reap, not lost.
	a.ClaimMany(ctx, []string{x.ID}, "a", time.Now())
	r, _ := b.ReapNodes(ctx, nb)
	if r.Requeued != 1 || len(r.Adopted) != 0 {
		t.Errorf("the next reap: %+v, want the never-launched claim requeued", r)
	}
	if z, _ := b.Execution(ctx, 0, x.ID); z.Status != cronium.StatusQueued {
		t.Errorf("the claim: %s, want queued again", z.Status)
	}
	// Registered again, it works again.
	na.Instance = "a-2"
	if err := a.RegisterNode(ctx, na, time.Minute); err != nil {
		t.Fatal(err)
	}
	if got, _, err := a.AdmitRound(ctx, "a", time.Now(), 4, func(r store.Round) []string { return []string{x.ID} }); len(got) != 1 || err != nil {
		t.Errorf("after registering again: %d %v", len(got), err)
	}
}

// A node taken for dead cannot record a sandbox (so it never hands the
// script over) for an execution another node adopted; an adopter sees
// the sandbox as it is when it adopts.
func testZombieRecordsNoSandbox(t *testing.T, h Harness) {
	a := open(t, h)
	b := again(t, h, a)
	ctx := context.Background()
	na, nb := node("a", "docker on h"), node("b", "docker on h")
	xs := claimed(t, a, "alice", "a", 2)
	for _, x := range xs {
		if ok, _ := a.SetStrategy(ctx, x.ID, "a", "cold", "test"); !ok {
			t.Fatal("launch")
		}
	}
	if err := a.SetSandbox(ctx, xs[1].ID, "a", "warm-1"); err != nil {
		t.Fatal(err)
	}
	b.RegisterNode(ctx, nb, time.Minute)
	expire(t, a, na)
	r, _ := b.ReapNodes(ctx, nb)
	sandboxes := map[string]string{}
	for _, ad := range r.Adopted {
		sandboxes[ad.Execution.ID] = ad.Execution.Sandbox
	}
	if len(r.Adopted) != 2 || sandboxes[xs[0].ID] != "" || sandboxes[xs[1].ID] != "warm-1" {
		t.Errorf("adopted: %+v", r.Adopted)
	}
	if err := a.SetSandbox(ctx, xs[0].ID, "a", xs[0].ID); !errors.Is(err, cronium.ErrConflict) {
		t.Errorf("the old owner recorded a sandbox for an adopted execution: %v", err)
	}
	if err := b.SetSandbox(ctx, xs[0].ID, "b", xs[0].ID); err != nil {
		t.Errorf("the adopter's sandbox: %v", err)
	}
}

// A cancel asked of a claimed execution whose node dies before launching
// it is kept: the execution ends cancelled, never back in the queue.
func testCancelOfAnUnlaunchedClaimHolds(t *testing.T, h Harness) {
	a := open(t, h)
	b := again(t, h, a)
	ctx := context.Background()
	na, nb := node("a", "docker on h"), node("b", "docker on h")
	xs := claimed(t, a, "alice", "a", 1)
	if ok, _ := b.RequestCancel(ctx, xs[0].ID, "cancelled by alice"); !ok {
		t.Fatal("request cancel")
	}
	b.RegisterNode(ctx, nb, time.Minute)
	expire(t, a, na)
	b.ReapNodes(ctx, nb)
	y, _ := b.Execution(ctx, 0, xs[0].ID)
	if y.Status != cronium.StatusFinished || y.Outcome != cronium.Cancelled || y.Reason != "cancelled by alice" {
		t.Errorf("after the reap: %s %s %q, want finished, cancelled by alice", y.Status, y.Outcome, y.Reason)
	}
}

// Running executions of a node no node on the store is (renamed, or a
// copied store's) do not hold their users' tiers for ever: a reap ends
// them as lost, saying why.
func testRunningOfAnUnknownNodeIsReaped(t *testing.T, h Harness) {
	st := open(t, h)
	ctx := context.Background()
	nb := node("b", "docker on h")
	xs := claimed(t, st, "alice", "old-name", 1)
	st.SetStrategy(ctx, xs[0].ID, "old-name", "cold", "test")
	st.RegisterNode(ctx, nb, time.Minute)
	r, _ := st.ReapNodes(ctx, nb)
	if len(r.Adopted) != 1 || !strings.Contains(r.Adopted[0].Lost, "no node of that name") {
		t.Errorf("reap: %+v", r)
	}
}
