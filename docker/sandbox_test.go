package docker

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"

	cronium "github.com/cronium/executor"
)

type nopRuntime struct{}

func (nopRuntime) Call(context.Context, cronium.RuntimeCall) (json.RawMessage, error) {
	return json.RawMessage("false"), nil
}

func TestReusedSandboxIsClean(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	sb, err := testEngine.NewSandbox(ctx, cronium.Spec{Language: cronium.Bash}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Close()
	run := func(script string, mod func(*cronium.Spec)) (cronium.Result, string) {
		var out strings.Builder
		spec := cronium.Spec{ID: NewID(), Language: cronium.Bash, Script: []byte(script), Output: func(c cronium.OutputChunk) { out.Write(c.Data) }}
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
echo "same container: $(cat /proc/1/cgroup | head -c 0)ok"
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

func TestPrewarmedSandboxRunsFast(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	sb, err := testEngine.NewSandbox(ctx, cronium.Spec{Language: cronium.Python}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Close()
	res := sb.Run(ctx, cronium.Spec{ID: NewID(), Language: cronium.Python, Script: []byte("print('hi')")})
	if res.Outcome != cronium.Succeeded || res.Phases.Create != 0 {
		t.Fatalf("%+v", res)
	}
	t.Logf("warm run phase: %s", res.Phases.Run)
}

func TestPausedSandboxResumesForItsRun(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	sb, err := testEngine.NewSandbox(ctx, cronium.Spec{Language: cronium.Bash}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Close()
	if err := sb.Pause(ctx); err != nil {
		t.Fatal(err)
	}
	r, err := testEngine.cli.ContainerInspect(ctx, sb.Container(), client.ContainerInspectOptions{})
	if err != nil || !r.Container.State.Paused {
		t.Fatalf("container not paused: %v", err)
	}
	res := sb.Run(ctx, cronium.Spec{ID: NewID(), Language: cronium.Bash, Script: []byte("echo awake")})
	if res.Outcome != cronium.Succeeded || sb.Paused() {
		t.Fatalf("run of a paused sandbox: %s %s (paused %v)", res.Outcome, res.Error, sb.Paused())
	}
	// Pause again and close while paused: nothing is left behind (TestMain checks).
	if err := sb.Pause(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestWarmRunTakesItsOwnTimeout(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tmpl := cronium.Spec{Language: cronium.Bash}
	tmpl.Limits.Timeout = 2 * time.Second
	sb, err := testEngine.NewSandbox(ctx, tmpl, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Close()
	spec := cronium.Spec{ID: NewID(), Language: cronium.Bash, Script: []byte("sleep 3; echo done")}
	spec.Limits.Timeout = 10 * time.Second
	res := sb.Run(ctx, spec)
	if res.Outcome != cronium.Succeeded || res.Limits.Timeout != 10*time.Second {
		t.Errorf("outcome %s with limits %v: the run must keep its own 10s timeout, not the sandbox creator's 2s", res.Outcome, res.Limits.Timeout)
	}
}
