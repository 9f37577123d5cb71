package cronium

import (
	"context"
	"encoding/json"
	"io"
	"time"
)

// Outcome is how an execution ended. Exactly one applies.
type Outcome string

// Outcomes.
const (
	// Succeeded: the script exited 0.
	Succeeded Outcome = "succeeded"
	// Failed: the script exited non-zero or was killed by a signal; see ExitCode.
	Failed Outcome = "failed"
	// TimedOut: the script ran past its timeout and was stopped.
	TimedOut Outcome = "timed_out"
	// OOMKilled: the kernel killed the script (or the whole sandbox) for memory.
	OOMKilled Outcome = "oom_killed"
	// OutputLimit: output passed the cap under the kill policy.
	OutputLimit Outcome = "output_limit"
	// Cancelled: the execution was cancelled before it finished.
	Cancelled Outcome = "cancelled"
	// EngineError: the container engine or the agent failed; see Error.
	EngineError Outcome = "engine_error"
)

// Outcomes lists every outcome.
var Outcomes = []Outcome{Succeeded, Failed, TimedOut, OOMKilled, OutputLimit, Cancelled, EngineError}

// Stream identifies stdout or stderr.
type Stream uint8

// Streams.
const (
	Stdout Stream = 1
	Stderr Stream = 2
)

// String names the stream.
func (s Stream) String() string {
	if s == Stderr {
		return "stderr"
	}
	return "stdout"
}

// OutputChunk is one framed piece of output, numbered in the order the agent read it.
type OutputChunk struct {
	Seq    uint64 `json:"seq"`
	Stream Stream `json:"stream"`
	Data   []byte `json:"data"`
	// Time is when the server received the chunk (zero where unknown).
	Time time.Time `json:"time,omitzero"`
}

// Spec is everything an engine needs to run one execution.
type Spec struct {
	// ID identifies the execution; engines label containers with it. Required.
	ID string
	// Language picks the interpreter. Required.
	Language Language
	// Script is the source code. Required.
	Script []byte
	// Input is delivered on the script's stdin.
	Input []byte
	// Image is the container image; empty means the runtime image of Language.
	Image string
	// ImageID, when set, is the exact image (engine ID) Image names at
	// dispatch: the container is made from it, so a retag of Image (an
	// `images update`) between dispatch and start changes nothing.
	ImageID string
	// Env is the user's environment; CRONIUM_* metadata is added by the engine.
	Env map[string]string
	// Limits are enforced; zero fields take defaults.
	Limits Limits
	// Profile is the security profile.
	Profile Profile
	// Network is the network policy; empty means the profile's default.
	Network NetworkPolicy
	// Output receives output chunks as they arrive, in sequence order. May be nil.
	// It is called from one goroutine at a time.
	Output func(OutputChunk)
	// Sample, when set, receives the running script's usage about once a
	// second, from one goroutine.
	Sample func(UsageSample)
	// Audit asks the engine to observe what a stricter profile would stop:
	// files written outside /tmp and /workspace, connections opened
	// (Result.Audit; the caller adds what the usage says).
	Audit bool
	// KeepFailed, when set, keeps the sandbox of a run that failed or timed
	// out this long, frozen with its files but without its secrets and
	// network, for Debugger.Debug (engines whose Capabilities.Debug is true).
	KeepFailed time.Duration
	// Runtime answers the script's runtime API calls; nil disables the API.
	Runtime RuntimeAPI
	// Context is the JSON the event helper returns.
	Context json.RawMessage
	// Secrets are delivered as files under /run/secrets, never in the environment.
	Secrets map[string][]byte
	// DataMode is DataAPI (default), DataStdio or DataFiles.
	DataMode string
	// Attached, when set, is called with the sandbox's id just before the
	// script is handed to its agent (a cold run's sandbox is the
	// execution's own: its id is the execution's), so that the execution
	// can be re-attached to that sandbox after a crash of the host, and a
	// run that never reached it is known never to have started. An error
	// stops the run before the script is handed over.
	Attached func(sandboxID string) error
	// Workspace, when set, is a named volume mounted at /workspace that
	// outlives the sandbox: the user strategy's persistent workspace.
	Workspace *Volume
	// Files are more files of the script, by relative path (CheckFiles),
	// written next to it in the workspace.
	Files map[string][]byte
	// Collect, if set, receives a tar stream of the sandbox's directory
	// CollectPath once the script exited 0, before the sandbox is removed:
	// how package builds hand their files back. An error from it fails the
	// run (engine_error).
	Collect     func(tar io.Reader) error
	CollectPath string
}

// Volume is a named workspace volume with a size quota.
type Volume struct {
	Name string
	Size Size
}

// Phases are how long each step of an execution took: create the sandbox,
// start it until the agent answers, run the script, clean up.
type Phases struct {
	Create  time.Duration
	Start   time.Duration
	Run     time.Duration
	Cleanup time.Duration
}

type phasesJSON struct {
	Create  float64 `json:"create_ms"`
	Start   float64 `json:"start_ms"`
	Run     float64 `json:"run_ms"`
	Cleanup float64 `json:"cleanup_ms"`
}

func msOf(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// MarshalJSON encodes each phase in milliseconds.
func (p Phases) MarshalJSON() ([]byte, error) {
	return json.Marshal(phasesJSON{msOf(p.Create), msOf(p.Start), msOf(p.Run), msOf(p.Cleanup)})
}

// UnmarshalJSON decodes the form MarshalJSON writes.
func (p *Phases) UnmarshalJSON(b []byte) error {
	var j phasesJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	ms := func(f float64) time.Duration { return time.Duration(f * float64(time.Millisecond)) }
	*p = Phases{ms(j.Create), ms(j.Start), ms(j.Run), ms(j.Cleanup)}
	return nil
}

// Usage is what an execution consumed.
type Usage struct {
	// CPUSeconds is user plus system CPU time of the script and its children.
	CPUSeconds float64 `json:"cpu_seconds"`
	// PeakMemory is the container's highest memory use in bytes (0 if the engine cannot tell).
	PeakMemory int64 `json:"peak_memory_bytes"`
	// OutputBytes is every byte the script wrote to stdout and stderr, kept or not.
	OutputBytes int64 `json:"output_bytes"`
	// KeptOutputBytes is how much of it was delivered before the cap.
	KeptOutputBytes int64 `json:"kept_output_bytes"`
	// IORead and IOWrite are the bytes the script read from and wrote to
	// block devices (tmpfs mounts such as /tmp are memory, not counted).
	IORead  int64 `json:"io_read_bytes,omitempty"`
	IOWrite int64 `json:"io_write_bytes,omitempty"`
	// PidsPeak is the most processes and threads the sandbox had at once
	// (the agent's own included; 0 where the engine cannot tell).
	PidsPeak int64 `json:"pids_peak,omitempty"`
	// CPUThrottledSeconds is how long the CPU limit held the script back.
	CPUThrottledSeconds float64 `json:"cpu_throttled_seconds,omitempty"`
	// CostMicros is what the execution cost by the server's price table,
	// in millionths of Currency (see Prices.Cost); 0 without prices.
	CostMicros int64  `json:"cost_micros,omitempty"`
	Currency   string `json:"currency,omitempty"`
	// Network is the traffic and refusals of a networked execution.
	Network *NetworkUsage `json:"network,omitempty"`
}

// Kept is a failed run's sandbox, kept for debugging.
type Kept struct {
	// Until is when it is removed (sooner if its owner releases it).
	Until time.Time `json:"until"`
	// Node is the node that keeps it, which serves its debug sessions.
	Node string `json:"node,omitempty"`
}

// Keeps reports whether a run of outcome o keeps its sandbox under KeepFailed.
func Keeps(o Outcome) bool { return o == Failed || o == TimedOut }

// UsageSample is a running execution's usage so far.
type UsageSample struct {
	// Time is when the sample was taken; Elapsed how long the script had run.
	Time    time.Time `json:"time"`
	Elapsed Duration  `json:"elapsed"`
	// CPUSeconds is the CPU time used since the script started.
	CPUSeconds float64 `json:"cpu_seconds"`
	// MemoryBytes is the memory in use now, PeakMemory the highest so far.
	MemoryBytes int64 `json:"memory_bytes"`
	PeakMemory  int64 `json:"peak_memory_bytes"`
	// IORead and IOWrite are block I/O bytes so far (buffered writes count
	// as they are written back).
	IORead  int64 `json:"io_read_bytes"`
	IOWrite int64 `json:"io_write_bytes"`
	// Pids counts processes and threads now.
	Pids int64 `json:"pids"`
	// CPUThrottledSeconds is how long the CPU limit held the script back so far.
	CPUThrottledSeconds float64 `json:"cpu_throttled_seconds"`
	// Network is the traffic so far of a networked execution.
	Network *NetworkUsage `json:"network,omitempty"`
}

// Result is what an engine reports when an execution ends.
type Result struct {
	ID       string  `json:"id"`
	Outcome  Outcome `json:"outcome"`
	ExitCode int     `json:"exit_code"`
	// Signal is the signal that ended the script, if any (e.g. "killed").
	Signal string `json:"signal,omitempty"`
	// Truncated is true when output passed the cap and was cut.
	Truncated bool `json:"truncated"`
	// Error explains engine_error outcomes and anything unusual.
	Error string `json:"error,omitempty"`
	Image string `json:"image"`
	// ImageID is the exact image the sandbox was made from, when known.
	ImageID   string    `json:"image_id,omitempty"`
	Container string    `json:"container,omitempty"`
	StartedAt time.Time `json:"started_at"`
	EndedAt   time.Time `json:"ended_at"`
	Phases    Phases    `json:"phases"`
	Usage     Usage     `json:"usage"`
	// Limits are the limits that were in force.
	Limits Limits `json:"limits"`
	// Enforcement says how limits the engine has no setting for were
	// enforced (on Kubernetes: the pids cap, ulimits, noexec mounts and the
	// network policy, by cronium on the node); empty where the engine
	// enforces every limit itself.
	Enforcement []string `json:"enforcement,omitempty"`
	// Audit is what the strict profile would have stopped (Spec.Audit).
	Audit *Audit `json:"audit,omitempty"`
	// Kept says the sandbox was kept for debugging (Spec.KeepFailed).
	Kept *Kept `json:"kept,omitempty"`
	// Trail is what the agent saw happen during the run (starts, stops,
	// signals, the exit), with the time since the start.
	Trail []string `json:"trail,omitempty"`
	// OOMReport is the kernel's report of an out-of-memory kill in the
	// sandbox, where the engine could read it.
	OOMReport string `json:"oom_report,omitempty"`
	// Timeline is the run's usage samples (at most 60, evenly spread).
	Timeline []UsageSample `json:"timeline,omitempty"`
	// Hints are the optimisations this run's usage suggests (see Hints).
	Hints []Hint `json:"hints,omitempty"`
	// NetworkPolicy is the network policy that was in force.
	NetworkPolicy *NetworkPolicy `json:"network_policy,omitempty"`
	// Output is the output value found by the stdio or files data mode (the
	// api mode stores it through RuntimeAPI as the script calls output).
	Output json.RawMessage `json:"output,omitempty"`
	// OutputError says why such an output was not stored.
	OutputError string `json:"output_error,omitempty"`
}

// RuntimeCall is one runtime API call from a script (output, variables,
// conditions), forwarded by the agent. Input and event are answered in the
// sandbox from Spec.Input and Spec.Context.
type RuntimeCall struct {
	ExecutionID string
	Op          string
	Key         string
	Value       json.RawMessage
}

// RuntimeAPI answers scripts' runtime calls. Implementations are safe for concurrent use.
type RuntimeAPI interface {
	Call(ctx context.Context, c RuntimeCall) (json.RawMessage, error)
}

// Data modes: how an execution's input and output travel.
const (
	DataAPI   = "api"   // helpers over the runtime API socket (default)
	DataStdio = "stdio" // input on stdin; the last stdout line starting with "::cronium-output::" is the output
	DataFiles = "files" // input in /workspace/input.json; output read from /workspace/output.json
)

// MaxOutputBytes caps an execution's output value.
const MaxOutputBytes = 1 << 20

// MaxInputBytes caps an execution's input value.
const MaxInputBytes = 1 << 20
