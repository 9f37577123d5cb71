package cronium

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"time"
)

// Engine runs executions in isolated sandboxes: the one contract the
// dispatcher, the pools and `serve` use, whatever runs the containers
// (Docker, Podman, ...). What an engine cannot do it says in its
// Capabilities, and its methods for it return an error wrapping
// ErrUnsupported; callers read the capabilities and explain the difference
// to the user, they never probe the engine's type. Implementations are
// safe for concurrent use.
type Engine interface {
	// Capabilities says what the engine is and can do.
	Capabilities() Capabilities

	// Run executes spec in a fresh sandbox and blocks until it ends. A
	// cancelled ctx cancels the execution (outcome cancelled); the sandbox
	// is removed in every case (possibly after Run returns, by the engine
	// itself; GC removes what is left). The error is non-nil only when no Result
	// could be produced at all (bad spec); engine failures during a run
	// come back as EngineError results.
	Run(ctx context.Context, spec Spec) (Result, error)

	// Reattach resumes collecting an execution whose host process died,
	// from the reference recorded when it started and the last output
	// sequence number stored. It returns an error wrapping ErrNotFound when
	// the execution's sandbox is gone, and one wrapping ErrNeverStarted when
	// the sandbox exists but its script never started (the caller starts
	// it anew). Otherwise the Result says how the execution ended.
	Reattach(ctx context.Context, r Reattach) (Result, error)

	// NewSandbox creates and starts a warm sandbox for template's image,
	// limits, profile, network and workspace (its script fields are
	// ignored). lifetime bounds how long it may be kept.
	NewSandbox(ctx context.Context, template Spec, lifetime time.Duration) (Sandbox, error)

	// Sandboxes lists what belongs to this engine's node: every sandbox,
	// running or not, cold or warm.
	Sandboxes(ctx context.Context) ([]SandboxInfo, error)
	// Recover removes what a dead predecessor on this node left behind
	// (idle warm sandboxes, network leftovers), except the sandboxes whose
	// id keep names (their executions are about to be re-attached).
	Recover(ctx context.Context, keep map[string]bool) (removed int, err error)
	// GC removes sandboxes left behind by crashed runs that are older than
	// grace, and finishes removals still pending.
	GC(ctx context.Context, grace time.Duration) (removed int, err error)
	// Release frees what idle sandboxes no longer need once no execution
	// runs (mounted user workspaces); called at a clean shutdown.
	Release() (released int, err error)

	// Images is the engine's image store, or nil when Capabilities().Images is false.
	Images() ImageStore

	// Close stops what the engine does in the background (a sandbox
	// whose removal it did not see finish is GC's) and releases its
	// connections and network rules.
	io.Closer
}

// Capabilities says what an engine is and can do.
type Capabilities struct {
	// Name is the engine's name as configured: "docker", "podman".
	Name string `json:"name"`
	// Address is where the engine answers (a socket), for logs.
	Address string `json:"address,omitempty"`
	// Version is the engine's own version, when known.
	Version string `json:"version,omitempty"`
	// Reattach: executions survive a restart of the host process.
	Reattach bool `json:"reattach"`
	// Warm: NewSandbox works, so the prewarmed, reuse and user strategies can run.
	Warm bool `json:"warm"`
	// Pause: idle warm sandboxes can be frozen (Sandbox.Pause).
	Pause bool `json:"pause"`
	// Workspaces: persistent user workspaces (the user strategy).
	Workspaces bool `json:"workspaces"`
	// Networks are the network modes the engine enforces.
	Networks []NetworkMode `json:"networks"`
	// Images: Images() manages images (builds, package layers, custom images).
	Images bool `json:"images"`
	// DiskIO: the disk I/O caps of Limits are enforced (elsewhere runs say
	// in Result.Enforcement that they are not).
	DiskIO bool `json:"disk_io"`
	// Debug: Spec.KeepFailed keeps failed sandboxes, and the engine is a
	// Debugger.
	Debug bool `json:"debug"`
}

// Debugger opens shells in kept sandboxes (Spec.KeepFailed) and removes
// them. Engines whose Capabilities.Debug is true implement it.
type Debugger interface {
	// Debug runs an interactive shell in the kept sandbox of execution id,
	// as the script's user, on a terminal, with the sandbox's limits and
	// no network; it returns the shell's exit code once it ends (or ctx
	// does). It returns an error wrapping ErrNotFound when no kept sandbox
	// of id exists.
	Debug(ctx context.Context, id string, t Terminal) (exit int, err error)
	// Discard removes the kept sandbox of execution id (nil if it is gone).
	Discard(ctx context.Context, id string) error
}

// Terminal is the client's end of a debug shell.
type Terminal struct {
	// In is what the user types, Out what the shell writes.
	In  io.Reader
	Out io.Writer
	// Size is the terminal's size at the start, Resize its later sizes.
	Size   TermSize
	Resize <-chan TermSize
	// Term is the terminal type (TERM), like xterm-256color.
	Term string
}

// TermSize is a terminal's size in characters.
type TermSize struct {
	Rows, Cols uint16
}

// CanNetwork reports whether the engine enforces mode.
func (c Capabilities) CanNetwork(mode NetworkMode) bool {
	for _, m := range c.Networks {
		if m == mode {
			return true
		}
	}
	return false
}

// Reattach says which execution to re-attach to and where its output and
// runtime calls go.
type Reattach struct {
	// ExecutionID is the execution. Required.
	ExecutionID string
	// Sandbox is the warm sandbox it ran in (recorded through
	// Spec.Attached); empty for a cold run.
	Sandbox string
	// AfterSeq is the last output sequence number stored: chunks up to it
	// are not delivered again.
	AfterSeq uint64
	// Output receives the rest of the output, as Spec.Output does.
	Output func(OutputChunk)
	// Sample receives usage samples, as Spec.Sample does.
	Sample func(UsageSample)
	// Runtime answers the script's runtime API calls from now on; nil
	// refuses them.
	Runtime RuntimeAPI
	// Node and StateDir name the node that started the execution and its
	// state directory, when another node (its lease ran out) adopts it;
	// empty for this node's own. An engine that cannot reach another
	// node's sandboxes says ErrNotFound.
	Node, StateDir string
}

// Sandbox is a started sandbox whose agent is connected and idle: what warm
// pools hold. It runs one execution at a time.
type Sandbox interface {
	// ID names the sandbox (what Spec.Attached receives).
	ID() string
	// Run runs one execution in the sandbox. The sandbox's image, limits,
	// profile and network apply, whatever spec says; the script, input,
	// environment, runtime API, secrets and data mode come from spec.
	// Problems are reported in the Result (engine_error and so on).
	Run(ctx context.Context, spec Spec) Result
	// Reset makes the sandbox fresh for another run of the same user; an
	// error means it must be recycled.
	Reset(ctx context.Context) error
	// Pause freezes the idle sandbox so it holds no CPU; it resumes by
	// itself on Run, Reset or Close. Without Capabilities.Pause it returns
	// an error wrapping ErrUnsupported.
	Pause(ctx context.Context) error
	// Close destroys the sandbox. Safe to call twice.
	Close()
}

// SandboxInfo is one sandbox an engine holds for its node.
type SandboxInfo struct {
	// ID is the execution or warm sandbox id the sandbox carries.
	ID string `json:"id"`
	// Ref is the engine's own name for it (a container id).
	Ref     string    `json:"ref"`
	Image   string    `json:"image"`
	State   string    `json:"state"`
	Created time.Time `json:"created"`
}

// ImageStore is what image builds, package layers, custom images and
// updates need from an engine that holds images.
type ImageStore interface {
	ImageExists(ctx context.Context, ref string) (bool, error)
	ImageID(ctx context.Context, ref string) (string, error)
	ImageLayers(ctx context.Context, ref string) ([]string, error)
	ImageSize(ctx context.Context, ref string) (int64, error)
	ImageTags(ctx context.Context, prefix string) (map[string]string, error)
	TagImage(ctx context.Context, source, target string) error
	RemoveImage(ctx context.Context, ref string) error
	ImportImage(ctx context.Context, rootfs io.Reader, ref string, changes []string) error
	CommitLayer(ctx context.Context, base string, layer io.Reader, ref string, changes []string) error
	ReadImageFile(ctx context.Context, ref, path string, limit int64) ([]byte, error)
	ImageHasFile(ctx context.Context, image string, paths ...string) (string, error)
	FindImages(ctx context.Context, label, value string) ([]ImageInfo, error)
	PullImage(ctx context.Context, ref string) error
}

// ErrUnsupported marks what an engine cannot do (see Capabilities).
var ErrUnsupported = errors.New("not supported by this engine")

// EngineOptions are what every engine is opened with; each engine reads
// the fields it needs.
type EngineOptions struct {
	// Host is the engine's address (a socket URL); empty: the engine's default.
	Host string
	// AgentPath is the cronium-agent binary. Required.
	AgentPath string
	// StateDir holds the engine's files (agent copy, sandbox directories, sockets).
	StateDir string
	// NodeID labels what the engine creates, so nodes sharing an engine keep apart.
	NodeID string
	// Images maps a language to its runtime image.
	Images map[Language]string
	// Logger receives operational logs.
	Logger *slog.Logger
	// Network is how network policies are enforced.
	Network NetworkSetup
	// Params are engine-specific settings (engine_options in the config).
	Params map[string]string
}

// NetworkSetup is how an engine enforces network policies on its host.
type NetworkSetup struct {
	// Pool is the range the engine takes a /24 from for its sandbox bridge. Default 10.213.0.0/16.
	Pool netip.Prefix
	// UpstreamDNS are the name servers cronium's resolver asks ("IP" or "IP:port"). Default: the host's.
	UpstreamDNS []string
	// BlockedPorts are refused in every mode; a policy only adds to them. Default 25, 465, 587.
	BlockedPorts []int
	// AllowMetadata lets full mode reach 169.254.0.0/16 (cloud metadata). Default false.
	AllowMetadata bool
	// Services are the internal services by name.
	Services map[string]InternalService
}

// EngineOpener opens an engine by name (see RegisterEngine).
type EngineOpener func(ctx context.Context, o EngineOptions) (Engine, error)

// EngineDriver is an engine as registered: how to open it, and how to
// check its own options (engine_options) before anything starts.
type EngineDriver struct {
	// Open opens the engine. Required.
	Open EngineOpener
	// CheckOptions checks the engine's options, naming the one at fault
	// ("engine_options.x"). Nil: the engine takes none.
	CheckOptions func(params map[string]string) error
}

var (
	enginesMu sync.Mutex
	engines   = map[string]EngineDriver{}
)

// RegisterEngine makes an engine available by name to OpenEngine, the
// `engine:` setting and --engine. A new engine registers itself from its own
// package (in init), like a database/sql driver: nothing else changes.
func RegisterEngine(name string, d EngineDriver) {
	enginesMu.Lock()
	defer enginesMu.Unlock()
	if _, dup := engines[name]; dup || d.Open == nil {
		panic("cronium: engine " + name + " registered twice or without an opener")
	}
	engines[name] = d
}

// EngineNames lists the registered engines, sorted.
func EngineNames() []string {
	enginesMu.Lock()
	defer enginesMu.Unlock()
	names := make([]string, 0, len(engines))
	for n := range engines {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// CheckEngine checks that name (given in field) is a registered engine and
// that params are options it takes, with values it accepts.
func CheckEngine(field, name string, params map[string]string) error {
	enginesMu.Lock()
	d, ok := engines[name]
	enginesMu.Unlock()
	if !ok {
		return Invalid(field, name, fmt.Sprintf("is not an engine: use one of %s", strings.Join(EngineNames(), ", ")))
	}
	if d.CheckOptions != nil {
		return d.CheckOptions(params)
	}
	for k := range params {
		return Invalid("engine_options."+k, params[k], "is not an option of the "+name+" engine: it takes none")
	}
	return nil
}

// OpenEngine opens the engine registered as name, once its options are
// checked. An unknown name is an error naming field and the engines there are.
func OpenEngine(ctx context.Context, field, name string, o EngineOptions) (Engine, error) {
	if err := CheckEngine(field, name, o.Params); err != nil {
		return nil, err
	}
	enginesMu.Lock()
	d := engines[name]
	enginesMu.Unlock()
	return d.Open(ctx, o)
}

// ColdOnly gives an engine that runs cold only (a stand-in for
// measurements or tests of what is above the engine) the rest of the
// contract: no re-attach, no warm sandboxes, nothing to list, no images.
// Its Capabilities must say so.
type ColdOnly struct{}

// Reattach implements Engine: unsupported.
func (ColdOnly) Reattach(context.Context, Reattach) (Result, error) {
	return Result{}, fmt.Errorf("re-attach: %w", ErrUnsupported)
}

// NewSandbox implements Engine: unsupported.
func (ColdOnly) NewSandbox(context.Context, Spec, time.Duration) (Sandbox, error) {
	return nil, fmt.Errorf("warm sandboxes: %w", ErrUnsupported)
}

// Sandboxes implements Engine: none are kept.
func (ColdOnly) Sandboxes(context.Context) ([]SandboxInfo, error) { return nil, nil }

// Recover implements Engine: nothing to recover.
func (ColdOnly) Recover(context.Context, map[string]bool) (int, error) { return 0, nil }

// Release implements Engine: nothing to release.
func (ColdOnly) Release() (int, error) { return 0, nil }

// Images implements Engine: no image store.
func (ColdOnly) Images() ImageStore { return nil }

// NewID returns a random execution id: 80 bits, hex.
func NewID() string {
	var b [10]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
