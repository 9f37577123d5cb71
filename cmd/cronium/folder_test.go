package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	cronium "github.com/cronium/executor"
)

// An event folder: event.yaml names the entry; a module and a data file
// travel with the script. Bad paths and sizes are refused naming files.
func TestServeEventFolder(t *testing.T) {
	t.Parallel()
	s, key := startAs(t, "free")
	dir := t.TempDir()
	write := func(p, content string) {
		os.MkdirAll(filepath.Dir(filepath.Join(dir, p)), 0o755)
		if err := os.WriteFile(filepath.Join(dir, p), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("event.yaml", "name: multi\nlanguage: python\nentry: main.py\n")
	write("main.py", "from lib import helper\nrows = open('data/rows.csv').read().split()\nprint(helper.greet(rows[1]), len(rows))\n")
	write("lib/helper.py", "def greet(n):\n    return 'hello ' + n\n")
	write("data/rows.csv", "name\nada\nlinus\n")
	write(".git/config", "not packed")
	if out, err := s.cli("event", "apply", "-f", dir); err != nil || !strings.Contains(out, "multi applied") {
		t.Fatalf("apply folder: %v %s", err, out)
	}
	var ev cronium.Event
	s.api(key, "GET", "/v1/events/multi", nil, &ev)
	if len(ev.Files) != 2 || string(ev.Files["lib/helper.py"]) == "" || ev.Files[".git/config"] != nil || !strings.Contains(ev.Script, "from lib import helper") {
		t.Fatalf("stored files %v script %q", keys(ev.Files), ev.Script)
	}
	if out, err := s.cli("trigger", "multi"); err != nil {
		t.Fatalf("trigger: %v %s", err, out)
	}
	xs := s.waitAll(key, 60*time.Second)
	if len(xs) != 1 || xs[0].Outcome != cronium.Succeeded {
		t.Fatalf("executions %+v\n%s", xs, s.log)
	}
	if logs, _ := s.cli("exec", "logs", xs[0].ID); !strings.Contains(logs, "hello ada 3") {
		t.Errorf("logs %q", logs)
	}
	// A symbolic link in the folder is refused by the CLI.
	os.Symlink("/etc/passwd", filepath.Join(dir, "passwd"))
	if _, err := s.cli("event", "apply", "-f", dir); err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Errorf("a folder with a symlink applied: %v", err)
	}
	// The API refuses paths that leave the folder, reserved names and sizes above the tier's limit.
	for _, c := range []struct {
		files map[string][]byte
		says  string
	}{
		{map[string][]byte{"../escape.py": []byte("x")}, "../escape.py"},
		{map[string][]byte{"/etc/cron.d/x": []byte("x")}, "not a relative path"},
		{map[string][]byte{"lib/.hidden": []byte("x")}, "not a relative path"},
		{map[string][]byte{"script.py": []byte("x")}, "the engine uses"},
		{map[string][]byte{"big.bin": make([]byte, 300<<10)}, "larger than the 256Ki limit"},
	} {
		var e map[string]any
		st := s.api(key, "PUT", "/v1/events/bad", map[string]any{"name": "bad", "language": "python", "script": "print(1)", "files": c.files}, &e)
		b, _ := json.Marshal(e)
		if st != 400 || !strings.Contains(string(b), `"field": "files"`) && !strings.Contains(string(b), `"field":"files"`) || !strings.Contains(string(b), c.says) {
			t.Errorf("files %v: %d %s, want 400 on field files saying %q", keys(c.files), st, b, c.says)
		}
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
