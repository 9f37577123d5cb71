package agent

import (
	"bytes"
	"io"
	"os/exec"
	"strings"
	"testing"
)

func TestFrameRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteJSON(&buf, FrameStart, Start{ExecutionID: "e1", Script: []byte("echo hi")}); err != nil {
		t.Fatal(err)
	}
	if err := WriteFrame(&buf, FrameOutput, EncodeOutput(2, 7, []byte("data"))); err != nil {
		t.Fatal(err)
	}
	typ, p, err := ReadFrame(&buf)
	if err != nil || typ != FrameStart || !strings.Contains(string(p), `"execution_id":"e1"`) {
		t.Fatalf("got %d %s %v", typ, p, err)
	}
	typ, p, err = ReadFrame(&buf)
	if err != nil || typ != FrameOutput {
		t.Fatalf("got %d %v", typ, err)
	}
	stream, seq, data, err := DecodeOutput(p)
	if err != nil || stream != 2 || seq != 7 || string(data) != "data" {
		t.Errorf("decoded %d %d %q %v", stream, seq, data, err)
	}
	if _, _, err := ReadFrame(&buf); err != io.EOF {
		t.Errorf("read past the end: %v, want EOF", err)
	}
}

func TestFrameRejectsOversize(t *testing.T) {
	hdr := []byte{byte(FrameStart), 0xff, 0xff, 0xff, 0xff}
	if _, _, err := ReadFrame(bytes.NewReader(hdr)); err == nil {
		t.Error("a 4GiB frame header was accepted")
	}
	if _, _, err := ReadFrame(bytes.NewReader([]byte{1, 0, 0, 0, 9, 'x'})); err != io.ErrUnexpectedEOF {
		t.Errorf("short frame: %v, want ErrUnexpectedEOF", err)
	}
	if _, _, _, err := DecodeOutput([]byte{1, 2}); err == nil {
		t.Error("short output payload was accepted")
	}
}

// The agent runs in every sandbox: it imports only the standard library
// and packages redact, strictjson and tailbuf (themselves standard-library only).
func TestAgentImportsOnlyTheStandardLibrary(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", "github.com/cronium/executor/cmd/cronium-agent").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	allowed := map[string]bool{
		"github.com/cronium/executor/cmd/cronium-agent": true,
		"github.com/cronium/executor/agent":             true,
		"github.com/cronium/executor/redact":            true,
		"github.com/cronium/executor/strictjson":        true,
		"github.com/cronium/executor/tailbuf":           true,
	}
	for _, p := range strings.Fields(string(out)) {
		if !allowed[p] {
			t.Errorf("the agent depends on %s", p)
		}
	}
}
