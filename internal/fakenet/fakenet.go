// Package fakenet builds a small internet on this machine for tests: a
// network namespace holding an "outside" host with public-looking
// addresses (TEST-NET-3, 203.0.113.0/24), HTTP and HTTPS servers for
// several names under a test CA, a logging DNS server (with a rebinding
// name), a private-range listener and a mail port. The host routes only
// those addresses into the namespace, so traffic never leaves the machine.
package fakenet

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/sys/unix"
)

// Addresses of the fake internet.
const (
	// Public is the outside host: HTTP :80, HTTPS :443, SMTP :25, UDP echo :5353.
	Public = "203.0.113.10"
	// DNS is the upstream name server (point network.upstream_dns here).
	DNS = "203.0.113.53:53"
	// Private is a listener in a private range (:5432 and :5433), reachable only if policy allows.
	Private = "10.99.0.5"
	// HostSide is the host's own address on the link to the namespace.
	HostSide = "198.51.100.1"
	nsSide   = "198.51.100.2"
)

// Names the DNS server answers. Everything under example.test resolves to
// Public, but for these.
const (
	// Rebind answers Public to its first query, Private to every later one.
	Rebind = "rebind.ok.example.test"
	// PrivateName resolves to Private.
	PrivateName = "private.example.test"
)

// Internet is a running fake internet. Close removes it.
type Internet struct {
	ns, hostIf string
	// CA is the PEM certificate of the test CA that signed the HTTPS server's certificate.
	CA []byte

	mu      sync.Mutex
	queries []string
	rebinds int

	closers []io.Closer
}

func sh(args ...string) error {
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// Start builds the namespace, the link and the routes, and starts the servers.
// It refuses to start if one of its addresses is this machine's name
// server or already has a route of its own.
func Start() (*Internet, error) {
	if err := checkFree(); err != nil {
		return nil, err
	}
	var b [3]byte
	rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	in := &Internet{ns: "crn-inet-" + id, hostIf: "crni" + id}
	steps := [][]string{
		{"ip", "netns", "add", in.ns},
		{"ip", "link", "add", in.hostIf, "type", "veth", "peer", "name", "eth0", "netns", in.ns},
		{"ip", "addr", "add", HostSide + "/30", "dev", in.hostIf},
		{"ip", "link", "set", in.hostIf, "up"},
		{"ip", "-n", in.ns, "link", "set", "lo", "up"},
		{"ip", "-n", in.ns, "addr", "add", nsSide + "/30", "dev", "eth0"},
		{"ip", "-n", in.ns, "link", "set", "eth0", "up"},
		{"ip", "-n", in.ns, "addr", "add", Public + "/32", "dev", "lo"},
		{"ip", "-n", in.ns, "addr", "add", "203.0.113.53/32", "dev", "lo"},
		{"ip", "-n", in.ns, "addr", "add", Private + "/32", "dev", "lo"},
		{"ip", "-n", in.ns, "route", "add", "default", "via", HostSide},
		// Host routes for exactly these addresses: this machine's own
		// infrastructure (package mirrors, module proxy) may live elsewhere in
		// the documentation ranges, and must stay reachable during the tests.
		{"ip", "route", "add", Public + "/32", "via", nsSide},
		{"ip", "route", "add", "203.0.113.53/32", "via", nsSide},
		{"ip", "route", "add", Private + "/32", "via", nsSide},
	}
	for _, s := range steps {
		if err := sh(s...); err != nil {
			in.Close()
			return nil, err
		}
	}
	if err := in.serve(); err != nil {
		in.Close()
		return nil, err
	}
	return in, nil
}

// checkFree makes sure the fake addresses shadow nothing real here.
func checkFree() error {
	resolv, _ := os.ReadFile("/etc/resolv.conf")
	for _, a := range []string{Public, "203.0.113.53", Private, HostSide} {
		if strings.Contains(string(resolv), a) {
			return fmt.Errorf("fakenet: %s is this machine's name server", a)
		}
		out, _ := exec.Command("ip", "-4", "route", "show", a+"/32").Output()
		if len(bytes.TrimSpace(out)) > 0 {
			return fmt.Errorf("fakenet: %s already has a route (%s): another fake internet is up, or the address is real here", a, bytes.TrimSpace(out))
		}
	}
	return nil
}

// Close stops the servers and removes the routes, link and namespace.
func (in *Internet) Close() error {
	for _, c := range in.closers {
		c.Close()
	}
	exec.Command("ip", "route", "del", Public+"/32", "via", nsSide).Run()
	exec.Command("ip", "route", "del", "203.0.113.53/32", "via", nsSide).Run()
	exec.Command("ip", "route", "del", Private+"/32", "via", nsSide).Run()
	exec.Command("ip", "link", "del", in.hostIf).Run()
	exec.Command("ip", "netns", "del", in.ns).Run()
	return nil
}

// Queries returns every name the DNS server was asked, in order.
func (in *Internet) Queries() []string {
	in.mu.Lock()
	defer in.mu.Unlock()
	return append([]string(nil), in.queries...)
}

// inNS runs fn on a thread switched into the namespace: sockets it
// creates stay in the namespace after the thread switches back.
func (in *Internet) inNS(fn func() error) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	self, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		return err
	}
	defer self.Close()
	target, err := os.Open("/var/run/netns/" + in.ns)
	if err != nil {
		return err
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("setns: %w", err)
	}
	ferr := fn()
	if err := unix.Setns(int(self.Fd()), unix.CLONE_NEWNET); err != nil {
		panic("fakenet: cannot return to the host network namespace: " + err.Error())
	}
	return ferr
}

func (in *Internet) serve() error {
	certPEM, keyPEM, caPEM, err := makeCerts()
	if err != nil {
		return err
	}
	in.CA = caPEM
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return err
	}
	var lns []net.Listener
	var udp []net.PacketConn
	err = in.inNS(func() error {
		for _, a := range []string{Public + ":80", Public + ":443", Public + ":25", Private + ":5432", Private + ":5433"} {
			ln, err := net.Listen("tcp4", a)
			if err != nil {
				return err
			}
			lns = append(lns, ln)
		}
		for _, a := range []string{DNS, Public + ":5353"} {
			pc, err := net.ListenPacket("udp4", a)
			if err != nil {
				return err
			}
			udp = append(udp, pc)
		}
		return nil
	})
	for _, l := range lns {
		in.closers = append(in.closers, l)
	}
	for _, p := range udp {
		in.closers = append(in.closers, p)
	}
	if err != nil {
		return err
	}
	h := http.HandlerFunc(handle)
	go http.Serve(lns[0], h)
	go http.Serve(tls.NewListener(lns[1], &tls.Config{Certificates: []tls.Certificate{cert}}), h)
	go banner(lns[2], "220 mail.example.test ESMTP\r\n")
	go banner(lns[3], "private-5432\n")
	go banner(lns[4], "private-5433\n")
	srv := &dns.Server{PacketConn: udp[0], Handler: dns.HandlerFunc(in.answer)}
	go srv.ActivateAndServe()
	go echoUDP(udp[1])
	return nil
}

// handle answers "host=<Host> path=<path>"; /bytes?n=N sends N bytes; POST /sink counts the body.
func handle(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/bytes":
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		w.Header().Set("Content-Length", strconv.Itoa(n))
		buf := make([]byte, 32<<10)
		for n > 0 {
			k := min(n, len(buf))
			if _, err := w.Write(buf[:k]); err != nil {
				return
			}
			n -= k
		}
	case "/sink":
		n, _ := io.Copy(io.Discard, r.Body)
		fmt.Fprintf(w, "received=%d\n", n)
	default:
		fmt.Fprintf(w, "host=%s path=%s\n", r.Host, r.URL.Path)
	}
}

func banner(ln net.Listener, msg string) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		c.Write([]byte(msg))
		c.Close()
	}
}

func echoUDP(pc net.PacketConn) {
	buf := make([]byte, 2048)
	for {
		n, a, err := pc.ReadFrom(buf)
		if err != nil {
			return
		}
		pc.WriteTo(buf[:n], a)
	}
}

func (in *Internet) answer(w dns.ResponseWriter, q *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(q)
	m.Authoritative = true
	if len(q.Question) != 1 {
		m.Rcode = dns.RcodeFormatError
		w.WriteMsg(m)
		return
	}
	qn := strings.TrimSuffix(strings.ToLower(q.Question[0].Name), ".")
	in.mu.Lock()
	in.queries = append(in.queries, qn)
	ip := Public
	switch qn {
	case Rebind:
		if q.Question[0].Qtype == dns.TypeA {
			if in.rebinds > 0 {
				ip = Private
			}
			in.rebinds++
		}
	case PrivateName:
		ip = Private
	}
	in.mu.Unlock()
	if !strings.HasSuffix(qn, ".example.test") && qn != "example.test" {
		m.Rcode = dns.RcodeNameError
		w.WriteMsg(m)
		return
	}
	switch q.Question[0].Qtype {
	case dns.TypeA:
		rr, _ := dns.NewRR(fmt.Sprintf("%s. 1 IN A %s", qn, ip))
		m.Answer = append(m.Answer, rr)
	case dns.TypeAAAA:
		rr, _ := dns.NewRR(fmt.Sprintf("%s. 1 IN AAAA 2001:db8::10", qn))
		m.Answer = append(m.Answer, rr)
	}
	w.WriteMsg(m)
}

// makeCerts returns a server certificate for *.example.test (and
// ok.example.test names) signed by a fresh test CA.
func makeCerts() (certPEM, keyPEM, caPEM []byte, err error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "cronium test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, nil, nil, err
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "api.example.test"},
		DNSNames:  []string{"api.example.test", "evil.example.test", "*.example.test", "*.ok.example.test"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, nil, nil, err
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), nil
}

// Listen starts a TCP listener on the host at addr that answers "host-<addr>"
// to every connection: a host service a sandbox must not reach.
func Listen(ctx context.Context, addr string) (net.Listener, error) {
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp4", addr)
	if err != nil {
		return nil, err
	}
	go banner(ln, "host-"+addr+"\n")
	return ln, nil
}
