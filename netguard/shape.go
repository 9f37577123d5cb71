package netguard

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// Link plugs the sandbox whose network namespace is at nsPath (for Docker,
// the container's SandboxKey: a name that cannot be recycled the way a pid
// can) into the guard's bridge, before its script runs: a veth pair whose inner end becomes eth0
// in the sandbox's network namespace with the lease's address, and whose
// host end is an isolated bridge port (no other sandbox can reach it, not
// even at layer 2). When the policy asks, it caps the bandwidth both ways:
// a token bucket on the host end for traffic into the sandbox, and for
// traffic out of it, the host end's ingress mirrored to an IFB device with
// its own token bucket.
func (l *Lease) Link(ctx context.Context, nsPath string) error {
	g := l.g
	b := l.ip.As4()
	veth := fmt.Sprintf("crv%s%02x%02x", g.cfg.ID, b[2], b[3]) // 13 bytes: interface names stop at 15
	l.mu.Lock()
	l.veth = veth
	l.mu.Unlock()
	if err := plug(veth, g.bridge, nsPath, l.ip, g.gateway); err != nil {
		return fmt.Errorf("netguard: plug the sandbox in: %w", err)
	}
	if err := fault("link"); err != nil {
		return fmt.Errorf("netguard: %w", err)
	}
	bw := int64(l.policy.Bandwidth)
	if bw == 0 {
		return nil
	}
	rate := strconv.FormatInt(bw, 10) + "bit"
	// The bucket holds about 20 ms of traffic, at least a few full packets.
	burst := strconv.FormatInt(max(bw/8/50, 16<<10), 10)
	ifb := fmt.Sprintf("crn%s%02x%02x", l.g.cfg.ID, b[2], b[3]) // 13 bytes: interface names stop at 15
	l.mu.Lock()
	l.ifb = ifb
	l.mu.Unlock()
	steps := [][]string{
		{"tc", "qdisc", "replace", "dev", veth, "root", "tbf", "rate", rate, "burst", burst, "latency", "100ms"},
		{"ip", "link", "add", ifb, "type", "ifb"},
		{"ip", "link", "set", ifb, "up"},
		{"tc", "qdisc", "replace", "dev", ifb, "root", "tbf", "rate", rate, "burst", burst, "latency", "100ms"},
		{"tc", "qdisc", "add", "dev", veth, "handle", "ffff:", "ingress"},
		{"tc", "filter", "add", "dev", veth, "parent", "ffff:", "protocol", "all", "u32", "match", "u32", "0", "0",
			"action", "mirred", "egress", "redirect", "dev", ifb},
	}
	for _, s := range steps {
		if _, err := run(ctx, nil, s[0], s[1:]...); err != nil {
			return fmt.Errorf("netguard: bandwidth %s: %w", l.policy.Bandwidth, err)
		}
	}
	return nil
}

// plug creates a veth pair over netlink (no processes to start): hostName
// on the host, an isolated port of bridge (learning stays on: without it the bridge
// would flood one sandbox's traffic to every port, and through their shaping), and
// eth0 in the network namespace at nsPath with ip/32 and a default route
// via gw "on link": everything the sandbox sends, even to a neighbour on
// the same bridge, goes to the host, where the rules decide (and say why).
func plug(hostName, bridge, nsPath string, ip, gw netip.Addr) error {
	br, err := netlink.LinkByName(bridge)
	if err != nil {
		return fmt.Errorf("bridge %s: %w", bridge, err)
	}
	ns, err := netns.GetFromPath(nsPath)
	if err != nil {
		return fmt.Errorf("network namespace %s: %w", nsPath, err)
	}
	defer ns.Close()
	if self, err := netns.Get(); err == nil {
		same := self.Equal(ns)
		self.Close()
		if same {
			return fmt.Errorf("network namespace %s is the host's", nsPath)
		}
	}
	if err := disableIPv6(ns); err != nil {
		return fmt.Errorf("disable IPv6 in the sandbox: %w", err)
	}
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: hostName, MasterIndex: br.Attrs().Index}, PeerName: "eth0", PeerNamespace: netlink.NsFd(int(ns))}
	if err := netlink.LinkAdd(veth); err != nil {
		return fmt.Errorf("add veth %s: %w", hostName, err)
	}
	host, err := netlink.LinkByName(hostName)
	if err != nil {
		return err
	}
	if err := netlink.LinkSetIsolated(host, true); err != nil {
		return fmt.Errorf("isolate %s: %w", hostName, err)
	}
	os.WriteFile("/proc/sys/net/ipv6/conf/"+hostName+"/disable_ipv6", []byte("1"), 0o644)
	if err := netlink.LinkSetUp(host); err != nil {
		return err
	}
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return fmt.Errorf("netlink in the sandbox: %w", err)
	}
	defer h.Close()
	eth0, err := h.LinkByName("eth0")
	if err != nil {
		return fmt.Errorf("eth0 in the sandbox: %w", err)
	}
	ipn := &net.IPNet{IP: ip.AsSlice(), Mask: net.CIDRMask(32, 32)}
	if err := h.AddrAdd(eth0, &netlink.Addr{IPNet: ipn}); err != nil {
		return fmt.Errorf("address %s: %w", ip, err)
	}
	if err := h.LinkSetUp(eth0); err != nil {
		return err
	}
	if err := h.RouteAdd(&netlink.Route{LinkIndex: eth0.Attrs().Index, Gw: gw.AsSlice(), Flags: int(netlink.FLAG_ONLINK)}); err != nil {
		return fmt.Errorf("default route: %w", err)
	}
	return nil
}

// disableIPv6 turns IPv6 off in the network namespace ns (all and default,
// so the eth0 moved in later gets no address either). Network sysctls
// belong to the namespace of the thread that opens them, so it runs on a
// thread of its own that enters ns; the thread is discarded, not reused.
func disableIPv6(ns netns.NsHandle) error {
	errc := make(chan error, 1)
	go func() { // ends with the write; its thread dies with it if it cannot return to the host namespace
		runtime.LockOSThread()
		self, err := netns.Get()
		if err != nil {
			errc <- err
			return
		}
		defer self.Close()
		if err := netns.Set(ns); err != nil {
			errc <- err
			return
		}
		var werr error
		for _, f := range []string{"all", "default"} {
			if err := os.WriteFile("/proc/sys/net/ipv6/conf/"+f+"/disable_ipv6", []byte("1"), 0o644); err != nil && werr == nil {
				werr = err
			}
		}
		if netns.Set(self) == nil {
			runtime.UnlockOSThread()
		}
		errc <- werr
	}()
	return <-errc
}

// forgetFlows deletes the connection-tracking entries from or to ip.
func forgetFlows(ip netip.Addr) {
	for _, dir := range []netlink.ConntrackFilterType{netlink.ConntrackOrigSrcIP, netlink.ConntrackOrigDstIP} {
		f := &netlink.ConntrackFilter{}
		if f.AddIP(dir, ip.AsSlice()) == nil {
			netlink.ConntrackDeleteFilters(netlink.ConntrackTable, netlink.FAMILY_V4, f)
		}
	}
}

// linkStats reads an interface's byte and packet counters; ok is false when it is gone.
func linkStats(name string) (rxBytes, rxPkts, txBytes, txPkts int64, ok bool) {
	read := func(f string) int64 {
		b, err := os.ReadFile("/sys/class/net/" + name + "/statistics/" + f)
		if err != nil {
			ok = false
			return 0
		}
		n, _ := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		return n
	}
	ok = true
	rxBytes, rxPkts, txBytes, txPkts = read("rx_bytes"), read("rx_packets"), read("tx_bytes"), read("tx_packets")
	return
}

func deleteLink(name string) {
	run(context.Background(), nil, "ip", "link", "del", name)
}

// removeLinks deletes the interfaces (IFBs, veths) whose names start with prefix.
func removeLinks(prefix string) {
	for _, name := range Links(prefix) {
		deleteLink(name)
	}
}

// Links lists the host's interfaces whose names start with prefix (for tests and checks).
func Links(prefix string) []string {
	var out []string
	ifs, _ := net.Interfaces()
	for _, i := range ifs {
		if strings.HasPrefix(i.Name, prefix) {
			out = append(out, i.Name)
		}
	}
	return out
}
