package notify

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"sync"
	"syscall"
	"time"

	cronium "github.com/cronium/executor"
)

// Limits of one delivery attempt.
const (
	// MaxSendTime is the longest one Send takes, connecting included.
	// Outbox stores lease a claimed delivery for longer than this.
	MaxSendTime = 15 * time.Second
	// dialTimeout bounds connecting (and a webhook's TLS handshake).
	dialTimeout = 5 * time.Second
	// maxResponse is how much of a receiver's answer is read.
	maxResponse = 64 << 10
)

// ErrPermanent marks a failure that trying again cannot fix (the receiver
// refused the request with a 4xx, the address is not allowed, the channel
// is gone): a Worker does not retry it. Check it with errors.Is.
var ErrPermanent = errors.New("permanent failure")

// Permanent marks err as permanent (errors.Is(err, ErrPermanent) holds)
// and keeps its message and chain. It returns nil for nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanentError{err}
}

type permanentError struct{ err error }

func (e permanentError) Error() string        { return e.err.Error() }
func (e permanentError) Unwrap() error        { return e.err }
func (e permanentError) Is(target error) bool { return target == ErrPermanent }

// ErrBlocked marks a connection the Sender refused to make because of the
// address it would reach (loopback, private, link-local, ...). Such errors
// are also permanent.
var ErrBlocked = errors.New("address not allowed")

// blockedError is a dial refused before it connected.
type blockedError struct {
	addr   netip.Addr
	reason string
}

func (e *blockedError) Error() string {
	return fmt.Sprintf("refused to connect to %s, a %s: notifications go to public addresses only, unless the server allows private ones", e.addr, e.reason)
}

func (e *blockedError) Is(target error) bool { return target == ErrBlocked || target == ErrPermanent }

// deniedReason says why ip must not be dialed: the ranges egress from a
// sandbox never reaches (cronium.DeniedPrefixes), public IPv6 excepted.
func deniedReason(ip netip.Addr) (string, bool) {
	if !ip.IsValid() {
		return "invalid address", true
	}
	ip = ip.Unmap()
	for _, p := range cronium.DeniedPrefixes() {
		if p.Contains(ip) {
			reason, _ := cronium.DeniedIP(ip)
			return reason, true
		}
	}
	return "", false
}

// Sender delivers messages. Its zero value refuses private addresses and
// uses the system's root certificates. Use it through a pointer; it is
// safe for concurrent use, and its settings must not change after the
// first Send. It keeps no connection open between sends.
type Sender struct {
	// AllowPrivate lets the sender connect to loopback, private,
	// link-local, CGNAT and other special addresses: for operators whose
	// receivers are on their LAN, and tests. Default false: only public
	// addresses, checked on each address actually dialed, so a name that
	// resolves (or re-resolves) to an inside address is refused too.
	AllowPrivate bool
	// TLS, when set, is the base TLS configuration for https webhooks and
	// STARTTLS (a private CA in RootCAs). Default: the system roots.
	TLS *tls.Config
	// Hostname names this host in SMTP's EHLO and in Message-IDs.
	// Default "localhost" (EHLO) and "cronium" (Message-ID).
	Hostname string

	once   sync.Once
	dialer *net.Dialer
	client *http.Client
}

func (s *Sender) init() {
	s.once.Do(func() {
		s.dialer = &net.Dialer{Timeout: dialTimeout, ControlContext: s.control}
		s.client = &http.Client{
			Transport: &http.Transport{
				Proxy:                  nil, // a proxy would be dialed instead of the receiver, defeating the address check
				DialContext:            s.dialer.DialContext,
				TLSClientConfig:        s.TLS.Clone(),
				TLSHandshakeTimeout:    dialTimeout,
				DisableKeepAlives:      true,
				MaxResponseHeaderBytes: maxResponse,
			},
			Timeout: MaxSendTime,
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse
			},
		}
	})
}

// trustedKey marks the context of a send on a Trusted channel.
type trustedKey struct{}

// control checks each address the sender is about to connect to, after
// name resolution and before the connection is made.
func (s *Sender) control(ctx context.Context, _, address string, _ syscall.RawConn) error {
	if s.AllowPrivate || ctx.Value(trustedKey{}) != nil {
		return nil
	}
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("refused to connect to %q: not an IP address and port", address)
	}
	if reason, bad := deniedReason(ap.Addr()); bad {
		return &blockedError{ap.Addr(), reason}
	}
	return nil
}

// Send delivers msg on ch once, without retrying. deliveryID identifies
// the delivery to the receiver (the same on every attempt). It returns nil
// once the receiver accepted the message; an error wrapping ErrPermanent
// when trying again cannot help (an invalid channel, a 4xx answer other
// than 408, 425 and 429, a redirect, a refused address, a 5xx SMTP reply);
// and another error, worth retrying, otherwise. Errors never show a URL's
// path or query, nor any secret. Send blocks at most MaxSendTime.
func (s *Sender) Send(ctx context.Context, ch Channel, deliveryID string, msg Message) error {
	if err := ch.Validate("channel"); err != nil {
		return Permanent(fmt.Errorf("channel %s is not usable: %w", ch.Name, err))
	}
	s.init()
	if ch.Trusted {
		ctx = context.WithValue(ctx, trustedKey{}, true)
	}
	ctx, cancel := context.WithTimeout(ctx, MaxSendTime)
	defer cancel()
	now := time.Now()
	switch ch.Type {
	case Webhook:
		body, err := msg.webhookJSON(deliveryID, now)
		if err != nil {
			return Permanent(err)
		}
		ts := strconv.FormatInt(now.Unix(), 10)
		return s.post(ctx, ch.URL, body, http.Header{
			HeaderDelivery:  {deliveryID},
			HeaderTimestamp: {ts},
			HeaderSignature: {signature([]byte(ch.Secret), ts, body)},
		})
	case Slack:
		body, err := msg.slackJSON()
		if err != nil {
			return Permanent(err)
		}
		return s.post(ctx, ch.URL, body, nil)
	default: // Email: Validate accepts no other type
		return s.mail(ctx, ch, deliveryID, msg, now)
	}
}

// post sends one JSON request and classifies the answer.
func (s *Sender) post(ctx context.Context, rawURL string, body []byte, header http.Header) error {
	where := "post to " + redactURL(rawURL)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, rawURL, bytes.NewReader(body))
	if err != nil {
		return Permanent(fmt.Errorf("%s: the URL cannot be used", where))
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "cronium-notify/1")
	resp, err := s.client.Do(req)
	if err != nil {
		return dialError(where, err)
	}
	defer resp.Body.Close()
	got, _ := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	answer := "answered " + resp.Status
	if excerpt := cut(oneLine(string(got)), 200); excerpt != "" {
		answer += ": " + excerpt
	}
	code := resp.StatusCode
	switch {
	case code >= 200 && code <= 299:
		return nil
	case code >= 300 && code <= 399:
		to := resp.Header.Get("Location")
		if u, err := resp.Request.URL.Parse(to); err == nil && to != "" {
			to = redactURL(u.String())
		}
		return Permanent(fmt.Errorf("%s: %s, a redirect to %s, which is not followed: set the channel's URL to the final address", where, resp.Status, to))
	case code == http.StatusRequestTimeout || code == http.StatusTooEarly || code == http.StatusTooManyRequests:
		return fmt.Errorf("%s: %s", where, answer)
	case code >= 400 && code <= 499:
		return Permanent(fmt.Errorf("%s: %s", where, answer))
	}
	return fmt.Errorf("%s: %s", where, answer)
}

// dialError describes a failure to reach a receiver without the URL that
// net/http puts in its errors (a Slack URL's path is its secret).
func dialError(where string, err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s: not done within %s: %w", where, MaxSendTime, err)
	}
	return fmt.Errorf("%s: %w", where, err)
}
