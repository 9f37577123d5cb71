// Package wrapped is a test engine: registered as "wrapped", it forwards
// every call of the engine contract to another registered engine (the
// "target" option, docker by default) and adds nothing. Its type hides the
// target's, so a caller that looked past the contract (a type assertion
// for an optional method) would find nothing there. Its tests run the
// conformance suite and the dispatcher with its pools against it: a new
// engine needs no change outside its own package.
package wrapped

import (
	"context"
	"fmt"
	"time"

	cronium "github.com/cronium/executor"
)

func init() {
	cronium.RegisterEngine("wrapped", cronium.EngineDriver{Open: Open, CheckOptions: func(params map[string]string) error {
		for k, v := range params {
			if k != "target" {
				return cronium.Invalid("engine_options."+k, v, "is not an option of the wrapped engine: it takes target")
			}
		}
		return nil
	}})
}

// Engine forwards the contract to another engine.
type Engine struct {
	target cronium.Engine
}

var _ cronium.Engine = (*Engine)(nil)

// Open opens the target engine (Params["target"], default docker) with the
// same options and wraps it.
func Open(ctx context.Context, o cronium.EngineOptions) (cronium.Engine, error) {
	name := o.Params["target"]
	if name == "" {
		name = "docker"
	}
	if name == "wrapped" {
		return nil, cronium.Invalid("engine_options.target", name, "wraps itself: name another engine, like docker")
	}
	o.Params = nil // the wrapper's own
	t, err := cronium.OpenEngine(ctx, "engine_options.target", name, o)
	if err != nil {
		return nil, fmt.Errorf("wrapped: %w", err)
	}
	return &Engine{target: t}, nil
}

// Capabilities implements cronium.Engine: the target's, under this name.
func (e *Engine) Capabilities() cronium.Capabilities {
	c := e.target.Capabilities()
	c.Name = "wrapped " + c.Name
	return c
}

// Run implements cronium.Engine.
func (e *Engine) Run(ctx context.Context, spec cronium.Spec) (cronium.Result, error) {
	return e.target.Run(ctx, spec)
}

// Reattach implements cronium.Engine.
func (e *Engine) Reattach(ctx context.Context, r cronium.Reattach) (cronium.Result, error) {
	return e.target.Reattach(ctx, r)
}

// NewSandbox implements cronium.Engine.
func (e *Engine) NewSandbox(ctx context.Context, template cronium.Spec, lifetime time.Duration) (cronium.Sandbox, error) {
	return e.target.NewSandbox(ctx, template, lifetime)
}

// Sandboxes implements cronium.Engine.
func (e *Engine) Sandboxes(ctx context.Context) ([]cronium.SandboxInfo, error) {
	return e.target.Sandboxes(ctx)
}

// Recover implements cronium.Engine.
func (e *Engine) Recover(ctx context.Context, keep map[string]bool) (int, error) {
	return e.target.Recover(ctx, keep)
}

// GC implements cronium.Engine.
func (e *Engine) GC(ctx context.Context, grace time.Duration) (int, error) {
	return e.target.GC(ctx, grace)
}

// Release implements cronium.Engine.
func (e *Engine) Release() (int, error) { return e.target.Release() }

// Images implements cronium.Engine.
func (e *Engine) Images() cronium.ImageStore { return e.target.Images() }

// Close implements cronium.Engine.
func (e *Engine) Close() error { return e.target.Close() }
