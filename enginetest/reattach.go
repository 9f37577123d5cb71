package enginetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	cronium "github.com/cronium/executor"
)

// Re-attach after the host process died (killed with SIGKILL, for real).
func init() {
	add("ReattachAfterHostCrash", func(t *testing.T) { testReattachAfterHostCrash(t, false) })
	add("ReattachWarmAfterHostCrash", func(t *testing.T) { testReattachAfterHostCrash(t, true) })
	add("ReattachAfterScriptFinishedWhileAway", testReattachAfterScriptFinishedWhileAway)
	add("ReattachStoppedSandboxIsLost", testReattachStoppedSandboxIsLost)
	add("ReattachThenCancel", testReattachThenCancel)
	add("ReattachUnknownIsNotFound", testReattachUnknownIsNotFound)
	add("SIGTERMToAgentIsAnEngineStop", testSIGTERMToAgentIsAnEngineStop)
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

func reattach(t *testing.T, ctx context.Context, cr crashedRun, after uint64, output func(cronium.OutputChunk)) cronium.Result {
	t.Helper()
	res, err := eng.Reattach(ctx, cronium.Reattach{ExecutionID: cr.id, Sandbox: cr.sandbox, AfterSeq: after, Output: output})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func testReattachAfterHostCrash(t *testing.T, warm bool) {
	cr := runThenCrash(t, `for i in $(seq 1 30); do echo "line $i"; sleep 0.1; done`, 5, warm)
	if warm && cr.sandbox == "" {
		t.Fatal("the warm run did not say its sandbox (Spec.Attached)")
	}
	last := cr.before[len(cr.before)-1].Seq
	var after []cronium.OutputChunk
	res := reattach(t, context.Background(), cr, last, func(c cronium.OutputChunk) { after = append(after, c) })
	t.Logf("%d chunks before the crash (last seq %d), %d after reattach in %s", len(cr.before), last, len(after), res.Phases.Run)
	all := joinOutput(t, append(slices.Clone(cr.before), after...))
	wantOutcome(t, res, all, cronium.Succeeded)
	if res.ExitCode != 0 {
		t.Errorf("exit code %d, want 0", res.ExitCode)
	}
	if all != numbered(30) {
		t.Errorf("output before and after the crash:\n%s\nwant every line once, in order", all)
	}
	if res.Container != cr.ref || res.Image != opts.Images[cronium.Bash] {
		t.Errorf("sandbox %q image %q, want %q and the bash image %q", res.Container, res.Image, cr.ref, opts.Images[cronium.Bash])
	}
	if res.Phases.Run <= 0 || res.Usage.OutputBytes != int64(len(numbered(30))) {
		t.Errorf("phases %+v usage %+v: want run time and the report's usage", res.Phases, res.Usage)
	}
	if !warm && res.Limits.Timeout != 30*time.Second {
		t.Errorf("limits %+v: want the limits in force", res.Limits)
	}
	checkGone(t, cr.id)
}

func testReattachAfterScriptFinishedWhileAway(t *testing.T) {
	cr := runThenCrash(t, `for i in $(seq 1 5); do echo "line $i"; sleep 0.1; done; exit 0`, 1, false)
	time.Sleep(2 * time.Second) // the script ends about 0.5s in; its report waits in the agent
	var after []cronium.OutputChunk
	res := reattach(t, context.Background(), cr, cr.before[len(cr.before)-1].Seq, func(c cronium.OutputChunk) { after = append(after, c) })
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

func testReattachStoppedSandboxIsLost(t *testing.T) {
	cr := runThenCrash(t, `echo started; sleep 60`, 1, false)
	if err := cfg.Kill(cr.ref, "KILL"); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		s, ok := sandboxOf(t, cr.id)
		if !ok || s.State != "running" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("sandbox still running 10s after SIGKILL")
		}
	}
	res, err := eng.Reattach(context.Background(), cronium.Reattach{ExecutionID: cr.id, AfterSeq: 1})
	if err != nil && !errors.Is(err, cronium.ErrNotFound) {
		t.Fatal(err)
	}
	if err == nil && (res.Outcome != cronium.EngineError || !strings.HasPrefix(res.Error, "lost: ")) {
		t.Errorf("outcome %s error %q, want engine_error starting \"lost: \"", res.Outcome, res.Error)
	}
	checkGone(t, cr.id)
}

func testReattachThenCancel(t *testing.T) {
	cr := runThenCrash(t, `echo started; sleep 60`, 1, false)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	res := reattach(t, ctx, cr, 1, nil)
	if res.Outcome != cronium.Cancelled {
		t.Errorf("outcome %s (%s), want cancelled", res.Outcome, res.Error)
	}
	if res.Phases.Run > 10*time.Second {
		t.Errorf("cancel took %s, want about the grace period", res.Phases.Run)
	}
	checkGone(t, cr.id)
}

func testReattachUnknownIsNotFound(t *testing.T) {
	_, err := eng.Reattach(context.Background(), cronium.Reattach{ExecutionID: "never-ran-" + newID()})
	if !errors.Is(err, cronium.ErrNotFound) {
		t.Errorf("err %v, want ErrNotFound", err)
	}
}

// SIGTERM to the agent is the engine stopping the sandbox (a restart
// without live-restore, `docker stop`): the run ends engine_error saying
// so, never a "cancelled" nobody asked for (the retry policy applies).
func testSIGTERMToAgentIsAnEngineStop(t *testing.T) {
	spec := cronium.Spec{ID: "term-" + newID(), Language: cronium.Bash, Script: []byte("echo started; sleep 60")}
	spec.Limits.Grace = time.Second
	signalled := false
	spec.Output = func(cronium.OutputChunk) {
		if signalled {
			return
		}
		signalled = true
		s, ok := sandboxOf(t, spec.ID)
		if !ok {
			t.Errorf("no sandbox of %s while it runs", spec.ID)
			return
		}
		if err := cfg.Kill(s.Ref, "TERM"); err != nil {
			t.Errorf("signal the agent: %v", err)
		}
	}
	res, err := eng.Run(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	if res.Outcome != cronium.EngineError || !strings.Contains(res.Error, "engine stopped the sandbox") {
		t.Errorf("outcome %s (%q), want engine_error saying the engine stopped it", res.Outcome, res.Error)
	}
	checkGone(t, spec.ID)
}
