// Package netguard enforces network policies on the host side of a
// sandbox's link, for engines whose sandboxes sit on a Linux bridge
// (Docker, rootful Podman). The script keeps no capability: every rule,
// the resolver, the filtering proxy and the bandwidth shaping live on the host.
//
// One Guard owns one bridge network (a /24). Each networked sandbox gets a
// fixed address on it and a Lease: its own iptables chains (keyed by that
// address), an entry in the resolver and proxy, and optionally a bandwidth
// cap. Traffic from an address without a lease is dropped, so a missing
// rule fails closed. Refused packets are logged to an NFLOG group the guard
// reads, so a user sees what was refused and why.
package netguard

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	cronium "github.com/cronium/executor"
)

// DefaultBlockedPorts are refused in every networked mode unless the operator says otherwise: SMTP.
var DefaultBlockedPorts = []int{25, 465, 587}

// Config configures a Guard.
type Config struct {
	// ID names the guard's chains ("CRN-<ID>-...") and devices. 6 hex digits; default random.
	ID string
	// Bridge is the host interface of the sandboxes' network. Required.
	Bridge string
	// Subnet is the network's address range; Gateway the host's address on it. Required.
	Subnet  netip.Prefix
	Gateway netip.Addr
	// UpstreamDNS are the servers the resolver asks ("IP:port"). Default: the host's /etc/resolv.conf.
	UpstreamDNS []string
	// BlockedPorts are refused in every networked mode; a policy can only add to them. Default DefaultBlockedPorts.
	BlockedPorts []int
	// AllowMetadata lets full mode reach 169.254.0.0/16. Default false.
	AllowMetadata bool
	// Services are the internal services by name.
	Services map[string]cronium.InternalService
	// Logger receives operational logs. Default: discard.
	Logger *slog.Logger
}

// Guard enforces policies for the sandboxes of one bridge network.
type Guard struct {
	cfg      Config
	log      *slog.Logger
	services map[string][]cronium.ServiceEndpoint
	group    uint16 // NFLOG group of refused packets
	dns      *resolver
	proxy    *proxy
	nflog    *nflog
	local    localAddrs

	mu     sync.Mutex
	leases map[netip.Addr]*Lease
	free   []netip.Addr

	stop chan struct{}
	wg   sync.WaitGroup
}

// ChainPrefix is the prefix of every iptables chain guards create.
const ChainPrefix = "CRN-"

// New installs the guard's base rules and starts its resolver, proxy and
// refusal log. On any error everything it set up is removed again.
func New(ctx context.Context, cfg Config) (g *Guard, err error) {
	if cfg.ID == "" {
		var b [3]byte
		rand.Read(b[:])
		cfg.ID = hex.EncodeToString(b[:])
	}
	if cfg.Bridge == "" || !cfg.Subnet.IsValid() || !cfg.Gateway.IsValid() {
		return nil, errors.New("netguard: bridge, subnet and gateway are required")
	}
	if cfg.Subnet.Bits() < 16 || !cfg.Subnet.Addr().Is4() {
		return nil, fmt.Errorf("netguard: subnet %s: want an IPv4 range of /16 to /30", cfg.Subnet)
	}
	if cfg.BlockedPorts == nil {
		cfg.BlockedPorts = DefaultBlockedPorts
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if len(cfg.UpstreamDNS) == 0 {
		cfg.UpstreamDNS = hostResolvers()
	}
	g = &Guard{cfg: cfg, log: cfg.Logger, leases: map[netip.Addr]*Lease{}, services: map[string][]cronium.ServiceEndpoint{}, stop: make(chan struct{})}
	for name, s := range cfg.Services {
		eps, err := s.Endpoints("network.internal_services." + name)
		if err != nil {
			return nil, err
		}
		g.services[name] = eps
	}
	for a := cfg.Subnet.Addr().Next(); cfg.Subnet.Contains(a); a = a.Next() {
		if a != cfg.Gateway && a.Next().IsValid() && cfg.Subnet.Contains(a.Next()) { // skip the broadcast address
			g.free = append(g.free, a)
		}
	}
	defer func() {
		if err != nil {
			g.Close()
			g = nil
		}
	}()
	if g.nflog, err = openNflog(g.refusedPacket); err != nil {
		return g, fmt.Errorf("netguard: refusal log: %w", err)
	}
	g.group = g.nflog.group
	if g.dns, err = startResolver(g); err != nil {
		return g, fmt.Errorf("netguard: resolver on %s: %w", cfg.Gateway, err)
	}
	if g.proxy, err = startProxy(g); err != nil {
		return g, fmt.Errorf("netguard: proxy on %s: %w", cfg.Gateway, err)
	}
	if err = g.install(ctx); err != nil {
		return g, err
	}
	g.wg.Add(1)
	go g.watch()
	return g, nil
}

// ID is the guard's id, as in its chain names.
func (g *Guard) ID() string { return g.cfg.ID }

// Resolver is the address sandboxes use as their only name server.
func (g *Guard) Resolver() netip.Addr { return g.cfg.Gateway }

func (g *Guard) chain(suffix string) string { return ChainPrefix + g.cfg.ID + "-" + suffix }

// refuse reasons: each has a chain that logs the packet to the guard's
// NFLOG group with the reason as prefix, then rejects it.
var refuseReasons = map[string]string{
	"deny":    "", // the reason comes from the destination address (private, metadata, ...)
	"host":    "the host's own address",
	"port":    "blocked port",
	"dns":     "DNS goes only through cronium's resolver",
	"service": "not an allowed internal service",
	"proto":   "only TCP through the proxy with allow_domains",
	"ipv6":    "IPv6 is not routed for sandboxes",
}

// base returns the guard's shared rules: dispatch chains, refuse chains and
// the jumps from the built-in chains. Traffic of an address with no lease
// falls through to a drop.
func (g *Guard) base() (filter, nat, filter6 string) {
	br, gw := g.cfg.Bridge, g.cfg.Gateway.String()
	var f, n, f6 strings.Builder
	f.WriteString("*filter\n")
	for _, c := range []string{"F", "H"} {
		fmt.Fprintf(&f, ":%s - [0:0]\n", g.chain(c))
	}
	reasons := make([]string, 0, len(refuseReasons))
	for r := range refuseReasons {
		reasons = append(reasons, r)
	}
	sort.Strings(reasons)
	for _, r := range reasons {
		c := g.chain("R-" + r)
		fmt.Fprintf(&f, ":%s - [0:0]\n", c)
		fmt.Fprintf(&f, "-A %s -j NFLOG --nflog-group %d --nflog-prefix %s --nflog-size 64\n", c, g.group, r)
		fmt.Fprintf(&f, "-A %s -p tcp -j REJECT --reject-with tcp-reset\n", c)
		fmt.Fprintf(&f, "-A %s -j REJECT --reject-with icmp-port-unreachable\n", c)
	}
	// Per-lease jumps are inserted above these defaults.
	fmt.Fprintf(&f, "-A %s -i %s -j DROP\n", g.chain("F"), br)
	fmt.Fprintf(&f, "-A %s -o %s -j DROP\n", g.chain("F"), br)
	fmt.Fprintf(&f, "-A %s -d %s -p udp --dport 53 -j ACCEPT\n", g.chain("H"), gw)
	fmt.Fprintf(&f, "-A %s -d %s -p tcp --dport 53 -j ACCEPT\n", g.chain("H"), gw)
	fmt.Fprintf(&f, "-A %s -d %s -p tcp --dport %d -j ACCEPT\n", g.chain("H"), gw, g.proxy.port)
	fmt.Fprintf(&f, "-A %s -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT\n", g.chain("H"))
	// Per-lease host chains are inserted here; an address without one is refused.
	fmt.Fprintf(&f, "-A %s -j %s\n", g.chain("H"), g.chain("R-host"))
	fmt.Fprintf(&f, "-I INPUT 1 -i %s -j %s\n", br, g.chain("H"))
	fmt.Fprintf(&f, "-I DOCKER-USER 1 -i %s -j %s\n", br, g.chain("F"))
	fmt.Fprintf(&f, "-I DOCKER-USER 1 -o %s -j %s\n", br, g.chain("F"))
	f.WriteString("COMMIT\n")

	n.WriteString("*nat\n")
	fmt.Fprintf(&n, ":%s - [0:0]\n", g.chain("P"))
	fmt.Fprintf(&n, "-I PREROUTING 1 -i %s -j %s\n", br, g.chain("P"))
	fmt.Fprintf(&n, ":%s - [0:0]\n", g.chain("M"))
	fmt.Fprintf(&n, "-A %s -s %s ! -o %s -j MASQUERADE\n", g.chain("M"), g.cfg.Subnet, br)
	fmt.Fprintf(&n, "-I POSTROUTING 1 -j %s\n", g.chain("M"))
	n.WriteString("COMMIT\n")

	// No IPv6 at all: sandboxes also get disable_ipv6, this is the second lock.
	f6.WriteString("*filter\n")
	fmt.Fprintf(&f6, ":%s - [0:0]\n", g.chain("6"))
	fmt.Fprintf(&f6, "-A %s -j DROP\n", g.chain("6"))
	fmt.Fprintf(&f6, "-I INPUT 1 -i %s -j %s\n", br, g.chain("6"))
	fmt.Fprintf(&f6, "-I FORWARD 1 -i %s -j %s\n", br, g.chain("6"))
	fmt.Fprintf(&f6, "-I FORWARD 1 -o %s -j %s\n", br, g.chain("6"))
	f6.WriteString("COMMIT\n")
	return f.String(), n.String(), f6.String()
}

// install removes any rules of this guard's id and installs the base rules
// and every lease's rules.
func (g *Guard) install(ctx context.Context) error {
	g.removeRules(ctx)
	// DOCKER-USER exists once dockerd has started; create it if the engine
	// does not manage iptables, and make sure FORWARD reaches it.
	if _, err := run(ctx, nil, "iptables", "-w", "5", "-n", "-L", "DOCKER-USER"); err != nil {
		if _, err := run(ctx, nil, "iptables", "-w", "5", "-N", "DOCKER-USER"); err != nil {
			return fmt.Errorf("netguard: create DOCKER-USER: %w", err)
		}
		if _, err := run(ctx, nil, "iptables", "-w", "5", "-I", "FORWARD", "1", "-j", "DOCKER-USER"); err != nil {
			return fmt.Errorf("netguard: jump to DOCKER-USER: %w", err)
		}
	}
	f, n, f6 := g.base()
	if err := restore(ctx, false, f); err != nil {
		return fmt.Errorf("netguard: %w", err)
	}
	if err := restore(ctx, false, n); err != nil {
		return fmt.Errorf("netguard: %w", err)
	}
	if err := restore(ctx, true, f6); err != nil {
		return fmt.Errorf("netguard: %w", err)
	}
	g.mu.Lock()
	leases := make([]*Lease, 0, len(g.leases))
	for _, l := range g.leases {
		leases = append(leases, l)
	}
	g.mu.Unlock()
	for _, l := range leases {
		if err := l.apply(ctx); err != nil {
			return err
		}
	}
	return nil
}

func (g *Guard) removeRules(ctx context.Context) {
	prefix := ChainPrefix + g.cfg.ID + "-"
	for _, t := range []struct {
		v6    bool
		table string
	}{{false, "filter"}, {false, "nat"}, {true, "filter"}} {
		if err := removePrefix(ctx, t.v6, t.table, prefix); err != nil {
			g.log.Error("remove firewall rules", "guard", g.cfg.ID, "table", t.table, "err", err)
		}
	}
}

// watch re-installs the rules if something (an engine restart, a firewall
// reload) removed the guard's jumps, and stops at Close.
func (g *Guard) watch() {
	defer g.wg.Done()
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-g.stop:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		if !g.intact(ctx) {
			g.log.Warn("firewall rules of the sandbox network were changed; re-applying", "guard", g.cfg.ID)
			if err := g.install(ctx); err != nil {
				g.log.Error("re-apply firewall rules", "guard", g.cfg.ID, "err", err)
			}
		}
		cancel()
	}
}

// intact reports whether the jumps into the guard's chains are in place.
func (g *Guard) intact(ctx context.Context) bool {
	for _, c := range [][]string{
		{"-C", "INPUT", "-i", g.cfg.Bridge, "-j", g.chain("H")},
		{"-C", "DOCKER-USER", "-i", g.cfg.Bridge, "-j", g.chain("F")},
		{"-C", "DOCKER-USER", "-o", g.cfg.Bridge, "-j", g.chain("F")},
	} {
		if _, err := run(ctx, nil, "iptables", append([]string{"-w", "5"}, c...)...); err != nil {
			return false
		}
	}
	dump, err := save(ctx, false, "filter")
	if err != nil {
		return false
	}
	// DOCKER-USER must send the bridge's traffic to us before anything accepts it.
	for _, line := range strings.Split(dump, "\n") {
		if strings.Contains(line, "-A FORWARD ") {
			return strings.Contains(line, "-j DOCKER-USER")
		}
	}
	return true
}

// Close removes every lease's rules, the base rules, and stops the resolver, proxy and log.
func (g *Guard) Close() error {
	select {
	case <-g.stop:
		return nil
	default:
		close(g.stop)
	}
	g.wg.Wait()
	g.mu.Lock()
	leases := make([]*Lease, 0, len(g.leases))
	for _, l := range g.leases {
		leases = append(leases, l)
	}
	g.mu.Unlock()
	for _, l := range leases {
		l.Release()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	g.removeRules(ctx)
	if g.proxy != nil {
		g.proxy.close()
	}
	if g.dns != nil {
		g.dns.close()
	}
	if g.nflog != nil {
		g.nflog.close()
	}
	removeLinks("crn" + g.cfg.ID)
	return nil
}

// Sweep removes the rules and devices of guards whose ids are not in live:
// what a process that died left behind.
func Sweep(ctx context.Context, live map[string]bool) (removed []string, err error) {
	dump, err := save(ctx, false, "filter")
	if err != nil {
		return nil, err
	}
	for _, id := range chainIDs(dump) {
		if live[id] {
			continue
		}
		for _, t := range []struct {
			v6    bool
			table string
		}{{false, "filter"}, {false, "nat"}, {true, "filter"}} {
			if e := removePrefix(ctx, t.v6, t.table, ChainPrefix+id+"-"); e != nil && err == nil {
				err = e
			}
		}
		removeLinks("crn" + id)
		removed = append(removed, id)
	}
	return removed, err
}

// Lease is one sandbox address with its policy. Methods are safe for concurrent use.
type Lease struct {
	g      *Guard
	ip     netip.Addr
	n      string // the address's host part, naming its chains
	id     string // the execution or sandbox it was taken for
	policy cronium.NetworkPolicy
	ports  []int
	eps    []cronium.ServiceEndpoint

	mu       sync.Mutex
	refused  int64 // by the proxy and resolver; packet refusals are in the counters
	logged   int64 // refusals the NFLOG reader attributed to this lease
	details  []string
	seen     map[string]bool
	proxyIn  int64
	proxyOut int64
	conns    map[net.Conn]bool
	ifb      string
	veth     string               // the host end of the sandbox's link, once Link ran
	base     cronium.NetworkUsage // counters at the start of the current run
	released bool
}

// Attach takes a free address for id and installs its rules. The sandbox
// must be created with that address and Resolver as its only name server.
func (g *Guard) Attach(ctx context.Context, id string, p cronium.NetworkPolicy) (*Lease, error) {
	if err := p.Normalize("network"); err != nil {
		return nil, err
	}
	if !p.Networked() {
		return nil, fmt.Errorf("netguard: mode %q has no network to guard", p.Mode)
	}
	l := &Lease{g: g, id: id, policy: p, seen: map[string]bool{}, conns: map[net.Conn]bool{}}
	for _, s := range p.AllowServices {
		eps, ok := g.services[s]
		if !ok {
			return nil, cronium.Invalid("network.allow_services", s, "is not an internal service defined by the operator (network.internal_services)")
		}
		l.eps = append(l.eps, eps...)
	}
	l.ports = append(append([]int(nil), g.cfg.BlockedPorts...), p.BlockedPorts...)
	sort.Ints(l.ports)
	g.mu.Lock()
	if len(g.free) == 0 {
		g.mu.Unlock()
		return nil, fmt.Errorf("netguard: no free address on %s", g.cfg.Subnet)
	}
	l.ip, g.free = g.free[0], g.free[1:]
	g.leases[l.ip] = l
	g.mu.Unlock()
	b := l.ip.As4()
	l.n = strconv.Itoa(int(b[2])) + "." + strconv.Itoa(int(b[3]))
	if err := l.apply(ctx); err != nil {
		l.Release()
		return nil, err
	}
	return l, nil
}

// IP is the sandbox's address.
func (l *Lease) IP() netip.Addr { return l.ip }

// Policy is the policy being enforced.
func (l *Lease) Policy() cronium.NetworkPolicy { return l.policy }

func (l *Lease) chain(kind string) string { return l.g.chain(l.n + "-" + kind) }

// rules returns the lease's filter and nat rules.
func (l *Lease) rules() (filter, nat string) {
	g, p := l.g, l.policy
	br, ip, gw := g.cfg.Bridge, l.ip.String(), g.cfg.Gateway.String()
	O, I, H, N := l.chain("O"), l.chain("I"), l.chain("H"), l.chain("N")
	refuse := func(r string) string { return g.chain("R-" + r) }
	var f, n strings.Builder
	f.WriteString("*filter\n")
	for _, c := range []string{O, I, H} {
		fmt.Fprintf(&f, ":%s - [0:0]\n", c)
	}
	fmt.Fprintf(&f, "-I %s 1 -i %s -s %s -j %s\n", g.chain("F"), br, ip, O)
	fmt.Fprintf(&f, "-I %s 1 -o %s -d %s -j %s\n", g.chain("F"), br, ip, I)
	// Host chain: after the shared accepts (resolver, proxy, replies).
	fmt.Fprintf(&f, "-I %s 5 -s %s -j %s\n", g.chain("H"), ip, H)
	if p.Mode == cronium.NetworkFull {
		for _, r := range portRanges(l.ports) {
			fmt.Fprintf(&f, "-A %s -p tcp -m multiport --dports %s -j %s\n", H, r, refuse("port"))
		}
		fmt.Fprintf(&f, "-A %s -j ACCEPT\n", H)
	} else {
		fmt.Fprintf(&f, "-A %s -j %s\n", H, refuse("host"))
	}
	// Into the sandbox: only replies.
	fmt.Fprintf(&f, "-A %s -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT\n", I)
	fmt.Fprintf(&f, "-A %s -j DROP\n", I)
	// Out of the sandbox.
	fmt.Fprintf(&f, "-A %s -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT\n", O)
	for _, r := range portRanges(l.ports) {
		fmt.Fprintf(&f, "-A %s -p tcp -m multiport --dports %s -j %s\n", O, r, refuse("port"))
		fmt.Fprintf(&f, "-A %s -p udp -m multiport --dports %s -j %s\n", O, r, refuse("port"))
	}
	denyAll := func() {
		for _, pfx := range cronium.DeniedPrefixes() {
			if pfx.Addr().Is4() {
				fmt.Fprintf(&f, "-A %s -d %s -j %s\n", O, pfx, refuse("deny"))
			}
		}
	}
	switch {
	case p.Mode == cronium.NetworkInternal:
		for _, e := range l.eps {
			fmt.Fprintf(&f, "-A %s -d %s -p tcp --dport %d -j ACCEPT\n", O, e.Prefix, e.Port)
		}
		fmt.Fprintf(&f, "-A %s -j %s\n", O, refuse("service"))
	case p.Allowlist():
		// TCP never gets here: it is redirected to the proxy. Nothing else may leave.
		fmt.Fprintf(&f, "-A %s -j %s\n", O, refuse("proto"))
	case p.Mode == cronium.NetworkEgress:
		fmt.Fprintf(&f, "-A %s -p udp --dport 53 -j %s\n", O, refuse("dns"))
		fmt.Fprintf(&f, "-A %s -p tcp --dport 53 -j %s\n", O, refuse("dns"))
		fmt.Fprintf(&f, "-A %s -p udp --dport 853 -j %s\n", O, refuse("dns"))
		fmt.Fprintf(&f, "-A %s -p tcp --dport 853 -j %s\n", O, refuse("dns"))
		denyAll()
		fmt.Fprintf(&f, "-A %s -j ACCEPT\n", O)
	case p.Mode == cronium.NetworkFull:
		if !g.cfg.AllowMetadata {
			fmt.Fprintf(&f, "-A %s -d 169.254.0.0/16 -j %s\n", O, refuse("deny"))
		}
		fmt.Fprintf(&f, "-A %s -j ACCEPT\n", O)
	}
	f.WriteString("COMMIT\n")

	n.WriteString("*nat\n")
	fmt.Fprintf(&n, ":%s - [0:0]\n", N)
	fmt.Fprintf(&n, "-I %s 1 -s %s -j %s\n", g.chain("P"), ip, N)
	if p.Allowlist() {
		fmt.Fprintf(&n, "-A %s -d %s -j RETURN\n", N, gw)
		fmt.Fprintf(&n, "-A %s -p tcp -j REDIRECT --to-ports %d\n", N, g.proxy.port)
	}
	n.WriteString("COMMIT\n")
	return f.String(), n.String()
}

// portRanges writes ports as multiport lists of at most 15.
func portRanges(ports []int) []string {
	var out []string
	for i := 0; i < len(ports); i += 15 {
		j := min(i+15, len(ports))
		s := make([]string, 0, j-i)
		for _, p := range ports[i:j] {
			s = append(s, strconv.Itoa(p))
		}
		out = append(out, strings.Join(s, ","))
	}
	return out
}

// faults are setup steps made to fail by InjectFault.
var faults sync.Map

// InjectFault makes the next setup step named step ("rules" or "link")
// fail with err. Tests use it to prove that a failed setup fails the run.
func InjectFault(step string, err error) { faults.Store(step, err) }

func fault(step string) error {
	if v, ok := faults.LoadAndDelete(step); ok {
		return v.(error)
	}
	return nil
}

func (l *Lease) apply(ctx context.Context) error {
	if err := fault("rules"); err != nil {
		return fmt.Errorf("netguard: rules for %s: %w", l.id, err)
	}
	f, n := l.rules()
	if err := restore(ctx, false, f); err != nil {
		return fmt.Errorf("netguard: rules for %s: %w", l.id, err)
	}
	if err := restore(ctx, false, n); err != nil {
		return fmt.Errorf("netguard: redirect for %s: %w", l.id, err)
	}
	return nil
}

// Release removes the lease's rules, devices and proxy connections and frees
// its address. Call it once the sandbox is gone. Safe to call twice.
func (l *Lease) Release() {
	g := l.g
	l.mu.Lock()
	if l.released {
		l.mu.Unlock()
		return
	}
	l.released = true
	ifb := l.ifb
	l.mu.Unlock()
	l.DropConnections()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if ifb != "" {
		deleteLink(ifb)
	}
	br, ip := g.cfg.Bridge, l.ip.String()
	f := fmt.Sprintf("*filter\n-D %s -i %s -s %s -j %s\n-D %s -o %s -d %s -j %s\n-D %s -s %s -j %s\n",
		g.chain("F"), br, ip, l.chain("O"), g.chain("F"), br, ip, l.chain("I"), g.chain("H"), ip, l.chain("H"))
	for _, c := range []string{"O", "I", "H"} {
		f += fmt.Sprintf("-F %s\n-X %s\n", l.chain(c), l.chain(c))
	}
	f += "COMMIT\n"
	n := fmt.Sprintf("*nat\n-D %s -s %s -j %s\n-F %s\n-X %s\nCOMMIT\n", g.chain("P"), ip, l.chain("N"), l.chain("N"), l.chain("N"))
	freed := true
	for _, r := range []string{f, n} {
		if err := restore(ctx, false, r); err != nil {
			// Do not hand the address out again while stale rules may match it;
			// the guard's Close or the next sweep removes them.
			g.log.Error("remove a sandbox's firewall rules", "id", l.id, "err", err)
			freed = false
		}
	}
	g.mu.Lock()
	delete(g.leases, l.ip)
	if freed {
		g.free = append(g.free, l.ip)
	}
	g.mu.Unlock()
}

// DropConnections closes the lease's open proxy connections: a reused
// sandbox's next run starts with none of the previous run's.
func (l *Lease) DropConnections() {
	l.mu.Lock()
	conns := l.conns
	l.conns = map[net.Conn]bool{}
	l.mu.Unlock()
	for c := range conns {
		c.Close()
	}
}

// refuse records a refusal found by the proxy or the resolver.
func (l *Lease) refuse(desc string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.refused++
	l.note(desc)
}

// note keeps the first MaxRefusals distinct descriptions. l.mu is held.
func (l *Lease) note(desc string) {
	if !l.seen[desc] && len(l.details) < 4*cronium.MaxRefusals {
		l.seen[desc] = true
		l.details = append(l.details, desc)
	}
}

func (g *Guard) lease(ip netip.Addr) *Lease {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.leases[ip.Unmap()]
}

// refusedPacket is called by the NFLOG reader for every refused packet.
func (g *Guard) refusedPacket(reason string, src, dst netip.Addr, proto string, port int) {
	l := g.lease(src)
	if l == nil {
		return
	}
	why := refuseReasons[reason]
	if reason == "deny" {
		why, _ = cronium.DeniedIP(dst)
	}
	if why == "" {
		why = reason
	}
	target := dst.String()
	if port > 0 {
		target = netip.AddrPortFrom(dst, uint16(port)).String()
	}
	l.mu.Lock()
	l.logged++
	l.note(fmt.Sprintf("%s/%s (%s)", target, proto, why))
	l.mu.Unlock()
}

// Usage returns what the sandbox did on the network since the last call
// of StartRun (or since Attach): bytes through the firewall and the proxy,
// refusals. It waits briefly for the refusal log to catch up with the
// firewall's counters, so the details are complete.
func (l *Lease) Usage(ctx context.Context) cronium.NetworkUsage {
	u := l.total(ctx)
	l.mu.Lock()
	base := l.base
	details := append([]string(nil), l.details...)
	l.mu.Unlock()
	u.BytesIn -= base.BytesIn
	u.BytesOut -= base.BytesOut
	u.Refused -= base.Refused
	skip := len(base.Refusals)
	if skip <= len(details) {
		details = details[skip:]
	}
	if len(details) > cronium.MaxRefusals {
		details = details[:cronium.MaxRefusals]
	}
	u.Refusals = details
	return u
}

// total reads the counters since Attach.
func (l *Lease) total(ctx context.Context) cronium.NetworkUsage {
	O, I, H := l.chain("O"), l.chain("I"), l.chain("H")
	var pkts int64
	var cs map[string]*chainCounters
	for wait := 0; wait < 20; wait++ {
		cs = map[string]*chainCounters{O: {}, I: {}, H: {}}
		if dump, err := save(ctx, false, "filter"); err == nil {
			readCounters(dump, cs)
		}
		pkts = cs[O].refusedPkts + cs[H].refusedPkts
		l.mu.Lock()
		caught := l.logged >= pkts
		l.mu.Unlock()
		if caught {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	u := cronium.NetworkUsage{Refused: pkts + l.refused, Refusals: l.details}
	// Bytes are what crossed the sandbox's link, as IP packets, after any
	// shaping: the host end's transmit counters for traffic in; for traffic
	// out, the IFB's transmit counters when shaped (packets the bucket
	// dropped are retransmitted and must not count twice), else the host
	// end's receive counters. The link layer's 14 bytes a packet are not counted.
	if _, _, tx, txp, ok := linkStats(l.veth); ok && l.veth != "" {
		u.BytesIn = tx - 14*txp
		if rx, rxp, _, _, ok := linkStats(l.veth); ok {
			u.BytesOut = rx - 14*rxp
		}
		if l.ifb != "" {
			if _, _, tx, txp, ok := linkStats(l.ifb); ok {
				u.BytesOut = tx - 14*txp
			}
		}
	} else {
		u.BytesIn, u.BytesOut = cs[I].acceptBytes+l.proxyIn, cs[O].acceptBytes+l.proxyOut
	}
	return u
}

// StartRun marks the start of a run in a reused sandbox: Usage then counts from here.
func (l *Lease) StartRun(ctx context.Context) {
	t := l.total(ctx)
	l.mu.Lock()
	l.base = t
	l.base.Refusals = l.details[:len(l.details):len(l.details)]
	l.mu.Unlock()
}

// hostResolvers reads the name servers of /etc/resolv.conf.
func hostResolvers() []string {
	var out []string
	for _, s := range readResolvConf("/etc/resolv.conf") {
		out = append(out, net.JoinHostPort(s, "53"))
	}
	return out
}
