package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	cronium "github.com/cronium/executor"
	"github.com/cronium/executor/agent"
	"github.com/cronium/executor/store"
)

// DebugProtocol is the Upgrade token of POST /v1/executions/{id}/debug.
// After the 101 answer both ends exchange frames (agent.WriteFrame's
// format: a type byte, a 4-byte big-endian length, the payload) of the
// Debug* types.
const DebugProtocol = "cronium-tty.1"

// Debug frame types.
const (
	DebugData   = 1 // both ways: terminal bytes
	DebugResize = 2 // client to server: JSON cronium.TermSize
	DebugExit   = 3 // server to client, last: JSON DebugEnd
)

// DebugEnd ends a debug session.
type DebugEnd struct {
	Exit  int    `json:"exit"`
	Error string `json:"error,omitempty"`
}

// debugTarget is the audit target of an execution's debug sessions, which
// GET /v1/executions/{id} lists.
func debugTarget(id string) string { return "execution/" + id }

// debugExecution opens a shell in an execution's kept sandbox, for its
// owner only (admins too see other users' executions, never their shells).
func (s *Server) debugExecution(w http.ResponseWriter, r *http.Request, u *cronium.User) error {
	id := r.PathValue("id")
	if r.Header.Get("Upgrade") != DebugProtocol {
		return &Error{Status: http.StatusBadRequest, Code: "invalid", Message: "a debug session is a terminal: send Connection: Upgrade and Upgrade: " + DebugProtocol + " (`cronium exec debug ID` does)"}
	}
	size := cronium.TermSize{Rows: 24, Cols: 80}
	for _, q := range []struct {
		name string
		v    *uint16
	}{{"rows", &size.Rows}, {"cols", &size.Cols}} {
		if v := r.URL.Query().Get(q.name); v != "" {
			n, err := strconv.ParseUint(v, 10, 16)
			if err != nil || n == 0 {
				return cronium.Invalid(q.name, v, "is not a terminal size: want 1 to 65535")
			}
			*q.v = uint16(n)
		}
	}
	if _, err := s.cfg.Dispatcher.CheckDebug(r.Context(), u.ID, id); err != nil {
		return err
	}
	conn, rw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return fmt.Errorf("debug: the connection cannot be taken over: %w", err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Time{}) // the server's request deadlines do not bound a session
	if _, err := io.WriteString(conn, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: "+DebugProtocol+"\r\nConnection: Upgrade\r\n\r\n"); err != nil {
		return nil
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(r.Context()))
	defer cancel()
	go func() { // ends the session when the server closes
		select {
		case <-s.closing:
			cancel()
		case <-ctx.Done():
		}
	}()
	var wmu sync.Mutex
	write := func(t agent.FrameType, p []byte) error {
		wmu.Lock()
		defer wmu.Unlock()
		return agent.WriteFrame(conn, t, p)
	}
	in, inW := io.Pipe()
	resize := make(chan cronium.TermSize, 4)
	go func() { // the client's frames, until it goes away
		defer inW.Close()
		defer cancel()
		for {
			t, p, err := agent.ReadFrame(rw.Reader) // what the client sent with its request first
			if err != nil {
				return
			}
			switch t {
			case DebugData:
				if _, err := inW.Write(p); err != nil {
					return
				}
			case DebugResize:
				var sz cronium.TermSize
				if json.Unmarshal(p, &sz) == nil && sz.Rows > 0 && sz.Cols > 0 {
					select {
					case resize <- sz:
					default:
					}
				}
			}
		}
	}()
	out := writerFunc(func(p []byte) (int, error) {
		if err := write(DebugData, p); err != nil {
			return 0, err
		}
		return len(p), nil
	})
	begin := time.Now()
	term := r.URL.Query().Get("term")
	if len(term) > 64 {
		term = ""
	}
	code, derr := s.cfg.Dispatcher.Debug(ctx, u.ID, id, cronium.Terminal{In: in, Out: out, Size: size, Resize: resize, Term: term})
	in.Close()
	end := DebugEnd{Exit: code}
	if derr != nil && !errors.Is(derr, context.Canceled) {
		end.Error = derr.Error()
	}
	b, _ := json.Marshal(end)
	write(DebugExit, b)
	detail := fmt.Sprintf("debug session of %s, exit %d", time.Since(begin).Round(time.Second), code)
	if end.Error != "" {
		detail += ": " + end.Error
	}
	noteAudit(r, debugTarget(id), detail)
	return nil
}

// writerFunc is an io.Writer of a function.
type writerFunc func(p []byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// releaseKept removes an execution's kept sandbox before its time.
func (s *Server) releaseKept(w http.ResponseWriter, r *http.Request, u *cronium.User) error {
	// The owner, or an admin (who may free a user's slots, never open their shell).
	x, err := s.execution(r, u)
	if err != nil {
		return err
	}
	id := x.ID
	if err := s.cfg.Dispatcher.Release(r.Context(), x.UserID, id); err != nil {
		return err
	}
	noteAudit(r, debugTarget(id), "kept sandbox removed")
	x, err = s.cfg.Store.Execution(r.Context(), x.UserID, id)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, x)
}

// debugSessions lists the debug sessions of an execution, newest first.
func (s *Server) debugSessions(ctx context.Context, id string) []store.AuditEntry {
	es, err := s.cfg.Store.AuditLog(ctx, store.AuditFilter{Target: debugTarget(id), Limit: 20})
	if err != nil {
		return nil
	}
	return es
}
