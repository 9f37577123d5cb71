package notify_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cronium/executor/notify"
)

const secret = "0123456789abcdef-signing"

// request is what a receiver got.
type request struct {
	header http.Header
	body   []byte
}

// receiver is a real HTTP server on 127.0.0.1 that records requests and
// answers each with the next of its statuses (the last one repeats).
type receiver struct {
	*httptest.Server
	mu       sync.Mutex // guards got and statuses
	got      []request
	statuses []int
}

func newReceiver(t *testing.T, statuses ...int) *receiver {
	t.Helper()
	r := &receiver{statuses: statuses}
	r.Server = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.Close)
	return r
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	r.got = append(r.got, request{req.Header.Clone(), body})
	code := http.StatusOK
	if len(r.statuses) > 0 {
		code = r.statuses[0]
		if len(r.statuses) > 1 {
			r.statuses = r.statuses[1:]
		}
	}
	r.mu.Unlock()
	w.WriteHeader(code)
	io.WriteString(w, http.StatusText(code)+" from the receiver")
}

func (r *receiver) requests() []request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]request(nil), r.got...)
}

func webhook(url string) notify.Channel {
	return notify.Channel{Name: "ops", Type: notify.Webhook, URL: url, Secret: secret}
}

func message() notify.Message {
	code := 3
	return notify.Message{Event: "nightly-report", User: "alice", ExecutionID: "x1", Outcome: "failed", ExitCode: &code, Reason: "failure"}
}

var lan = &notify.Sender{AllowPrivate: true} // test receivers are on loopback

func TestWebhookIsSignedAndVerifies(t *testing.T) {
	r := newReceiver(t)
	if err := lan.Send(context.Background(), webhook(r.URL+"/hook"), "d-1", message()); err != nil {
		t.Fatal(err)
	}
	got := r.requests()
	if len(got) != 1 {
		t.Fatalf("the receiver got %d requests, want 1", len(got))
	}
	req := got[0]
	if err := notify.Verify([]byte(secret), req.header, req.body, time.Minute); err != nil {
		t.Errorf("Verify: %v", err)
	}
	if req.header.Get(notify.HeaderDelivery) != "d-1" || req.header.Get("Content-Type") != "application/json" {
		t.Errorf("headers %v", req.header)
	}
	var body map[string]any
	if err := json.Unmarshal(req.body, &body); err != nil {
		t.Fatal(err)
	}
	if body["delivery_id"] != "d-1" || body["event"] != "nightly-report" || body["exit_code"] != 3.0 || body["summary"] != "nightly-report failed (exit 3)" {
		t.Errorf("body %s", req.body)
	}
	if strings.Contains(string(req.body), secret) || strings.Contains(strings.Join(req.header.Values(notify.HeaderSignature), ""), secret) {
		t.Error("the secret was sent")
	}

	// A receiver with another secret, a changed body or an old timestamp refuses it.
	if err := notify.Verify([]byte("another secret!!"), req.header, req.body, time.Minute); !errors.Is(err, notify.ErrSignature) {
		t.Errorf("another secret: %v, want ErrSignature", err)
	}
	changed := append([]byte(nil), req.body...)
	changed[len(changed)-2] ^= 1
	if err := notify.Verify([]byte(secret), req.header, changed, time.Minute); !errors.Is(err, notify.ErrSignature) {
		t.Errorf("a changed body: %v, want ErrSignature", err)
	}
	old := req.header.Clone()
	old.Set(notify.HeaderTimestamp, "1000000000")
	if err := notify.Verify([]byte(secret), old, req.body, time.Minute); err == nil || !strings.Contains(err.Error(), "ago") {
		t.Errorf("an old timestamp: %v, want a refusal for its age", err)
	}
	none := req.header.Clone()
	none.Del(notify.HeaderSignature)
	if err := notify.Verify([]byte(secret), none, req.body, time.Minute); !errors.Is(err, notify.ErrSignature) {
		t.Errorf("no signature: %v, want ErrSignature", err)
	}
}

func TestStatusesArePermanentOrRetryable(t *testing.T) {
	tests := []struct {
		status    int
		permanent bool // false: retryable, or sent for 2xx
	}{
		{200, false}, {204, false},
		{400, true}, {401, true}, {404, true}, {410, true},
		{408, false}, {425, false}, {429, false},
		{500, false}, {502, false}, {503, false},
	}
	for _, tt := range tests {
		r := newReceiver(t, tt.status)
		err := lan.Send(context.Background(), webhook(r.URL), "d", message())
		if n := len(r.requests()); n != 1 {
			t.Errorf("%d: the receiver got %d requests, want 1", tt.status, n)
		}
		switch {
		case tt.status < 300:
			if err != nil {
				t.Errorf("%d: %v, want sent", tt.status, err)
			}
		case err == nil:
			t.Errorf("%d: sent, want an error", tt.status)
		case errors.Is(err, notify.ErrPermanent) != tt.permanent:
			t.Errorf("%d: %v: permanent %t, want %t", tt.status, err, !tt.permanent, tt.permanent)
		case !strings.Contains(err.Error(), "from the receiver"):
			t.Errorf("%d: %v, want the receiver's answer in the error", tt.status, err)
		}
	}
}

func TestRedirectIsNotFollowed(t *testing.T) {
	var mu sync.Mutex
	var paths []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		paths = append(paths, r.URL.Path)
		mu.Unlock()
		http.Redirect(w, r, "/elsewhere?token=abc", http.StatusTemporaryRedirect)
	}))
	defer srv.Close()
	err := lan.Send(context.Background(), webhook(srv.URL+"/hook"), "d", message())
	if !errors.Is(err, notify.ErrPermanent) || !strings.Contains(err.Error(), "redirect") {
		t.Errorf("got %v, want a permanent error about the redirect", err)
	}
	if strings.Contains(err.Error(), "token=abc") {
		t.Errorf("the error shows the redirect's query: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(paths) != 1 || paths[0] != "/hook" {
		t.Errorf("requests to %v, want only /hook", paths)
	}
}

func TestUnreachableReceiverIsRetryable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	err = lan.Send(context.Background(), webhook("http://"+addr+"/hook/secret-path"), "d", message())
	if err == nil || errors.Is(err, notify.ErrPermanent) || !strings.Contains(err.Error(), "refused") {
		t.Errorf("got %v, want a retryable connection refused", err)
	}
	if strings.Contains(err.Error(), "secret-path") {
		t.Errorf("the error shows the URL's path: %v", err)
	}
}

// The sender refuses inside addresses on the address it dials. Only
// 127.0.0.1 is ever contacted by this test (and only when allowed): the
// other literal addresses are refused by the dial check, before a packet.
func TestPrivateAddressesAreRefused(t *testing.T) {
	r := newReceiver(t)
	port := r.Listener.Addr().(*net.TCPAddr).Port
	public := &notify.Sender{}
	for _, url := range []string{
		r.URL, // 127.0.0.1, a live receiver
		"http://localhost:" + strconv.Itoa(port) + "/hook", // a name that resolves to loopback
		"http://169.254.169.254/latest/meta-data/",         // cloud metadata
		"http://10.0.0.1/hook",                             // RFC 1918
		"http://[::1]:" + strconv.Itoa(port) + "/hook",     // IPv6 loopback
		"http://100.64.0.1/hook",                           // CGNAT
		"http://[fe80::1]/hook",                            // IPv6 link-local
		"http://0.0.0.0:" + strconv.Itoa(port) + "/hook",   // unspecified
		"http://[::ffff:127.0.0.1]:" + strconv.Itoa(port),  // loopback in IPv6 clothing
	} {
		start := time.Now()
		err := public.Send(context.Background(), webhook(url), "d", message())
		if !errors.Is(err, notify.ErrBlocked) || !errors.Is(err, notify.ErrPermanent) {
			t.Errorf("%s: %v, want a permanent refusal of the address", url, err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("%s: refused after %s: the check must come before connecting", url, d)
		}
	}
	if n := len(r.requests()); n != 0 {
		t.Errorf("the loopback receiver got %d requests, want 0", n)
	}
	if err := lan.Send(context.Background(), webhook(r.URL), "d", message()); err != nil || len(r.requests()) != 1 {
		t.Errorf("with AllowPrivate: %v, %d requests; want it delivered", err, len(r.requests()))
	}
}

func TestSlackBody(t *testing.T) {
	r := newReceiver(t)
	m := message()
	m.Error = "exit status 3 <!here>"
	ch := notify.Channel{Name: "chat", Type: notify.Slack, URL: r.URL + "/services/T0/B0/token"}
	if err := lan.Send(context.Background(), ch, "d-1", m); err != nil {
		t.Fatal(err)
	}
	got := r.requests()
	if len(got) != 1 {
		t.Fatalf("the receiver got %d requests, want 1", len(got))
	}
	var body map[string]any
	if err := json.Unmarshal(got[0].body, &body); err != nil || len(body) != 1 {
		t.Fatalf("body %s: want exactly one key, text", got[0].body)
	}
	text, _ := body["text"].(string)
	if !strings.HasPrefix(text, "[cronium] nightly-report failed (exit 3)") || strings.Contains(text, "\n") || strings.Contains(text, "<!here>") {
		t.Errorf("text %q: want one line starting with the summary, mentions escaped", text)
	}
	if got[0].header.Get(notify.HeaderSignature) != "" {
		t.Error("a Slack request carries a webhook signature, though a Slack channel has no secret")
	}
}

func TestInvalidChannelIsPermanent(t *testing.T) {
	err := lan.Send(context.Background(), notify.Channel{Name: "ops", Type: notify.Webhook, URL: "ftp://example.com"}, "d", message())
	if !errors.Is(err, notify.ErrPermanent) || !strings.Contains(err.Error(), "channel.url") {
		t.Errorf("got %v, want a permanent error naming channel.url", err)
	}
}
