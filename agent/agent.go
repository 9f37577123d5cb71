package agent

import (
	"encoding/json"
	"fmt"
	"github.com/cronium/executor/redact"
	"github.com/cronium/executor/tailbuf"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"
)

// Agent runs scripts inside one sandbox. Create it with NewAgent and call Serve.
type Agent struct {
	link *link

	reaper *reaper
	cg     cgroup
	pid1   bool

	// Used by the Serve loop only:
	prepared      *prestarted // an interpreter waiting for the next run
	prepareFailed string      // why the last Prepare left nothing prepared
}

// NewAgent wraps a connection to the host, dialled at HostDir/SocketName;
// the agent redials that socket when the connection breaks during a run.
func NewAgent(conn net.Conn) *Agent {
	return &Agent{
		link:   newLink(conn, filepath.Join(HostDir, SocketName)),
		reaper: startReaper(), cg: detectCgroup(), pid1: os.Getpid() == 1,
	}
}

// Dial connects to the host socket, retrying until timeout: the host creates
// the socket before it starts the container, so retries only cover a slow mount.
func Dial(path string, timeout time.Duration) (net.Conn, error) {
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.Dial("unix", path)
		if err == nil {
			return c, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("dial host socket %s: %w", path, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Serve says hello, then runs each Start it receives until the host closes
// the connection with no run outstanding. A cancel frame or SIGTERM stops
// the running script. When the connection breaks during a run, the script
// keeps running and the agent redials (see the package documentation); it
// returns an error when no host came back in time.
func (a *Agent) Serve() error {
	// Not dumpable: a script that runs as root in its container (the
	// compat profile) may not read or write the agent's memory or its
	// /proc files; that takes CAP_SYS_PTRACE, which no profile grants.
	if _, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, syscall.PR_SET_DUMPABLE, 0, 0); errno != 0 {
		return fmt.Errorf("make the agent undumpable: %v", errno)
	}
	l := a.link
	if err := WriteJSON(l.conn, FrameHello, Hello{Protocol: ProtocolVersion, PID: os.Getpid()}); err != nil {
		return fmt.Errorf("send hello: %w", err)
	}
	// SIGTERM to the agent stops the running script: nobody cancelled it,
	// the container engine stopped the sandbox (a restart without
	// live-restore, `docker stop`, a shutdown). The host cancels with a frame.
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(term)

	// A prepared interpreter never outlives the agent's work.
	defer a.discardPrepared()
	go l.serve(l.conn) // ends by closing l.in, which ends the loop below
	kept := false
	for f := range l.in {
		if f.t == FrameKeep {
			b, _ := json.Marshal(a.keep(f.reset))
			l.send(FrameClean, b, 0)
			kept = true
			continue
		}
		if f.t == FrameReset {
			a.discardPrepared()
			a.prepareFailed = ""
			b, _ := json.Marshal(a.reset(f.reset))
			l.send(FrameClean, b, 0)
			continue
		}
		if f.t == FramePrepare {
			a.prepareFailed = "the prepare message did not decode"
			if f.bad == nil {
				a.prepareFailed = a.prepare(f.prep)
			}
			continue
		}
		if f.t != FrameStart {
			continue // a cancel with nothing running: nothing to cancel
		}
		var rep Report
		if f.bad != nil {
			rep = Report{Outcome: "engine_error", ExitCode: -1, Error: "agent: bad start message: " + f.bad.Error()}
		} else {
			rep = a.run(f.start, l.in, term)
		}
		b, _ := json.Marshal(rep) // a Report always encodes
		l.send(FrameReport, b, 0)
	}
	if kept {
		// Kept for debugging: the files stay while the agent (PID 1) lives,
		// until the engine stops the sandbox.
		<-term
		return nil
	}
	return l.ended()
}

// engineStopped is the stop reason of a SIGTERM from the engine.
const engineStopped = "engine_stopped"

// run executes one script and returns its report. It consumes frames while
// the script runs so that a cancel is seen at once.
func (a *Agent) run(st Start, frames <-chan frame, term <-chan os.Signal) Report {
	begin := time.Now()
	fail := func(format string, args ...any) Report {
		return Report{Outcome: "engine_error", ExitCode: -1, Error: fmt.Sprintf(format, args...), RunNS: int64(time.Since(begin))}
	}
	// Every Start consumes the prepared interpreter: one that is not
	// handed this run is killed before the run measures anything.
	defer a.discardPrepared()
	if strings.ContainsRune(st.ScriptName, '/') || st.ScriptName == "" || st.ScriptName[0] == '.' {
		return fail("agent: bad script name %q", st.ScriptName)
	}
	// Engines copy the image's directory mode onto the tmpfs; the workspace must
	// be writable by the script and sticky, so the script cannot replace the
	// script file the agent owns.
	if err := os.Chmod(Workspace, 0o1777); err != nil {
		return fail("agent: prepare workspace: %v", err)
	}
	// The agent, not the host, writes the script: O_EXCL|O_NOFOLLOW so nothing
	// planted in the workspace can redirect the write.
	path := filepath.Join(Workspace, st.ScriptName)
	// A persistent workspace may hold the previous container's script.
	os.Remove(path)
	os.Remove(filepath.Join(Workspace, "input.json"))
	os.Remove(filepath.Join(Workspace, "output.json")) // a previous run's, in a persistent workspace
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o444)
	if err != nil {
		return fail("agent: write script: %v", err)
	}
	_, err = f.Write(st.Script)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fail("agent: write script: %v", err)
	}
	if err := writeFiles(Workspace, st.Files); err != nil {
		return fail("agent: write the script's files: %v", err)
	}
	if !hasKey(st.Env, "PATH") {
		// The image's PATH reaches the agent through the container config.
		st.Env = append(st.Env, "PATH="+os.Getenv("PATH"))
	}
	argv0, err := lookPath(st.Command[0], st.Env)
	if err != nil {
		return fail("agent: interpreter %s: %v (is this the right image for the language?)", st.Command[0], err)
	}
	var ps *prestarted
	prestart := ""
	if a.prepareFailed != "" {
		prestart, a.prepareFailed = "nothing was prepared: "+a.prepareFailed, ""
	}
	if a.prepared != nil {
		ps, prestart = a.take(st, argv0) // nil when it does not fit this run: killed, and the run starts as usual
		if ps != nil {
			defer func() {
				if ps != nil { // not launched: this run ended before its script started
					ps.kill()
				}
			}()
		}
	}
	caps, err := capNumbers(st.AmbientCaps)
	if err != nil {
		return fail("agent: %v", err)
	}
	if err := a.writeSecrets(st); err != nil {
		return fail("agent: deliver secrets: %v", err)
	}
	maxOut := st.MaxOutput
	if maxOut <= 0 {
		maxOut = 1 << 20
	}
	if st.DataMode == "files" {
		in := st.Input
		if len(in) == 0 {
			in = []byte("{}")
		}
		if err := writeFile(filepath.Join(Workspace, "input.json"), in); err != nil {
			return fail("agent: write input.json: %v", err)
		}
	}
	var rt *runtimeServer
	if st.Token != "" {
		if rt, err = startRuntime(st, a.link, APISocket); err != nil {
			return fail("agent: %v", err)
		}
		defer rt.stop()
	}
	oomBefore := a.cg.oomKills()
	ruBefore := childrenCPU()
	readBefore, writeBefore := selfIO()
	cgBefore := a.cg.counters()
	var c *child
	if ps != nil {
		// The prepared interpreter becomes this run's script, or is killed
		// (and reaped, before the usage is measured) for one started afresh.
		if err := ps.start(st.Env); err == nil {
			c, prestart = &ps.child, "used"
		} else {
			ps.kill()
			prestart = "the launch failed: " + err.Error()
			ruBefore = childrenCPU()
		}
		ps = nil
	}
	if c == nil {
		if c, err = a.spawn(argv0, st.Command, st.Env, st.UID, st.GID, caps); err != nil {
			return fail("agent: %v", err)
		}
	}
	pid, exited, stdinW, outR, errR := c.proc.Pid, c.exited, c.stdinW, c.outR, c.errR

	go func() { // ends when the input is written or the script closes stdin
		stdinW.Write(st.Input)
		stdinW.Close()
	}()

	em := newEmitter(a, st.OutputCap, st.KillOnCap)
	if len(st.Secrets) > 0 {
		var values [][]byte
		for _, v := range st.Secrets {
			values = append(values, v)
		}
		em.redact = map[uint8]*redact.Redactor{1: redact.New(values), 2: redact.New(values)}
	}
	if st.DataMode == "stdio" {
		em.stdio = &outputLine{max: maxOut}
	}
	var readers sync.WaitGroup
	readers.Add(2)
	go func() { defer readers.Done(); em.pump(1, outR) }()
	go func() { defer readers.Done(); em.pump(2, errR) }()

	var trail []string // what happened, for the run's trace
	note := func(format string, args ...any) {
		if len(trail) < 32 {
			trail = append(trail, fmt.Sprintf("%8.3fs ", time.Since(begin).Seconds())+fmt.Sprintf(format, args...))
		}
	}
	note("script started (pid %d, uid %d)", pid, st.UID)
	var (
		reason   string // "timed_out", "cancelled", "output_limit" once a stop began
		status   syscall.WaitStatus
		timeout  = time.NewTimer(time.Duration(st.TimeoutMS) * time.Millisecond)
		graceT   <-chan time.Time
		stopping = func(why string) {
			if reason != "" {
				return
			}
			reason = why
			note("%s: SIGTERM to the script's processes, SIGKILL after %dms", why, st.GraceMS)
			a.killAll(pid, syscall.SIGTERM)
			graceT = time.After(time.Duration(st.GraceMS) * time.Millisecond)
		}
		capHit  = em.capHit
		samples <-chan time.Time
	)
	if !st.NoSamples {
		sampler := time.NewTicker(SampleEvery)
		defer sampler.Stop()
		samples = sampler.C
	}
	defer timeout.Stop()
wait:
	for {
		select {
		case status = <-exited:
			break wait
		case <-samples:
			smp := a.cg.sample(cgBefore)
			smp.ElapsedNS = int64(time.Since(begin))
			if b, err := json.Marshal(smp); err == nil {
				a.link.send(FrameUsage, b, 0)
			}
		case <-timeout.C:
			stopping("timed_out")
		case <-capHit:
			capHit = nil
			note("output reached its cap")
			if st.KillOnCap {
				stopping("output_limit")
			}
		case <-term:
			stopping(engineStopped)
		case f, ok := <-frames:
			if !ok {
				// No host came back in time: nobody will read the result.
				note("no host came back in time")
				stopping("cancelled")
				a.killAll(pid, syscall.SIGKILL)
				frames = nil
				continue
			}
			switch f.t {
			case FrameCancel:
				stopping("cancelled")
			case FrameReply:
				if rt != nil {
					rt.deliver(f.reply)
				}
			}
		case <-graceT:
			note("grace over: SIGKILL")
			a.killAll(pid, syscall.SIGKILL)
			graceT = nil
		}
	}
	runNS := time.Since(begin)
	switch {
	case status.Exited():
		note("script exited with status %d", status.ExitStatus())
	case status.Signaled():
		note("script ended by signal %d (%s)", int(status.Signal()), status.Signal())
	}
	// The script's main process is gone; nothing it started may outlive it.
	a.killAll(pid, syscall.SIGKILL)
	done := make(chan struct{})
	go func() { readers.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		outR.Close()
		errR.Close()
		<-done
	}
	outR.Close()
	errR.Close()

	em.sendTail()
	rep := Report{RunNS: int64(runNS), Prestart: prestart}
	rep.OutputBytes, rep.KeptBytes, rep.Truncated = em.totals()
	switch st.DataMode {
	case "stdio":
		rep.Output, rep.OutputError = em.stdio.result()
	case "files":
		rep.Output, rep.OutputError = readOutputFile(filepath.Join(Workspace, "output.json"), maxOut)
	}
	rep.CPUSeconds = childrenCPU() - ruBefore
	rep.PeakMemory = a.cg.peakMemory()
	if rep.PeakMemory == 0 {
		rep.PeakMemory = childrenMaxRSS()
	}
	rep.OOMKills = a.cg.oomKills() - oomBefore
	if rep.OOMKills > 0 {
		note("the kernel killed %d process(es) for memory", rep.OOMKills)
	}
	readAfter, writeAfter := selfIO()
	rep.IORead, rep.IOWrite = max(0, readAfter-readBefore), max(0, writeAfter-writeBefore)
	rep.PidsPeak = a.cg.pidsPeak()
	rep.ThrottledNS = max(0, a.cg.counters().throttledNS-cgBefore.throttledNS)
	rep.Trail = trail
	switch {
	case status.Exited():
		rep.ExitCode = status.ExitStatus()
	case status.Signaled():
		rep.ExitCode = 128 + int(status.Signal())
		rep.Signal = status.Signal().String()
	}
	switch {
	case reason == engineStopped:
		rep.Outcome = "engine_error"
		rep.Error = "the engine stopped the sandbox (SIGTERM to the agent: `docker stop`, an engine restart without live-restore, a Pod deleted or evicted, a node shutting down); nobody cancelled the run"
	case reason != "":
		rep.Outcome = reason
	case rep.OOMKills > 0 && rep.ExitCode != 0:
		rep.Outcome = "oom_killed"
	case rep.ExitCode == 0:
		rep.Outcome = "succeeded"
	default:
		rep.Outcome = "failed"
	}
	return rep
}

// killAll signals every process of the execution. As PID 1 of the sandbox
// that is every other process (kill -1), which catches double-forked and
// setsid daemons; outside a sandbox (tests) only the script's session.
func (a *Agent) killAll(pid int, sig syscall.Signal) {
	if a.pid1 {
		syscall.Kill(-1, sig)
		return
	}
	syscall.Kill(-pid, sig)
}

// emitter numbers output chunks, enforces the cap and sends them. Its lock
// is taken before the link's.
//
// Under the truncate policy the cap keeps the head and the tail of the
// output: past the head (the cap less tailMax) the newest output is held
// in memory, at most tailMax bytes, and sent when the script has ended,
// after a line saying how much was left out. Under the kill policy the
// script is stopped at the cap.
type emitter struct {
	a         *Agent
	limit     int64
	head      int64 // bytes sent as they come
	killOnCap bool
	capHit    chan struct{}

	redact map[uint8]*redact.Redactor // per stream; nil without secrets
	stdio  *outputLine                // stdio data mode: the last output line

	mu        sync.Mutex // guards the fields below
	seq       uint64
	total     int64
	kept      int64
	pastHead  bool         // the head is sent: output goes to the tail (truncate) or is dropped (kill)
	truncated bool         // output was left out
	tail      tailbuf.Tail // the newest output past the head
}

// maxTail bounds the tail the agent holds in the sandbox's memory.
const maxTail = 1 << 20

func newEmitter(a *Agent, limit int64, killOnCap bool) *emitter {
	e := &emitter{a: a, limit: limit, head: limit, killOnCap: killOnCap, capHit: make(chan struct{})}
	if !killOnCap {
		e.tail.Max = min(limit/4, maxTail)
		e.head = limit - e.tail.Max
	}
	return e
}

// Chunks end on character boundaries: a UTF-8 character split by a read
// waits for its last bytes, so no reader of the chunks sees it broken.
func (e *emitter) pump(stream uint8, r io.Reader) {
	buf := make([]byte, 64<<10)
	carry := 0 // bytes of a split character at the start of buf
	for {
		n, err := r.Read(buf[carry:])
		n += carry
		carry = 0
		if err == nil {
			carry = splitRune(buf[:n])
		}
		if n-carry > 0 {
			e.write(stream, buf[:n-carry])
		}
		copy(buf, buf[n-carry:n])
		if err != nil {
			e.flush(stream)
			return
		}
	}
}

// splitRune returns how many bytes at the end of p begin a UTF-8 character
// that p does not finish (0 to 3).
func splitRune(p []byte) int {
	for i := 1; i <= 3 && i <= len(p); i++ {
		c := p[len(p)-i]
		if c < 0x80 {
			return 0 // ASCII: nothing is split
		}
		if utf8.RuneStart(c) {
			if utf8.FullRune(p[len(p)-i:]) {
				return 0
			}
			return i
		}
	}
	return 0
}

// write takes raw output: it is counted, secrets are redacted (holding back
// a possible split secret), and the stdio output line is looked for.
func (e *emitter) write(stream uint8, p []byte) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.total += int64(len(p))
	if r := e.redact[stream]; r != nil && r.Active() {
		p = r.Write(p)
	}
	e.emit(stream, p)
}

// flush emits what redaction held back at the end of a stream.
func (e *emitter) flush(stream uint8) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if r := e.redact[stream]; r != nil && r.Active() {
		e.emit(stream, r.Flush())
	}
}

// emit sends redacted output within the cap. e.mu is held.
func (e *emitter) emit(stream uint8, p []byte) {
	if stream == 1 && e.stdio != nil {
		e.stdio.write(p)
	}
	if e.pastHead {
		e.keepTail(stream, p) // drained so the script never blocks
		return
	}
	var rest []byte
	if room := e.head - e.kept; int64(len(p)) > room {
		cut := int(room)
		for cut > 0 && !utf8.RuneStart(p[cut]) {
			cut-- // never split a character
		}
		p, rest = p[:cut], p[cut:]
		e.pastHead = true
	}
	if len(p) > 0 {
		e.seq++
		e.kept += int64(len(p))
		e.a.link.send(FrameOutput, EncodeOutput(stream, e.seq, p), e.seq)
	}
	if e.pastHead {
		close(e.capHit)
		if e.killOnCap {
			e.truncated = true
			e.seq++
			msg := fmt.Sprintf("\n[cronium] output truncated: the %d byte output limit was reached; further output is dropped\n", e.limit)
			e.a.link.send(FrameOutput, EncodeOutput(2, e.seq, []byte(msg)), e.seq)
			return
		}
		e.keepTail(stream, rest)
	}
}

// keepTail holds p as the newest output. e.mu is held.
func (e *emitter) keepTail(stream uint8, p []byte) {
	e.tail.Add(tailbuf.Chunk{Stream: stream, Data: append([]byte(nil), p...)})
}

// sendTail sends the held tail once the script has ended, after a line
// saying how much was left out.
func (e *emitter) sendTail() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.pastHead || e.killOnCap {
		return
	}
	if e.tail.Dropped() > 0 { // else the output fit the cap: nothing to say
		e.truncated = true
		msg := fmt.Sprintf("\n[cronium] output truncated: the %d byte output limit was reached; %d bytes were left out here; the last %d bytes follow\n", e.limit, e.tail.Dropped(), e.tail.Bytes())
		e.seq++
		e.a.link.send(FrameOutput, EncodeOutput(2, e.seq, []byte(msg)), e.seq)
	}
	for _, c := range e.tail.Take() {
		e.seq++
		e.kept += int64(len(c.Data))
		e.a.link.send(FrameOutput, EncodeOutput(c.Stream, e.seq, c.Data), e.seq)
	}
}

func (e *emitter) totals() (total, kept int64, truncated bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.total, e.kept, e.truncated
}

// reaper reaps every child of PID 1 (orphans included) and hands the exit
// status of watched pids to whoever watches them.
type reaper struct {
	mu      sync.Mutex // guards watched; held across StartProcess+watch so no exit is missed
	watched map[int]chan syscall.WaitStatus
}

func startReaper() *reaper {
	r := &reaper{watched: map[int]chan syscall.WaitStatus{}}
	sig := make(chan os.Signal, 16)
	signal.Notify(sig, syscall.SIGCHLD)
	go func() { // lives as long as the agent process
		for range sig {
			r.reap()
		}
	}()
	return r
}

func (r *reaper) watch(pid int) chan syscall.WaitStatus {
	ch := make(chan syscall.WaitStatus, 1)
	r.watched[pid] = ch
	return ch
}

func (r *reaper) reap() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if pid <= 0 || err != nil {
			return
		}
		if ch, ok := r.watched[pid]; ok {
			ch <- ws
			delete(r.watched, pid)
		}
	}
}

func childrenCPU() float64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_CHILDREN, &ru) != nil {
		return 0
	}
	return float64(ru.Utime.Sec+ru.Stime.Sec) + float64(ru.Utime.Usec+ru.Stime.Usec)/1e6
}

func childrenMaxRSS() int64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_CHILDREN, &ru) != nil {
		return 0
	}
	return ru.Maxrss * 1024
}

// writeFile creates path for the script to read, refusing to follow or replace anything.
func writeFile(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o444)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func hasKey(env []string, key string) bool {
	for _, kv := range env {
		if strings.HasPrefix(kv, key+"=") {
			return true
		}
	}
	return false
}

// lookPath finds name in the PATH of env, without following the agent's own PATH.
func lookPath(name string, env []string) (string, error) {
	if strings.Contains(name, "/") {
		return name, nil
	}
	path := "/usr/local/bin:/usr/bin:/bin"
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			path = v
		}
	}
	for _, dir := range filepath.SplitList(path) {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("not found in PATH %s", path)
}

var capByName = map[string]uintptr{"NET_BIND_SERVICE": 10, "NET_RAW": 13}

func capNumbers(names []string) ([]uintptr, error) {
	var out []uintptr
	for _, n := range names {
		c, ok := capByName[strings.TrimPrefix(strings.ToUpper(n), "CAP_")]
		if !ok {
			return nil, fmt.Errorf("capability %s cannot be given to a script", n)
		}
		out = append(out, c)
	}
	return out, nil
}
