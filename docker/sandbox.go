package docker

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/moby/moby/client"

	cronium "github.com/cronium/executor"
	"github.com/cronium/executor/agent"
)

// Sandbox is a started container whose agent is connected and idle: what
// warm pools hold. It runs one execution at a time; Reset makes it fresh
// for the next. Its container is labelled with the sandbox id, and its
// deadline label covers lifetime, so GC leaves a pooled sandbox alone while
// it may live.
type Sandbox struct {
	s       *sandbox
	id      string // the sandbox's own id; s.spec.ID is the running execution's
	created time.Time

	mu     sync.Mutex // guards broken, closed and paused; held across pause and unpause
	broken error      // set when the sandbox must not be used again
	closed bool
	paused bool
}

// Pause freezes the idle sandbox's processes (cgroup freezer), so it holds
// no CPU while it waits. Run, Reset and Close resume it first.
func (x *Sandbox) Pause(ctx context.Context) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.closed || x.paused || x.broken != nil {
		return nil
	}
	if _, err := x.s.e.cli.ContainerPause(ctx, x.s.id, client.ContainerPauseOptions{}); err != nil {
		return fmt.Errorf("pause sandbox %s: %w", x.ID(), err)
	}
	x.paused = true
	return nil
}

// Paused reports whether the sandbox is frozen.
func (x *Sandbox) Paused() bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.paused
}

// resume unpauses a paused sandbox. x.mu is held.
func (x *Sandbox) resumeLocked() error {
	if !x.paused {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := x.s.e.cli.ContainerUnpause(ctx, x.s.id, client.ContainerUnpauseOptions{}); err != nil {
		return fmt.Errorf("unpause sandbox %s: %w", x.ID(), err)
	}
	x.paused = false
	return nil
}

// NewSandbox creates and starts a sandbox for template's image, limits,
// profile and network (its script fields are ignored) and waits for the
// agent's hello. lifetime bounds how long it may be kept.
func (e *Engine) NewSandbox(ctx context.Context, template cronium.Spec, lifetime time.Duration) (*Sandbox, error) {
	template.ID = "sbx-" + NewID()[:16]
	if template.Script == nil {
		template.Script = []byte(" ")
	}
	if template.Language == "" {
		template.Language = cronium.Bash
	}
	if err := e.checkSpec(&template); err != nil {
		return nil, err
	}
	sb := &sandbox{e: e, spec: template, name: sandboxName(template.ID), lifetime: lifetime}
	if err := sb.create(ctx); err != nil {
		sb.cleanup()
		return nil, err
	}
	sess, err := sb.start(ctx)
	if err != nil {
		sb.cleanup()
		return nil, err
	}
	sb.sess = sess
	if err := sb.prepare(ctx); err != nil {
		sess.Close()
		sb.cleanup()
		return nil, err
	}
	return &Sandbox{s: sb, id: template.ID, created: time.Now()}, nil
}

// ID names the sandbox (also its container's execution label).
func (x *Sandbox) ID() string { return x.id }

// Container is the container id.
func (x *Sandbox) Container() string { return x.s.id }

// Run runs one execution. The sandbox's image, limits, profile and network
// apply, whatever spec says; the script, input, environment, runtime API,
// secrets and data mode come from spec. Phases.Create and Start are left
// to the caller (the pool measures acquiring).
func (x *Sandbox) Run(ctx context.Context, spec cronium.Spec) cronium.Result {
	s := x.s
	now := time.Now()
	np := s.spec.Network
	res := cronium.Result{ID: spec.ID, Image: s.spec.Image, ImageID: s.spec.ImageID, Limits: s.spec.Limits, NetworkPolicy: &np, Container: s.id, StartedAt: now}
	if err := x.usable(); err != nil {
		res.Outcome, res.ExitCode, res.Error = cronium.EngineError, -1, err.Error()
		res.EndedAt = time.Now()
		return res
	}
	run := s.spec
	run.ID, run.Language, run.Script, run.Input = spec.ID, spec.Language, spec.Script, spec.Input
	run.Env, run.Output, run.Runtime = spec.Env, spec.Output, spec.Runtime
	run.Context, run.Secrets, run.DataMode = spec.Context, spec.Secrets, spec.DataMode
	if spec.Limits.Timeout > 0 {
		// The agent enforces these per run; the container's own limits stay the sandbox's.
		l := spec.Limits.Defaults()
		run.Limits.Timeout, run.Limits.Grace, run.Limits.Output, run.Limits.OutputPolicy = l.Timeout, l.Grace, l.Output, l.OutputPolicy
	}
	s.spec, s.after, s.token = run, 0, ""
	res.Limits = run.Limits
	if run.Runtime != nil {
		s.token = NewToken()
	}
	s.sess.OnCall(s.onCall(run.Runtime))
	st := s.startMessage()
	if s.lease != nil {
		s.lease.StartRun(ctx)
	}
	if spec.Attached != nil {
		spec.Attached(x.ID())
	}
	l := run.Limits
	rep, err := s.drive(ctx, now.Add(l.Timeout+l.Grace+s.e.cfg.Backstop), func(out func(uint8, uint64, []byte)) (agent.Report, error) {
		return s.sess.Run(ctx, st, out)
	})
	res.Phases.Run = time.Since(now)
	if err != nil {
		x.breakWith(err)
	}
	res = s.result(res, rep, err)
	s.netUsage(&res)
	res.EndedAt = time.Now()
	return res
}

// Reset asks the agent to make the sandbox fresh for another run: every
// process killed, /tmp, the workspace and the secrets emptied and checked.
// An error means the sandbox must be recycled.
func (x *Sandbox) Reset(ctx context.Context) error {
	if err := x.usable(); err != nil {
		return err
	}
	p := x.s.spec.Profile
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	c, err := x.s.sess.Reset(ctx, agent.Reset{UID: p.UID, GID: p.GID, KeepWorkspace: x.s.spec.Workspace != nil})
	if err == nil && !c.Clean {
		err = fmt.Errorf("sandbox %s is not clean after reset: %s", x.ID(), c.Problem)
	}
	if x.s.lease != nil {
		// The processes are gone, so are their sockets; the proxy's ends go too.
		x.s.lease.DropConnections()
	}
	if err == nil {
		err = x.s.prepare(ctx) // a fresh interpreter, started after the reset killed every process
	}
	if err != nil {
		x.breakWith(err)
	}
	return err
}

// Close removes the container and its host directory. Safe to call twice.
func (x *Sandbox) Close() {
	x.mu.Lock()
	if x.closed {
		x.mu.Unlock()
		return
	}
	x.closed = true
	x.resumeLocked() // a paused container cannot be killed
	x.mu.Unlock()
	if x.s.sess != nil {
		x.s.sess.Close()
	}
	x.s.cleanup()
}

// Age is how long ago the sandbox was created.
func (x *Sandbox) Age() time.Duration { return time.Since(x.created) }

func (x *Sandbox) usable() error {
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

func (x *Sandbox) breakWith(err error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.broken == nil {
		x.broken = err
	}
}

// RemoveSandboxesExcept removes this node's warm sandboxes (left by a host
// process that died) whose ids are not in keep: those are being re-attached.
func (e *Engine) RemoveSandboxesExcept(ctx context.Context, keep map[string]bool) (int, error) {
	list, err := e.cli.ContainerList(ctx, client.ContainerListOptions{
		All:     true,
		Filters: client.Filters{}.Add("label", LabelManaged+"=true", LabelNode+"="+e.cfg.NodeID),
	})
	if err != nil {
		return 0, fmt.Errorf("list sandboxes: %w", err)
	}
	n := 0
	for _, c := range list.Items {
		id := c.Labels[LabelExecution]
		if len(id) < 4 || id[:4] != "sbx-" || keep[id] {
			continue
		}
		if _, err := e.cli.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true}); err == nil {
			n++
		}
		os.RemoveAll(filepath.Join(e.cfg.StateDir, "s", c.Labels[LabelSandbox]))
	}
	return n, nil
}
