// Package session is the engine-neutral half of every engine: it drives a
// sandbox's agent through one execution (the start message, output relay,
// runtime API calls, the host backstop, the result and, when the agent
// stops answering, the explanation), re-attaches to an execution after the
// host process restarted, and runs warm sandboxes. A backend (Docker,
// Podman, ...) only creates, starts, inspects, pauses and removes sandboxes
// and connects the host to the agent: it implements Box.
package session

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	cronium "github.com/cronium/executor"
	"github.com/cronium/executor/agent"
	"github.com/cronium/executor/helpers"
)

// Box is one sandbox as its backend sees it. Session calls its methods from
// one goroutine at a time, except Remove, which may follow a backstop.
type Box interface {
	// Create makes the sandbox, not started, and the host end the agent
	// will dial (ready before Start).
	Create(ctx context.Context) error
	// Start starts the sandbox's agent.
	Start(ctx context.Context) error
	// Connect waits up to timeout for the agent to dial and say hello. A
	// timeout is an error wrapping os.ErrDeadlineExceeded; a done ctx
	// gives up at once.
	Connect(ctx context.Context, timeout time.Duration) (*agent.Session, error)
	// Ready finishes what needs the started sandbox before any script
	// exists (its network link); an error fails the run.
	Ready(ctx context.Context) error
	// State says what the engine knows of the sandbox now.
	State(ctx context.Context) (State, error)
	// Collect returns a tar stream of the directory path in the sandbox.
	Collect(ctx context.Context, path string) (io.ReadCloser, error)
	// BeginRun is called just before a warm sandbox's script is sent.
	BeginRun(ctx context.Context)
	// AfterReset is called once a warm sandbox was reset (its processes are gone).
	AfterReset()
	// Usage is the network usage of the sandbox's last run, nil without network.
	Usage(ctx context.Context) *cronium.NetworkUsage
	// Pause and Unpause freeze and thaw the sandbox (ErrUnsupported when the engine cannot).
	Pause(ctx context.Context) error
	Unpause(ctx context.Context) error
	// Remove removes the sandbox and everything of it on the host,
	// whatever state it is in. finished says the agent reported and
	// exits by itself: the backend may finish the removal in the
	// background (counted by its GC).
	Remove(finished bool)
	// Ref is the engine's name for the sandbox (a container id); empty before Create.
	Ref() string
}

// Keeper is a Box that can be kept for debugging after its run failed
// (Spec.KeepFailed).
type Keeper interface {
	// Keep cuts the sandbox's network off and freezes it; its agent has
	// removed the secrets and stays. It is then the engine's (Debugger).
	Keep(ctx context.Context) error
	// Leave lets the host's end of the kept sandbox go (its socket) without
	// removing the sandbox.
	Leave()
}

// State is what an engine knows of a sandbox.
type State struct {
	Running   bool
	OOMKilled bool
	// TimedOut: the engine stopped the sandbox at its own deadline (a
	// Kubernetes Pod's activeDeadlineSeconds).
	TimedOut bool
	ExitCode int
	Status   string // the engine's word: running, exited, ...
	Error    string
}

// Timing bounds the phases of every sandbox of an engine.
type Timing struct {
	// StartTimeout bounds a sandbox's start until its agent says hello.
	StartTimeout time.Duration
	// Backstop is how long past timeout+grace the host waits for the agent
	// before it removes the sandbox itself.
	Backstop time.Duration
	// Logger receives operational logs.
	Logger *slog.Logger
	// Enforcement says how the engine enforces what its sandboxes cannot
	// say themselves; every Result carries it (Result.Enforcement).
	Enforcement []string
}

// ErrBackstop says the agent stopped answering and the host gave up on it.
var ErrBackstop = errors.New("the agent stopped answering; the host backstop removed the sandbox")

// ErrStopped says a sandbox stopped while no host was attached.
var ErrStopped = errors.New("the sandbox stopped while no host was attached")

// NewToken returns a runtime API token: 128 random bits, hex.
func NewToken() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// run is one execution driven through a session.
type run struct {
	t     Timing
	box   Box
	spec  cronium.Spec
	sess  *agent.Session
	after uint64 // output up to this seq was delivered before
}

// Cold runs spec in box, a sandbox nothing has run in: create, start, wait
// for the agent, link, run, collect, remove. spec must be checked.
func Cold(ctx context.Context, t Timing, box Box, spec cronium.Spec) (res cronium.Result) {
	np := spec.Network
	res = cronium.Result{ID: spec.ID, Image: spec.Image, ImageID: spec.ImageID, Limits: spec.Limits, Enforcement: t.Enforcement, NetworkPolicy: &np, StartedAt: time.Now()}
	fail := func(err error) cronium.Result {
		res.Outcome, res.ExitCode, res.Error = cronium.EngineError, -1, err.Error()
		if ctx.Err() != nil && errors.Is(err, context.Canceled) {
			res.Outcome, res.Error = cronium.Cancelled, "cancelled before the script started"
		}
		return res
	}
	finished := false
	var kept Keeper
	defer func() {
		c := time.Now()
		if kept != nil {
			kept.Leave()
		} else {
			box.Remove(finished)
		}
		res.Phases.Cleanup = time.Since(c)
		res.EndedAt = time.Now()
	}()

	c := time.Now()
	err := box.Create(ctx)
	res.Phases.Create = time.Since(c)
	res.Container = box.Ref()
	if n := notes(box); len(n) > 0 {
		res.Enforcement = append(append([]string(nil), res.Enforcement...), n...)
	}
	if err != nil {
		return fail(err)
	}
	c = time.Now()
	sess, err := Start(ctx, t, box)
	res.Phases.Start = time.Since(c)
	if err != nil {
		return fail(err)
	}
	defer sess.Close()

	r := &run{t: t, box: box, spec: spec, sess: sess}
	if spec.Attached != nil {
		// Before the script exists in the sandbox: one without it never ran it.
		if err := spec.Attached(spec.ID); err != nil {
			return fail(fmt.Errorf("not started: %w", err))
		}
	}
	c = time.Now()
	l := spec.Limits
	rep, err := r.drive(ctx, c.Add(l.Timeout+l.Grace+t.Backstop), func(out func(uint8, uint64, []byte)) (agent.Report, error) {
		return sess.Run(ctx, r.startMessage(), out)
	})
	res.Phases.Run = time.Since(c)
	res = r.result(res, rep, err)
	res.Usage.Network = box.Usage(ctx)
	if spec.Audit {
		res.Audit = audit(ctx, box, spec, res.Usage.Network)
	}
	if k, ok := box.(Keeper); ok && spec.KeepFailed > 0 && err == nil && cronium.Keeps(res.Outcome) {
		if kerr := keep(ctx, sess, k, spec); kerr != nil {
			res.Enforcement = append(append([]string(nil), res.Enforcement...), "keep_failed: the sandbox could not be kept, it was removed: "+kerr.Error())
		} else {
			kept = k
			res.Kept = &cronium.Kept{Until: time.Now().Add(spec.KeepFailed)}
		}
	}
	if spec.Collect != nil && res.Outcome == cronium.Succeeded {
		if err := collect(ctx, box, spec); err != nil {
			res.Outcome, res.Error = cronium.EngineError, err.Error()
		}
	}
	finished = err == nil
	return res
}

// audit is what the box saw of a run that strict would have stopped:
// files written outside the mounts strict leaves writable, connections
// (strict has no network). The caller adds what the usage says (memory,
// processes).
func audit(ctx context.Context, box Box, spec cronium.Spec, net *cronium.NetworkUsage) *cronium.Audit {
	a := &cronium.Audit{Profile: cronium.AuditStrict, Findings: []cronium.Finding{}}
	if c, ok := box.(interface {
		Changes(ctx context.Context) ([]string, error)
	}); ok {
		changes, err := c.Changes(ctx)
		if err != nil {
			a.NotObserved = append(a.NotObserved, "files: the engine did not list the sandbox's changes: "+err.Error())
		}
		for _, ch := range strictWrites(changes) {
			a.Findings = append(a.Findings, cronium.Finding{Kind: "files", Message: ch + ": strict's root file system is read-only (write under /tmp or /workspace)"})
		}
	} else {
		a.NotObserved = append(a.NotObserved, "files: this engine cannot list what a run wrote outside /tmp and /workspace")
	}
	if net != nil {
		for _, d := range net.Destinations {
			a.Findings = append(a.Findings, cronium.Finding{Kind: "network", Message: "opened a connection to " + d + ": strict has no network (set network.mode egress, with allow_domains, when moving to strict)"})
		}
	}
	if spec.Network.Allowlist() {
		a.NotObserved = append(a.NotObserved, "network: connections through the allow_domains proxy are not listed")
	}
	if spec.Profile.UID == 0 {
		a.NotObserved = append(a.NotObserved, "root: strict runs the script as nobody; what only root may do (chown, files of other users, low ports) is not observed")
	}
	a.NotObserved = append(a.NotObserved, "seccomp: both profiles use the same seccomp filter, so strict refuses no more system calls; its refusals are not logged")
	return a
}

// strictWrites keeps the changes strict would refuse: not under the
// mounts it leaves writable, nor the engine's own files, nor a directory
// listed only because something under it changed.
func strictWrites(changes []string) []string {
	var out []string
	for _, ch := range changes {
		_, path, _ := strings.Cut(ch, " ")
		ignored := false
		for _, p := range []string{"/tmp", "/workspace", "/run/cronium", "/run/secrets", "/dev", "/proc", "/sys", "/.cronium", "/etc/hostname", "/etc/hosts", "/etc/resolv.conf"} {
			if path == p || strings.HasPrefix(path, p+"/") {
				ignored = true
			}
		}
		if ignored || strings.HasPrefix(ch, "changed ") && slices.ContainsFunc(changes, func(o string) bool {
			_, op, _ := strings.Cut(o, " ")
			return strings.HasPrefix(op, path+"/")
		}) {
			continue
		}
		out = append(out, ch)
		if len(out) == 20 {
			break
		}
	}
	return out
}

// keep has the agent remove the run's secrets and stay, then freezes the
// sandbox without its network.
func keep(ctx context.Context, sess *agent.Session, k Keeper, spec cronium.Spec) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	clean, err := sess.Keep(ctx, agent.Reset{UID: spec.Profile.UID, GID: spec.Profile.GID})
	if err != nil {
		return err
	}
	if !clean.Clean {
		return fmt.Errorf("the agent could not remove the secrets: %s", clean.Problem)
	}
	return k.Keep(ctx)
}

// notes are a box's own enforcement notes, when it has some (a box says
// how it enforces limits that its engine enforces per sandbox).
func notes(box Box) []string {
	if n, ok := box.(interface{ Notes() []string }); ok {
		return n.Notes()
	}
	return nil
}

// Start starts a created box, waits for its agent's hello and readies it.
func Start(ctx context.Context, t Timing, box Box) (*agent.Session, error) {
	if err := box.Start(ctx); err != nil {
		return nil, err
	}
	sess, err := box.Connect(ctx, t.StartTimeout)
	if err != nil && ctx.Err() == nil {
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			return nil, fmt.Errorf("sandbox %.16s did not start: %w%s", box.Ref(), err, exitNote(box))
		}
		return nil, fmt.Errorf("agent in sandbox %.12s did not say hello within %s: %w%s", box.Ref(), t.StartTimeout, err, exitNote(box))
	}
	if err != nil {
		return nil, err
	}
	if err := box.Ready(ctx); err != nil {
		sess.Close()
		return nil, fmt.Errorf("network policy: %w", err)
	}
	return sess, nil
}

// collect hands the tar of Spec.CollectPath to Spec.Collect. The backend
// reads the files from inside the sandbox: the host never follows a path
// the script made.
func collect(ctx context.Context, box Box, spec cronium.Spec) error {
	r, err := box.Collect(ctx, spec.CollectPath)
	if err != nil {
		return fmt.Errorf("collect %s: %w", spec.CollectPath, err)
	}
	defer r.Close()
	if err := spec.Collect(r); err != nil {
		return fmt.Errorf("collect %s: %w", spec.CollectPath, err)
	}
	return nil
}

// Reattach resumes an execution whose host process died, in box (found by
// the backend, with Ref set). running is whether the engine says the box
// runs; backstop is when the run's host backstop fires (the backend's
// record of it), extended to Timing.Backstop from now. The Result is the
// execution's; the error wraps ErrNeverStarted when the agent never
// received its script. The box is removed, unless the script never started.
func Reattach(ctx context.Context, t Timing, box Box, spec cronium.Spec, after uint64, running bool, backstop time.Time) (res cronium.Result, err error) {
	res = cronium.Result{ID: spec.ID, Image: spec.Image, ImageID: spec.ImageID, Limits: spec.Limits, Enforcement: t.Enforcement, Container: box.Ref(), StartedAt: time.Now()}
	finished := false
	defer func() {
		c := time.Now()
		box.Remove(finished)
		res.Phases.Cleanup = time.Since(c)
		res.EndedAt = time.Now()
	}()
	r := &run{t: t, box: box, spec: spec, after: after}
	if !running {
		return r.explain(res, ErrStopped), nil
	}
	c := time.Now()
	if soon := c.Add(t.Backstop); backstop.Before(soon) {
		backstop = soon
	}
	sess, err := r.rejoin(ctx, backstop)
	if errors.Is(err, cronium.ErrNeverStarted) {
		return res, err
	}
	var rep agent.Report
	if err == nil {
		defer sess.Close()
		r.sess = sess
		sess.OnCall(OnCall(spec.ID, spec.Runtime))
		rep, err = r.drive(ctx, backstop, func(out func(uint8, uint64, []byte)) (agent.Report, error) {
			return sess.Resume(ctx, out)
		})
		finished = err == nil
	} else if ctx.Err() != nil && !errors.Is(err, context.Canceled) {
		err = fmt.Errorf("%w: %v", context.Canceled, err)
	}
	res.Phases.Run = time.Since(c)
	return r.result(res, rep, err), nil
}

// rejoin waits for the agent to redial with a resumed hello, the box to
// stop, or backstop to pass.
func (r *run) rejoin(ctx context.Context, backstop time.Time) (*agent.Session, error) {
	for {
		wait := min(time.Until(backstop), time.Second)
		if wait <= 0 {
			return nil, ErrBackstop
		}
		sess, err := r.box.Connect(ctx, wait)
		switch {
		case err == nil && !sess.Hello().Resume:
			// A fresh agent: its host died before handing it the script.
			sess.Close()
			return nil, fmt.Errorf("%w: the agent of execution %s never received its script", cronium.ErrNeverStarted, r.spec.ID)
		case err == nil && sess.Hello().ExecutionID != r.spec.ID:
			sess.Close()
			return nil, fmt.Errorf("the agent has no run of execution %s to resume (its hello: %+v)", r.spec.ID, sess.Hello())
		case err == nil:
			return sess, nil
		case !isTimeout(err):
			return nil, err
		}
		if st, err := r.box.State(ctx); err == nil && !st.Running {
			return nil, ErrStopped
		}
	}
}

func isTimeout(err error) bool {
	var te interface{ Timeout() bool }
	return errors.As(err, &te) && te.Timeout()
}

// startMessage is the Start that hands the script to the agent.
func (r *run) startMessage() agent.Start {
	spec := r.spec
	token := ""
	if spec.Runtime != nil {
		token = NewToken()
	}
	r.sess.OnCall(OnCall(spec.ID, spec.Runtime))
	st := StartMessage(spec, token)
	st.NoSamples = spec.Sample == nil // nobody listens
	return st
}

// StartMessage is the Start that hands spec's script to an agent, with
// token for the runtime API (empty: none).
func StartMessage(spec cronium.Spec, token string) agent.Start {
	l := spec.Limits
	// The helper loaders join what the user set for the same variables
	// rather than shadow it: ours first on search paths, theirs after.
	user := map[string]string{}
	for k, v := range spec.Env {
		user[k] = v
	}
	env := []string{"HOME=" + agent.Workspace}
	for _, kv := range helpers.Env(agent.LibDir) {
		k, v, _ := strings.Cut(kv, "=")
		if u, ok := user[k]; ok && u != "" {
			switch k {
			case "PYTHONPATH", "NODE_PATH":
				v += ":" + u
			case "NODE_OPTIONS":
				v += " " + u
			}
			delete(user, k)
		}
		env = append(env, k+"="+v)
	}
	for k, v := range user {
		env = append(env, k+"="+v)
	}
	env = append(env,
		"CRONIUM_RUNTIME_TOKEN="+token,
		"CRONIUM_API_SOCKET="+agent.APISocket,
		"CRONIUM_EXECUTION_ID="+spec.ID,
		"CRONIUM_LANGUAGE="+string(spec.Language),
		"CRONIUM_TIMEOUT_SECONDS="+strconv.Itoa(int(l.Timeout/time.Second)),
		"CRONIUM_PROFILE="+spec.Profile.Name,
	)
	return agent.Start{
		ExecutionID: spec.ID,
		ScriptName:  spec.Language.ScriptName(),
		Script:      spec.Script,
		Files:       spec.Files,
		Input:       spec.Input,
		Command:     spec.Language.Command(agent.Workspace + "/" + spec.Language.ScriptName()),
		Env:         env,
		UID:         spec.Profile.UID,
		GID:         spec.Profile.GID,
		AmbientCaps: spec.Profile.ScriptCaps,
		TimeoutMS:   l.Timeout.Milliseconds(),
		GraceMS:     l.Grace.Milliseconds(),
		OutputCap:   int64(l.Output),
		KillOnCap:   l.OutputPolicy == cronium.OutputKill,
		Token:       token,
		Context:     spec.Context,
		Secrets:     spec.Secrets,
		DataMode:    spec.DataMode,
		MaxOutput:   cronium.MaxOutputBytes,
	}
}

// OnCall answers the runtime API calls of execution id through rt (nil:
// refused, saying so).
func OnCall(id string, rt cronium.RuntimeAPI) func(ctx context.Context, c agent.Call) agent.Reply {
	return func(ctx context.Context, c agent.Call) agent.Reply {
		if rt == nil {
			return agent.Reply{Error: "the runtime API is not available for this execution"}
		}
		v, err := rt.Call(context.WithoutCancel(ctx), cronium.RuntimeCall{ExecutionID: id, Op: c.Op, Key: c.Key, Value: c.Value})
		if err != nil {
			return agent.Reply{Error: err.Error(), Code: cronium.Code(err)} // the kind, for the helpers
		}
		if len(v) == 0 {
			v = json.RawMessage("null")
		}
		return agent.Reply{OK: true, Value: v}
	}
}

// drive relays the run through the agent (call is sess.Run or sess.Resume)
// under the host backstop: if the agent does not report by backstop (or
// grace+Backstop after a cancel), the session is closed and the box
// removed. Output at or below r.after is skipped: the agent may write again
// what a previous host had.
func (r *run) drive(ctx context.Context, backstop time.Time, call func(out func(uint8, uint64, []byte)) (agent.Report, error)) (agent.Report, error) {
	spec := r.spec
	var once sync.Once
	timer := time.AfterFunc(time.Until(backstop), func() {
		once.Do(func() {
			if r.t.Logger != nil {
				r.t.Logger.Warn("agent did not report in time; removing the sandbox", "execution_id", spec.ID, "sandbox", r.box.Ref())
			}
			r.sess.Close()
		})
	})
	defer timer.Stop()
	stopCancel := context.AfterFunc(ctx, func() { timer.Reset(spec.Limits.Grace + r.t.Backstop) })
	defer stopCancel()

	if spec.Sample != nil {
		r.sess.OnUsage(func(smp agent.Sample) {
			spec.Sample(cronium.UsageSample{Time: time.Now(), Elapsed: cronium.Duration(smp.ElapsedNS), CPUSeconds: float64(smp.CPUNS) / 1e9,
				MemoryBytes: smp.Memory, PeakMemory: smp.PeakMemory, IORead: smp.IORead, IOWrite: smp.IOWrite, Pids: smp.Pids,
				CPUThrottledSeconds: float64(smp.ThrottledNS) / 1e9, Network: r.box.Usage(ctx)})
		})
	}
	last := r.after
	out := func(stream uint8, seq uint64, data []byte) {
		if seq <= last || spec.Output == nil {
			return
		}
		last = seq
		spec.Output(cronium.OutputChunk{Seq: seq, Stream: cronium.Stream(stream), Data: data})
	}
	rep, err := call(out)
	if err != nil && !timer.Stop() && ctx.Err() == nil {
		return rep, ErrBackstop
	}
	if err != nil && ctx.Err() != nil {
		return rep, fmt.Errorf("%w: %v", context.Canceled, err)
	}
	return rep, err
}

// result fills res from the agent's report, or explains why there is none.
func (r *run) result(res cronium.Result, rep agent.Report, err error) cronium.Result {
	if err != nil {
		return r.explain(res, err)
	}
	res.Outcome = cronium.Outcome(rep.Outcome)
	res.ExitCode = rep.ExitCode
	res.Signal = rep.Signal
	res.Truncated = rep.Truncated
	res.Error = rep.Error
	if res.Outcome == cronium.EngineError && strings.Contains(rep.Error, "SIGTERM to the agent") {
		// The engine stopped the sandbox: it may say why (a Pod evicted),
		// once it noticed (up to 2 s).
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		for i := 0; i < 10; i++ {
			st, err := r.box.State(ctx)
			if err != nil {
				break
			}
			if st.Error != "" {
				res.Error += "; the engine says: " + st.Error
				break
			}
			if !st.Running {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		cancel()
	}
	res.Usage = cronium.Usage{CPUSeconds: rep.CPUSeconds, PeakMemory: rep.PeakMemory, OutputBytes: rep.OutputBytes, KeptOutputBytes: rep.KeptBytes,
		IORead: rep.IORead, IOWrite: rep.IOWrite, PidsPeak: rep.PidsPeak, CPUThrottledSeconds: float64(rep.ThrottledNS) / 1e9}
	res.Trail = rep.Trail
	if res.Outcome == cronium.OOMKilled {
		if o, ok := r.box.(interface{ OOMReport() string }); ok {
			res.OOMReport = o.OOMReport()
		}
	}
	res.Output, res.OutputError = rep.Output, rep.OutputError
	return res
}

// explain turns a lost agent connection into an outcome, asking the engine
// what happened to the sandbox.
func (r *run) explain(res cronium.Result, err error) cronium.Result {
	res.ExitCode = -1
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, serr := r.box.State(ctx)
	if serr == nil && st.OOMKilled {
		res.Outcome, res.Error = cronium.OOMKilled, "the sandbox ran out of memory and the kernel killed the agent"
		res.ExitCode = 137
		return res
	}
	if serr == nil && st.TimedOut {
		res.Outcome, res.Error = cronium.TimedOut, st.Error
		return res
	}
	switch {
	case errors.Is(err, ErrBackstop):
		res.Outcome, res.Error = cronium.TimedOut, err.Error()
	case errors.Is(err, context.Canceled):
		res.Outcome, res.Error = cronium.Cancelled, "cancelled; the agent did not confirm: "+err.Error()
	default:
		res.Outcome, res.Error = cronium.EngineError, "lost: "+err.Error()+exitNote(r.box)
	}
	return res
}

// exitNote says how the sandbox ended, for error messages.
func exitNote(box Box) string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// The agent's end reaches us before the engine marks the sandbox
	// stopped: wait a moment for the state to settle.
	var st State
	for i := 0; i < 20; i++ {
		var err error
		if st, err = box.State(ctx); err != nil {
			return ""
		}
		if !st.Running || ctx.Err() != nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	note := " (sandbox " + st.Status
	if st.Status == "exited" || st.Status == "dead" {
		note += fmt.Sprintf(", exit code %d", st.ExitCode)
	}
	if st.OOMKilled {
		note += ", killed out of memory: the agent itself"
	}
	if st.Error != "" {
		note += ", " + st.Error
	}
	return note + ")"
}
