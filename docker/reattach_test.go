package docker

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"

	cronium "github.com/cronium/executor"
)

// abandon simulates kill -9 of the host process during Run: the listener
// and the agent connection go away, the socket file stays behind, and Run
// returns without removing the container or the sandbox directory.
func (s *sandbox) abandon() {
	s.ln.SetUnlinkOnClose(false)
	s.abandoned.Store(true)
	s.ln.Close()
	s.sess.Close()
}

// hookedEngine is testEngine with its own onRun hook.
func hookedEngine(onRun func(*sandbox)) *Engine {
	return &Engine{cfg: testEngine.cfg, cli: testEngine.cli, agentPath: testEngine.agentPath, libPath: testEngine.libPath, log: testEngine.log, onRun: onRun}
}

// crashedRun is an execution whose host "died" mid-run.
type crashedRun struct {
	id        string
	container string
	before    []cronium.OutputChunk
}

// runThenCrash runs a bash script and, once n output chunks arrived,
// abandons it as a killed host would. It returns once Run has returned,
// with the container still running.
func runThenCrash(t *testing.T, script string, n int) crashedRun {
	t.Helper()
	id := "crash-" + NewID()
	t.Cleanup(func() { removeExecution(t, id) })
	sandboxes := make(chan *sandbox, 1)
	eng := hookedEngine(func(s *sandbox) { sandboxes <- s })

	var before []cronium.OutputChunk
	enough := make(chan struct{})
	spec := cronium.Spec{ID: id, Language: cronium.Bash, Script: []byte(script)}
	spec.Limits.Timeout = 30 * time.Second
	spec.Output = func(c cronium.OutputChunk) {
		if before = append(before, c); len(before) == n {
			close(enough)
		}
	}
	done := make(chan cronium.Result, 1)
	go func() {
		res, _ := eng.Run(context.Background(), spec)
		done <- res
	}()
	var sb *sandbox
	select {
	case sb = <-sandboxes:
	case res := <-done:
		t.Fatalf("run ended before the agent said hello: %s %s", res.Outcome, res.Error)
	}
	select {
	case <-enough:
	case res := <-done:
		t.Fatalf("run ended before %d chunks arrived: %s %s", n, res.Outcome, res.Error)
	}
	sb.abandon()
	<-done
	return crashedRun{id: id, container: sb.id, before: before}
}

// removeExecution removes whatever a failed test left of an execution.
func removeExecution(t *testing.T, id string) {
	ctx := context.Background()
	list, err := testEngine.cli.ContainerList(ctx, client.ContainerListOptions{All: true,
		Filters: client.Filters{}.Add("label", LabelExecution+"="+id)})
	if err != nil {
		t.Errorf("list containers: %v", err)
	}
	for _, c := range list.Items {
		testEngine.cli.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{Force: true})
	}
	os.RemoveAll(filepath.Join(testEngine.cfg.StateDir, "s", sandboxName(id)))
}

// checkGone fails unless the execution's container and sandbox dir are gone.
func checkGone(t *testing.T, id string) {
	t.Helper()
	list, err := testEngine.cli.ContainerList(context.Background(), client.ContainerListOptions{All: true,
		Filters: client.Filters{}.Add("label", LabelExecution+"="+id)})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 0 {
		t.Errorf("%d container(s) left after reattach", len(list.Items))
	}
	if _, err := os.Stat(filepath.Join(testEngine.cfg.StateDir, "s", sandboxName(id))); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("sandbox dir left after reattach: %v", err)
	}
}

// numbered is what `for i in $(seq 1 n); do echo "line $i"; done` writes.
func numbered(n int) string {
	var b strings.Builder
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, "line %d\n", i)
	}
	return b.String()
}

// joinOutput checks that chunks are in strictly increasing seq order and
// returns their data.
func joinOutput(t *testing.T, chunks []cronium.OutputChunk) string {
	t.Helper()
	var b strings.Builder
	for i, c := range chunks {
		if i > 0 && c.Seq <= chunks[i-1].Seq {
			t.Errorf("chunk %d has seq %d after seq %d: duplicate or out of order", i, c.Seq, chunks[i-1].Seq)
		}
		b.Write(c.Data)
	}
	return b.String()
}

func TestReattachAfterHostCrash(t *testing.T) {
	t.Parallel()
	cr := runThenCrash(t, `for i in $(seq 1 30); do echo "line $i"; sleep 0.1; done`, 5)
	ids, err := testEngine.Running(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(ids, cr.id) {
		t.Errorf("Running() = %v, want it to list %s", ids, cr.id)
	}
	last := cr.before[len(cr.before)-1].Seq
	var after []cronium.OutputChunk
	res, err := testEngine.Reattach(context.Background(), cr.id, last, func(c cronium.OutputChunk) { after = append(after, c) })
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d chunks before the crash (last seq %d), %d after reattach in %s", len(cr.before), last, len(after), res.Phases.Run)
	all := joinOutput(t, append(slices.Clone(cr.before), after...))
	wantOutcome(t, res, all, cronium.Succeeded)
	if res.ExitCode != 0 {
		t.Errorf("exit code %d, want 0", res.ExitCode)
	}
	if all != numbered(30) {
		t.Errorf("output before and after the crash:\n%s\nwant every line once, in order", all)
	}
	if res.Container != cr.container || res.Image != testEngine.cfg.Images[cronium.Bash] {
		t.Errorf("container %q image %q, want %q and the bash image", res.Container, res.Image, cr.container)
	}
	if res.Phases.Run <= 0 || res.Usage.OutputBytes != int64(len(numbered(30))) || res.Limits.Timeout != 30*time.Second {
		t.Errorf("phases %+v usage %+v limits %+v: want run time, the report's usage and the limits in force", res.Phases, res.Usage, res.Limits)
	}
	checkGone(t, cr.id)
}

func TestReattachAfterScriptFinishedWhileAway(t *testing.T) {
	t.Parallel()
	cr := runThenCrash(t, `for i in $(seq 1 5); do echo "line $i"; sleep 0.1; done; exit 0`, 1)
	time.Sleep(2 * time.Second) // the script ends about 0.5s in; its report waits in the agent
	var after []cronium.OutputChunk
	res, err := testEngine.Reattach(context.Background(), cr.id, cr.before[len(cr.before)-1].Seq, func(c cronium.OutputChunk) { after = append(after, c) })
	if err != nil {
		t.Fatal(err)
	}
	all := joinOutput(t, append(slices.Clone(cr.before), after...))
	wantOutcome(t, res, all, cronium.Succeeded)
	if all != numbered(5) {
		t.Errorf("output before and after the crash:\n%s\nwant every line once, in order", all)
	}
	if res.Phases.Run > 3*time.Second {
		t.Errorf("reattach took %s, want the kept report at once", res.Phases.Run)
	}
	checkGone(t, cr.id)
}

func TestReattachStoppedContainerIsLost(t *testing.T) {
	t.Parallel()
	cr := runThenCrash(t, `echo started; sleep 60`, 1)
	ctx := context.Background()
	if _, err := testEngine.cli.ContainerKill(ctx, cr.container, client.ContainerKillOptions{Signal: "KILL"}); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		r, err := testEngine.cli.ContainerInspect(ctx, cr.container, client.ContainerInspectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if !r.Container.State.Running {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("container still running 10s after SIGKILL")
		}
	}
	res, err := testEngine.Reattach(ctx, cr.id, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Outcome != cronium.EngineError || !strings.HasPrefix(res.Error, "lost: ") {
		t.Errorf("outcome %s error %q, want engine_error starting \"lost: \"", res.Outcome, res.Error)
	}
	checkGone(t, cr.id)
}

func TestReattachThenCancel(t *testing.T) {
	t.Parallel()
	cr := runThenCrash(t, `echo started; sleep 60`, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	res, err := testEngine.Reattach(ctx, cr.id, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Outcome != cronium.Cancelled {
		t.Errorf("outcome %s (%s), want cancelled", res.Outcome, res.Error)
	}
	if res.Phases.Run > 10*time.Second {
		t.Errorf("cancel took %s, want about the grace period", res.Phases.Run)
	}
	checkGone(t, cr.id)
}

func TestReattachUnknownIsNotFound(t *testing.T) {
	t.Parallel()
	_, err := testEngine.Reattach(context.Background(), "never-ran-"+NewID(), 0, nil)
	if !errors.Is(err, cronium.ErrNotFound) {
		t.Errorf("err %v, want ErrNotFound", err)
	}
}

// SIGTERM to the agent is the engine stopping the sandbox (a restart
// without live-restore, `docker stop`): the run ends engine_error saying
// so, never a "cancelled" nobody asked for (the retry policy applies).
func TestSIGTERMToAgentIsAnEngineStop(t *testing.T) {
	t.Parallel()
	var container string
	eng := hookedEngine(func(s *sandbox) { container = s.id }) // before any output, on Run's goroutine
	spec := cronium.Spec{ID: "term-" + NewID(), Language: cronium.Bash, Script: []byte("echo started; sleep 60")}
	spec.Limits.Grace = time.Second
	signalled := false
	spec.Output = func(cronium.OutputChunk) {
		if !signalled {
			signalled = true
			if _, err := testEngine.cli.ContainerKill(context.Background(), container, client.ContainerKillOptions{Signal: "TERM"}); err != nil {
				t.Errorf("signal the agent: %v", err)
			}
		}
	}
	res, err := eng.Run(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	if res.Outcome != cronium.EngineError || !strings.Contains(res.Error, "container engine stopped the sandbox") {
		t.Errorf("outcome %s (%q), want engine_error saying the engine stopped it", res.Outcome, res.Error)
	}
	checkGone(t, spec.ID)
}
