package netguard

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"

	cronium "github.com/cronium/executor"
)

// Lazy is an engine's guard, created on the first networked sandbox: runs
// without network never pay for it. It also writes the sandboxes'
// resolv.conf, naming the guard's resolver, under stateDir/net/<guard id>.
type Lazy struct {
	setup    cronium.NetworkSetup
	stateDir string
	log      *slog.Logger

	mu     sync.Mutex
	g      *Guard
	resolv string
	closed bool
}

// NewLazy returns a guard to be created on first use from setup.
func NewLazy(setup cronium.NetworkSetup, stateDir string, log *slog.Logger) *Lazy {
	return &Lazy{setup: setup, stateDir: stateDir, log: log}
}

// Get returns the guard and the file sandboxes mount as /etc/resolv.conf,
// creating its bridge, rules, resolver and proxy first if need be.
func (l *Lazy) Get(ctx context.Context) (*Guard, string, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.g != nil {
		return l.g, l.resolv, nil
	}
	if l.closed {
		return nil, "", errors.New("engine closed")
	}
	var up []string
	for _, s := range l.setup.UpstreamDNS {
		if !strings.Contains(s, ":") {
			s += ":53"
		}
		up = append(up, s)
	}
	g, err := New(ctx, Config{
		Pool: l.setup.Pool, UpstreamDNS: up, BlockedPorts: l.setup.BlockedPorts, AllowMetadata: l.setup.AllowMetadata,
		Services: l.setup.Services, Logger: l.log,
	})
	if err != nil {
		return nil, "", err
	}
	dir := filepath.Join(l.stateDir, "net", g.ID())
	if err := os.MkdirAll(dir, 0o755); err == nil {
		err = os.WriteFile(filepath.Join(dir, "resolv.conf"), []byte("nameserver "+g.Resolver().String()+"\noptions ndots:0 attempts:2 timeout:2\n"), 0o644)
	}
	if err != nil {
		g.Close()
		return nil, "", fmt.Errorf("write the sandboxes' resolv.conf: %w", err)
	}
	l.g, l.resolv = g, filepath.Join(dir, "resolv.conf")
	l.log.Info("sandbox network ready", "bridge", g.Bridge(), "subnet", g.Subnet(), "guard", g.ID())
	return g, l.resolv, nil
}

// Settle waits until the network rules and devices of finished sandboxes
// are removed (that happens in the background, off the run's path).
func (l *Lazy) Settle() {
	l.mu.Lock()
	g := l.g
	l.mu.Unlock()
	if g != nil {
		g.Settle()
	}
}

// Close removes the guard's bridge, rules and devices; Get fails after it.
func (l *Lazy) Close() {
	l.mu.Lock()
	g := l.g
	l.g, l.closed = nil, true
	l.mu.Unlock()
	if g == nil {
		return
	}
	g.Close()
	os.RemoveAll(filepath.Join(l.stateDir, "net", g.ID()))
}

// Sweep removes the bridges, rules and devices that cronium processes
// which died left behind, and their resolv.conf directories.
func (l *Lazy) Sweep(ctx context.Context) error {
	_, err := Sweep(ctx)
	dirs, _ := os.ReadDir(filepath.Join(l.stateDir, "net"))
	for _, d := range dirs {
		if len(Links("br-crn"+d.Name())) == 0 {
			os.RemoveAll(filepath.Join(l.stateDir, "net", d.Name()))
		}
	}
	return err
}

// Info names the guard: its ID (in its chain and device names) and its
// subnet. ok is false until a networked sandbox made one.
func (l *Lazy) Info() (id string, subnet netip.Prefix, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.g == nil {
		return "", netip.Prefix{}, false
	}
	return l.g.ID(), l.g.Subnet(), true
}
