package main

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

// Users, keys and the audit log from the CLI, against a real server.
func TestUserKeyAndAuditCommands(t *testing.T) {
	t.Parallel()
	s := newServer(t, 1)
	alice := s.user("alice", "free")
	if _, err := s.cli("user", "create", "ops", "--admin"); err != nil {
		t.Fatal(err)
	}
	s.start()
	as := func(key string, args ...string) (string, string, error) {
		cmd := exec.Command(bin, args...)
		cmd.Env = append(append([]string{}, s.env...), "CRONIUM_TOKEN="+key)
		var out, errb strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		return out.String(), errb.String(), err
	}
	ops := strings.TrimSpace(mustCLI(t, s, "key", "create", "ops"))

	ci, stderr, err := s.run("key", "create", "alice", "--name", "ci", "--expires", "30d")
	ci = strings.TrimSpace(ci)
	if err != nil || !strings.HasPrefix(ci, "crn_") || !strings.Contains(stderr, "valid until") {
		t.Fatalf("key create --expires: %v %q %q", err, ci, stderr)
	}
	if _, _, err := s.run("key", "create", "alice", "--expires", "forever"); err == nil {
		t.Error("key create --expires forever was accepted")
	}
	out, _, err := as(alice, "key", "list", "-o", "json")
	var keys struct {
		Items []struct {
			ID   int64  `json:"id"`
			Name string `json:"name"`
		} `json:"items"`
	}
	if err != nil || json.Unmarshal([]byte(out), &keys) != nil || len(keys.Items) != 2 || keys.Items[1].Name != "ci" {
		t.Fatalf("key list: %v %s", err, out)
	}
	if strings.Contains(out, ci) {
		t.Error("key list shows a key")
	}
	if out, _, err := as(ci, "event", "list"); err != nil {
		t.Fatalf("the ci key does not work: %v %s", err, out)
	}
	if out, _, err := as(alice, "key", "revoke", jsonInt(keys.Items[1].ID)); err != nil || !strings.Contains(out, "revoked") {
		t.Fatalf("key revoke: %v %s", err, out)
	}
	if _, stderr, err := as(ci, "event", "list"); err == nil || !strings.Contains(stderr, "revoked or expired API key") {
		t.Errorf("a revoked key still works: %v %s", err, stderr)
	}
	if _, stderr, err := as(alice, "user", "list"); err == nil || !strings.Contains(stderr, "only admins") {
		t.Errorf("user list by a non-admin: %v %s", err, stderr)
	}
	if out, _, err := as(ops, "user", "list"); err != nil || !strings.Contains(out, "alice") || !strings.Contains(out, "ops") {
		t.Errorf("user list: %v\n%s", err, out)
	}
	if out, _, err := as(ops, "user", "set-tier", "alice", "pro"); err != nil || !strings.Contains(out, "tier pro") {
		t.Errorf("user set-tier: %v %s", err, out)
	}

	if _, _, err := as(alice, "event", "apply", "-f", "../../examples/heartbeat.yaml"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := as(alice, "trigger", "heartbeat"); err != nil {
		t.Fatal(err)
	}
	out, _, err = as(ops, "audit", "--action", "event.trigger")
	if err != nil || !strings.Contains(out, "alice") || !strings.Contains(out, "alice/heartbeat") || !strings.Contains(out, "execution ") {
		t.Errorf("audit: %v\n%s", err, out)
	}
	out, _, _ = as(ops, "audit", "--action", "key.")
	if !strings.Contains(out, "key.create") || !strings.Contains(out, "key.revoke") || !strings.Contains(out, "local") {
		t.Errorf("audit of keys: %s", out)
	}
	if out, _, err := as(ops, "user", "delete", "alice"); err != nil || !strings.Contains(out, "deleted") {
		t.Fatalf("user delete: %v %s", err, out)
	}
	if _, _, err := as(alice, "event", "list"); err == nil {
		t.Error("a deleted user's key still works")
	}
}

func mustCLI(t *testing.T, s *server, args ...string) string {
	t.Helper()
	out, err := s.cli(args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func jsonInt(n int64) string { b, _ := json.Marshal(n); return string(b) }

// var set reads VALUE as JSON when it is JSON: 100 is a number a script can
// compare; --string keeps it a string; other text is a string.
func TestVarSetIsTyped(t *testing.T) {
	t.Parallel()
	s := newServer(t, 1)
	s.env = append(s.env, "CRONIUM_TOKEN="+s.user("alice", "free"))
	s.start()
	for _, c := range []struct {
		args      []string
		said, got string
	}{
		{[]string{"threshold", "100"}, "set to 100 (a number)", "100"},
		{[]string{"zip", "0100", "--string"}, `set to "0100" (a string)`, `"0100"`},
		{[]string{"flag", "true"}, "(a boolean)", "true"},
		{[]string{"greeting", "hello world"}, `set to "hello world" (a string)`, `"hello world"`},
		{[]string{"cfg", `{"a": [1, 2]}`}, "(an object)", `{"a": [1, 2]}`},
	} {
		out, err := s.cli(append([]string{"var", "set"}, c.args...)...)
		if err != nil || !strings.Contains(out, c.said) {
			t.Errorf("var set %v: %v %q, want it to say %q", c.args, err, out, c.said)
		}
		got, _ := s.cli("var", "get", c.args[0])
		var g, w bytes.Buffer
		json.Compact(&g, []byte(got))
		json.Compact(&w, []byte(c.got))
		if g.String() != w.String() || g.Len() == 0 {
			t.Errorf("var get %s = %q, want %s", c.args[0], got, c.got)
		}
	}
	if _, _, err := s.run("var", "set", "x", "1", "--string", "--json"); err == nil {
		t.Error("--string with --json was accepted")
	}
}

// An admin acts for a user with --user on any client command; a user
// cannot.
func TestAdminUserFlag(t *testing.T) {
	t.Parallel()
	s := newServer(t, 1)
	alice := s.user("alice", "free")
	out, err := s.cli("user", "create", "ops", "--admin")
	if err != nil {
		t.Fatal(err)
	}
	ops := strings.TrimSpace(out)
	s.start()
	as := func(key string, args ...string) (string, error) {
		cmd := exec.Command(bin, args...)
		cmd.Env = append(append([]string{}, s.env...), "CRONIUM_TOKEN="+key)
		b, err := cmd.CombinedOutput()
		return string(b), err
	}
	if out, err := as(ops, "var", "set", "owner", "alice", "--user", "alice"); err != nil {
		t.Fatalf("var set --user: %v %s", err, out)
	}
	if out, err := as(alice, "var", "get", "owner"); err != nil || !strings.Contains(out, `"alice"`) {
		t.Errorf("alice's variable set by the admin: %v %s", err, out)
	}
	if _, err := as(ops, "var", "get", "owner"); err == nil {
		t.Error("the variable landed in the admin's own variables")
	}
	if out, err := as(ops, "event", "apply", "-f", "../../examples/heartbeat.yaml", "--user", "alice"); err != nil {
		t.Fatalf("event apply --user: %v %s", err, out)
	}
	if out, err := as(alice, "event", "list"); err != nil || !strings.Contains(out, "heartbeat") {
		t.Errorf("alice's events: %v %s", err, out)
	}
	if out, err := as(alice, "event", "list", "--user", "ops"); err == nil {
		t.Errorf("a non-admin acted for another user: %s", out)
	}
}

// trigger --wait ends with the run and its exit status; --follow prints
// the output live first.
func TestTriggerWaitAndFollow(t *testing.T) {
	t.Parallel()
	s := newServer(t, 1)
	s.env = append(s.env, "CRONIUM_TOKEN="+s.user("alice", "free"))
	s.start()
	for name, script := range map[string]string{"ok": "echo out-line; echo err-line >&2", "bad": "echo failing; exit 7"} {
		cmd := exec.Command(bin, "event", "apply", "-f", "-")
		cmd.Env = s.env
		cmd.Stdin = strings.NewReader("name: " + name + "\nlanguage: bash\nscript: '" + script + "'\n")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("apply %s: %v %s", name, err, out)
		}
	}
	stdout, stderr, err := s.run("trigger", "ok", "--follow")
	if err != nil || stdout != "out-line\n" || !strings.Contains(stderr, "err-line") || !strings.Contains(stderr, "succeeded") {
		t.Errorf("trigger --follow: %v stdout %q stderr %q", err, stdout, stderr)
	}
	cmd := exec.Command(bin, "trigger", "bad", "--wait")
	cmd.Env = s.env
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 7 || !strings.Contains(string(out), "failed") {
		t.Errorf("trigger --wait of a failing run: %v %s; want exit 7", err, out)
	}
}

// trigger --wait waits for the retries and exits with the last attempt's
// status; not reaching the server exits 125, never a script's status.
func TestTriggerWaitFollowsRetries(t *testing.T) {
	t.Parallel()
	s := newServer(t, 1)
	s.env = append(s.env, "CRONIUM_TOKEN="+s.user("alice", "free"))
	s.start()
	cmd := exec.Command(bin, "event", "apply", "-f", "-")
	cmd.Env = s.env
	// Fails the first time, succeeds the second (a variable remembers).
	cmd.Stdin = strings.NewReader("name: flaky\nlanguage: bash\nretry: {max_attempts: 2, backoff: 1s}\n" +
		"script: 'if [ \"$(cronium_getVariable tried)\" = true ]; then echo second; else cronium_setVariable tried true; exit 4; fi'\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("apply: %v %s", err, out)
	}
	stdout, stderr, err := s.run("trigger", "flaky", "--follow")
	if err != nil || !strings.Contains(stderr, "its retry") || !strings.Contains(stdout, "second") || !strings.Contains(stderr, "succeeded") {
		t.Errorf("trigger --follow of a run that succeeds on retry: %v\nstdout %q\nstderr %q", err, stdout, stderr)
	}
	bad := exec.Command(bin, "trigger", "nope", "--wait")
	bad.Env = s.env
	out, err := bad.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 125 {
		t.Errorf("trigger --wait of an unknown event: %v %s; want exit 125", err, out)
	}
}
