package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	cronium "github.com/cronium/executor"
	"github.com/cronium/executor/api"
	"github.com/cronium/executor/dispatch"
	"github.com/cronium/executor/scheduler"
	"github.com/cronium/executor/sqlite"
)

// idleEngine stands in for the engine at its seam: these tests exercise the
// API, the store and the scheduler; the dispatcher is never started, so
// nothing runs. Engine behaviour is tested against real Docker elsewhere.
type idleEngine struct{ cronium.ColdOnly }

func (idleEngine) Run(context.Context, cronium.Spec) (cronium.Result, error) {
	return cronium.Result{}, nil
}
func (idleEngine) GC(context.Context, time.Duration) (int, error) { return 0, nil }
func (idleEngine) Close() error                                   { return nil }
func (idleEngine) Capabilities() cronium.Capabilities             { return cronium.Capabilities{Name: "idle"} }

type env struct {
	srv              *httptest.Server
	store            *sqlite.Store
	alice, bob, root string // API keys
}

func setup(t *testing.T) *env { return setupTiers(t, nil) }

// setupTiers is setup with the server's tiers (nil: the defaults).
func setupTiers(t *testing.T, tiers map[string]cronium.Tier) *env {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	disp, err := dispatch.New(dispatch.Config{Store: st, Engine: idleEngine{}, Node: "test"})
	if err != nil {
		t.Fatal(err)
	}
	sched, err := scheduler.New(scheduler.Config{Store: st, Dispatcher: disp})
	if err != nil {
		t.Fatal(err)
	}
	h, err := api.New(api.Config{Store: st, Dispatcher: disp, Scheduler: sched, MaxBody: 64 << 10, Tiers: tiers})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h) // a real loopback socket
	t.Cleanup(srv.Close)
	e := &env{srv: srv, store: st}
	for _, u := range []struct {
		name, tier string
		admin      bool
		key        *string
	}{{"alice", "free", false, &e.alice}, {"bob", "pro", false, &e.bob}, {"root", "enterprise", true, &e.root}} {
		usr, err := st.CreateUser(ctx, u.name, u.tier, u.admin)
		if err != nil {
			t.Fatal(err)
		}
		if *u.key, err = st.CreateKey(ctx, usr.ID); err != nil {
			t.Fatal(err)
		}
	}
	return e
}

func (e *env) call(t *testing.T, key, method, path string, body any) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		j, _ := json.Marshal(b)
		rd = bytes.NewReader(j)
	}
	req, _ := http.NewRequest(method, e.srv.URL+path, rd)
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

func errOf(m map[string]any) (code, field, msg string) {
	e, _ := m["error"].(map[string]any)
	code, _ = e["code"].(string)
	field, _ = e["field"].(string)
	msg, _ = e["message"].(string)
	return
}

var okEvent = map[string]any{"name": "job", "language": "bash", "script": "echo hi", "schedule": "*/5 * * * *", "timezone": "Europe/Berlin"}

// eventWith is okEvent with field k set to v.
func eventWith(k string, v any) map[string]any {
	m := maps.Clone(okEvent)
	m[k] = v
	return m
}

func TestOtherUsersGet404(t *testing.T) {
	e := setup(t)
	if st, _ := e.call(t, e.alice, "PUT", "/v1/events/job", okEvent); st != http.StatusCreated {
		t.Fatalf("create: %d", st)
	}
	st, x := e.call(t, e.alice, "POST", "/v1/events/job/trigger", map[string]any{"input": map[string]int{"n": 1}})
	if st != http.StatusAccepted {
		t.Fatalf("trigger: %d %v", st, x)
	}
	id := x["id"].(string)
	for _, c := range []struct{ method, path string }{
		{"GET", "/v1/events/job"}, {"DELETE", "/v1/events/job"}, {"POST", "/v1/events/job/pause"},
		{"POST", "/v1/events/job/trigger"}, {"GET", "/v1/executions/" + id},
		{"POST", "/v1/executions/" + id + "/cancel"}, {"GET", "/v1/executions/" + id + "/logs"},
	} {
		if st, body := e.call(t, e.bob, c.method, c.path, nil); st != http.StatusNotFound {
			t.Errorf("bob %s %s: %d %v, want 404", c.method, c.path, st, body)
		}
	}
	if _, list := e.call(t, e.bob, "GET", "/v1/executions", nil); len(list["items"].([]any)) != 0 {
		t.Errorf("bob sees alice's executions: %v", list)
	}
	if _, list := e.call(t, e.bob, "GET", "/v1/events", nil); len(list["items"].([]any)) != 0 {
		t.Errorf("bob sees alice's events: %v", list)
	}
	// The admin sees everything and may act for alice.
	if st, _ := e.call(t, e.root, "GET", "/v1/executions/"+id, nil); st != http.StatusOK {
		t.Errorf("admin get execution: %d", st)
	}
	if st, _ := e.call(t, e.root, "GET", "/v1/events/job?user=alice", nil); st != http.StatusOK {
		t.Errorf("admin get event for alice: %d", st)
	}
	if st, _ := e.call(t, e.bob, "GET", "/v1/events/job?user=alice", nil); st != http.StatusForbidden {
		t.Errorf("bob acting for alice: %d, want 403", st)
	}
	// Alice still has it all.
	if st, _ := e.call(t, e.alice, "GET", "/v1/executions/"+id, nil); st != http.StatusOK {
		t.Errorf("alice get execution: %d", st)
	}
	if st, _ := e.call(t, "", "GET", "/v1/events", nil); st != http.StatusUnauthorized {
		t.Errorf("no key: %d, want 401", st)
	}
	if st, _ := e.call(t, "crn_bogus", "GET", "/v1/events", nil); st != http.StatusUnauthorized {
		t.Errorf("bad key: %d, want 401", st)
	}
}

func TestBadEventsNameTheField(t *testing.T) {
	e := setup(t)
	for _, c := range []struct {
		name  string
		body  any
		field string
		want  string
	}{
		{"bad cron", eventWith("schedule", "61 * * * *"), "schedule", `minute field "61": must be 0-59`},
		{"garbage cron", eventWith("schedule", "every tuesday"), "schedule", "*/5"},
		{"cron that never fires", eventWith("schedule", "0 0 30 2 *"), "schedule", "never fires"},
		{"unknown zone", eventWith("timezone", "Mars/Olympus"), "timezone", "IANA"},
		{"memory above tier", eventWith("resources", map[string]any{"memory": "4Gi"}), "resources.memory", "free tier"},
		{"cpus above tier", eventWith("resources", map[string]any{"cpus": 4}), "resources.cpus", "free tier"},
		{"pids above tier", eventWith("resources", map[string]any{"pids": 100000}), "resources.pids", "free tier"},
		{"pids below minimum", eventWith("resources", map[string]any{"pids": 2}), "resources.pids", "out of range"},
		{"timeout above tier", eventWith("timeout", "1h"), "timeout", "free tier"},
		{"unknown field", eventWith("schedul", "x"), "schedul", "unknown field"},
		{"bad language", eventWith("language", "cobol"), "language", "bash, python or node"},
		{"bad concurrency", eventWith("concurrency", "sometimes"), "concurrency", "allow, forbid or replace"},
		{"bad missed runs", eventWith("missed_runs", "all"), "missed_runs", "skip or run_once"},
		{"bad name", eventWith("name", "Bad Name!"), "name", "lowercase"},
		{"bad size", eventWith("resources", map[string]any{"memory": "lots"}), "resources.memory", "512Mi"},
		{"wrong type", eventWith("timeout", []int{1}), "timeout", "is not a duration"},
		{"not json", "{name: x", "", "not valid JSON"},
		{"a bad duration in valid JSON", eventWith("timeout", -5), "timeout", `timeout: "-5" must be more than zero`},
		{"a byte order mark", "\ufeff{\"name\": \"job\"}", "", "byte order mark"},
		{"trailing data", `{"name": "job", "language": "bash", "script": "echo hi"} {"name": "x"}`, "", "after its JSON value"},
		{"duplicate key", `{"name": "job", "language": "bash", "script": "echo hi", "script": "rm -rf /"}`, "script", "twice"},
		{"key in another case", `{"Name": "job", "language": "bash", "script": "echo hi"}`, "Name", "lowercase"},
		{"duplicate in another case", `{"name": "job", "NAME": "x", "language": "bash", "script": "echo hi"}`, "NAME", "twice"},
		{"nested key in another case", `{"name": "job", "language": "bash", "script": "echo hi", "retry": {"Max_Attempts": 3}}`, "retry.Max_Attempts", "lowercase"},
		{"a folded duplicate inside the network policy", `{"name": "job", "language": "bash", "script": "echo hi", "network": {"mode": "egress", "allow_domains": ["api.github.com"], "allow_domainſ": []}}`, "network.allow_domainſ", "twice"},
		{"a key in another case inside the network policy", `{"name": "job", "language": "bash", "script": "echo hi", "network": {"MODE": "egress"}}`, "network.MODE", "lowercase"},
		{"Kelvin sign folding onto a field", `{"name": "job", "language": "bash", "script": "echo hi", "Kind": 1}`, "", ""},
	} {
		st, body := e.call(t, e.alice, "POST", "/v1/events", c.body)
		code, field, msg := errOf(body)
		if st != http.StatusBadRequest || code != "invalid" || (c.field != "" && field != c.field) || !strings.Contains(msg, c.want) {
			t.Errorf("%s: %d code=%q field=%q msg=%q; want 400 invalid naming %q and saying %q", c.name, st, code, field, msg, c.field, c.want)
		}
	}
	// Nothing was stored.
	if _, list := e.call(t, e.alice, "GET", "/v1/events", nil); len(list["items"].([]any)) != 0 {
		t.Errorf("rejected events were stored: %v", list)
	}
	big := eventWith("script", strings.Repeat("x", 100<<10))
	if st, body := e.call(t, e.alice, "POST", "/v1/events", big); st != http.StatusRequestEntityTooLarge {
		t.Errorf("oversized body: %d %v, want 413", st, body)
	}
}

// A value of the wrong kind is named by its path and said in words, with
// the accepted form where the kind says too little.
func TestWrongKindsAreSaidInWords(t *testing.T) {
	e := setup(t)
	for _, c := range []struct {
		body       any
		field, msg string
	}{
		{eventWith("priority", "high"), "priority", `priority: want a whole number, got the string "high"`},
		{eventWith("priority", 1.5), "priority", "priority: want a whole number, got 1.5"},
		{eventWith("resources", map[string]any{"cpus": "two"}), "resources.cpus", `resources.cpus: want a number, got the string "two"`},
		{eventWith("resources", map[string]any{"pids": "100"}), "resources.pids", `resources.pids: want a whole number, got the string "100"`},
		{eventWith("resources", map[string]any{"memory": 512}), "resources.memory", "resources.memory: want a size like 512Mi, 1Gi, 100M or 1G (Ki/Mi/Gi are powers of 1024, K/M/G of 1000), got 512"},
		{eventWith("name", 5), "name", "name: want a string, got 5"},
		{eventWith("requires_isolation", "yes"), "requires_isolation", `requires_isolation: want true or false, got the string "yes"`},
		{eventWith("retry", 3), "retry", "retry: want an object, got 3"},
		{eventWith("retry", map[string]any{"on": []any{"failed", 7}}), "retry.on[1]", "retry.on[1]: want a string, got 7"},
		{eventWith("retry", map[string]any{"backoff": "ten seconds"}), "retry.backoff", `retry.backoff: "ten seconds" is not a duration: want a duration like 30s, 2m, 1h30m or plain seconds like 45`},
		{eventWith("secrets", "db_password"), "secrets", `secrets: want a list, got the string "db_password"`},
		{eventWith("env", map[string]any{"MODE": 1}), "env.MODE", "env.MODE: want a string, got 1"},
	} {
		st, body := e.call(t, e.alice, "POST", "/v1/events", c.body)
		code, field, msg := errOf(body)
		if st != http.StatusBadRequest || code != "invalid" || field != c.field || msg != c.msg {
			t.Errorf("got %d %s field=%q %q; want 400 invalid field=%q %q", st, code, field, msg, c.field, c.msg)
		}
	}
}

func TestApplyIsIdempotentAndPauseResume(t *testing.T) {
	e := setup(t)
	st, first := e.call(t, e.alice, "PUT", "/v1/events/job", okEvent)
	if st != http.StatusCreated {
		t.Fatalf("first apply: %d", st)
	}
	st, second := e.call(t, e.alice, "PUT", "/v1/events/job", okEvent)
	if st != http.StatusOK || first["updated_at"] != second["updated_at"] || first["id"] != second["id"] {
		t.Errorf("second apply: %d %v vs %v: want 200 and unchanged", st, second, first)
	}
	if st, _ := e.call(t, e.alice, "POST", "/v1/events", okEvent); st != http.StatusConflict {
		t.Errorf("create of an existing event: %d, want 409", st)
	}
	if _, ev := e.call(t, e.alice, "POST", "/v1/events/job/pause", nil); ev["enabled"] != false {
		t.Errorf("pause: %v", ev)
	}
	if _, ev := e.call(t, e.alice, "POST", "/v1/events/job/resume", nil); ev["enabled"] != true {
		t.Errorf("resume: %v", ev)
	}
	if st, _ := e.call(t, e.alice, "DELETE", "/v1/events/job", nil); st != http.StatusNoContent {
		t.Errorf("delete: %d", st)
	}
	if st, _ := e.call(t, e.alice, "GET", "/v1/events/job", nil); st != http.StatusNotFound {
		t.Errorf("get after delete: %d", st)
	}
}

func TestCancelQueuedAndPagination(t *testing.T) {
	e := setup(t)
	e.call(t, e.alice, "PUT", "/v1/events/job", okEvent)
	var ids []string
	for i := 0; i < 5; i++ {
		_, x := e.call(t, e.alice, "POST", "/v1/events/job/trigger", nil)
		ids = append(ids, x["id"].(string))
	}
	st, x := e.call(t, e.alice, "POST", "/v1/executions/"+ids[0]+"/cancel", nil)
	if st != http.StatusAccepted || x["outcome"] != "cancelled" || x["status"] != "finished" {
		t.Errorf("cancel queued: %d %v", st, x)
	}
	if st, _ := e.call(t, e.alice, "POST", "/v1/executions/"+ids[0]+"/cancel", nil); st != http.StatusConflict {
		t.Errorf("cancel twice: %d, want 409", st)
	}
	var seen []string
	path := "/v1/executions?limit=2"
	for page := 0; page < 5; page++ {
		_, p := e.call(t, e.alice, "GET", path, nil)
		for _, it := range p["items"].([]any) {
			seen = append(seen, it.(map[string]any)["id"].(string))
		}
		next, _ := p["next"].(string)
		if next == "" {
			break
		}
		path = "/v1/executions?limit=2&before=" + next
	}
	sort.Strings(seen)
	sort.Strings(ids)
	if strings.Join(seen, ",") != strings.Join(ids, ",") {
		t.Errorf("paginated ids %v, want %v", seen, ids)
	}
	if st, body := e.call(t, e.alice, "GET", "/v1/executions?status=bogus", nil); st != 400 {
		t.Errorf("bad status filter: %d %v", st, body)
	}
}

// TestOpenAPIMatchesRoutes checks the served document against the routes and
// the JSON the server really returns.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	e := setup(t)
	st, doc := e.call(t, "", "GET", "/v1/openapi.json", nil)
	if st != 200 {
		t.Fatalf("openapi: %d", st)
	}
	paths := doc["paths"].(map[string]any)
	routes := map[string]bool{}
	for _, r := range api.Routes() {
		routes[r.Method+" "+r.Pattern] = true
		item, ok := paths[r.Pattern].(map[string]any)
		if !ok || item[strings.ToLower(r.Method)] == nil {
			t.Errorf("route %s %s is not in the OpenAPI document", r.Method, r.Pattern)
		}
	}
	for p, item := range paths {
		for m := range item.(map[string]any) {
			if !routes[strings.ToUpper(m)+" "+p] {
				t.Errorf("OpenAPI documents %s %s, which the server does not serve", strings.ToUpper(m), p)
			}
		}
	}
	schemas := doc["components"].(map[string]any)["schemas"].(map[string]any)
	// Every field the server sends must be in the schema.
	check := func(name string, obj map[string]any) {
		props := schemas[name].(map[string]any)["properties"].(map[string]any)
		for k := range obj {
			if _, ok := props[k]; !ok {
				t.Errorf("%s has field %q that schema %s lacks", name, k, name)
			}
		}
	}
	e.call(t, e.alice, "PUT", "/v1/events/job", okEvent)
	_, ev := e.call(t, e.alice, "GET", "/v1/events/job", nil)
	check("Event", ev)
	check("RetryPolicy", ev["retry"].(map[string]any))
	_, x := e.call(t, e.alice, "POST", "/v1/events/job/trigger", map[string]any{"input": 1})
	check("Execution", x)
	_, me := e.call(t, e.alice, "GET", "/v1/me", nil)
	check("User", me)
	_, bad := e.call(t, e.alice, "GET", "/v1/events/nope", nil)
	check("Error", bad)
	_, logs := e.call(t, e.alice, "GET", "/v1/executions/"+x["id"].(string)+"/logs", nil)
	check("LogPage", logs)
	// A cursor past the signed 64-bit range is bad input, not a 500.
	if st, body := e.call(t, e.alice, "GET", "/v1/executions/"+x["id"].(string)+"/logs?after=18446744073709551615", nil); st != http.StatusBadRequest {
		t.Errorf("an out-of-range log cursor: %d %v, want 400", st, body)
	}
	_, page := e.call(t, e.alice, "GET", "/v1/executions?limit=1", nil)
	check("ExecutionPage", page)
	// A full result, as stored by a finished execution.
	res, _ := json.Marshal(cronium.Result{Outcome: cronium.Succeeded, NetworkPolicy: &cronium.NetworkPolicy{Mode: cronium.NetworkEgress,
		AllowDomains: []string{"a.example.com"}, BlockedPorts: []int{2525}, Bandwidth: 1e6},
		Usage: cronium.Usage{Network: &cronium.NetworkUsage{BytesIn: 1, Refusals: []string{"x"}}}})
	var rm map[string]any
	json.Unmarshal(res, &rm)
	check("Result", rm)
	check("Phases", rm["phases"].(map[string]any))
	check("Usage", rm["usage"].(map[string]any))
	check("Limits", rm["limits"].(map[string]any))
	check("NetworkPolicy", rm["network_policy"].(map[string]any))
	check("NetworkUsage", rm["usage"].(map[string]any)["network"].(map[string]any))
}

// Keys that are data, not fields (env names, input, variable values), may
// differ only in case: only an exact duplicate is refused there.
func TestFreeFormKeysMayDifferInCase(t *testing.T) {
	e := setup(t)
	body := `{"name": "job", "language": "bash", "script": "echo hi", "env": {"path_x": "1", "PATH_X": "2"}, "input": {"a": 1, "A": 2}}`
	if st, got := e.call(t, e.alice, "PUT", "/v1/events/job", body); st != http.StatusOK && st != http.StatusCreated {
		t.Errorf("keys that differ in case: %d %v", st, got)
	}
	if st, got := e.call(t, e.alice, "PUT", "/v1/variables/x", `{"value": {"k": 1, "K": 2}}`); st != http.StatusOK {
		t.Errorf("a variable with keys that differ in case: %d %v", st, got)
	}
	if st, _ := e.call(t, e.alice, "PUT", "/v1/variables/y", `{"value": {"k": 1, "k": 2}}`); st != http.StatusBadRequest {
		t.Errorf("an exact duplicate in a value: %d, want 400", st)
	}
}
