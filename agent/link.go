package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"
)

// What the agent keeps for a host that went away, and how it looks for it.
const (
	// pendingBudget bounds the output buffered while no host is connected;
	// past it output is dropped and counted. The report is always kept.
	pendingBudget = 8 << 20
	// resendWindow is how much output already written the agent keeps and
	// writes again after a resumed hello: a host killed mid-run loses what
	// sat unread in its socket. Hosts skip what they have by sequence number.
	resendWindow = 1 << 20
	// redialEvery is the pause between attempts to reach a host.
	redialEvery = 100 * time.Millisecond
	// hostWait is how long past a run's timeout and grace the agent waits
	// for a host to come back before it gives up and exits.
	hostWait = 10 * time.Minute
)

// frame is one message from the host, as the link hands it to the agent.
type frame struct {
	t     FrameType
	start Start   // FrameStart, decoded
	bad   error   // FrameStart or FramePrepare that did not decode
	reply Reply   // FrameReply, decoded
	reset Reset   // FrameReset, decoded
	prep  Prepare // FramePrepare, decoded
}

// outFrame is one frame to the host, kept until it is safe to forget.
type outFrame struct {
	t      FrameType
	p      []byte
	seq    uint64 // output frames
	marker bool   // stands for the output dropped while no host was connected
}

// link is the agent's side of the host connection. It outlives connections:
// when one breaks while a run is outstanding (from its Start until the host
// acknowledges its report) the link keeps what the agent sends, redials the
// same socket every redialEvery, says a resumed hello and writes the kept
// frames again, in order. With no run outstanding a broken connection ends
// the link, and with it the agent.
type link struct {
	addr   string
	budget int           // pendingBudget; tests lower it
	wait   time.Duration // hostWait; tests lower it
	in     chan frame    // frames from the host across connections; closed when the link ends

	mu      sync.Mutex // guards the fields below; held across writes so that frames keep their order
	conn    net.Conn   // nil while no host is connected; then pending is where frames go
	busy    bool       // a run is outstanding
	execID  string     // the outstanding run's execution id, for the resumed hello
	giveUp  time.Time  // when to stop waiting for a host during the outstanding run
	sent    []outFrame // written to conn and kept to be written again: the last resendWindow bytes of output, and the report
	sentN   int        // output bytes in sent
	pending []outFrame // not yet written (conn is nil), in order
	pendN   int        // output bytes in pending
	dropped int64      // output bytes dropped while no host was connected; a marker in pending stands for them
	err     error      // why the link ended
}

func newLink(conn net.Conn, addr string) *link {
	return &link{addr: addr, budget: pendingBudget, wait: hostWait, in: make(chan frame), conn: conn}
}

// send writes a frame to the host, or keeps it for the next connection.
// A frame whose write failed, perhaps halfway, is written again whole.
func (l *link) send(t FrameType, p []byte, seq uint64) {
	f := outFrame{t: t, p: p, seq: seq}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conn != nil {
		if err := WriteFrame(l.conn, t, p); err == nil {
			l.keep(f)
			return
		}
		// The reader sees the closed connection and redials.
		l.conn.Close()
		l.conn = nil
	}
	if t == FrameUsage {
		return // a sample is of the moment: not kept for a host that comes back
	}
	if t == FrameOutput {
		if l.dropped > 0 || l.pendN+len(p) > l.budget {
			if l.dropped == 0 {
				// The marker takes the first dropped chunk's place and number.
				l.pending = append(l.pending, outFrame{t: FrameOutput, seq: seq, marker: true})
			}
			l.dropped += int64(len(p) - 9)
			return
		}
		l.pendN += len(p)
	}
	l.pending = append(l.pending, f)
}

// keep remembers a written frame until the host acknowledges the report.
// l.mu is held.
func (l *link) keep(f outFrame) {
	if f.t != FrameOutput && f.t != FrameReport {
		return
	}
	l.sent = append(l.sent, f)
	if f.t != FrameOutput {
		return
	}
	l.sentN += len(f.p)
	for l.sentN > resendWindow && l.sent[0].t == FrameOutput {
		l.sentN -= len(l.sent[0].p)
		l.sent[0] = outFrame{}
		l.sent = l.sent[1:]
	}
}

// serve reads frames from the host into in. When the connection breaks with
// a run outstanding it redials until a host takes the run back or the wait
// runs out. It is the only sender on in and closes it when the link ends.
func (l *link) serve(c net.Conn) {
	defer close(l.in)
	for {
		err := l.read(c)
		c.Close()
		l.mu.Lock()
		if l.conn == c {
			l.conn = nil
		}
		busy, giveUp := l.busy, l.giveUp
		if !busy && !errors.Is(err, io.EOF) {
			l.err = fmt.Errorf("read frame: %w", err)
		}
		l.mu.Unlock()
		if !busy {
			return // the host closed an idle connection: the agent's work is done
		}
		if c = l.redial(giveUp); c == nil {
			return
		}
	}
}

// read hands frames to in until the connection breaks.
func (l *link) read(c net.Conn) error {
	for {
		t, p, err := ReadFrame(c)
		if err != nil {
			return err
		}
		f := frame{t: t}
		switch t {
		case FrameStart:
			f.bad = json.Unmarshal(p, &f.start)
			l.mu.Lock()
			l.busy, l.execID = true, f.start.ExecutionID
			l.giveUp = time.Now().Add(time.Duration(f.start.TimeoutMS+f.start.GraceMS)*time.Millisecond + l.wait)
			l.sent, l.sentN = nil, 0
			l.mu.Unlock()
		case FrameReply:
			if json.Unmarshal(p, &f.reply) != nil {
				continue
			}
		case FrameReset, FrameKeep:
			if json.Unmarshal(p, &f.reset) != nil {
				continue
			}
		case FramePrepare:
			f.bad = json.Unmarshal(p, &f.prep)
		case FrameAck:
			l.mu.Lock()
			l.busy = false
			l.sent, l.sentN = nil, 0
			l.mu.Unlock()
			continue
		}
		l.in <- f
	}
}

// redial looks for a host until giveUp and resumes with the first that
// answers. It returns nil when none did.
func (l *link) redial(giveUp time.Time) net.Conn {
	for time.Now().Before(giveUp) {
		time.Sleep(redialEvery)
		c, err := net.DialTimeout("unix", l.addr, time.Second)
		if err != nil {
			continue
		}
		if err := l.resume(c); err != nil {
			c.Close()
			continue
		}
		return c
	}
	l.mu.Lock()
	l.err = fmt.Errorf("no host came back to %s by %s: giving up", l.addr, giveUp.Format(time.RFC3339))
	l.mu.Unlock()
	return nil
}

// resume says a resumed hello on c, writes the kept frames again and the
// pending ones, and makes c the connection. On error nothing is forgotten.
func (l *link) resume(c net.Conn) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := WriteJSON(c, FrameHello, Hello{Protocol: ProtocolVersion, PID: os.Getpid(), Resume: true, ExecutionID: l.execID}); err != nil {
		return err
	}
	for _, f := range l.sent {
		if err := WriteFrame(c, f.t, f.p); err != nil {
			return err
		}
	}
	for i, f := range l.pending {
		if f.marker {
			msg := fmt.Sprintf("\n[cronium] %d bytes of output were dropped while the host was away\n", l.dropped)
			l.pending[i].p = EncodeOutput(2, f.seq, []byte(msg))
		}
		if err := WriteFrame(c, f.t, l.pending[i].p); err != nil {
			return err
		}
	}
	for _, f := range l.pending {
		l.keep(f)
	}
	l.pending, l.pendN, l.dropped = nil, 0, 0
	l.conn = c
	return nil
}

// ended says why the link ended: nil when the host closed an idle connection.
func (l *link) ended() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}
