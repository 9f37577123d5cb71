package docker

import (
	"context"
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	cronium "github.com/cronium/executor"
	"github.com/cronium/executor/enginetest"
)

// The engine's behaviour is the conformance suite's, run here against a
// real Docker daemon with the real agent and runtime images (a missing
// engine or image is a failure, never a skip); the tests below are of
// what is Docker's own.
func TestMain(m *testing.M) {
	os.Exit(enginetest.Main(m, enginetest.Config{Engine: "docker", Kill: enginetest.KillWith("docker")}))
}

func TestConformance(t *testing.T) { enginetest.Run(t) }

// testEngine is the suite's engine, as a Docker engine.
func testEngine() *Engine { return enginetest.Engine().(*Engine) }

func TestUnreachableEngine(t *testing.T) {
	t.Parallel()
	_, err := New(context.Background(), Config{Host: "unix:///nonexistent/docker.sock", AgentPath: "/dev/null"})
	if !errors.Is(err, cronium.ErrUnavailable) {
		t.Fatalf("err %v, want ErrUnavailable", err)
	}
	for _, want := range []string{"/nonexistent/docker.sock", "DOCKER_HOST", "dockerd"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

// An engine name that is not registered is refused, naming the ones there are.
func TestUnknownEngineName(t *testing.T) {
	t.Parallel()
	_, err := cronium.OpenEngine(context.Background(), "--engine", "dockr", cronium.EngineOptions{})
	if !errors.Is(err, cronium.ErrInvalid) || !strings.Contains(err.Error(), "--engine") || !strings.Contains(err.Error(), "docker") {
		t.Fatalf("err %v, want an invalid --engine naming docker", err)
	}
}

// A Docker engine asked for a Podman socket says which engine answered.
func TestDialectMismatch(t *testing.T) {
	t.Parallel()
	o := enginetest.Options()
	_, err := New(context.Background(), Config{AgentPath: o.AgentPath, StateDir: t.TempDir(), Dialect: "podman"})
	if !errors.Is(err, cronium.ErrUnavailable) || !strings.Contains(err.Error(), "is docker") || !strings.Contains(err.Error(), "--engine docker") {
		t.Fatalf("err %v, want a refusal saying the engine is docker", err)
	}
}

func TestGCRemovesOrphans(t *testing.T) {
	t.Parallel()
	e := testEngine()
	ctx := context.Background()
	old := strconv.FormatInt(time.Now().Add(-time.Hour).Unix(), 10)
	fresh := strconv.FormatInt(time.Now().Add(time.Hour).Unix(), 10)
	mk := func(deadline string) string {
		r, err := e.cli.ContainerCreate(ctx, client.ContainerCreateOptions{
			Image: e.cfg.Images[cronium.Bash],
			Config: &container.Config{Cmd: []string{"sleep", "600"}, Labels: map[string]string{
				LabelManaged: "true", LabelNode: e.cfg.NodeID, LabelExecution: "gc-" + NewID(),
				LabelCreated: old, LabelDeadline: deadline,
			}},
			HostConfig: &container.HostConfig{NetworkMode: "none"},
		})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.cli.ContainerStart(ctx, r.ID, client.ContainerStartOptions{}); err != nil {
			t.Fatal(err)
		}
		return r.ID
	}
	orphan, live := mk(old), mk(fresh)
	defer e.cli.ContainerRemove(ctx, live, client.ContainerRemoveOptions{Force: true})
	if _, err := e.GC(ctx, time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, err := e.cli.ContainerInspect(ctx, orphan, client.ContainerInspectOptions{}); err == nil {
		t.Error("orphan past its deadline survived gc")
	}
	if _, err := e.cli.ContainerInspect(ctx, live, client.ContainerInspectOptions{}); err != nil {
		t.Errorf("running container within its deadline was removed: %v", err)
	}
}

// A dynamically linked agent would load the image's loader and libc (which
// a custom image or a package layer could replace): refused.
func TestDynamicAgentRefused(t *testing.T) {
	t.Parallel()
	_, err := New(context.Background(), Config{AgentPath: "/bin/ls", StateDir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "dynamically linked") || !strings.Contains(err.Error(), "CGO_ENABLED=0") {
		t.Fatalf("err %v, want a refusal of the dynamic agent", err)
	}
}
