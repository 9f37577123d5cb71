package main

import (
	"fmt"
	"time"

	cronium "github.com/cronium/executor"
	"github.com/cronium/executor/notify"
)

// notificationsConfig is the operator's notification channels, which
// events name in their on: actions (on.failure: [{notify: ops-webhook}]).
type notificationsConfig struct {
	// AllowPrivate lets channels reach loopback and private addresses (a
	// webhook receiver on the LAN). Default false: public addresses only,
	// so an event cannot make the server call its own neighbours.
	AllowPrivate bool            `json:"allow_private,omitempty"`
	Channels     []channelConfig `json:"channels,omitempty"`
	// RetryBackoff is the wait after a delivery's first failed attempt; it
	// doubles after each (with jitter), up to 1h. Default 10s.
	RetryBackoff cronium.Duration `json:"retry_backoff,omitempty"`
}

// backoff returns the worker's wait after the attempt-th failure.
func (n notificationsConfig) backoff() func(int) time.Duration {
	if n.RetryBackoff == 0 {
		return notify.DefaultBackoff
	}
	base := n.RetryBackoff.D()
	return func(attempt int) time.Duration {
		d := base
		for i := 1; i < attempt && d < time.Hour; i++ {
			d *= 2
		}
		return min(d, time.Hour)
	}
}

// channelConfig is a notify.Channel as the configuration file writes it.
type channelConfig struct {
	Name       string   `json:"name"`
	Type       string   `json:"type"`
	URL        string   `json:"url,omitempty"`
	Secret     string   `json:"secret,omitempty"`
	SMTP       string   `json:"smtp,omitempty"`
	From       string   `json:"from,omitempty"`
	To         []string `json:"to,omitempty"`
	Username   string   `json:"username,omitempty"`
	Password   string   `json:"password,omitempty"`
	RequireTLS bool     `json:"require_tls,omitempty"`
}

func (c channelConfig) channel() notify.Channel {
	return notify.Channel{Name: c.Name, Type: c.Type, URL: c.URL, Secret: c.Secret, SMTP: c.SMTP, From: c.From, To: c.To,
		Username: c.Username, Password: c.Password, RequireTLS: c.RequireTLS}
}

// channels returns the channels by name, validated; errors name the setting.
func (n notificationsConfig) channels() (map[string]notify.Channel, error) {
	if n.RetryBackoff != 0 && (n.RetryBackoff.D() < time.Second || n.RetryBackoff.D() > time.Hour) {
		return nil, cronium.Invalid("notifications.retry_backoff", n.RetryBackoff.D().String(), "must be 1s-1h, like 10s")
	}
	out := map[string]notify.Channel{}
	for i, c := range n.Channels {
		ch := c.channel()
		field := fmt.Sprintf("notifications.channels[%d]", i)
		if err := ch.Validate(field); err != nil {
			return nil, err
		}
		if _, dup := out[ch.Name]; dup {
			return nil, cronium.Invalid(field+".name", ch.Name, "is the name of an earlier channel too: names must differ")
		}
		out[ch.Name] = ch
	}
	return out, nil
}

// masked returns n with secrets hidden, for `config check`.
func (n notificationsConfig) masked() notificationsConfig {
	out := n
	out.Channels = nil
	for _, c := range n.Channels {
		r := c.channel().Redacted()
		c.URL, c.Secret, c.Password = r.URL, r.Secret, r.Password
		out.Channels = append(out.Channels, c)
	}
	return out
}
