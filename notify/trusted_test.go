package notify_test

import (
	"context"
	"errors"
	"testing"

	"github.com/cronium/executor/notify"
)

// A Trusted channel (the operator's, when the configuration allows private
// addresses) reaches a loopback receiver through a Sender that refuses
// private addresses; the same channel untrusted (a user's) does not.
func TestTrustedChannelsAloneReachPrivateAddresses(t *testing.T) {
	r := newReceiver(t)
	s := &notify.Sender{}
	ch := webhook(r.URL)
	if err := s.Send(context.Background(), ch, "d1", message()); !errors.Is(err, notify.ErrBlocked) {
		t.Errorf("an untrusted channel to loopback: %v, want refused", err)
	}
	ch.Trusted = true
	if err := s.Send(context.Background(), ch, "d2", message()); err != nil {
		t.Errorf("a trusted channel to loopback: %v", err)
	}
	if got := r.requests(); len(got) != 1 || got[0].header.Get("X-Cronium-Delivery") != "d2" {
		t.Errorf("the receiver got %d requests, want the trusted one alone", len(got))
	}
}
