package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	cronium "github.com/cronium/executor"
)

// A backup taken while the server runs restores into a new data directory:
// events, variables, keys and secrets (which need the master keys) are all
// there.
func TestBackupAndRestore(t *testing.T) {
	t.Parallel()
	s := newServer(t, 1)
	key := s.user("alice", "free")
	s.env = append(s.env, "CRONIUM_TOKEN="+key)
	s.start()
	set := exec.Command(bin, "secret", "set", "token")
	set.Env, set.Stdin = s.env, strings.NewReader("restored-secret")
	if out, err := set.CombinedOutput(); err != nil {
		t.Fatalf("secret set: %v %s", err, out)
	}
	mustCLI(t, s, "var", "set", "answer", "42")
	ev := map[string]any{"name": "show", "language": "bash", "script": "cat /run/secrets/token", "secrets": []string{"token"}}
	if st := s.api(key, "PUT", "/v1/events/show", ev, nil); st != 201 {
		t.Fatalf("apply: %d", st)
	}
	backup := filepath.Join(t.TempDir(), "backup")
	out, err := s.cli("backup", backup)
	if err != nil || !strings.Contains(out, "cronium.db master.keys") {
		t.Fatalf("backup: %v %s", err, out)
	}
	if fi, err := os.Stat(filepath.Join(backup, "master.keys")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("backed-up keys: %v %v", err, fi)
	}
	if _, err := s.cli("backup", backup); err == nil {
		t.Error("a backup into an existing directory was accepted")
	}
	if _, err := s.cli("backup", backup+"-2", "--data-dir", filepath.Join(t.TempDir(), "typo")); err == nil || !strings.Contains(err.Error(), "there is no store to back up") {
		t.Errorf("a backup of a data directory that does not exist: %v", err)
	}
	s.stop()

	r := newServer(t, 1)
	for _, f := range []string{"cronium.db", "master.keys"} { // node-id: this test names its nodes
		if err := copyPrivate(filepath.Join(backup, f), filepath.Join(r.dir, f)); err != nil {
			t.Fatal(err)
		}
	}
	r.env = append(r.env, "CRONIUM_TOKEN="+key)
	r.start()
	if got := mustCLI(t, r, "var", "get", "answer"); strings.TrimSpace(got) != "42" {
		t.Errorf("restored variable: %q", got)
	}
	var x cronium.Execution
	r.api(key, "POST", "/v1/events/show/trigger", map[string]any{}, &x)
	for _, done := range r.waitAll(key, time.Minute) {
		if done.Outcome != cronium.Succeeded {
			t.Errorf("restored run: %s %s", done.Outcome, done.Error)
		}
	}
	if logs := mustCLI(t, r, "exec", "logs", x.ID); strings.TrimSpace(logs) != "***" { // the value, redacted
		t.Errorf("the restored secret was not delivered: %q", logs)
	}
}

// The data directory and the store are for their owner alone, even when
// the directory existed world-readable (cronium run's state directory).
func TestStoreIsPrivate(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "data")
	os.MkdirAll(dir, 0o755)
	s := newServer(t, 1)
	s.env = append(s.env, "CRONIUM_DATA_DIR="+dir)
	s.user("zed", "free")
	for path, want := range map[string]os.FileMode{dir: 0o700, filepath.Join(dir, "cronium.db"): 0o600} {
		fi, err := os.Stat(path)
		if err != nil || fi.Mode().Perm() != want {
			t.Errorf("%s: %v, mode %v; want %v", path, err, fi.Mode().Perm(), want)
		}
	}
}
