package docker

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"

	cronium "github.com/cronium/executor"
	"github.com/cronium/executor/images"
	"github.com/cronium/executor/internal/testenv"
)

// testEngine is shared by the tests of this package: a real Docker daemon,
// the real agent and the real runtime images. A missing engine or image is
// a failure, never a skip.
var testEngine *Engine

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	tmp, err := os.MkdirTemp("", "crt")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(tmp)
	agentBin, err := testenv.BuildAgent(tmp)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx := context.Background()
	testEngine, err = New(ctx, Config{AgentPath: agentBin, StateDir: filepath.Join(tmp, "st"), Images: images.Refs(), NodeID: "test-" + NewID()[:6]})
	if err != nil {
		fmt.Fprintln(os.Stderr, "FAIL: the engine tests need a running Docker:", err)
		return 1
	}
	defer testEngine.Close()
	for l, ref := range images.Refs() {
		ok, err := testEngine.ImageExists(ctx, ref)
		if err != nil || !ok {
			fmt.Fprintf(os.Stderr, "FAIL: runtime image %s for %s is missing (%v): run `make images` first\n", ref, l, err)
			return 1
		}
	}
	code := m.Run()
	// Nothing may be left behind: no container of this node, no sandbox dir.
	left, err := testEngine.cli.ContainerList(ctx, client.ContainerListOptions{All: true,
		Filters: client.Filters{}.Add("label", LabelNode+"="+testEngine.cfg.NodeID)})
	if err != nil {
		fmt.Fprintln(os.Stderr, "list containers:", err)
		return 1
	}
	if len(left.Items) > 0 {
		fmt.Fprintf(os.Stderr, "FAIL: %d container(s) left behind by the tests\n", len(left.Items))
		return 1
	}
	if dirs, _ := os.ReadDir(filepath.Join(testEngine.cfg.StateDir, "s")); len(dirs) > 0 && code == 0 {
		fmt.Fprintf(os.Stderr, "FAIL: %d sandbox dir(s) left behind by the tests\n", len(dirs))
		return 1
	}
	return code
}

// run runs script and returns the result and its output, failing the test
// on a spec error.
func run(t *testing.T, lang cronium.Language, script string, mod func(*cronium.Spec)) (cronium.Result, string) {
	t.Helper()
	var out strings.Builder
	spec := cronium.Spec{Language: lang, Script: []byte(script)}
	spec.Limits.Timeout = 20 * time.Second
	spec.Output = func(c cronium.OutputChunk) { out.Write(c.Data) }
	if mod != nil {
		mod(&spec)
	}
	res, err := testEngine.Run(context.Background(), spec)
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
