package notify_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/cronium/executor/notify"
)

// A webhook receiver checks each request with Verify before trusting it,
// and drops repeats by the delivery ID.
func ExampleVerify() {
	secret := []byte("a-long-random-signing-secret")
	got := make(chan string, 1)
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			http.Error(w, "cannot read the body", http.StatusBadRequest)
			return
		}
		if err := notify.Verify(secret, r.Header, body, 5*time.Minute); err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		var m struct {
			Summary string `json:"summary"`
		}
		json.Unmarshal(body, &m)
		got <- r.Header.Get(notify.HeaderDelivery) + ": " + m.Summary
	}))
	defer receiver.Close()

	sender := &notify.Sender{AllowPrivate: true} // the receiver is on loopback
	ch := notify.Channel{Name: "ops", Type: notify.Webhook, URL: receiver.URL, Secret: string(secret)}
	code := 3
	msg := notify.Message{Event: "nightly-report", User: "alice", ExecutionID: "3fa9", Outcome: "failed", ExitCode: &code, Reason: "failure"}
	if err := sender.Send(context.Background(), ch, "d-1", msg); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(<-got)
	// Output: d-1: nightly-report failed (exit 3)
}
