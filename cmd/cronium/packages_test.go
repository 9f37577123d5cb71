package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	cronium "github.com/cronium/executor"
)

// An event declares a Debian package: apply builds it (or finds it built),
// the lock is on the event, the run has no network and uses the tool, and a
// failed build names the package and leaves the event as it was.
func TestServeEventWithPackages(t *testing.T) {
	t.Parallel()
	s, key := startAs(t, "free")
	f := filepath.Join(t.TempDir(), "pkg.yaml")
	os.WriteFile(f, []byte(`name: pkg
language: bash
script: |
  sqlite3 :memory: 'select 6*7'
packages:
  apt: [sqlite3]
`), 0o644)
	if out, err := s.cli("event", "apply", "-f", f); err != nil || !strings.Contains(out, "pkg applied") {
		t.Fatalf("apply: %v %s", err, out)
	}
	var ev cronium.Event
	if st := s.api(key, "GET", "/v1/events/pkg", nil, &ev); st != 200 || ev.PackageLock == nil || !strings.HasPrefix(ev.PackageLock.Image, "cronium/pkgs-bash:") {
		t.Fatalf("event %d %+v", st, ev.PackageLock)
	}
	// Applying again builds nothing and changes nothing.
	begin := time.Now()
	if out, err := s.cli("event", "apply", "-f", f); err != nil {
		t.Fatalf("second apply: %v %s", err, out)
	}
	t.Logf("second apply (CLI process, build check and PUT): %s", time.Since(begin))
	var again cronium.Event
	s.api(key, "GET", "/v1/events/pkg", nil, &again)
	if again.UpdatedAt != ev.UpdatedAt || again.PackageLock == nil || !reflect.DeepEqual(*again.PackageLock, *ev.PackageLock) {
		t.Errorf("second apply changed the event: %+v -> %+v", ev.PackageLock, again.PackageLock)
	}
	if out, err := s.cli("trigger", "pkg"); err != nil {
		t.Fatalf("trigger: %v %s", err, out)
	}
	xs := s.waitAll(key, 60*time.Second)
	if len(xs) != 1 || xs[0].Outcome != cronium.Succeeded || xs[0].Result == nil || xs[0].Result.Image != ev.PackageLock.Image {
		t.Fatalf("executions %+v\n%s", xs, s.log)
	}
	if logs, _ := s.cli("exec", "logs", xs[0].ID); !strings.Contains(logs, "42") {
		t.Errorf("logs %q", logs)
	}
	if out, err := s.cli("images", "list"); err != nil || !strings.Contains(out, ev.PackageLock.Image) || !strings.Contains(out, "sqlite3=") {
		t.Errorf("images list: %v\n%s", err, out)
	}
	// A package that does not exist: a clear error, and the event keeps its image.
	os.WriteFile(f, []byte(`name: pkg
language: bash
script: |
  sqlite3 :memory: 'select 6*7'
packages:
  apt: [sqlite3, cronium-no-such-package]
`), 0o644)
	out, err := s.cli("event", "apply", "-f", f)
	if err == nil || !strings.Contains(err.Error(), "packages.apt") || !strings.Contains(err.Error(), "cronium-no-such-package") || !strings.Contains(err.Error(), "Unable to locate package") {
		t.Errorf("a bad package applied: %v %s", err, out)
	}
	var after cronium.Event
	s.api(key, "GET", "/v1/events/pkg", nil, &after)
	if after.PackageLock == nil || !reflect.DeepEqual(*after.PackageLock, *ev.PackageLock) || len(after.Packages.Apt) != 1 {
		t.Errorf("a failed build changed the event: %+v %+v", after.Packages, after.PackageLock)
	}
	// Bad input is refused before any build, naming the field.
	var e map[string]any
	st := s.api(key, "PUT", "/v1/events/bad", map[string]any{"name": "bad", "language": "bash", "script": "true",
		"packages": map[string]any{"python": []string{"requests"}}}, &e)
	b, _ := json.Marshal(e)
	if st != 400 || !strings.Contains(string(b), "packages.python") {
		t.Errorf("python packages on a bash event: %d %s", st, b)
	}
}
