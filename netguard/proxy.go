package netguard

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	cronium "github.com/cronium/executor"
)

// proxy is the filtering proxy of allowlist mode: every TCP connection of
// such a sandbox is redirected here. It reads the name from the TLS SNI or
// the HTTP Host (or a CONNECT authority), refuses names not allowed,
// resolves the name itself and checks every address it dials against the
// deny list, so no DNS answer given to the script is ever trusted.
type proxy struct {
	g    *Guard
	ln   *net.TCPListener
	port int
	wg   sync.WaitGroup
}

func startProxy(g *Guard) (*proxy, error) {
	ln, err := net.ListenTCP("tcp4", &net.TCPAddr{IP: g.gateway.AsSlice()})
	if err != nil {
		return nil, err
	}
	p := &proxy{g: g, ln: ln, port: ln.Addr().(*net.TCPAddr).Port}
	p.wg.Add(1)
	go p.serve()
	return p, nil
}

func (p *proxy) close() {
	p.ln.Close()
	p.wg.Wait()
}

func (p *proxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.AcceptTCP()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(10 * time.Millisecond)
			continue
		}
		l := p.g.lease(addrOf(c.RemoteAddr()))
		if l == nil || !l.track(c) {
			c.SetLinger(0)
			c.Close()
			continue
		}
		p.wg.Add(1)
		go func() { // ends when either side closes, or at DropConnections
			defer p.wg.Done()
			defer l.untrack(c)
			p.handle(l, c)
		}()
	}
}

func (l *Lease) track(c net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.released {
		return false
	}
	l.conns[c] = true
	return true
}

func (l *Lease) untrack(c net.Conn) {
	c.Close()
	l.mu.Lock()
	delete(l.conns, c)
	l.mu.Unlock()
}

// originalDst reads where the sandbox meant to connect (before REDIRECT).
func originalDst(c *net.TCPConn) (netip.AddrPort, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return netip.AddrPort{}, err
	}
	var ap netip.AddrPort
	var serr error
	raw.Control(func(fd uintptr) {
		var m *unix.IPv6Mreq
		m, serr = unix.GetsockoptIPv6Mreq(int(fd), unix.IPPROTO_IP, unix.SO_ORIGINAL_DST)
		if serr == nil {
			port := binary.BigEndian.Uint16(m.Multiaddr[2:4])
			ap = netip.AddrPortFrom(netip.AddrFrom4([4]byte(m.Multiaddr[4:8])), port)
		}
	})
	return ap, serr
}

// refusal ends a connection with a reason the user sees in `exec get`; for
// plain HTTP the client also gets a 403 that says it.
type refusal struct{ target, why string }

// Error says what was refused and why.
func (r refusal) Error() string { return r.target + " (" + r.why + ")" }

func (p *proxy) handle(l *Lease, c *net.TCPConn) {
	dst, err := originalDst(c)
	if err != nil {
		c.SetLinger(0)
		return
	}
	// The firewall does not redirect denied or local destinations; should one
	// get here (a direct connection to the proxy's port), refuse it as such.
	if why, bad := p.g.denied(dst.Addr()); bad {
		p.refuse(l, c, nil, refusal{dst.String(), why})
		return
	}
	for _, b := range l.ports {
		if int(dst.Port()) == b {
			p.refuse(l, c, nil, refusal{dst.String(), "blocked port"})
			return
		}
	}
	c.SetReadDeadline(time.Now().Add(firstBytesTimeout))
	br := bufio.NewReaderSize(c, 16<<10)
	first, err := br.Peek(1)
	if err != nil {
		// A protocol where the server speaks first (SSH, SMTP, MySQL) gives
		// the proxy no name to check: say so rather than hang silently.
		p.refuse(l, c, nil, refusal{dst.String(), fmt.Sprintf("the client sent no TLS ClientHello or HTTP request within %s: allow_domains needs a name to check", firstBytesTimeout)})
		return
	}
	if first[0] == 0x16 { // TLS handshake record
		name, err := clientHelloName(br)
		if err != nil {
			p.refuse(l, c, nil, refusal{dst.String(), err.Error()})
			return
		}
		up, err := p.dial(l, name, int(dst.Port()))
		if err != nil {
			p.refuse(l, c, nil, err)
			return
		}
		c.SetReadDeadline(time.Time{})
		p.splice(l, c, br, up)
		return
	}
	p.http(l, c, br, dst)
}

// firstBytesTimeout bounds how long the proxy waits for a ClientHello or request line.
const firstBytesTimeout = 10 * time.Second

// readRequest reads the next request, refusing (with the reason) one whose
// Host headers disagree; the header read is bounded by idle, the body is not.
func (p *proxy) readRequest(l *Lease, c *net.TCPConn, br *bufio.Reader, dst netip.AddrPort, idle time.Duration) (*http.Request, bool) {
	c.SetReadDeadline(time.Now().Add(idle))
	hosts := rawHosts(br)
	if len(hosts) > 1 {
		p.refuse(l, c, &http.Request{}, refusal{strings.Join(hosts, ","), "more than one Host header"})
		return nil, false
	}
	req, err := http.ReadRequest(br)
	if err != nil {
		if _, perr := br.Peek(1); perr != nil && len(hosts) == 0 {
			return nil, false // the client closed an idle connection
		}
		p.refuse(l, c, &http.Request{}, refusal{dst.String(), "not a valid HTTP request: allow_domains needs TLS with SNI or HTTP with a Host"})
		return nil, false
	}
	c.SetReadDeadline(time.Time{}) // a slow upload is not an idle client
	if err := checkHosts(req, hosts); err != nil {
		p.refuse(l, c, req, err)
		return nil, false
	}
	return req, true
}

// http handles plain HTTP: every request on the connection must name the
// same allowed host in Host and in an absolute URI. CONNECT tunnels to an
// allowed name; TLS inside must name the same host, and plain HTTP inside
// is held to the same rules as outside.
func (p *proxy) http(l *Lease, c *net.TCPConn, br *bufio.Reader, dst netip.AddrPort) {
	req, ok := p.readRequest(l, c, br, dst, firstBytesTimeout)
	if !ok {
		return
	}
	if req.Method == http.MethodConnect {
		host, port, err := splitHostPort(req.RequestURI, 443)
		if err != nil {
			p.refuse(l, c, req, refusal{req.RequestURI, "CONNECT without host:port"})
			return
		}
		up, err := p.dial(l, host, port)
		if err != nil {
			p.refuse(l, c, req, err)
			return
		}
		defer up.Close()
		io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n")
		c.SetReadDeadline(time.Now().Add(firstBytesTimeout))
		b, err := br.Peek(1)
		if err != nil {
			return
		}
		if b[0] == 0x16 {
			name, err := clientHelloName(br)
			if err == nil && mustNormalize(name) != mustNormalize(host) {
				err = refusal{net.JoinHostPort(name, strconv.Itoa(port)), "TLS name differs from the CONNECT host " + host}
			}
			if err != nil {
				p.refuse(l, c, nil, err)
				return
			}
			c.SetReadDeadline(time.Time{})
			p.splice(l, c, br, up)
			return
		}
		inner, ok := p.readRequest(l, c, br, dst, firstBytesTimeout)
		if !ok {
			return
		}
		p.relay(l, c, br, up, inner, mustNormalize(host), port, dst)
		return
	}
	host, port, err := splitHostPort(req.Host, int(dst.Port()))
	if err != nil || host == "" {
		p.refuse(l, c, req, refusal{dst.String(), "HTTP request without a Host"})
		return
	}
	up, err := p.dial(l, host, port)
	if err != nil {
		p.refuse(l, c, req, err)
		return
	}
	defer up.Close()
	p.relay(l, c, br, up, req, mustNormalize(host), port, dst)
}

// relay forwards req and every later request on the connection to up, as
// long as each names host; the first that names another is refused.
func (p *proxy) relay(l *Lease, c *net.TCPConn, br *bufio.Reader, up net.Conn, req *http.Request, host string, port int, dst netip.AddrPort) {
	upr := bufio.NewReader(up)
	for {
		h, _, _ := splitHostPort(req.Host, port)
		if mustNormalize(h) != host {
			p.refuse(l, c, req, refusal{req.Host, "the request names another host than " + host + ", the one this connection was allowed for"})
			return
		}
		if err := req.Write(up); err != nil {
			return
		}
		resp, err := http.ReadResponse(upr, req)
		if err != nil {
			return
		}
		werr := resp.Write(c)
		resp.Body.Close()
		if werr != nil || resp.Close || req.Close {
			return
		}
		if resp.StatusCode == http.StatusSwitchingProtocols {
			p.splice(l, c, br, up)
			return
		}
		var ok bool
		if req, ok = p.readRequest(l, c, br, dst, 2*time.Minute); !ok {
			return
		}
	}
}

// rawHosts returns the Host header values of the request at the head of br,
// as sent: net/http drops the header when the request line has an absolute URI.
func rawHosts(br *bufio.Reader) []string {
	var head []byte
	for {
		b, _ := br.Peek(br.Buffered())
		if i := bytes.Index(b, []byte("\r\n\r\n")); i >= 0 {
			head = b[:i]
			break
		}
		// Wait for one byte more than is buffered: Peek returns as soon as it arrives.
		if _, err := br.Peek(len(b) + 1); err != nil || len(b)+1 >= br.Size() {
			head = b
			break
		}
	}
	var hosts []string
	for _, line := range strings.Split(string(head), "\r\n")[1:] {
		k, v, ok := strings.Cut(line, ":")
		if ok && strings.EqualFold(strings.TrimSpace(k), "host") {
			hosts = append(hosts, strings.TrimSpace(v))
		}
	}
	return hosts
}

// checkHosts refuses a request whose Host headers disagree with each other
// or with the authority of an absolute URI.
func checkHosts(req *http.Request, hosts []string) error {
	if len(hosts) > 1 {
		return refusal{req.Host, "more than one Host header"}
	}
	if req.URL.IsAbs() && len(hosts) == 1 && !strings.EqualFold(hosts[0], req.URL.Host) {
		return refusal{hosts[0], "the request's URI names " + req.URL.Host + " but its Host header " + hosts[0]}
	}
	return nil
}

func mustNormalize(h string) string {
	n, _ := cronium.NormalizeHost(h)
	return n
}

func splitHostPort(s string, defPort int) (string, int, error) {
	if h, ps, err := net.SplitHostPort(s); err == nil {
		p, err := strconv.Atoi(ps)
		if err != nil || p < 1 || p > 65535 {
			return "", 0, fmt.Errorf("bad port in %q", s)
		}
		return h, p, nil
	}
	return strings.Trim(s, "[]"), defPort, nil
}

// refuse records the refusal and ends the connection: a 403 naming the
// reason for an HTTP request, a reset otherwise.
func (p *proxy) refuse(l *Lease, c *net.TCPConn, req *http.Request, err error) {
	var r refusal
	if !errors.As(err, &r) {
		r = refusal{"proxy", err.Error()}
	}
	l.refuse(r.target + "/tcp (" + r.why + ")")
	if req != nil {
		msg := "cronium: refused " + r.Error() + "\n"
		fmt.Fprintf(c, "HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nConnection: close\r\nContent-Length: %d\r\nX-Cronium-Refused: %s\r\n\r\n%s",
			len(msg), strings.ReplaceAll(r.why, "\n", " "), msg)
		return
	}
	c.SetLinger(0)
}

// dial connects to name:port for the lease: the name must be allowed, and
// is resolved here; every address is checked against the deny list and the
// host's own addresses, and only a clean one is dialed.
func (p *proxy) dial(l *Lease, host string, port int) (net.Conn, error) {
	target := net.JoinHostPort(host, strconv.Itoa(port))
	name, ok := cronium.NormalizeHost(host)
	if !ok {
		return nil, refusal{target, "not a valid host name"}
	}
	target = net.JoinHostPort(name, strconv.Itoa(port))
	if !cronium.DomainAllowed(l.policy.AllowDomains, name) {
		if _, err := netip.ParseAddr(name); err == nil {
			return nil, refusal{target, "IP literal not in allow_domains"}
		}
		return nil, refusal{target, "not in allow_domains"}
	}
	for _, b := range l.ports {
		if b == port {
			return nil, refusal{target, "blocked port"}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ips, err := p.g.dns.lookup(ctx, name)
	if err != nil {
		return nil, refusal{target, err.Error()}
	}
	var why string
	for _, ip := range ips {
		if reason, bad := p.g.denied(ip); bad {
			why = "resolves to " + ip.String() + ", a " + reason
			continue
		}
		d := net.Dialer{Timeout: 10 * time.Second, Control: func(_, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil {
				return err
			}
			if reason, bad := p.g.denied(ap.Addr()); bad {
				return refusal{target, "dial to a " + reason}
			}
			return nil
		}}
		c, err := d.DialContext(ctx, "tcp4", netip.AddrPortFrom(ip, uint16(port)).String())
		if err == nil {
			// The upstream side is the lease's too: releasing the lease (or
			// closing the guard) closes it, so a relay blocked on an upstream
			// that never answers ends with its sandbox.
			if !l.track(c) {
				c.Close()
				return nil, refusal{target, "the sandbox is gone"}
			}
			return &upstream{TCPConn: c.(*net.TCPConn), l: l}, nil
		}
		why = err.Error()
	}
	return nil, refusal{target, why}
}

// upstream is a proxy connection to the outside, tracked by its lease.
type upstream struct {
	*net.TCPConn
	l *Lease
}

// Close closes the connection and forgets it.
func (u *upstream) Close() error {
	u.l.untrack(u.TCPConn)
	return nil
}

// denied reports whether the proxy must not dial ip: a denied range or an
// address of this host.
func (g *Guard) denied(ip netip.Addr) (string, bool) {
	if r, bad := cronium.DeniedIP(ip); bad {
		return r, true
	}
	if g.local.has(ip) {
		return "the host's own address", true
	}
	return "", false
}

// splice copies both ways until either side is done (the link's counters count the bytes).
func (p *proxy) splice(l *Lease, c *net.TCPConn, br *bufio.Reader, up net.Conn) {
	defer up.Close()
	done := make(chan struct{})
	go func() { // ends when the sandbox side closes or the copy fails
		io.Copy(up, br)
		if t, ok := up.(interface{ CloseWrite() error }); ok {
			t.CloseWrite()
		}
		close(done)
	}()
	io.Copy(c, up)
	c.CloseWrite()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
	}
}

// clientHelloName returns the SNI of the TLS ClientHello at the head of br
// (without consuming it). No SNI, and Encrypted Client Hello (whose outer
// name is not the real one), are refusals.
func clientHelloName(br *bufio.Reader) (string, error) {
	hdr, err := br.Peek(5)
	if err != nil {
		return "", errors.New("truncated TLS record")
	}
	n := int(binary.BigEndian.Uint16(hdr[3:5]))
	if n < 4 || n > 16<<10-5 {
		return "", errors.New("TLS record too large for a ClientHello")
	}
	rec, err := br.Peek(5 + n)
	if err != nil {
		return "", errors.New("truncated TLS ClientHello")
	}
	b := rec[5:]
	if b[0] != 1 { // handshake type ClientHello
		return "", errors.New("TLS without a ClientHello")
	}
	hl := int(b[1])<<16 | int(b[2])<<8 | int(b[3])
	if hl+4 > len(b) {
		return "", errors.New("TLS ClientHello split over records is not supported")
	}
	b = b[4 : 4+hl]
	// version(2) random(32) session id
	if len(b) < 35 {
		return "", errors.New("malformed ClientHello")
	}
	b = b[34:]
	skip := func(lenBytes int) bool {
		if len(b) < lenBytes {
			return false
		}
		l := 0
		for i := 0; i < lenBytes; i++ {
			l = l<<8 | int(b[i])
		}
		if len(b) < lenBytes+l {
			return false
		}
		b = b[lenBytes+l:]
		return true
	}
	if !skip(1) || !skip(2) || !skip(1) { // session id, cipher suites, compression
		return "", errors.New("malformed ClientHello")
	}
	if len(b) < 2 {
		return "", errors.New("TLS ClientHello without SNI: allow_domains needs the name")
	}
	ext := b[2:]
	var name string
	for len(ext) >= 4 {
		typ := binary.BigEndian.Uint16(ext[0:2])
		l := int(binary.BigEndian.Uint16(ext[2:4]))
		if len(ext) < 4+l {
			return "", errors.New("malformed ClientHello extension")
		}
		data := ext[4 : 4+l]
		switch typ {
		case 0xfe0d:
			return "", errors.New("TLS Encrypted Client Hello hides the real name")
		case 0: // server_name
			if len(data) >= 5 && data[2] == 0 {
				nl := int(binary.BigEndian.Uint16(data[3:5]))
				if 5+nl <= len(data) {
					name = string(data[5 : 5+nl])
				}
			}
		}
		ext = ext[4+l:]
	}
	if name == "" {
		return "", errors.New("TLS ClientHello without SNI: allow_domains needs the name")
	}
	return name, nil
}

// localAddrs caches the host's own addresses, refreshed every few seconds.
type localAddrs struct {
	mu    sync.Mutex
	at    time.Time
	addrs map[netip.Addr]bool
}

func (a *localAddrs) has(ip netip.Addr) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if time.Since(a.at) > 5*time.Second {
		a.addrs = map[netip.Addr]bool{}
		if as, err := net.InterfaceAddrs(); err == nil {
			for _, x := range as {
				if n, ok := x.(*net.IPNet); ok {
					if ip, ok := netip.AddrFromSlice(n.IP); ok {
						a.addrs[ip.Unmap()] = true
					}
				}
			}
		}
		a.at = time.Now()
	}
	return a.addrs[ip.Unmap()]
}
