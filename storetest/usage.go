package storetest

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	cronium "github.com/cronium/executor"
	"github.com/cronium/executor/store"
)

func init() {
	add("UsageSumsExactlyAndOutlivesRetention", testUsageSumsExactlyAndOutlivesRetention)
	add("QueueDepthByTier", testQueueDepthByTier)
	add("UsageMigrationFillsFromResults", testUsageMigrationFillsFromResults)
}

// The migration that added usage sums filled them from the results of the
// executions stored before it. The case undoes that migration and the
// newer ones (kept sandboxes), and runs them again: when a newer one is
// added, undo that one too, here.
func testUsageMigrationFillsFromResults(t *testing.T, h Harness) {
	st := open(t, h)
	ctx := context.Background()
	u, _ := st.CreateUser(ctx, "alice", "free", false)
	ev := putEvent(t, st, u, "job")
	end := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	for _, cpu := range []float64{1.25, 0.5} {
		x := &cronium.Execution{EventID: ev.ID, UserID: u.ID, Trigger: cronium.TriggerAPI, Attempt: 1, Strategy: "cold", QueuedAt: end}
		if _, err := st.Enqueue(ctx, x, nil); err != nil {
			t.Fatal(err)
		}
		st.Finish(ctx, x.ID, cronium.Result{Outcome: cronium.Succeeded, EndedAt: end,
			Usage: cronium.Usage{CPUSeconds: cpu, PeakMemory: int64(cpu * 1e6), Network: &cronium.NetworkUsage{BytesIn: 10, BytesOut: 5}}}, "")
	}
	for _, undo := range []string{`DROP INDEX executions_kept`, `ALTER TABLE executions DROP COLUMN kept_node`, `ALTER TABLE executions DROP COLUMN kept_until`, `DROP TABLE usage_days`} {
		exec(t, h, st, undo)
	}
	for range 2 {
		exec(t, h, st, `DELETE FROM schema_migrations WHERE version = (SELECT MAX(version) FROM (SELECT version FROM schema_migrations) AS v)`)
	}
	st2 := again(t, h, st)
	rows, err := st2.Usage(ctx, store.UsageFilter{By: store.ByDay})
	if err != nil {
		t.Fatal(err)
	}
	want := store.UsageRow{Day: "2026-12-02", Executions: 2, Metered: cronium.Metered{CPUMicros: 1_750_000, PeakMemory: 1_250_000, NetworkBytes: 30}}
	if len(rows) != 1 || rows[0] != want {
		t.Errorf("after the migration: %+v, want %+v", rows, want)
	}
}

// Usage reports add up exactly to the executions' own usage and cost,
// by day, event and user, for one user or all; finishing twice counts
// once; and pruning the executions leaves the sums as they were.
func testUsageSumsExactlyAndOutlivesRetention(t *testing.T, h Harness) {
	st := open(t, h)
	ctx := context.Background()
	base := time.Date(2026, 11, 29, 0, 0, 0, 0, time.UTC)
	alice, _ := st.CreateUser(ctx, "alice", "free", false)
	bob, _ := st.CreateUser(ctx, "bob", "pro", false)
	event := func(u cronium.User, name string) cronium.Event { return putEvent(t, st, u, name) }
	type owner struct {
		u  cronium.User
		ev cronium.Event
	}
	owners := []owner{{alice, event(alice, "a")}, {alice, event(alice, "b")}, {bob, event(bob, "a")}}
	prices := cronium.Prices{CPUSecond: 0.00002, GiBSecond: 0.0000025, NetworkGiB: 0.09, Execution: 0.000001}
	rng := rand.New(rand.NewPCG(1, 2))
	want := map[string]store.UsageRow{} // by "day", "user/event", "user", "user/day" and "all"
	addTo := func(key string, r store.UsageRow) {
		w := want[key]
		w.Add(r)
		want[key] = w
	}
	var ids []string
	for i := range 100 {
		o := owners[i%len(owners)]
		end := base.Add(time.Duration(i/3%3)*24*time.Hour + time.Duration(rng.IntN(86000))*time.Second)
		x := &cronium.Execution{EventID: o.ev.ID, UserID: o.u.ID, Trigger: cronium.TriggerAPI, Attempt: 1, Strategy: "cold", QueuedAt: end.Add(-time.Minute)}
		if _, err := st.Enqueue(ctx, x, nil); err != nil {
			t.Fatal(err)
		}
		res := cronium.Result{Outcome: cronium.Succeeded, EndedAt: end, Phases: cronium.Phases{Run: time.Duration(rng.IntN(5000)) * time.Millisecond},
			Limits: cronium.Limits{Memory: cronium.Size(64+rng.IntN(512)) << 20},
			Usage: cronium.Usage{CPUSeconds: float64(rng.IntN(3_000_000)) / 1e6, PeakMemory: int64(rng.IntN(300 << 20)),
				IORead: int64(rng.IntN(1 << 20)), IOWrite: int64(rng.IntN(1 << 20)), Network: &cronium.NetworkUsage{BytesIn: int64(rng.IntN(1 << 24)), BytesOut: int64(rng.IntN(1 << 20))}}}
		m := cronium.Meter(res)
		res.Usage.CostMicros = prices.Cost(m, true)
		if ok, err := st.Finish(ctx, x.ID, res, ""); err != nil || !ok {
			t.Fatalf("finish: %v %v", ok, err)
		}
		if ok, _ := st.Finish(ctx, x.ID, res, ""); ok { // a second finish changes nothing
			t.Fatal("finished twice")
		}
		ids = append(ids, x.ID)
		r := store.UsageRow{Executions: 1, Metered: m, CostMicros: res.Usage.CostMicros}
		day := end.Format(time.DateOnly)
		addTo(day, r)
		addTo(o.u.Name+"/"+o.ev.Name, r)
		addTo(o.u.Name, r)
		addTo(o.u.Name+"/"+day, r)
		addTo("all", r)
	}
	check := func(f store.UsageFilter, key func(store.UsageRow) string, n int) {
		t.Helper()
		rows, err := st.Usage(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) != n {
			t.Fatalf("%+v: %d rows, want %d: %+v", f, len(rows), n, rows)
		}
		for _, r := range rows {
			k := key(r)
			got := r
			got.Day, got.User, got.UserID, got.Event = "", "", 0, ""
			if got != want[k] {
				t.Errorf("%+v: row %s = %+v, want %+v", f, k, got, want[k])
			}
		}
	}
	report := func() {
		t.Helper()
		check(store.UsageFilter{By: store.ByDay}, func(r store.UsageRow) string { return r.Day }, 3)
		check(store.UsageFilter{By: store.ByEvent}, func(r store.UsageRow) string { return r.User + "/" + r.Event }, 3)
		check(store.UsageFilter{By: store.ByUser}, func(r store.UsageRow) string { return r.User }, 2)
		check(store.UsageFilter{}, func(store.UsageRow) string { return "all" }, 1)
		check(store.UsageFilter{UserID: bob.ID, By: store.ByDay}, func(r store.UsageRow) string { return "bob/" + r.Day }, 3)
		// Since and Until select whole days: the middle one.
		check(store.UsageFilter{By: store.ByDay, Since: base.Add(30 * time.Hour), Until: base.Add(50 * time.Hour)},
			func(r store.UsageRow) string { return r.Day }, 1)
	}
	report()
	var total int64
	for _, id := range ids { // the executions' own records add up to the total
		x, err := st.Execution(ctx, 0, id)
		if err != nil || x.Result == nil {
			t.Fatalf("execution %s: %v", id, err)
		}
		total += x.Result.Usage.CostMicros
	}
	if total != want["all"].CostMicros || total == 0 {
		t.Errorf("the executions' costs add up to %d, the report says %d", total, want["all"].CostMicros)
	}
	// Retention deletes the executions, not what they used.
	if _, err := st.Prune(ctx, alice.ID, base.Add(10*24*time.Hour), 1); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Execution(ctx, 0, ids[0]); err == nil {
		t.Fatal("prune kept an old execution")
	}
	report()
	if _, err := st.Usage(ctx, store.UsageFilter{By: "week"}); err == nil {
		t.Error("by=week was accepted")
	}
}

// QueueDepth counts every queued execution by its user's tier, and those due.
func testQueueDepthByTier(t *testing.T, h Harness) {
	st := open(t, h)
	ctx := context.Background()
	now := time.Now()
	free, _ := st.CreateUser(ctx, "alice", "free", false)
	pro, _ := st.CreateUser(ctx, "bob", "pro", false)
	for _, u := range []cronium.User{free, pro} {
		ev := putEvent(t, st, u, "job")
		n := 3
		if u.ID == pro.ID {
			n = 2
		}
		for i := range n {
			x := &cronium.Execution{EventID: ev.ID, UserID: u.ID, Trigger: cronium.TriggerAPI, Attempt: 1, Strategy: "cold", QueuedAt: now}
			if i == 0 {
				x.NotBefore = now.Add(time.Hour) // a retry waiting for its backoff
			}
			if _, err := st.Enqueue(ctx, x, nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	queued, due, err := st.QueueDepth(ctx, now)
	if err != nil {
		t.Fatal(err)
	}
	if queued["free"] != 3 || queued["pro"] != 2 || due["free"] != 2 || due["pro"] != 1 || len(queued) != 2 {
		t.Errorf("queued %v, due %v; want free 3/2, pro 2/1", queued, due)
	}
}

// putEvent saves a bash event of u's named name.
func putEvent(t *testing.T, st Store, u cronium.User, name string) cronium.Event {
	t.Helper()
	ev := cronium.Event{Name: name, Language: cronium.Bash, Script: "x"}
	ev.Normalize(cronium.DefaultTiers()["free"])
	if _, err := st.PutEvent(context.Background(), u.ID, &ev); err != nil {
		t.Fatal(err)
	}
	return ev
}

func init() {
	add("KeptSandboxesHoldTheirOwnersSlots", testKeptSandboxesHoldTheirOwnersSlots)
}

// A sandbox kept for debugging counts as its owner's running execution on
// its node (admission holds tiers with it) until Unkeep or its time is up.
func testKeptSandboxesHoldTheirOwnersSlots(t *testing.T, h Harness) {
	st := open(t, h)
	ctx := context.Background()
	u, _ := st.CreateUser(ctx, "alice", "free", false)
	ev := putEvent(t, st, u, "job")
	first, second := manual(u, ev), manual(u, ev)
	if _, err := st.EnqueueMany(ctx, []*cronium.Execution{first, second}, nil); err != nil {
		t.Fatal(err)
	}
	claim := func(want int) store.Round {
		t.Helper()
		got, r, err := st.AdmitRound(ctx, "n1", time.Now(), 4, func(r store.Round) []string {
			if len(r.Heads) == 0 || want == 0 {
				return nil
			}
			return []string{r.Heads[0].ID}
		})
		if err != nil || len(got) != want {
			t.Fatalf("claimed %d (%v), want %d", len(got), err, want)
		}
		return r
	}
	claim(1)
	until := time.Now().Add(time.Hour)
	if ok, err := st.FinishWith(ctx, first.ID, "n1", cronium.Result{Outcome: cronium.Failed, EndedAt: time.Now(), Kept: &cronium.Kept{Until: until, Node: "n1"}}, "", store.FollowUps{}); err != nil || !ok {
		t.Fatalf("finish: %v %v", ok, err)
	}
	r := claim(0)
	if r.RunningByUser[u.ID] != 1 || r.NodeRunning != 1 {
		t.Errorf("with a kept sandbox: running %v on the store, %d on its node; want 1 and 1", r.RunningByUser, r.NodeRunning)
	}
	kept, err := st.KeptOn(ctx, "n1")
	if err != nil || len(kept) != 1 || kept[first.ID].UserID != u.ID || kept[first.ID].Until.UnixNano() != until.UnixNano() {
		t.Errorf("KeptOn: %v %v", kept, err)
	}
	if other, _ := st.KeptOn(ctx, "n2"); len(other) != 0 {
		t.Errorf("n2 keeps %v", other)
	}
	if err := st.Unkeep(ctx, first.ID); err != nil {
		t.Fatal(err)
	}
	if r := claim(1); r.RunningByUser[u.ID] != 0 {
		t.Errorf("after Unkeep: running %v", r.RunningByUser)
	}
	if kept, _ := st.KeptOn(ctx, "n1"); len(kept) != 0 {
		t.Errorf("KeptOn after Unkeep: %v", kept)
	}
}
