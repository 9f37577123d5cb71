package dispatch

import (
	"context"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	cronium "github.com/cronium/executor"
	"github.com/cronium/executor/metrics"
	"github.com/cronium/executor/store"
)

// The metrics count every execution once, by the outcome the store
// recorded, with the CPU-seconds the records say; and their series stay
// bounded with 100 users and 1,000 events: no label names a user, an
// event or an execution. (The engine is scripted: what is tested is the
// dispatcher's bookkeeping; the engine's own usage is tested on Docker.)
func TestMetricsMatchTheRecordsAndStayBounded(t *testing.T) {
	st, eng, _, _ := setupAt(t)
	ctx := context.Background()
	m := metrics.New(metrics.Sources{Queue: func(ctx context.Context) (map[string]int64, map[string]int64, error) {
		return st.QueueDepth(ctx, time.Now())
	}})
	prices := cronium.Prices{CPUSecond: 0.00002, GiBSecond: 0.0000025, Execution: 0.000001}
	d, err := New(Config{Store: st, Engine: eng, Node: "test", Poll: 10 * time.Millisecond, Capacity: 16, Metrics: m, Prices: prices})
	if err != nil {
		t.Fatal(err)
	}
	mix := []cronium.Outcome{cronium.Succeeded, cronium.Succeeded, cronium.Failed, cronium.TimedOut, cronium.OOMKilled, cronium.OutputLimit, cronium.EngineError}
	var ids []string
	for u := range 100 {
		usr, err := st.CreateUser(ctx, fmt.Sprintf("user-%03d", u), "free", false)
		if err != nil {
			t.Fatal(err)
		}
		for e := range 10 {
			ev := cronium.Event{Name: fmt.Sprintf("event-%03d-%d", u, e), Language: []cronium.Language{cronium.Bash, cronium.Python, cronium.Node}[e%3],
				Script: string(mix[(u+e)%len(mix)])}
			if err := ev.Normalize(cronium.DefaultTiers()["free"]); err != nil {
				t.Fatal(err)
			}
			if _, err := st.PutEvent(ctx, usr.ID, &ev); err != nil {
				t.Fatal(err)
			}
			x := cronium.Execution{EventID: ev.ID, UserID: usr.ID, Trigger: cronium.TriggerAPI, Attempt: 1, QueuedAt: time.Now()}
			if _, err := st.Enqueue(ctx, &x, nil); err != nil {
				t.Fatal(err)
			}
			ids = append(ids, x.ID)
		}
	}
	for _, id := range ids[:10] { // cancelled before any node claims them
		if err := d.Cancel(ctx, id, "not needed"); err != nil {
			t.Fatal(err)
		}
	}
	start(t, d)
	deadline := time.Now().Add(60 * time.Second)
	for {
		counts, err := st.Counts(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if counts[cronium.StatusQueued]+counts[cronium.StatusRunning] == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not all executions ended in 60s: %v", counts)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The records.
	want := map[string]float64{}
	var cpu float64
	var cost int64
	for _, id := range ids {
		x, err := st.Execution(ctx, 0, id)
		if err != nil {
			t.Fatal(err)
		}
		if x.Result == nil {
			want["queued_cancelled"]++
			continue
		}
		want[string(x.Outcome)]++
		cpu += x.Result.Usage.CPUSeconds
		cost += x.Result.Usage.CostMicros
	}
	if want["queued_cancelled"] != 10 {
		t.Fatalf("%v executions ended without running, want the 10 cancelled", want["queued_cancelled"])
	}
	fams, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	var gotCPU float64
	series := 0
	for _, f := range fams {
		name := f.GetName()
		if !strings.HasPrefix(name, "cronium_") {
			continue // the Go runtime's and the process's own
		}
		for _, mt := range f.GetMetric() {
			series++
			if h := mt.GetHistogram(); h != nil {
				series += len(h.GetBucket()) + 1 // each bucket, +Inf, _sum and _count
			}
			for _, l := range mt.GetLabel() {
				if v := l.GetValue(); strings.Contains(v, "user-") || strings.Contains(v, "event-") || strings.Contains(v, "-") && len(v) > 20 {
					t.Errorf("%s has label %s=%q: names a user, event or execution", name, l.GetName(), v)
				}
			}
			switch name {
			case "cronium_executions_total":
				got[label(mt, "outcome")] += mt.GetCounter().GetValue()
			case "cronium_execution_cpu_seconds_total":
				gotCPU += mt.GetCounter().GetValue()
			case "cronium_executions_cancelled_queued_total":
				got["queued_cancelled"] += mt.GetCounter().GetValue()
			}
		}
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("metrics count %v %s, the records %v", got[k], k, v)
		}
	}
	if len(got) != len(want) {
		t.Errorf("metrics count outcomes %v, the records %v", got, want)
	}
	if math.Abs(gotCPU-cpu) > 1e-6*max(1, cpu) {
		t.Errorf("metrics sum %.9f CPU-seconds, the records %.9f", gotCPU, cpu)
	}
	// 3 languages x 1 strategy x 6 outcomes = 18 label sets, each with
	// three histograms of at most 17 series, plus the counters: about 970,
	// whatever the number of users and events.
	if series > 1000 {
		t.Errorf("%d cronium series for 100 users and 1,000 events: not bounded", series)
	}
	t.Logf("%d cronium series; %v; %.6f CPU-seconds", series, got, gotCPU)
	// The usage sums add up to the records' costs.
	rows, err := st.Usage(ctx, store.UsageFilter{By: store.ByDay})
	if err != nil {
		t.Fatal(err)
	}
	var sum int64
	for _, r := range rows {
		sum += r.CostMicros
	}
	if sum != cost || cost == 0 {
		t.Errorf("usage by day sums %d cost micros, the executions %d", sum, cost)
	}
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// A user past their tier's monthly budget waits, saying why (on_exceed
// queue), or has their queued executions refused (on_exceed refuse); a
// user of a tier without a budget is not held.
func TestBudgetHoldsOrRefuses(t *testing.T) {
	for _, mode := range []string{cronium.BudgetQueue, cronium.BudgetRefuse} {
		t.Run(mode, func(t *testing.T) {
			st, eng, _, _ := setupAt(t)
			ctx := context.Background()
			tiers := cronium.DefaultTiers()
			free := tiers["free"]
			free.Budget = cronium.Budget{CPUSeconds: 0.003, OnExceed: mode} // the first run uses 0.0022 s, the second 0.0032 s
			tiers["free"] = free
			d, err := New(Config{Store: st, Engine: eng, Node: "test", Poll: 10 * time.Millisecond, Tiers: tiers})
			if err != nil {
				t.Fatal(err)
			}
			start(t, d)
			ev, first := queue(t, st, cronium.Event{Name: "e", Language: cronium.Bash, Script: string(cronium.Succeeded)})
			finished(t, st, first.ID)
			second := enqueue(t, st, ev, first.UserID)
			finished(t, st, second.ID)
			third := enqueue(t, st, ev, first.UserID)
			d.Wake()
			time.Sleep(time.Second)
			x, err := st.Execution(ctx, 0, third.ID)
			if err != nil {
				t.Fatal(err)
			}
			if mode == cronium.BudgetQueue {
				if x.Status != cronium.StatusQueued || !strings.Contains(x.Reason, "monthly budget of 0.003 CPU-seconds is used up") {
					t.Errorf("over budget (queue): %s, %q; want queued, saying the budget is used up", x.Status, x.Reason)
				}
			} else if x.Status != cronium.StatusFinished || x.Outcome != cronium.Cancelled || !strings.HasPrefix(x.Error+x.Reason, "refused: the tier's monthly budget") {
				t.Errorf("over budget (refuse): %s %s, %q %q; want cancelled, refused for the budget", x.Status, x.Outcome, x.Error, x.Reason)
			}
			if n := eng.started(); n != 2 {
				t.Errorf("%d runs started, want 2 (none past the budget)", n)
			}
		})
	}
}

// enqueue queues one more execution of user's ev.
func enqueue(t *testing.T, st interface {
	Enqueue(context.Context, *cronium.Execution, *time.Time) (bool, error)
}, ev cronium.Event, user int64) cronium.Execution {
	t.Helper()
	x := cronium.Execution{EventID: ev.ID, UserID: user, Trigger: cronium.TriggerManual, Attempt: 1, QueuedAt: time.Now()}
	if _, err := st.Enqueue(context.Background(), &x, nil); err != nil {
		t.Fatal(err)
	}
	return x
}
