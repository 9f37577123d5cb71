package agent

import (
	"bufio"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cronium/executor/strictjson"
)

// Runtime API limits inside the sandbox.
const (
	// maxCallBytes bounds one request line from a script.
	maxCallBytes = 2 << 20
	// maxDrainBytes bounds what is read of an over-size request so that its
	// sender gets the answer.
	maxDrainBytes = 1 << 30
	// readSlots requests are read at once (each up to maxCallBytes), within
	// readTimeout: the agent's memory stays small whatever the script does.
	readSlots   = 4
	readTimeout = 10 * time.Second
	// callRate and callBurst bound how fast a script may call (token bucket).
	callRate  = 100
	callBurst = 200
	// callTimeout bounds how long a call waits for the host.
	callTimeout = 30 * time.Second
)

// CodeRateLimited is the Reply.Code of a call refused by the rate limit.
const CodeRateLimited = "rate_limited"

// callIDs numbers forwarded calls across every run of this agent.
var callIDs atomic.Uint64

// runtimeServer serves the runtime API on APISocket for one run: it checks
// the run's token, rate-limits, answers input and event itself and forwards
// the rest to the host as Call frames. It stops with the run, so the token
// dies with it.
type runtimeServer struct {
	st   Start
	link *link
	ln   net.Listener

	mu      sync.Mutex // guards the fields below
	waiting map[uint64]chan Reply
	tokens  float64
	last    time.Time
	closed  bool
	conns   sync.WaitGroup
	reading chan struct{} // a slot per request being read: bounds the agent's memory
	done    chan struct{} // closed by stop
}

func startRuntime(st Start, l *link, path string) (*runtimeServer, error) {
	os.Remove(path)
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("runtime API socket %s: %w", path, err)
	}
	// Any process of the sandbox may connect; the token decides.
	if err := os.Chmod(path, 0o666); err != nil {
		ln.Close()
		return nil, err
	}
	r := &runtimeServer{st: st, link: l, ln: ln, waiting: map[uint64]chan Reply{}, tokens: callBurst, last: time.Now(),
		reading: make(chan struct{}, readSlots), done: make(chan struct{})}
	go r.accept() // ends when stop closes the listener
	return r, nil
}

// stop closes the socket and fails calls still waiting for the host.
func (r *runtimeServer) stop() {
	r.mu.Lock()
	if !r.closed {
		close(r.done)
	}
	r.closed = true
	for id, ch := range r.waiting {
		ch <- Reply{ID: id, Error: "the execution ended"}
		delete(r.waiting, id)
	}
	r.mu.Unlock()
	r.ln.Close()
	os.Remove(r.ln.Addr().String())
	r.conns.Wait()
}

// deliver hands the host's reply to the waiting call.
func (r *runtimeServer) deliver(rep Reply) {
	r.mu.Lock()
	ch := r.waiting[rep.ID]
	delete(r.waiting, rep.ID)
	r.mu.Unlock()
	if ch != nil {
		ch <- rep
	}
}

func (r *runtimeServer) accept() {
	for {
		c, err := r.ln.Accept()
		if err != nil {
			select {
			case <-r.done:
				return
			case <-time.After(100 * time.Millisecond):
				// Out of file descriptors (the script holds them) or another
				// passing error: the API comes back once they are freed.
				continue
			}
		}
		r.conns.Add(1)
		go func() { // one call per connection; ends within callTimeout
			defer r.conns.Done()
			defer c.Close()
			c.SetDeadline(time.Now().Add(callTimeout + 5*time.Second))
			rep := r.handle(c)
			b, _ := json.Marshal(rep)
			c.Write(append(b, '\n'))
		}()
	}
}

// request is what a helper sends.
type request struct {
	Token string          `json:"token"`
	Op    string          `json:"op"`
	Key   string          `json:"key,omitempty"`
	Value json.RawMessage `json:"value,omitempty"`
}

func fail(format string, args ...any) Reply {
	return Reply{Error: fmt.Sprintf(format, args...)}
}

// requests decodes helpers' requests as the HTTP API decodes its bodies:
// a key given twice, also in another case ({"key": "a", "Key": "b"}), is
// refused rather than one of them quietly taken. Other keys are ignored,
// as they always were here.
var requests = strictjson.Decoder{AllowUnknownFields: true}

// refuse answers a request that did not decode: err is a *strictjson.Error.
func refuse(err error) Reply {
	var e *strictjson.Error
	rep := fail("request: %v", err)
	if errors.As(err, &e) && e.Field == "" {
		rep = fail("request %s", e.Problem) // "request is not valid JSON: ..."
	}
	rep.Code = "invalid"
	return rep
}

func (r *runtimeServer) handle(c net.Conn) Reply {
	// A few requests are read at a time, each within maxCallBytes: however
	// many connections a script opens, the agent's memory stays bounded.
	select {
	case r.reading <- struct{}{}:
	case <-r.done:
		return fail("the execution ended")
	}
	c.SetReadDeadline(time.Now().Add(readTimeout))
	br := bufio.NewReaderSize(io.LimitReader(c, maxCallBytes+1), 64<<10)
	line, err := br.ReadBytes('\n')
	<-r.reading
	if len(line) > maxCallBytes {
		// Read the rest (within bounds) before answering: a client still
		// writing would see "broken pipe" instead of this answer.
		read := int64(len(line))
		line = nil // not held while draining
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, _ := io.Copy(io.Discard, io.LimitReader(c, maxDrainBytes))
		rep := fail("request is larger than %d bytes (at least %d): nothing was stored; store large data elsewhere", maxCallBytes, read+n)
		rep.Code = "invalid"
		return rep
	}
	if err != nil && !errors.Is(err, io.EOF) {
		return fail("read request: %v", err)
	}
	var q request
	if err := requests.Decode(line, &q); err != nil {
		return refuse(err)
	}
	if subtle.ConstantTimeCompare([]byte(q.Token), []byte(r.st.Token)) != 1 || r.st.Token == "" {
		return fail("invalid runtime token: each execution has its own, in CRONIUM_RUNTIME_TOKEN")
	}
	if !r.allow() {
		rep := fail("rate limit: at most %d runtime API calls per second (a burst of %d): the helpers wait and try again", callRate, callBurst)
		rep.Code = CodeRateLimited
		return rep
	}
	switch q.Op {
	case "input":
		if len(r.st.Input) == 0 {
			return Reply{OK: true, Value: json.RawMessage("{}")}
		}
		return Reply{OK: true, Value: r.st.Input}
	case "event", "context":
		return Reply{OK: true, Value: r.st.Context}
	case "output", "getVariable", "setVariable", "deleteVariable", "listVariables", "increment", "setCondition", "getCondition":
		return r.forward(Call{Op: q.Op, Key: q.Key, Value: q.Value})
	}
	return fail("unknown op %q: want input, output, getVariable, setVariable, deleteVariable, listVariables, increment, setCondition, getCondition or event", q.Op)
}

func (r *runtimeServer) allow() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	r.tokens = min(callBurst, r.tokens+now.Sub(r.last).Seconds()*callRate)
	r.last = now
	if r.tokens < 1 {
		return false
	}
	r.tokens--
	return true
}

func (r *runtimeServer) forward(call Call) Reply {
	ch := make(chan Reply, 1)
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return fail("the execution ended")
	}
	call.ID = callIDs.Add(1) // unique across runs: a late reply cannot answer the next run's call
	r.waiting[call.ID] = ch
	r.mu.Unlock()
	b, _ := json.Marshal(call)
	r.link.send(FrameCall, b, 0)
	select {
	case rep := <-ch:
		return rep
	case <-time.After(callTimeout):
		r.mu.Lock()
		delete(r.waiting, call.ID)
		r.mu.Unlock()
		return fail("the host did not answer within %s", callTimeout)
	}
}

// writeSecrets writes each secret to SecretsDir as the script user, through
// a child process of this binary, so files belong to that user (mode 0400)
// and the agent needs no CAP_CHOWN. Names are checked; nothing is followed.
func (a *Agent) writeSecrets(st Start) error {
	if len(st.Secrets) == 0 {
		return nil
	}
	for name := range st.Secrets {
		if !validSecretName(name) {
			return fmt.Errorf("bad secret name %q", name)
		}
	}
	self, err := os.Executable()
	if err != nil {
		self = BinaryPath
	}
	payload, _ := json.Marshal(st.Secrets)
	pr, pw, err := os.Pipe()
	if err != nil {
		return err
	}
	a.reaper.mu.Lock()
	proc, err := os.StartProcess(self, []string{self, "write-secrets", SecretsDir}, &os.ProcAttr{
		Files: []*os.File{pr, os.Stderr, os.Stderr},
		Sys:   &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(st.UID), Gid: uint32(st.GID), Groups: []uint32{}}},
	})
	var exited chan syscall.WaitStatus
	if err == nil {
		exited = a.reaper.watch(proc.Pid)
	}
	a.reaper.mu.Unlock()
	pr.Close()
	if err != nil {
		pw.Close()
		return fmt.Errorf("start secrets writer: %w", err)
	}
	pw.Write(payload)
	pw.Close()
	select {
	case ws := <-exited:
		if !ws.Exited() || ws.ExitStatus() != 0 {
			return fmt.Errorf("the secrets writer failed (%v): is %s a tmpfs the script user owns?", ws, SecretsDir)
		}
		return nil
	case <-time.After(10 * time.Second):
		proc.Kill()
		return fmt.Errorf("the secrets writer did not finish in 10s")
	}
}

func validSecretName(n string) bool {
	if n == "" || len(n) > 128 || n[0] == '.' {
		return false
	}
	for _, c := range n {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// SecretsWriterMain is `cronium-agent write-secrets DIR`: it runs as the
// script user, reads name->value JSON on stdin and writes each value to
// DIR/name with mode 0400, refusing to follow or replace anything.
func SecretsWriterMain(args []string, stdin io.Reader) int {
	if len(args) != 1 {
		return 2
	}
	var secrets map[string][]byte
	if err := json.NewDecoder(io.LimitReader(stdin, MaxFrame)).Decode(&secrets); err != nil {
		fmt.Fprintln(os.Stderr, "cronium-agent write-secrets:", err)
		return 1
	}
	for name, value := range secrets {
		if !validSecretName(name) {
			return 1
		}
		tmp := filepath.Join(args[0], "."+name+".tmp")
		f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o400)
		if err != nil {
			fmt.Fprintln(os.Stderr, "cronium-agent write-secrets:", err)
			return 1
		}
		_, err = f.Write(value)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			err = os.Rename(tmp, filepath.Join(args[0], name))
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "cronium-agent write-secrets:", err)
			return 1
		}
	}
	return 0
}

// readOutputFile reads the files data mode's output.json without following
// links or blocking on a FIFO the script may have planted.
func readOutputFile(path string, max int64) (json.RawMessage, string) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if errors.Is(err, os.ErrNotExist) {
		return nil, ""
	}
	if err != nil {
		return nil, fmt.Sprintf("output.json could not be read: %v", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		return nil, "output.json is not a regular file: not taken"
	}
	if fi.Size() > max {
		return nil, fmt.Sprintf("output.json is %d bytes, above the %d byte output limit: not stored", fi.Size(), max)
	}
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, fmt.Sprintf("output.json could not be read: %v", err)
	}
	if int64(len(b)) > max {
		return nil, fmt.Sprintf("output.json is above the %d byte output limit: not stored", max)
	}
	if !json.Valid(b) {
		return nil, "output.json is not valid JSON: not stored"
	}
	return b, ""
}

// outputLine tracks the last stdout line carrying OutputPrefix (stdio data mode).
type outputLine struct {
	max     int64
	partial []byte
	over    bool // the current line grew past max
	last    []byte
	lastErr string
}

func (o *outputLine) write(p []byte) {
	for len(p) > 0 {
		i := strings.IndexByte(string(p), '\n')
		chunk := p
		if i >= 0 {
			chunk = p[:i]
		}
		if !o.over {
			if int64(len(o.partial)+len(chunk)) > o.max+int64(len(OutputPrefix)) {
				if strings.HasPrefix(string(append(o.partial, chunk...)), OutputPrefix) {
					o.lastErr = fmt.Sprintf("the %s line is above the %d byte output limit: not stored", OutputPrefix, o.max)
				}
				o.over, o.partial = true, nil
			} else {
				o.partial = append(o.partial, chunk...)
			}
		}
		if i < 0 {
			return
		}
		o.end()
		p = p[i+1:]
	}
}

func (o *outputLine) end() {
	if !o.over {
		if v, ok := strings.CutPrefix(string(o.partial), OutputPrefix); ok {
			o.last, o.lastErr = []byte(strings.TrimSpace(v)), ""
		}
	}
	o.partial, o.over = nil, false
}

func (o *outputLine) result() (json.RawMessage, string) {
	o.end()
	if o.last == nil {
		return nil, o.lastErr
	}
	var v map[string]any
	if json.Unmarshal(o.last, &v) != nil {
		return nil, "the last " + OutputPrefix + " line is not a JSON object: not stored"
	}
	return o.last, ""
}
