package main

import (
	"bufio"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	cronium "github.com/cronium/executor"
)

// multiLease is the test nodes' lease: short, so that a dead node's work
// moves within seconds.
const multiLease = 3 * time.Second

// newNode is a server on the shared PostgreSQL store at url.
func newNode(t *testing.T, url string, capacity int) *server {
	t.Helper()
	s := newServer(t, capacity)
	s.args = []string{"--store", url}
	s.env = append(s.env, "CRONIUM_STORE="+url, "CRONIUM_NODE_LEASE="+multiLease.String())
	return s
}

// countingScript prints line 1..20 and marks each of its runs with a
// variable named after its execution and a random token, so that a second
// run of one execution shows. A runtime call that was in flight when its
// node died fails (it is not sent twice): the script sets its mark again
// until it is stored, which is idempotent.
const countingScript = `id=$(cronium_event | sed -n 's/.*"executionId":"\([^"]*\)".*/\1/p')
tok=$(od -An -N8 -tx8 /dev/urandom | tr -d ' ')
until cronium_setVariable "run-$id-$tok" 1 >/dev/null 2>&1; do sleep 0.2; done
for i in $(seq 1 20); do echo "line $i"; sleep 0.05; done`

// Three nodes on one database, 300 executions from 10 users, one node
// killed with SIGKILL mid-way: every execution ends once and runs once, its
// logs are complete and exactly once (those the dead node was running are
// re-attached by another node on the same engine), tier limits and node
// capacity hold throughout and admission stays fair, from the recorded
// times; the dead node's running executions are taken over within its lease.
func TestThreeNodesOneKilled(t *testing.T) {
	t.Parallel()
	pg := startPostgres(t)
	const capacity = 4
	nodes := []*server{newNode(t, pg.URL, capacity), newNode(t, pg.URL, capacity), newNode(t, pg.URL, capacity)}
	type user struct {
		name, key string
		limit     int
	}
	var users []user
	for i := range 10 {
		tier, limit := "free", 2
		if i%2 == 1 {
			tier, limit = "pro", 10
		}
		name := fmt.Sprintf("u%d", i)
		users = append(users, user{name, nodes[0].user(name, tier), limit})
	}
	for _, n := range nodes {
		n.start()
	}
	ev := map[string]any{"language": "bash", "script": countingScript, "timeout": 120}
	for i, u := range users {
		if st := nodes[i%3].api(u.key, "PUT", "/v1/events/work", ev, nil); st != 201 {
			t.Fatalf("create event: %d", st)
		}
	}
	// 30 triggers per user, through every node's API.
	var wg sync.WaitGroup
	for i, u := range users {
		wg.Go(func() {
			for j := range 30 {
				if st := nodes[(i+j)%3].api(u.key, "POST", "/v1/events/work/trigger", map[string]any{}, nil); st != 202 {
					t.Errorf("trigger: %d", st)
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	// Kill node 2 once a third has finished, while it runs some.
	finished := func() (n int, n2running int) {
		for _, u := range users {
			for _, x := range nodes[0].executions(u.key, "") {
				if x.Status == cronium.StatusFinished {
					n++
				}
				if x.Status == cronium.StatusRunning && x.Node == nodes[2].node {
					n2running++
				}
			}
		}
		return n, n2running
	}
	deadline := time.Now().Add(3 * time.Minute)
	for {
		n, r := finished()
		if n >= 100 && r > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d of 300 finished in 3 minutes (node 2 runs %d)", n, r)
		}
		time.Sleep(50 * time.Millisecond)
	}
	nodes[2].kill()
	killed := time.Now()
	t.Logf("killed node 2 at %s", killed.Format(time.StampMilli))

	// Every execution ends, through the live nodes.
	all := map[string]cronium.Execution{}
	for deadline := time.Now().Add(5 * time.Minute); ; {
		done := 0
		for _, u := range users {
			for _, x := range nodes[0].executions(u.key, "") {
				all[x.ID] = x
				if x.Status == cronium.StatusFinished {
					done++
				}
			}
		}
		if done == 300 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of 300 finished 5 minutes after the kill\nnode 0:\n%s\nnode 1:\n%s", done, nodes[0].log, nodes[1].log)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if len(all) != 300 {
		t.Fatalf("%d executions, want 300", len(all))
	}
	// Ran once, ended once, logs complete and exactly once.
	var want strings.Builder
	for i := 1; i <= 20; i++ {
		fmt.Fprintf(&want, "line %d\n", i)
	}
	byName, vars := map[string]user{}, map[string]map[string]any{}
	for _, u := range users {
		byName[u.name] = u
		var page struct {
			Items map[string]any `json:"items"`
		}
		if st := nodes[0].api(u.key, "GET", "/v1/variables", nil, &page); st != 200 {
			t.Fatalf("list variables: %d", st)
		}
		vars[u.name] = page.Items
	}
	for id, x := range all {
		u := byName[x.User]
		if x.Outcome != cronium.Succeeded || x.Attempt != 1 {
			t.Errorf("execution %s: %s attempt %d: %s", id, x.Outcome, x.Attempt, x.Error)
		}
		n := nodes[0]
		if logs := mustCLI(t, &server{t: t, env: append(n.env, "CRONIUM_TOKEN="+u.key)}, "exec", "logs", id); logs != want.String() {
			t.Errorf("logs of %s (node %s): %q", id, x.Node, logs)
		}
		runs := 0
		for k := range vars[u.name] {
			if strings.HasPrefix(k, "run-"+id+"-") {
				runs++
			}
		}
		if runs != 1 {
			t.Errorf("execution %s ran %d times, want once", id, runs)
		}
	}
	// Which executions the live nodes adopted from node 2, and when; and
	// when each execution's result was in the store (logged after it was).
	adopted, released := logged(nodes[:2], "adopting a dead node's execution"), logged(nodes, "execution finished")
	if len(adopted) == 0 {
		t.Errorf("no execution of node 2 was adopted")
	}
	for id, at := range adopted {
		if d := at.Sub(killed); d > multiLease+multiLease/3+time.Second {
			t.Errorf("execution %s adopted %s after the kill, more than the lease (%s) and a heartbeat", id, d, multiLease)
		}
		if all[id].Node == nodes[2].node {
			t.Errorf("adopted execution %s still belongs to node 2", id)
		}
	}
	t.Logf("%d executions adopted from node 2", len(adopted))
	var lags []time.Duration
	for id, r := range released {
		if x, ok := all[id]; ok {
			lags = append(lags, r.Sub(*x.FinishedAt))
		}
	}
	if len(lags) > 0 {
		slices.Sort(lags)
		t.Logf("results logged as stored a median %s and at most %s after the runs' recorded ends", lags[len(lags)/2], lags[len(lags)-1])
	}
	if n := len(all) - len(released); n > capacity { // node 2 may have died between recording and logging
		t.Errorf("%d executions' ends are not in the nodes' logs", n)
	}
	checkLimits(t, all, adopted, released, func(name string) int { return byName[name].limit }, capacity, nodes[2].node, killed)
}

// logged reads from the nodes' logs when each execution was logged with
// msg, by execution id.
func logged(nodes []*server, msg string) map[string]time.Time {
	line := regexp.MustCompile(`time=(\S+) .*msg="` + regexp.QuoteMeta(msg) + `".* execution_id=(\w+)`)
	at := map[string]time.Time{}
	for _, n := range nodes {
		sc := bufio.NewScanner(strings.NewReader(n.log.String()))
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			if m := line.FindStringSubmatch(sc.Text()); m != nil {
				if t, err := time.Parse(time.RFC3339Nano, m[1]); err == nil {
					at[m[2]] = t
				}
			}
		}
	}
	return at
}

// recordSlack is how much earlier than the store learns of it a run's
// recorded end may be.
const recordSlack = 5 * time.Millisecond

// checkLimits checks from the recorded (start, end) times that no user was
// ever above their tier, no node above its capacity (adopted executions
// aside: they run on top), and that at each start no other waiting user,
// below their own limit, had fewer running than the user who started, by
// more than one admission round's worth. For fairness, a waiting user's run
// holds its slot until its result was in the store (released, from the
// logs), as admission counts it: on a loaded machine that can be a good
// while after the run's recorded end.
func checkLimits(t *testing.T, all map[string]cronium.Execution, adopted, released map[string]time.Time, limit func(string) int, capacity int, dead string, killed time.Time) {
	t.Helper()
	xs := make([]cronium.Execution, 0, len(all))
	for _, x := range all {
		xs = append(xs, x)
	}
	sort.Slice(xs, func(i, j int) bool { return xs[i].StartedAt.Before(*xs[j].StartedAt) })
	runningAt := func(at time.Time, keep func(cronium.Execution) bool) map[string]int {
		m := map[string]int{}
		for _, y := range xs {
			// A run's recorded end comes a little before the store learns of
			// it (it is the engine's): within recordSlack of a start, the two
			// are not counted as overlapping.
			if keep(y) && !y.StartedAt.After(at) && y.FinishedAt.After(at.Add(recordSlack)) {
				m[y.User]++
			}
		}
		return m
	}
	for _, x := range xs {
		at := *x.StartedAt
		users := runningAt(at, func(cronium.Execution) bool { return true })
		if users[x.User] > limit(x.User) {
			t.Errorf("at %s user %s ran %d executions, over their tier's %d", at.Format(time.StampMilli), x.User, users[x.User], limit(x.User))
		}
		if _, ok := adopted[x.ID]; !ok && (x.Node != dead || at.Before(killed)) {
			node := runningAt(at, func(y cronium.Execution) bool { _, a := adopted[y.ID]; return y.Node == x.Node && !a })
			total := 0
			for _, n := range node {
				total += n
			}
			if total > capacity {
				t.Errorf("at %s node %s ran %d executions, over its capacity %d", at.Format(time.StampMilli), x.Node, total, capacity)
			}
		}
		// Fairness: a user waiting then with fewer running, below their limit.
		mine := users[x.User] - 1 // before this start
		held := map[string]int{}  // slots held, as admission saw them
		for _, y := range xs {
			end := *y.FinishedAt
			if r, ok := released[y.ID]; ok && r.After(end) {
				end = r
			}
			if !y.StartedAt.After(at) && end.After(at) {
				held[y.User]++
			}
		}
		for _, y := range xs {
			if y.User == x.User || !y.QueuedAt.Before(at) || !y.StartedAt.After(at) {
				continue
			}
			if theirs := held[y.User]; theirs < limit(y.User) && theirs+1 < mine {
				t.Errorf("at %s user %s started a run with %d running while user %s waited with %d", at.Format(time.StampMilli), x.User, mine, y.User, theirs)
				break
			}
		}
	}
}

// sseEvent is one server-sent event.
type sseEvent struct{ id, event, data string }

// sseUntil reads events from a log stream until stop says so or it ends.
func sseUntil(t *testing.T, body *bufio.Reader, stop func(sseEvent) bool) []sseEvent {
	t.Helper()
	var out []sseEvent
	var ev sseEvent
	for {
		line, err := body.ReadString('\n')
		if err != nil {
			return out
		}
		line = strings.TrimRight(line, "\n")
		switch {
		case line == "":
			if ev.event != "" {
				out = append(out, ev)
				if stop(ev) {
					return out
				}
			}
			ev = sseEvent{}
		case strings.HasPrefix(line, "id: "):
			ev.id = line[4:]
		case strings.HasPrefix(line, "event: "):
			ev.event = line[7:]
		case strings.HasPrefix(line, "data: "):
			ev.data = line[6:]
		}
	}
}

// follow opens an execution's log stream on s from after (Last-Event-ID).
func follow(t *testing.T, s *server, key, id, after string) (*bufio.Reader, func()) {
	t.Helper()
	req, _ := http.NewRequest("GET", s.url+"/v1/executions/"+id+"/logs", nil)
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Accept", "text/event-stream")
	if after != "" {
		req.Header.Set("Last-Event-ID", after)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("follow on %s: %v %v", s.node, err, resp)
	}
	return bufio.NewReader(resp.Body), func() { resp.Body.Close() }
}

// A live log follow and a cancel work from a node other than the one
// running the execution: the stream, dropped and resumed by sequence
// number, is gapless and without duplicates, and ends cancelled soon after
// the cancel.
func TestCancelAndFollowFromAnotherNode(t *testing.T) {
	t.Parallel()
	pg := startPostgres(t)
	n1, n2 := newNode(t, pg.URL, 2), newNode(t, pg.URL, 2)
	key := n1.user("alice", "pro")
	n1.start()
	ev := map[string]any{"language": "bash", "script": `for i in $(seq 1 100); do echo "tick $i"; sleep 0.2; done`, "timeout": 120}
	if st := n1.api(key, "PUT", "/v1/events/ticker", ev, nil); st != 201 {
		t.Fatalf("create event: %d", st)
	}
	var x cronium.Execution
	if st := n1.api(key, "POST", "/v1/events/ticker/trigger", map[string]any{}, &x); st != 202 {
		t.Fatalf("trigger: %d", st)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		var got cronium.Execution
		n1.api(key, "GET", "/v1/executions/"+x.ID, nil, &got)
		if got.Status == cronium.StatusRunning && got.Node == n1.node {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the execution did not start on node 1: %+v\n%s", got, n1.log)
		}
	}
	n2.start()

	body, drop := follow(t, n2, key, x.ID, "")
	first := sseUntil(t, body, func(e sseEvent) bool { return e.event == "stdout" && e.id == "5" })
	drop()
	if len(first) == 0 || first[len(first)-1].id != "5" {
		t.Fatalf("first part of the stream from node 2: %+v", first)
	}
	body, drop = follow(t, n2, key, x.ID, "5")
	defer drop()
	rest := make(chan []sseEvent, 1)
	go func() { rest <- sseUntil(t, body, func(e sseEvent) bool { return e.event == "end" }) }()
	time.Sleep(2 * time.Second) // it streams live from node 2 meanwhile
	var cancelled cronium.Execution
	if st := n2.api(key, "POST", "/v1/executions/"+x.ID+"/cancel", nil, &cancelled); st != 202 {
		t.Fatalf("cancel through node 2: %d %+v", st, cancelled)
	}
	begin := time.Now()
	var events []sseEvent
	select {
	case events = <-rest:
	case <-time.After(10 * time.Second):
		t.Fatal("the stream on node 2 did not end after the cancel")
	}
	if d := time.Since(begin); d > 2*time.Second {
		t.Errorf("the stream ended %s after the cancel, want within 2s", d)
	}
	all := append(first, events...)
	last := all[len(all)-1]
	if last.event != "end" || !strings.Contains(last.data, `"outcome":"cancelled"`) {
		t.Errorf("the stream ended with %+v, want an end event, cancelled", last)
	}
	seq := 0
	for _, e := range all[:len(all)-1] {
		seq++
		if e.id != fmt.Sprint(seq) || e.data != fmt.Sprintf(`"tick %d\n"`, seq) {
			t.Fatalf("event %d of the stream: %+v (a gap or a duplicate)", seq, e)
		}
	}
	if seq < 10 {
		t.Errorf("only %d chunks streamed from node 2 in 2s and more", seq)
	}
	var got cronium.Execution
	n2.api(key, "GET", "/v1/executions/"+x.ID, nil, &got)
	if got.Outcome != cronium.Cancelled || !strings.Contains(got.Error, "cancelled by alice") || got.Node != n1.node {
		t.Errorf("the execution: %s on %s: %q, want cancelled by alice on node 1", got.Outcome, got.Node, got.Error)
	}
}

// Schedules on several nodes: one node leads and fires each (event, time)
// once; an event applied or paused on another node is followed at once;
// when the leader is killed another takes over, firing the times the dead
// one missed, so the series has no gap.
func TestSchedulerAcrossNodes(t *testing.T) {
	t.Parallel()
	pg := startPostgres(t)
	nodes := []*server{newNode(t, pg.URL, 4), newNode(t, pg.URL, 4)}
	key := nodes[0].user("alice", "pro")
	for _, n := range nodes {
		n.start()
	}
	leader := func() int {
		for i, n := range nodes {
			if strings.Contains(n.log.String(), "this node leads the scheduler now") {
				return i
			}
		}
		return -1
	}
	for deadline := time.Now().Add(10 * time.Second); leader() < 0; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no node leads the scheduler:\n%s\n%s", nodes[0].log, nodes[1].log)
		}
	}
	lead := leader()
	other := nodes[1-lead]
	ev := map[string]any{"language": "bash", "script": "echo tick", "schedule": "@every 1s"}
	applied := time.Now()
	if st := other.api(key, "PUT", "/v1/events/tick", ev, nil); st != 201 {
		t.Fatalf("apply on the node that does not lead: %d", st)
	}
	scheduled := func() []time.Time {
		var ts []time.Time
		for _, x := range other.executions(key, "trigger=schedule") {
			ts = append(ts, *x.ScheduledAt)
		}
		sort.Slice(ts, func(i, j int) bool { return ts[i].Before(ts[j]) })
		return ts
	}
	for deadline := time.Now().Add(10 * time.Second); len(scheduled()) < 3; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the leader did not fire an event applied on the other node:\n%s", nodes[lead].log)
		}
	}
	if first := scheduled()[0]; first.Sub(applied) > 2500*time.Millisecond {
		t.Errorf("first fire at %s, %s after the apply on the other node", first, first.Sub(applied))
	}
	nodes[lead].kill()
	killed := time.Now()
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		ts := scheduled()
		if ts[len(ts)-1].After(killed.Add(3 * time.Second)) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no fire after the leader was killed:\n%s", other.log)
		}
	}
	ts := scheduled()
	for i := 1; i < len(ts); i++ {
		if d := ts[i].Sub(ts[i-1]); d != time.Second {
			t.Errorf("fires %s and %s are %s apart, want every second: a gap or a duplicate", ts[i-1].Format(time.StampMilli), ts[i].Format(time.StampMilli), d)
		}
	}
	if st := other.api(key, "POST", "/v1/events/tick/pause", nil, nil); st != 200 {
		t.Fatalf("pause: %d", st)
	}
	time.Sleep(1500 * time.Millisecond)
	n := len(scheduled())
	time.Sleep(2 * time.Second)
	if m := len(scheduled()); m != n {
		t.Errorf("%d fires after the pause", m-n)
	}
}
