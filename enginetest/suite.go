// Package enginetest is the conformance suite every engine passes: the
// behaviour of the engine contract (cronium.Engine) tested against the
// real engine, once for all of them. An engine's test package runs it:
//
//	func TestMain(m *testing.M) { os.Exit(enginetest.Main(m, enginetest.Config{Engine: "podman"})) }
//	func TestConformance(t *testing.T) { enginetest.Run(t) }
//
// The tests use only the contract, plus Config.Kill to inject a fault (an
// engine stopping a sandbox). A host crash is real: a child process (the
// test binary itself) runs the execution and is killed with SIGKILL, and
// the suite re-attaches from another engine value, as a restarted server
// does. Nothing is skipped: a missing engine or image fails the suite.
package enginetest

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	cronium "github.com/cronium/executor"
	"github.com/cronium/executor/images"
	"github.com/cronium/executor/internal/testenv"
)

// Config describes the engine under test.
type Config struct {
	// Engine is the registered engine name. Required.
	Engine string
	// Host is the engine's address; empty: its default.
	Host string
	// Kill sends signal ("KILL", "TERM") to the first process of the
	// sandbox the engine names ref: how the suite makes an engine stop a
	// sandbox. Required.
	Kill func(ref, signal string) error
	// Params are the engine's own options.
	Params map[string]string
	// Done, if set, is called once the suite ended, with the options the
	// engine was opened with (to stop what the engine started).
	Done func(o cronium.EngineOptions)
}

// The suite's state, set by Main.
var (
	cfg  Config
	opts cronium.EngineOptions
	eng  cronium.Engine
)

// KillWith is a Config.Kill through an engine's CLI: `cli kill --signal
// SIGNAL REF` (docker and podman take the same form).
func KillWith(cli string) func(ref, signal string) error {
	return func(ref, signal string) error {
		out, err := exec.Command(cli, "kill", "--signal", signal, ref).CombinedOutput()
		if err != nil {
			return fmt.Errorf("%s kill: %s", cli, strings.TrimSpace(string(out)))
		}
		return nil
	}
}

// Engine is the engine under test (for an engine's own extra tests).
func Engine() cronium.Engine { return eng }

// Options are the options the engine under test was opened with.
func Options() cronium.EngineOptions { return opts }

const (
	envChild = "CRONIUM_ENGINETEST_CHILD" // JSON childSpec: run it and print its output
	envOpts  = "CRONIUM_ENGINETEST_OPTS"  // JSON of the engine options
)

// Main opens the engine (building the agent), runs the tests, and fails
// unless every sandbox of the test node is gone at the end. In a child
// process started by a crash test it runs that test's execution instead.
func Main(m *testing.M, c Config) int {
	cfg = c
	if v := os.Getenv(envChild); v != "" {
		return child(v)
	}
	tmp, err := os.MkdirTemp("", "crt")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(tmp)
	if c.Done != nil {
		defer func() { c.Done(opts) }()
	}
	agentBin, err := testenv.BuildAgent(tmp)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	opts = cronium.EngineOptions{Host: c.Host, AgentPath: agentBin, StateDir: filepath.Join(tmp, "st"), Images: images.Refs(),
		NodeID: "test-" + newID()[:6], Params: c.Params}
	ctx := context.Background()
	eng, err = cronium.OpenEngine(ctx, "engine", c.Engine, opts)
	if err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: the %s engine tests need a running %s: %v\n", c.Engine, c.Engine, err)
		return 1
	}
	defer eng.Close()
	st := eng.Images()
	for l, ref := range images.Refs() {
		ok := false
		if st != nil {
			ok, err = st.ImageExists(ctx, ref)
		}
		if err != nil || !ok {
			fmt.Fprintf(os.Stderr, "FAIL: runtime image %s for %s is missing from %s (%v): run `make images` first\n", ref, l, c.Engine, err)
			return 1
		}
	}
	code := m.Run()
	// Nothing may be left behind: no sandbox of this node, no sandbox dir.
	// A finished cold sandbox may still be being removed by its engine.
	var left []cronium.SandboxInfo
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		if left, err = eng.Sandboxes(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "list sandboxes:", err)
			return 1
		}
		if len(left) == 0 || time.Now().After(deadline) {
			break
		}
	}
	if len(left) > 0 {
		fmt.Fprintf(os.Stderr, "FAIL: %d sandbox(es) left behind by the tests: %+v\n", len(left), left)
		return 1
	}
	if dirs, _ := os.ReadDir(filepath.Join(opts.StateDir, "s")); len(dirs) > 0 && code == 0 {
		fmt.Fprintf(os.Stderr, "FAIL: %d sandbox dir(s) left behind by the tests\n", len(dirs))
		return 1
	}
	return code
}

// Run runs the conformance suite against the engine Main opened.
func Run(t *testing.T) {
	if eng == nil {
		t.Fatal("enginetest.Run needs enginetest.Main in the package's TestMain")
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.f(t)
		})
	}
}

// tests are the suite's cases, by name, in the order they start.
var tests []struct {
	name string
	f    func(t *testing.T)
}

// add registers a case (from the files' init functions).
func add(name string, f func(t *testing.T)) {
	tests = append(tests, struct {
		name string
		f    func(t *testing.T)
	}{name, f})
}

func newID() string { return cronium.NewID() }

// run runs script and returns the result and its output, failing the test
// on a spec error.
func run(t *testing.T, lang cronium.Language, script string, mod func(*cronium.Spec)) (cronium.Result, string) {
	t.Helper()
	var out strings.Builder
	spec := cronium.Spec{ID: "t-" + newID(), Language: lang, Script: []byte(script)}
	spec.Limits.Timeout = 20 * time.Second
	spec.Output = func(c cronium.OutputChunk) { out.Write(c.Data) }
	if mod != nil {
		mod(&spec)
	}
	res, err := eng.Run(context.Background(), spec)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	return res, out.String()
}

func wantOutcome(t *testing.T, res cronium.Result, out string, want cronium.Outcome) {
	t.Helper()
	if res.Outcome != want {
		t.Fatalf("outcome %s (exit %d, error %q), want %s; output:\n%s", res.Outcome, res.ExitCode, res.Error, want, tail(out))
	}
}

func tail(s string) string {
	if len(s) > 2000 {
		return "..." + s[len(s)-2000:]
	}
	return s
}

// sandboxOf is the sandbox of execution id, if the engine lists one.
func sandboxOf(t *testing.T, id string) (cronium.SandboxInfo, bool) {
	t.Helper()
	list, err := eng.Sandboxes(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range list {
		if s.ID == id {
			return s, true
		}
	}
	return cronium.SandboxInfo{}, false
}

// checkGone fails unless the sandbox of execution id is gone (within a
// few seconds: a finished cold sandbox may be removed by its engine) and
// its directory too.
func checkGone(t *testing.T, id string) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if _, ok := sandboxOf(t, id); !ok {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("the sandbox of %s is still there 20s after its end", id)
			break
		}
	}
	dirs, _ := os.ReadDir(filepath.Join(opts.StateDir, "s"))
	_ = dirs // directory names are the engine's; Main checks that none is left at the end
}

// childSpec is the execution a crash test's child process runs.
type childSpec struct {
	ID     string          `json:"id"`
	Script string          `json:"script"`
	Warm   bool            `json:"warm"` // in a warm sandbox: its id is printed first
	Opts   json.RawMessage `json:"-"`
}

// childLine is one line a child prints: the warm sandbox's id, or a chunk.
type childLine struct {
	Sandbox string               `json:"sandbox,omitempty"`
	Chunk   *cronium.OutputChunk `json:"chunk,omitempty"`
}

// child runs one execution for a crash test in this process, printing
// its output, until the test kills it.
func child(v string) int {
	var cs childSpec
	if err := json.Unmarshal([]byte(v), &cs); err != nil {
		fmt.Fprintln(os.Stderr, "child spec:", err)
		return 2
	}
	var o cronium.EngineOptions
	if err := json.Unmarshal([]byte(os.Getenv(envOpts)), &o); err != nil {
		fmt.Fprintln(os.Stderr, "child options:", err)
		return 2
	}
	ctx := context.Background()
	e, err := cronium.OpenEngine(ctx, "engine", cfg.Engine, o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child engine:", err)
		return 2
	}
	enc := json.NewEncoder(os.Stdout)
	spec := cronium.Spec{ID: cs.ID, Language: cronium.Bash, Script: []byte(cs.Script)}
	spec.Limits.Timeout = 30 * time.Second
	spec.Output = func(c cronium.OutputChunk) { enc.Encode(childLine{Chunk: &c}) }
	if cs.Warm {
		sb, err := e.NewSandbox(ctx, cronium.Spec{Language: cronium.Bash, Limits: spec.Limits}, time.Hour)
		if err != nil {
			fmt.Fprintln(os.Stderr, "child sandbox:", err)
			return 2
		}
		spec.Attached = func(id string) error { return enc.Encode(childLine{Sandbox: id}) }
		sb.Run(ctx, spec)
	} else {
		e.Run(ctx, spec)
	}
	time.Sleep(time.Hour) // the test kills this process
	return 0
}

// crashedRun is an execution whose host process was killed mid-run.
type crashedRun struct {
	id      string
	sandbox string // the warm sandbox it ran in, if any
	ref     string // the engine's name for its sandbox
	before  []cronium.OutputChunk
}

// runThenCrash starts a child process that runs a bash script (in a warm
// sandbox if warm) and kills it with SIGKILL once n output chunks arrived,
// with the sandbox still running.
func runThenCrash(t *testing.T, script string, n int, warm bool) crashedRun {
	t.Helper()
	cr := crashedRun{id: "crash-" + newID()}
	spec, _ := json.Marshal(childSpec{ID: cr.id, Script: script, Warm: warm})
	o, _ := json.Marshal(opts)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envChild+"="+string(spec), envOpts+"="+string(o))
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cleanupExecution(cr) })
	killed := false
	defer func() {
		if !killed {
			cmd.Process.Kill()
		}
		cmd.Wait()
	}()
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	timer := time.AfterFunc(60*time.Second, func() { cmd.Process.Kill() })
	defer timer.Stop()
	for len(cr.before) < n && sc.Scan() {
		var l childLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("child printed %q: %v", sc.Text(), err)
		}
		if l.Sandbox != "" {
			cr.sandbox = l.Sandbox
		}
		if l.Chunk != nil {
			cr.before = append(cr.before, *l.Chunk)
		}
	}
	if len(cr.before) < n {
		t.Fatalf("the child ended before %d chunks arrived (got %d)", n, len(cr.before))
	}
	cmd.Process.Signal(syscall.SIGKILL)
	killed = true
	key := cr.id
	if cr.sandbox != "" {
		key = cr.sandbox
	}
	s, ok := sandboxOf(t, key)
	if !ok {
		t.Fatalf("no sandbox of %s after the crash", key)
	}
	cr.ref = s.Ref
	return cr
}

// cleanupExecution removes what a failed crash test left: re-attaching
// with a context that ends cancels the run and removes the sandbox.
func cleanupExecution(cr crashedRun) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	eng.Reattach(ctx, cronium.Reattach{ExecutionID: cr.id, Sandbox: cr.sandbox})
}
