package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Every configuration error names the setting by its path and says what it
// wants, whatever the kind of the mistake.
func TestConfigCheckNamesTheSetting(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, c := range []struct{ yaml, want string }{
		{"request_timeout: 5 minutes\n", `request_timeout: "5 minutes" is not a duration: want a duration like 30s, 2m, 1h30m or plain seconds like 45`},
		{"shutdown_grace: -5s\n", `shutdown_grace: "-5s" must be more than zero`},
		{"pools:\n  reuse:\n    max_age: an hour\n", `pools.reuse.max_age: "an hour" is not a duration`},
		{"images:\n  unused_for: [1]\n", `images.unused_for: "[1]" is not a duration`},
		{"tiers:\n  pro: {cpu_guaranteed: 1, cpu_burst: 2, memory: 1Gi, concurrency: 3, max_timeout: 1 hour}\n", `tiers.pro.max_timeout: "1 hour" is not a duration`},
		{"log_limit: huge\n", `log_limit: "huge" is not a size: want a size like 512Mi`},
		{"capacity: lots\n", `capacity: want a whole number, got the string "lots"`},
		{"pools:\n  reuse:\n    max_runs: 1.5\n", "pools.reuse.max_runs: want a whole number, got 1.5"},
		{"pools:\n  reuse:\n    pause_idle: sometimes\n", `pools.reuse.pause_idle: want true or false, got the string "sometimes"`},
		{"network:\n  blocked_ports: [smtp]\n", `network.blocked_ports[0]: want a whole number, got the string "smtp"`},
		{"network:\n  upstream_dns: 192.0.2.53\n", `network.upstream_dns: want a list, got the string "192.0.2.53"`},
		{"Capacity: 3\n", `Capacity: is not a field: did you mean "capacity"?`},
		{"capacty: 3\n", `capacty: unknown field: did you mean "capacity"?`},
		{"tiers:\n  gold: {max_timeout: 10m}\n", "tiers.gold.cpu_guaranteed: is missing or 0: a new tier needs each of cpu_guaranteed, cpu_burst, memory, concurrency and max_timeout"},
		{"tiers:\n  gold: {cpu_guaranteed: 1, cpu_burst: 0.5, memory: 1Gi, concurrency: 3, max_timeout: 1h}\n", `tiers.gold.cpu_guaranteed: "1" must be more than 0 and at most cpu_burst (0.5)`},
		// The price table and budgets.
		{"prices:\n  cpu_second: cheap\n", `prices.cpu_second: want a number, got the string "cheap"`},
		{"prices:\n  cpu_seconds: 0.1\n", `prices.cpu_seconds: unknown field: did you mean "cpu_second"?`},
		{"prices:\n  gib_second: -0.5\n", `prices.gib_second: "-0.5" is not a price: want a number from 0 to 1e+06`},
		{"prices:\n  currency: euro cents\n", `prices.currency: "euro cents" is not a currency name`},
		{"tiers:\n  free:\n    budget: {cpu_seconds: -10}\n", `tiers.free.budget.cpu_seconds: "-10" is negative`},
		{"tiers:\n  free:\n    budget: {cost: -1}\n", `tiers.free.budget.cost: "-1" is negative`},
		{"tiers:\n  free:\n    budget: {cpu_seconds: 10, on_exceed: block}\n", `tiers.free.budget.on_exceed: "block" is not queue or refuse`},
		{"tiers:\n  free:\n    budget: {cost: 5}\n", `tiers.free.budget.cost: "5" needs a price table`},
		{"metrics:\n  token: short\n", `metrics.token: "(hidden)" is too short`},
		{"metrics:\n  token_file: /nonexistent/token\n", `metrics.token_file: "/nonexistent/token" cannot be read`},
	} {
		f := filepath.Join(dir, "c.yaml")
		if err := os.WriteFile(f, []byte(c.yaml), 0o644); err != nil {
			t.Fatal(err)
		}
		_, stderr, code := cronium_(t, "config", "check", "--config", f)
		if code == 0 || !strings.Contains(stderr, c.want) {
			t.Errorf("%q: exit %d, %q; want it to say %q", c.yaml, code, stderr, c.want)
		}
	}
}

// config check shows the metrics token masked, and the price table as set.
func TestConfigCheckMasksTheMetricsToken(t *testing.T) {
	t.Parallel()
	f := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(f, []byte("metrics:\n  token: s3cret-metrics-token-0123\nprices: {currency: EUR, cpu_second: 0.00002}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, stderr, code := cronium_(t, "config", "check", "--config", f)
	if code != 0 || strings.Contains(out, "s3cret") || !strings.Contains(out, "token: '***'") || !strings.Contains(out, "currency: EUR") {
		t.Errorf("config check: exit %d %s\n%s", code, stderr, out)
	}
}
