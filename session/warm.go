package session

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	cronium "github.com/cronium/executor"
	"github.com/cronium/executor/agent"
)

// Warm is a started sandbox whose agent is connected and idle: what warm
// pools hold. It runs one execution at a time; Reset makes it fresh for the
// next. It implements cronium.Sandbox for every backend.
type Warm struct {
	t       Timing
	box     Box
	id      string       // the sandbox's own id
	spec    cronium.Spec // the template: image, limits, profile, network, workspace
	sess    *agent.Session
	created time.Time
	prepare bool // start the next run's interpreter ahead of it (see Prepare)

	mu     sync.Mutex // guards broken, closed and paused; held across pause and unpause
	broken error      // set when the sandbox must not be used again
	closed bool
	paused bool
}

var _ cronium.Sandbox = (*Warm)(nil)

// NewWarm creates and starts box for template (checked, with template.ID
// the sandbox's id) and waits for its agent. With prepare, the agent starts
// the interpreter of each next run ahead of it (see Warm.prepare); the
// backend says whether the image allows it. The box is removed on error.
func NewWarm(ctx context.Context, t Timing, box Box, template cronium.Spec, prepare bool) (*Warm, error) {
	if err := box.Create(ctx); err != nil {
		box.Remove(false)
		return nil, err
	}
	sess, err := Start(ctx, t, box)
	if err != nil {
		box.Remove(false)
		return nil, err
	}
	w := &Warm{t: t, box: box, id: template.ID, spec: template, sess: sess, created: time.Now(),
		prepare: prepare && (template.Language == cronium.Python || template.Language == cronium.Node) && template.Workspace == nil}
	if err := w.prepareNext(ctx); err != nil {
		sess.Close()
		box.Remove(false)
		return nil, err
	}
	return w, nil
}

// prepareNext asks the idle agent to start the interpreter of its next run
// now, with the helpers loaded, as the script user: the run then skips the
// interpreter's start-up (agent.Prepare; the agent starts the run afresh
// whenever it does not fit). It is called once the agent said hello and
// after each Reset, which kills every process first: a prepared
// interpreter never saw a run. Only python and node, only in the engine's
// own runtime image (whose start-up code is known; a custom image or a
// package layer may run code at start-up), and only with a workspace of the
// sandbox's own. It does not wait for the interpreter. An error means the
// session is unusable.
func (x *Warm) prepareNext(ctx context.Context) error {
	if !x.prepare {
		return nil
	}
	// The next run's start message, as far as it is known now: without the
	// user's environment and the per-run values.
	next := x.spec
	next.Env = nil
	st := StartMessage(next, "")
	p := agent.Prepare{Command: st.Command, UID: st.UID, GID: st.GID, AmbientCaps: st.AmbientCaps}
	for _, kv := range st.Env {
		switch k, _, _ := strings.Cut(kv, "="); k {
		case "CRONIUM_RUNTIME_TOKEN", "CRONIUM_EXECUTION_ID", "CRONIUM_TIMEOUT_SECONDS":
		default:
			p.Env = append(p.Env, kv)
		}
	}
	if err := x.sess.Prepare(ctx, p); err != nil {
		return fmt.Errorf("prepare the interpreter of sandbox %.12s: %w", x.box.Ref(), err)
	}
	return nil
}

// ID names the sandbox (also what Spec.Attached receives).
func (x *Warm) ID() string { return x.id }

// Ref is the engine's name for the sandbox (a container id).
func (x *Warm) Ref() string { return x.box.Ref() }

// Age is how long ago the sandbox was created.
func (x *Warm) Age() time.Duration { return time.Since(x.created) }

// Run implements cronium.Sandbox. Phases.Create and Start are left to the
// caller (the pool measures acquiring).
func (x *Warm) Run(ctx context.Context, spec cronium.Spec) cronium.Result {
	now := time.Now()
	np := x.spec.Network
	res := cronium.Result{ID: spec.ID, Image: x.spec.Image, ImageID: x.spec.ImageID, Limits: x.spec.Limits, NetworkPolicy: &np, Container: x.box.Ref(), StartedAt: now,
		Enforcement: append(append([]string(nil), x.t.Enforcement...), notes(x.box)...)}
	if err := x.usable(); err != nil {
		res.Outcome, res.ExitCode, res.Error = cronium.EngineError, -1, err.Error()
		res.EndedAt = time.Now()
		return res
	}
	rs := x.spec
	rs.ID, rs.Language, rs.Script, rs.Input, rs.Files = spec.ID, spec.Language, spec.Script, spec.Input, spec.Files
	rs.Env, rs.Output, rs.Runtime, rs.Sample = spec.Env, spec.Output, spec.Runtime, spec.Sample
	rs.Context, rs.Secrets, rs.DataMode = spec.Context, spec.Secrets, spec.DataMode
	if spec.Limits.Timeout > 0 {
		// The agent enforces these per run; the sandbox's own limits stay the template's.
		l := spec.Limits.Defaults()
		rs.Limits.Timeout, rs.Limits.Grace, rs.Limits.Output, rs.Limits.OutputPolicy = l.Timeout, l.Grace, l.Output, l.OutputPolicy
	}
	res.Limits = rs.Limits
	r := &run{t: x.t, box: x.box, spec: rs, sess: x.sess}
	st := r.startMessage()
	if spec.Attached != nil {
		if err := spec.Attached(x.ID()); err != nil {
			res.Outcome, res.ExitCode, res.Error = cronium.EngineError, -1, "not started: "+err.Error()
			res.EndedAt = time.Now()
			return res
		}
	}
	resetPeakMemory(x.sess.PeerPID()) // the run's peak is its own, not an earlier run's
	x.box.BeginRun(ctx)
	l := rs.Limits
	rep, err := r.drive(ctx, now.Add(l.Timeout+l.Grace+x.t.Backstop), func(out func(uint8, uint64, []byte)) (agent.Report, error) {
		return x.sess.Run(ctx, st, out)
	})
	res.Phases.Run = time.Since(now)
	if err != nil {
		x.breakWith(err)
	}
	res = r.result(res, rep, err)
	res.Usage.Network = x.box.Usage(ctx)
	res.EndedAt = time.Now()
	return res
}

// Reset asks the agent to make the sandbox fresh for another run: every
// process killed, /tmp, the workspace and the secrets emptied and checked.
// An error means the sandbox must be recycled.
func (x *Warm) Reset(ctx context.Context) error {
	if err := x.usable(); err != nil {
		return err
	}
	p := x.spec.Profile
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	c, err := x.sess.Reset(ctx, agent.Reset{UID: p.UID, GID: p.GID, KeepWorkspace: x.spec.Workspace != nil})
	if err == nil && !c.Clean {
		err = fmt.Errorf("sandbox %s is not clean after reset: %s", x.ID(), c.Problem)
	}
	x.box.AfterReset()
	if err == nil {
		err = x.prepareNext(ctx) // a fresh interpreter, started after the reset killed every process
	}
	if err != nil {
		x.breakWith(err)
	}
	return err
}

// Pause implements cronium.Sandbox: it freezes the idle sandbox's processes.
func (x *Warm) Pause(ctx context.Context) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.closed || x.paused || x.broken != nil {
		return nil
	}
	if err := x.box.Pause(ctx); err != nil {
		return fmt.Errorf("pause sandbox %s: %w", x.ID(), err)
	}
	x.paused = true
	return nil
}

// Paused reports whether the sandbox is frozen.
func (x *Warm) Paused() bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.paused
}

// resumeLocked unpauses a paused sandbox. x.mu is held.
func (x *Warm) resumeLocked() error {
	if !x.paused {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := x.box.Unpause(ctx); err != nil {
		return fmt.Errorf("unpause sandbox %s: %w", x.ID(), err)
	}
	x.paused = false
	return nil
}

// Close removes the sandbox and its host files. Safe to call twice.
func (x *Warm) Close() {
	x.mu.Lock()
	if x.closed {
		x.mu.Unlock()
		return
	}
	x.closed = true
	x.resumeLocked() // a paused sandbox cannot be killed
	x.mu.Unlock()
	x.sess.Close()
	x.box.Remove(false)
}

func (x *Warm) usable() error {
	x.mu.Lock()
	defer x.mu.Unlock()
	switch {
	case x.closed:
		return errors.New("sandbox closed")
	case x.broken != nil:
		return fmt.Errorf("sandbox unusable: %w", x.broken)
	}
	if err := x.resumeLocked(); err != nil {
		x.broken = err
		return err
	}
	return nil
}

func (x *Warm) breakWith(err error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.broken == nil {
		x.broken = err
	}
}

// Prestart is what the last run's report said of the interpreter prepared
// for it: "used", why it was not, or "" when none was prepared.
func (x *Warm) Prestart() string { return x.sess.Prestart() }

// Unprepare kills what was prepared for the next run (with a reset) and
// prepares nothing more: every later run starts its interpreter afresh.
// For comparisons of the two.
func (x *Warm) Unprepare(ctx context.Context) error {
	x.prepare = false
	return x.Reset(ctx)
}

// resetPeakMemory starts a new peak memory measurement in the memory
// cgroup of the agent with host pid pid: on cgroup v1 max_usage_in_bytes
// otherwise keeps the highest use since the sandbox started, and a warm
// sandbox's run would report an earlier run's peak. Where it cannot
// (cgroup v2, whose memory.peak resets only for the writer's own file; no
// host pid), the peak stays the sandbox's. It reports whether it reset.
func resetPeakMemory(pid int) bool {
	if pid <= 0 {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 || parts[2] == "/" || strings.Contains(parts[2], "..") {
			continue
		}
		if !slices.Contains(strings.Split(parts[1], ","), "memory") {
			continue
		}
		file := filepath.Join("/sys/fs/cgroup/memory", parts[2], "memory.max_usage_in_bytes")
		if f, err := os.OpenFile(file, os.O_WRONLY, 0); err == nil {
			_, err = f.WriteString("0")
			f.Close()
			if err == nil {
				return true
			}
		}
	}
	return false
}
