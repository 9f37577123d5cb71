package sqlite

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	cronium "github.com/cronium/executor"
)

// A key works until it is revoked or expires, at once; a deleted user's
// keys stop; the audit log filters by actor and action kind.
func TestKeyLifecycleAndAudit(t *testing.T) {
	st, _ := setup(t)
	ctx := context.Background()
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	u, _ := st.CreateUser(ctx, "alice", "free", false)
	until := now.Add(time.Hour)
	key, info, err := st.NewKey(ctx, u.ID, "ci", &until)
	if err != nil || info.ID == 0 || info.Prefix != key[:10] {
		t.Fatalf("NewKey: %v %+v", err, info)
	}
	if got, k, err := st.Authenticate(ctx, key, now); err != nil || got.Name != "alice" || k.ID != info.ID || k.Name != "ci" {
		t.Fatalf("Authenticate: %v %+v %+v", err, got, k)
	}
	if _, _, err := st.Authenticate(ctx, key, until); !errors.Is(err, cronium.ErrNotFound) {
		t.Errorf("at its expiry: %v, want not found", err)
	}
	if _, err := st.RevokeKey(ctx, u.ID+1, info.ID, now); !errors.Is(err, cronium.ErrNotFound) {
		t.Errorf("revoking through another user: %v", err)
	}
	if k, err := st.RevokeKey(ctx, u.ID, info.ID, now); err != nil || k.RevokedAt == nil {
		t.Fatalf("revoke: %v %+v", err, k)
	}
	if _, _, err := st.Authenticate(ctx, key, now); !errors.Is(err, cronium.ErrNotFound) {
		t.Errorf("a revoked key: %v", err)
	}
	if _, err := st.RevokeKey(ctx, u.ID, info.ID, now); !errors.Is(err, cronium.ErrConflict) {
		t.Errorf("revoking twice: %v", err)
	}
	other, _ := st.CreateKey(ctx, u.ID)
	if err := st.SetVariable(ctx, u.ID, "k", []byte(`1`)); err != nil {
		t.Fatal(err)
	}
	if err := st.DeleteUser(ctx, u.ID, now); err != nil {
		t.Fatal(err)
	}
	if vars, _ := st.Variables(ctx, u.ID); len(vars) != 0 {
		t.Errorf("a deleted user's variables were kept: %v", vars)
	}
	if _, _, err := st.Authenticate(ctx, other, now); !errors.Is(err, cronium.ErrNotFound) {
		t.Errorf("a deleted user's key: %v", err)
	}
	if _, err := st.UserByName(ctx, "alice"); !errors.Is(err, cronium.ErrNotFound) {
		t.Errorf("a deleted user is still found: %v", err)
	}
	if _, err := st.CreateUser(ctx, "alice", "free", false); !errors.Is(err, cronium.ErrConflict) || !strings.Contains(err.Error(), "was deleted") {
		t.Errorf("a deleted user's name was given again: %v", err)
	}

	for _, e := range []AuditEntry{{Actor: "alice", Action: "event.trigger", Target: "alice/a"}, {Actor: "bob", Action: "event.apply", Target: "bob/b"},
		{Actor: "alice", Action: "key.revoke", Target: "alice/key 1"}, {Actor: "alice", Action: "event.triggered", Target: "x"}} {
		if err := st.Audit(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	got, err := st.AuditLog(ctx, AuditFilter{Actor: "alice", Action: "event."})
	if err != nil || len(got) != 2 || got[0].Action != "event.triggered" || got[1].Action != "event.trigger" {
		t.Errorf("alice's event actions, newest first: %v %+v", err, got)
	}
	if got, _ := st.AuditLog(ctx, AuditFilter{Action: "event.trigger"}); len(got) != 1 {
		t.Errorf("an exact action: %+v", got)
	}
	if got, _ := st.AuditLog(ctx, AuditFilter{Action: "key"}); len(got) != 1 || got[0].Action != "key.revoke" {
		t.Errorf("a kind without its dot: %+v", got)
	}
}
