package netguard

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
)

// Link plugs the sandbox whose init process is pid into the guard's
// bridge, before its script runs: a veth pair whose inner end becomes eth0
// in the sandbox's network namespace with the lease's address, and whose
// host end is an isolated bridge port (no other sandbox can reach it, not
// even at layer 2). When the policy asks, it caps the bandwidth both ways:
// a token bucket on the host end for traffic into the sandbox, and for
// traffic out of it, the host end's ingress mirrored to an IFB device with
// its own token bucket.
func (l *Lease) Link(ctx context.Context, pid int) error {
	g := l.g
	b := l.ip.As4()
	veth := fmt.Sprintf("crv%s%02x%02x", g.cfg.ID, b[2], b[3]) // 13 bytes: interface names stop at 15
	l.mu.Lock()
	l.veth = veth
	l.mu.Unlock()
	host := fmt.Sprintf("link add %s type veth peer name eth0 netns %d\nlink set %s master %s\nlink set %s type bridge_slave isolated on learning off\nlink set %s up\n",
		veth, pid, veth, g.bridge, veth, veth)
	if _, err := run(ctx, []byte(host), "ip", "-batch", "-"); err != nil {
		return fmt.Errorf("netguard: plug the sandbox in: %w", err)
	}
	inside := fmt.Sprintf("addr add %s dev eth0\nlink set eth0 up\nroute add default via %s dev eth0\n", netip.PrefixFrom(l.ip, g.subnet.Bits()), g.gateway)
	if _, err := run(ctx, []byte(inside), "nsenter", "-t", strconv.Itoa(pid), "-n", "ip", "-batch", "-"); err != nil {
		return fmt.Errorf("netguard: configure the sandbox's eth0: %w", err)
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

// removeLinks deletes the IFB devices whose names start with prefix.
func removeLinks(prefix string) {
	ifs, err := net.Interfaces()
	if err != nil {
		return
	}
	for _, i := range ifs {
		if strings.HasPrefix(i.Name, prefix) {
			deleteLink(i.Name)
		}
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
