package api_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// A revoked key gets 401 at once, an expired one too; keys of others cannot
// be revoked; the audit log shows who triggered what, with which key.
func TestKeysRevocationExpiryAndAudit(t *testing.T) {
	e := setup(t)
	st, created := e.call(t, e.alice, "POST", "/v1/users/alice/keys", map[string]any{"name": "laptop"})
	if st != 201 {
		t.Fatalf("create key: %d %v", st, created)
	}
	key2 := created["key"].(string)
	id := int(created["info"].(map[string]any)["id"].(float64))
	if st, _ := e.call(t, key2, "GET", "/v1/me", nil); st != 200 {
		t.Fatalf("new key: %d", st)
	}
	_, list := e.call(t, e.alice, "GET", "/v1/users/alice/keys", nil)
	if items := list["items"].([]any); len(items) != 2 || items[1].(map[string]any)["name"] != "laptop" || strings.Contains(fmt.Sprint(list), key2) {
		t.Errorf("key list %v: want two keys, the second named laptop, and no key shown", list)
	}
	revoke := fmt.Sprintf("/v1/users/alice/keys/%d", id)
	if st, body := e.call(t, e.bob, "DELETE", revoke, nil); st != 404 {
		t.Errorf("bob revoking alice's key: %d %v", st, body)
	}
	if st, body := e.call(t, e.alice, "DELETE", revoke, nil); st != 200 || body["revoked_at"] == nil {
		t.Fatalf("revoke: %d %v", st, body)
	}
	if st, _ := e.call(t, key2, "GET", "/v1/me", nil); st != 401 {
		t.Errorf("revoked key: %d, want 401 at once", st)
	}
	if st, body := e.call(t, e.alice, "DELETE", revoke, nil); st != 409 {
		t.Errorf("revoking twice: %d %v", st, body)
	}
	if st, _ := e.call(t, e.alice, "GET", "/v1/me", nil); st != 200 {
		t.Errorf("alice's first key stopped working: %d", st)
	}

	_, short := e.call(t, e.alice, "POST", "/v1/users/alice/keys", map[string]any{"expires_in": "1s"})
	shortKey := short["key"].(string)
	if st, _ := e.call(t, shortKey, "GET", "/v1/me", nil); st != 200 {
		t.Fatalf("fresh key: %d", st)
	}
	time.Sleep(1100 * time.Millisecond) // the key's whole life
	if st, body := e.call(t, shortKey, "GET", "/v1/me", nil); st != 401 || !strings.Contains(fmt.Sprint(body), "expired") {
		t.Errorf("expired key: %d %v", st, body)
	}
	for _, bad := range []any{"soon", "-1h", "5000d", 12} {
		st, body := e.call(t, e.alice, "POST", "/v1/users/alice/keys", map[string]any{"expires_in": bad})
		if _, field, _ := errOf(body); st != 400 || field != "expires_in" {
			t.Errorf("expires_in %v: %d %v", bad, st, body)
		}
	}

	// Who triggered what.
	e.call(t, e.alice, "PUT", "/v1/events/job", okEvent)
	_, x := e.call(t, e.alice, "POST", "/v1/events/job/trigger", map[string]any{})
	if st, _ := e.call(t, e.alice, "GET", "/v1/audit", nil); st != 403 {
		t.Errorf("audit log for a non-admin: %d", st)
	}
	st, log := e.call(t, e.root, "GET", "/v1/audit?action=event.", nil)
	if st != 200 {
		t.Fatalf("audit: %d %v", st, log)
	}
	var found bool
	for _, it := range log["items"].([]any) {
		en := it.(map[string]any)
		if en["action"] == "event.trigger" && en["actor"] == "alice" && en["target"] == "alice/job" &&
			en["detail"] == "execution "+x["id"].(string) && en["key_id"].(float64) > 0 && en["source"] != "" {
			found = true
		}
		if en["action"] != "event.trigger" && en["action"] != "event.apply" {
			t.Errorf("action filter event. let through %v", en)
		}
	}
	if !found {
		t.Errorf("the audit log does not show alice's trigger: %v", log)
	}
	// A request that failed is not recorded.
	e.call(t, e.alice, "POST", "/v1/events/nope/trigger", map[string]any{})
	_, log = e.call(t, e.root, "GET", "/v1/audit?actor=alice&action=event.trigger", nil)
	if n := len(log["items"].([]any)); n != 1 {
		t.Errorf("%d trigger entries, want 1 (the failed one is not recorded)", n)
	}
}

// Admins list, re-tier and delete users; a deleted user's keys stop at
// once and their name stays taken; nobody else may.
func TestUserLifecycle(t *testing.T) {
	e := setup(t)
	if st, _ := e.call(t, e.alice, "GET", "/v1/users", nil); st != 403 {
		t.Errorf("user list for a non-admin: %d", st)
	}
	_, users := e.call(t, e.root, "GET", "/v1/users", nil)
	if n := len(users["items"].([]any)); n != 3 {
		t.Errorf("users: %v", users)
	}
	if st, body := e.call(t, e.root, "PUT", "/v1/users/alice/tier", map[string]any{"tier": "Gold"}); st != 400 {
		t.Errorf("bad tier: %d %v", st, body)
	}
	if st, body := e.call(t, e.root, "PUT", "/v1/users/alice/tier", map[string]any{"tier": "pro"}); st != 200 || body["tier"] != "pro" {
		t.Errorf("set tier: %d %v", st, body)
	}
	if st, _ := e.call(t, e.alice, "PUT", "/v1/users/alice/tier", map[string]any{"tier": "enterprise"}); st != 403 {
		t.Errorf("alice changing her own tier: %d", st)
	}
	if _, me := e.call(t, e.alice, "GET", "/v1/users/alice", nil); me["tier"] != "pro" {
		t.Errorf("alice: %v", me)
	}
	if st, _ := e.call(t, e.alice, "GET", "/v1/users/bob", nil); st != 404 {
		t.Errorf("alice reading bob: %d", st)
	}
	if st, body := e.call(t, e.root, "DELETE", "/v1/users/root", nil); st != 400 {
		t.Errorf("deleting yourself: %d %v", st, body)
	}
	e.call(t, e.bob, "PUT", "/v1/events/job", okEvent)
	if st, _ := e.call(t, e.root, "DELETE", "/v1/users/bob", nil); st != http.StatusNoContent {
		t.Fatalf("delete bob: %d", st)
	}
	if st, _ := e.call(t, e.bob, "GET", "/v1/me", nil); st != 401 {
		t.Errorf("deleted user's key: %d", st)
	}
	if st, body := e.call(t, e.root, "POST", "/v1/users", map[string]any{"name": "bob", "tier": "free"}); st != 409 {
		t.Errorf("re-creating bob: %d %v", st, body)
	}
	_, users = e.call(t, e.root, "GET", "/v1/users", nil)
	if n := len(users["items"].([]any)); n != 2 {
		t.Errorf("users after deleting bob: %v", users)
	}
	_, log := e.call(t, e.root, "GET", "/v1/audit?action=user.", nil)
	var actions []string
	for _, it := range log["items"].([]any) {
		actions = append(actions, it.(map[string]any)["action"].(string)+" "+it.(map[string]any)["target"].(string))
	}
	if strings.Join(actions, ", ") != "user.delete bob, user.set-tier alice" {
		t.Errorf("audit of user changes: %v", actions)
	}
}

// Moving a user to a smaller tier names the events it no longer allows.
func TestTierDowngradeNamesEventsOverTheTier(t *testing.T) {
	e := setup(t)
	big := map[string]any{"name": "big", "language": "bash", "script": "true", "resources": map[string]any{"memory": "2Gi"}}
	if st, body := e.call(t, e.bob, "PUT", "/v1/events/big", big); st != 201 {
		t.Fatalf("apply: %d %v", st, body)
	}
	e.call(t, e.bob, "PUT", "/v1/events/small", map[string]any{"name": "small", "language": "bash", "script": "true"})
	st, body := e.call(t, e.root, "PUT", "/v1/users/bob/tier", map[string]any{"tier": "free"})
	over, _ := body["events_over_tier"].([]any)
	if st != 200 || body["tier"] != "free" || len(over) != 1 || !strings.HasPrefix(over[0].(string), "big: ") || !strings.Contains(over[0].(string), "memory") {
		t.Errorf("downgrade: %d %v", st, body)
	}
}
