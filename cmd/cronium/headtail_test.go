package main

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
	"time"

	cronium "github.com/cronium/executor"
)

// A run printing 12 MB in a real sandbox keeps its first and last lines.
func TestTwelveMegabytesKeepTheirLastLines(t *testing.T) {
	t.Parallel()
	s := newServer(t, 1)
	key := s.user("alice", "free")
	s.env = append(s.env, "CRONIUM_TOKEN="+key)
	s.start()
	ev := map[string]any{"name": "loud", "language": "bash", "script": "seq 1 1600000; echo the-very-end"}
	if st := s.api(key, "PUT", "/v1/events/loud", ev, nil); st != 201 {
		t.Fatalf("apply: %d", st)
	}
	var x cronium.Execution
	s.api(key, "POST", "/v1/events/loud/trigger", map[string]any{}, &x)
	for _, done := range s.waitAll(key, 2*time.Minute) {
		if done.Outcome != cronium.Succeeded || !done.LogTruncated || done.LogBytes > 1<<20 {
			t.Errorf("execution: %s, truncated %v, %d bytes stored; want succeeded, truncated, at most 1Mi", done.Outcome, done.LogTruncated, done.LogBytes)
		}
	}
	logs, err := s.cli("exec", "logs", x.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(logs, "1\n2\n3\n") || !strings.HasSuffix(logs, "1599999\n1600000\nthe-very-end\n") || !strings.Contains(logs, "[cronium] log truncated: ") {
		t.Errorf("logs: head %q ... tail %q", logs[:min(40, len(logs))], logs[max(0, len(logs)-60):])
	}
}

// exec logs --tail N prints the last N lines, of both streams.
func TestExecLogsTail(t *testing.T) {
	t.Parallel()
	s := newServer(t, 1)
	s.env = append(s.env, "CRONIUM_TOKEN="+s.user("alice", "free"))
	s.start()
	cmd := exec.Command(bin, "event", "apply", "-f", "-")
	cmd.Env = s.env
	cmd.Stdin = strings.NewReader("name: lines\nlanguage: bash\nscript: 'for i in $(seq 1 5000); do echo line $i; done; sleep 0.3; echo last-err >&2'\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("apply: %v %s", err, out)
	}
	out, err := s.cli("trigger", "lines", "--wait", "-o", "json")
	var x cronium.Execution
	if err != nil || json.Unmarshal([]byte(out), &x) != nil {
		t.Fatalf("trigger: %v %s", err, out)
	}
	stdout, stderr, err := s.run("exec", "logs", x.ID, "--tail", "3")
	if err != nil || stdout != "line 4999\nline 5000\n" || stderr != "last-err\n" {
		t.Errorf("--tail 3: %v stdout %q stderr %q", err, stdout, stderr)
	}
	if _, _, err := s.run("exec", "logs", x.ID, "--tail", "-1"); err == nil {
		t.Error("--tail -1 was accepted")
	}
	stamped, _, err := s.run("exec", "logs", x.ID, "--tail", "3", "--timestamps") // stdout: its last two lines
	lines := strings.Split(strings.TrimSuffix(stamped, "\n"), "\n")
	if err != nil || len(lines) != 2 || !strings.HasSuffix(lines[1], " line 5000") {
		t.Fatalf("--timestamps: %v %q", err, stamped)
	}
	at, err := time.Parse("2006-01-02T15:04:05.000Z07:00", strings.Fields(lines[1])[0])
	if err != nil || time.Since(at) > 5*time.Minute || time.Since(at) < 0 {
		t.Errorf("--timestamps: stamp %q: %v", lines[1], err)
	}
	if out, _, err := s.run("exec", "logs", x.ID, "--since", "1h"); err != nil || !strings.HasPrefix(out, "line 1\n") {
		t.Errorf("--since 1h: %v %q", err, out[:min(20, len(out))])
	}
	time.Sleep(1100 * time.Millisecond)
	if out, stderr, err := s.run("exec", "logs", x.ID, "--since", "1s"); err != nil || out != "" || stderr != "" {
		t.Errorf("--since 1s, a second after the run: %v %q %q", err, out, stderr)
	}
}
