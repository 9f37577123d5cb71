package agent

import (
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// fakeHost is the host end of a link under test: it listens on a socket
// path and can go away abruptly, leaving the socket file behind as a killed
// process does.
type fakeHost struct {
	t    *testing.T
	path string
	ln   *net.UnixListener
	conn net.Conn
}

func newFakeHost(t *testing.T) *fakeHost {
	h := &fakeHost{t: t, path: filepath.Join(t.TempDir(), SocketName)}
	h.listen()
	return h
}

func (h *fakeHost) listen() {
	h.t.Helper()
	os.Remove(h.path) // stale, from the host that went away
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: h.path, Net: "unix"})
	if err != nil {
		h.t.Fatal(err)
	}
	h.ln = ln
	h.t.Cleanup(func() { ln.Close() })
}

func (h *fakeHost) accept() {
	h.t.Helper()
	h.ln.SetDeadline(time.Now().Add(5 * time.Second))
	c, err := h.ln.Accept()
	if err != nil {
		h.t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	h.conn = c
	h.t.Cleanup(func() { c.Close() })
}

// crash drops the connection and the listener, leaving the socket file.
func (h *fakeHost) crash() {
	h.ln.SetUnlinkOnClose(false)
	h.ln.Close()
	h.conn.Close()
}

func (h *fakeHost) write(t FrameType, v any) {
	h.t.Helper()
	var p []byte
	if v != nil {
		p, _ = json.Marshal(v)
	}
	if err := WriteFrame(h.conn, t, p); err != nil {
		h.t.Fatal(err)
	}
}

// read returns the next frame, rendered: "hello resume=true id=e1",
// "out 3 text", "report succeeded".
func (h *fakeHost) read() string {
	h.t.Helper()
	t, p, err := ReadFrame(h.conn)
	if err != nil {
		h.t.Fatal(err)
	}
	switch t {
	case FrameHello:
		var hl Hello
		json.Unmarshal(p, &hl)
		if hl.Resume {
			return "hello resume id=" + hl.ExecutionID
		}
		return "hello"
	case FrameOutput:
		_, seq, data, _ := DecodeOutput(p)
		return "out " + strconv.FormatUint(seq, 10) + " " + string(data)
	case FrameReport:
		var r Report
		json.Unmarshal(p, &r)
		return "report " + r.Outcome
	}
	return "frame " + strconv.Itoa(int(t))
}

func (h *fakeHost) expect(want ...string) {
	h.t.Helper()
	for _, w := range want {
		if got := h.read(); got != w {
			h.t.Fatalf("host read %q, want %q", got, w)
		}
	}
}

// startLink dials h, starts the link's reader and takes the host's Start.
// Tests end the run with finish.
func startLink(t *testing.T, h *fakeHost) *link {
	c, err := Dial(h.path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	l := newLink(c, h.path)
	l.wait = 5 * time.Second // bounds a failed test
	h.accept()
	go l.serve(c) // ends by closing l.in
	h.write(FrameStart, Start{ExecutionID: "e1", TimeoutMS: 1000})
	if f := <-l.in; f.t != FrameStart || f.start.ExecutionID != "e1" {
		t.Fatalf("agent got %+v, want the start", f)
	}
	return l
}

func out(l *link, seq uint64, s string) {
	l.send(FrameOutput, EncodeOutput(1, seq, []byte(s)), seq)
}

func report(l *link) {
	b, _ := json.Marshal(Report{Outcome: "succeeded"})
	l.send(FrameReport, b, 0)
}

func TestLinkResumesAndResends(t *testing.T) {
	h := newFakeHost(t)
	l := startLink(t, h)
	out(l, 1, "a")
	out(l, 2, "b")
	h.expect("out 1 a", "out 2 b")

	h.crash()
	out(l, 3, "c") // may fail to write, or be written into a socket nobody reads
	out(l, 4, "d")
	report(l)

	h.listen()
	h.accept()
	// Output already written is written again; the host skips what it has.
	h.expect("hello resume id=e1", "out 1 a", "out 2 b", "out 3 c", "out 4 d", "report succeeded")
	finish(t, h, l)
}

// finish acknowledges the report and closes the connection: the link ends.
func finish(t *testing.T, h *fakeHost, l *link) {
	t.Helper()
	h.write(FrameAck, nil)
	h.conn.Close()
	if _, ok := <-l.in; ok {
		t.Fatal("the link handed on a frame after the ack")
	}
	if err := l.ended(); err != nil {
		t.Errorf("link ended with %v after the host closed an idle connection", err)
	}
}

func TestLinkDropsPastBudgetAndSaysSo(t *testing.T) {
	h := newFakeHost(t)
	l := startLink(t, h)
	l.budget = 2 * (9 + 10)
	h.crash()
	// Let the reader notice, so every frame below is pending rather than written.
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(time.Millisecond) {
		l.mu.Lock()
		gone := l.conn == nil
		l.mu.Unlock()
		if gone {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the link did not notice the host went away")
		}
	}
	for i := uint64(1); i <= 5; i++ {
		out(l, i, strings.Repeat(string(rune('a'+i-1)), 10))
	}
	report(l)

	h.listen()
	h.accept()
	h.expect("hello resume id=e1", "out 1 aaaaaaaaaa", "out 2 bbbbbbbbbb",
		"out 3 \n[cronium] 30 bytes of output were dropped while the host was away\n",
		"report succeeded")
	finish(t, h, l)
}

func TestLinkGivesUp(t *testing.T) {
	h := newFakeHost(t)
	c, err := Dial(h.path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	l := newLink(c, h.path)
	l.wait = 300 * time.Millisecond
	h.accept()
	go l.serve(c) // ends by closing l.in
	h.write(FrameStart, Start{ExecutionID: "e1"})
	<-l.in
	h.crash()
	begin := time.Now()
	for range l.in {
	}
	if err := l.ended(); err == nil || !strings.Contains(err.Error(), "giving up") {
		t.Errorf("ended with %v, want giving up", err)
	}
	if d := time.Since(begin); d > 2*time.Second {
		t.Errorf("gave up after %s, want about 300ms", d)
	}
}

func TestLinkEndsWhenIdleHostCloses(t *testing.T) {
	h := newFakeHost(t)
	c, err := Dial(h.path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	l := newLink(c, h.path)
	h.accept()
	go l.serve(c) // ends by closing l.in
	h.conn.Close()
	for range l.in {
	}
	if err := l.ended(); err != nil {
		t.Errorf("ended with %v, want nil", err)
	}
}
