package notify

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Headers of a webhook request.
const (
	// HeaderDelivery carries the delivery's ID: the same on every attempt,
	// so a receiver can drop repeats.
	HeaderDelivery = "X-Cronium-Delivery"
	// HeaderTimestamp carries the Unix time, in seconds, the request was signed.
	HeaderTimestamp = "X-Cronium-Timestamp"
	// HeaderSignature carries "sha256=" and the hex HMAC-SHA256, keyed by
	// the channel's secret, of the timestamp, ".", and the body.
	HeaderSignature = "X-Cronium-Signature"
)

// DefaultMaxAge is how old a signature Verify accepts when given no maxAge.
const DefaultMaxAge = 5 * time.Minute

// ErrSignature marks a webhook request whose signature Verify refused.
var ErrSignature = errors.New("webhook signature refused")

// signature computes the HeaderSignature value of body signed at ts.
func signature(secret []byte, ts string, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(ts))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// Verify checks a webhook request from Cronium: that header carries a
// signature of body by secret, made at most maxAge ago (and not more than
// maxAge ahead, for clock skew). maxAge <= 0 means DefaultMaxAge. A
// receiver calls it on the raw body, before decoding it. The error wraps
// ErrSignature and says what was wrong.
func Verify(secret []byte, header http.Header, body []byte, maxAge time.Duration) error {
	if maxAge <= 0 {
		maxAge = DefaultMaxAge
	}
	ts := header.Get(HeaderTimestamp)
	if ts == "" {
		return fmt.Errorf("%w: no %s header", ErrSignature, HeaderTimestamp)
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: %s %q is not a Unix time in seconds", ErrSignature, HeaderTimestamp, ts)
	}
	if age := time.Since(time.Unix(sec, 0)); age > maxAge || age < -maxAge {
		return fmt.Errorf("%w: signed %s ago, more than the %s accepted (a replay, or clocks apart)", ErrSignature, age.Round(time.Second), maxAge)
	}
	got := header.Get(HeaderSignature)
	if got == "" {
		return fmt.Errorf("%w: no %s header", ErrSignature, HeaderSignature)
	}
	if !strings.HasPrefix(got, "sha256=") {
		return fmt.Errorf("%w: %s is not sha256=<hex>", ErrSignature, HeaderSignature)
	}
	if !hmac.Equal([]byte(got), []byte(signature(secret, ts, body))) {
		return fmt.Errorf("%w: the signature does not match the body (a different secret, or a changed body)", ErrSignature)
	}
	return nil
}
