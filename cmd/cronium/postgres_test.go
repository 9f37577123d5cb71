package main

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	cronium "github.com/cronium/executor"
	"github.com/cronium/executor/internal/pgtest"
)

// startPostgres starts a PostgreSQL server for one test and returns its URL.
func startPostgres(t *testing.T) *pgtest.Server {
	t.Helper()
	pg, err := pgtest.Start(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pg.Stop)
	return pg
}

// `cronium serve --store postgres://…` keeps everything in PostgreSQL:
// users and keys made by the CLI, events, secrets (sealed), variables,
// executions and their logs, and all of it is there after a restart.
func TestServeOnPostgres(t *testing.T) {
	t.Parallel()
	pg := startPostgres(t)
	s := newServer(t, 2)
	s.args = []string{"--store", pg.URL}
	s.env = append(s.env, "CRONIUM_STORE="+pg.URL) // the CLI's user create opens the store too
	key := s.user("alice", "free")
	s.env = append(s.env, "CRONIUM_TOKEN="+key)
	s.start()
	set := exec.Command(bin, "secret", "set", "token")
	set.Env, set.Stdin = s.env, strings.NewReader("pg-secret")
	if out, err := set.CombinedOutput(); err != nil {
		t.Fatalf("secret set: %v %s", err, out)
	}
	mustCLI(t, s, "var", "set", "answer", "41")
	ev := map[string]any{"name": "show", "language": "bash", "secrets": []string{"token"},
		"script": `cat /run/secrets/token; echo; cronium_increment answer 1 >/dev/null; echo line two`}
	if st := s.api(key, "PUT", "/v1/events/show", ev, nil); st != 201 {
		t.Fatalf("apply: %d", st)
	}
	var x cronium.Execution
	if st := s.api(key, "POST", "/v1/events/show/trigger", map[string]any{}, &x); st != 202 {
		t.Fatalf("trigger: %d", st)
	}
	for _, done := range s.waitAll(key, time.Minute) {
		if done.Outcome != cronium.Succeeded {
			t.Fatalf("run on PostgreSQL: %s %s\n%s", done.Outcome, done.Error, s.log)
		}
	}
	if logs := mustCLI(t, s, "exec", "logs", x.ID); logs != "***\nline two\n" {
		t.Errorf("logs: %q", logs)
	}
	if !strings.Contains(s.log.String(), "postgres://cronium@") {
		t.Errorf("the server does not say which store it uses:\n%s", s.log)
	}
	s.stop()
	s.start()
	if got := mustCLI(t, s, "var", "get", "answer"); strings.TrimSpace(got) != "42" {
		t.Errorf("the variable after a restart: %q, want 42", got)
	}
	if xs := s.executions(key, ""); len(xs) != 1 || xs[0].ID != x.ID {
		t.Errorf("history after a restart: %+v", xs)
	}
}

// A store setting that is wrong, or a database that does not answer, is
// a clear error at once, with the password masked.
func TestServeRefusesBadStores(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ store, want string }{
		{"mysql://u:hunter2@db/x", "is not a store: use sqlite:PATH"},
		{"sqlite:", "names no file"},
		{"postgres://u:hunter2@127.0.0.1:1/cronium?connect_timeout=2", "cannot reach PostgreSQL at postgres://u:***@127.0.0.1:1/cronium"},
		{"postgres://u:hunter2@127.0.0.1:1/cronium?sslmode=sometimes", "not a PostgreSQL URL"},
	} {
		s := newServer(t, 1)
		_, stderr, err := s.run("serve", "--store", c.store)
		if strings.HasPrefix(c.store, "postgres") {
			// A well-formed one is shown masked by config check.
			if out, _, err := s.run("config", "check", "--store", c.store); err != nil || !strings.Contains(out, "u:***@") || strings.Contains(out, "hunter2") {
				t.Errorf("config check --store %s: %v\n%s", c.store, err, out)
			}
		}
		if err == nil || !strings.Contains(stderr, c.want) || strings.Contains(stderr, "hunter2") {
			t.Errorf("serve --store %s: %v\n%s\nwant an error saying %q, without the password", c.store, err, stderr, c.want)
		}
	}
}

// cronium store copy moves an SQLite store into PostgreSQL: a server on
// PostgreSQL with the same master keys then shows the history, knows the
// API keys and variables, and runs the event with its (still sealed) secret.
func TestStoreCopyToPostgres(t *testing.T) {
	t.Parallel()
	s := newServer(t, 1)
	key := s.user("alice", "free")
	s.env = append(s.env, "CRONIUM_TOKEN="+key)
	s.start()
	set := exec.Command(bin, "secret", "set", "token")
	set.Env, set.Stdin = s.env, strings.NewReader("copied-secret")
	if out, err := set.CombinedOutput(); err != nil {
		t.Fatalf("secret set: %v %s", err, out)
	}
	mustCLI(t, s, "var", "set", "answer", "42")
	ev := map[string]any{"name": "show", "language": "bash", "script": "cat /run/secrets/token; echo; echo done", "secrets": []string{"token"}}
	if st := s.api(key, "PUT", "/v1/events/show", ev, nil); st != 201 {
		t.Fatalf("apply: %d", st)
	}
	var first cronium.Execution
	s.api(key, "POST", "/v1/events/show/trigger", map[string]any{}, &first)
	s.waitAll(key, time.Minute)
	pg := startPostgres(t)
	db := s.dir + "/cronium.db"
	if _, err := s.cli("store", "copy", "--from", "sqlite:"+db, "--to", pg.URL); err == nil || !strings.Contains(err.Error(), "stop the server") {
		t.Errorf("a copy of a store in use: %v", err)
	}
	s.stop()
	out, err := s.cli("store", "copy", "--from", "sqlite:"+db, "--to", pg.URL)
	if err != nil || !strings.Contains(out, "executions 1") || !strings.Contains(out, "secrets 1") || !strings.Contains(out, "users 1") {
		t.Fatalf("store copy: %v %s", err, out)
	}
	if _, err := s.cli("store", "copy", "--from", "sqlite:"+db, "--to", pg.URL); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Errorf("a copy into a database that is not empty: %v", err)
	}

	p := newNode(t, pg.URL, 1)
	keys, _ := os.ReadFile(s.dir + "/master.keys")
	if err := os.WriteFile(p.dir+"/master.keys", keys, 0o600); err != nil {
		t.Fatal(err)
	}
	p.env = append(p.env, "CRONIUM_TOKEN="+key)
	p.start()
	if got := mustCLI(t, p, "var", "get", "answer"); strings.TrimSpace(got) != "42" {
		t.Errorf("copied variable: %q", got)
	}
	if logs := mustCLI(t, p, "exec", "logs", first.ID); logs != "***\ndone\n" {
		t.Errorf("copied logs: %q", logs)
	}
	var x cronium.Execution
	if st := p.api(key, "POST", "/v1/events/show/trigger", map[string]any{}, &x); st != 202 {
		t.Fatalf("trigger on PostgreSQL: %d", st)
	}
	xs := p.waitAll(key, time.Minute)
	if len(xs) != 2 {
		t.Errorf("%d executions, want the copied one and the new one", len(xs))
	}
	for _, done := range xs {
		if done.Outcome != cronium.Succeeded {
			t.Errorf("%s: %s %s", done.ID, done.Outcome, done.Error)
		}
	}
	if logs := mustCLI(t, p, "exec", "logs", x.ID); logs != "***\ndone\n" {
		t.Errorf("the copied secret was not delivered: %q", logs)
	}
}

// The database going away while a node serves: the node says so (its log,
// GET /v1/nodes), starts nothing, keeps the running execution's output and
// result until the database is back, and recovers by itself.
func TestDatabaseGoesAwayAndComesBack(t *testing.T) {
	t.Parallel()
	pg := startPostgres(t)
	s := newNode(t, pg.URL, 2)
	out, err := s.cli("user", "create", "root", "--tier", "pro", "--admin")
	if err != nil {
		t.Fatal(err)
	}
	key := strings.TrimSpace(out)
	s.start()
	ev := map[string]any{"language": "bash", "script": "echo before; sleep 4; echo after"}
	if st := s.api(key, "PUT", "/v1/events/slow", ev, nil); st != 201 {
		t.Fatalf("apply: %d", st)
	}
	var x cronium.Execution
	s.api(key, "POST", "/v1/events/slow/trigger", map[string]any{}, &x)
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		var page struct {
			Items []struct{ Data string } `json:"items"`
		}
		s.api(key, "GET", "/v1/executions/"+x.ID+"/logs", nil, &page)
		if len(page.Items) > 0 {
			break // the script runs
		}
		if time.Now().After(deadline) {
			t.Fatalf("the script did not start:\n%s", s.log)
		}
	}
	dashboard, _ := httpSignIn(t, s, key)
	pg.Kill()
	var page nodesPage
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		page = nodesPage{}
		if st := s.api(key, "GET", "/v1/nodes", nil, &page); st != 200 {
			t.Fatalf("/v1/nodes without the store: %d", st)
		}
		if !page.Store.Reachable {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/v1/nodes still says the store is reachable: %+v", page)
		}
	}
	if len(page.Items) != 1 || !page.Items[0].Self || page.Items[0].Running != 1 {
		t.Errorf("/v1/nodes without the store: %+v, want this node alone, running 1", page)
	}
	if out, err := s.cli("node", "list", "--token", key); err != nil || !strings.Contains(out, "the store is unreachable") {
		t.Errorf("node list without the store: %v\n%s", err, out)
	}
	if st := s.api(key, "GET", "/v1/executions/"+x.ID, nil, nil); st != 503 {
		t.Errorf("an execution without the store: %d, want 503", st)
	}
	if st := s.api(key, "POST", "/v1/events/slow/trigger", map[string]any{}, nil); st != 503 {
		t.Errorf("a trigger without the store: %d, want 503", st)
	}
	// The dashboard says the store is away; it does not sign anybody out.
	if resp, err := dashboard.Get(s.url + "/events"); err != nil {
		t.Error(err)
	} else if page := readAll(resp); resp.StatusCode != 503 || !strings.Contains(page, "store") {
		t.Errorf("the dashboard without the store: %d, want a 503 page about the store:\n%s", resp.StatusCode, page)
	}
	time.Sleep(5 * time.Second) // the script ends meanwhile; its result waits
	if err := pg.Restart(context.Background()); err != nil {
		t.Fatal(err)
	}
	xs := s.waitAll(key, 30*time.Second)
	if len(xs) != 1 || xs[0].Outcome != cronium.Succeeded {
		t.Fatalf("the execution across the outage: %+v", xs)
	}
	if st := s.api(key, "GET", "/v1/executions/"+x.ID, nil, nil); st != 200 {
		t.Errorf("an execution after the outage: %d", st)
	}
	if logs := mustCLI(t, &server{t: t, env: append(s.env, "CRONIUM_TOKEN="+key)}, "exec", "logs", x.ID); logs != "before\nafter\n" {
		t.Errorf("logs across the outage: %q", logs)
	}
	for deadline := time.Now().Add(multiLease); ; time.Sleep(100 * time.Millisecond) {
		page = nodesPage{}
		s.api(key, "GET", "/v1/nodes", nil, &page)
		if page.Store.Reachable && len(page.Items) == 1 && page.Items[0].State == "up" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/v1/nodes a lease after the outage: %+v", page)
		}
	}
	var y cronium.Execution
	if st := s.api(key, "POST", "/v1/events/slow/trigger", map[string]any{}, &y); st != 202 {
		t.Fatalf("trigger after the outage: %d", st)
	}
	for _, l := range []string{"the store does not answer", "the store answers again", "admission works again"} {
		if !strings.Contains(s.log.String(), l) {
			t.Errorf("the log does not say %q:\n%s", l, s.log)
		}
	}
	for _, l := range []string{"admit queued executions", "store logs", "read cancel requests"} {
		if n := strings.Count(s.log.String(), l); n > 3 {
			t.Errorf("%q was said %d times in a short outage", l, n)
		}
	}
}
