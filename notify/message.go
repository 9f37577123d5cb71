package notify

import (
	"bytes"
	"encoding/json"
	"fmt"
	"mime"
	"mime/quotedprintable"
	"net/mail"
	"strings"
	"time"
	"unicode/utf8"

	cronium "github.com/cronium/executor"
)

// Message says how an execution ended, and why it is being told. It holds
// no secret: the caller puts in it only what the execution's owner may
// see (the output excerpt from the stored, redacted log). Its JSON form is
// how outboxes store it.
type Message struct {
	// Event is the event's name.
	Event string `json:"event"`
	// User is the name of the event's owner; a Worker looks the channel up
	// by it.
	User string `json:"user"`
	// ExecutionID identifies the execution.
	ExecutionID string `json:"execution_id"`
	// Outcome is how it ended: a cronium.Outcome like "failed".
	Outcome string `json:"outcome"`
	// ExitCode is the script's exit code, when it exited.
	ExitCode *int `json:"exit_code,omitempty"`
	// Condition is the condition the script set, when it set one.
	Condition *bool `json:"condition,omitempty"`
	// Error is the execution's error text (engine errors, "lost: ...").
	Error string `json:"error,omitempty"`
	// StartedAt and FinishedAt are when the script started and ended; zero
	// when it never started.
	StartedAt  time.Time `json:"started_at,omitzero"`
	FinishedAt time.Time `json:"finished_at,omitzero"`
	// Output is a short excerpt of the output, usually its last lines.
	// Renderings keep at most its last MaxOutput bytes.
	Output string `json:"output,omitempty"`
	// Reason is the action that asked for this notification: "failure",
	// "success", "condition_true", ...
	Reason string `json:"reason"`
}

// MaxOutput is how many bytes of Message.Output a notification carries at
// most (the last ones).
const MaxOutput = 4096

// Summary describes the message in one line, like
// "nightly-report failed (exit 3)".
func (m Message) Summary() string {
	ev := oneLine(m.Event)
	var s string
	switch cronium.Outcome(m.Outcome) {
	case cronium.Succeeded:
		s = ev + " succeeded"
	case cronium.Failed:
		s = ev + " failed"
		if m.ExitCode != nil {
			s += fmt.Sprintf(" (exit %d)", *m.ExitCode)
		}
	case cronium.TimedOut:
		s = ev + " timed out"
	case cronium.OOMKilled:
		s = ev + " ran out of memory"
	case cronium.OutputLimit:
		s = ev + " passed its output limit"
	case cronium.Cancelled:
		s = ev + " was cancelled"
	case cronium.EngineError:
		s = ev + " could not run (engine error)"
	default:
		s = ev + " ended: " + oneLine(m.Outcome)
	}
	if m.Condition != nil {
		s += fmt.Sprintf(", condition %t", *m.Condition)
	}
	return s
}

// webhookBody is the JSON a webhook receives. Every field is always
// present (null when unknown), so receivers can rely on the names.
type webhookBody struct {
	DeliveryID  string     `json:"delivery_id"`
	SentAt      time.Time  `json:"sent_at"`
	Summary     string     `json:"summary"`
	Reason      string     `json:"reason"`
	Event       string     `json:"event"`
	User        string     `json:"user"`
	ExecutionID string     `json:"execution_id"`
	Outcome     string     `json:"outcome"`
	ExitCode    *int       `json:"exit_code"`
	Condition   *bool      `json:"condition"`
	Error       string     `json:"error"`
	StartedAt   *time.Time `json:"started_at"`
	FinishedAt  *time.Time `json:"finished_at"`
	Output      string     `json:"output"`
}

// webhookJSON renders the body of a webhook request.
func (m Message) webhookJSON(deliveryID string, sentAt time.Time) ([]byte, error) {
	opt := func(t time.Time) *time.Time {
		if t.IsZero() {
			return nil
		}
		t = t.UTC()
		return &t
	}
	b, err := json.Marshal(webhookBody{
		DeliveryID: deliveryID, SentAt: sentAt.UTC().Truncate(time.Millisecond), Summary: m.Summary(),
		Reason: m.Reason, Event: m.Event, User: m.User, ExecutionID: m.ExecutionID, Outcome: m.Outcome,
		ExitCode: m.ExitCode, Condition: m.Condition, Error: m.Error,
		StartedAt: opt(m.StartedAt), FinishedAt: opt(m.FinishedAt), Output: tail(m.Output, MaxOutput),
	})
	if err != nil {
		return nil, fmt.Errorf("encode webhook body: %w", err)
	}
	return b, nil
}

// slackText is the one line a Slack channel shows, escaped as Slack's
// mrkdwn wants (so an error text cannot @-mention the whole channel).
func (m Message) slackText() string {
	s := "[cronium] " + m.Summary() + " · user " + oneLine(m.User) + " · execution " + oneLine(m.ExecutionID)
	if m.Error != "" {
		s += " · " + cut(oneLine(m.Error), 200)
	}
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

// slackJSON renders the body of a Slack incoming-webhook request.
func (m Message) slackJSON() ([]byte, error) {
	b, err := json.Marshal(struct {
		Text string `json:"text"`
	}{m.slackText()})
	if err != nil {
		return nil, fmt.Errorf("encode slack body: %w", err)
	}
	return b, nil
}

// subject is an email's subject line.
func (m Message) subject() string { return "[cronium] " + m.Summary() }

// text is the plain-text report an email carries.
func (m Message) text() string {
	var b strings.Builder
	b.WriteString(m.Summary() + "\n\n")
	row := func(k, v string) { fmt.Fprintf(&b, "%-11s %s\n", k+":", v) }
	row("Event", oneLine(m.Event))
	row("User", oneLine(m.User))
	row("Execution", oneLine(m.ExecutionID))
	row("Outcome", oneLine(m.Outcome))
	if m.ExitCode != nil {
		row("Exit code", fmt.Sprint(*m.ExitCode))
	}
	if m.Condition != nil {
		row("Condition", fmt.Sprint(*m.Condition))
	}
	row("Reason", oneLine(m.Reason))
	if !m.StartedAt.IsZero() {
		row("Started", m.StartedAt.UTC().Format(time.RFC3339))
	}
	if !m.FinishedAt.IsZero() {
		row("Finished", m.FinishedAt.UTC().Format(time.RFC3339))
	}
	if !m.StartedAt.IsZero() && !m.FinishedAt.IsZero() {
		row("Duration", m.FinishedAt.Sub(m.StartedAt).Round(time.Millisecond).String())
	}
	if m.Error != "" {
		b.WriteString("\nError:\n" + m.Error + "\n")
	}
	if m.Output != "" {
		b.WriteString("\nOutput (the end):\n" + tail(m.Output, MaxOutput) + "\n")
	}
	return b.String()
}

// email renders a complete mail: headers and a quoted-printable body, with
// CRLF line ends.
func (m Message) email(from *mail.Address, to []*mail.Address, deliveryID, domain string, date time.Time) []byte {
	var b bytes.Buffer
	hdr := func(k, v string) { b.WriteString(k + ": " + v + "\r\n") }
	hdr("From", from.String())
	names := make([]string, len(to))
	for i, a := range to {
		names[i] = a.String()
	}
	hdr("To", strings.Join(names, ", "))
	hdr("Subject", mime.QEncoding.Encode("utf-8", oneLine(m.subject())))
	hdr("Date", date.Format(time.RFC1123Z))
	hdr("Message-ID", "<"+atom(deliveryID)+"@"+atom(domain)+">")
	hdr("Auto-Submitted", "auto-generated") // RFC 3834: no vacation replies
	hdr("MIME-Version", "1.0")
	hdr("Content-Type", "text/plain; charset=utf-8")
	hdr("Content-Transfer-Encoding", "quoted-printable")
	b.WriteString("\r\n")
	qp := quotedprintable.NewWriter(&b)
	qp.Write([]byte(m.text())) // writes to a bytes.Buffer do not fail
	qp.Close()
	return b.Bytes()
}

// oneLine turns s into one line: control characters become spaces.
func oneLine(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	return strings.Join(strings.Fields(s), " ")
}

// cut keeps at most n bytes of s, on a rune boundary, marking the cut.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// tail keeps at most the last n bytes of s, on a rune boundary, marking the cut.
func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	i := len(s) - n
	for i < len(s) && !utf8.RuneStart(s[i]) {
		i++
	}
	return "…" + s[i:]
}

// atom keeps the characters of s that may appear in a Message-ID.
func atom(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x80 && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune(".-_", r)) {
			return r
		}
		return -1
	}, s)
	if s == "" {
		return "cronium"
	}
	return s
}
