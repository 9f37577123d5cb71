package main

import (
	"strings"
	"testing"
	"time"

	cronium "github.com/cronium/executor"
)

// user create, key create and exec cancel say what happened and, when
// they refuse, what to do instead.
func TestUserAndCancelSayWhatHappened(t *testing.T) {
	t.Parallel()
	s := newServer(t, 1)
	expect := func(want string, args ...string) {
		t.Helper()
		out, stderr, err := s.run(args...)
		if got := out + stderr; !strings.Contains(got, want) {
			t.Errorf("cronium %s: %q (%v); want it to say %q", strings.Join(args, " "), got, err, want)
		}
	}
	_, stderr, err := s.run("user", "create", "alice")
	if err != nil || stderr != "created user alice (tier free). Their API key, shown only this once (set CRONIUM_TOKEN to it to act as alice):\n" {
		t.Errorf("user create: %q %v", stderr, err)
	}
	expect("created admin user root (tier pro)", "user", "create", "root", "--admin", "--tier", "pro")
	expect("user alice already exists, unchanged: to give them another API key, run `cronium key create alice`", "user", "create", "alice", "--tier", "pro")
	expect(`--tier: "Pro" is not a tier: did you mean "pro"? Tier names are lowercase`, "user", "create", "bob", "--tier", "Pro")
	expect(`--tier: "gold" is not a tier: want one of enterprise, free, pro`, "user", "create", "bob", "--tier", "gold")
	expect("user carol does not exist: create them with `cronium user create carol`", "key", "create", "carol")

	key := strings.TrimSpace(s.user("dave", "free"))
	s.env = append(s.env, "CRONIUM_TOKEN="+key)
	s.start()
	if st := s.api(key, "PUT", "/v1/events/long", map[string]any{"name": "long", "language": "bash", "script": "sleep 60"}, nil); st >= 300 {
		t.Fatalf("create event: %d", st)
	}
	var running, queued cronium.Execution
	s.api(key, "POST", "/v1/events/long/trigger", nil, &running)
	deadline := time.Now().Add(30 * time.Second)
	for running.Status != cronium.StatusRunning && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		s.api(key, "GET", "/v1/executions/"+running.ID, nil, &running)
	}
	if running.Status != cronium.StatusRunning {
		t.Fatalf("the first execution never ran: %+v\n%s", running, s.log)
	}
	s.api(key, "POST", "/v1/events/long/trigger", nil, &queued) // waits: the node's capacity is 1
	expect("execution "+queued.ID+" cancelled before it started", "exec", "cancel", queued.ID)
	expect("execution "+running.ID+": cancelling: its script is being stopped; `cronium exec get "+running.ID+"` shows when it has ended", "exec", "cancel", running.ID)
	for _, x := range s.waitAll(key, time.Minute) {
		if x.Outcome != cronium.Cancelled {
			t.Errorf("execution %s: %s %q, want cancelled", x.ID, x.Outcome, x.Error)
		}
	}
	expect("execution "+running.ID+" already finished (cancelled): there is nothing to cancel", "exec", "cancel", running.ID)
	expect("there is no execution nope that you can see: `cronium exec list` lists yours", "exec", "cancel", "nope")
}
