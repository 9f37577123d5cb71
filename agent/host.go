package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"sync"
	"syscall"
	"time"
)

// Session is the host's end of one agent connection. Engines share it so
// that every backend speaks the same protocol.
type Session struct {
	conn   net.Conn
	hello  Hello
	onCall func(ctx context.Context, c Call) Reply
	onUse  func(Sample)
	wmu    sync.Mutex // guards writes to conn

	prestart string // the last report's Prestart
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

// Hello is the agent's hello on this connection. A resumed hello means the
// agent redialled during a run: call Resume, not Run.
func (s *Session) Hello() Hello { return s.hello }

// OnCall sets the handler of the script's runtime API calls (input and event
// are answered by the agent itself). It runs on its own goroutine per call.
// Set it before Run or Resume.
func (s *Session) OnCall(h func(ctx context.Context, c Call) Reply) { s.onCall = h }

// OnUsage sets the receiver of the running script's usage samples (about
// one per SampleEvery), called from the goroutine of Run or Resume. Set it
// before Run or Resume.
func (s *Session) OnUsage(f func(Sample)) { s.onUse = f }

// PeerPID is the agent's process id as this host numbers it (0 when the
// connection cannot tell: not a local socket).
func (s *Session) PeerPID() int {
	uc, ok := s.conn.(*net.UnixConn)
	if !ok {
		return 0
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return 0
	}
	var cred *syscall.Ucred
	raw.Control(func(fd uintptr) {
		cred, err = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	})
	if err != nil || cred == nil {
		return 0
	}
	return int(cred.Pid)
}

// Close closes the connection. An agent with no run outstanding then exits;
// one whose run is outstanding (the report not yet acknowledged) keeps it
// and redials, until its wait runs out.
func (s *Session) Close() error { return s.conn.Close() }

// Run sends st and relays output until the agent's report, which it
// acknowledges. When ctx is done it sends a cancel and keeps reading, so the
// report still arrives; callers bound the whole call with a backstop that
// closes the session. Output chunks are delivered in sequence order from
// this goroutine.
func (s *Session) Run(ctx context.Context, st Start, out func(stream uint8, seq uint64, data []byte)) (Report, error) {
	if err := s.write(FrameStart, st); err != nil {
		return Report{}, fmt.Errorf("send start: %w", err)
	}
	return s.relay(ctx, out)
}

// Resume relays the output of a run an agent resumed after a resumed hello,
// until its report, as Run does. The agent writes again up to its last MiB
// of output already written, so out sees sequence numbers the previous host
// had: skip those.
func (s *Session) Resume(ctx context.Context, out func(stream uint8, seq uint64, data []byte)) (Report, error) {
	if !s.hello.Resume {
		return Report{}, fmt.Errorf("the agent has no run to resume (pid %d said a fresh hello)", s.hello.PID)
	}
	return s.relay(ctx, out)
}

func (s *Session) relay(ctx context.Context, out func(stream uint8, seq uint64, data []byte)) (Report, error) {
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
		case FrameUsage:
			var smp Sample
			if s.onUse != nil && json.Unmarshal(p, &smp) == nil {
				s.onUse(smp)
			}
		case FrameCall:
			var c Call
			if err := json.Unmarshal(p, &c); err != nil {
				continue
			}
			h := s.onCall
			go func() { // answers one runtime API call; the agent times it out if the host is slow
				rep := Reply{Error: "this host serves no runtime API"}
				if h != nil {
					rep = h(ctx, c)
				}
				rep.ID = c.ID
				s.write(FrameReply, rep)
			}()
		case FrameReport:
			var r Report
			if err := json.Unmarshal(p, &r); err != nil {
				return Report{}, fmt.Errorf("decode agent report: %w", err)
			}
			s.prestart = r.Prestart
			// Unacknowledged, the agent would keep the run for a host to come back.
			// A lost ack costs nothing: the caller removes the sandbox.
			s.writeRaw(FrameAck, nil)
			return r, nil
		default:
			return Report{}, fmt.Errorf("agent sent unexpected frame %d", t)
		}
	}
}

// Prestart is what the last report of Run or Resume said of the
// interpreter prepared for its run: "used", why it was not, or "" when
// none was prepared. Call it after Run or Resume returned.
func (s *Session) Prestart() string { return s.prestart }

// Reset asks the idle agent to wipe the sandbox for its next run and waits
// for its account. Frames of the previous run still in flight are skipped.
func (s *Session) Reset(ctx context.Context, r Reset) (Clean, error) {
	if err := s.write(FrameReset, r); err != nil {
		return Clean{}, fmt.Errorf("send reset: %w", err)
	}
	return s.awaitClean(ctx)
}

// awaitClean reads up to the agent's FrameClean, skipping frames of the
// previous run still in flight.
func (s *Session) awaitClean(ctx context.Context) (Clean, error) {
	stop := context.AfterFunc(ctx, func() { s.conn.SetReadDeadline(time.Now()) })
	defer stop()
	for {
		t, p, err := ReadFrame(s.conn)
		if err != nil {
			return Clean{}, fmt.Errorf("read reset answer: %w", err)
		}
		if t != FrameClean {
			continue
		}
		var c Clean
		if err := json.Unmarshal(p, &c); err != nil {
			return Clean{}, fmt.Errorf("decode reset answer: %w", err)
		}
		return c, nil
	}
}

// Keep asks the idle agent, whose run ended, to keep the sandbox for
// debugging: it removes the secrets, keeps the files, and stays until the
// engine stops the sandbox (closing the session no longer ends it).
func (s *Session) Keep(ctx context.Context, r Reset) (Clean, error) {
	if err := s.write(FrameKeep, r); err != nil {
		return Clean{}, fmt.Errorf("send keep: %w", err)
	}
	return s.awaitClean(ctx)
}

// Prepare asks the idle agent to start the interpreter of the next run
// now (see Prepare). It does not wait: the interpreter starts while the
// sandbox waits for its run, and the run's report says whether it was used
// (Prestart). An error means the session is unusable.
func (s *Session) Prepare(ctx context.Context, p Prepare) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := s.write(FramePrepare, p); err != nil {
		return fmt.Errorf("send prepare: %w", err)
	}
	return nil
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
