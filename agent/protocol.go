package agent

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"
)

// Paths inside the sandbox. Engines mount the agent binary at BinaryPath and
// the per-sandbox host directory at HostDir.
const (
	// BinaryPath is where the agent binary is mounted, read-only.
	BinaryPath = "/.cronium/agent"
	// HostDir is where the per-sandbox host directory is mounted.
	HostDir = "/.cronium/host"
	// SocketName is the unix socket the host listens on inside HostDir.
	SocketName = "agent.sock"
	// Workspace is the script's working directory, a tmpfs.
	Workspace = "/workspace"
	// RuntimeDir holds the runtime API socket (a tmpfs).
	RuntimeDir = "/run/cronium"
	// APISocket is the runtime API socket the helpers call.
	APISocket = RuntimeDir + "/api.sock"
	// SecretsDir holds one file per secret, on a tmpfs owned by the script user.
	SecretsDir = "/run/secrets"
	// LibDir is where the helper sources are mounted, read-only.
	LibDir = "/.cronium/lib"
	// OutputPrefix marks the stdout line that carries the output in the stdio data mode.
	OutputPrefix = "::cronium-output::"
)

// FrameType says what a frame carries.
type FrameType uint8

// Frame types.
const (
	FrameHello   FrameType = 1  // agent -> host, JSON Hello
	FrameStart   FrameType = 2  // host -> agent, JSON Start
	FrameCancel  FrameType = 3  // host -> agent, empty
	FrameOutput  FrameType = 4  // agent -> host, [stream][seq][bytes]
	FrameReport  FrameType = 5  // agent -> host, JSON Report
	FrameAck     FrameType = 6  // host -> agent, empty: the report arrived, the run may be forgotten
	FrameCall    FrameType = 7  // agent -> host, JSON Call: a runtime API call the host answers
	FrameReply   FrameType = 8  // host -> agent, JSON Reply to a Call
	FrameReset   FrameType = 9  // host -> agent, JSON Reset: wipe the sandbox for its next run
	FrameClean   FrameType = 10 // agent -> host, JSON Clean: how the reset went
	FramePrepare FrameType = 11 // host -> agent, JSON Prepare: start the next run's interpreter now
	FrameUsage   FrameType = 12 // agent -> host, JSON Sample: the run's usage so far, every SampleEvery
	FrameKeep    FrameType = 13 // host -> agent, JSON Reset: keep the sandbox for debugging (answered by FrameClean)
)

// SampleEvery is how often the agent samples a running script's usage.
const SampleEvery = time.Second

// MaxFrame is the largest payload accepted, which bounds script plus input.
const MaxFrame = 32 << 20

// ProtocolVersion changes whenever frames or messages change incompatibly.
// Version 2 added resumed hellos and FrameAck; version 5 added FramePrepare
// and Report.Prestart; version 6 added FrameUsage and the report's I/O,
// pids and throttling.
const ProtocolVersion = 6

// Hello is the agent's first frame on every connection.
type Hello struct {
	Protocol int `json:"protocol"`
	PID      int `json:"pid"`
	// Resume is set when the agent redialled a host that went away during a
	// run: it then writes that run's output (again, from up to its last
	// MiB already written) and, once the run ended, its report, without a new Start.
	Resume bool `json:"resume,omitempty"`
	// ExecutionID is the run being resumed.
	ExecutionID string `json:"execution_id,omitempty"`
}

// Start asks the agent to run one script.
type Start struct {
	ExecutionID string `json:"execution_id"`
	// NoSamples turns the run's usage samples (FrameUsage) off.
	NoSamples  bool   `json:"no_samples,omitempty"`
	ScriptName string `json:"script_name"`
	Script     []byte `json:"script"`
	// Files are written next to the script, by relative path (checked by the host and again here).
	Files       map[string][]byte `json:"files,omitempty"`
	Input       []byte            `json:"input"`
	Command     []string          `json:"command"` // interpreter argv; the script path is already in it
	Env         []string          `json:"env"`
	UID         int               `json:"uid"`
	GID         int               `json:"gid"`
	AmbientCaps []string          `json:"ambient_caps,omitempty"`
	TimeoutMS   int64             `json:"timeout_ms"`
	GraceMS     int64             `json:"grace_ms"`
	OutputCap   int64             `json:"output_cap"`
	KillOnCap   bool              `json:"kill_on_cap"`
	// Token authenticates the script's runtime API calls; it dies with the run.
	Token string `json:"token,omitempty"`
	// Context is what the event op returns (event and execution metadata).
	Context []byte `json:"context,omitempty"`
	// Secrets are written as files under SecretsDir, readable only by the script user.
	Secrets map[string][]byte `json:"secrets,omitempty"`
	// DataMode is api (default), stdio or files: how input and output travel.
	DataMode string `json:"data_mode,omitempty"`
	// MaxOutput caps the output value of the stdio and files modes.
	MaxOutput int64 `json:"max_output,omitempty"`
}

// Reset asks an idle agent to make its sandbox as fresh as a new one.
type Reset struct {
	UID int `json:"uid"`
	GID int `json:"gid"`
	// KeepWorkspace keeps the script's files in the workspace (the user
	// strategy's persistent workspace); only the agent's own files go.
	KeepWorkspace bool `json:"keep_workspace,omitempty"`
}

// Prepare asks an idle agent to start the interpreter of the sandbox's
// next run ahead of it, with the helpers loaded, as the script user; the
// next Start then hands it the run instead of starting one (see
// prestart.go). What it names is what that Start will carry, less the
// per-run values: a Start that differs where it matters at the
// interpreter's start-up runs as if nothing had been prepared. The agent
// does not answer: the next Report says what became of it (Prestart).
type Prepare struct {
	// Command is the interpreter argv of the next run, script path included
	// (the script's name is the language's, known in advance).
	Command []string `json:"command"`
	// Env is the run's environment without its per-run values (the token,
	// the execution id, the timeout).
	Env         []string `json:"env"`
	UID         int      `json:"uid"`
	GID         int      `json:"gid"`
	AmbientCaps []string `json:"ambient_caps,omitempty"`
}

// Clean reports a reset: Clean is false when anything of the last run could
// not be removed (the host then recycles the sandbox).
type Clean struct {
	Clean   bool   `json:"clean"`
	Problem string `json:"problem,omitempty"`
}

// Call is a runtime API call the agent forwards to the host.
type Call struct {
	ID    uint64          `json:"id"`
	Op    string          `json:"op"`
	Key   string          `json:"key,omitempty"`
	Value json.RawMessage `json:"value,omitempty"`
}

// Reply answers a Call; it is also the wire form of the in-container socket's responses.
type Reply struct {
	ID    uint64          `json:"id,omitempty"`
	OK    bool            `json:"ok"`
	Value json.RawMessage `json:"value,omitempty"`
	Error string          `json:"error,omitempty"`
	// Code is the kind of a refusal the caller can act on: "rate_limited"
	// (the helpers wait and try again).
	Code string `json:"code,omitempty"`
}

// Report is the agent's account of one execution.
type Report struct {
	Outcome     string  `json:"outcome"`
	ExitCode    int     `json:"exit_code"`
	Signal      string  `json:"signal,omitempty"`
	Truncated   bool    `json:"truncated"`
	CPUSeconds  float64 `json:"cpu_seconds"`
	PeakMemory  int64   `json:"peak_memory"`
	OOMKills    int64   `json:"oom_kills"`
	OutputBytes int64   `json:"output_bytes"`
	KeptBytes   int64   `json:"kept_bytes"`
	RunNS       int64   `json:"run_ns"`
	Error       string  `json:"error,omitempty"`
	// Output is the output value found by the stdio or files data mode.
	Output json.RawMessage `json:"output,omitempty"`
	// OutputError says why such an output was not taken (too large, not JSON).
	OutputError string `json:"output_error,omitempty"`
	// Prestart says, when an interpreter was prepared for this run, whether
	// the run used it ("used") or why it started afresh (also why a Prepare
	// left nothing prepared).
	Prestart string `json:"prestart,omitempty"`
	// IORead and IOWrite are the bytes the script and its children read
	// from and wrote to block devices (the agent's own /proc/self/io after
	// reaping them: tmpfs is not counted).
	IORead  int64 `json:"io_read,omitempty"`
	IOWrite int64 `json:"io_write,omitempty"`
	// PidsPeak is the most processes and threads the sandbox had at once
	// (the cgroup's pids.peak, the agent's own included; 0 when unknown).
	PidsPeak int64 `json:"pids_peak,omitempty"`
	// ThrottledNS is how long the script was held back by its CPU limit.
	ThrottledNS int64 `json:"throttled_ns,omitempty"`
	// Trail is what the agent saw happen, with the time since the start:
	// the start, stops and why, signals, the exit.
	Trail []string `json:"trail,omitempty"`
}

// Sample is a running script's usage so far, from the sandbox's cgroup.
type Sample struct {
	// ElapsedNS is the time since the script started.
	ElapsedNS int64 `json:"elapsed_ns"`
	// CPUNS is the CPU time the sandbox used since the script started.
	CPUNS int64 `json:"cpu_ns"`
	// Memory is the sandbox's memory use now, PeakMemory its highest so far.
	Memory     int64 `json:"memory"`
	PeakMemory int64 `json:"peak_memory"`
	// IORead and IOWrite are block I/O bytes since the script started (buffered
	// writes count when written back).
	IORead  int64 `json:"io_read"`
	IOWrite int64 `json:"io_write"`
	// Pids counts the sandbox's processes and threads now.
	Pids int64 `json:"pids"`
	// ThrottledNS is how long the CPU limit held the sandbox back since the script started.
	ThrottledNS int64 `json:"throttled_ns"`
}

// WriteFrame writes one frame. It is not safe for concurrent use on one writer.
func WriteFrame(w io.Writer, t FrameType, payload []byte) error {
	if len(payload) > MaxFrame {
		return fmt.Errorf("frame of %d bytes exceeds the %d byte maximum", len(payload), MaxFrame)
	}
	var hdr [5]byte
	hdr[0] = byte(t)
	binary.BigEndian.PutUint32(hdr[1:], uint32(len(payload)))
	if _, err := w.Write(hdr[:]); err != nil {
		return err
	}
	_, err := w.Write(payload)
	return err
}

// WriteJSON writes v as the JSON payload of a frame.
func WriteJSON(w io.Writer, t FrameType, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode frame %d: %w", t, err)
	}
	return WriteFrame(w, t, b)
}

// ReadFrame reads one frame.
func ReadFrame(r io.Reader) (FrameType, []byte, error) {
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(hdr[1:])
	if n > MaxFrame {
		return 0, nil, fmt.Errorf("frame of %d bytes exceeds the %d byte maximum", n, MaxFrame)
	}
	payload := make([]byte, n)
	if _, err := io.ReadFull(r, payload); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return 0, nil, err
	}
	return FrameType(hdr[0]), payload, nil
}

// EncodeOutput builds an Output payload.
func EncodeOutput(stream uint8, seq uint64, data []byte) []byte {
	b := make([]byte, 9+len(data))
	b[0] = stream
	binary.BigEndian.PutUint64(b[1:9], seq)
	copy(b[9:], data)
	return b
}

// DecodeOutput splits an Output payload.
func DecodeOutput(p []byte) (stream uint8, seq uint64, data []byte, err error) {
	if len(p) < 9 {
		return 0, 0, nil, fmt.Errorf("output frame of %d bytes is shorter than its 9 byte header", len(p))
	}
	return p[0], binary.BigEndian.Uint64(p[1:9]), p[9:], nil
}
