package notify_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"io"
	"mime/quotedprintable"
	"net"
	"net/http"
	"net/http/httptest"
	"net/mail"
	"strings"
	"sync"
	"testing"

	"github.com/cronium/executor/notify"
)

// smtpMail is one transaction a smtpServer accepted.
type smtpMail struct {
	from string
	to   []string
	data string
	tls  bool   // the transaction ran over STARTTLS
	auth string // the AUTH PLAIN credentials, decoded
}

// smtpServer is a minimal real SMTP server on a loopback listener: EHLO,
// optionally STARTTLS and AUTH PLAIN, MAIL, RCPT, DATA, RSET, NOOP, QUIT.
type smtpServer struct {
	ln        net.Listener
	tls       *tls.Config // when set, STARTTLS is offered
	rcptReply string      // when set, every RCPT gets this reply
	wg        sync.WaitGroup

	mu    sync.Mutex // guards conns and mails
	conns int
	mails []smtpMail
}

func newSMTPServer(t *testing.T, tlsConfig *tls.Config, rcptReply string) *smtpServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &smtpServer{ln: ln, tls: tlsConfig, rcptReply: rcptReply}
	s.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns++
			s.mu.Unlock()
			s.wg.Go(func() { s.serve(c) })
		}
	})
	t.Cleanup(func() { ln.Close(); s.wg.Wait() })
	return s
}

func (s *smtpServer) addr() string { return s.ln.Addr().String() }

func (s *smtpServer) accepted() (int, []smtpMail) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conns, append([]smtpMail(nil), s.mails...)
}

func (s *smtpServer) serve(c net.Conn) {
	defer func() { c.Close() }()
	r := bufio.NewReader(c)
	say := func(line string) { io.WriteString(c, line+"\r\n") }
	var m smtpMail
	say("220 test ESMTP")
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimRight(line, "\r\n")
		verb, arg, _ := strings.Cut(line, " ")
		switch strings.ToUpper(verb) {
		case "EHLO":
			say("250-test")
			if s.tls != nil && !m.tls {
				say("250-STARTTLS")
			}
			say("250-AUTH PLAIN")
			say("250 8BITMIME")
		case "STARTTLS":
			say("220 go ahead")
			tc := tls.Server(c, s.tls)
			if tc.Handshake() != nil {
				return
			}
			c, r, m = tc, bufio.NewReader(tc), smtpMail{tls: true}
		case "AUTH":
			mech, resp, _ := strings.Cut(arg, " ")
			b, err := base64.StdEncoding.DecodeString(resp)
			if mech != "PLAIN" || err != nil {
				say("504 unsupported")
				continue
			}
			m.auth = string(b)
			say("235 ok")
		case "MAIL":
			m.from = strings.Trim(strings.TrimPrefix(arg, "FROM:"), "<>")
			m.from, _, _ = strings.Cut(m.from, ">")
			say("250 ok")
		case "RCPT":
			if s.rcptReply != "" {
				say(s.rcptReply)
				continue
			}
			m.to = append(m.to, strings.Trim(strings.TrimPrefix(arg, "TO:"), "<>"))
			say("250 ok")
		case "DATA":
			say("354 end with .")
			var data strings.Builder
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" {
					break
				}
				data.WriteString(strings.TrimPrefix(l, ".")) // undo dot-stuffing
			}
			m.data = data.String()
			s.mu.Lock()
			s.mails = append(s.mails, m)
			s.mu.Unlock()
			m = smtpMail{tls: m.tls, auth: m.auth}
			say("250 queued")
		case "RSET", "NOOP":
			say("250 ok")
		case "QUIT":
			say("221 bye")
			return
		default:
			say("502 unknown command")
		}
	}
}

func emailChannel(addr string) notify.Channel {
	return notify.Channel{Name: "team", Type: notify.Email, SMTP: addr, From: "Cronium <cron@example.com>", To: []string{"ops@example.com", "Ana <ana@example.com>"}}
}

func TestEmailIsDelivered(t *testing.T) {
	srv := newSMTPServer(t, nil, "")
	m := message()
	m.Output = ".hidden line\nlast line\n"
	if err := lan.Send(context.Background(), emailChannel(srv.addr()), "d-1", m); err != nil {
		t.Fatal(err)
	}
	_, mails := srv.accepted()
	if len(mails) != 1 {
		t.Fatalf("the server accepted %d mails, want 1", len(mails))
	}
	got := mails[0]
	if got.from != "cron@example.com" || strings.Join(got.to, ",") != "ops@example.com,ana@example.com" || got.tls || got.auth != "" {
		t.Errorf("envelope from %q to %q (tls %t, auth %q)", got.from, got.to, got.tls, got.auth)
	}
	msg, err := mail.ReadMessage(strings.NewReader(got.data))
	if err != nil {
		t.Fatalf("the mail does not parse: %v\n%s", err, got.data)
	}
	if s := msg.Header.Get("Subject"); s != "[cronium] nightly-report failed (exit 3)" {
		t.Errorf("Subject %q", s)
	}
	if from, err := msg.Header.AddressList("From"); err != nil || from[0].Address != "cron@example.com" || from[0].Name != "Cronium" {
		t.Errorf("From %v %v", from, err)
	}
	if to, err := msg.Header.AddressList("To"); err != nil || len(to) != 2 || to[1].Address != "ana@example.com" {
		t.Errorf("To %v %v", to, err)
	}
	if _, err := msg.Header.Date(); err != nil {
		t.Errorf("Date: %v", err)
	}
	if id := msg.Header.Get("Message-ID"); !strings.HasPrefix(id, "<d-1@") {
		t.Errorf("Message-ID %q, want it made of the delivery ID", id)
	}
	body, _ := io.ReadAll(quotedprintable.NewReader(msg.Body))
	if !strings.Contains(string(body), "Exit code:  3") || !strings.Contains(string(body), "\r\n.hidden line\r\nlast line") {
		t.Errorf("body:\n%s", body)
	}
}

// testTLS returns a server TLS configuration for 127.0.0.1 and a client
// one that trusts it: the certificate of httptest's TLS server.
func testTLS(t *testing.T) (server, client *tls.Config) {
	srv := httptest.NewTLSServer(http.NotFoundHandler())
	srv.Close()
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	return &tls.Config{Certificates: srv.TLS.Certificates}, &tls.Config{RootCAs: pool}
}

func TestEmailUsesSTARTTLSAndAuthenticates(t *testing.T) {
	serverTLS, clientTLS := testTLS(t)
	srv := newSMTPServer(t, serverTLS, "")
	ch := emailChannel(srv.addr())
	ch.Username, ch.Password = "cron", "hunter2"
	s := &notify.Sender{AllowPrivate: true, TLS: clientTLS}
	if err := s.Send(context.Background(), ch, "d-1", message()); err != nil {
		t.Fatal(err)
	}
	_, mails := srv.accepted()
	if len(mails) != 1 || !mails[0].tls || mails[0].auth != "\x00cron\x00hunter2" {
		t.Fatalf("mails %+v: want one, sent over STARTTLS with the credentials", mails)
	}

	// A server whose certificate is not trusted gets nothing, and no password.
	srv2 := newSMTPServer(t, serverTLS, "")
	ch.SMTP = srv2.addr()
	err := lan.Send(context.Background(), ch, "d-2", message())
	if err == nil || errors.Is(err, notify.ErrPermanent) || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("an untrusted certificate: %v, want a retryable error about the certificate", err)
	}
	if _, mails := srv2.accepted(); len(mails) != 0 {
		t.Errorf("the untrusted server got %d mails", len(mails))
	}
}

func TestEmailRequireTLSRefusesAPlainServer(t *testing.T) {
	srv := newSMTPServer(t, nil, "")
	ch := emailChannel(srv.addr())
	ch.RequireTLS = true
	err := lan.Send(context.Background(), ch, "d-1", message())
	if !errors.Is(err, notify.ErrPermanent) || !strings.Contains(err.Error(), "STARTTLS") {
		t.Errorf("got %v, want a permanent refusal naming STARTTLS", err)
	}
	if _, mails := srv.accepted(); len(mails) != 0 {
		t.Errorf("the server got %d mails, want 0", len(mails))
	}
}

func TestEmailRecipientReplies(t *testing.T) {
	for _, tt := range []struct {
		reply     string
		permanent bool
	}{
		{"550 5.1.1 no such user", true},
		{"451 4.3.0 try again later", false},
	} {
		srv := newSMTPServer(t, nil, tt.reply)
		err := lan.Send(context.Background(), emailChannel(srv.addr()), "d", message())
		if err == nil || errors.Is(err, notify.ErrPermanent) != tt.permanent || !strings.Contains(err.Error(), tt.reply[4:]) {
			t.Errorf("RCPT answered %q: %v, want permanent %t and the reply", tt.reply, err, tt.permanent)
		}
	}
}

func TestEmailToAPrivateAddressIsRefused(t *testing.T) {
	srv := newSMTPServer(t, nil, "")
	err := (&notify.Sender{}).Send(context.Background(), emailChannel(srv.addr()), "d", message())
	if !errors.Is(err, notify.ErrBlocked) {
		t.Errorf("got %v, want the loopback server refused", err)
	}
	if conns, _ := srv.accepted(); conns != 0 {
		t.Errorf("the server saw %d connections, want 0", conns)
	}
}
