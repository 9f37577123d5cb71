// Package netguard enforces network policies on the host side of a
// sandbox's link, for engines whose sandboxes sit on a Linux bridge
// (Docker, rootful Podman). The script keeps no capability: every rule,
// the resolver, the filtering proxy and the bandwidth shaping live on the host.
//
// One Guard owns one Linux bridge and a /24 on it; the container engine
// is not involved (sandboxes are created without a network, and the guard
// plumbs a veth into each, as a CNI plugin would). Each networked sandbox
// gets a fixed address and a Lease: its own iptables chains (keyed by that
// address), an entry in the resolver and proxy, an isolated bridge port and
// optionally a bandwidth cap. Traffic from an address without a lease is dropped, so a missing
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
	mrand "math/rand/v2"
	"net"
	"net/netip"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	cronium "github.com/cronium/executor"
)

// DefaultBlockedPorts are refused in every networked mode unless the operator says otherwise: SMTP.
var DefaultBlockedPorts = []int{25, 465, 587}

// Config configures a Guard.
type Config struct {
	// ID names the guard's chains ("CRN-<ID>-...") and devices. 6 hex digits; default random.
	ID string
	// Pool is the range the guard takes a free /24 from. Default 10.213.0.0/16.
	Pool netip.Prefix
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
	bridge   string
	subnet   netip.Prefix
	gateway  netip.Addr
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

	// ruleMu orders changes to the guard's rules: a full re-install, one
	// lease's rules going in or out, and the check that decides a re-install.
	ruleMu sync.Mutex

	stop    chan struct{}
	wg      sync.WaitGroup
	pending sync.WaitGroup // lease removals in the background
}

// Settle waits until every released lease's rules and devices are gone.
func (g *Guard) Settle() { g.pending.Wait() }

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
	if !cfg.Pool.IsValid() {
		cfg.Pool = netip.MustParsePrefix("10.213.0.0/16")
	}
	if cfg.Pool.Bits() > 24 || !cfg.Pool.Addr().Is4() {
		return nil, fmt.Errorf("netguard: pool %s: want an IPv4 range of /24 or larger", cfg.Pool)
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
	g.bridge = "br-crn" + cfg.ID
	// Not while another process sweeps: it could take the new guard for a dead one.
	unlock, err := lockHost()
	if err != nil {
		return nil, err
	}
	defer unlock()
	defer func() {
		if err != nil {
			g.Close()
			g = nil
		}
	}()
	if err = g.makeBridge(ctx); err != nil {
		return g, err
	}
	for a := g.subnet.Addr().Next(); g.subnet.Contains(a); a = a.Next() {
		if a != g.gateway && a.Next().IsValid() && g.subnet.Contains(a.Next()) { // skip the broadcast address
			g.free = append(g.free, a)
		}
	}
	if g.nflog, err = openNflog(g.refusedPacket); err != nil {
		return g, fmt.Errorf("netguard: refusal log: %w", err)
	}
	g.group = g.nflog.group
	if g.dns, err = startResolver(g); err != nil {
		return g, fmt.Errorf("netguard: resolver on %s: %w", g.gateway, err)
	}
	if g.proxy, err = startProxy(g); err != nil {
		return g, fmt.Errorf("netguard: proxy on %s: %w", g.gateway, err)
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
func (g *Guard) Resolver() netip.Addr { return g.gateway }

// Bridge is the host interface the sandboxes are plugged into.
func (g *Guard) Bridge() string { return g.bridge }

// Subnet is the sandboxes' address range.
func (g *Guard) Subnet() netip.Prefix { return g.subnet }

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
	"sandbox": "another sandbox",
}

// base returns the guard's shared rules: dispatch chains, refuse chains and
// the jumps from the built-in chains. Traffic of an address with no lease
// falls through to a drop.
func (g *Guard) base() (filter, nat, filter6 string) {
	br, gw := g.bridge, g.gateway.String()
	var f, n, f6 strings.Builder
	f.WriteString("*filter\n")
	for _, c := range []string{"F", "H", "FL", "HL"} {
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
	// Per-lease jumps are appended to FL and HL (appends need no rule
	// positions, which concurrent changes would make stale); what they do
	// not take falls through to the drops and refusals after them.
	// Traffic from another cronium bridge is decided by that bridge's guard,
	// which refuses it in every mode and reports it to the sender: return
	// to DOCKER-USER so that its jump is reached, whichever came first.
	fmt.Fprintf(&f, "-A %s -i %s -o %s -j %s\n", g.chain("F"), br, br, g.chain("R-sandbox"))
	fmt.Fprintf(&f, "-A %s -i br-crn+ -o %s -j RETURN\n", g.chain("F"), br)
	fmt.Fprintf(&f, "-A %s -j %s\n", g.chain("F"), g.chain("FL"))
	fmt.Fprintf(&f, "-A %s -i %s -j DROP\n", g.chain("F"), br)
	fmt.Fprintf(&f, "-A %s -o %s -j DROP\n", g.chain("F"), br)
	fmt.Fprintf(&f, "-A %s -d %s -p udp --dport 53 -j ACCEPT\n", g.chain("H"), gw)
	fmt.Fprintf(&f, "-A %s -d %s -p tcp --dport 53 -j ACCEPT\n", g.chain("H"), gw)
	fmt.Fprintf(&f, "-A %s -d %s -p tcp --dport %d -j ACCEPT\n", g.chain("H"), gw, g.proxy.port)
	fmt.Fprintf(&f, "-A %s -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT\n", g.chain("H"))
	fmt.Fprintf(&f, "-A %s -j %s\n", g.chain("H"), g.chain("HL"))
	// Per-lease host chains are inserted here; an address without one is refused.
	fmt.Fprintf(&f, "-A %s -j %s\n", g.chain("H"), g.chain("R-host"))
	fmt.Fprintf(&f, "-I INPUT 1 -i %s -j %s\n", br, g.chain("H"))
	fmt.Fprintf(&f, "-I DOCKER-USER 1 -i %s -j %s\n", br, g.chain("F"))
	fmt.Fprintf(&f, "-I DOCKER-USER 1 -o %s -j %s\n", br, g.chain("F"))
	// A backstop at the end of FORWARD: if the jumps above are lost (an
	// engine restart, a firewall tool), the bridge's traffic is still dropped
	// rather than left to the chain's policy.
	fmt.Fprintf(&f, ":%s - [0:0]\n-A %s -j DROP\n", g.chain("X"), g.chain("X"))
	fmt.Fprintf(&f, "-A FORWARD -i %s -j %s\n", br, g.chain("X"))
	fmt.Fprintf(&f, "-A FORWARD -o %s -j %s\n", br, g.chain("X"))
	f.WriteString("COMMIT\n")

	n.WriteString("*nat\n")
	fmt.Fprintf(&n, ":%s - [0:0]\n", g.chain("P"))
	fmt.Fprintf(&n, "-I PREROUTING 1 -i %s -j %s\n", br, g.chain("P"))
	fmt.Fprintf(&n, ":%s - [0:0]\n", g.chain("M"))
	fmt.Fprintf(&n, "-A %s -s %s ! -o %s -j MASQUERADE\n", g.chain("M"), g.subnet, br)
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
	leases := g.current()
	for _, l := range leases {
		if !l.applied {
			continue // its Attach applies it once this install is done
		}
		if err := l.apply(ctx); err != nil {
			return err
		}
	}
	return nil
}

func (g *Guard) removeRules(ctx context.Context) {
	if err := removeChains(ctx, g.cfg.ID); err != nil {
		g.log.Error("remove firewall rules", "guard", g.cfg.ID, "err", err)
	}
}

// removeChains removes the chains of guard id, and the jumps to them, from
// every table the guards use.
func removeChains(ctx context.Context, id string) error {
	var first error
	for _, t := range []struct {
		v6    bool
		table string
	}{{false, "filter"}, {false, "nat"}, {true, "filter"}} {
		if err := removePrefix(ctx, t.v6, t.table, ChainPrefix+id+"-"); err != nil && first == nil {
			first = fmt.Errorf("%s: %w", t.table, err)
		}
	}
	return first
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
		g.ruleMu.Lock()
		if !g.intact(ctx) {
			g.log.Warn("firewall rules of the sandbox network were changed; re-applying", "guard", g.cfg.ID)
			if err := g.install(ctx); err != nil {
				g.log.Error("re-apply firewall rules", "guard", g.cfg.ID, "err", err)
			}
		}
		g.ruleMu.Unlock()
		cancel()
	}
}

// intact reports whether the jumps into the guard's chains are in place.
func (g *Guard) intact(ctx context.Context) bool {
	dump, err := save(ctx, false, "filter")
	if err != nil {
		return false
	}
	for _, jump := range []string{
		"-A INPUT -i " + g.bridge + " -j " + g.chain("H"),
		"-A DOCKER-USER -i " + g.bridge + " -j " + g.chain("F"),
		"-A DOCKER-USER -o " + g.bridge + " -j " + g.chain("F"),
	} {
		if !strings.Contains(dump, jump+"\n") {
			return false
		}
	}
	// Every applied lease's chains must be there (one being attached is not yet).
	for _, l := range g.current() {
		if l.applied && (!strings.Contains(dump, ":"+l.chain("O")+" ") || !strings.Contains(dump, "-j "+l.chain("O"))) {
			return false
		}
	}
	// DOCKER-USER must send the bridge's traffic to us before anything accepts it.
	for _, line := range strings.Split(dump, "\n") {
		if strings.Contains(line, "-A FORWARD ") {
			return strings.Contains(line, "-j DOCKER-USER")
		}
	}
	return true
}

// current lists the leases now held.
func (g *Guard) current() []*Lease {
	g.mu.Lock()
	defer g.mu.Unlock()
	leases := make([]*Lease, 0, len(g.leases))
	for _, l := range g.leases {
		leases = append(leases, l)
	}
	return leases
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
	leases := g.current()
	for _, l := range leases {
		l.Release()
	}
	g.pending.Wait()
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
	removeLinks("crv" + g.cfg.ID)
	deleteLink(g.bridge)
	return nil
}

// Sweep removes the bridges, rules and devices of guards whose process
// has died (unless a sandbox is still plugged into the bridge: a
// re-attached execution), and of guards that have no bridge any more.
func Sweep(ctx context.Context) (removed []string, err error) {
	unlock, err := lockHost()
	if err != nil {
		return nil, err
	}
	defer unlock()
	// The rules first, then the bridges: a guard's bridge exists before its
	// chains, so a guard set up in between is never taken for a dead one.
	dump, err := save(ctx, false, "filter")
	if err != nil {
		return nil, err
	}
	live := map[string]bool{}
	for _, br := range Links("br-crn") {
		id := strings.TrimPrefix(br, "br-crn")
		b, _ := os.ReadFile("/sys/class/net/" + br + "/ifalias")
		owner := strings.TrimPrefix(strings.TrimSpace(string(b)), "cronium owner=")
		ports, _ := os.ReadDir("/sys/class/net/" + br + "/brif")
		// No owner yet: another process is creating it right now.
		if owner == "" || ownerAlive(owner) || len(ports) > 0 {
			live[id] = true
			continue
		}
		deleteLink(br)
	}
	for _, id := range chainIDs(dump) {
		if live[id] {
			continue
		}
		if e := removeChains(ctx, id); e != nil && err == nil {
			err = e
		}
		removeLinks("crn" + id)
		removeLinks("crv" + id)
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
	conns    map[net.Conn]bool
	ifb      string
	veth     string               // the host end of the sandbox's link, once Link ran
	base     cronium.NetworkUsage // counters at the start of the current run
	released bool
	applied  bool // its rules are in; guarded by the guard's ruleMu
	// audit logs every new connection the sandbox opens (AttachAudited);
	// dests are their destinations, in order, at most MaxRefusals.
	audit bool
	dests []string
}

// Attach takes a free address for id and installs its rules. The sandbox
// must be created with that address and Resolver as its only name server.
func (g *Guard) Attach(ctx context.Context, id string, p cronium.NetworkPolicy) (*Lease, error) {
	return g.attach(ctx, id, p, false)
}

// AttachAudited is Attach for a run whose connections are audited: every
// new connection it opens (out of the sandbox, or to the host in full
// mode) is logged, and Usage lists the destinations (the audit of a
// compat run says what the strict profile, with no network, would stop).
func (g *Guard) AttachAudited(ctx context.Context, id string, p cronium.NetworkPolicy) (*Lease, error) {
	return g.attach(ctx, id, p, true)
}

func (g *Guard) attach(ctx context.Context, id string, p cronium.NetworkPolicy, audit bool) (*Lease, error) {
	if err := p.Normalize("network"); err != nil {
		return nil, err
	}
	if !p.Networked() {
		return nil, fmt.Errorf("netguard: mode %q has no network to guard", p.Mode)
	}
	l := &Lease{g: g, id: id, policy: p, seen: map[string]bool{}, conns: map[net.Conn]bool{}, audit: audit}
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
		return nil, fmt.Errorf("netguard: no free address on %s", g.subnet)
	}
	l.ip, g.free = g.free[0], g.free[1:]
	g.leases[l.ip] = l
	g.mu.Unlock()
	b := l.ip.As4()
	l.n = strconv.Itoa(int(b[2])) + "." + strconv.Itoa(int(b[3]))
	g.ruleMu.Lock()
	err := l.apply(ctx)
	l.applied = err == nil
	g.ruleMu.Unlock()
	if err != nil {
		l.Release()
		return nil, err
	}
	return l, nil
}

func (l *Lease) chain(kind string) string { return l.g.chain(l.n + "-" + kind) }

// rules returns the lease's filter and nat rules.
func (l *Lease) rules() (filter, nat string) {
	g, p := l.g, l.policy
	br, ip := g.bridge, l.ip.String()
	O, I, H, N := l.chain("O"), l.chain("I"), l.chain("H"), l.chain("N")
	refuse := func(r string) string { return g.chain("R-" + r) }
	var f, n strings.Builder
	f.WriteString("*filter\n")
	for _, c := range []string{O, I, H} {
		fmt.Fprintf(&f, ":%s - [0:0]\n", c)
	}
	fmt.Fprintf(&f, "-A %s -i %s -s %s -j %s\n", g.chain("FL"), br, ip, O)
	fmt.Fprintf(&f, "-A %s -o %s -d %s -j %s\n", g.chain("FL"), br, ip, I)
	// Host chain: after the shared accepts (resolver, proxy, replies).
	fmt.Fprintf(&f, "-A %s -s %s -j %s\n", g.chain("HL"), ip, H)
	auditNew := func(chain string) {
		if l.audit {
			fmt.Fprintf(&f, "-A %s -m conntrack --ctstate NEW -j NFLOG --nflog-group %d --nflog-prefix %s --nflog-size 64\n", chain, g.group, auditPrefix)
		}
	}
	if p.Mode == cronium.NetworkFull {
		auditNew(H)
		for _, r := range portRanges(l.ports) {
			fmt.Fprintf(&f, "-A %s -p tcp -m multiport --dports %s -j %s\n", H, r, refuse("port"))
			fmt.Fprintf(&f, "-A %s -p udp -m multiport --dports %s -j %s\n", H, r, refuse("port"))
		}
		fmt.Fprintf(&f, "-A %s -j ACCEPT\n", H)
	} else {
		fmt.Fprintf(&f, "-A %s -j %s\n", H, refuse("host"))
	}
	// Into the sandbox: only replies.
	fmt.Fprintf(&f, "-A %s -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT\n", I)
	fmt.Fprintf(&f, "-A %s -j DROP\n", I)
	// Out of the sandbox. Never into a sandbox of any cronium process, in any
	// mode: each guard's jumps may come first in DOCKER-USER, so the
	// receiving sandbox's own rules might never be consulted.
	fmt.Fprintf(&f, "-A %s -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT\n", O)
	auditNew(O)
	fmt.Fprintf(&f, "-A %s -o br-crn+ -j %s\n", O, refuse("sandbox"))
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
		// TCP to public addresses never gets here: it is redirected to the
		// proxy. Denied addresses are refused at once; nothing else may leave.
		denyAll()
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
	fmt.Fprintf(&n, "-A %s -s %s -j %s\n", g.chain("P"), ip, N)
	if p.Mode != cronium.NetworkFull {
		// The host's own addresses: no DNAT (a published container port)
		// and no redirect, so the host chain refuses them as the host's.
		fmt.Fprintf(&n, "-A %s -m addrtype --dst-type LOCAL -j ACCEPT\n", N)
	}
	if p.Allowlist() {
		// Denied addresses are not redirected: the filter refuses them at
		// once (Connection refused), with the reason.
		for _, pfx := range cronium.DeniedPrefixes() {
			if pfx.Addr().Is4() {
				fmt.Fprintf(&n, "-A %s -d %s -j RETURN\n", N, pfx)
			}
		}
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
	if err := restore(ctx, false, f+n); err != nil {
		return fmt.Errorf("netguard: rules for %s: %w", l.id, err)
	}
	return nil
}

// Release closes the lease's proxy connections at once, and removes its
// rules and devices and frees its address in the background (Settle waits
// for that). Call it once the sandbox is gone. Safe to call twice.
func (l *Lease) Release() {
	g := l.g
	l.mu.Lock()
	if l.released {
		l.mu.Unlock()
		return
	}
	l.released = true
	l.mu.Unlock()
	l.DropConnections()
	// The sandbox is gone, so nothing can use the rules any more: remove
	// them off the caller's path. The address stays taken until they are gone.
	g.pending.Add(1)
	go func() { // owned by the guard: Close and Settle wait for it
		defer g.pending.Done()
		l.remove()
	}()
}

// remove deletes the lease's devices and rules and frees its address.
func (l *Lease) remove() {
	g := l.g
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	l.mu.Lock()
	ifb, veth := l.ifb, l.veth
	l.mu.Unlock()
	// Forget the address's connections, so that a late packet of one of them
	// never reaches the next sandbox given this address.
	forgetFlows(l.ip)
	for _, dev := range []string{ifb, veth} { // the veth goes with the sandbox's namespace, unless it outlives us
		if _, err := os.Stat("/sys/class/net/" + dev); dev != "" && err == nil {
			deleteLink(dev)
		}
	}
	br, ip := g.bridge, l.ip.String()
	f := fmt.Sprintf("*filter\n-D %s -i %s -s %s -j %s\n-D %s -o %s -d %s -j %s\n-D %s -s %s -j %s\n",
		g.chain("FL"), br, ip, l.chain("O"), g.chain("FL"), br, ip, l.chain("I"), g.chain("HL"), ip, l.chain("H"))
	for _, c := range []string{"O", "I", "H"} {
		f += fmt.Sprintf("-F %s\n-X %s\n", l.chain(c), l.chain(c))
	}
	f += "COMMIT\n"
	n := fmt.Sprintf("*nat\n-D %s -s %s -j %s\n-F %s\n-X %s\nCOMMIT\n", g.chain("P"), ip, l.chain("N"), l.chain("N"), l.chain("N"))
	freed := true
	g.ruleMu.Lock()
	err := restore(ctx, false, f+n)
	l.applied = false
	g.ruleMu.Unlock()
	if err != nil {
		// Do not hand the address out again while stale rules may match it;
		// the guard's Close or the next sweep removes them.
		g.log.Error("remove a sandbox's firewall rules", "id", l.id, "err", err)
		freed = false
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

// auditPrefix marks the logged packets of audited leases' new connections.
const auditPrefix = "audit"

// refusedPacket is called by the NFLOG reader for every refused packet,
// and every new connection of an audited lease.
func (g *Guard) refusedPacket(reason string, src, dst netip.Addr, proto string, port int) {
	l := g.lease(src)
	if l == nil {
		return
	}
	if reason == auditPrefix {
		target := dst.String()
		if port > 0 {
			target = netip.AddrPortFrom(dst, uint16(port)).String()
		}
		target += "/" + proto
		l.mu.Lock()
		if !slices.Contains(l.dests, target) && len(l.dests) < cronium.MaxRefusals {
			l.dests = append(l.dests, target)
		}
		l.mu.Unlock()
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
// of StartRun (or since Attach): bytes that crossed its link, and the
// refusals of the firewall (through the refusal log), the proxy and the
// resolver. It reads no firewall state: it costs microseconds.
func (l *Lease) Usage(ctx context.Context) cronium.NetworkUsage {
	l.g.nflog.sync(50 * time.Millisecond) // refusals logged before the script ended are counted
	u := l.total()
	l.mu.Lock()
	base := l.base
	l.mu.Unlock()
	u.BytesIn -= base.BytesIn
	u.BytesOut -= base.BytesOut
	u.Refused -= base.Refused
	if skip := len(base.Refusals); skip <= len(u.Refusals) {
		u.Refusals = u.Refusals[skip:]
	}
	if len(u.Refusals) > cronium.MaxRefusals {
		u.Refusals = u.Refusals[:cronium.MaxRefusals]
	}
	return u
}

// total is the usage since Attach.
func (l *Lease) total() cronium.NetworkUsage {
	l.mu.Lock()
	defer l.mu.Unlock()
	u := cronium.NetworkUsage{Refused: l.logged + l.refused, Refusals: append([]string(nil), l.details...), Destinations: append([]string(nil), l.dests...)}
	// Bytes are what crossed the sandbox's link, as IP packets, after any
	// shaping: the host end's transmit counters for traffic in; for traffic
	// out, the IFB's transmit counters when shaped (packets the bucket
	// dropped are retransmitted and must not count twice), else the host
	// end's receive counters. The link layer's 14 bytes a packet are not counted.
	if rx, rxp, tx, txp, ok := linkStats(l.veth); ok && l.veth != "" {
		u.BytesIn, u.BytesOut = tx-14*txp, rx-14*rxp
		if l.ifb != "" {
			if _, _, tx, txp, ok := linkStats(l.ifb); ok {
				u.BytesOut = tx - 14*txp
			}
		}
	}
	return u
}

// StartRun marks the start of a run in a reused sandbox: Usage then counts from here.
func (l *Lease) StartRun(ctx context.Context) {
	l.g.nflog.sync(50 * time.Millisecond)
	t := l.total()
	l.mu.Lock()
	l.base = t
	l.base.Refusals = nil
	l.seen, l.details = map[string]bool{}, nil // each run lists its own refusals, even repeated ones
	l.mu.Unlock()
}

// makeBridge creates the guard's bridge on a free /24 of the pool, labelled
// with its owner so that a sweep by another process can tell it is in use.
func (g *Guard) makeBridge(ctx context.Context) error {
	used := usedPrefixes()
	var last error
	for try := 0; try < 64; try++ {
		sub := randomSlash24(g.cfg.Pool)
		if overlaps(sub, used) {
			continue
		}
		g.subnet, g.gateway = sub, sub.Addr().Next()
		// A bridge whose address was never set takes the lowest of its
		// ports' addresses, so it changes as sandboxes come and go, and a
		// sandbox that learned the old one loses every packet to its
		// gateway (DNS included) until its neighbour entry expires. Set it.
		var mac [6]byte
		rand.Read(mac[:])
		mac[0] = mac[0]&0xfe | 0x02 // unicast, locally administered
		steps := [][]string{
			{"ip", "link", "add", g.bridge, "type", "bridge"},
			{"ip", "link", "set", g.bridge, "address", net.HardwareAddr(mac[:]).String()},
			{"ip", "link", "set", g.bridge, "alias", "cronium owner=" + ownerOf(os.Getpid())},
			{"ip", "addr", "add", netip.PrefixFrom(g.gateway, 24).String(), "dev", g.bridge},
			{"ip", "link", "set", g.bridge, "up"},
		}
		last = nil
		for _, st := range steps {
			if _, err := run(ctx, nil, st[0], st[1:]...); err != nil {
				last = err
				break
			}
		}
		if last == nil {
			// The host's side of the sandbox network speaks no IPv6 either (no
			// link-local chatter in the sandboxes' byte counts).
			os.WriteFile("/proc/sys/net/ipv6/conf/"+g.bridge+"/disable_ipv6", []byte("1"), 0o644)
			return waitAddr(g.gateway)
		}
		deleteLink(g.bridge)
	}
	if last == nil {
		last = errors.New("every /24 tried is in use")
	}
	return fmt.Errorf("netguard: create the sandbox bridge in %s: %w", g.cfg.Pool, last)
}

// waitAddr waits until ip can be bound (duplicate address detection is off
// for IPv4, but the address appears asynchronously on some kernels).
func waitAddr(ip netip.Addr) error {
	for i := 0; i < 100; i++ {
		ln, err := net.Listen("tcp4", netip.AddrPortFrom(ip, 0).String())
		if err == nil {
			ln.Close()
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	return fmt.Errorf("netguard: address %s never became usable", ip)
}

func randomSlash24(pool netip.Prefix) netip.Prefix {
	a := pool.Masked().Addr().As4()
	k := mrand.IntN(1 << (24 - pool.Bits()))
	v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 + uint32(k)<<8
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), 0}), 24)
}

// usedPrefixes lists the IPv4 networks of this host's interfaces and routes.
func usedPrefixes() []netip.Prefix {
	var out []netip.Prefix
	if as, err := net.InterfaceAddrs(); err == nil {
		for _, a := range as {
			if p, err := netip.ParsePrefix(a.String()); err == nil && p.Addr().Is4() {
				out = append(out, p.Masked())
			}
		}
	}
	if b, err := os.ReadFile("/proc/net/route"); err == nil {
		for _, line := range strings.Split(string(b), "\n")[1:] {
			f := strings.Fields(line)
			if len(f) < 8 {
				continue
			}
			dst, e1 := strconv.ParseUint(f[1], 16, 32)
			mask, e2 := strconv.ParseUint(f[7], 16, 32)
			if e1 != nil || e2 != nil || mask == 0 {
				continue
			}
			d, m := uint32(dst), uint32(mask) // little-endian on the wire of /proc
			ip := netip.AddrFrom4([4]byte{byte(d), byte(d >> 8), byte(d >> 16), byte(d >> 24)})
			bits := 0
			for ; m&1 == 1; m >>= 1 {
				bits++
			}
			out = append(out, netip.PrefixFrom(ip, bits).Masked())
		}
	}
	return out
}

func overlaps(p netip.Prefix, used []netip.Prefix) bool {
	for _, u := range used {
		if u.Overlaps(p) {
			return true
		}
	}
	return false
}

// lockHost takes the host-wide lock that keeps sweeps and guard set-ups of
// different cronium processes apart.
func lockHost() (unlock func(), err error) {
	dir := "/run"
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		dir = os.TempDir()
	}
	f, err := os.OpenFile(dir+"/cronium-netguard.lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("netguard: lock: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("netguard: lock: %w", err)
	}
	return func() {
		unix.Flock(int(f.Fd()), unix.LOCK_UN)
		f.Close()
	}, nil
}

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

// ownerAlive reports whether the process named by an ownerOf value still runs.
func ownerAlive(owner string) bool {
	pid, _, ok := strings.Cut(owner, ":")
	if !ok {
		return false
	}
	n, err := strconv.Atoi(pid)
	return err == nil && ownerOf(n) == owner
}

// hostResolvers reads the name servers of /etc/resolv.conf.
func hostResolvers() []string {
	var out []string
	for _, s := range readResolvConf("/etc/resolv.conf") {
		out = append(out, net.JoinHostPort(s, "53"))
	}
	return out
}
