package docker

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	cronium "github.com/cronium/executor"
	"github.com/cronium/executor/netguard"
)

// NetworkConfig is how the engine enforces network policies on this host.
type NetworkConfig struct {
	// Pool is the range the engine takes a /24 from for its sandbox network. Default 10.213.0.0/16.
	Pool netip.Prefix
	// UpstreamDNS are the name servers cronium's resolver asks ("IP" or "IP:port"). Default: the host's.
	UpstreamDNS []string
	// BlockedPorts are refused in every mode; a policy only adds to them. Default 25, 465, 587.
	BlockedPorts []int
	// AllowMetadata lets full mode reach 169.254.0.0/16 (cloud metadata). Default false.
	AllowMetadata bool
	// Services are the internal services by name.
	Services map[string]cronium.InternalService
}

// LabelOwner names the process that owns a sandbox network ("pid:starttime"),
// so a sweep never removes the network of another live cronium process.
const LabelOwner = "io.cronium.owner"

// selfOwner is this process's LabelOwner value.
func selfOwner() string { return ownerOf(os.Getpid()) }

// ownerOf returns "pid:starttime" of a running process, or "" if there is none.
func ownerOf(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return ""
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return ""
	}
	return fmt.Sprintf("%d:%s", pid, f[19]) // field 22: start time in clock ticks since boot
}

// ownerAlive reports whether the process named by a LabelOwner value still runs.
func ownerAlive(owner string) bool {
	pid, _, ok := strings.Cut(owner, ":")
	if !ok {
		return false
	}
	n, err := strconv.Atoi(pid)
	return err == nil && ownerOf(n) == owner
}

// LabelGuard marks the engine's sandbox networks with the id of the guard
// that enforces their rules.
const LabelGuard = "io.cronium.guard"

// guard returns the engine's network guard, creating its bridge network,
// rules, resolver and proxy on first use: runs without network never pay for it.
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
	pool := nc.Pool
	if !pool.IsValid() {
		pool = netip.MustParsePrefix("10.213.0.0/16")
	}
	if pool.Bits() > 24 || !pool.Addr().Is4() {
		return nil, cronium.Invalid("network.pool", pool.String(), "must be an IPv4 range of /24 or larger")
	}
	var up []string
	for _, s := range nc.UpstreamDNS {
		if !strings.Contains(s, ":") {
			s += ":53"
		}
		up = append(up, s)
	}
	var b [3]byte
	for i := range b {
		b[i] = byte(rand.IntN(256))
	}
	id := fmt.Sprintf("%02x%02x%02x", b[0], b[1], b[2])
	name := "cronium-net-" + id
	bridge := "br-crn" + id
	var subnet netip.Prefix
	var lastErr error
	for try := 0; try < 32; try++ {
		subnet = randomSlash24(pool)
		_, lastErr = e.cli.NetworkCreate(ctx, name, client.NetworkCreateOptions{
			Driver: "bridge",
			// Internal: Docker itself forwards nothing off the network; the
			// guard's rules decide, so a missing rule fails closed.
			Internal: true,
			IPAM:     &network.IPAM{Config: []network.IPAMConfig{{Subnet: subnet, Gateway: subnet.Addr().Next()}}},
			Options: map[string]string{
				"com.docker.network.bridge.name":       bridge,
				"com.docker.network.bridge.enable_icc": "false",
			},
			Labels: map[string]string{LabelManaged: "true", LabelNode: e.cfg.NodeID, LabelGuard: id, LabelOwner: selfOwner()},
		})
		if lastErr == nil {
			break
		}
		if !strings.Contains(lastErr.Error(), "overlap") {
			return nil, fmt.Errorf("create the sandbox network: %w", lastErr)
		}
	}
	if lastErr != nil {
		return nil, fmt.Errorf("create the sandbox network: no free /24 in %s: %w", pool, lastErr)
	}
	g, err := netguard.New(ctx, netguard.Config{
		ID: id, Bridge: bridge, Subnet: subnet, Gateway: subnet.Addr().Next(),
		UpstreamDNS: up, BlockedPorts: nc.BlockedPorts, AllowMetadata: nc.AllowMetadata,
		Services: nc.Services, Logger: e.log,
	})
	if err != nil {
		e.cli.NetworkRemove(context.WithoutCancel(ctx), name, client.NetworkRemoveOptions{})
		return nil, err
	}
	dir := filepath.Join(e.cfg.StateDir, "net", id)
	if err := os.MkdirAll(dir, 0o755); err == nil {
		err = os.WriteFile(filepath.Join(dir, "resolv.conf"), []byte("nameserver "+g.Resolver().String()+"\noptions ndots:0 attempts:2 timeout:2\n"), 0o644)
	}
	if err != nil {
		g.Close()
		e.cli.NetworkRemove(context.WithoutCancel(ctx), name, client.NetworkRemoveOptions{})
		return nil, fmt.Errorf("write the sandboxes' resolv.conf: %w", err)
	}
	e.netGuard, e.netName, e.resolvConf = g, name, filepath.Join(dir, "resolv.conf")
	e.log.Info("sandbox network ready", "network", name, "subnet", subnet, "guard", id)
	return g, nil
}

func randomSlash24(pool netip.Prefix) netip.Prefix {
	a := pool.Masked().Addr().As4()
	n := 1 << (24 - pool.Bits())
	k := rand.IntN(n)
	v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8
	v += uint32(k) << 8
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), 0}), 24)
}

// closeNetwork removes the guard's rules and the network.
func (e *Engine) closeNetwork() {
	e.netMu.Lock()
	g, name := e.netGuard, e.netName
	e.netGuard, e.closed = nil, true
	e.netMu.Unlock()
	if g == nil {
		return
	}
	g.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := e.cli.NetworkRemove(ctx, name, client.NetworkRemoveOptions{}); err != nil && !cerrdefs.IsNotFound(err) {
		e.log.Warn("remove the sandbox network; gc will retry", "network", name, "err", err)
	}
	os.RemoveAll(filepath.Join(e.cfg.StateDir, "net", g.ID()))
}

// sweepNetworks removes this node's sandbox networks that no live guard
// owns and no container uses, and the firewall rules and devices of
// guards that are gone.
func (e *Engine) sweepNetworks(ctx context.Context) (int, error) {
	list, err := e.cli.NetworkList(ctx, client.NetworkListOptions{
		Filters: client.Filters{}.Add("label", LabelManaged+"=true", LabelNode+"="+e.cfg.NodeID),
	})
	if err != nil {
		return 0, fmt.Errorf("list sandbox networks: %w", err)
	}
	e.netMu.Lock()
	own := ""
	if e.netGuard != nil {
		own = e.netGuard.ID()
	}
	e.netMu.Unlock()
	live := map[string]bool{}
	if own != "" {
		live[own] = true
	}
	removed := 0
	for _, n := range list.Items {
		id := n.Labels[LabelGuard]
		if id == own || ownerAlive(n.Labels[LabelOwner]) {
			live[id] = true // another cronium process on this node uses it
			continue
		}
		in, err := e.cli.NetworkInspect(ctx, n.ID, client.NetworkInspectOptions{})
		if err != nil {
			live[id] = true
			continue
		}
		if len(in.Network.Containers) > 0 {
			// A re-attached execution still runs on it; its rules stay until it ends.
			live[id] = true
			continue
		}
		if _, err := e.cli.NetworkRemove(ctx, n.ID, client.NetworkRemoveOptions{}); err == nil {
			removed++
			os.RemoveAll(filepath.Join(e.cfg.StateDir, "net", id))
		} else {
			live[id] = true
		}
	}
	if _, err := netguard.Sweep(ctx, live); err != nil {
		return removed, err
	}
	return removed, nil
}
