package main

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/cronium/executor/docker"
	"github.com/cronium/executor/images"
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

func (g *globals) engine(ctx context.Context) (*docker.Engine, error) {
	agentPath, err := g.findAgent()
	if err != nil {
		return nil, err
	}
	return docker.New(ctx, docker.Config{
		Host:      g.dockerHost,
		AgentPath: agentPath,
		StateDir:  g.stateDir,
		Images:    images.Refs(),
		Network:   g.network,
		Logger:    slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
}
