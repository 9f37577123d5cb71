package api_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	cronium "github.com/cronium/executor"
	"github.com/cronium/executor/store"
)

// Past a refusing budget, a trigger answers 403 budget_exceeded with the
// reason; /v1/usage shows a user their own usage only, and refuses bad
// groupings and days naming the field.
func TestBudgetRefusesTriggersAndUsageIsOwn(t *testing.T) {
	tiers := cronium.DefaultTiers()
	free := tiers["free"]
	free.Budget = cronium.Budget{CPUSeconds: 1, OnExceed: cronium.BudgetRefuse}
	tiers["free"] = free
	e := setupTiers(t, tiers)
	ctx := context.Background()
	if st, _ := e.call(t, e.alice, "PUT", "/v1/events/job", okEvent); st != 201 && st != 200 {
		t.Fatalf("apply: %d", st)
	}
	if st, _ := e.call(t, e.alice, "POST", "/v1/events/job/trigger", nil); st != http.StatusAccepted {
		t.Fatalf("trigger under the budget: %d", st)
	}
	// The run used 2 CPU-seconds: over the 1 the free tier allows a month.
	xs, err := e.store.Executions(ctx, store.ExecutionFilter{})
	if err != nil || len(xs) != 1 {
		t.Fatalf("executions: %v %v", xs, err)
	}
	if ok, err := e.store.Finish(ctx, xs[0].ID, cronium.Result{Outcome: cronium.Succeeded, EndedAt: time.Now(), Usage: cronium.Usage{CPUSeconds: 2}}, ""); err != nil || !ok {
		t.Fatalf("finish: %v %v", ok, err)
	}
	st, body := e.call(t, e.alice, "POST", "/v1/events/job/trigger", nil)
	code, _, msg := errOf(body)
	if st != http.StatusForbidden || code != "budget_exceeded" || !strings.Contains(msg, "monthly budget of 1 CPU-seconds is used up (2 used)") {
		t.Errorf("trigger past the budget: %d %s %q", st, code, msg)
	}
	// bob (pro, no budget) is not held, and sees none of alice's usage.
	if st, _ := e.call(t, e.bob, "PUT", "/v1/events/job", okEvent); st != 201 && st != 200 {
		t.Fatalf("bob's apply: %d", st)
	}
	if st, _ := e.call(t, e.bob, "POST", "/v1/events/job/trigger", nil); st != http.StatusAccepted {
		t.Errorf("bob's trigger: %d", st)
	}
	_, rep := e.call(t, e.bob, "GET", "/v1/usage?by=user", nil)
	if items, _ := rep["items"].([]any); len(items) != 0 {
		t.Errorf("bob sees usage %v", rep["items"])
	}
	_, rep = e.call(t, e.alice, "GET", "/v1/usage?by=event", nil)
	if total, _ := rep["total"].(map[string]any); fmt.Sprint(total["cpu_us"]) != "2e+06" {
		t.Errorf("alice's usage: %v", rep)
	}
	for q, want := range map[string]string{"by=week": "by", "since=yesterday": "since", "since=2026-12-02&until=2026-12-01": "until"} {
		st, body := e.call(t, e.alice, "GET", "/v1/usage?"+q, nil)
		if _, field, _ := errOf(body); st != 400 || field != want {
			t.Errorf("usage?%s: %d %v, want 400 naming %s", q, st, body, want)
		}
	}
}
