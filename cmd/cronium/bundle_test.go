package main

import (
	"archive/tar"
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	cronium "github.com/cronium/executor"
)

// readBundle returns the files of a trace bundle by name.
func readBundle(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	out := map[string]string{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		out[filepath.Base(h.Name)] = string(b)
	}
}

// The trace bundle of an OOM-killed run holds its result, logs, the
// agent's trail, the usage timeline and the kernel's OOM report, and
// never a secret's value; another user cannot download it.
func TestTraceBundleOfAnOOMKill(t *testing.T) {
	t.Parallel()
	s, key := startAs(t, "pro")
	bob := s.user("bob", "pro")
	if st := s.api(key, "PUT", "/v1/secrets/API_KEY", map[string]any{"value": "sk-live-0123456789abcdef"}, nil); st != 200 && st != 201 && st != 204 {
		t.Fatalf("secret: %d", st)
	}
	script := "import sys, time\nprint('key is', open('/run/secrets/API_KEY').read())\nprint('allocating', file=sys.stderr)\na = []\ntime.sleep(2.5)\nwhile True:\n    a.append(bytearray(4 << 20))\n"
	s.putEvent(key, "bomb", "python", "cold", script, map[string]any{"secrets": []string{"API_KEY"}, "resources": map[string]any{"memory": "64Mi"}})
	var x cronium.Execution
	s.api(key, "POST", "/v1/events/bomb/trigger", map[string]any{}, &x)
	x = s.waitAll(key, 2*time.Minute)[0]
	if x.Outcome != cronium.OOMKilled {
		t.Fatalf("the bomb: %s %q", x.Outcome, x.Error)
	}
	file := filepath.Join(t.TempDir(), "trace.tar.gz")
	if out, err := s.cli("exec", "bundle", x.ID, "-o", file); err != nil || !strings.Contains(out, "wrote "+file) {
		t.Fatalf("exec bundle: %v %s", err, out)
	}
	files := readBundle(t, file)
	for name, want := range map[string]string{
		"README.txt":     "trace bundle",
		"execution.json": `"outcome": "oom_killed"`,
		"event.json":     `"API_KEY"`,
		"logs.txt":       "--- stderr ---\nallocating",
		"trail.txt":      "ended by signal 9",
		"timeline.tsv":   "elapsed_s",
		"oom.txt":        "",
	} {
		got, ok := files[name]
		if !ok || !strings.Contains(got, want) {
			t.Errorf("%s in the bundle: %v, want it to contain %q:\n%s", name, ok, want, got)
		}
	}
	// The engine's view while the container exists (it is being removed
	// as the run ends), else why not.
	if !strings.Contains(files["engine.txt"], "removed when the run ended") && !strings.Contains(files["engine.json"], `"Env"`) {
		t.Errorf("neither the engine's view nor why not: %q %q", files["engine.txt"], files["engine.json"])
	}
	if strings.Contains(files["engine.json"], "PYTHON") && !strings.Contains(files["engine.json"], "=***") {
		t.Errorf("the engine's view shows environment values:\n%s", files["engine.json"])
	}
	if o := files["oom.txt"]; !strings.Contains(strings.ToLower(o), "oom") && !strings.Contains(o, "Killed process") {
		t.Errorf("oom.txt is not the kernel's report:\n%s", o)
	}
	for name, body := range files {
		if strings.Contains(body, "sk-live-0123456789abcdef") {
			t.Errorf("%s holds the secret's value", name)
		}
	}
	if _, stderr, err := s.run("exec", "bundle", x.ID, "-o", filepath.Join(t.TempDir(), "b.tar.gz"), "--token", bob); err == nil || !strings.Contains(stderr, "no execution") && !strings.Contains(stderr, "not found") {
		t.Errorf("bob's bundle: %v %s", err, stderr)
	}
	if _, stderr, err := s.run("exec", "bundle", x.ID, "-o", file); err == nil || !strings.Contains(stderr, "never overwritten") {
		t.Errorf("a bundle over an existing file: %v %s", err, stderr)
	}
}
