package dispatch

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	cronium "github.com/cronium/executor"
	"github.com/cronium/executor/sqlite"
)

// A run printing 12 MB keeps the first and the last lines of its output
// within the cap, with a line saying how much was left out in between; the
// stored text stays valid UTF-8.
func TestLongOutputKeepsHeadAndTail(t *testing.T) {
	st, _, d := setup(t)
	ctx := context.Background()
	_, x := queued(t, st)
	const limit = 1 << 20
	sink := newLogSink(d, x.ID, limit)
	var all bytes.Buffer
	seq := uint64(0)
	for line := 1; all.Len() < 12<<20; {
		var chunk bytes.Buffer
		for chunk.Len() < 60<<10 {
			fmt.Fprintf(&chunk, "line %07d: données\n", line) // two-byte characters too
			line++
		}
		all.Write(chunk.Bytes())
		seq++
		sink.add(cronium.OutputChunk{Seq: seq, Stream: cronium.Stdout, Data: chunk.Bytes()})
	}
	sink.finish()

	stored := storedText(t, st, x.ID)
	if n := len(stored); n > limit || n < limit*9/10 {
		t.Errorf("stored %d bytes, want close to and at most the cap %d", n, limit)
	}
	if !utf8.ValidString(stored) {
		t.Error("the stored log is not valid UTF-8")
	}
	lines := strings.Split(strings.TrimSuffix(all.String(), "\n"), "\n")
	if !strings.HasPrefix(stored, lines[0]+"\n"+lines[1]+"\n") {
		t.Errorf("the head is lost: %q", stored[:80])
	}
	if !strings.HasSuffix(stored, lines[len(lines)-2]+"\n"+lines[len(lines)-1]+"\n") {
		t.Errorf("the tail is lost: %q", stored[len(stored)-80:])
	}
	marker := "[cronium] log truncated: "
	i := strings.Index(stored, marker)
	if i < 0 || strings.Count(stored, marker) != 1 {
		t.Fatalf("no single truncation line in the stored log")
	}
	var omitted, head, tail int
	if _, err := fmt.Sscanf(stored[i+len(marker):], "%d bytes left out here; stored are the first %d and the last %d bytes", &omitted, &head, &tail); err != nil {
		t.Fatalf("truncation line: %v: %q", err, stored[i:i+120])
	}
	if head+omitted+tail != all.Len() {
		t.Errorf("head %d + omitted %d + tail %d = %d, want the output's %d bytes", head, omitted, tail, head+omitted+tail, all.Len())
	}
	got, _ := st.Execution(ctx, 0, x.ID)
	if !got.LogTruncated {
		t.Error("the execution does not say its log was truncated")
	}
}

// Output that fits is stored whole, with no truncation line, even past the
// first half of the cap.
func TestOutputWithinTheCapIsWhole(t *testing.T) {
	st, _, d := setup(t)
	_, x := queued(t, st)
	sink := newLogSink(d, x.ID, 4096)
	var all strings.Builder
	for seq := uint64(1); seq <= 150; seq++ {
		line := fmt.Sprintf("line %03d of 150...\n", seq)
		all.WriteString(line)
		sink.add(cronium.OutputChunk{Seq: seq, Stream: cronium.Stdout, Data: []byte(line)})
	}
	sink.flush() // mid-run: only the head is stored yet
	sink.finish()
	if got := storedText(t, st, x.ID); got != all.String() {
		t.Errorf("stored %q, want the whole output %q", got, all.String())
	}
}

func storedText(t *testing.T, st *sqlite.Store, id string) string {
	t.Helper()
	var b strings.Builder
	for after := uint64(0); ; {
		chunks, err := st.Logs(context.Background(), id, after, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if len(chunks) == 0 {
			return b.String()
		}
		for _, c := range chunks {
			b.Write(c.Data)
			after = c.Seq
		}
	}
}

// Output just under the cap is stored whole, though the head ends a chunk
// short of its half.
func TestOutputJustUnderTheCapIsWhole(t *testing.T) {
	st, _, d := setup(t)
	_, x := queued(t, st)
	const limit = 1 << 20
	sink := newLogSink(d, x.ID, limit)
	var all bytes.Buffer
	// 59,000-byte chunks: the head takes 8 (472,000 bytes, 52,288 short
	// of its half), the tail must take the other 9 (531,000 bytes).
	chunk := bytes.Repeat([]byte("0123456789abcdefghi\n"), 2950)
	for seq := uint64(1); seq <= 17; seq++ {
		all.Write(chunk)
		sink.add(cronium.OutputChunk{Seq: seq, Stream: cronium.Stdout, Data: chunk})
	}
	sink.finish()
	if got := storedText(t, st, x.ID); got != all.String() {
		t.Errorf("stored %d bytes, want the whole %d", len(got), all.Len())
	}
}

// A re-attached execution's sink counts what was stored before: the cap
// holds across a restart of the server.
func TestResumedSinkKeepsTheCap(t *testing.T) {
	st, _, d := setup(t)
	_, x := queued(t, st)
	const limit = 64 << 10
	first := newLogSink(d, x.ID, limit)
	line := bytes.Repeat([]byte("x"), 1023)
	line = append(line, '\n')
	seq := uint64(0)
	for range 40 { // 40 KiB: past the head
		seq++
		first.add(cronium.OutputChunk{Seq: seq, Stream: cronium.Stdout, Data: line})
	}
	first.flush() // the server dies here: the tail held in memory is lost
	got, _ := st.Execution(context.Background(), 0, x.ID)
	second := newLogSink(d, x.ID, limit)
	second.resume(got.LogBytes)
	for range 200 { // 200 KiB more after re-attach
		seq++
		second.add(cronium.OutputChunk{Seq: seq, Stream: cronium.Stdout, Data: line})
	}
	second.finish()
	if n := len(storedText(t, st, x.ID)); n > limit {
		t.Errorf("stored %d bytes across the restart, above the %d cap", n, limit)
	}
}
