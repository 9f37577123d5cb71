package main

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	cronium "github.com/cronium/executor"
	"github.com/cronium/executor/api"
	"github.com/cronium/executor/notify"
)

// An event's on: actions, end to end: a failure notifies a signed webhook
// exactly once, retried while the receiver answers 503; a success triggers
// the next event with the output as its input, recording the chain; a
// cycle of triggers and an unknown channel are refused at apply.
func TestOnActions(t *testing.T) {
	t.Parallel()
	const secret = "a-webhook-secret-of-some-length"
	var mu sync.Mutex
	var attempts int
	accepted := map[string]int{} // delivery ID -> accepted deliveries
	var body []byte
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		attempts++
		if attempts <= 2 { // down for a while
			http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
			return
		}
		if err := notify.Verify([]byte(secret), r.Header, b, notify.DefaultMaxAge); err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		accepted[r.Header.Get("X-Cronium-Delivery")]++
		body = b
	}))
	defer receiver.Close()

	cfg := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`notifications:
  allow_private: true   # the receiver is on loopback
  retry_backoff: 1s
  channels:
    - {name: ops-webhook, type: webhook, url: %q, secret: %q}
`, receiver.URL+"/hook", secret)), 0o600)
	s := newServer(t, 2)
	key := s.user("alice", "free")
	s.env = append(s.env, "CRONIUM_CONFIG="+cfg)
	s.start()

	apply := func(ev map[string]any) (int, map[string]any) {
		var out map[string]any
		st := s.api(key, "PUT", "/v1/events/"+ev["name"].(string), ev, &out)
		return st, out
	}
	if st, out := apply(map[string]any{"name": "publish", "language": "bash", "script": `echo "got $(cronium_input)"`}); st != 201 {
		t.Fatalf("publish: %d %v", st, out)
	}
	report := map[string]any{"name": "report", "language": "bash", "script": `cronium_output '{"rows": 7}'`,
		"on": map[string]any{"success": []any{map[string]any{"trigger": "publish", "input_from": "output"}}}}
	if st, out := apply(report); st != 201 {
		t.Fatalf("report: %d %v", st, out)
	}
	fails := map[string]any{"name": "fails", "language": "bash", "script": "echo about to fail; exit 3",
		"on": map[string]any{"failure": []any{map[string]any{"notify": "ops-webhook"}}}}
	if st, out := apply(fails); st != 201 {
		t.Fatalf("fails: %d %v", st, out)
	}

	// Refused at apply, naming the field.
	cyc := map[string]any{"name": "publish", "language": "bash", "script": "true",
		"on": map[string]any{"success": []any{map[string]any{"trigger": "report"}}}}
	if st, out := apply(cyc); st != 400 || !strings.Contains(fmt.Sprint(out), "closes a cycle of triggers (publish -> report -> publish)") {
		t.Errorf("a cycle: %d %v", st, out)
	}
	unknown := map[string]any{"name": "x", "language": "bash", "script": "true",
		"on": map[string]any{"failure": []any{map[string]any{"notify": "nobody-listens"}}}}
	if st, out := apply(unknown); st != 400 || !strings.Contains(fmt.Sprint(out), "on.failure[0].notify") {
		t.Errorf("an unknown channel: %d %v", st, out)
	}

	var failed, reported cronium.Execution
	s.api(key, "POST", "/v1/events/fails/trigger", map[string]any{}, &failed)
	s.api(key, "POST", "/v1/events/report/trigger", map[string]any{}, &reported)

	// The chain: publish ran with report's output as input.
	deadline := time.Now().Add(90 * time.Second)
	var chained cronium.Execution
	for {
		for _, x := range s.executions(key, "event=publish") {
			if x.Status == cronium.StatusFinished {
				chained = x
			}
		}
		if chained.ID != "" || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if chained.Trigger != cronium.TriggerChain || chained.ChainedFrom != reported.ID || chained.ChainDepth != 1 || chained.Outcome != cronium.Succeeded {
		t.Fatalf("the chained run: %+v", chained)
	}
	if logs := mustCLI(t, s, "exec", "logs", chained.ID, "--token", key); !strings.Contains(logs, `"rows": 7`) && !strings.Contains(logs, `"rows":7`) {
		t.Errorf("the chained run's input: %q", logs)
	}

	// The webhook: delivered once, after the receiver came back.
	for {
		var view api.ExecutionView
		s.api(key, "GET", "/v1/executions/"+failed.ID, nil, &view)
		if len(view.Notifications) == 1 && view.Notifications[0].Status == notify.StatusSent {
			if n := view.Notifications[0]; n.Attempts < 3 || n.Channel != "ops-webhook" || n.Reason != "failure" {
				t.Errorf("the notification: %+v", n)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the notification was not sent: %+v\n%s", view.Notifications, s.log)
		}
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(2 * time.Second) // a second delivery would come by now
	mu.Lock()
	defer mu.Unlock()
	if len(accepted) != 1 {
		t.Errorf("accepted deliveries %v, want one", accepted)
	}
	for id, n := range accepted {
		if n != 1 {
			t.Errorf("delivery %s accepted %d times", id, n)
		}
	}
	for _, want := range []string{`"event":"fails"`, `"outcome":"failed"`, `"exit_code":3`, `"execution_id":"` + failed.ID + `"`, "about to fail"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("webhook body lacks %s: %s", want, body)
		}
	}
	out := mustCLI(t, s, "exec", "get", failed.ID, "--token", key)
	if !strings.Contains(out, "notified:  ops-webhook on failure: sent") {
		t.Errorf("exec get does not show the notification:\n%s", out)
	}
}

// A user's own channel is stored sealed, listed without its secret, and
// never reaches a private address, even where the server lets its own
// channels do so; it cannot be deleted while an event notifies it.
func TestUserChannelsReachPublicAddressesOnly(t *testing.T) {
	t.Parallel()
	var hits int
	var mu sync.Mutex
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		hits++
		mu.Unlock()
	}))
	defer receiver.Close()
	cfg := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(cfg, []byte("notifications:\n  allow_private: true\n  retry_backoff: 1s\n"), 0o600)
	s := newServer(t, 1)
	key := s.user("alice", "free")
	s.env = append(s.env, "CRONIUM_CONFIG="+cfg, "CRONIUM_TOKEN="+key)
	s.start()
	const secret = "users-own-signing-secret"
	set := exec.Command(bin, "channel", "set", "mine", "--type", "webhook", "--url", receiver.URL+"/hook")
	set.Env, set.Stdin = s.env, strings.NewReader(secret+"\n")
	if out, err := set.CombinedOutput(); err != nil || !strings.Contains(string(out), "channel mine set") {
		t.Fatalf("channel set: %v %s", err, out)
	}
	if out, err := s.cli("channel", "list", "-o", "json"); err != nil || !strings.Contains(out, `"name": "mine"`) || strings.Contains(out, secret) || strings.Contains(out, "/hook") {
		t.Errorf("channel list: %v %s", err, out)
	}
	ev := map[string]any{"name": "fails", "language": "bash", "script": "exit 1", "on": map[string]any{"failure": []any{map[string]any{"notify": "mine"}}}}
	if st := s.api(key, "PUT", "/v1/events/fails", ev, nil); st != 201 {
		t.Fatalf("apply: %d", st)
	}
	if _, stderr, err := s.run("channel", "delete", "mine"); err == nil || !strings.Contains(stderr, "notified by event fails") {
		t.Errorf("channel delete while used: %v %s", err, stderr)
	}
	var x cronium.Execution
	s.api(key, "POST", "/v1/events/fails/trigger", map[string]any{}, &x)
	deadline := time.Now().Add(time.Minute)
	for {
		var view api.ExecutionView
		s.api(key, "GET", "/v1/executions/"+x.ID, nil, &view)
		if len(view.Notifications) == 1 && view.Notifications[0].Status == notify.StatusFailed {
			if !strings.Contains(view.Notifications[0].LastError, "notifications go to public addresses only") {
				t.Errorf("the refusal: %q", view.Notifications[0].LastError)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("notifications: %+v", view.Notifications)
		}
		time.Sleep(200 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if hits != 0 {
		t.Errorf("a user's channel reached a loopback receiver %d times", hits)
	}
}
