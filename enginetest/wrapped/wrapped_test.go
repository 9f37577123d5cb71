package wrapped

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"

	cronium "github.com/cronium/executor"
	_ "github.com/cronium/executor/docker" // the target engine
	"github.com/cronium/executor/enginetest"
)

// The conformance suite against the wrapped Docker engine, then the
// dispatcher and its pools: none of them needs to know this engine.
func TestMain(m *testing.M) {
	os.Exit(enginetest.Main(m, enginetest.Config{Engine: "wrapped", Params: map[string]string{"target": "docker"}, Kill: enginetest.KillWith("docker")}))
}

func TestConformance(t *testing.T) { enginetest.Run(t) }

// The dispatcher runs a new engine's executions cold, prewarmed and reused
// from its pools, and records why, through the contract alone.
func TestDispatcherAndPoolsRunIt(t *testing.T) { enginetest.RunDispatcher(t) }

// A target that does not exist is refused, naming the option.
func TestUnknownTarget(t *testing.T) {
	t.Parallel()
	_, err := cronium.OpenEngine(context.Background(), "engine", "wrapped", cronium.EngineOptions{Params: map[string]string{"target": "nope"}})
	if !errors.Is(err, cronium.ErrInvalid) || !strings.Contains(err.Error(), "engine_options.target") {
		t.Fatalf("err %v, want an invalid engine_options.target", err)
	}
}
