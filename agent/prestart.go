package agent

import (
	"bytes"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Prestarted interpreters.
//
// A Prepare starts the interpreter of the sandbox's next run before the run
// arrives: the same argv (the script's path is known in advance), as the
// script user with the same ambient capabilities, in its own session, in
// the workspace, with its standard streams on fresh pipes, exactly as run
// starts a script, plus PrestartEnv in its environment and the read end of
// a pipe, the launch pipe, at descriptor PrestartFD. The helpers the
// interpreter loads at start-up (sitecustomize.py, cronium-preload.js) see
// PrestartEnv once they have loaded the runtime helpers, and run the
// bootstrap (cronium-prestart.py, or the end of cronium-preload.js), which
// blocks reading the launch pipe.
//
// The next Start hands the run to that process when it fits (see fits):
// the agent writes the script, its files, the secrets and the input as
// usual, then the launch message (launchMessage: the environment the
// interpreter was started with and the run's) into the pipe, and closes
// it. The bootstrap makes the run's environment the process's, as a fresh
// start with it would have it (what the interpreter changed at start-up,
// such as the LC_CTYPE Python sets when it coerces the C locale, changed
// again), closes the pipe and returns: the interpreter goes on to open and
// run the script named on its command line, as it would have at once.
// From the launch on, the process is the run's script in every respect:
// the pipes, the session, the reaper, the kill paths, the timeout (which
// starts at Start, as always). A Start that comes while the interpreter is
// still starting hands it the run all the same: it reads the launch once
// started.
//
// A Start that does not fit (another command, user, capability set, or a
// different value of any variable that acts at the interpreter's start-up,
// see startupVar), a prepared interpreter that died, or a launch that
// cannot be written whole at once: the prepared process is killed and
// reaped, and the run starts as usual. A Reset, a new Prepare and the end
// of Serve kill it too, and every Start consumes it, used or not: a
// prepared interpreter never sees two runs, nor anything of a run before
// its own.
const (
	// PrestartEnv is set, to PrestartFD, in a prepared interpreter's
	// environment only: users cannot set CRONIUM_ variables.
	PrestartEnv = "CRONIUM_PRESTART_FD"
	// PrestartFD is the prepared interpreter's end of the launch pipe. It is
	// above the few descriptors an interpreter opens at start-up, so those
	// get the numbers they get in a fresh start, and within the 64 a
	// process's descriptor table holds before it grows.
	PrestartFD = 63
	// launchMagic starts the launch message: anything else (the pipe closed
	// by an agent that is gone or discarded the process) makes the bootstrap exit.
	launchMagic = "cronium-launch\x00"
)

// child is a started script process and the agent's ends of its standard streams.
type child struct {
	proc   *os.Process
	exited chan syscall.WaitStatus
	stdinW *os.File
	outR   *os.File
	errR   *os.File
}

func (c *child) closePipes() {
	c.stdinW.Close()
	c.outR.Close()
	c.errR.Close()
}

// spawn starts argv as uid:gid with caps, in its own session, in the
// workspace, with fresh pipes on its standard streams. It is the one way
// the agent starts a script.
func (a *Agent) spawn(argv0 string, argv, env []string, uid, gid int, caps []uintptr) (*child, error) {
	stdinR, stdinW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("pipe: %v", err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		stdinR.Close()
		stdinW.Close()
		return nil, fmt.Errorf("pipe: %v", err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		stdinR.Close()
		stdinW.Close()
		outR.Close()
		outW.Close()
		return nil, fmt.Errorf("pipe: %v", err)
	}
	attr := &os.ProcAttr{
		Dir:   Workspace,
		Env:   env,
		Files: []*os.File{stdinR, outW, errW},
		Sys: &syscall.SysProcAttr{
			Setsid:      true,
			Credential:  &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}},
			AmbientCaps: caps,
		},
	}
	a.reaper.mu.Lock()
	// The script is the OOM killer's first choice, never the agent.
	proc, err := startKillable(func() (*os.Process, error) { return os.StartProcess(argv0, argv, attr) })
	var exited chan syscall.WaitStatus
	if err == nil {
		exited = a.reaper.watch(proc.Pid)
	}
	a.reaper.mu.Unlock()
	stdinR.Close()
	outW.Close()
	errW.Close()
	if err != nil {
		stdinW.Close()
		outR.Close()
		errR.Close()
		return nil, fmt.Errorf("start %s: %v", argv[0], err)
	}
	return &child{proc: proc, exited: exited, stdinW: stdinW, outR: outR, errR: errR}, nil
}

// prestarted is an interpreter waiting for its run.
type prestarted struct {
	child
	launch *os.File // the agent's end of the launch pipe (non-blocking)
	room   int      // what the launch pipe holds
	prep   Prepare  // as asked, with PATH completed as run completes it
	given  []string // the environment it was started with
	argv0  string
	caps   []uintptr
	reaped bool // its exit status was taken from exited
}

// prepare starts the interpreter p names, whatever was prepared before
// discarded first. It returns why nothing is prepared ("" when it is).
func (a *Agent) prepare(p Prepare) string {
	a.discardPrepared()
	if len(p.Command) == 0 {
		return "no command"
	}
	p.Env = slices.Clip(p.Env)
	if _, why := envMap(p.Env); why != "" {
		return why
	}
	if !hasKey(p.Env, "PATH") {
		p.Env = append(p.Env, "PATH="+os.Getenv("PATH")) // as run does
	}
	argv0, err := lookPath(p.Command[0], p.Env)
	if err != nil {
		return fmt.Sprintf("interpreter %s: %v", p.Command[0], err)
	}
	caps, err := capNumbers(p.AmbientCaps)
	if err != nil {
		return err.Error()
	}
	if err := os.Chmod(Workspace, 0o1777); err != nil { // as run does before it starts a script
		return fmt.Sprintf("workspace: %v", err)
	}
	var fds [2]int
	if err := syscall.Pipe2(fds[:], syscall.O_CLOEXEC); err != nil {
		return fmt.Sprintf("launch pipe: %v", err)
	}
	// The interpreter inherits the read end as descriptor PrestartFD, open in
	// the agent without close-on-exec for the moment of the start only
	// (nothing else starts a process meanwhile: the agent is idle). Handing
	// it over through ProcAttr.Files instead would have the child move
	// descriptors above 63, growing its descriptor table past the 64 entries
	// a fresh start has (FDSize in /proc/self/status).
	at, err := fcntl(fds[0], syscall.F_DUPFD, PrestartFD)
	syscall.Close(fds[0])
	if err == nil && at != PrestartFD {
		syscall.Close(at)
		at, err = -1, fmt.Errorf("descriptor %d is taken", PrestartFD)
	}
	room := 0
	if err == nil {
		room, err = fcntl(fds[1], fGetPipeSize, 0)
	}
	if err == nil {
		err = syscall.SetNonblock(fds[1], true) // the agent's end, for a write deadline
	}
	if err != nil {
		if at >= 0 {
			syscall.Close(at)
		}
		syscall.Close(fds[1])
		return fmt.Sprintf("launch pipe: %v", err)
	}
	launch := os.NewFile(uintptr(fds[1]), "launch")
	env := append(slices.Clip(p.Env), PrestartEnv+"="+strconv.Itoa(PrestartFD))
	c, err := a.spawn(argv0, p.Command, env, p.UID, p.GID, caps)
	syscall.Close(at)
	if err != nil {
		launch.Close()
		return err.Error()
	}
	a.prepared = &prestarted{child: *c, launch: launch, room: room, prep: p, given: env, argv0: argv0, caps: caps}
	return ""
}

// fGetPipeSize is F_GETPIPE_SZ, which package syscall does not name.
const fGetPipeSize = 1032

func fcntl(fd, cmd, arg int) (int, error) {
	r, _, e := syscall.Syscall(syscall.SYS_FCNTL, uintptr(fd), uintptr(cmd), uintptr(arg))
	if e != 0 {
		return -1, e
	}
	return int(r), nil
}

func describeExit(ws syscall.WaitStatus) string {
	if ws.Signaled() {
		return "killed by " + ws.Signal().String()
	}
	return "exit status " + strconv.Itoa(ws.ExitStatus())
}

// discardPrepared kills and reaps the prepared interpreter, if any.
func (a *Agent) discardPrepared() {
	if ps := a.prepared; ps != nil {
		a.prepared = nil
		ps.kill()
	}
}

// kill ends a prepared interpreter that was not launched: it ran nothing
// but its start-up and started no process. It waits for the reaper, so
// that its CPU time is counted before the next run measures.
func (ps *prestarted) kill() {
	if !ps.reaped {
		select {
		case <-ps.exited:
			ps.reaped = true
		default:
			ps.proc.Signal(syscall.SIGKILL)
		}
	}
	ps.launch.Close()
	ps.closePipes()
	if !ps.reaped {
		select {
		case <-ps.exited:
			ps.reaped = true
		case <-time.After(5 * time.Second):
		}
	}
}

// take hands the prepared interpreter to a run of st whose interpreter is
// argv0, or kills it and returns why it does not fit ("" when it does).
// The prepared interpreter is consumed either way.
func (a *Agent) take(st Start, argv0 string) (*prestarted, string) {
	ps := a.prepared
	a.prepared = nil
	why := ps.fits(st, argv0)
	if why == "" {
		select {
		case ws := <-ps.exited:
			ps.reaped = true
			why = "the prepared interpreter ended (" + describeExit(ws) + ")"
		default:
		}
	}
	if why != "" {
		ps.kill()
		return nil, why
	}
	return ps, ""
}

// fits says why st cannot be handed to the prepared interpreter ("" when it can).
func (ps *prestarted) fits(st Start, argv0 string) string {
	p := ps.prep
	switch {
	case !slices.Equal(st.Command, p.Command):
		return fmt.Sprintf("the command %q is not the prepared %q", st.Command, p.Command)
	case argv0 != ps.argv0:
		return fmt.Sprintf("the interpreter %s is not the prepared %s", argv0, ps.argv0)
	case st.UID != p.UID || st.GID != p.GID:
		return fmt.Sprintf("the user %d:%d is not the prepared %d:%d", st.UID, st.GID, p.UID, p.GID)
	}
	caps, err := capNumbers(st.AmbientCaps)
	if err != nil || !sameSet(caps, ps.caps) {
		return fmt.Sprintf("the capabilities %v are not the prepared %v", st.AmbientCaps, p.AmbientCaps)
	}
	return envFits(p.Env, st.Env)
}

func sameSet(a, b []uintptr) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(slices.Compact(a), slices.Compact(b))
}

// start hands the run's environment to the prepared interpreter, which
// then runs the script on its command line. An error means it was not
// handed over: the caller kills it.
func (ps *prestarted) start(env []string) error {
	msg := launchMessage(ps.given, env)
	// Written whole at once or not at all: the interpreter may still be
	// starting, and the run must not wait for it here, before its timeout runs.
	var err error
	if len(msg) > ps.room {
		err = fmt.Errorf("the launch message of %d bytes exceeds the pipe's %d", len(msg), ps.room)
	} else {
		ps.launch.SetWriteDeadline(time.Now().Add(time.Second))
		_, err = ps.launch.Write(msg)
	}
	if cerr := ps.launch.Close(); err == nil {
		err = cerr
	}
	return err
}

// launchMessage is launchMagic, then the environment the interpreter was
// started with and the run's, each entry ended by a NUL and each list by
// an empty entry (no entry is empty).
func launchMessage(given, run []string) []byte {
	var b bytes.Buffer
	b.WriteString(launchMagic)
	for _, list := range [][]string{given, run} {
		for _, kv := range list {
			b.WriteString(kv)
			b.WriteByte(0)
		}
		b.WriteByte(0)
	}
	return b.Bytes()
}

// envFits says why a run with environment run cannot use an interpreter
// started with prep ("" when it can): an entry the launch cannot carry as
// a fresh start would see it, or a start-up variable that differs.
func envFits(prep, run []string) string {
	pm, why := envMap(prep)
	if why != "" {
		return why
	}
	rm, why := envMap(run)
	if why != "" {
		return why
	}
	for _, m := range []map[string]string{pm, rm} {
		for k := range m {
			pv, pok := pm[k]
			rv, rok := rm[k]
			if startupVar(k) && (pok != rok || pv != rv) {
				return fmt.Sprintf("%s, which acts at the interpreter's start-up, is not as prepared", k)
			}
		}
	}
	return ""
}

// envMap indexes env, or says why the launch could not reproduce it: an
// entry without '=', with an empty name or a NUL, or a name twice (a fresh
// process would see every copy in its environment block).
func envMap(env []string) (map[string]string, string) {
	m := make(map[string]string, len(env))
	for _, kv := range env {
		k, v, ok := strings.Cut(kv, "=")
		switch {
		case !ok || k == "":
			return nil, fmt.Sprintf("the environment entry %q is not NAME=value", kv)
		case strings.IndexByte(kv, 0) >= 0:
			return nil, fmt.Sprintf("the environment entry %s holds a NUL", k)
		}
		if _, dup := m[k]; dup {
			return nil, fmt.Sprintf("the environment names %s twice", k)
		}
		m[k] = v
	}
	return m, ""
}

// startupVar reports whether variable k may act before the bootstrap
// hands over, while the interpreter, the C library and the helpers start:
// a run whose value differs from the prepared one starts afresh.
//
//   - Python reads PYTHON* at start-up (paths, flags, hash seed, I/O
//     encoding, warnings, user site), HOME (the user site directory) and
//     PATH (sys.executable); the locale (LANG, LANGUAGE, LC_*, LOCPATH) sets
//     its encodings.
//   - Node reads NODE_* (options, module paths, extra CA certificates,
//     debug, warnings), HOME (global module paths), UV_* (libuv), ICU_*,
//     the locale, OPENSSL_* and SSL_CERT_* (at TLS start-up), FORCE_COLOR
//     and NO_COLOR (colour decisions).
//   - The dynamic loader and the C library read LD_*, MALLOC_*,
//     GLIBC_TUNABLES, GCONV_PATH and TZDIR.
//   - PrestartEnv itself: a run may never ask for a bootstrap.
//
// TZ is not one of them, although the dispatcher sets it for every run:
// Python reads it when the helpers import time, and the bootstrap calls
// time.tzset() once the run's environment is set, which sets what the
// import set; node re-reads it whenever process.env.TZ is set or deleted,
// as the bootstrap does. Other variables are read only when the script
// asks (os.environ, process.env, the helpers' token and socket).
func startupVar(k string) bool {
	for _, p := range []string{"PYTHON", "NODE_", "UV_", "ICU_", "LC_", "LD_", "MALLOC_", "OPENSSL_", "SSL_CERT_", "CRONIUM_PRESTART"} {
		if strings.HasPrefix(k, p) {
			return true
		}
	}
	switch k {
	case "HOME", "PATH", "LANG", "LANGUAGE", "LOCPATH", "TZDIR", "FORCE_COLOR", "NO_COLOR", "GLIBC_TUNABLES", "GCONV_PATH":
		return true
	}
	return false
}
