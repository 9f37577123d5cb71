package notify

import (
	"fmt"
	"net"
	"net/mail"
	"net/url"
	"strconv"
	"strings"

	cronium "github.com/cronium/executor"
)

// Channel types.
const (
	// Webhook posts the message as signed JSON to a URL.
	Webhook = "webhook"
	// Slack posts a one-line summary to a Slack-compatible incoming webhook
	// (Slack, Mattermost, Rocket.Chat, Discord's /slack endpoint).
	Slack = "slack"
	// Email sends a plain-text mail through an SMTP server.
	Email = "email"
)

// Channel is a place notifications go. Only the fields of its Type are
// used; Validate refuses the others, so a typo'd channel is not silently
// half-configured. Secret and Password are never rendered into a message
// or an error: use Redacted to show a Channel.
type Channel struct {
	// Name identifies the channel in an event's notifications: 1 to 63
	// lowercase letters, digits and '-', starting with a letter or digit.
	Name string
	// Type is Webhook, Slack or Email.
	Type string

	// URL is where webhook and slack channels post: http or https, with a
	// host, without credentials or a fragment. A Slack URL's path is a
	// secret: errors show only its scheme and host.
	URL string
	// Secret is a webhook's HMAC-SHA256 key (at least 16 characters): each
	// request carries X-Cronium-Signature, which receivers check with Verify.
	Secret string

	// SMTP is an email channel's server, "host:port" (587 for submission
	// with STARTTLS, 25 for relay).
	SMTP string
	// From is the sender address, like "Cronium <cron@example.com>".
	From string
	// To lists the recipients, at least one.
	To []string
	// Username and Password, when set (both or neither), authenticate with
	// AUTH PLAIN, which is only ever sent over TLS (or to localhost).
	Username string
	Password string
	// Trusted lets this channel reach private and loopback addresses, as
	// Sender.AllowPrivate does for all: set by the server for the
	// operator's channels when its configuration allows it, never from
	// what a user sends.
	Trusted bool `json:"-"`
	// RequireTLS refuses to send when the server does not offer STARTTLS.
	// When false (the default), STARTTLS is used whenever the server
	// offers it, and the mail goes in the clear otherwise.
	RequireTLS bool
}

// MaxNameLength is the longest channel name.
const MaxNameLength = 63

// Redacted returns c with its secret values replaced by "redacted" and the
// path and query of its URL (a Slack token) hidden, for printing.
func (c Channel) Redacted() Channel {
	if c.Secret != "" {
		c.Secret = "redacted"
	}
	if c.Password != "" {
		c.Password = "redacted"
	}
	if c.URL != "" {
		c.URL = redactURL(c.URL)
	}
	c.To = append([]string(nil), c.To...)
	return c
}

// Validate checks the channel and returns a cronium.FieldError (an
// ErrInvalid) naming the first offending setting under field, like
// "notifications.ops.url". Secret values are never part of the error.
func (c Channel) Validate(field string) error {
	if err := validName(c.Name); err != nil {
		return cronium.Invalid(field+".name", c.Name, err.Error())
	}
	unused := func(typ string, set map[string]bool) error {
		for _, k := range []string{"url", "secret", "smtp", "from", "to", "username", "password", "require_tls"} {
			if set[k] {
				return cronium.Invalid(field+"."+k, "", "is not used by "+typ+" channels: remove it, or change the type")
			}
		}
		return nil
	}
	set := map[string]bool{
		"url": c.URL != "", "secret": c.Secret != "", "smtp": c.SMTP != "", "from": c.From != "", "to": len(c.To) > 0,
		"username": c.Username != "", "password": c.Password != "", "require_tls": c.RequireTLS,
	}
	switch c.Type {
	case Webhook:
		if err := validURL(field+".url", c.URL); err != nil {
			return err
		}
		if c.Secret == "" {
			return cronium.Invalid(field+".secret", "", "is required: receivers check each request's signature with it (at least 16 random characters)")
		}
		if len(c.Secret) < 16 {
			return cronium.Invalid(field+".secret", "", fmt.Sprintf("is %d characters long: a signing secret needs at least 16 random characters", len(c.Secret)))
		}
		delete(set, "url")
		delete(set, "secret")
		return unused("webhook", set)
	case Slack:
		if err := validURL(field+".url", c.URL); err != nil {
			return err
		}
		delete(set, "url")
		return unused("slack", set)
	case Email:
		if err := validSMTP(field+".smtp", c.SMTP); err != nil {
			return err
		}
		if c.From == "" {
			return cronium.Invalid(field+".from", "", "is required: the sender address, like cron@example.com")
		}
		if _, err := mail.ParseAddress(c.From); err != nil {
			return cronium.Invalid(field+".from", c.From, "is not an email address ("+err.Error()+"): write name@example.com or \"Name <name@example.com>\"")
		}
		if len(c.To) == 0 {
			return cronium.Invalid(field+".to", "", "is required: at least one recipient address")
		}
		for i, to := range c.To {
			if _, err := mail.ParseAddress(to); err != nil {
				return cronium.Invalid(fmt.Sprintf("%s.to[%d]", field, i), to, "is not an email address ("+err.Error()+"): write name@example.com or \"Name <name@example.com>\"")
			}
		}
		if (c.Username == "") != (c.Password == "") {
			if c.Username == "" {
				return cronium.Invalid(field+".username", "", "is required with a password")
			}
			return cronium.Invalid(field+".password", "", "is required with a username")
		}
		for _, k := range []string{"smtp", "from", "to", "username", "password", "require_tls"} {
			delete(set, k)
		}
		return unused("email", set)
	case "":
		return cronium.Invalid(field+".type", "", "is required: webhook, slack or email")
	}
	return cronium.Invalid(field+".type", c.Type, "is not a channel type: webhook, slack or email")
}

// validName checks a channel name.
func validName(name string) error {
	if name == "" {
		return fmt.Errorf("is required: 1 to %d lowercase letters, digits and '-'", MaxNameLength)
	}
	if len(name) > MaxNameLength {
		return fmt.Errorf("is %d characters long: at most %d", len(name), MaxNameLength)
	}
	for _, r := range name {
		if (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '-' {
			return fmt.Errorf("has %q: only lowercase letters, digits and '-' are accepted", r)
		}
	}
	if name[0] == '-' {
		return fmt.Errorf("starts with '-': start with a letter or digit")
	}
	return nil
}

// validURL checks a webhook or slack URL. The value in its errors is
// redacted: a Slack URL's path is its secret.
func validURL(field, raw string) error {
	if raw == "" {
		return cronium.Invalid(field, "", "is required: an http or https URL")
	}
	shown := redactURL(raw)
	for _, r := range raw {
		if r <= ' ' || r == 0x7f {
			return cronium.Invalid(field, shown, "contains a space or control character: percent-encode it")
		}
	}
	u, err := url.Parse(raw)
	if err != nil {
		return cronium.Invalid(field, shown, "is not a URL: write https://host/path")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return cronium.Invalid(field, shown, "must start with https:// or http://")
	}
	if u.User != nil {
		return cronium.Invalid(field, shown, "carries credentials (user:password@): put a webhook's key in secret instead")
	}
	if u.Host == "" || u.Hostname() == "" {
		return cronium.Invalid(field, shown, "has no host: write https://host/path")
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return cronium.Invalid(field, shown, "has port "+p+": a port is 1 to 65535")
		}
	}
	if strings.Contains(raw, "#") {
		return cronium.Invalid(field, shown, "has a fragment (#...), which is never sent to the server: remove it")
	}
	return nil
}

// validSMTP checks an SMTP server address.
func validSMTP(field, addr string) error {
	if addr == "" {
		return cronium.Invalid(field, "", "is required: the SMTP server as host:port, like smtp.example.com:587")
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host == "" {
		return cronium.Invalid(field, addr, "is not host:port: write smtp.example.com:587")
	}
	if strings.ContainsAny(host, " /@") {
		return cronium.Invalid(field, addr, "has no valid host: write smtp.example.com:587")
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return cronium.Invalid(field, addr, "has port "+port+": a port is 1 to 65535 (587 for submission, 25 for relay)")
	}
	return nil
}

// redactURL shows a URL as its scheme and host only: the path and query
// of an incoming webhook URL are its secret.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "(hidden)"
	}
	s := u.Scheme + "://" + u.Host // never the userinfo
	if u.Path != "" && u.Path != "/" || u.RawQuery != "" {
		s += "/..."
	}
	return s
}
