package docker

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/moby/moby/client"

	cronium "github.com/cronium/executor"
	"github.com/cronium/executor/session"
)

// NewSandbox implements cronium.Engine: it creates and starts a container
// for template's image, limits, profile and network (its script fields are
// ignored) and waits for the agent's hello. Its container is labelled with
// the sandbox id, and its deadline label covers lifetime, so GC leaves a
// pooled sandbox alone while it may live.
func (e *Engine) NewSandbox(ctx context.Context, template cronium.Spec, lifetime time.Duration) (cronium.Sandbox, error) {
	template.ID = "sbx-" + NewID()[:16]
	if template.Script == nil {
		template.Script = []byte(" ")
	}
	if template.Language == "" {
		template.Language = cronium.Bash
	}
	if err := e.checkSpec(&template); err != nil {
		return nil, err
	}
	// The agent prepares the next run's interpreter only in the engine's
	// own runtime image of the language (see session.Warm).
	prepare := template.Image != "" && template.Image == e.cfg.Images[template.Language]
	w, err := session.NewWarm(ctx, e.timing(), e.newBox(template, lifetime, false), template, prepare)
	if err != nil {
		return nil, err
	}
	return w, nil
}

// removeSandboxesExcept removes this node's warm sandboxes (left by a host
// process that died) whose ids are not in keep: those are being re-attached.
func (e *Engine) removeSandboxesExcept(ctx context.Context, keep map[string]bool) (int, error) {
	list, err := e.cli.ContainerList(ctx, client.ContainerListOptions{
		All:     true,
		Filters: client.Filters{}.Add("label", LabelManaged+"=true", LabelNode+"="+e.cfg.NodeID),
	})
	if err != nil {
		return 0, fmt.Errorf("list sandboxes: %w", err)
	}
	n := 0
	for _, c := range list.Items {
		id := c.Labels[LabelExecution]
		if len(id) < 4 || id[:4] != "sbx-" || keep[id] {
			continue
		}
		if err := e.remove(ctx, c.ID); err == nil {
			n++
		}
		os.RemoveAll(filepath.Join(e.cfg.StateDir, "s", c.Labels[LabelSandbox]))
	}
	return n, nil
}
