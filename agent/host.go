package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"sync"
)

// Session is the host's end of one agent connection. Engines share it so
// that every backend speaks the same protocol.
type Session struct {
	conn  net.Conn
	hello Hello
	wmu   sync.Mutex // guards writes to conn
}

// Handshake reads the agent's Hello from a fresh connection.
func Handshake(conn net.Conn) (*Session, error) {
	t, p, err := ReadFrame(conn)
	if err != nil {
		return nil, fmt.Errorf("read agent hello: %w", err)
	}
	if t != FrameHello {
		return nil, fmt.Errorf("agent sent frame %d before hello", t)
	}
	var h Hello
	if err := json.Unmarshal(p, &h); err != nil {
		return nil, fmt.Errorf("decode agent hello: %w", err)
	}
	if h.Protocol != ProtocolVersion {
		return nil, fmt.Errorf("agent speaks protocol %d, host speaks %d: rebuild cronium-agent with this cronium", h.Protocol, ProtocolVersion)
	}
	return &Session{conn: conn, hello: h}, nil
}

// Close closes the connection; the agent then exits.
func (s *Session) Close() error { return s.conn.Close() }

// Run sends st and relays output until the agent's report. When ctx is
// done it sends a cancel and keeps reading, so the report still arrives;
// callers bound the whole call with a backstop that closes the session.
// Output chunks are delivered in sequence order from this goroutine.
func (s *Session) Run(ctx context.Context, st Start, out func(stream uint8, seq uint64, data []byte)) (Report, error) {
	if err := s.write(FrameStart, st); err != nil {
		return Report{}, fmt.Errorf("send start: %w", err)
	}
	stop := context.AfterFunc(ctx, func() { s.writeRaw(FrameCancel, nil) })
	defer stop()
	for {
		t, p, err := ReadFrame(s.conn)
		if err != nil {
			return Report{}, fmt.Errorf("read from agent: %w", err)
		}
		switch t {
		case FrameOutput:
			stream, seq, data, err := DecodeOutput(p)
			if err != nil {
				return Report{}, err
			}
			if out != nil {
				out(stream, seq, data)
			}
		case FrameReport:
			var r Report
			if err := json.Unmarshal(p, &r); err != nil {
				return Report{}, fmt.Errorf("decode agent report: %w", err)
			}
			return r, nil
		default:
			return Report{}, fmt.Errorf("agent sent unexpected frame %d", t)
		}
	}
}

func (s *Session) write(t FrameType, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return s.writeRaw(t, b)
}

func (s *Session) writeRaw(t FrameType, p []byte) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	return WriteFrame(s.conn, t, p)
}
