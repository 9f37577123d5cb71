// Package tailbuf keeps the end of a stream of output chunks within a byte
// budget: what a capped log or output keeps after its head, since the end
// of a script's output is where its errors usually are. It imports only
// the standard library (the sandbox agent uses it).
package tailbuf

import (
	"time"
	"unicode/utf8"
)

// Chunk is a piece of output: its stream (1 stdout, 2 stderr), sequence
// number (when it has one) and bytes.
type Chunk struct {
	Stream uint8
	Seq    uint64
	Data   []byte
	Time   time.Time // when it was received, where that is kept
}

// Tail holds the newest chunks, at most Max bytes. The zero value with Max
// set is ready to use; it is not safe for concurrent use.
type Tail struct {
	Max     int64
	chunks  []Chunk
	bytes   int64
	dropped int64
}

// Add keeps c (whose Data it takes over) as the newest output, dropping the
// oldest beyond Max: whole chunks first, then the start of the oldest one,
// on a UTF-8 character boundary so no character is split.
func (t *Tail) Add(c Chunk) {
	if len(c.Data) == 0 {
		return
	}
	t.chunks = append(t.chunks, c)
	t.bytes += int64(len(c.Data))
	for len(t.chunks) > 1 && t.bytes-int64(len(t.chunks[0].Data)) >= t.Max {
		t.drop(len(t.chunks[0].Data))
		t.chunks = t.chunks[1:]
	}
	if over := t.bytes - t.Max; over > 0 {
		first := &t.chunks[0]
		cut := int(over)
		for cut < len(first.Data) && !utf8.RuneStart(first.Data[cut]) {
			cut++
		}
		first.Data = first.Data[cut:]
		t.drop(cut)
		if len(first.Data) == 0 {
			t.chunks = t.chunks[1:]
		}
	}
}

func (t *Tail) drop(n int) {
	t.bytes -= int64(n)
	t.dropped += int64(n)
}

// Bytes is how many bytes the tail holds.
func (t *Tail) Bytes() int64 { return t.bytes }

// Dropped is how many bytes were added and then dropped.
func (t *Tail) Dropped() int64 { return t.dropped }

// Take returns the chunks held, oldest first, and empties the tail (its
// counts stay).
func (t *Tail) Take() []Chunk {
	c := t.chunks
	t.chunks = nil
	return c
}
