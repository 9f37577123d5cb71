package main

import (
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
