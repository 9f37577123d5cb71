// Package docker is the Cronium engine over the Docker Engine API. It also
// drives Podman through its Docker-compatible socket (set DOCKER_HOST).
//
// Each execution gets a fresh container whose PID 1 is the cronium agent,
// bind-mounted read-only, and a per-sandbox host directory holding the unix
// socket the agent dials. The engine never writes into a container's files.
package docker

import (
	"archive/tar"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/client"

	cronium "github.com/cronium/executor"
	"github.com/cronium/executor/agent"
	"github.com/cronium/executor/helpers"
	"github.com/cronium/executor/netguard"
)

// Container labels. Every container the engine creates carries them, so
// that garbage collection and recovery can find their own.
const (
	LabelManaged   = "io.cronium.managed"
	LabelExecution = "io.cronium.execution"
	LabelNode      = "io.cronium.node"
	LabelCreated   = "io.cronium.created"  // unix seconds
	LabelDeadline  = "io.cronium.deadline" // unix seconds after which the host backstop has fired
	LabelSandbox   = "io.cronium.sandbox"  // name of the per-sandbox host directory
	LabelLimits    = "io.cronium.limits"   // the Limits in force, JSON, for Reattach
	LabelNetwork   = "io.cronium.network"  // the network policy in force, for people and tools
)

// Config configures an Engine. The zero value works for a root user with
// Docker on its default socket, once AgentPath and Images are set.
type Config struct {
	// Host is the engine address; empty means DOCKER_HOST, then the default socket.
	Host string
	// AgentPath is the cronium-agent binary on this host. Required.
	AgentPath string
	// StateDir holds the agent copy and the per-sandbox socket directories.
	// Default /var/lib/cronium for root, else $XDG_RUNTIME_DIR/cronium or a temp dir.
	StateDir string
	// NodeID labels containers so nodes sharing an engine keep apart. Default: the host name.
	NodeID string
	// Images maps a language to its runtime image. Required for runs without Spec.Image.
	Images map[cronium.Language]string
	// StartTimeout bounds container start until the agent says hello. Default 20s.
	StartTimeout time.Duration
	// Backstop is how long past timeout+grace the host waits for the agent
	// before it removes the container itself. Default 10s.
	Backstop time.Duration
	// Logger receives operational logs. Default: discard.
	Logger *slog.Logger
	// Network is how network policies are enforced (the sandbox network, resolver, proxy).
	Network NetworkConfig
}

// Engine runs executions in Docker containers. It is safe for concurrent use.
type Engine struct {
	cfg       Config
	cli       *client.Client
	agentPath string // content-addressed copy of the agent under StateDir
	libPath   string // content-addressed runtime helpers under StateDir
	log       *slog.Logger

	mu      sync.Mutex         // guards runtime
	runtime cronium.RuntimeAPI // answers runtime calls of re-attached executions

	wsMu sync.Mutex // serialises creating and mounting persistent workspaces

	netMu      sync.Mutex      // guards the fields below
	netGuard   *netguard.Guard // enforces network policies; created on the first networked run
	resolvConf string          // mounted as the sandboxes' /etc/resolv.conf
	closed     bool            // Close was called: no new guard

	onRun func(*sandbox) // test hook: called once Run's agent said hello; nil in production
}

var _ cronium.Engine = (*Engine)(nil)

// staticBinary refuses a dynamically linked agent: it would load the
// image's dynamic loader and C library, which a custom image or a package
// layer could replace.
func staticBinary(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("is not an executable: %v", err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return errors.New("is dynamically linked: build it with CGO_ENABLED=0 (make build does)")
		}
	}
	return nil
}

// New connects to the engine, checks that it answers, and installs the agent
// binary into the state directory.
func New(ctx context.Context, cfg Config) (*Engine, error) {
	if cfg.AgentPath == "" {
		return nil, cronium.Invalid("agent_path", "", "is empty: point it at the cronium-agent binary (built by `make build` into bin/)")
	}
	if cfg.StateDir == "" {
		cfg.StateDir = DefaultStateDir()
	}
	if cfg.NodeID == "" {
		cfg.NodeID, _ = os.Hostname()
	}
	if cfg.StartTimeout == 0 {
		cfg.StartTimeout = 20 * time.Second
	}
	if cfg.Backstop == 0 {
		cfg.Backstop = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	opts := []client.Opt{client.FromEnv}
	if cfg.Host != "" {
		opts = append(opts, client.WithHost(cfg.Host))
	}
	cli, err := client.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("docker client: %w", err)
	}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := cli.Ping(pctx, client.PingOptions{NegotiateAPIVersion: true}); err != nil {
		cli.Close()
		return nil, fmt.Errorf("%w: no container engine answered at %s (%v). Start Docker (`dockerd &` or `systemctl start docker`), or set DOCKER_HOST to a running engine, e.g. unix:///run/podman/podman.sock for Podman",
			cronium.ErrUnavailable, cli.DaemonHost(), err)
	}
	e := &Engine{cfg: cfg, cli: cli, log: cfg.Logger}
	if err := staticBinary(cfg.AgentPath); err != nil {
		cli.Close()
		return nil, cronium.Invalid("agent_path", cfg.AgentPath, err.Error())
	}
	if e.agentPath, err = installAgent(cfg.AgentPath, cfg.StateDir); err != nil {
		cli.Close()
		return nil, err
	}
	if e.libPath, err = helpers.Install(filepath.Join(cfg.StateDir, "lib")); err != nil {
		cli.Close()
		return nil, fmt.Errorf("install runtime helpers: %w", err)
	}
	return e, nil
}

// SetRuntime sets the runtime API that answers calls of re-attached
// executions (those started by Run use Spec.Runtime).
func (e *Engine) SetRuntime(rt cronium.RuntimeAPI) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.runtime = rt
}

// DefaultStateDir is where the engine keeps its files when Config.StateDir is empty.
func DefaultStateDir() string {
	if os.Geteuid() == 0 {
		return "/var/lib/cronium"
	}
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		return filepath.Join(d, "cronium")
	}
	return filepath.Join(os.TempDir(), "cronium-"+strconv.Itoa(os.Geteuid()))
}

// installAgent copies the agent to StateDir/agent/cronium-agent-<hash>, owned
// by us and read-only, so what is mounted into sandboxes cannot change under them.
func installAgent(src, stateDir string) (string, error) {
	b, err := os.ReadFile(src)
	if err != nil {
		return "", fmt.Errorf("read agent binary %s: %w (build it with `make build`)", src, err)
	}
	sum := sha256.Sum256(b)
	dir := filepath.Join(stateDir, "agent")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("create agent dir: %w", err)
	}
	dst := filepath.Join(dir, "cronium-agent-"+hex.EncodeToString(sum[:6]))
	if fi, err := os.Lstat(dst); err == nil && fi.Mode().IsRegular() && fi.Size() == int64(len(b)) {
		return dst, nil
	}
	tmp, err := os.CreateTemp(dir, ".agent-*")
	if err != nil {
		return "", fmt.Errorf("install agent: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return "", fmt.Errorf("install agent: %w", err)
	}
	if err := tmp.Chmod(0o555); err != nil {
		tmp.Close()
		return "", fmt.Errorf("install agent: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return "", fmt.Errorf("install agent: %w", err)
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return "", fmt.Errorf("install agent: %w", err)
	}
	return dst, nil
}

// Close removes the sandbox network and its rules and releases the client connection.
func (e *Engine) Close() error {
	e.closeNetwork()
	return e.cli.Close()
}

// NodeID is the node label of the engine's containers and networks.
func (e *Engine) NodeID() string { return e.cfg.NodeID }

// Host is the engine address in use.
func (e *Engine) Host() string { return e.cli.DaemonHost() }

// NewToken returns a runtime API token: 128 random bits, hex.
func NewToken() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// NewID returns a random execution id.
func NewID() string {
	var b [10]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Run implements cronium.Engine.
func (e *Engine) Run(ctx context.Context, spec cronium.Spec) (cronium.Result, error) {
	if err := e.checkSpec(&spec); err != nil {
		return cronium.Result{}, err
	}
	sb := &sandbox{e: e, spec: spec, name: sandboxName(spec.ID)}
	res := sb.run(ctx)
	return res, nil
}

// Reattach resumes collecting an execution whose host process died: it listens again on the
// execution's sandbox socket, waits for the agent to redial, then relays output (chunks with
// seq <= afterSeq are skipped) until the report, and removes the container as Run does.
// It returns an error wrapping cronium.ErrNotFound when no container of that execution exists
// on this node. If the container exists but is no longer running (the agent gave up or
// crashed) it returns a Result explaining that (oom_killed when the engine says OOMKilled,
// otherwise engine_error with Error starting "lost: "), and removes the container.
//
// The backstop is the container's deadline label, or Config.Backstop from now if that is
// later: a report the agent kept while no host was attached still arrives. A cancelled ctx
// cancels the execution, as for Run. Output is called as Spec.Output is; Result.Phases.Run
// is measured from this call. At most one Run or Reattach may drive an execution.
func (e *Engine) Reattach(ctx context.Context, id string, afterSeq uint64, output func(cronium.OutputChunk)) (cronium.Result, error) {
	return e.ReattachIn(ctx, id, id, afterSeq, output)
}

// ReattachIn is Reattach for an execution that ran in a warm sandbox: the
// container is found by the sandbox's id, and the agent must resume that
// execution.
func (e *Engine) ReattachIn(ctx context.Context, sandboxID, executionID string, afterSeq uint64, output func(cronium.OutputChunk)) (cronium.Result, error) {
	id := sandboxID
	if !validID(id) || !validID(executionID) {
		return cronium.Result{}, cronium.Invalid("id", id, "is not an id: use letters, digits, '-' and '_' only, at most 64")
	}
	list, err := e.cli.ContainerList(ctx, client.ContainerListOptions{
		All:     true,
		Filters: client.Filters{}.Add("label", LabelManaged+"=true", LabelNode+"="+e.cfg.NodeID, LabelExecution+"="+id),
	})
	if err != nil {
		return cronium.Result{}, fmt.Errorf("list containers of execution %s: %w", id, err)
	}
	if len(list.Items) == 0 {
		return cronium.Result{}, fmt.Errorf("%w: no container of execution %s on node %s", cronium.ErrNotFound, id, e.cfg.NodeID)
	}
	c := list.Items[0]
	spec := cronium.Spec{ID: executionID, Image: c.Image, Output: output}
	if v, ok := c.Labels[LabelLimits]; ok {
		if err := json.Unmarshal([]byte(v), &spec.Limits); err != nil {
			e.log.Warn("unreadable limits label", "execution_id", id, "container", c.ID, "err", err)
		}
	}
	sb := &sandbox{e: e, spec: spec, name: sandboxName(id), id: c.ID, after: afterSeq}
	backstop := labelTime(c.Labels[LabelDeadline], time.Now())
	res := sb.reattach(ctx, c.State == container.StateRunning, backstop)
	if sb.neverStarted {
		return res, fmt.Errorf("%w: execution %s", cronium.ErrNeverStarted, executionID)
	}
	return res, nil
}

// Running lists the execution ids of this node's cronium containers (any state), from their labels.
func (e *Engine) Running(ctx context.Context) ([]string, error) {
	list, err := e.cli.ContainerList(ctx, client.ContainerListOptions{
		All:     true,
		Filters: client.Filters{}.Add("label", LabelManaged+"=true", LabelNode+"="+e.cfg.NodeID),
	})
	if err != nil {
		return nil, fmt.Errorf("list cronium containers: %w", err)
	}
	ids := make([]string, 0, len(list.Items))
	for _, c := range list.Items {
		if id := c.Labels[LabelExecution]; id != "" {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	return ids, nil
}

func (e *Engine) checkSpec(spec *cronium.Spec) error {
	if spec.ID == "" {
		spec.ID = NewID()
	}
	if !validID(spec.ID) {
		return cronium.Invalid("id", spec.ID, "is not an id: use letters, digits, '-' and '_' only, at most 64")
	}
	if _, err := cronium.ParseLanguage("language", string(spec.Language)); err != nil {
		return err
	}
	if len(spec.Script) == 0 {
		return cronium.Invalid("script", "", "is empty: give the script's source")
	}
	size := len(spec.Script) + len(spec.Input)
	for _, b := range spec.Files {
		size += len(b)
	}
	// The start message carries them base64-encoded: 4/3 of their size.
	if size*4/3 > agent.MaxFrame-64<<10 {
		return cronium.Invalid("script", "", fmt.Sprintf("input and files together are %d bytes, above the %d byte maximum", size, (agent.MaxFrame-64<<10)*3/4))
	}
	if err := cronium.CheckFiles("files", spec.Files, cronium.Size(agent.MaxFrame)); err != nil {
		return err
	}
	spec.Limits = spec.Limits.Defaults()
	if err := spec.Limits.Validate(); err != nil {
		return err
	}
	if spec.Profile.Name == "" {
		p, _ := cronium.LookupProfile("profile", "")
		spec.Profile = p
	}
	if err := spec.Network.Normalize("network"); err != nil {
		return err
	}
	if spec.Network.Mode == "" {
		spec.Network.Mode = spec.Profile.Network
	}
	if spec.Network.Mode == "" {
		spec.Network.Mode = cronium.NetworkNone
	}
	if spec.Image == "" {
		spec.Image = e.cfg.Images[spec.Language]
		if spec.Image == "" {
			return cronium.Invalid("image", "", "is empty and no runtime image is configured for "+string(spec.Language)+": run `cronium images build`")
		}
	}
	for k := range spec.Env {
		if err := cronium.CheckEnvName("env", k); err != nil {
			return err
		}
	}
	return nil
}

func validID(id string) bool {
	if len(id) == 0 || len(id) > 64 {
		return false
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

// sandboxName derives a short, unique directory and container name; unix
// socket paths are limited to 108 bytes.
func sandboxName(id string) string {
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:8])
}

// sandbox is one execution's container and host directory.
type sandbox struct {
	e     *Engine
	spec  cronium.Spec
	name  string
	dir   string
	ln    *net.UnixListener
	id    string          // container id
	sess  *agent.Session  // once the agent said hello
	after uint64          // output with seq up to this was delivered before
	token string          // the runtime API token of this execution
	lease *netguard.Lease // the sandbox's address and network rules, if it has a network

	lifetime time.Duration // pooled sandboxes: how long past one run's deadline they may live

	neverStarted bool // reattach found a fresh agent: the script never ran

	abandoned atomic.Bool // set by tests that simulate a host crash: cleanup leaves everything
}

func (s *sandbox) run(ctx context.Context) (res cronium.Result) {
	spec := s.spec
	np := spec.Network
	res = cronium.Result{ID: spec.ID, Image: spec.Image, ImageID: spec.ImageID, Limits: spec.Limits, NetworkPolicy: &np, StartedAt: time.Now()}
	fail := func(err error) cronium.Result {
		res.Outcome, res.ExitCode, res.Error = cronium.EngineError, -1, err.Error()
		if ctx.Err() != nil && errors.Is(err, context.Canceled) {
			res.Outcome, res.Error = cronium.Cancelled, "cancelled before the script started"
		}
		return res
	}
	defer s.end(&res)

	t := time.Now()
	err := s.create(ctx)
	res.Phases.Create = time.Since(t)
	res.Container = s.id
	if err != nil {
		return fail(err)
	}

	t = time.Now()
	sess, err := s.start(ctx)
	res.Phases.Start = time.Since(t)
	if err != nil {
		return fail(err)
	}
	defer sess.Close()
	s.sess = sess
	if s.e.onRun != nil {
		s.e.onRun(s)
	}

	t = time.Now()
	l := spec.Limits
	if spec.Runtime != nil {
		s.token = NewToken()
	}
	sess.OnCall(s.onCall(spec.Runtime))
	st := s.startMessage()
	rep, err := s.drive(ctx, t.Add(l.Timeout+l.Grace+s.e.cfg.Backstop), func(out func(uint8, uint64, []byte)) (agent.Report, error) {
		return sess.Run(ctx, st, out)
	})
	res.Phases.Run = time.Since(t)
	res = s.result(res, rep, err)
	s.netUsage(&res)
	if spec.Collect != nil && res.Outcome == cronium.Succeeded {
		if err := s.collect(ctx); err != nil {
			res.Outcome, res.Error = cronium.EngineError, err.Error()
		}
	}
	return res
}

// collect hands the tar of Spec.CollectPath to Spec.Collect. The engine
// reads the files from inside the container: the host never follows a
// path the script made.
func (s *sandbox) collect(ctx context.Context) error {
	r, err := s.e.cli.CopyFromContainer(ctx, s.id, client.CopyFromContainerOptions{SourcePath: s.spec.CollectPath})
	if err != nil {
		return fmt.Errorf("collect %s: %w", s.spec.CollectPath, err)
	}
	defer r.Content.Close()
	if err := s.spec.Collect(r.Content); err != nil {
		return fmt.Errorf("collect %s: %w", s.spec.CollectPath, err)
	}
	return nil
}

// netUsage adds the network usage of the run to res.
func (s *sandbox) netUsage(res *cronium.Result) {
	if s.lease == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	u := s.lease.Usage(ctx)
	res.Usage.Network = &u
}

// end removes the sandbox and closes the result's timing.
func (s *sandbox) end(res *cronium.Result) {
	t := time.Now()
	s.cleanup()
	res.Phases.Cleanup = time.Since(t)
	res.EndedAt = time.Now()
}

// result fills res from the agent's report, or explains why there is none.
func (s *sandbox) result(res cronium.Result, rep agent.Report, err error) cronium.Result {
	if err != nil {
		return s.explain(res, err)
	}
	res.Outcome = cronium.Outcome(rep.Outcome)
	res.ExitCode = rep.ExitCode
	res.Signal = rep.Signal
	res.Truncated = rep.Truncated
	res.Error = rep.Error
	res.Usage = cronium.Usage{CPUSeconds: rep.CPUSeconds, PeakMemory: rep.PeakMemory, OutputBytes: rep.OutputBytes, KeptOutputBytes: rep.KeptBytes}
	res.Output, res.OutputError = rep.Output, rep.OutputError
	return res
}

// listen creates the sandbox socket the agent dials, replacing a stale one
// left by a host process that died.
func (s *sandbox) listen() error {
	path := filepath.Join(s.dir, agent.SocketName)
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove stale sandbox socket: %w", err)
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return fmt.Errorf("listen on sandbox socket: %w", err)
	}
	s.ln = ln
	return nil
}

// reattach is run for a sandbox whose host process died: listen again, wait
// for the agent's resumed hello, relay until the report, clean up.
func (s *sandbox) reattach(ctx context.Context, running bool, backstop time.Time) (res cronium.Result) {
	res = cronium.Result{ID: s.spec.ID, Image: s.spec.Image, ImageID: s.spec.ImageID, Limits: s.spec.Limits, Container: s.id, StartedAt: time.Now()}
	s.dir = filepath.Join(s.e.cfg.StateDir, "s", s.name)
	defer s.end(&res)
	if !running {
		return s.explain(res, errStopped)
	}
	t := time.Now()
	if soon := t.Add(s.e.cfg.Backstop); backstop.Before(soon) {
		backstop = soon
	}
	sess, err := s.rejoin(ctx, backstop)
	var rep agent.Report
	if err == nil {
		defer sess.Close()
		s.sess = sess
		s.e.mu.Lock()
		sess.OnCall(s.onCall(s.e.runtime))
		s.e.mu.Unlock()
		rep, err = s.drive(ctx, backstop, func(out func(uint8, uint64, []byte)) (agent.Report, error) {
			return sess.Resume(ctx, out)
		})
	} else if ctx.Err() != nil && !errors.Is(err, context.Canceled) {
		err = fmt.Errorf("%w: %v", context.Canceled, err)
	}
	res.Phases.Run = time.Since(t)
	return s.result(res, rep, err)
}

var errStopped = errors.New("the container stopped while no host was attached")

// rejoin listens on the sandbox socket until the agent redials with a
// resumed hello, the container stops, or backstop passes.
func (s *sandbox) rejoin(ctx context.Context, backstop time.Time) (*agent.Session, error) {
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return nil, fmt.Errorf("create sandbox dir: %w", err)
	}
	if err := s.listen(); err != nil {
		return nil, err
	}
	for {
		wait := min(time.Until(backstop), time.Second)
		if wait <= 0 {
			return nil, errBackstop
		}
		sess, err := s.accept(ctx, wait)
		switch {
		case err == nil && !sess.Hello().Resume:
			// A fresh agent: its host died before handing it the script.
			sess.Close()
			s.neverStarted = true
			return nil, fmt.Errorf("%w: the agent of execution %s never received its script", cronium.ErrNeverStarted, s.spec.ID)
		case err == nil && sess.Hello().ExecutionID != s.spec.ID:
			sess.Close()
			return nil, fmt.Errorf("the agent has no run of execution %s to resume (its hello: %+v)", s.spec.ID, sess.Hello())
		case err == nil:
			return sess, nil
		case !errors.Is(err, os.ErrDeadlineExceeded):
			return nil, err
		}
		if r, err := s.e.cli.ContainerInspect(ctx, s.id, client.ContainerInspectOptions{}); err == nil && r.Container.State != nil && !r.Container.State.Running {
			return nil, errStopped
		}
	}
}

func (s *sandbox) create(ctx context.Context) error {
	e, spec := s.e, s.spec
	s.dir = filepath.Join(e.cfg.StateDir, "s", s.name)
	if err := os.MkdirAll(filepath.Dir(s.dir), 0o711); err != nil {
		return fmt.Errorf("create sandbox parent dir: %w", err)
	}
	if err := os.Mkdir(s.dir, 0o700); err != nil {
		return fmt.Errorf("create sandbox dir for execution %s: %w", spec.ID, err)
	}
	if err := s.listen(); err != nil {
		return err
	}

	l, p := spec.Limits, spec.Profile
	now := time.Now()
	deadline := now.Add(e.cfg.StartTimeout + l.Timeout + l.Grace + e.cfg.Backstop + s.lifetime)
	labels := map[string]string{
		LabelManaged:   "true",
		LabelExecution: spec.ID,
		LabelNode:      e.cfg.NodeID,
		LabelCreated:   strconv.FormatInt(now.Unix(), 10),
		LabelDeadline:  strconv.FormatInt(deadline.Unix(), 10),
		LabelSandbox:   s.name,
	}
	if b, err := json.Marshal(l); err == nil {
		labels[LabelLimits] = string(b)
	}
	tmpfs := func(size cronium.Size) string {
		return fmt.Sprintf("rw,nosuid,nodev,noexec,size=%d,mode=1777", int64(size))
	}
	pids := l.Pids + agent.AgentThreads      // the agent's threads, made at its start, come on top
	netMode := container.NetworkMode("none") // networked sandboxes are plugged in by the guard
	capDrop := p.DropCaps
	var capAdd []string
	if len(p.DropCaps) == 1 && p.DropCaps[0] == "ALL" {
		capAdd = p.AgentCaps
	}
	var resolv string
	if spec.Network.Networked() {
		// Fail closed: the rules exist before the container does.
		g, err := e.guard(ctx)
		if err != nil {
			return fmt.Errorf("network policy: %w", err)
		}
		if s.lease, err = g.Attach(ctx, spec.ID, spec.Network); err != nil {
			return fmt.Errorf("network policy: %w", err)
		}
		e.netMu.Lock()
		resolv = e.resolvConf
		e.netMu.Unlock()
		// IPv6 is switched off in the sandbox by the guard when it plugs it in
		// (a Docker sysctl costs ~25 ms of container start), and dropped on the host.
		if len(capAdd) == 0 && spec.Network.Mode != cronium.NetworkFull {
			// Raw sockets could forge another sandbox's source address.
			capDrop = append(append([]string(nil), capDrop...), "NET_RAW")
		}
		labels[LabelNetwork] = spec.Network.String()
	}
	var secOpt []string
	if p.NoNewPrivileges {
		secOpt = append(secOpt, "no-new-privileges")
	}
	shares := int64(l.CPUGuaranteed * 1024)
	if shares < 2 {
		shares = 2
	}
	cfg := &container.Config{
		Hostname:   "cronium",
		User:       "0:0",
		Entrypoint: []string{agent.BinaryPath},
		Cmd:        []string{},
		WorkingDir: agent.Workspace,
		Labels:     labels,
	}
	host := &container.HostConfig{
		NetworkMode: netMode,
		Mounts: []mount.Mount{
			{Type: mount.TypeBind, Source: e.agentPath, Target: agent.BinaryPath, ReadOnly: true},
			{Type: mount.TypeBind, Source: s.dir, Target: agent.HostDir},
			{Type: mount.TypeBind, Source: e.libPath, Target: agent.LibDir, ReadOnly: true},
		},
		Tmpfs: map[string]string{
			"/tmp": tmpfs(l.TmpSize),
			// The runtime API socket; root-owned, the socket itself is open to the script.
			agent.RuntimeDir: "rw,nosuid,nodev,noexec,size=1m,mode=0755",
			// Secrets: owned by the script user alone; the agent writes them as that user.
			agent.SecretsDir: fmt.Sprintf("rw,nosuid,nodev,noexec,size=1m,mode=0700,uid=%d,gid=%d", p.UID, p.GID),
		},
		ShmSize:        int64(l.ShmSize()), // tmpfs: within the memory limit with the other mounts (Limits.TmpfsBudget)
		ReadonlyRootfs: p.ReadOnlyRoot,
		CapDrop:        capDrop,
		CapAdd:         capAdd,
		SecurityOpt:    secOpt,
		OomScoreAdj:    500,
		Resources: container.Resources{
			Memory:            int64(l.Memory),
			MemorySwap:        int64(l.Memory), // equal to Memory: no swap
			MemoryReservation: int64(l.MemoryReservation),
			CPUPeriod:         100000,
			CPUQuota:          int64(l.CPUs * 100000),
			CPUShares:         shares,
			PidsLimit:         &pids,
			Ulimits: []*container.Ulimit{
				{Name: "nofile", Soft: l.NoFile, Hard: l.NoFile},
				{Name: "nproc", Soft: min(l.NProc, hostNProc()), Hard: min(l.NProc, hostNProc())},
			},
		},
	}
	if resolv != "" {
		host.Mounts = append(host.Mounts, mount.Mount{Type: mount.TypeBind, Source: resolv, Target: "/etc/resolv.conf", ReadOnly: true})
	}
	if ws := spec.Workspace; ws != nil {
		dir, err := e.workspaceDir(ws)
		if err != nil {
			return err
		}
		host.Mounts = append(host.Mounts, mount.Mount{Type: mount.TypeBind, Source: dir, Target: agent.Workspace})
	} else {
		host.Tmpfs[agent.Workspace] = tmpfs(l.WorkspaceSize)
	}
	if spec.Collect != nil {
		// A volume, not a tmpfs: the engine reads the files back from it
		// (it cannot read a tmpfs). The image's directory lends it its owner.
		host.Mounts = append(host.Mounts, mount.Mount{Type: mount.TypeVolume, Target: spec.CollectPath})
	}
	image := spec.Image
	if spec.ImageID != "" {
		image = spec.ImageID // what Image named at dispatch, whatever it names now
	}
	r, err := e.cli.ContainerCreate(ctx, client.ContainerCreateOptions{
		Config: cfg, HostConfig: host, Name: "cronium-" + s.name, Image: image,
	})
	if err != nil {
		if cerrdefs.IsNotFound(err) {
			how := "build it with `cronium images build` (or `make images`)"
			switch {
			case strings.Contains(spec.Image, "/pkgs-"):
				how = "it is an event's package layer, removed since: apply the event again to rebuild it"
			case strings.Contains(spec.Image, "@sha256:"):
				how = "it is an event's custom image, removed since: apply the event again to pull it"
			}
			return fmt.Errorf("%w: image %s is not in the engine at %s: %s", cronium.ErrNotFound, spec.Image, e.cli.DaemonHost(), how)
		}
		return fmt.Errorf("create container for execution %s: %w", spec.ID, err)
	}
	s.id = r.ID
	return nil
}

// start starts the container and waits for the agent's hello.
func (s *sandbox) start(ctx context.Context) (*agent.Session, error) {
	e := s.e
	if _, err := e.cli.ContainerStart(ctx, s.id, client.ContainerStartOptions{}); err != nil {
		return nil, fmt.Errorf("start container for execution %s: %w", s.spec.ID, err)
	}
	sess, err := s.accept(ctx, e.cfg.StartTimeout)
	if err != nil && ctx.Err() == nil {
		return nil, fmt.Errorf("agent in container %.12s did not say hello within %s: %w%s", s.id, e.cfg.StartTimeout, err, s.exitNote())
	}
	if err == nil && s.lease != nil {
		// Before the script exists: isolate the link and cap its bandwidth, or fail.
		if err = s.link(ctx); err != nil {
			sess.Close()
			return nil, fmt.Errorf("network policy: %w", err)
		}
	}
	return sess, err
}

// link finishes the sandbox's network on the host end of its link.
func (s *sandbox) link(ctx context.Context) error {
	r, err := s.e.cli.ContainerInspect(ctx, s.id, client.ContainerInspectOptions{})
	if err != nil {
		return fmt.Errorf("inspect container: %w", err)
	}
	if r.Container.State == nil || !r.Container.State.Running || r.Container.NetworkSettings == nil || r.Container.NetworkSettings.SandboxKey == "" {
		return fmt.Errorf("container %.12s is not running", s.id)
	}
	return s.lease.Link(ctx, r.Container.NetworkSettings.SandboxKey)
}

// accept waits up to timeout for the agent to dial and say hello. A timeout
// is an error wrapping os.ErrDeadlineExceeded; a done ctx closes the listener.
func (s *sandbox) accept(ctx context.Context, timeout time.Duration) (*agent.Session, error) {
	s.ln.SetDeadline(time.Now().Add(timeout))
	type accepted struct {
		sess *agent.Session
		err  error
	}
	ch := make(chan accepted, 1)
	go func() { // ends at the listener deadline or when the listener is closed
		c, err := s.ln.AcceptUnix()
		if err != nil {
			ch <- accepted{nil, err}
			return
		}
		c.SetDeadline(time.Now().Add(s.e.cfg.StartTimeout))
		sess, err := agent.Handshake(c)
		if err != nil {
			c.Close()
		} else {
			c.SetDeadline(time.Time{})
		}
		ch <- accepted{sess, err}
	}()
	select {
	case a := <-ch:
		return a.sess, a.err
	case <-ctx.Done():
		s.ln.Close()
		if a := <-ch; a.sess != nil {
			a.sess.Close()
		}
		return nil, ctx.Err()
	}
}

// hostNProc is this host's limit on processes per user: a container's
// nproc cannot be above it (the runtime refuses to start it).
var hostNProc = sync.OnceValue(func() int64 {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(6 /* RLIMIT_NPROC */, &r); err != nil || r.Max == 0 || r.Max > 1<<22 {
		return 1 << 22
	}
	return int64(r.Max)
})

// exitNote says how the container ended, for error messages.
func (s *sandbox) exitNote() string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// The agent's end reaches us before the engine marks the container
	// stopped: wait a moment for the state to settle.
	var st *container.State
	for i := 0; i < 20; i++ {
		r, err := s.e.cli.ContainerInspect(ctx, s.id, client.ContainerInspectOptions{})
		if err != nil || r.Container.State == nil {
			return ""
		}
		st = r.Container.State
		if !st.Running || ctx.Err() != nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	note := fmt.Sprintf(" (container %s, exit code %d", st.Status, st.ExitCode)
	if st.OOMKilled {
		note += ", killed out of memory: the agent itself"
	}
	if st.Error != "" {
		note += ", " + st.Error
	}
	return note + ")"
}

// startMessage is the Start that hands the script to the agent.
func (s *sandbox) startMessage() agent.Start {
	spec := s.spec
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
		"CRONIUM_RUNTIME_TOKEN="+s.token,
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
		Token:       s.token,
		Context:     spec.Context,
		Secrets:     spec.Secrets,
		DataMode:    spec.DataMode,
		MaxOutput:   cronium.MaxOutputBytes,
	}
}

// onCall answers the script's runtime API calls through rt.
func (s *sandbox) onCall(rt cronium.RuntimeAPI) func(ctx context.Context, c agent.Call) agent.Reply {
	id := s.spec.ID // bound now: a reused sandbox's next run must not receive this run's calls
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
// grace+Backstop after a cancel), the session is closed and the container
// removed. Output at or below s.after is skipped: the agent may write again
// what a previous host had.
func (s *sandbox) drive(ctx context.Context, backstop time.Time, call func(out func(uint8, uint64, []byte)) (agent.Report, error)) (agent.Report, error) {
	e, spec := s.e, s.spec
	var once sync.Once
	timer := time.AfterFunc(time.Until(backstop), func() {
		once.Do(func() {
			e.log.Warn("agent did not report in time; removing container", "execution_id", spec.ID, "container", s.id)
			s.sess.Close()
		})
	})
	defer timer.Stop()
	stopCancel := context.AfterFunc(ctx, func() { timer.Reset(spec.Limits.Grace + e.cfg.Backstop) })
	defer stopCancel()

	last := s.after
	out := func(stream uint8, seq uint64, data []byte) {
		if seq <= last || spec.Output == nil {
			return
		}
		last = seq
		spec.Output(cronium.OutputChunk{Seq: seq, Stream: cronium.Stream(stream), Data: data})
	}
	rep, err := call(out)
	if err != nil && timer.Stop() == false && ctx.Err() == nil {
		return rep, errBackstop
	}
	if err != nil && ctx.Err() != nil {
		return rep, fmt.Errorf("%w: %v", context.Canceled, err)
	}
	return rep, err
}

var errBackstop = errors.New("the agent stopped answering; the host backstop removed the container")

// explain turns a lost agent connection into an outcome, asking the engine
// what happened to the container.
func (s *sandbox) explain(res cronium.Result, err error) cronium.Result {
	res.ExitCode = -1
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if r, ierr := s.e.cli.ContainerInspect(ctx, s.id, client.ContainerInspectOptions{}); ierr == nil && r.Container.State != nil {
		st := r.Container.State
		if st.OOMKilled {
			res.Outcome, res.Error = cronium.OOMKilled, "the sandbox ran out of memory and the kernel killed the agent"
			res.ExitCode = 137
			return res
		}
	}
	switch {
	case errors.Is(err, errBackstop):
		res.Outcome, res.Error = cronium.TimedOut, err.Error()
	case errors.Is(err, context.Canceled):
		res.Outcome, res.Error = cronium.Cancelled, "cancelled; the agent did not confirm: "+err.Error()
	default:
		res.Outcome, res.Error = cronium.EngineError, "lost: "+err.Error()+s.exitNote()
	}
	return res
}

// cleanup removes the container and the host directory, whatever happened,
// unless a test simulates a host crash.
func (s *sandbox) cleanup() {
	if s.abandoned.Load() {
		return
	}
	if s.ln != nil {
		s.ln.Close()
	}
	if s.id != "" {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		_, err := s.e.cli.ContainerRemove(ctx, s.id, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true})
		cancel()
		if err != nil && !cerrdefs.IsNotFound(err) {
			s.e.log.Error("remove container; gc will retry", "container", s.id, "execution_id", s.spec.ID, "err", err)
		}
	}
	if s.lease != nil {
		s.lease.Release()
	}
	if s.dir != "" {
		os.RemoveAll(s.dir)
	}
}

// GC implements cronium.Engine: it removes this node's containers that have
// stopped and are older than grace, or whose deadline passed more than grace
// ago, and sandbox directories no container uses.
func (e *Engine) GC(ctx context.Context, grace time.Duration) (int, error) {
	list, err := e.cli.ContainerList(ctx, client.ContainerListOptions{
		All:     true,
		Filters: client.Filters{}.Add("label", LabelManaged+"=true", LabelNode+"="+e.cfg.NodeID),
	})
	if err != nil {
		return 0, fmt.Errorf("list cronium containers: %w", err)
	}
	now := time.Now()
	inUse := map[string]bool{}
	removed := 0
	for _, c := range list.Items {
		created := labelTime(c.Labels[LabelCreated], time.Unix(c.Created, 0))
		deadline := labelTime(c.Labels[LabelDeadline], created)
		stale := (c.State != container.StateRunning && now.Sub(created) > grace) || now.Sub(deadline) > grace
		if !stale {
			inUse[c.Labels[LabelSandbox]] = true
			continue
		}
		if _, err := e.cli.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true}); err != nil && !cerrdefs.IsNotFound(err) {
			return removed, fmt.Errorf("remove orphan container %.12s: %w", c.ID, err)
		}
		e.log.Info("removed orphan container", "container", c.ID, "execution_id", c.Labels[LabelExecution])
		removed++
	}
	if err := e.SweepNetworks(ctx); err != nil {
		e.log.Warn("sweep sandbox networks", "err", err)
	}
	dirs, _ := os.ReadDir(filepath.Join(e.cfg.StateDir, "s"))
	for _, d := range dirs {
		if inUse[d.Name()] {
			continue
		}
		if fi, err := d.Info(); err == nil && now.Sub(fi.ModTime()) > grace {
			os.RemoveAll(filepath.Join(e.cfg.StateDir, "s", d.Name()))
		}
	}
	return removed, nil
}

func labelTime(v string, fallback time.Time) time.Time {
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return fallback
	}
	return time.Unix(n, 0)
}

// ImageExists reports whether ref is in the engine.
func (e *Engine) ImageExists(ctx context.Context, ref string) (bool, error) {
	_, err := e.cli.ImageInspect(ctx, ref)
	if err == nil {
		return true, nil
	}
	if cerrdefs.IsNotFound(err) {
		return false, nil
	}
	return false, fmt.Errorf("inspect image %s: %w", ref, err)
}

// ImageID returns the engine's ID of the image ref names now.
func (e *Engine) ImageID(ctx context.Context, ref string) (string, error) {
	r, err := e.cli.ImageInspect(ctx, ref)
	if err != nil {
		if cerrdefs.IsNotFound(err) {
			return "", fmt.Errorf("%w: image %s", cronium.ErrNotFound, ref)
		}
		return "", fmt.Errorf("inspect image %s: %w", ref, err)
	}
	return r.ID, nil
}

// ImageLayers returns the IDs of ref's file system layers, base first.
func (e *Engine) ImageLayers(ctx context.Context, ref string) ([]string, error) {
	r, err := e.cli.ImageInspect(ctx, ref)
	if err != nil {
		return nil, fmt.Errorf("inspect image %s: %w", ref, err)
	}
	return r.RootFS.Layers, nil
}

// TagImage makes target name the image source names (an ID or a reference).
func (e *Engine) TagImage(ctx context.Context, source, target string) error {
	if _, err := e.cli.ImageTag(ctx, client.ImageTagOptions{Source: source, Target: target}); err != nil {
		return fmt.Errorf("tag %s as %s: %w", source, target, err)
	}
	return nil
}

// ImageTags lists the tags (repo:tag) that start with prefix, with the ID
// of the image each names.
func (e *Engine) ImageTags(ctx context.Context, prefix string) (map[string]string, error) {
	res, err := e.cli.ImageList(ctx, client.ImageListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list images: %w", err)
	}
	out := map[string]string{}
	for _, im := range res.Items {
		for _, t := range im.RepoTags {
			if strings.HasPrefix(t, prefix) {
				out[t] = im.ID
			}
		}
	}
	return out, nil
}

// ImageSize returns the size of ref in bytes.
func (e *Engine) ImageSize(ctx context.Context, ref string) (int64, error) {
	r, err := e.cli.ImageInspect(ctx, ref)
	if err != nil {
		return 0, fmt.Errorf("inspect image %s: %w", ref, err)
	}
	return r.Size, nil
}

// ImportImage imports a root file system tarball as ref, applying
// Dockerfile-style changes (ENV, WORKDIR, CMD).
// scratch creates a container of image that is never started, to read or
// add files; labelled so that the garbage collector removes it if we die.
// A container to commit is not labelled (the commit would keep the labels):
// it lives for the copy and the commit only.
func (e *Engine) scratch(ctx context.Context, image string, labelled bool) (string, func(), error) {
	now := time.Now()
	cfg := &container.Config{Image: image}
	if labelled {
		cfg.Labels = map[string]string{LabelManaged: "true", LabelNode: e.cfg.NodeID,
			LabelCreated: strconv.FormatInt(now.Unix(), 10), LabelDeadline: strconv.FormatInt(now.Add(time.Hour).Unix(), 10)}
	}
	c, err := e.cli.ContainerCreate(ctx, client.ContainerCreateOptions{Config: cfg})
	if err != nil {
		return "", nil, err
	}
	return c.ID, func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		e.cli.ContainerRemove(rctx, c.ID, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true})
	}, nil
}

// CommitLayer makes image ref from base plus one layer: the files of the
// tar stream layer, extracted at / by the engine inside a container that is
// never started. changes are Dockerfile instructions (ENV, LABEL) applied
// on commit. The container is removed whatever happens.
func (e *Engine) CommitLayer(ctx context.Context, base string, layer io.Reader, ref string, changes []string) error {
	id, remove, err := e.scratch(ctx, base, false)
	if err != nil {
		return fmt.Errorf("layer on %s: %w", base, err)
	}
	defer remove()
	if _, err := e.cli.CopyToContainer(ctx, id, client.CopyToContainerOptions{DestinationPath: "/", Content: layer, CopyUIDGID: true}); err != nil {
		return fmt.Errorf("layer on %s: copy the files: %w", base, err)
	}
	// The image keeps the base's configuration.
	bi, err := e.cli.ImageInspect(ctx, base)
	if err != nil || bi.Config == nil {
		return fmt.Errorf("layer on %s: inspect: %v", base, err)
	}
	cfg := &container.Config{Image: base, Env: bi.Config.Env, Cmd: bi.Config.Cmd, Entrypoint: bi.Config.Entrypoint,
		WorkingDir: bi.Config.WorkingDir, User: bi.Config.User, Labels: bi.Config.Labels}
	if _, err := e.cli.ContainerCommit(ctx, id, client.ContainerCommitOptions{Reference: ref, Changes: changes, NoPause: true, Config: cfg}); err != nil {
		return fmt.Errorf("layer on %s: commit %s: %w", base, ref, err)
	}
	return nil
}

// ReadImageFile returns the file at path in image ref (at most limit bytes),
// read from a container that is never started.
func (e *Engine) ReadImageFile(ctx context.Context, ref, path string, limit int64) ([]byte, error) {
	id, remove, err := e.scratch(ctx, ref, true)
	if err != nil {
		return nil, fmt.Errorf("read %s in %s: %w", path, ref, err)
	}
	defer remove()
	r, err := e.cli.CopyFromContainer(ctx, id, client.CopyFromContainerOptions{SourcePath: path})
	if err != nil {
		return nil, fmt.Errorf("read %s in %s: %w", path, ref, err)
	}
	defer r.Content.Close()
	tr := tar.NewReader(r.Content)
	for {
		h, err := tr.Next()
		if err != nil {
			return nil, fmt.Errorf("read %s in %s: %w", path, ref, err)
		}
		if h.Typeflag == tar.TypeReg {
			return io.ReadAll(io.LimitReader(tr, limit))
		}
	}
}

// FindImages lists the images carrying label key (with value, if value
// is not empty): their first tag, labels, size and creation time.
func (e *Engine) FindImages(ctx context.Context, key, value string) ([]cronium.ImageInfo, error) {
	f := key
	if value != "" {
		f += "=" + value
	}
	res, err := e.cli.ImageList(ctx, client.ImageListOptions{Filters: make(client.Filters).Add("label", f)})
	if err != nil {
		return nil, fmt.Errorf("list images labelled %s: %w", f, err)
	}
	var out []cronium.ImageInfo
	for _, im := range res.Items {
		info := cronium.ImageInfo{ID: im.ID, Labels: im.Labels, Size: im.Size, Created: time.Unix(im.Created, 0)}
		if len(im.RepoTags) > 0 {
			info.Ref = im.RepoTags[0]
		}
		out = append(out, info)
	}
	return out, nil
}

// PullImage pulls ref (name@digest) from its registry into the engine.
func (e *Engine) PullImage(ctx context.Context, ref string) error {
	r, err := e.cli.ImagePull(ctx, ref, client.ImagePullOptions{})
	if err != nil {
		return fmt.Errorf("pull %s: %w", ref, err)
	}
	defer r.Close()
	if err := r.Wait(ctx); err != nil {
		return fmt.Errorf("pull %s: %w", ref, err)
	}
	return nil
}

// ImageHasFile reports which of paths exists in image (the first found), read
// from a container that is never started; a symbolic link counts.
func (e *Engine) ImageHasFile(ctx context.Context, image string, paths ...string) (string, error) {
	id, remove, err := e.scratch(ctx, image, true)
	if err != nil {
		return "", fmt.Errorf("inspect %s: %w", image, err)
	}
	defer remove()
	for _, p := range paths {
		if _, err := e.cli.ContainerStatPath(ctx, id, client.ContainerStatPathOptions{Path: p}); err == nil {
			return p, nil
		} else if !cerrdefs.IsNotFound(err) {
			return "", fmt.Errorf("inspect %s in %s: %w", p, image, err)
		}
	}
	return "", nil
}

// RemoveImage removes image ref; an image a container still uses is kept (an error).
func (e *Engine) RemoveImage(ctx context.Context, ref string) error {
	if _, err := e.cli.ImageRemove(ctx, ref, client.ImageRemoveOptions{}); err != nil {
		return fmt.Errorf("remove image %s: %w", ref, err)
	}
	return nil
}

func (e *Engine) ImportImage(ctx context.Context, rootfs io.Reader, ref string, changes []string) error {
	rc, err := e.cli.ImageImport(ctx, client.ImageImportSource{Source: rootfs, SourceName: "-"}, ref, client.ImageImportOptions{Changes: changes})
	if err != nil {
		return fmt.Errorf("import image %s: %w", ref, err)
	}
	defer rc.Close()
	body, err := io.ReadAll(rc)
	if err != nil {
		return fmt.Errorf("import image %s: %w", ref, err)
	}
	if strings.Contains(string(body), `"error"`) {
		return fmt.Errorf("import image %s: %s", ref, strings.TrimSpace(string(body)))
	}
	return nil
}
