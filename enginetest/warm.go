package enginetest

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	cronium "github.com/cronium/executor"
)

// Warm sandboxes: what pools hold, reset between runs of one user.
func init() {
	add("ReusedSandboxIsClean", testReusedSandboxIsClean)
	add("PrewarmedSandboxRunsFilesAndSecrets", testPrewarmedSandboxRunsFilesAndSecrets)
	add("PausedSandboxResumesForItsRun", testPausedSandboxResumesForItsRun)
	add("WarmRunTakesItsOwnTimeout", testWarmRunTakesItsOwnTimeout)
}

type nopRuntime struct{}

func (nopRuntime) Call(context.Context, cronium.RuntimeCall) (json.RawMessage, error) {
	return json.RawMessage("false"), nil
}

// newSandbox makes a warm sandbox for template, closed at the test's end.
func newSandbox(t *testing.T, template cronium.Spec) cronium.Sandbox {
	t.Helper()
	if !eng.Capabilities().Warm {
		t.Fatalf("the %s engine has no warm sandboxes", eng.Capabilities().Name)
	}
	sb, err := eng.NewSandbox(context.Background(), template, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sb.Close)
	return sb
}

func testReusedSandboxIsClean(t *testing.T) {
	ctx := context.Background()
	sb := newSandbox(t, cronium.Spec{Language: cronium.Bash})
	run := func(script string, mod func(*cronium.Spec)) (cronium.Result, string) {
		var out strings.Builder
		spec := cronium.Spec{ID: newID(), Language: cronium.Bash, Script: []byte(script), Output: func(c cronium.OutputChunk) { out.Write(c.Data) }}
		if mod != nil {
			mod(&spec)
		}
		return sb.Run(ctx, spec), out.String()
	}
	// Run N leaves everything it can behind.
	res, out := run(`
echo "token=$CRONIUM_RUNTIME_TOKEN"
echo leftover > /tmp/x; echo shm > /dev/shm/shmleak; mkdir -p /workspace/d/e; echo y > /workspace/d/e/y; chmod 500 /workspace/d
( setsid bash -c 'trap "" TERM HUP; exec sleep 1000' & )
export LEAK=1; echo "export LEAK=1" >> ~/.bashrc 2>/dev/null
cat /run/secrets/tok
`, func(s *cronium.Spec) {
		s.Secrets = map[string][]byte{"tok": []byte("abcd1234secret")}
		s.Runtime = nopRuntime{}
	})
	if res.Outcome != cronium.Succeeded || !strings.Contains(out, "***") {
		t.Fatalf("run N: %s %s %q", res.Outcome, res.Error, out)
	}
	oldToken := strings.TrimSpace(strings.TrimPrefix(strings.Split(out, "\n")[0], "token="))
	if err := sb.Reset(ctx); err != nil {
		t.Fatalf("reset: %v", err)
	}
	// Run N+1 sees none of it.
	res2, out2 := run(`
ls -A /tmp /dev/shm /workspace /run/secrets | grep -v '^/' | grep -v '^$' | grep -v '^script.sh$' || true
echo "daemons=$(for p in /proc/[0-9]*; do tr '\0' ' ' < $p/cmdline 2>/dev/null; echo; done | grep -c 'sleep 10[0]0')"
echo "leak=[${LEAK:-}]"
CRONIUM_RUNTIME_TOKEN=`+oldToken+` cronium_getCondition 2>&1 || echo "old token refused"
`, func(s *cronium.Spec) { s.Runtime = nopRuntime{} })
	if res2.Outcome != cronium.Succeeded {
		t.Fatalf("run N+1: %s %s %q", res2.Outcome, res2.Error, out2)
	}
	if res2.Container != res.Container {
		t.Fatalf("run N+1 ran in %s, not the reused %s", res2.Container, res.Container)
	}
	lines := map[string]bool{}
	for _, l := range strings.Split(out2, "\n") {
		lines[strings.TrimSpace(l)] = true
	}
	for _, bad := range []string{"x", "d", "tok", "shmleak", "leak=[1]"} {
		if lines[bad] {
			t.Errorf("run N+1 sees %q from run N:\n%s", bad, out2)
		}
	}
	for _, want := range []string{"old token refused", "leak=[]", "daemons=0"} {
		if !lines[want] {
			t.Errorf("run N+1 output lacks %q:\n%s", want, out2)
		}
	}
}

// A warm run gets what a cold run gets: its files next to the script, its
// secrets as files only the script user reads, its input.
func testPrewarmedSandboxRunsFilesAndSecrets(t *testing.T) {
	ctx := context.Background()
	sb := newSandbox(t, cronium.Spec{Language: cronium.Python})
	var out strings.Builder
	res := sb.Run(ctx, cronium.Spec{ID: newID(), Language: cronium.Python, Input: []byte("in"),
		Script:  []byte("import sys, os, helper\nprint(helper.X, sys.stdin.read(), open('/run/secrets/k').read() == 'v4lue', oct(os.stat('/run/secrets').st_mode & 0o777))"),
		Files:   map[string][]byte{"helper.py": []byte("X = 'from-helper'\n")},
		Secrets: map[string][]byte{"k": []byte("v4lue")},
		Output:  func(c cronium.OutputChunk) { out.Write(c.Data) }})
	if res.Outcome != cronium.Succeeded || res.Phases.Create != 0 || out.String() != "from-helper in True 0o700\n" {
		t.Fatalf("outcome %s (%s), create phase %s, output %q: want the files, input and secret of the run", res.Outcome, res.Error, res.Phases.Create, out.String())
	}
}

func testPausedSandboxResumesForItsRun(t *testing.T) {
	ctx := context.Background()
	sb := newSandbox(t, cronium.Spec{Language: cronium.Bash})
	err := sb.Pause(ctx)
	if !eng.Capabilities().Pause {
		if !errors.Is(err, cronium.ErrUnsupported) {
			t.Fatalf("pause on an engine that cannot: %v, want ErrUnsupported", err)
		}
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	res := sb.Run(ctx, cronium.Spec{ID: newID(), Language: cronium.Bash, Script: []byte("echo awake")})
	if res.Outcome != cronium.Succeeded {
		t.Fatalf("run of a paused sandbox: %s %s", res.Outcome, res.Error)
	}
	// Pause again and close while paused: nothing is left behind (Main checks).
	if err := sb.Pause(ctx); err != nil {
		t.Fatal(err)
	}
}

func testWarmRunTakesItsOwnTimeout(t *testing.T) {
	ctx := context.Background()
	tmpl := cronium.Spec{Language: cronium.Bash}
	tmpl.Limits.Timeout = 2 * time.Second
	sb := newSandbox(t, tmpl)
	spec := cronium.Spec{ID: newID(), Language: cronium.Bash, Script: []byte("sleep 3; echo done")}
	spec.Limits.Timeout = 10 * time.Second
	res := sb.Run(ctx, spec)
	if res.Outcome != cronium.Succeeded || res.Limits.Timeout != 10*time.Second {
		t.Errorf("outcome %s with limits %v: the run must keep its own 10s timeout, not the sandbox creator's 2s", res.Outcome, res.Limits.Timeout)
	}
}
