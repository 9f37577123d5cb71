package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	cronium "github.com/cronium/executor"
	_ "github.com/cronium/executor/docker" // registers the docker engine
	"github.com/cronium/executor/images"
	_ "github.com/cronium/executor/kube"   // registers the kubernetes engine
	_ "github.com/cronium/executor/podman" // registers the podman engine
)

// findAgent locates the cronium-agent binary: --agent, $CRONIUM_AGENT, then
// next to this executable.
func (g *globals) findAgent() (string, error) {
	if g.agentPath != "" {
		return g.agentPath, nil
	}
	if p := os.Getenv("CRONIUM_AGENT"); p != "" {
		return p, nil
	}
	if exe, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(exe), "cronium-agent")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", errors.New("cronium-agent not found next to cronium: build both with `make build` (into bin/), or pass --agent / set CRONIUM_AGENT")
}

// engineName is the engine --engine names, then $CRONIUM_ENGINE, then docker.
func (g *globals) engineName() string {
	if g.engineFlag != "" {
		return g.engineFlag
	}
	if v := os.Getenv("CRONIUM_ENGINE"); v != "" {
		return v
	}
	return "docker"
}

// engineOptions reads --engine-option key=value flags (the value may hold
// '=' and ',': node_selector=disk=ssd,zone=a).
func (g *globals) engineOptions() (map[string]string, error) {
	if len(g.engineOpts) == 0 {
		return nil, nil
	}
	out := map[string]string{}
	for _, kv := range g.engineOpts {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, usage(cronium.Invalid("--engine-option", kv, "is not key=value: write it like --engine-option namespace=cronium"))
		}
		out[k] = v
	}
	return out, nil
}

// engine opens the engine --engine names (docker by default) for a command.
func (g *globals) engine(ctx context.Context) (cronium.Engine, error) {
	agentPath, err := g.findAgent()
	if err != nil {
		return nil, err
	}
	params, err := g.engineOptions()
	if err != nil {
		return nil, err
	}
	return cronium.OpenEngine(ctx, "--engine", g.engineName(), cronium.EngineOptions{
		Host:      g.dockerHost,
		AgentPath: agentPath,
		StateDir:  g.stateDir,
		NodeID:    os.Getenv("CRONIUM_NODE_ID"), // empty: the host name
		Images:    images.Refs(),
		Network:   g.network,
		Logger:    slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
		Params:    params,
	})
}

// imageStore is the engine's image store, or an error saying the engine holds none.
func imageStore(eng cronium.Engine) (cronium.ImageStore, error) {
	if st := eng.Images(); st != nil {
		return st, nil
	}
	return nil, fmt.Errorf("%w: the %s engine holds no images of its own", cronium.ErrUnsupported, eng.Capabilities().Name)
}

// engineImages is an engine and its image store as one value, for the
// package builder (which runs builds and commits their layers).
type engineImages struct {
	cronium.Engine
	cronium.ImageStore
}

// engineWithImages opens the engine and its image store, for the commands
// that need both.
func (g *globals) engineWithImages(ctx context.Context) (engineImages, error) {
	eng, err := g.engine(ctx)
	if err != nil {
		return engineImages{}, err
	}
	img, err := imageStore(eng)
	if err != nil {
		eng.Close()
		return engineImages{}, err
	}
	return engineImages{eng, img}, nil
}
