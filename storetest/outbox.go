package storetest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	cronium "github.com/cronium/executor"
	"github.com/cronium/executor/notify"
	"github.com/cronium/executor/store"
)

func init() {
	add("OutboxEnqueueFillsInAndSkipsRepeats", testOutboxEnqueueFillsInAndSkipsRepeats)
	add("OutboxLeaseRetryAndMarks", testOutboxLeaseRetryAndMarks)
	add("OutboxFinalFailureIsNeverClaimed", testOutboxFinalFailureIsNeverClaimed)
	add("OutboxOneClaimPerChannel", testOutboxOneClaimPerChannel)
	add("OutboxConcurrentClaimsNeverOverlap", testOutboxConcurrentClaimsNeverOverlap)
	add("OutboxUnreadableMessageFailsAtOnce", testOutboxUnreadableMessageFailsAtOnce)
}

var outboxT0 = time.Date(2026, 6, 1, 10, 0, 0, 0, time.UTC)

// outboxSetup returns a store with user alice (and her ID).
func outboxSetup(t *testing.T, h Harness) (Store, int64) {
	t.Helper()
	st := open(t, h)
	u, err := st.CreateUser(context.Background(), "alice", "free", false)
	if err != nil {
		t.Fatal(err)
	}
	return st, u.ID
}

func delivery(user int64, exec, channel, reason string) notify.Delivery {
	code := 3
	return notify.Delivery{UserID: user, Channel: channel, CreatedAt: outboxT0, Message: notify.Message{
		Event: "nightly-report", User: "alice", ExecutionID: exec, Outcome: "failed", ExitCode: &code,
		StartedAt: outboxT0.Add(-time.Minute), FinishedAt: outboxT0, Output: "boom\n", Reason: reason,
	}}
}

func claimIDs(t *testing.T, st Store, now time.Time, limit int) []string {
	t.Helper()
	ds, err := st.ClaimDue(context.Background(), now, limit)
	if err != nil {
		t.Fatalf("ClaimDue: %v", err)
	}
	ids := []string{}
	for _, d := range ds {
		ids = append(ids, d.ID)
	}
	return ids
}

func testOutboxEnqueueFillsInAndSkipsRepeats(t *testing.T, h Harness) {
	st, alice := outboxSetup(t, h)
	ctx := context.Background()
	ds := []notify.Delivery{delivery(alice, "x1", "ops", "failure"), delivery(alice, "x1", "pager", "failure")}
	if err := st.EnqueueNotifications(ctx, ds); err != nil {
		t.Fatal(err)
	}
	for _, d := range ds {
		if d.ID == "" || d.ExecutionID != "x1" || d.Reason != "failure" || d.Status != notify.StatusPending || !d.NextAt.Equal(outboxT0) {
			t.Errorf("enqueued delivery not filled in: %+v", d)
		}
	}
	// The same execution, channel and reason again (a retry of the enqueue after a crash).
	again := []notify.Delivery{delivery(alice, "x1", "ops", "failure")}
	if err := st.EnqueueNotifications(ctx, again); err != nil {
		t.Fatal(err)
	}
	got, err := st.NotificationsFor(ctx, "x1")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("got %d notifications, want 2 (the repeat skipped): %+v", len(got), got)
	}
	d := got[0]
	if d.ID != ds[0].ID && d.ID != ds[1].ID {
		t.Errorf("listed ID %s, want one of the enqueued", d.ID)
	}
	if d.Message.ExitCode == nil || *d.Message.ExitCode != 3 || !d.Message.StartedAt.Equal(outboxT0.Add(-time.Minute)) || d.Message.Output != "boom\n" {
		t.Errorf("message did not round-trip: %+v", d.Message)
	}
	if d.UserID != alice || d.Attempts != 0 || d.Status != notify.StatusPending || !d.CreatedAt.Equal(outboxT0) || !d.SentAt.IsZero() {
		t.Errorf("stored delivery: %+v", d)
	}
	if got, _ := st.NotificationsFor(ctx, "other"); len(got) != 0 {
		t.Errorf("another execution lists %d notifications, want 0", len(got))
	}

	bad := delivery(alice, "x2", "", "failure")
	if err := st.EnqueueNotifications(ctx, []notify.Delivery{bad}); !errors.Is(err, cronium.ErrInvalid) {
		t.Errorf("a delivery without a channel: %v, want invalid", err)
	}
}

func testOutboxLeaseRetryAndMarks(t *testing.T, h Harness) {
	st, alice := outboxSetup(t, h)
	ctx := context.Background()
	ds := []notify.Delivery{delivery(alice, "x1", "ops", "failure")}
	if err := st.EnqueueNotifications(ctx, ds); err != nil {
		t.Fatal(err)
	}
	id := ds[0].ID

	claimed, err := st.ClaimDue(ctx, outboxT0, 10)
	if err != nil || len(claimed) != 1 || claimed[0].ID != id || claimed[0].Attempts != 1 {
		t.Fatalf("first claim: %+v %v, want %s with attempt 1", claimed, err, id)
	}
	if got := claimIDs(t, st, outboxT0, 10); len(got) != 0 {
		t.Fatalf("claimed again while leased: %v", got)
	}
	// The claimer crashed: nobody marks it. It is due again when the lease ends, not before.
	if got := claimIDs(t, st, outboxT0.Add(store.NotificationLease-time.Nanosecond), 10); len(got) != 0 {
		t.Fatalf("claimed again before the lease ended: %v", got)
	}
	again, err := st.ClaimDue(ctx, outboxT0.Add(store.NotificationLease), 10)
	if err != nil || len(again) != 1 || again[0].Attempts != 2 {
		t.Fatalf("claim after the lease: %+v %v, want the delivery with attempt 2", again, err)
	}
	// The crashed claimer's late report must not overwrite the new claim's.
	if err := st.MarkFailed(ctx, id, 1, outboxT0, "stale", false); !errors.Is(err, cronium.ErrConflict) {
		t.Errorf("a stale MarkFailed: %v, want conflict", err)
	}
	next := outboxT0.Add(store.NotificationLease + 20*time.Second)
	if err := st.MarkFailed(ctx, id, 2, next, "post to https://example.com: answered 503 Service Unavailable", false); err != nil {
		t.Fatal(err)
	}
	if got := claimIDs(t, st, next.Add(-time.Nanosecond), 10); len(got) != 0 {
		t.Fatalf("claimed before its backoff ended: %v", got)
	}
	if got := claimIDs(t, st, next, 10); len(got) != 1 {
		t.Fatalf("not claimed when its backoff ended: %v", got)
	}
	sentAt := next.Add(time.Second)
	if err := st.MarkSent(ctx, id, sentAt); err != nil {
		t.Fatal(err)
	}
	if got := claimIDs(t, st, next.Add(24*time.Hour), 10); len(got) != 0 {
		t.Fatalf("a sent delivery was claimed: %v", got)
	}
	list, _ := st.NotificationsFor(ctx, "x1")
	if len(list) != 1 {
		t.Fatalf("got %d notifications, want 1", len(list))
	}
	d := list[0]
	if d.Status != notify.StatusSent || d.Attempts != 3 || !d.SentAt.Equal(sentAt) || d.LastError == "" {
		t.Errorf("after two failures and a send: %+v, want sent after 3 attempts, with the last error kept", d)
	}
	if err := st.MarkSent(ctx, "nope", sentAt); !errors.Is(err, cronium.ErrNotFound) {
		t.Errorf("MarkSent of an unknown delivery: %v, want not found", err)
	}
}

func testOutboxFinalFailureIsNeverClaimed(t *testing.T, h Harness) {
	st, alice := outboxSetup(t, h)
	ctx := context.Background()
	ds := []notify.Delivery{delivery(alice, "x1", "ops", "failure")}
	st.EnqueueNotifications(ctx, ds)
	claimIDs(t, st, outboxT0, 1)
	if err := st.MarkFailed(ctx, ds[0].ID, 1, outboxT0.Add(time.Minute), "answered 400 Bad Request", true); err != nil {
		t.Fatal(err)
	}
	if got := claimIDs(t, st, outboxT0.Add(48*time.Hour), 10); len(got) != 0 {
		t.Errorf("a failed delivery was claimed: %v", got)
	}
	list, _ := st.NotificationsFor(ctx, "x1")
	if len(list) != 1 || list[0].Status != notify.StatusFailed || list[0].LastError != "answered 400 Bad Request" {
		t.Errorf("after a final failure: %+v", list)
	}
}

func testOutboxOneClaimPerChannel(t *testing.T, h Harness) {
	st, alice := outboxSetup(t, h)
	ctx := context.Background()
	bob, _ := st.CreateUser(ctx, "bob", "free", false)
	var ds []notify.Delivery
	for i := range 3 {
		d := delivery(alice, fmt.Sprintf("a%d", i), "ops", "failure")
		d.CreatedAt = outboxT0.Add(time.Duration(i) * time.Second)
		ds = append(ds, d)
	}
	ds = append(ds, delivery(alice, "a9", "pager", "failure"), delivery(bob.ID, "b1", "ops", "failure"))
	if err := st.EnqueueNotifications(ctx, ds); err != nil {
		t.Fatal(err)
	}
	now := outboxT0.Add(time.Minute)
	got := claimIDs(t, st, now, 10)
	want := map[string]bool{ds[0].ID: true, ds[3].ID: true, ds[4].ID: true} // alice's oldest on ops, her pager, bob's ops
	if len(got) != 3 {
		t.Fatalf("claimed %v, want 3: one per channel", got)
	}
	for _, id := range got {
		if !want[id] {
			t.Errorf("claimed %s, want only the oldest delivery of each channel", id)
		}
	}
	if got := claimIDs(t, st, now, 10); len(got) != 0 {
		t.Fatalf("claimed %v while every channel has a delivery in flight", got)
	}
	st.MarkSent(ctx, ds[0].ID, now)
	if got := claimIDs(t, st, now, 10); len(got) != 1 || got[0] != ds[1].ID {
		t.Errorf("after alice's ops delivery was sent: claimed %v, want [%s]", got, ds[1].ID)
	}
}

// Two stores on one database are two nodes: concurrent claimers never get the
// same delivery.
func testOutboxConcurrentClaimsNeverOverlap(t *testing.T, h Harness) {
	st, alice := outboxSetup(t, h)
	ctx := context.Background()
	other := again(t, h, st)
	const n = 120
	var ds []notify.Delivery
	for i := range n {
		ds = append(ds, delivery(alice, fmt.Sprintf("x%d", i), fmt.Sprintf("ch%d", i%12), "failure"))
	}
	if err := st.EnqueueNotifications(ctx, ds); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	seen := map[string]int{}
	total := 0
	var wg sync.WaitGroup
	deadline := time.Now().Add(30 * time.Second)
	for i := range 8 {
		s := st
		if i%2 == 1 {
			s = other
		}
		wg.Go(func() {
			for time.Now().Before(deadline) {
				mu.Lock()
				finished := total == n
				mu.Unlock()
				if finished {
					return
				}
				claimed, err := s.ClaimDue(ctx, outboxT0, 3)
				if err != nil {
					t.Errorf("ClaimDue: %v", err)
					return
				}
				for _, d := range claimed {
					mu.Lock()
					seen[d.ID]++
					total++
					mu.Unlock()
					if err := s.MarkSent(ctx, d.ID, outboxT0); err != nil {
						t.Errorf("MarkSent: %v", err)
					}
				}
			}
		})
	}
	wg.Wait()
	if total != n || len(seen) != n {
		t.Fatalf("claimed %d times, %d distinct, want %d of each", total, len(seen), n)
	}
	for id, k := range seen {
		if k != 1 {
			t.Errorf("delivery %s was claimed %d times", id, k)
		}
	}
}

func testOutboxUnreadableMessageFailsAtOnce(t *testing.T, h Harness) {
	st, alice := outboxSetup(t, h)
	ctx := context.Background()
	ds := []notify.Delivery{delivery(alice, "x1", "ops", "failure"), delivery(alice, "x1", "pager", "failure")}
	st.EnqueueNotifications(ctx, ds)
	exec(t, h, st, `UPDATE notifications SET message = '{' WHERE id = ?`, ds[0].ID)
	if got := claimIDs(t, st, outboxT0, 10); len(got) != 1 || got[0] != ds[1].ID {
		t.Errorf("claimed %v, want only the readable delivery %s", got, ds[1].ID)
	}
	list, _ := st.NotificationsFor(ctx, "x1")
	for _, d := range list {
		if d.ID == ds[0].ID && (d.Status != notify.StatusFailed || !strings.Contains(d.LastError, "cannot be read")) {
			t.Errorf("the unreadable delivery: %+v, want failed as unreadable", d)
		}
	}
}
