package metrics

import (
	"context"
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	cronium "github.com/cronium/executor"
)

// Every expression of the example Grafana dashboard names metrics this
// registry exposes (once each kind of series exists).
func TestGrafanaDashboardNamesRealMetrics(t *testing.T) {
	m := New(Sources{
		Pools: func() []PoolStats { return []PoolStats{{Mode: "reuse", Idle: 1}} },
		Queue: func(context.Context) (map[string]int64, map[string]int64, error) {
			return map[string]int64{"free": 1}, map[string]int64{"free": 1}, nil
		},
		Fires:   func() (int64, int64) { return 1, 0 },
		Running: func() (int, int) { return 1, 4 },
	})
	m.Finished(Execution{Language: cronium.Bash, Strategy: "reuse", Pooled: true, PoolHit: true, Queue: time.Millisecond, Late: time.Millisecond,
		Result: cronium.Result{Outcome: cronium.EngineError, Error: "create container: boom", Limits: cronium.Limits{Memory: 64 << 20},
			Phases: cronium.Phases{Run: time.Second}, Usage: cronium.Usage{PeakMemory: 1 << 20, Network: &cronium.NetworkUsage{BytesIn: 1}}}})
	m.CancelledQueued()
	m.FireLate(0)
	fams, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, f := range fams {
		have[f.GetName()] = true
	}
	b, err := os.ReadFile("../docs/grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("the dashboard is not JSON: %v", err)
	}
	name := regexp.MustCompile(`cronium_[a-z_]+`)
	n := 0
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			for _, m := range name.FindAllString(tg.Expr, -1) {
				n++
				base := m
				for _, suffix := range []string{"_bucket", "_sum", "_count"} {
					base = strings.TrimSuffix(base, suffix)
				}
				if !have[base] && !have[m] {
					t.Errorf("panel %q uses %s, which is not a metric", p.Title, m)
				}
			}
		}
	}
	if n < 15 {
		t.Errorf("the dashboard names %d metrics: too few to be the example it claims", n)
	}
}

// Error kinds are a closed set whatever the message says.
func TestErrorKindIsClosed(t *testing.T) {
	for msg, want := range map[string]string{
		"lost: node restarted and the execution's sandbox is gone": "lost",
		"create container for execution x: no such image: y":       "image",
		"secret API_KEY: cipher: message authentication failed":    "secrets",
		"agent speaks protocol 5, host speaks 6":                   "agent",
		"something users typed: alice/nightly-report":              "other",
	} {
		if got := ErrorKind(msg); got != want {
			t.Errorf("ErrorKind(%q) = %s, want %s", msg, got, want)
		}
	}
	for _, msg := range []string{"", "x", "alice/event-1 said ✓", strings.Repeat("secret image start ", 100)} {
		if k := ErrorKind(msg); !slices.Contains(ErrorKinds, k) {
			t.Errorf("ErrorKind(%q) = %q, not one of %v", msg, k, ErrorKinds)
		}
	}
}

// BenchmarkFinished is what recording one execution costs (bench observe
// measures the whole, against throughput).
func BenchmarkFinished(b *testing.B) {
	m := New(Sources{})
	x := Execution{Language: cronium.Bash, Strategy: "reuse", Pooled: true, PoolHit: true, Queue: time.Millisecond, Late: -1,
		Result: cronium.Result{Outcome: cronium.Succeeded, Limits: cronium.Limits{Memory: 256 << 20}, Phases: cronium.Phases{Run: 40 * time.Millisecond},
			Usage: cronium.Usage{CPUSeconds: 0.01, PeakMemory: 8 << 20}}}
	for b.Loop() {
		m.Finished(x)
	}
}

// BenchmarkGather is what one scrape costs the server.
func BenchmarkGather(b *testing.B) {
	m := New(Sources{Pools: func() []PoolStats { return []PoolStats{{Mode: "reuse", Idle: 2}} }})
	for _, o := range cronium.Outcomes {
		for _, l := range []cronium.Language{cronium.Bash, cronium.Python, cronium.Node} {
			m.Finished(Execution{Language: l, Strategy: "reuse", Queue: time.Millisecond, Late: -1, Result: cronium.Result{Outcome: o}})
		}
	}
	for b.Loop() {
		if _, err := m.Registry().Gather(); err != nil {
			b.Fatal(err)
		}
	}
}
