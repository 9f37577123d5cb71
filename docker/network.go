package docker

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	cronium "github.com/cronium/executor"
	"github.com/cronium/executor/netguard"
)

// NetworkConfig is how the engine enforces network policies on this host.
type NetworkConfig = cronium.NetworkSetup

// guard returns the engine's network guard, creating its bridge, rules,
// resolver and proxy on first use: runs without network never pay for it.
// Sandboxes are created without a Docker network; the guard plumbs each
// networked one into its own bridge (see netguard.Lease.Link).
func (e *Engine) guard(ctx context.Context) (*netguard.Guard, error) {
	e.netMu.Lock()
	defer e.netMu.Unlock()
	if e.netGuard != nil {
		return e.netGuard, nil
	}
	if e.closed {
		return nil, fmt.Errorf("engine closed")
	}
	nc := e.cfg.Network
	var up []string
	for _, s := range nc.UpstreamDNS {
		if !strings.Contains(s, ":") {
			s += ":53"
		}
		up = append(up, s)
	}
	g, err := netguard.New(ctx, netguard.Config{
		Pool: nc.Pool, UpstreamDNS: up, BlockedPorts: nc.BlockedPorts, AllowMetadata: nc.AllowMetadata,
		Services: nc.Services, Logger: e.log,
	})
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(e.cfg.StateDir, "net", g.ID())
	if err := os.MkdirAll(dir, 0o755); err == nil {
		err = os.WriteFile(filepath.Join(dir, "resolv.conf"), []byte("nameserver "+g.Resolver().String()+"\noptions ndots:0 attempts:2 timeout:2\n"), 0o644)
	}
	if err != nil {
		g.Close()
		return nil, fmt.Errorf("write the sandboxes' resolv.conf: %w", err)
	}
	e.netGuard, e.resolvConf = g, filepath.Join(dir, "resolv.conf")
	e.log.Info("sandbox network ready", "bridge", g.Bridge(), "subnet", g.Subnet(), "guard", g.ID())
	return g, nil
}

// SettleNetwork waits until the network rules and devices of finished
// sandboxes are removed (that happens in the background, off the run's path).
func (e *Engine) SettleNetwork() {
	e.netMu.Lock()
	g := e.netGuard
	e.netMu.Unlock()
	if g != nil {
		g.Settle()
	}
}

// closeNetwork removes the guard's bridge, rules and devices.
func (e *Engine) closeNetwork() {
	e.netMu.Lock()
	g := e.netGuard
	e.netGuard, e.closed = nil, true
	e.netMu.Unlock()
	if g == nil {
		return
	}
	g.Close()
	os.RemoveAll(filepath.Join(e.cfg.StateDir, "net", g.ID()))
}

// SweepNetworks removes the bridges, rules and devices that cronium
// processes which died left behind (GC does it too).
func (e *Engine) SweepNetworks(ctx context.Context) error {
	_, err := netguard.Sweep(ctx)
	// The resolv.conf directories of guards whose bridge is gone.
	dirs, _ := os.ReadDir(filepath.Join(e.cfg.StateDir, "net"))
	for _, d := range dirs {
		if len(netguard.Links("br-crn"+d.Name())) == 0 {
			os.RemoveAll(filepath.Join(e.cfg.StateDir, "net", d.Name()))
		}
	}
	return err
}

// NetworkGuard names this engine's network guard: its ID (in its chain and
// device names) and its subnet. ok is false until a networked sandbox made one.
func (e *Engine) NetworkGuard() (id string, subnet netip.Prefix, ok bool) {
	e.netMu.Lock()
	defer e.netMu.Unlock()
	if e.netGuard == nil {
		return "", netip.Prefix{}, false
	}
	return e.netGuard.ID(), e.netGuard.Subnet(), true
}
