package main

import (
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	cronium "github.com/cronium/executor"
	"github.com/cronium/executor/api"
)

// scrape reads GET /metrics with token.
func scrape(t *testing.T, s *server, token string) (int, map[string]*dto.MetricFamily) {
	t.Helper()
	req, _ := http.NewRequest("GET", s.url+"/metrics", nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return resp.StatusCode, nil
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("/metrics is not the Prometheus text format: %v", err)
	}
	return 200, fams
}

// sumBy sums a counter family's values by one label ("" : the total).
func sumBy(f *dto.MetricFamily, label string) map[string]float64 {
	out := map[string]float64{}
	if f == nil {
		return out
	}
	for _, m := range f.GetMetric() {
		key := ""
		for _, l := range m.GetLabel() {
			if l.GetName() == label {
				key = l.GetValue()
			}
		}
		out[key] += m.GetCounter().GetValue()
	}
	return out
}

// /metrics, scraped during and after a mixed load of 200 real executions
// (succeeded, failed, timed out, OOM-killed, cancelled while running; cold,
// prewarmed and reuse), counts each outcome exactly as the executions'
// records do and sums their CPU-seconds within 1%; it needs its token; and
// the usage report by day adds up to the executions' own usage and cost.
func TestMetricsAndUsageMatchTheRecords(t *testing.T) {
	t.Parallel()
	s := newServer(t, 4)
	const token = "metrics-token-0123456789"
	cfg := filepath.Join(s.dir, "config.yaml")
	if err := os.WriteFile(cfg, []byte(`metrics: {token: `+token+`}
prices: {currency: EUR, cpu_second: 0.00002, gib_second: 0.0000025, network_gib: 0.09, execution: 0.000001}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	s.args = []string{"--config", cfg}
	admin := strings.TrimSpace(must(s.cli("user", "create", "ops", "--tier", "free", "--admin")))
	keys := []string{s.user("alice", "pro"), s.user("bob", "pro")}
	s.start()

	type kind struct {
		name, lang, strategy, script string
		extra                        map[string]any
		want                         cronium.Outcome
		n                            int
	}
	kinds := []kind{
		{"ok", "bash", "reuse", "echo ok; i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done", nil, cronium.Succeeded, 120},
		{"ok-cold", "bash", "cold", "echo ok", nil, cronium.Succeeded, 10},
		{"fail", "bash", "reuse", "echo failing >&2; exit 3", nil, cronium.Failed, 40},
		{"slow", "bash", "prewarmed", "sleep 30", map[string]any{"timeout": "1s"}, cronium.TimedOut, 10},
		{"oom", "python", "cold", "a = []\nwhile True:\n    a.append(bytearray(4 << 20))\n", map[string]any{"resources": map[string]any{"memory": "64Mi"}}, cronium.OOMKilled, 10},
		{"cancel", "bash", "reuse", "sleep 30", nil, cronium.Cancelled, 10},
	}
	for _, key := range keys {
		for _, k := range kinds {
			s.putEvent(key, k.name, k.lang, k.strategy, k.script, k.extra)
		}
	}
	if st, _ := scrape(t, s, ""); st != http.StatusUnauthorized {
		t.Errorf("/metrics without the token: %d, want 401", st)
	}
	if st, _ := scrape(t, s, "wrong"+token); st != http.StatusUnauthorized {
		t.Errorf("/metrics with a wrong token: %d, want 401", st)
	}
	// The load: each user triggers half of every kind, interleaved; the
	// sleepers are cancelled once they run.
	var wg sync.WaitGroup
	var mu sync.Mutex
	want := map[string]cronium.Outcome{}
	for u, key := range keys {
		wg.Go(func() {
			for i := 0; ; i++ {
				left := false
				for _, k := range kinds {
					if i >= k.n/len(keys) {
						continue
					}
					left = true
					var x cronium.Execution
					if st := s.api(key, "POST", "/v1/events/"+k.name+"/trigger", map[string]any{}, &x); st != 202 {
						t.Errorf("user %d: trigger %s: %d", u, k.name, st)
						return
					}
					mu.Lock()
					want[x.ID] = k.want
					mu.Unlock()
					if k.want == cronium.Cancelled {
						go func() {
							for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
								var got cronium.Execution
								s.api(key, "GET", "/v1/executions/"+x.ID, nil, &got)
								if got.Status == cronium.StatusRunning && got.Sandbox != "" {
									time.Sleep(300 * time.Millisecond)
									s.api(key, "POST", "/v1/executions/"+x.ID+"/cancel", map[string]any{"reason": "test"}, nil)
									return
								}
							}
						}()
					}
				}
				if !left {
					return
				}
			}
		})
	}
	wg.Wait()
	if len(want) != 200 {
		t.Fatalf("%d executions triggered, want 200", len(want))
	}
	if st, fams := scrape(t, s, token); st != 200 || fams["cronium_pool_sandboxes"] == nil || fams["cronium_queue_executions"] == nil {
		t.Errorf("/metrics during the load: %d, %d families", st, len(fams))
	}
	var xs []cronium.Execution
	for _, key := range keys {
		xs = append(xs, s.waitAll(key, 5*time.Minute)...)
	}
	// The records.
	outcomes := map[string]float64{}
	var cpu float64
	var cpuMicros, cost int64
	for _, x := range xs {
		if x.Outcome != want[x.ID] {
			t.Errorf("%s: %s %q, want %s", x.ID, x.Outcome, x.Error, want[x.ID])
		}
		outcomes[string(x.Outcome)]++
		if x.Result == nil {
			t.Fatalf("%s has no result", x.ID)
		}
		cpu += x.Result.Usage.CPUSeconds
		cpuMicros += int64(math.Round(x.Result.Usage.CPUSeconds * 1e6))
		cost += x.Result.Usage.CostMicros
		if x.Result.Usage.CostMicros <= 0 || x.Result.Usage.Currency != "EUR" {
			t.Errorf("%s cost %d %s, want a cost in EUR", x.ID, x.Result.Usage.CostMicros, x.Result.Usage.Currency)
		}
	}
	st, fams := scrape(t, s, token)
	if st != 200 {
		t.Fatalf("/metrics: %d", st)
	}
	got := sumBy(fams["cronium_executions_total"], "outcome")
	for o, n := range outcomes {
		if got[o] != n {
			t.Errorf("metrics count %v %s, the records %v", got[o], o, n)
		}
	}
	if len(got) != len(outcomes) {
		t.Errorf("metrics outcomes %v, records %v", got, outcomes)
	}
	gotCPU := sumBy(fams["cronium_execution_cpu_seconds_total"], "")[""]
	if cpu == 0 || math.Abs(gotCPU-cpu) > 0.01*cpu {
		t.Errorf("metrics sum %.6f CPU-seconds, the records %.6f", gotCPU, cpu)
	}
	hits := sumBy(fams["cronium_pool_runs_total"], "result")
	if hits["hit"] == 0 {
		t.Errorf("no pool hits counted: %v", hits)
	}
	t.Logf("outcomes %v; CPU %.3f s (metrics %.3f s); pool runs %v; cost %s EUR", outcomes, cpu, gotCPU, hits, cronium.FormatMicros(cost))

	// The report by day adds up to the executions exactly.
	var rep api.UsageReport
	if code := s.api(admin, "GET", "/v1/usage?by=day&since=2d", nil, &rep); code != 200 {
		t.Fatalf("usage: %d", code)
	}
	if rep.Total.Executions != int64(len(xs)) || rep.Total.CPUMicros != cpuMicros || rep.Total.CostMicros != cost || rep.Currency != "EUR" {
		t.Errorf("usage by day: %d executions, %d cpu µs, %d cost µ%s; the executions: %d, %d, %d",
			rep.Total.Executions, rep.Total.CPUMicros, rep.Total.CostMicros, rep.Currency, len(xs), cpuMicros, cost)
	}
	// A user sees their own only; the CLI shows the same total.
	var own api.UsageReport
	s.api(keys[0], "GET", "/v1/usage?by=user", nil, &own)
	if len(own.Items) != 1 || own.Items[0].User != "alice" || own.Total.Executions != 100 {
		t.Errorf("alice's usage by user: %+v", own.Items)
	}
	out, _, err := s.run("usage", "--by", "event", "--token", admin)
	if err != nil || !strings.Contains(out, "alice/ok") || !strings.Contains(out, "TOTAL") || !strings.Contains(out, cronium.FormatMicros(cost)) {
		t.Errorf("cronium usage --by event: %v\n%s", err, out)
	}
}

func must(s string, err error) string {
	if err != nil {
		panic(err)
	}
	return s
}
