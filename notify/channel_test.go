package notify_test

import (
	"errors"
	"strings"
	"testing"

	cronium "github.com/cronium/executor"
	"github.com/cronium/executor/notify"
)

const slackToken = "T000/B000/XXXXsecretXXXX"

func TestValidateNamesTheField(t *testing.T) {
	hook := func(url string) notify.Channel {
		return notify.Channel{Name: "ops", Type: notify.Webhook, URL: url, Secret: "0123456789abcdef"}
	}
	mail := notify.Channel{Name: "team", Type: notify.Email, SMTP: "smtp.example.com:587", From: "Cronium <cron@example.com>", To: []string{"a@example.com", "B <b@example.com>"}}
	with := func(c notify.Channel, f func(*notify.Channel)) notify.Channel { f(&c); return c }
	tests := []struct {
		name  string
		ch    notify.Channel
		field string // "" when valid
		says  string
	}{
		{"webhook", hook("https://hooks.example.com/cronium?x=1"), "", ""},
		{"slack", notify.Channel{Name: "chat-1", Type: notify.Slack, URL: "https://hooks.slack.com/services/" + slackToken}, "", ""},
		{"email", mail, "", ""},
		{"email with login", with(mail, func(c *notify.Channel) { c.Username, c.Password, c.RequireTLS = "u", "p", true }), "", ""},
		{"no name", with(hook("https://x.example"), func(c *notify.Channel) { c.Name = "" }), "n.name", "required"},
		{"upper-case name", with(hook("https://x.example"), func(c *notify.Channel) { c.Name = "Ops" }), "n.name", "lowercase"},
		{"long name", with(hook("https://x.example"), func(c *notify.Channel) { c.Name = strings.Repeat("a", 64) }), "n.name", "at most 63"},
		{"leading hyphen", with(hook("https://x.example"), func(c *notify.Channel) { c.Name = "-ops" }), "n.name", "start with"},
		{"no type", notify.Channel{Name: "x"}, "n.type", "webhook, slack or email"},
		{"unknown type", notify.Channel{Name: "x", Type: "sms"}, "n.type", "not a channel type"},
		{"no url", hook(""), "n.url", "required"},
		{"ftp", hook("ftp://files.example.com/x"), "n.url", "https://"},
		{"no scheme", hook("hooks.example.com/x"), "n.url", "https://"},
		{"no host", hook("https:///path"), "n.url", "no host"},
		{"credentials", hook("https://user:hunter2@hooks.example.com/x"), "n.url", "credentials"},
		{"fragment", hook("https://hooks.example.com/x#frag"), "n.url", "fragment"},
		{"bad port", hook("https://hooks.example.com:99999/x"), "n.url", "port"},
		{"space", hook("https://hooks.example.com/a b"), "n.url", "space"},
		{"no secret", with(hook("https://x.example"), func(c *notify.Channel) { c.Secret = "" }), "n.secret", "required"},
		{"short secret", with(hook("https://x.example"), func(c *notify.Channel) { c.Secret = "short" }), "n.secret", "at least 16"},
		{"webhook with to", with(hook("https://x.example"), func(c *notify.Channel) { c.To = []string{"a@example.com"} }), "n.to", "not used by webhook"},
		{"slack with secret", notify.Channel{Name: "c", Type: notify.Slack, URL: "https://x.example", Secret: "0123456789abcdef"}, "n.secret", "not used by slack"},
		{"email with url", with(mail, func(c *notify.Channel) { c.URL = "https://x.example" }), "n.url", "not used by email"},
		{"no smtp", with(mail, func(c *notify.Channel) { c.SMTP = "" }), "n.smtp", "required"},
		{"smtp without port", with(mail, func(c *notify.Channel) { c.SMTP = "smtp.example.com" }), "n.smtp", "host:port"},
		{"smtp bad port", with(mail, func(c *notify.Channel) { c.SMTP = "smtp.example.com:0" }), "n.smtp", "port"},
		{"no from", with(mail, func(c *notify.Channel) { c.From = "" }), "n.from", "required"},
		{"bad from", with(mail, func(c *notify.Channel) { c.From = "cron at example" }), "n.from", "not an email address"},
		{"no to", with(mail, func(c *notify.Channel) { c.To = nil }), "n.to", "at least one"},
		{"bad second to", with(mail, func(c *notify.Channel) { c.To = []string{"a@example.com", "nobody"} }), "n.to[1]", "not an email address"},
		{"password without user", with(mail, func(c *notify.Channel) { c.Password = "p" }), "n.username", "required"},
		{"user without password", with(mail, func(c *notify.Channel) { c.Username = "u" }), "n.password", "required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.ch.Validate("n")
			if tt.field == "" {
				if err != nil {
					t.Fatalf("got %v, want valid", err)
				}
				return
			}
			var fe *cronium.FieldError
			if !errors.As(err, &fe) || !errors.Is(err, cronium.ErrInvalid) {
				t.Fatalf("got %v, want a FieldError for %s", err, tt.field)
			}
			if fe.Field != tt.field || !strings.Contains(fe.Problem, tt.says) {
				t.Errorf("got %s: %q, want field %s saying %q", fe.Field, fe.Problem, tt.field, tt.says)
			}
		})
	}
}

func TestValidateAndRedactedHideSecrets(t *testing.T) {
	slack := notify.Channel{Name: "chat", Type: notify.Slack, URL: "ftp://hooks.slack.com/services/" + slackToken}
	err := slack.Validate("n")
	if err == nil || strings.Contains(err.Error(), "XXXXsecret") {
		t.Errorf("a bad Slack URL: %v, want an error without the URL's path", err)
	}
	cred := notify.Channel{Name: "ops", Type: notify.Webhook, URL: "https://user:hunter2@hooks.example.com/x", Secret: "0123456789abcdef"}
	if err := cred.Validate("n"); err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("a URL with a password: %v, want an error without the password", err)
	}
	r := notify.Channel{Name: "ops", Type: notify.Webhook, URL: "https://hooks.example.com/services/" + slackToken, Secret: "0123456789abcdef", Password: "pw"}.Redacted()
	if r.Secret != "redacted" || r.Password != "redacted" || r.URL != "https://hooks.example.com/..." {
		t.Errorf("Redacted: %+v", r)
	}
}
