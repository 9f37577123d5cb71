package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	cronium "github.com/cronium/executor"
	"github.com/cronium/executor/pool"
)

func TestFrequentEventIsServedWarm(t *testing.T) {
	t.Parallel()
	s := newServer(t, 4)
	key := s.user("alice", "pro")
	s.env = append(s.env, "CRONIUM_TOKEN="+key)
	s.start()
	s.api(key, "PUT", "/v1/events/every-second", map[string]any{"language": "bash", "schedule": "@every 1s", "concurrency": "forbid",
		"script": `echo "run in $(cat /proc/sys/kernel/random/boot_id | head -c 0)$(hostname)"; touch /tmp/mark-$RANDOM; ls /tmp | wc -l`}, nil)
	s.api(key, "PUT", "/v1/events/isolated", map[string]any{"language": "bash", "schedule": "@every 1s", "requires_isolation": true, "concurrency": "forbid",
		"script": `echo isolated`}, nil)
	s.api(key, "PUT", "/v1/events/rare", map[string]any{"language": "bash", "script": `echo rare`}, nil)
	s.api(key, "POST", "/v1/events/rare/trigger", nil, nil)
	deadline := time.Now().Add(45 * time.Second)
	var reused []cronium.Execution
	for time.Now().Before(deadline) {
		reused = reused[:0]
		for _, x := range s.executions(key, "event=every-second&status=finished") {
			if x.Outcome == cronium.Succeeded {
				reused = append(reused, x)
			}
		}
		if len(reused) >= 4 {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if len(reused) < 4 {
		t.Fatalf("only %d runs of the every-second event in 45s:\n%s", len(reused), s.log)
	}
	s.api(key, "POST", "/v1/events/every-second/pause", nil, nil)
	s.api(key, "POST", "/v1/events/isolated/pause", nil, nil)
	xs := s.waitAll(key, time.Minute)
	containers := map[string]bool{}
	for _, x := range xs {
		switch x.Event {
		case "every-second":
			if x.Strategy != cronium.StrategyReuse || !strings.Contains(x.StrategyReason, "fires 60 times a minute") {
				t.Errorf("every-second: strategy %s (%s), want reuse because it fires 60 times a minute", x.Strategy, x.StrategyReason)
			}
			if x.Result != nil {
				containers[x.Result.Container] = true
			}
		case "isolated":
			if x.Strategy != cronium.StrategyPrewarmed || !strings.Contains(x.StrategyReason, "requires isolation") {
				t.Errorf("isolated: strategy %s (%s), want prewarmed because it requires isolation", x.Strategy, x.StrategyReason)
			}
		case "rare":
			if x.Strategy != cronium.StrategyCold || !strings.Contains(x.StrategyReason, "default") {
				t.Errorf("rare: strategy %s (%s), want the default (cold)", x.Strategy, x.StrategyReason)
			}
		}
	}
	if len(containers) >= len(reused) {
		t.Errorf("%d runs used %d containers: nothing was reused", len(reused), len(containers))
	}
	// Each reused run still saw a clean /tmp: exactly its own mark.
	for _, x := range reused {
		logs, _ := s.cli("exec", "logs", x.ID)
		if !strings.HasSuffix(strings.TrimSpace(logs), "\n1") {
			t.Errorf("execution %s saw leftovers in /tmp: %q", x.ID, logs)
		}
	}
	get, _ := s.cli("exec", "get", reused[0].ID)
	if !strings.Contains(get, "strategy:  reuse (fires 60 times a minute") {
		t.Errorf("exec get does not say why:\n%s", get)
	}
	out, err := s.cli("pool", "list", "-o", "json")
	var stats []pool.Stats
	if err != nil || json.Unmarshal([]byte(out), &stats) != nil || len(stats) < 2 {
		t.Fatalf("pool list: %v %s", err, out)
	}
	for _, st := range stats {
		if st.Size > st.Max {
			t.Errorf("pool %s has %d sandboxes, above its max %d", st.Name, st.Size, st.Max)
		}
		if strings.HasPrefix(st.Name, "reuse/") && st.Hits == 0 {
			t.Errorf("reuse pool %s never hit: %+v", st.Name, st)
		}
	}
	table, _ := s.cli("pool", "list")
	if !strings.Contains(table, "HITS") || !strings.Contains(table, "reuse/") {
		t.Errorf("pool list table:\n%s", table)
	}
}
