package netguard

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/miekg/dns"

	cronium "github.com/cronium/executor"
)

// resolver is the only name server sandboxes can reach. It answers by the
// policy of the asking address: in allowlist mode only allowed names, and
// it never forwards a denied name upstream (a forwarding resolver is a
// tunnel). AAAA, HTTPS and SVCB questions get empty answers: sandboxes have
// no IPv6, and HTTPS records carry Encrypted Client Hello keys.
type resolver struct {
	g        *Guard
	udp, tcp *dns.Server
	client   *dns.Client
}

func startResolver(g *Guard) (*resolver, error) {
	r := &resolver{g: g, client: &dns.Client{Timeout: 3 * time.Second}}
	addr := net.JoinHostPort(g.gateway.String(), "53")
	pc, err := net.ListenPacket("udp4", addr)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp4", addr)
	if err != nil {
		pc.Close()
		return nil, err
	}
	r.udp = &dns.Server{PacketConn: pc, Handler: r}
	r.tcp = &dns.Server{Listener: ln, Handler: r}
	for _, s := range []*dns.Server{r.udp, r.tcp} {
		started := make(chan struct{})
		s.NotifyStartedFunc = func() { close(started) }
		go s.ActivateAndServe() // ends at Shutdown in close
		<-started
	}
	return r, nil
}

func (r *resolver) close() {
	r.udp.Shutdown()
	r.tcp.Shutdown()
}

// ServeDNS implements dns.Handler.
func (r *resolver) ServeDNS(w dns.ResponseWriter, q *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(q)
	m.RecursionAvailable = true
	src := addrOf(w.RemoteAddr())
	l := r.g.lease(src)
	if l == nil || len(q.Question) != 1 {
		m.Rcode = dns.RcodeRefused
		w.WriteMsg(m)
		return
	}
	question := q.Question[0]
	name, ok := cronium.NormalizeHost(question.Name)
	if !ok {
		m.Rcode = dns.RcodeNameError
		w.WriteMsg(m)
		return
	}
	switch question.Qtype {
	case dns.TypeAAAA, dns.TypeHTTPS, dns.TypeSVCB, dns.TypeANY:
		w.WriteMsg(m) // NOERROR, no records
		return
	}
	p := l.policy
	switch {
	case p.Mode == cronium.NetworkInternal:
		l.refuse(fmt.Sprintf("dns %s (internal mode resolves no names: use the service's address)", name))
		m.Rcode = dns.RcodeNameError
		w.WriteMsg(m)
		return
	case p.Allowlist() && !cronium.DomainAllowed(p.AllowDomains, name):
		l.refuse(fmt.Sprintf("dns %s (not in allow_domains)", name))
		m.Rcode = dns.RcodeNameError
		w.WriteMsg(m)
		return
	}
	up := new(dns.Msg)
	up.SetQuestion(dns.Fqdn(name), question.Qtype)
	up.RecursionDesired = true
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := r.exchange(ctx, up)
	if err != nil {
		m.Rcode = dns.RcodeServerFailure
		w.WriteMsg(m)
		return
	}
	m.Rcode = resp.Rcode
	for _, rr := range resp.Answer {
		switch rr.Header().Rrtype {
		case dns.TypeAAAA, dns.TypeHTTPS, dns.TypeSVCB:
			continue
		}
		m.Answer = append(m.Answer, rr)
	}
	w.WriteMsg(m)
}

// exchange asks the upstream servers in turn, over TCP when UDP is truncated.
func (r *resolver) exchange(ctx context.Context, q *dns.Msg) (*dns.Msg, error) {
	var last error = errors.New("no upstream name server configured (network.upstream_dns)")
	for _, s := range r.g.cfg.UpstreamDNS {
		resp, _, err := r.client.ExchangeContext(ctx, q, s)
		if err == nil && resp.Truncated {
			tc := &dns.Client{Net: "tcp", Timeout: r.client.Timeout}
			resp, _, err = tc.ExchangeContext(ctx, q, s)
		}
		if err == nil {
			return resp, nil
		}
		last = err
	}
	return nil, last
}

// lookup resolves name's IPv4 addresses upstream, for the proxy: every
// dial resolves afresh and checks what it got.
func (r *resolver) lookup(ctx context.Context, name string) ([]netip.Addr, error) {
	if ip, err := netip.ParseAddr(name); err == nil {
		return []netip.Addr{ip.Unmap()}, nil
	}
	q := new(dns.Msg)
	q.SetQuestion(dns.Fqdn(name), dns.TypeA)
	q.RecursionDesired = true
	resp, err := r.exchange(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("resolve %s: %w", name, err)
	}
	var out []netip.Addr
	for _, rr := range resp.Answer {
		if a, ok := rr.(*dns.A); ok {
			if ip, ok := netip.AddrFromSlice(a.A.To4()); ok {
				out = append(out, ip)
			}
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("resolve %s: no address (%s)", name, dns.RcodeToString[resp.Rcode])
	}
	return out, nil
}

func addrOf(a net.Addr) netip.Addr {
	switch t := a.(type) {
	case *net.UDPAddr:
		ip, _ := netip.AddrFromSlice(t.IP)
		return ip.Unmap()
	case *net.TCPAddr:
		ip, _ := netip.AddrFromSlice(t.IP)
		return ip.Unmap()
	}
	return netip.Addr{}
}

// readResolvConf returns the nameserver addresses of a resolv.conf.
func readResolvConf(path string) []string {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) >= 2 && fs[0] == "nameserver" {
			if ip, err := netip.ParseAddr(fs[1]); err == nil && ip.Is4() {
				out = append(out, ip.String())
			}
		}
	}
	return out
}
