package agent

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"runtime"
	"testing"
)

// chunkReader returns at most n bytes per Read, like a socket.
type chunkReader struct {
	r io.Reader
	n int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(p) > c.n {
		p = p[:c.n]
	}
	return c.r.Read(p)
}

// header builds a frame header claiming n payload bytes.
func header(t FrameType, n uint32) []byte {
	h := []byte{byte(t), 0, 0, 0, 0}
	binary.BigEndian.PutUint32(h[1:], n)
	return h
}

// FuzzReadFrame reads frames from arbitrary bytes until an error and checks:
//   - no panic;
//   - each frame's payload is at most MaxFrame, and is exactly the bytes the
//     header announced: WriteFrame of what was read gives back the bytes consumed;
//   - reading stops with io.EOF only at a frame boundary with nothing left,
//     with io.ErrUnexpectedEOF inside a frame, and with an error naming the
//     maximum for a header above MaxFrame (reading nothing past that header);
//   - memory allocated per ReadFrame is bounded by MaxFrame (plus slack),
//     whatever the header claims. Note that ReadFrame allocates the size the
//     header claims before reading any of it: 5 bytes can make it allocate
//     32 MiB. Bounded, but an amplification worth knowing about.
func FuzzReadFrame(f *testing.F) {
	var buf bytes.Buffer
	_ = WriteJSON(&buf, FrameHello, Hello{Protocol: ProtocolVersion, PID: 1})
	_ = WriteFrame(&buf, FrameOutput, EncodeOutput(1, 42, []byte("hello\n")))
	_ = WriteFrame(&buf, FrameAck, nil)
	f.Add(buf.Bytes())
	f.Add([]byte{})
	f.Add([]byte{byte(FrameStart)})
	f.Add([]byte{1, 0, 0, 0, 9, 'x'})
	f.Add([]byte{1, 0, 0, 0, 0})
	f.Add(header(FrameStart, 0xffffffff))
	f.Add(header(FrameStart, MaxFrame+1))
	f.Add(append(header(FrameReport, 2), '{', '}'))
	f.Add(append(header(FrameCancel, 0), header(FrameReset, 1)...))
	f.Add(header(FrameOutput, MaxFrame)) // claims the maximum, sends nothing
	f.Add(append(header(0xff, 3), 1, 2, 3, 4, 5))
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		for frames := 0; ; frames++ {
			before := len(data) - r.Len()
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			alloc0 := ms.TotalAlloc
			typ, payload, err := ReadFrame(r)
			runtime.ReadMemStats(&ms)
			if grown := ms.TotalAlloc - alloc0; grown > MaxFrame+1<<20 {
				t.Fatalf("ReadFrame allocated %d bytes, more than MaxFrame %d", grown, MaxFrame)
			}
			consumed := data[before : len(data)-r.Len()]
			rest := data[before:]
			if err != nil {
				switch {
				case len(rest) == 0:
					if err != io.EOF {
						t.Fatalf("frame %d: nothing left, got %v, want io.EOF", frames, err)
					}
				case len(rest) < 5:
					if !errors.Is(err, io.ErrUnexpectedEOF) {
						t.Fatalf("frame %d: partial header %x, got %v, want io.ErrUnexpectedEOF", frames, rest, err)
					}
				default:
					n := binary.BigEndian.Uint32(rest[1:5])
					if n > MaxFrame {
						if len(consumed) != 5 || err == io.EOF || !bytes.Contains([]byte(err.Error()), []byte("maximum")) {
							t.Fatalf("frame %d: header claims %d bytes: got %v after %d bytes", frames, n, err, len(consumed))
						}
					} else if int(n) > len(rest)-5 && err != io.ErrUnexpectedEOF {
						t.Fatalf("frame %d: %d of %d payload bytes, got %v, want io.ErrUnexpectedEOF", frames, len(rest)-5, n, err)
					}
				}
				return
			}
			if len(payload) > MaxFrame {
				t.Fatalf("payload of %d bytes, above MaxFrame", len(payload))
			}
			var again bytes.Buffer
			if err := WriteFrame(&again, typ, payload); err != nil {
				t.Fatalf("WriteFrame of a frame ReadFrame returned: %v", err)
			}
			if !bytes.Equal(again.Bytes(), consumed) {
				t.Fatalf("frame %d: read %x, which writes back as %x", frames, consumed, again.Bytes())
			}
		}
	})
}

// FuzzFrameRoundTrip: WriteFrame then ReadFrame gives back the type and the
// payload, for two frames in a row read through a reader that returns few
// bytes at a time; then the stream ends with io.EOF.
func FuzzFrameRoundTrip(f *testing.F) {
	f.Add(uint8(FrameStart), []byte(`{"execution_id":"e1"}`), uint8(FrameAck), []byte{}, uint8(1))
	f.Add(uint8(FrameOutput), EncodeOutput(2, 7, []byte("data")), uint8(FrameOutput), EncodeOutput(1, 0, nil), uint8(3))
	f.Add(uint8(0), []byte{0, 0, 0, 0, 0}, uint8(255), bytes.Repeat([]byte{0xff}, 300), uint8(0))
	f.Fuzz(func(t *testing.T, t1 uint8, p1 []byte, t2 uint8, p2 []byte, chunk uint8) {
		var buf bytes.Buffer
		if err := WriteFrame(&buf, FrameType(t1), p1); err != nil {
			t.Fatal(err)
		}
		if err := WriteFrame(&buf, FrameType(t2), p2); err != nil {
			t.Fatal(err)
		}
		if want := 10 + len(p1) + len(p2); buf.Len() != want {
			t.Fatalf("two frames of %d and %d bytes took %d bytes, want %d", len(p1), len(p2), buf.Len(), want)
		}
		r := &chunkReader{r: &buf, n: 1 + int(chunk)%64}
		for i, want := range []struct {
			t FrameType
			p []byte
		}{{FrameType(t1), p1}, {FrameType(t2), p2}} {
			typ, p, err := ReadFrame(r)
			if err != nil || typ != want.t || !bytes.Equal(p, want.p) {
				t.Fatalf("frame %d: got %d %x %v, want %d %x", i, typ, p, err, want.t, want.p)
			}
		}
		if _, _, err := ReadFrame(r); err != io.EOF {
			t.Fatalf("after the last frame: %v, want io.EOF", err)
		}
	})
}

// FuzzOutput: EncodeOutput then DecodeOutput gives back stream, seq and
// data; DecodeOutput on any bytes never panics, refuses fewer than 9 bytes,
// and otherwise re-encodes to exactly its input.
func FuzzOutput(f *testing.F) {
	f.Add(uint8(1), uint64(0), []byte("hello\n"), []byte{1, 2})
	f.Add(uint8(2), uint64(1<<63), []byte{}, EncodeOutput(2, 7, []byte("data")))
	f.Add(uint8(255), ^uint64(0), []byte{0}, []byte{0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Add(uint8(0), uint64(9), bytes.Repeat([]byte("x"), 100), []byte{})
	f.Fuzz(func(t *testing.T, stream uint8, seq uint64, data, garbage []byte) {
		p := EncodeOutput(stream, seq, data)
		if len(p) != 9+len(data) {
			t.Fatalf("EncodeOutput of %d bytes is %d bytes long", len(data), len(p))
		}
		s, q, d, err := DecodeOutput(p)
		if err != nil || s != stream || q != seq || !bytes.Equal(d, data) {
			t.Fatalf("round trip: got %d %d %x %v, want %d %d %x", s, q, d, err, stream, seq, data)
		}
		s, q, d, err = DecodeOutput(garbage)
		if len(garbage) < 9 {
			if err == nil {
				t.Fatalf("DecodeOutput(%x) accepted a payload shorter than its header", garbage)
			}
			return
		}
		if err != nil {
			t.Fatalf("DecodeOutput(%x): %v", garbage, err)
		}
		if back := EncodeOutput(s, q, d); !bytes.Equal(back, garbage) {
			t.Fatalf("DecodeOutput(%x) = %d %d %x, which encodes as %x", garbage, s, q, d, back)
		}
	})
}
