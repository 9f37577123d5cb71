package main

import (
	"bytes"
	"errors"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"

	cronium "github.com/cronium/executor"
)

// A failed run of an event with debug.keep_failed keeps its sandbox: its
// owner opens a shell in it through a real pseudo-terminal, as the script
// user, sees the script's files, no network and no secrets, and leaves
// with the shell's exit code; the session is recorded on the execution.
// Another user gets 404; a run that succeeded was not kept; the sandbox
// is removed when its time is up.
func TestKeepFailedAndExecDebugThroughAPTY(t *testing.T) {
	t.Parallel()
	s, key := startAs(t, "pro")
	bob := s.user("bob", "pro")
	if st := s.api(key, "PUT", "/v1/secrets/TOKEN", map[string]any{"value": "hunter2-very-secret"}, nil); st != 200 && st != 201 && st != 204 {
		t.Fatalf("secret: %d", st)
	}
	s.putEvent(key, "broken", "bash", "", "echo clue-4417 > /workspace/clue.txt; echo tmpclue > /tmp/t.txt; test -s /run/secrets/TOKEN && exit 3",
		map[string]any{"secrets": []string{"TOKEN"}, "network": map[string]any{"mode": "egress"}, "debug": map[string]any{"keep_failed": "20s"}})
	s.putEvent(key, "fine", "bash", "", "echo fine", map[string]any{"debug": map[string]any{"keep_failed": "20s"}})
	var bad struct {
		Error struct{ Message string } `json:"error"`
	}
	if st := s.api(key, "PUT", "/v1/events/long", map[string]any{"name": "long", "language": "bash", "script": "x", "debug": map[string]any{"keep_failed": "5h"}}, &bad); st != 400 ||
		!strings.Contains(bad.Error.Message, "debug.keep_failed: \"5h0m0s\" is more than the pro tier allows (1h0m0s)") {
		t.Errorf("keep_failed above the tier's maximum: %d %q", st, bad.Error.Message)
	}
	var x, ok cronium.Execution
	s.api(key, "POST", "/v1/events/broken/trigger", map[string]any{}, &x)
	s.api(key, "POST", "/v1/events/fine/trigger", map[string]any{}, &ok)
	byID := map[string]cronium.Execution{}
	for _, e := range s.waitAll(key, 2*time.Minute) {
		byID[e.ID] = e
	}
	x = byID[x.ID]
	if x.Outcome != cronium.Failed || x.Result == nil || x.Result.Kept == nil || x.Strategy != cronium.StrategyCold {
		t.Fatalf("the failed run: %s %s, strategy %s, result %+v", x.Outcome, x.Error, x.Strategy, x.Result)
	}

	// The owner's shell, on a pseudo-terminal.
	cmd := exec.Command(bin, "exec", "debug", x.ID)
	cmd.Env = s.env
	ptmx, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 30, Cols: 100})
	if err != nil {
		t.Fatal(err)
	}
	defer ptmx.Close()
	var mu sync.Mutex
	var transcript bytes.Buffer
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		buf := make([]byte, 4096)
		for {
			n, err := ptmx.Read(buf)
			mu.Lock()
			transcript.Write(buf[:n])
			mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	waitFor := func(what string) {
		t.Helper()
		for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			mu.Lock()
			has := strings.Contains(transcript.String(), what)
			mu.Unlock()
			if has {
				return
			}
		}
		mu.Lock()
		defer mu.Unlock()
		t.Fatalf("no %q in the debug session:\n%s", what, transcript.String())
	}
	waitFor("$ ")
	io.WriteString(ptmx, "cat /workspace/clue.txt /tmp/t.txt; echo uid=$(id -u); echo secrets=$(ls -A /run/secrets | wc -l); echo env=$(env | grep -c hunter2); echo links=$(ls /sys/class/net | tr '\\n' ,); stty size; exit 7\n")
	errc := make(chan error, 1)
	go func() { errc <- cmd.Wait() }()
	var werr error
	select {
	case werr = <-errc:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("exec debug did not end after exit 7")
	}
	<-readDone
	out := transcript.String()
	var ee *exec.ExitError
	if !errors.As(werr, &ee) || ee.ExitCode() != 7 {
		t.Errorf("exec debug exited %v, want the shell's 7", werr)
	}
	for _, want := range []string{"clue-4417", "tmpclue", "uid=65534", "secrets=0", "env=0", "links=lo,", "30 100"} {
		if !strings.Contains(out, want) {
			t.Errorf("the debug session did not show %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "hunter2-very-secret") {
		t.Errorf("the secret's value reached the debug session:\n%s", out)
	}
	// Recorded on the execution.
	if got, err := s.cli("exec", "get", x.ID); err != nil || !strings.Contains(got, "debugged:") || !strings.Contains(got, "exit 7") || !strings.Contains(got, "kept:") {
		t.Errorf("exec get after the session: %v\n%s", err, got)
	}
	// Its trace bundle has the engine's view of the kept (frozen) sandbox.
	file := filepath.Join(t.TempDir(), "kept.tar.gz")
	if _, err := s.cli("exec", "bundle", x.ID, "-o", file); err != nil {
		t.Fatal(err)
	}
	if b := readBundle(t, file); !strings.Contains(b["engine.json"], `"Paused": true`) || strings.Contains(b["engine.json"], "hunter2") {
		t.Errorf("the kept sandbox's bundle: engine.json %q, engine.txt %q", b["engine.json"], b["engine.txt"])
	}
	// Not for another user (404, as if it did not exist), nor for a run that was not kept.
	if _, stderr, err := s.run("exec", "debug", x.ID, "--token", bob); err == nil || !strings.Contains(stderr, "no execution") && !strings.Contains(stderr, "not found") {
		t.Errorf("bob's exec debug: %v %s", err, stderr)
	}
	if _, stderr, err := s.run("exec", "debug", ok.ID); err == nil || !strings.Contains(stderr, "was not kept (it ended succeeded") {
		t.Errorf("exec debug of a run that succeeded: %v %s", err, stderr)
	}
	// Removed when its time is up.
	time.Sleep(time.Until(x.Result.Kept.Until) + 2*time.Second)
	if out, err := exec.Command("docker", "inspect", x.Result.Container).CombinedOutput(); err == nil {
		t.Errorf("the kept sandbox outlived its time: %s", out)
	}
	if _, stderr, err := s.run("exec", "debug", x.ID); err == nil || !strings.Contains(stderr, "was kept until") {
		t.Errorf("exec debug after its time: %v %s", err, stderr)
	}
}
