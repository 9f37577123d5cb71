package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
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
	var page struct {
		Items []pool.Stats `json:"items"`
	}
	if err != nil || json.Unmarshal([]byte(out), &page) != nil || len(page.Items) < 2 {
		t.Fatalf("pool list: %v %s", err, out)
	}
	for _, st := range page.Items {
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

func TestUserStrategyKeepsTheWorkspace(t *testing.T) {
	t.Parallel()
	s := newServer(t, 4)
	cfg := filepath.Join(s.dir, "cronium.yaml")
	os.WriteFile(cfg, []byte("pools:\n  user: {min: -1, max: 1, idle_timeout: 3s, max_runs: 100, max_age: 1h}\n  user_workspace: 16Mi\n"), 0o600)
	s.env = append(s.env, "CRONIUM_CONFIG="+cfg)
	alice := s.user("alice", "enterprise")
	bob := s.user("bob", "enterprise")
	s.start()
	script := `n=$(cat /workspace/counter 2>/dev/null || echo 0); n=$((n+1)); echo $n > /workspace/counter
echo "counter=$n tmp=$(ls -A /tmp | wc -l)"; touch /tmp/scratch
head -c 40M /dev/zero > /workspace/big 2>/dev/null || echo "quota enforced"; rm -f /workspace/big`
	for _, k := range []string{alice, bob} {
		s.api(k, "PUT", "/v1/events/counter", map[string]any{"language": "bash", "script": script}, nil)
	}
	run := func(key string) (cronium.Execution, string) {
		var x cronium.Execution
		s.api(key, "POST", "/v1/events/counter/trigger", nil, &x)
		s.waitAll(key, time.Minute)
		s.api(key, "GET", "/v1/executions/"+x.ID, nil, &x)
		logs, _ := s.cli("exec", "logs", x.ID, "--token", key)
		return x, logs
	}
	var containers []string
	for i := 1; i <= 3; i++ {
		x, logs := run(alice)
		if x.Strategy != cronium.StrategyUser || !strings.Contains(x.StrategyReason, "enterprise tier") {
			t.Fatalf("strategy %s (%s), want user for the enterprise tier", x.Strategy, x.StrategyReason)
		}
		want := fmt.Sprintf("counter=%d tmp=0", i)
		if !strings.Contains(logs, want) || !strings.Contains(logs, "quota enforced") {
			t.Errorf("run %d: %q, want %q and the 16Mi quota enforced", i, logs, want)
		}
		containers = append(containers, x.Result.Container)
	}
	if containers[0] != containers[1] || containers[1] != containers[2] {
		t.Errorf("alice's runs used containers %v, want her one dedicated sandbox", containers)
	}
	// Bob has his own workspace.
	if _, logs := run(bob); !strings.Contains(logs, "counter=1 ") {
		t.Errorf("bob's first run: %q, want his own fresh workspace", logs)
	}
	// Idle shutdown, then a new sandbox finds the workspace as it was.
	deadline := time.Now().Add(20 * time.Second)
	for {
		out, _ := exec.Command("docker", "ps", "-q", "--filter", "id="+containers[0]).Output()
		if strings.TrimSpace(string(out)) == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("alice's idle sandbox was not shut down")
		}
		time.Sleep(200 * time.Millisecond)
	}
	x, logs := run(alice)
	if x.Result.Container == containers[0] || !strings.Contains(logs, "counter=4 ") {
		t.Errorf("after the idle shutdown: container %.12s, %q; want a new sandbox and counter=4", x.Result.Container, logs)
	}
	// A stopped server leaves no workspace mounted (the next use mounts it again).
	s.stop()
	if mounts, _ := os.ReadFile("/proc/mounts"); strings.Contains(string(mounts), filepath.Join(s.dir, "ws")) {
		t.Errorf("workspaces still mounted after the server stopped:\n%s", mounts)
	}
	s.start()
	if _, logs := run(alice); !strings.Contains(logs, "counter=5 ") {
		t.Errorf("after a restart: %q, want the workspace back with counter=5", logs)
	}
}

func TestKillNineReattachesWarmExecutions(t *testing.T) {
	t.Parallel()
	s := newServer(t, 4)
	key := s.user("alice", "pro")
	s.start()
	script := `for i in 1 2 3 4 5 6 7 8; do echo "tick $i"; sleep 0.4; done; echo done`
	for _, st := range []string{"prewarmed", "reuse"} {
		if code := s.api(key, "PUT", "/v1/events/"+st, map[string]any{"language": "bash", "strategy": st, "script": script}, nil); code != 201 {
			t.Fatalf("create %s: %d", st, code)
		}
	}
	ids := map[string]string{}
	for _, st := range []string{"prewarmed", "reuse"} {
		var x cronium.Execution
		s.api(key, "POST", "/v1/events/"+st+"/trigger", nil, &x)
		ids[st] = x.ID
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		printing := 0
		for _, id := range ids {
			var x cronium.Execution
			s.api(key, "GET", "/v1/executions/"+id, nil, &x)
			if x.LogBytes > 0 && x.Sandbox != "" {
				printing++
			}
		}
		if printing == len(ids) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("warm executions never started:\n%s", s.log)
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.kill()
	time.Sleep(time.Second)
	s.start()
	for _, x := range s.waitAll(key, time.Minute) {
		var logs struct {
			Items []struct{ Data string } `json:"items"`
		}
		s.api(key, "GET", "/v1/executions/"+x.ID+"/logs", nil, &logs)
		var out strings.Builder
		for _, it := range logs.Items {
			out.WriteString(it.Data)
		}
		want := "tick 1\ntick 2\ntick 3\ntick 4\ntick 5\ntick 6\ntick 7\ntick 8\ndone\n"
		if x.Outcome != cronium.Succeeded || out.String() != want || x.Sandbox == "" {
			t.Errorf("%s (%s, sandbox %q): %s %s, logs %q", x.Event, x.Strategy, x.Sandbox, x.Outcome, x.Error, out.String())
		}
	}
	s.stop()
	assertNoContainers(t, s.node)
}
