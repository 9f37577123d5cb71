package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	cronium "github.com/cronium/executor"
	"github.com/cronium/executor/internal/testenv"
)

// server is a `cronium serve` process under test, on its own data dir, port and node id.
type server struct {
	t       testing.TB
	dir     string
	url     string
	node    string
	cmd     *exec.Cmd
	log     *bytes.Buffer
	env     []string
	args    []string // after "serve"
	stopped bool
}

func freePort(t testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func newServer(t testing.TB, capacity int) *server {
	t.Helper()
	dir, err := os.MkdirTemp("", "crs")
	if err != nil {
		t.Fatal(err)
	}
	addr := freePort(t)
	s := &server{t: t, dir: dir, url: "http://" + addr, node: "test-" + filepath.Base(dir)}
	s.env = append(os.Environ(), "CRONIUM_DATA_DIR="+dir, "CRONIUM_LISTEN="+addr, "CRONIUM_NODE_ID="+s.node,
		fmt.Sprintf("CRONIUM_CAPACITY=%d", capacity), "CRONIUM_SERVER="+s.url, "CRONIUM_SHUTDOWN_GRACE=20s")
	t.Cleanup(func() {
		s.stop()
		// Sandboxes a killed or stopped server left running, or that the
		// engine could not remove, go with the test, failed or not.
		if err := testenv.RemoveContainers(s.node); err != nil {
			t.Log(err)
		}
		// Persistent user workspaces are file systems mounted under the data dir.
		mounts, _ := filepath.Glob(filepath.Join(dir, "ws", "*"))
		for _, m := range mounts {
			if !strings.HasSuffix(m, ".img") {
				exec.Command("umount", m).Run()
			}
		}
		os.RemoveAll(dir)
	})
	return s
}

func (s *server) start() {
	s.t.Helper()
	s.log = &bytes.Buffer{}
	s.cmd = exec.Command(bin, append([]string{"serve"}, s.args...)...)
	s.cmd.Env = s.env
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	if err := s.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	s.stopped = false
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(s.url + "/v1/health"); err == nil {
			resp.Body.Close()
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.t.Fatalf("server did not start:\n%s", s.log)
}

// stop ends the server with SIGTERM and waits.
func (s *server) stop() {
	if s.cmd == nil || s.stopped {
		return
	}
	s.stopped = true
	s.cmd.Process.Signal(syscall.SIGTERM)
	s.cmd.Wait()
}

// kill ends the server with SIGKILL: no shutdown at all.
func (s *server) kill() {
	s.stopped = true
	s.cmd.Process.Signal(syscall.SIGKILL)
	s.cmd.Wait()
}

// cli runs a cronium command against this server.
func (s *server) cli(args ...string) (string, error) {
	out, _, err := s.run(args...)
	return out, err
}

// run runs a cronium command against this server; a failure's error
// holds its stderr.
func (s *server) run(args ...string) (stdout, stderr string, err error) {
	cmd := exec.Command(bin, args...)
	cmd.Env = s.env
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), errb.String(), fmt.Errorf("cronium %s: %v: %s", strings.Join(args, " "), err, errb.String())
	}
	return out.String(), errb.String(), nil
}

func (s *server) user(name, tier string) string {
	s.t.Helper()
	key, err := s.cli("user", "create", name, "--tier", tier)
	if err != nil {
		s.t.Fatal(err)
	}
	return strings.TrimSpace(key)
}

func (s *server) api(key, method, path string, body, out any) int {
	s.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, s.url+path, rd)
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	if out != nil {
		json.NewDecoder(resp.Body).Decode(out)
	}
	return resp.StatusCode
}

// putEvent saves key's user's event name, with extra fields added to the body.
func (s *server) putEvent(key, name, lang, strategy, script string, extra map[string]any) {
	s.t.Helper()
	body := map[string]any{"name": name, "language": lang, "strategy": strategy, "script": script}
	for f, v := range extra {
		body[f] = v
	}
	if st := s.api(key, "PUT", "/v1/events/"+name, body, nil); st != 200 && st != 201 {
		s.t.Fatalf("apply %s: %d", name, st)
	}
}

func (s *server) executions(key, query string) []cronium.Execution {
	s.t.Helper()
	var page struct {
		Items []cronium.Execution `json:"items"`
	}
	if st := s.api(key, "GET", "/v1/executions?limit=1000&"+query, nil, &page); st != 200 {
		s.t.Fatalf("list executions: %d", st)
	}
	return page.Items
}

// waitAll waits until no execution of key's user is queued or running.
func (s *server) waitAll(key string, timeout time.Duration) []cronium.Execution {
	s.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		xs := s.executions(key, "")
		done := true
		for _, x := range xs {
			if x.Status != cronium.StatusFinished {
				done = false
			}
		}
		if done {
			return xs
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("executions still not finished after %s:\n%s", timeout, s.log)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestServeRunsScheduledEventAndCLIShowsIt(t *testing.T) {
	t.Parallel()
	s := newServer(t, 4)
	key := s.user("alice", "free")
	s.env = append(s.env, "CRONIUM_TOKEN="+key)
	s.start()
	if out, err := s.cli("event", "apply", "-f", "../../examples/heartbeat.yaml"); err != nil || !strings.Contains(out, "heartbeat applied") {
		t.Fatalf("apply: %q %v", out, err)
	}
	// Applying again changes nothing.
	if _, err := s.cli("event", "apply", "-f", "../../examples/heartbeat.yaml"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	var done []cronium.Execution
	for len(done) < 2 && time.Now().Before(deadline) {
		time.Sleep(500 * time.Millisecond)
		done = nil
		for _, x := range s.executions(key, "status=finished") {
			if x.Trigger == cronium.TriggerSchedule && x.Outcome == cronium.Succeeded {
				done = append(done, x)
			}
		}
	}
	if len(done) < 2 {
		t.Fatalf("got %d succeeded scheduled executions in 30s, want at least 2:\n%s", len(done), s.log)
	}
	if d := done[0].ScheduledAt.Sub(*done[1].ScheduledAt); d != 5*time.Second {
		t.Errorf("consecutive fires %s apart, want 5s", d)
	}
	table, err := s.cli("exec", "list")
	if err != nil || !strings.Contains(table, "heartbeat") || !strings.Contains(table, "succeeded") {
		t.Errorf("exec list: %v\n%s", err, table)
	}
	logs, err := s.cli("exec", "logs", done[0].ID)
	if err != nil || !strings.Contains(logs, "heartbeat at") || !strings.Contains(logs, "uid 65534") {
		t.Errorf("exec logs: %v %q", err, logs)
	}
	get, err := s.cli("exec", "get", done[0].ID)
	if err != nil || !strings.Contains(get, "succeeded") || !strings.Contains(get, "peak memory") {
		t.Errorf("exec get: %v %q", err, get)
	}
	follow, err := s.cli("exec", "logs", "-f", done[0].ID)
	if err != nil || strings.Count(follow, "heartbeat at") != 1 {
		t.Errorf("exec logs -f of a finished execution: %v %q", err, follow)
	}
	if out, err := s.cli("event", "pause", "heartbeat"); err != nil || !strings.Contains(out, "enabled false") {
		t.Errorf("pause: %v %q", err, out)
	}
}

func TestFairnessAndTierConcurrency(t *testing.T) {
	t.Parallel()
	s := newServer(t, 4)
	a := s.user("a", "free") // free: 2 concurrent executions
	b := s.user("b", "free")
	s.start()
	ev := map[string]any{"language": "bash", "script": "sleep 0.3; echo done", "timeout": 30}
	for _, k := range []string{a, b} {
		if st := s.api(k, "PUT", "/v1/events/work", ev, nil); st != 201 {
			t.Fatalf("create event: %d", st)
		}
	}
	for i := 0; i < 50; i++ {
		if st := s.api(a, "POST", "/v1/events/work/trigger", nil, nil); st != 202 {
			t.Fatalf("trigger: %d", st)
		}
	}
	if st := s.api(b, "POST", "/v1/events/work/trigger", nil, nil); st != 202 {
		t.Fatalf("trigger: %d", st)
	}
	// While A's backlog waits, its executions say why.
	time.Sleep(time.Second)
	var waiting cronium.Execution
	for _, x := range s.executions(a, "status=queued") {
		waiting = x
	}
	if !strings.Contains(waiting.Reason, "2 of 2 concurrent executions for your tier (free) are running") {
		t.Errorf("queued reason %q", waiting.Reason)
	}
	as := s.waitAll(a, 3*time.Minute)
	bs := s.waitAll(b, time.Minute)
	if len(as) != 50 || len(bs) != 1 {
		t.Fatalf("got %d and %d executions, want 50 and 1", len(as), len(bs))
	}
	var lastA time.Time
	type edge struct {
		t     time.Time
		delta int
	}
	var edges []edge
	for _, x := range as {
		if x.Outcome != cronium.Succeeded {
			t.Errorf("A's execution %s: %s %s", x.ID, x.Outcome, x.Error)
			continue
		}
		if x.StartedAt.After(lastA) {
			lastA = *x.StartedAt
		}
		edges = append(edges, edge{*x.StartedAt, 1}, edge{*x.FinishedAt, -1})
	}
	sort.Slice(edges, func(i, j int) bool {
		if edges[i].t.Equal(edges[j].t) {
			return edges[i].delta < edges[j].delta
		}
		return edges[i].t.Before(edges[j].t)
	})
	running, peak := 0, 0
	for _, e := range edges {
		running += e.delta
		if running > peak {
			peak = running
		}
	}
	if peak > 2 {
		t.Errorf("A ran %d executions at once, above its tier's 2", peak)
	}
	if peak < 2 {
		t.Errorf("A never ran 2 at once (peak %d): the tier limit was not used", peak)
	}
	if !bs[0].StartedAt.Before(lastA) {
		t.Errorf("B started at %s, after A's backlog drained (A's last start %s)", bs[0].StartedAt, lastA)
	}
	// B waited for at most a couple of A's runs, not for the backlog.
	startedBeforeB := 0
	for _, x := range as {
		if x.StartedAt.Before(*bs[0].StartedAt) {
			startedBeforeB++
		}
	}
	if startedBeforeB > 4 {
		t.Errorf("%d of A's executions started before B's one", startedBeforeB)
	}
	t.Logf("B started after %d of A's 50; A's peak concurrency %d", startedBeforeB, peak)
}

// ensure the context import is used by helpers in other files of this package.
var _ = context.Background

func TestKillNineLosesNothingAndRunsNothingTwice(t *testing.T) {
	t.Parallel()
	s := newServer(t, 2)
	key := s.user("alice", "pro")
	s.start()
	slow := map[string]any{"language": "bash", "timeout": 60,
		"script": `for i in 1 2 3 4 5 6 7 8; do echo "tick $i"; sleep 0.5; done; echo done`}
	if st := s.api(key, "PUT", "/v1/events/slow", slow, nil); st != 201 {
		t.Fatalf("create slow: %d", st)
	}
	tick := map[string]any{"language": "bash", "script": "echo scheduled", "schedule": "@every 1s", "missed_runs": "run_once"}
	if st := s.api(key, "PUT", "/v1/events/tick", tick, nil); st != 201 {
		t.Fatalf("create tick: %d", st)
	}
	var ids []string
	for i := 0; i < 5; i++ {
		var x cronium.Execution
		if st := s.api(key, "POST", "/v1/events/slow/trigger", nil, &x); st != 202 {
			t.Fatalf("trigger: %d", st)
		}
		ids = append(ids, x.ID)
	}
	// Kill once two slow executions run (capacity 2) and the rest wait.
	deadline := time.Now().Add(20 * time.Second)
	for {
		running := 0
		for _, x := range s.executions(key, "event=slow&status=running") {
			if x.LogBytes > 0 { // its script is running: it printed
				running++
			}
		}
		if running >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("two slow executions never ran together:\n%s", s.log)
		}
		time.Sleep(50 * time.Millisecond)
	}
	before := s.executions(key, "")
	queued := len(s.executions(key, "event=slow&status=queued"))
	if queued == 0 {
		t.Fatal("nothing was queued at the kill")
	}
	s.kill()
	time.Sleep(1500 * time.Millisecond) // the sandboxes run on without their host
	s.start()
	if st := s.api(key, "POST", "/v1/events/tick/pause", nil, nil); st != 200 {
		t.Fatalf("pause tick: %d", st)
	}
	after := s.waitAll(key, 2*time.Minute)

	byID := map[string]cronium.Execution{}
	for _, x := range after {
		if _, dup := byID[x.ID]; dup {
			t.Errorf("execution %s listed twice", x.ID)
		}
		byID[x.ID] = x
	}
	for _, x := range before {
		if _, ok := byID[x.ID]; !ok {
			t.Errorf("execution %s (%s, %s) was lost", x.ID, x.Event, x.Status)
		}
	}
	for _, id := range ids {
		x := byID[id]
		if x.Outcome != cronium.Succeeded {
			t.Errorf("slow execution %s: %s %s (%s)", id, x.Outcome, x.Error, x.Reason)
			continue
		}
		var logs struct {
			Items []struct {
				Seq  uint64 `json:"seq"`
				Data string `json:"data"`
			} `json:"items"`
		}
		s.api(key, "GET", "/v1/executions/"+id+"/logs", nil, &logs)
		var out strings.Builder
		for _, it := range logs.Items {
			out.WriteString(it.Data)
		}
		want := "tick 1\ntick 2\ntick 3\ntick 4\ntick 5\ntick 6\ntick 7\ntick 8\ndone\n"
		if out.String() != want {
			t.Errorf("slow execution %s logs %q, want every line exactly once: %q", id, out.String(), want)
		}
	}
	seen := map[time.Time]string{}
	scheduled := 0
	for _, x := range after {
		if x.Trigger != cronium.TriggerSchedule {
			continue
		}
		scheduled++
		if other, dup := seen[*x.ScheduledAt]; dup {
			t.Errorf("scheduled time %s ran twice: %s and %s", x.ScheduledAt, other, x.ID)
		}
		seen[*x.ScheduledAt] = x.ID
		// Fires written ahead of their time are cancelled by the pause.
		if x.Outcome != cronium.Succeeded && !(x.Outcome == cronium.Cancelled && strings.Contains(x.Reason, "paused before its time")) {
			t.Errorf("scheduled execution %s: %s %s %s", x.ID, x.Outcome, x.Error, x.Reason)
		}
	}
	t.Logf("%d executions before the kill (%d slow queued), %d after; %d scheduled, all distinct", len(before), queued, len(after), scheduled)
	s.stop()
	assertNoContainers(t, s.node)
}

func assertNoContainers(t *testing.T, node string) {
	t.Helper()
	out, err := exec.Command("docker", "ps", "-aq", "--filter", "label=io.cronium.node="+node).Output()
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(string(out)) != "" {
		t.Errorf("containers of node %s left behind: %s", node, out)
	}
}

func TestRetriesCancelLogsAndFollow(t *testing.T) {
	t.Parallel()
	s := newServer(t, 4)
	s.env = append(s.env, "CRONIUM_LOG_LIMIT=4Ki")
	key := s.user("alice", "pro")
	s.env = append(s.env, "CRONIUM_TOKEN="+key)
	s.start()

	// Retries follow the policy: three attempts, 1s backoff doubling, only on failed.
	flaky := map[string]any{"language": "bash", "script": "echo attempt; exit 3",
		"retry": map[string]any{"max_attempts": 3, "backoff": "1s", "on": []string{"failed"}}}
	if st := s.api(key, "PUT", "/v1/events/flaky", flaky, nil); st != 201 {
		t.Fatalf("create flaky: %d", st)
	}
	var first cronium.Execution
	s.api(key, "POST", "/v1/events/flaky/trigger", nil, &first)

	// A long script to cancel while it runs.
	s.api(key, "PUT", "/v1/events/long", map[string]any{"language": "bash", "script": "echo started; sleep 60"}, nil)
	var long cronium.Execution
	s.api(key, "POST", "/v1/events/long/trigger", nil, &long)

	// A chatty script whose stored log is capped at 4Ki, and which prints slowly enough to follow.
	s.api(key, "PUT", "/v1/events/chatty", map[string]any{"language": "bash",
		"script": `for i in $(seq 1 40); do echo "line $i"; sleep 0.05; done; head -c 8000 /dev/zero | tr '\0' x; echo`}, nil)
	var chatty cronium.Execution
	s.api(key, "POST", "/v1/events/chatty/trigger", nil, &chatty)

	// Follow chatty over SSE, drop the connection after a few events, resume with Last-Event-ID.
	lines := map[string]int{}
	var lastID string
	read := func(limit int) bool {
		req, _ := http.NewRequest("GET", s.url+"/v1/executions/"+chatty.ID+"/logs?follow=true", nil)
		req.Header.Set("Authorization", "Bearer "+key)
		if lastID != "" {
			req.Header.Set("Last-Event-ID", lastID)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		n := 0
		ended, _ := readSSE(resp.Body, func(id, event, data string) {
			if event != "stdout" {
				return
			}
			var text string
			json.Unmarshal([]byte(data), &text)
			for _, l := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
				if strings.HasPrefix(l, "line ") {
					lines[l]++
				}
			}
			lastID = id
			n++
			if limit > 0 && n >= limit {
				resp.Body.Close() // the client goes away mid-stream
			}
		})
		return ended
	}
	read(5)
	if lastID == "" {
		t.Fatal("no event before the disconnect")
	}
	if !read(0) {
		t.Error("the resumed stream did not end with an end event")
	}
	for i := 1; i <= 40; i++ {
		if c := lines[fmt.Sprintf("line %d", i)]; c != 1 {
			t.Errorf("line %d seen %d times across the reconnect, want exactly once", i, c)
		}
	}

	// Cancel the long one while it runs.
	deadline := time.Now().Add(20 * time.Second)
	for {
		var x cronium.Execution
		s.api(key, "GET", "/v1/executions/"+long.ID, nil, &x)
		if x.Status == cronium.StatusRunning {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("long execution never started")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if out, err := s.cli("exec", "cancel", long.ID); err != nil || !strings.Contains(out, long.ID) {
		t.Errorf("exec cancel: %v %q", err, out)
	}

	xs := s.waitAll(key, time.Minute)
	var attempts []cronium.Execution
	for _, x := range xs {
		switch x.Event {
		case "flaky":
			attempts = append(attempts, x)
		case "long":
			if x.Outcome != cronium.Cancelled || !strings.Contains(x.Error, "cancelled by alice") {
				t.Errorf("cancelled execution: %s %q", x.Outcome, x.Error)
			}
		case "chatty":
			if !x.LogTruncated || x.LogBytes > 4096+200 || x.Outcome != cronium.Succeeded {
				t.Errorf("chatty: truncated %v, %d bytes stored, %s; want truncated at about 4Ki", x.LogTruncated, x.LogBytes, x.Outcome)
			}
		}
	}
	if len(attempts) != 3 {
		t.Fatalf("flaky ran %d times, want 3 attempts", len(attempts))
	}
	sort.Slice(attempts, func(i, j int) bool { return attempts[i].Attempt < attempts[j].Attempt })
	for i, x := range attempts {
		if x.Attempt != i+1 || x.Outcome != cronium.Failed || *x.ExitCode != 3 {
			t.Errorf("attempt %d: %+v", i+1, x)
		}
		if i > 0 {
			if x.Trigger != cronium.TriggerRetry || x.RetryOf != attempts[i-1].ID {
				t.Errorf("attempt %d: trigger %s retry_of %s", i+1, x.Trigger, x.RetryOf)
			}
			if gap := x.StartedAt.Sub(*attempts[i-1].FinishedAt); gap < 700*time.Millisecond {
				t.Errorf("attempt %d started %s after the previous ended: backoff not respected", i+1, gap)
			}
		}
	}
	logs, _ := s.cli("exec", "logs", chatty.ID)
	if !strings.Contains(logs, "log truncated") {
		t.Errorf("truncated log lacks its marker: %q", logs[max(0, len(logs)-200):])
	}
}

func TestBadInputGetsClearErrors(t *testing.T) {
	t.Parallel()
	s := newServer(t, 2)
	key := s.user("alice", "free")
	s.env = append(s.env, "CRONIUM_TOKEN="+key)
	s.start()
	dir := t.TempDir()
	for _, c := range []struct{ name, yaml, want string }{
		{"malformed yaml", "name: x\nlanguage: [bash\n", "not valid YAML"},
		{"bad cron", "name: x\nlanguage: bash\nscript: echo\nschedule: '99 * * * *'\n", "schedule"},
		{"unknown zone", "name: x\nlanguage: bash\nscript: echo\nschedule: '@hourly'\ntimezone: Moon/Base\n", "timezone"},
		{"above tier", "name: x\nlanguage: bash\nscript: echo\nresources:\n  memory: 4Gi\n", "resources.memory"},
		{"unknown field", "name: x\nlanguage: bash\nscript: echo\nschedul: '@hourly'\n", "schedul"},
		{"network mode", "name: x\nlanguage: bash\nscript: echo\nnetwork: {mode: open}\n", "network.mode"},
		{"network bare mode", "name: x\nlanguage: bash\nscript: echo\nnetwork: internet\n", "network.mode"},
		{"domain pattern", "name: x\nlanguage: bash\nscript: echo\nnetwork: {mode: egress, allow_domains: ['*.com']}\n", "network.allow_domains"},
		{"malformed domain", "name: x\nlanguage: bash\nscript: echo\nnetwork: {allow_domains: ['https://api.github.com/']}\n", "network.allow_domains"},
		{"undefined service", "name: x\nlanguage: bash\nscript: echo\nnetwork: {mode: internal, allow_services: [ledger]}\n", "network.allow_services"},
		{"port range", "name: x\nlanguage: bash\nscript: echo\nnetwork: {mode: egress, blocked_ports: [70000]}\n", "network.blocked_ports"},
		{"bandwidth unit", "name: x\nlanguage: bash\nscript: echo\nnetwork: {mode: egress, bandwidth: '10'}\n", "bandwidth"},
		{"mode not in tier", "name: x\nlanguage: bash\nscript: echo\nnetwork: full\n", "not allowed for the free tier"},
		{"network field typo", "name: x\nlanguage: bash\nscript: echo\nnetwork: {mode: egress, allow_domain: [a.example.com]}\n", "allow_domain"},
	} {
		f := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "_")+".yaml")
		os.WriteFile(f, []byte(c.yaml), 0o644)
		_, err := s.cli("event", "apply", "-f", f)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "exit status 2") {
			t.Errorf("%s: %v; want exit 2 naming %q", c.name, err, c.want)
		}
	}
	if out, _ := s.cli("event", "list", "-o", "json"); !strings.Contains(out, `"items": []`) {
		t.Errorf("rejected events were stored: %s", out)
	}
	// Configuration errors name the setting.
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("listen: 127.0.0.1:1\ncapacty: 3\n"), 0o644)
	if _, err := s.cli("config", "check", "--config", bad); err == nil || !strings.Contains(err.Error(), "capacty") {
		t.Errorf("config with a typo: %v", err)
	}
	good := filepath.Join(dir, "good.yaml")
	os.WriteFile(good, []byte("capacity: 3\ntiers:\n  free:\n    cpu_guaranteed: 0.1\n    cpu_burst: 1\n    memory: 256Mi\n    concurrency: 1\n    max_timeout: 2m\n"), 0o644)
	out, err := s.cli("config", "check", "--config", good)
	// CRONIUM_CAPACITY beats the file; sizes and durations read as written.
	out = "\n" + out
	if err != nil || !strings.Contains(out, "\ncapacity: 2\n") || !strings.Contains(out, "max_timeout: 2m\n") || !strings.Contains(out, "memory: 256Mi\n") || !strings.Contains(out, "\n  pro:\n") {
		t.Errorf("config check: %v\n%s", err, out)
	}
}

// An event's network policy is enforced and what it refused shows in `exec get`.
func TestServeNetworkRefusalsShown(t *testing.T) {
	t.Parallel()
	s := newServer(t, 2)
	key := s.user("alice", "free")
	s.env = append(s.env, "CRONIUM_TOKEN="+key)
	s.start()
	f := filepath.Join(t.TempDir(), "net.yaml")
	os.WriteFile(f, []byte(`name: net
language: bash
script: |
  if timeout 3 bash -c 'echo > /dev/tcp/10.99.0.5/5432'; then echo REACHED; else echo refused; fi
  if timeout 3 bash -c 'echo > /dev/tcp/169.254.169.254/80'; then echo REACHED; else echo refused; fi
network: {mode: egress, bandwidth: 5Mbps, blocked_ports: [2525]}
`), 0o644)
	if out, err := s.cli("event", "apply", "-f", f); err != nil {
		t.Fatalf("apply: %v %s", err, out)
	}
	// The README's example applies as written (not triggered: it would look up a real name).
	if out, err := s.cli("event", "apply", "-f", "../../examples/webhook.yaml"); err != nil || !strings.Contains(out, "webhook applied") {
		t.Errorf("apply examples/webhook.yaml: %v %s", err, out)
	}
	if out, err := s.cli("trigger", "net"); err != nil {
		t.Fatalf("trigger: %v %s", err, out)
	}
	xs := s.waitAll(key, 60*time.Second)
	if len(xs) != 1 || xs[0].Outcome != cronium.Succeeded {
		t.Fatalf("executions %+v\n%s", xs, s.log)
	}
	get, err := s.cli("exec", "get", xs[0].ID)
	for _, w := range []string{"network:   egress blocked_ports=2525 bandwidth=5Mbps", "refused:   10.99.0.5:5432/tcp (private address)",
		"refused:   169.254.169.254:80/tcp (metadata address)", "2 refused"} {
		if err != nil || !strings.Contains(get, w) {
			t.Errorf("exec get lacks %q: %v\n%s", w, err, get)
		}
	}
	if logs, _ := s.cli("exec", "logs", xs[0].ID); strings.Contains(logs, "REACHED") {
		t.Errorf("the script reached a denied address:\n%s", logs)
	}
}

func TestSIGTERMLetsRunningFinish(t *testing.T) {
	t.Parallel()
	s := newServer(t, 2)
	key := s.user("alice", "free")
	s.start()
	s.api(key, "PUT", "/v1/events/short", map[string]any{"language": "bash", "script": "sleep 2; echo finished"}, nil)
	var x cronium.Execution
	s.api(key, "POST", "/v1/events/short/trigger", nil, &x)
	for i := 0; i < 200; i++ {
		var cur cronium.Execution
		s.api(key, "GET", "/v1/executions/"+x.ID, nil, &cur)
		if cur.Status == cronium.StatusRunning {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	begin := time.Now()
	s.stop() // SIGTERM: stop admitting, let the running execution finish
	if d := time.Since(begin); d < time.Second {
		t.Errorf("server stopped after %s, before its running execution could finish", d)
	}
	if !strings.Contains(s.log.String(), "msg=stopped") {
		t.Errorf("no clean stop in the log:\n%s", s.log)
	}
	s.start()
	var after cronium.Execution
	s.api(key, "GET", "/v1/executions/"+x.ID, nil, &after)
	if after.Outcome != cronium.Succeeded {
		t.Errorf("execution across SIGTERM: %s %s", after.Outcome, after.Error)
	}
}

// startAs starts a server (capacity 2) with user alice of tier, whose key
// the CLI uses; env adds to the server's environment.
func startAs(t *testing.T, tier string, env ...string) (*server, string) {
	t.Helper()
	s := newServer(t, 2)
	key := s.user("alice", tier)
	s.env = append(append(s.env, "CRONIUM_TOKEN="+key), env...)
	s.start()
	return s, key
}

// A client that sends its request slowly is cut off after the request
// timeout (it cannot hold a connection forever), while a log stream that
// lasts longer than the timeout goes on to its end.
func TestRequestTimeoutCutsSlowClientsNotStreams(t *testing.T) {
	t.Parallel()
	s, key := startAs(t, "free", "CRONIUM_REQUEST_TIMEOUT=2s")
	c, err := net.Dial("tcp", strings.TrimPrefix(s.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "PUT /v1/events/slow HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Length: 100\r\n\r\n{", key)
	begin := time.Now()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	io.ReadAll(c) // until the server closes the connection
	if d := time.Since(begin); d > 6*time.Second {
		t.Errorf("a slow request held its connection for %s, want it cut after the 2s timeout", d)
	}

	if st := s.api(key, "PUT", "/v1/events/late", map[string]any{"name": "late", "language": "bash", "script": "echo early; sleep 5; echo late"}, nil); st != 200 && st != 201 {
		t.Fatalf("apply: %d", st)
	}
	var x cronium.Execution
	s.api(key, "POST", "/v1/events/late/trigger", map[string]any{}, &x)
	req, _ := http.NewRequest("GET", s.url+"/v1/executions/"+x.ID+"/logs", nil)
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if !strings.Contains(string(body), "late") || !strings.Contains(string(body), "event: end") {
		t.Errorf("the stream ended early (after the request timeout?):\n%s", body)
	}
}

// At shutdown, log streams end with a "shutdown" event instead of holding
// the server until the HTTP shutdown gives up on them.
func TestShutdownEndsLogStreams(t *testing.T) {
	t.Parallel()
	s, key := startAs(t, "free", "CRONIUM_SHUTDOWN_GRACE=1s")
	if st := s.api(key, "PUT", "/v1/events/long", map[string]any{"name": "long", "language": "bash", "script": "echo started; sleep 60"}, nil); st != 200 && st != 201 {
		t.Fatalf("apply: %d", st)
	}
	var x cronium.Execution
	s.api(key, "POST", "/v1/events/long/trigger", map[string]any{}, &x)
	req, _ := http.NewRequest("GET", s.url+"/v1/executions/"+x.ID+"/logs", nil)
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got := make(chan string, 1)
	go func() { b, _ := io.ReadAll(resp.Body); got <- string(b) }()
	time.Sleep(2 * time.Second) // the stream is open
	begin := time.Now()
	s.stop()
	select {
	case body := <-got:
		if !strings.Contains(body, "event: shutdown") {
			t.Errorf("the stream ended without saying why:\n%s", body)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the log stream did not end at shutdown")
	}
	t.Logf("server stopped in %s", time.Since(begin))
}

// A log page holds a bounded number of bytes (a response stays small,
// however slowly it is read); next_after pages through the rest.
func TestLogPagesAreBounded(t *testing.T) {
	t.Parallel()
	s, key := startAs(t, "free")
	s.api(key, "PUT", "/v1/events/loud", map[string]any{"name": "loud", "language": "bash",
		"script": "head -c 1000000 /dev/zero | tr '\\0' a; echo"}, nil)
	var x cronium.Execution
	s.api(key, "POST", "/v1/events/loud/trigger", map[string]any{}, &x)
	s.waitAll(key, time.Minute)
	total, pages := 0, 0
	after := uint64(0)
	for {
		var page struct {
			Items []struct {
				Data string `json:"data"`
			} `json:"items"`
			NextAfter uint64 `json:"next_after"`
			Done      bool   `json:"done"`
		}
		s.api(key, "GET", fmt.Sprintf("/v1/executions/%s/logs?after=%d", x.ID, after), nil, &page)
		size := 0
		for _, it := range page.Items {
			size += len(it.Data)
		}
		if size > 320<<10 {
			t.Fatalf("a page of %d bytes", size)
		}
		total += size
		pages++
		after = page.NextAfter
		if page.Done || pages > 50 {
			break
		}
	}
	if total != 1000001 || pages < 4 {
		t.Errorf("%d bytes in %d pages, want 1000001 in at least 4", total, pages)
	}
}
