package podman

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	cronium "github.com/cronium/executor"
	"github.com/cronium/executor/enginetest"
)

// The conformance suite against rootful Podman (the Debian package), with
// the API service started on demand by the engine itself: nothing is
// skipped, a missing podman is a failure.
func TestMain(m *testing.M) {
	os.Exit(enginetest.Main(m, enginetest.Config{Engine: "podman", Kill: enginetest.KillWith("podman"), Done: stopService}))
}

func TestConformance(t *testing.T) { enginetest.Run(t) }

// stopService stops the API service the engine started for the tests (it
// would stop by itself once idle).
func stopService(o cronium.EngineOptions) {
	exec.Command("pkill", "-f", "system service .*unix://"+filepath.Join(o.StateDir, "podman")).Run()
}

// The engine started the service itself: its socket is in the state directory.
func TestServiceStartedOnDemand(t *testing.T) {
	t.Parallel()
	sock := filepath.Join(enginetest.Options().StateDir, "podman", "podman.sock")
	if !answers(sock) {
		t.Fatalf("no podman service answers on %s", sock)
	}
	if caps := enginetest.Engine().Capabilities(); caps.Name != "podman" || !strings.Contains(caps.Address, sock) || caps.Version == "" {
		t.Errorf("capabilities %+v: want podman at %s with its version", caps, sock)
	}
}

// Without the podman binary and without a socket: a clear error at once.
func TestNoBinaryNoSocket(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	_, err := cronium.OpenEngine(context.Background(), "engine", "podman", cronium.EngineOptions{AgentPath: "/dev/null", StateDir: t.TempDir()})
	if !errors.Is(err, cronium.ErrUnavailable) || !strings.Contains(err.Error(), "apt-get install podman") || !strings.Contains(err.Error(), "--docker-host") {
		t.Fatalf("err %v, want one saying to install podman or give a socket", err)
	}
}

// A socket given that nothing answers on: a clear error, not a hang.
func TestUnreachableSocket(t *testing.T) {
	t.Parallel()
	_, err := cronium.OpenEngine(context.Background(), "engine", "podman", cronium.EngineOptions{Host: "unix:///nonexistent/podman.sock", AgentPath: "/dev/null", StateDir: t.TempDir()})
	if !errors.Is(err, cronium.ErrUnavailable) || !strings.Contains(err.Error(), "/nonexistent/podman.sock") || !strings.Contains(err.Error(), "podman system service") {
		t.Fatalf("err %v, want one naming the socket and how to start a service there", err)
	}
}

// The Docker socket given to the podman engine: refused, saying what answered.
func TestDockerSocketIsNotPodman(t *testing.T) {
	t.Parallel()
	_, err := cronium.OpenEngine(context.Background(), "engine", "podman", cronium.EngineOptions{Host: "unix:///var/run/docker.sock", AgentPath: enginetest.Options().AgentPath, StateDir: t.TempDir()})
	if !errors.Is(err, cronium.ErrUnavailable) || !strings.Contains(err.Error(), "is docker") || !strings.Contains(err.Error(), "--engine docker") {
		t.Fatalf("err %v, want a refusal saying the engine is docker", err)
	}
}

// The service cronium starts stops by itself once idle, and the next call
// starts it again: no daemon has to keep running.
func TestServiceStopsWhenIdleAndComesBack(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	o := enginetest.Options()
	o.StateDir, o.NodeID, o.Params = dir, o.NodeID+"-idle", map[string]string{"idle_timeout": "2s"}
	ctx := context.Background()
	e, err := cronium.OpenEngine(ctx, "engine", "podman", o)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	defer stopService(o)
	sock := filepath.Join(dir, "podman", "podman.sock")
	run := func() {
		t.Helper()
		res, err := e.Run(ctx, cronium.Spec{Language: cronium.Bash, Script: []byte("echo hi")})
		if err != nil || res.Outcome != cronium.Succeeded {
			t.Fatalf("run: %v %s %s", err, res.Outcome, res.Error)
		}
	}
	run()
	deadline := time.Now().Add(30 * time.Second)
	for answers(sock) {
		if time.Now().After(deadline) {
			t.Fatal("the podman service still answers 30s after its last request (idle_timeout 2s)")
		}
		time.Sleep(200 * time.Millisecond)
	}
	run() // starts it again
	if !answers(sock) {
		t.Fatal("no service after a run")
	}
}

func TestBadOptions(t *testing.T) {
	t.Parallel()
	for params, want := range map[string]string{"idle_timeout=soon": "engine_options.idle_timeout", "idle_timeout=10ms": "too short", "idle_timout=60s": "engine_options.idle_timout"} {
		k, v, _ := strings.Cut(params, "=")
		err := cronium.CheckEngine("engine", "podman", map[string]string{k: v})
		if !errors.Is(err, cronium.ErrInvalid) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: err %v, want an invalid option saying %q", params, err, want)
		}
	}
	if err := cronium.CheckEngine("engine", "docker", map[string]string{"idle_timeout": "60s"}); !errors.Is(err, cronium.ErrInvalid) || !strings.Contains(err.Error(), "takes none") {
		t.Errorf("docker with an option: %v, want a refusal", err)
	}
}
