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
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	cronium "github.com/cronium/executor"
	"github.com/cronium/executor/helpers"
	"github.com/cronium/executor/netguard"
	"github.com/cronium/executor/session"
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
	LabelUser      = "io.cronium.user"     // the script user, "UID:GID" (debug shells run as it)
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
	// Dial, when set, opens the connections to Host (an engine started on
	// demand: see package podman). Idle connections are then closed after
	// a few seconds, so that none outlives an engine that stops when idle.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// Dialect, when set ("docker" or "podman"), is the engine Host must be:
	// New fails otherwise. Empty: whichever answers.
	Dialect string
}

// Engine runs executions in Docker containers. It is safe for concurrent use.
type Engine struct {
	cfg       Config
	cli       *client.Client
	agentPath string // content-addressed copy of the agent under StateDir
	libPath   string // content-addressed runtime helpers under StateDir
	log       *slog.Logger

	dialect dialect // Docker or Podman, from the engine's version
	version string  // the engine's version
	seccomp string  // Podman: the file of Docker's default seccomp profile

	bg       context.Context // cancelled by Close: background removals stop
	bgCancel context.CancelFunc
	pending  sync.WaitGroup // background removals (watch)

	wsMu sync.Mutex // serialises creating and mounting persistent workspaces

	debugMu sync.Mutex             // guards debugs
	debugs  map[string]*sync.Mutex // execution id -> its debug session's lock

	net *netguard.Lazy // enforces network policies; created on the first networked run
}

var _ cronium.Engine = (*Engine)(nil)

func init() {
	cronium.RegisterEngine("docker", cronium.EngineDriver{Open: func(ctx context.Context, o cronium.EngineOptions) (cronium.Engine, error) {
		return New(ctx, Config{Host: o.Host, AgentPath: o.AgentPath, StateDir: o.StateDir, NodeID: o.NodeID, Images: o.Images,
			Logger: o.Logger, Network: o.Network, Dialect: "docker"})
	}})
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
	if cfg.Dial != nil {
		opts = append(opts, client.WithHTTPClient(&http.Client{Transport: &http.Transport{IdleConnTimeout: 5 * time.Second}}))
	}
	if cfg.Host != "" {
		opts = append(opts, client.WithHost(cfg.Host))
	}
	if cfg.Dial != nil {
		opts = append(opts, client.WithDialContext(cfg.Dial), client.WithScheme("http"))
	}
	cli, err := client.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("docker client: %w", err)
	}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := cli.Ping(pctx, client.PingOptions{NegotiateAPIVersion: true}); err != nil {
		cli.Close()
		how := "Start Docker (`dockerd &` or `systemctl start docker`), or set DOCKER_HOST (--docker-host) to a running engine; for Podman use --engine podman"
		if cfg.Dialect == "podman" {
			how = "Start Podman's API service there (`podman system service --time=0 " + cli.DaemonHost() + " &`), or leave --docker-host empty and cronium starts one itself"
		}
		return nil, fmt.Errorf("%w: no container engine answered at %s (%v). %s", cronium.ErrUnavailable, cli.DaemonHost(), err, how)
	}
	e := &Engine{cfg: cfg, cli: cli, log: cfg.Logger, net: netguard.NewLazy(cfg.Network, cfg.StateDir, cfg.Logger)}
	if name, version, ok := serverHeader(pctx, cli.DaemonHost(), cfg.Dial); ok {
		// Podman's /version takes half a second (it asks its runtimes);
		// the Server header of /_ping says the same.
		e.version = version
		if name == "Libpod" {
			e.dialect = podman
		}
	} else if v, err := cli.ServerVersion(pctx, client.ServerVersionOptions{}); err == nil {
		e.version = v.Version
		for _, c := range v.Components {
			if strings.HasPrefix(c.Name, "Podman") {
				e.dialect, e.version = podman, c.Version
			}
		}
	}
	if cfg.Dialect != "" && cfg.Dialect != e.dialect.name() {
		cli.Close()
		return nil, fmt.Errorf("%w: the engine at %s is %s %s, not %s: use --engine %s (engine: %s in the config) for it, or point --docker-host at a %s socket",
			cronium.ErrUnavailable, cli.DaemonHost(), e.dialect.name(), e.version, cfg.Dialect, e.dialect.name(), e.dialect.name(), cfg.Dialect)
	}
	e.bg, e.bgCancel = context.WithCancel(context.Background())
	if err := session.StaticBinary(cfg.AgentPath); err != nil {
		cli.Close()
		return nil, cronium.Invalid("agent_path", cfg.AgentPath, err.Error())
	}
	if e.agentPath, err = session.InstallAgent(cfg.AgentPath, cfg.StateDir); err != nil {
		cli.Close()
		return nil, err
	}
	if e.dialect == podman {
		if e.seccomp, err = seccompProfile(filepath.Join(cfg.StateDir, "podman-files")); err != nil {
			cli.Close()
			return nil, err
		}
	}
	if e.libPath, err = helpers.Install(filepath.Join(cfg.StateDir, "lib")); err != nil {
		cli.Close()
		return nil, fmt.Errorf("install runtime helpers: %w", err)
	}
	return e, nil
}

// serverHeader reads the Server header of a unix socket engine's /_ping:
// "Docker/20.10.24 (linux)" or "Libpod/4.3.1 (linux)".
func serverHeader(ctx context.Context, host string, dial func(ctx context.Context, network, addr string) (net.Conn, error)) (name, version string, ok bool) {
	path, isUnix := strings.CutPrefix(host, "unix://")
	if !isUnix {
		return "", "", false
	}
	if dial == nil {
		dial = func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		}
	}
	tr := &http.Transport{DialContext: dial, DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://engine/_ping", nil)
	if err != nil {
		return "", "", false
	}
	resp, err := tr.RoundTrip(req)
	if err != nil {
		return "", "", false
	}
	resp.Body.Close()
	name, rest, _ := strings.Cut(resp.Header.Get("Server"), "/")
	version, _, _ = strings.Cut(rest, " ")
	return name, version, name != "" && version != ""
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

// Close implements cronium.Engine: it stops the background removals (what
// they did not finish, GC finds by its labels), removes the sandbox
// network and its rules and releases the client connection.
func (e *Engine) Close() error {
	e.bgCancel()
	e.pending.Wait()
	e.net.Close()
	releaseScratchDir(filepath.Join(e.cfg.StateDir, "io"))
	return e.cli.Close()
}

// NodeID is the node label of the engine's containers and networks.
func (e *Engine) NodeID() string { return e.cfg.NodeID }

// NewID returns a random execution id (cronium.NewID).
func NewID() string { return cronium.NewID() }

// Capabilities implements cronium.Engine.
func (e *Engine) Capabilities() cronium.Capabilities {
	return cronium.Capabilities{Name: e.dialect.name(), Address: e.cli.DaemonHost(), Version: e.version,
		Reattach: true, Warm: true, Pause: true, Workspaces: true, Images: true, DiskIO: true, Debug: true,
		Networks: []cronium.NetworkMode{cronium.NetworkNone, cronium.NetworkEgress, cronium.NetworkInternal, cronium.NetworkFull}}
}

// Images implements cronium.Engine: the engine holds its images itself.
func (e *Engine) Images() cronium.ImageStore { return e }

func (e *Engine) timing() session.Timing {
	return session.Timing{StartTimeout: e.cfg.StartTimeout, Backstop: e.cfg.Backstop, Logger: e.log}
}

// Run implements cronium.Engine.
func (e *Engine) Run(ctx context.Context, spec cronium.Spec) (cronium.Result, error) {
	if err := e.checkSpec(&spec); err != nil {
		return cronium.Result{}, err
	}
	return session.Cold(ctx, e.timing(), e.newBox(spec, 0, true), spec), nil
}

// Reattach implements cronium.Engine: it listens again on the execution's
// sandbox socket, waits for the agent to redial, then relays output (chunks
// with seq <= AfterSeq are skipped) until the report, and removes the
// container as Run does. A container that is no longer running (the agent
// gave up or crashed) ends with a Result explaining that (oom_killed when
// the engine says so, otherwise engine_error with Error starting "lost: ").
//
// The backstop is the container's deadline label, or Config.Backstop from
// now if that is later: a report the agent kept while no host was attached
// still arrives. A cancelled ctx cancels the execution, as for Run.
// Result.Phases.Run is measured from this call. At most one Run or
// Reattach may drive an execution.
func (e *Engine) Reattach(ctx context.Context, r cronium.Reattach) (cronium.Result, error) {
	id := r.Sandbox
	if id == "" {
		id = r.ExecutionID
	}
	if !validID(id) || !validID(r.ExecutionID) {
		return cronium.Result{}, cronium.Invalid("id", id, "is not an id: use letters, digits, '-' and '_' only, at most 64")
	}
	node, stateDir := e.cfg.NodeID, e.cfg.StateDir
	if r.Node != "" { // a dead node's execution, adopted: its container and socket directory
		if !validID(r.Node) || !filepath.IsAbs(r.StateDir) {
			return cronium.Result{}, cronium.Invalid("node", r.Node+" "+r.StateDir, "is not a node and its state directory")
		}
		node, stateDir = r.Node, r.StateDir
	}
	list, err := e.cli.ContainerList(ctx, client.ContainerListOptions{
		All:     true,
		Filters: client.Filters{}.Add("label", LabelManaged+"=true", LabelNode+"="+node, LabelExecution+"="+id),
	})
	if err != nil {
		return cronium.Result{}, fmt.Errorf("list containers of execution %s: %w", id, err)
	}
	if len(list.Items) == 0 {
		os.RemoveAll(filepath.Join(stateDir, "s", sandboxName(id))) // its socket directory, if the container went by itself
		return cronium.Result{}, fmt.Errorf("%w: no container of execution %s on node %s", cronium.ErrNotFound, id, node)
	}
	c := list.Items[0]
	if c.State == container.StateCreated {
		// Its host died between making and starting it: nothing ran in it.
		if err := e.remove(ctx, c.ID); err != nil {
			return cronium.Result{}, fmt.Errorf("remove the never-started container of execution %s: %w", id, err)
		}
		os.RemoveAll(filepath.Join(stateDir, "s", sandboxName(id)))
		return cronium.Result{}, fmt.Errorf("%w: the container of execution %s was made but never started", cronium.ErrNeverStarted, id)
	}
	spec := cronium.Spec{ID: r.ExecutionID, Image: e.dialect.imageName(c.Image), Output: r.Output, Sample: r.Sample, Runtime: r.Runtime}
	if v, ok := c.Labels[LabelLimits]; ok {
		if err := json.Unmarshal([]byte(v), &spec.Limits); err != nil {
			e.log.Warn("unreadable limits label", "execution_id", id, "container", c.ID, "err", err)
		}
	}
	b := e.newBox(spec, 0, false)
	b.name, b.id, b.stateDir = sandboxName(id), c.ID, stateDir
	running := c.State == container.StateRunning
	if running {
		if err := b.relisten(); err != nil {
			return cronium.Result{}, err
		}
	}
	backstop := labelTime(c.Labels[LabelDeadline], time.Now())
	return session.Reattach(ctx, e.timing(), b, spec, r.AfterSeq, running, backstop)
}

// Sandboxes implements cronium.Engine: this node's cronium containers (any state), from their labels.
func (e *Engine) Sandboxes(ctx context.Context) ([]cronium.SandboxInfo, error) {
	list, err := e.cli.ContainerList(ctx, client.ContainerListOptions{
		All:     true,
		Filters: client.Filters{}.Add("label", LabelManaged+"=true", LabelNode+"="+e.cfg.NodeID),
	})
	if err != nil {
		return nil, fmt.Errorf("list cronium containers: %w", err)
	}
	out := make([]cronium.SandboxInfo, 0, len(list.Items))
	for _, c := range list.Items {
		out = append(out, cronium.SandboxInfo{ID: c.Labels[LabelExecution], Ref: c.ID, Image: e.dialect.imageName(c.Image), State: string(c.State),
			Created: labelTime(c.Labels[LabelCreated], time.Unix(c.Created, 0))})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// Recover implements cronium.Engine: this node's warm sandboxes a dead
// process left idle are removed (those in keep are being re-attached), and
// the bridges and rules it left, unless a sandbox still uses them.
func (e *Engine) Recover(ctx context.Context, keep map[string]bool) (int, error) {
	n, err := e.removeSandboxesExcept(ctx, keep)
	if err != nil {
		return n, err
	}
	return n, e.SweepNetworks(ctx)
}

// Release implements cronium.Engine: it unmounts the user workspaces.
func (e *Engine) Release() (int, error) { return e.UnmountWorkspaces() }

func (e *Engine) checkSpec(spec *cronium.Spec) error {
	return session.CheckSpec(spec, e.cfg.Images)
}

func validID(id string) bool { return session.ValidID(id) }

// sandboxName derives a short, unique directory and container name; unix
// socket paths are limited to 108 bytes.
func sandboxName(id string) string {
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:8])
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
		// A paused sandbox (an idle warm one, a kept one) is alive until its deadline.
		alive := c.State == container.StateRunning || c.State == container.StatePaused
		stale := (!alive && now.Sub(created) > grace) || now.Sub(deadline) > grace
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
	e.sweepScratch(inUse, now.Add(-grace))
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
			if t = e.dialect.imageName(t); strings.HasPrefix(t, prefix) {
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
			info.Ref = e.dialect.imageName(im.RepoTags[0])
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
