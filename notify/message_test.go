package notify

import (
	"bytes"
	"encoding/json"
	"flag"
	"io"
	"mime/quotedprintable"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./notify -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s changed (go test ./notify -update accepts it):\ngot:\n%s\nwant:\n%s", name, got, want)
	}
}

var t0 = time.Date(2026, 6, 1, 2, 30, 0, 0, time.UTC)

func failedMessage() Message {
	code := 3
	return Message{
		Event: "nightly-report", User: "alice", ExecutionID: "3fa9c1d2e4b5a6978800", Outcome: "failed", ExitCode: &code,
		Error: "", StartedAt: t0, FinishedAt: t0.Add(12*time.Second + 345*time.Millisecond),
		Output: "loading data\nTraceback (most recent call last):\nValueError: bad row 17\n", Reason: "failure",
	}
}

func TestSummary(t *testing.T) {
	yes := true
	code := 3
	tests := []struct {
		m    Message
		want string
	}{
		{failedMessage(), "nightly-report failed (exit 3)"},
		{Message{Event: "e", Outcome: "failed"}, "e failed"},
		{Message{Event: "e", Outcome: "succeeded", ExitCode: new(int), Condition: &yes}, "e succeeded, condition true"},
		{Message{Event: "e", Outcome: "timed_out", ExitCode: &code}, "e timed out"},
		{Message{Event: "e", Outcome: "oom_killed"}, "e ran out of memory"},
		{Message{Event: "e", Outcome: "output_limit"}, "e passed its output limit"},
		{Message{Event: "e", Outcome: "cancelled"}, "e was cancelled"},
		{Message{Event: "e", Outcome: "engine_error"}, "e could not run (engine error)"},
		{Message{Event: "e\r\nBcc: x", Outcome: "new\nthing"}, "e Bcc: x ended: new thing"},
	}
	for _, tt := range tests {
		if got := tt.m.Summary(); got != tt.want {
			t.Errorf("Summary of %s/%s: got %q, want %q", tt.m.Event, tt.m.Outcome, got, tt.want)
		}
	}
}

func TestWebhookBody(t *testing.T) {
	b, err := failedMessage().webhookJSON("d-1", t0.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	var pretty bytes.Buffer
	json.Indent(&pretty, b, "", "  ")
	golden(t, "webhook.json", append(pretty.Bytes(), '\n'))

	// Every field is there, null when unknown.
	b, _ = Message{Event: "e", Outcome: "cancelled", Reason: "failure"}.webhookJSON("d-2", t0)
	var m map[string]any
	json.Unmarshal(b, &m)
	for _, k := range []string{"delivery_id", "sent_at", "summary", "reason", "event", "user", "execution_id", "outcome", "exit_code", "condition", "error", "started_at", "finished_at", "output"} {
		if _, ok := m[k]; !ok {
			t.Errorf("the webhook body has no %q: %s", k, b)
		}
	}
	if m["started_at"] != nil || m["exit_code"] != nil {
		t.Errorf("unknown values are not null: %s", b)
	}
}

func TestSlackText(t *testing.T) {
	m := failedMessage()
	m.Error = "lost: <!channel> & <@U123>\nsecond line"
	b, err := m.slackJSON()
	if err != nil {
		t.Fatal(err)
	}
	var body map[string]string
	if err := json.Unmarshal(b, &body); err != nil || len(body) != 1 {
		t.Fatalf("slack body %s: want exactly {\"text\": ...}", b)
	}
	want := "[cronium] nightly-report failed (exit 3) · user alice · execution 3fa9c1d2e4b5a6978800 · lost: &lt;!channel&gt; &amp; &lt;@U123&gt; second line"
	if body["text"] != want {
		t.Errorf("slack text:\ngot  %q\nwant %q", body["text"], want)
	}
}

func TestEmail(t *testing.T) {
	from, _ := mail.ParseAddress("Cronium <cron@example.com>")
	to, _ := mail.ParseAddressList("ops@example.com, Ana Müller <ana@example.com>")
	m := failedMessage()
	m.Output += strings.Repeat("x", 200) + "\n.leading dot\n"
	raw := m.email(from, to, "d-1", "cron.example.com", t0.Add(time.Minute))
	golden(t, "email.eml", raw)

	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("the email does not parse: %v", err)
	}
	if got := msg.Header.Get("Subject"); got != "[cronium] nightly-report failed (exit 3)" {
		t.Errorf("Subject %q", got)
	}
	if got, _ := msg.Header.AddressList("To"); len(got) != 2 || got[1].Name != "Ana Müller" {
		t.Errorf("To %v", got)
	}
	if d, err := msg.Header.Date(); err != nil || !d.Equal(t0.Add(time.Minute)) {
		t.Errorf("Date %v %v", d, err)
	}
	if got := msg.Header.Get("Message-ID"); got != "<d-1@cron.example.com>" {
		t.Errorf("Message-ID %q", got)
	}
	qp, err := io.ReadAll(quotedprintable.NewReader(msg.Body))
	if err != nil {
		t.Fatal(err)
	}
	body := strings.ReplaceAll(string(qp), "\r\n", "\n")
	for _, want := range []string{"Exit code:  3", "Duration:   12.345s", "ValueError", strings.Repeat("x", 200) + "\n.leading dot"} {
		if !strings.Contains(body, want) {
			t.Errorf("the body has no %.80q:\n%s", want, body)
		}
	}
	for i, line := range strings.Split(string(raw), "\r\n") {
		if len(line) > 78 && !strings.HasPrefix(line, "Subject:") {
			t.Errorf("line %d is %d characters long: SMTP lines must stay short", i, len(line))
		}
	}
}

func TestTailAndCut(t *testing.T) {
	if got := tail("héllo", 4); got != "…llo" {
		t.Errorf("tail cut inside a character: %q", got)
	}
	if got := cut("héllo", 2); got != "h…" {
		t.Errorf("cut inside a character: %q", got)
	}
	if got := tail("abc", 3); got != "abc" {
		t.Errorf("tail of a short string: %q", got)
	}
}
