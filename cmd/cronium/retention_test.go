package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	cronium "github.com/cronium/executor"
)

// A default tier named in the configuration keeps the fields it leaves out;
// a new tier still needs them all; retention settings are checked.
func TestTierOverridesMergeWithDefaults(t *testing.T) {
	t.Parallel()
	load := func(yaml string) (serverConfig, error) {
		t.Helper()
		path := filepath.Join(t.TempDir(), "c.yaml")
		os.WriteFile(path, []byte(yaml), 0o600)
		return loadServerConfig(path)
	}
	c, err := load("tiers:\n  free: {memory: 1Gi, retention_runs: 20}\n")
	if err != nil {
		t.Fatal(err)
	}
	free, def := c.Tiers["free"], cronium.DefaultTiers()["free"]
	if free.Memory != 1<<30 || free.Concurrency != def.Concurrency || free.MaxTimeout != def.MaxTimeout || free.CPUBurst != def.CPUBurst {
		t.Errorf("free tier %+v: want memory 1Gi and the rest of %+v", free, def)
	}
	if days, runs := free.Retention(); days != 7 || runs != 20 {
		t.Errorf("free retention %d days %d runs, want 7 and 20", days, runs)
	}
	if c.Tiers["pro"].Concurrency != 10 {
		t.Errorf("pro tier changed: %+v", c.Tiers["pro"])
	}
	for yaml, want := range map[string]string{
		"tiers:\n  gold: {memory: 1Gi}\n":                 "tiers.gold.cpu_guaranteed",
		"tiers:\n  free: {retention_days: -1}\n":          `tiers.free.retention_days: "-1" must be 1-36500 days`,
		"tiers:\n  pro: {retention_runs: -5}\n":           `tiers.pro.retention_runs: "-5" must be 1-10000000 runs per event`,
		"tiers:\n  free: {memory: lots}\n":                "tiers.free",
		"tiers:\n  free: {colour: blue}\n":                "colour",
		"retention_interval: 0.5s\n":                      "retention_interval",
		"tiers:\n  enterprise: {retention_days: 40000}\n": "tiers.enterprise.retention_days",
	} {
		if _, err := load(yaml); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want an error naming %q", yaml, err, want)
		}
	}
}

// The server deletes finished executions past the tier's retention, with
// their logs, on its own: here retention_runs 2 keeps the newest two runs.
func TestRetentionPrunesOldExecutions(t *testing.T) {
	t.Parallel()
	cfg := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(cfg, []byte("tiers:\n  free: {retention_runs: 2}\n"), 0o600)
	s := newServer(t, 2)
	key := s.user("alice", "free")
	s.env = append(s.env, "CRONIUM_CONFIG="+cfg, "CRONIUM_RETENTION_INTERVAL=1s")
	s.start()
	if st := s.api(key, "PUT", "/v1/events/tick", map[string]any{"name": "tick", "language": "bash", "script": "echo tick"}, nil); st != 201 {
		t.Fatalf("apply: %d", st)
	}
	var ids []string
	for i := 0; i < 4; i++ {
		var x cronium.Execution
		s.api(key, "POST", "/v1/events/tick/trigger", map[string]any{}, &x)
		ids = append(ids, x.ID)
		s.waitAll(key, time.Minute)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		xs := s.executions(key, "")
		if len(xs) == 2 && xs[0].ID == ids[3] && xs[1].ID == ids[2] {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("executions after pruning: %v, want the newest two of %v\n%s", xs, ids, s.log)
		}
		time.Sleep(200 * time.Millisecond)
	}
	var logs struct {
		Chunks []any `json:"chunks"`
	}
	if st := s.api(key, "GET", "/v1/executions/"+ids[0]+"/logs", nil, &logs); st != 404 {
		t.Errorf("logs of a pruned execution: %d %v", st, logs)
	}
	if !strings.Contains(s.log.String(), "deleted executions past their tier's retention") {
		t.Errorf("the server did not say it pruned:\n%s", s.log)
	}
}
