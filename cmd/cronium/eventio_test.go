package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// apply takes a directory and --dry-run; `event get -o yaml` re-applies
// unchanged; `event diff` says what applying a file would change.
func TestApplyDirDryRunDiffAndRoundTrip(t *testing.T) {
	t.Parallel()
	s := newServer(t, 1)
	s.env = append(s.env, "CRONIUM_TOKEN="+s.user("alice", "free"))
	s.start()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "a.yaml"), []byte("name: a\nlanguage: bash\nscript: echo a\nschedule: \"30 2 * * *\"\ntimezone: Europe/Berlin\nenv: {MODE: prod}\n"), 0o600)
	os.WriteFile(filepath.Join(dir, "b.yml"), []byte("name: b\nlanguage: python\nscript: print('b')\n"), 0o600)
	os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("not an event"), 0o600)

	out, err := s.cli("event", "apply", "-f", dir, "--dry-run")
	if err != nil || strings.Count(out, "is valid (dry run: nothing saved") != 2 {
		t.Fatalf("apply --dry-run: %v %s", err, out)
	}
	if list, _ := s.cli("event", "list"); strings.Contains(list, "bash") {
		t.Fatalf("a dry run saved events:\n%s", list)
	}
	if out, err := s.cli("event", "apply", "-f", dir); err != nil || strings.Count(out, "applied") != 2 {
		t.Fatalf("apply DIR: %v %s", err, out)
	}
	got, err := s.cli("event", "get", "a", "-o", "yaml")
	if err != nil || !strings.Contains(got, "schedule: 30 2 * * *") || !strings.Contains(got, "status:") {
		t.Fatalf("event get -o yaml: %v\n%s", err, got)
	}
	file := filepath.Join(t.TempDir(), "a.yaml")
	os.WriteFile(file, []byte(got), 0o600)
	if out, err := s.cli("event", "diff", "-f", file); err != nil || strings.TrimSpace(out) != "event a: unchanged" {
		t.Errorf("diff of get -o yaml: %v %s", err, out)
	}
	if out, err := s.cli("event", "apply", "-f", file); err != nil {
		t.Fatalf("re-apply of get -o yaml: %v %s", err, out)
	}
	again, _ := s.cli("event", "get", "a", "-o", "yaml")
	strip := func(y string) string {
		var keep []string
		for _, l := range strings.Split(y, "\n") {
			if !strings.HasPrefix(l, "updated_at:") && !strings.HasPrefix(l, "  ") && !strings.HasPrefix(l, "status:") {
				keep = append(keep, l)
			}
		}
		return strings.Join(keep, "\n")
	}
	if strip(again) != strip(got) {
		t.Errorf("re-applying changed the event:\n%s\n---\n%s", got, again)
	}
	os.WriteFile(file, []byte(strings.Replace(got, "schedule: 30 2 * * *", "schedule: 45 3 * * *", 1)), 0o600)
	cmd := exec.Command(bin, "event", "diff", "-f", file)
	cmd.Env = s.env
	diff, err := cmd.Output()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.Contains(string(diff), "-schedule: 30 2 * * *\n+schedule: 45 3 * * *\n") {
		t.Errorf("diff of a change: %v\n%s", err, diff)
	}
	if show, err := s.cli("event", "get", "a"); err != nil || !strings.Contains(show, "schedule:  30 2 * * * in Europe/Berlin: scheduled") {
		t.Errorf("event get: %v\n%s", err, show)
	}
}

// Every list prints the same JSON shape, {"items": [...]}, and -o yaml
// prints the same data as YAML.
func TestListsShareOneShape(t *testing.T) {
	t.Parallel()
	s := newServer(t, 1)
	out, err := s.cli("user", "create", "ops", "--admin")
	if err != nil {
		t.Fatal(err)
	}
	s.env = append(s.env, "CRONIUM_TOKEN="+strings.TrimSpace(out))
	s.start()
	mustCLI(t, s, "var", "set", "n", "1")
	for _, args := range [][]string{{"event", "list"}, {"exec", "list"}, {"var", "list"}, {"secret", "list"}, {"pool", "list"},
		{"user", "list"}, {"key", "list"}, {"audit"}, {"images", "list"}} {
		js, err := s.cli(append(args, "-o", "json")...)
		var page map[string]json.RawMessage
		if err != nil || json.Unmarshal([]byte(js), &page) != nil || !strings.HasPrefix(strings.TrimSpace(string(page["items"])), "[") {
			t.Errorf("%v -o json: %v, want {\"items\": [...]}: %s", args, err, js)
		}
		y, err := s.cli(append(args, "-o", "yaml")...)
		if err != nil || !strings.HasPrefix(y, "items:") {
			t.Errorf("%v -o yaml: %v %q", args, err, y)
		}
	}
	if v, err := s.cli("version", "-o", "json"); err != nil || !strings.Contains(v, `"version":`) {
		t.Errorf("version -o json: %v %s", err, v)
	}
	if _, stderr, err := s.run("event", "list", "-o", "xml"); err == nil || !strings.Contains(stderr, "want table, wide, json or yaml") {
		t.Errorf("-o xml: %v %s", err, stderr)
	}
}
