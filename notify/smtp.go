package notify

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/mail"
	"net/smtp"
	"net/textproto"
	"time"
)

// mail sends msg as one email through ch's SMTP server: STARTTLS when the
// server offers it (required with RequireTLS), AUTH PLAIN when the channel
// has a username, then one transaction to every recipient.
func (s *Sender) mail(ctx context.Context, ch Channel, deliveryID string, msg Message, now time.Time) error {
	where := "mail through " + ch.SMTP
	from, err := mail.ParseAddress(ch.From)
	if err != nil {
		return Permanent(fmt.Errorf("%s: from: %w", where, err))
	}
	to := make([]*mail.Address, len(ch.To))
	for i, a := range ch.To {
		if to[i], err = mail.ParseAddress(a); err != nil {
			return Permanent(fmt.Errorf("%s: to[%d]: %w", where, i, err))
		}
	}
	host, _, err := net.SplitHostPort(ch.SMTP)
	if err != nil {
		return Permanent(fmt.Errorf("%s: %w", where, err))
	}

	conn, err := s.dialer.DialContext(ctx, "tcp", ch.SMTP)
	if err != nil {
		return dialError(where, err)
	}
	if d, ok := ctx.Deadline(); ok {
		conn.SetDeadline(d)
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() }) // a cancelled send ends at once
	defer stop()
	c, err := smtp.NewClient(conn, host)
	if err != nil {
		conn.Close()
		return smtpError(where, "greeting", err)
	}
	defer c.Close()
	helo := s.Hostname
	if helo == "" {
		helo = "localhost"
	}
	if err := c.Hello(helo); err != nil {
		return smtpError(where, "EHLO", err)
	}
	if ok, _ := c.Extension("STARTTLS"); ok {
		cfg := s.TLS.Clone()
		if cfg == nil {
			cfg = &tls.Config{}
		}
		cfg.ServerName = host
		if cfg.MinVersion < tls.VersionTLS12 {
			cfg.MinVersion = tls.VersionTLS12
		}
		if err := c.StartTLS(cfg); err != nil {
			return smtpError(where, "STARTTLS", err)
		}
	} else if ch.RequireTLS {
		return Permanent(fmt.Errorf("%s: the server does not offer STARTTLS, and the channel requires TLS", where))
	}
	if ch.Username != "" {
		if ok, _ := c.Extension("AUTH"); !ok {
			return Permanent(fmt.Errorf("%s: the channel has a username, but the server does not offer AUTH", where))
		}
		// PlainAuth itself refuses to send the password in the clear,
		// except to localhost.
		if err := c.Auth(smtp.PlainAuth("", ch.Username, ch.Password, host)); err != nil {
			return smtpError(where, "AUTH", err)
		}
	}
	if err := c.Mail(from.Address); err != nil {
		return smtpError(where, "MAIL FROM", err)
	}
	for _, a := range to {
		if err := c.Rcpt(a.Address); err != nil {
			return smtpError(where, "RCPT TO <"+a.Address+">", err)
		}
	}
	w, err := c.Data()
	if err != nil {
		return smtpError(where, "DATA", err)
	}
	domain := s.Hostname
	if domain == "" {
		domain = "cronium"
	}
	if _, err := w.Write(msg.email(from, to, deliveryID, domain, now)); err != nil {
		return smtpError(where, "DATA", err)
	}
	if err := w.Close(); err != nil { // the server's answer to the message
		return smtpError(where, "DATA", err)
	}
	c.Quit() // the mail is accepted: a failed goodbye changes nothing
	return nil
}

// smtpError describes a failed SMTP step. A 5xx reply is permanent; a 4xx
// reply and a broken connection are worth retrying; an error of the client
// itself (PlainAuth refusing an unencrypted connection) is permanent.
func smtpError(where, step string, err error) error {
	e := fmt.Errorf("%s: %s: %w", where, step, err)
	var te *textproto.Error
	var ne net.Error
	var oe *net.OpError
	switch {
	case errors.As(err, &te):
		if te.Code >= 500 {
			return Permanent(e)
		}
		return e
	case errors.As(err, &ne), errors.As(err, &oe), errors.Is(err, net.ErrClosed), errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return e
	case step == "AUTH":
		return Permanent(e)
	}
	return e
}
