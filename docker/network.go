package docker

import (
	"context"
	"net/netip"

	cronium "github.com/cronium/executor"
)

// NetworkConfig is how the engine enforces network policies on this host.
type NetworkConfig = cronium.NetworkSetup

// SettleNetwork waits until the network rules and devices of finished
// sandboxes are removed (that happens in the background, off the run's path).
func (e *Engine) SettleNetwork() { e.net.Settle() }

// SweepNetworks removes the bridges, rules and devices that cronium
// processes which died left behind (GC does it too).
func (e *Engine) SweepNetworks(ctx context.Context) error { return e.net.Sweep(ctx) }

// NetworkGuard names this engine's network guard: its ID (in its chain and
// device names) and its subnet. ok is false until a networked sandbox made one.
func (e *Engine) NetworkGuard() (id string, subnet netip.Prefix, ok bool) { return e.net.Info() }
