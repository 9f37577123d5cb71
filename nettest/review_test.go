package nettest

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	cronium "github.com/cronium/executor"
	"github.com/cronium/executor/images"
)

// listenIn starts a python sandbox on eng that listens on :8000 and
// reports its address; the returned func waits for it and says whether a
// connection was accepted.
func listenIn(t *testing.T, eng netEngine) (ip string, accepted func() bool) {
	t.Helper()
	var mu sync.Mutex
	var out strings.Builder
	ipc := make(chan string, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		spec := cronium.Spec{Language: cronium.Python, Network: cronium.Net(cronium.NetworkEgress), Script: []byte(probe + `
srv = socket.socket(); srv.bind(("0.0.0.0", 8000)); srv.listen(5); srv.settimeout(8)
print("ip=" + myip(), flush=True)
try:
    c, a = srv.accept(); print("ACCEPTED from", a, flush=True)
except socket.timeout:
    print("nobody came", flush=True)
`), Output: func(c cronium.OutputChunk) {
			mu.Lock()
			defer mu.Unlock()
			out.Write(c.Data)
			if i := strings.Index(out.String(), "ip="); i >= 0 && strings.Contains(out.String()[i:], "\n") {
				select {
				case ipc <- strings.TrimSpace(strings.SplitN(out.String()[i+3:], "\n", 2)[0]):
				default:
				}
			}
		}}
		spec.Limits.Timeout = 30 * time.Second
		eng.Run(context.Background(), spec)
	}()
	select {
	case ip = <-ipc:
	case <-time.After(30 * time.Second):
		t.Fatal("the listening sandbox never printed its address")
	}
	return ip, func() bool {
		<-done
		mu.Lock()
		defer mu.Unlock()
		return strings.Contains(out.String(), "ACCEPTED")
	}
}

// A full-mode sandbox of one cronium process cannot open a connection into
// a sandbox of another, whichever process set up its rules first.
func TestFullCannotReachAnotherProcessSandbox(t *testing.T) {
	other, err := openEngine(context.Background(), "nettest2-", cronium.NetworkSetup{UpstreamDNS: []string{"203.0.113.53"}})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	trusted, _ := cronium.LookupProfile("profile", "trusted")
	for _, c := range []struct {
		name             string
		victim, attacker netEngine
	}{{"older guard attacks", other, engine}, {"newer guard attacks", engine, other}} {
		t.Run(c.name, func(t *testing.T) {
			ip, accepted := listenIn(t, c.victim)
			var out strings.Builder
			spec := cronium.Spec{Language: cronium.Python, Network: cronium.Net(cronium.NetworkFull), Profile: trusted,
				Script: []byte(probe + fmt.Sprintf("print(tcp(%q, 8000))", ip)),
				Output: func(ch cronium.OutputChunk) { out.Write(ch.Data) }}
			res, err := c.attacker.Run(context.Background(), spec)
			if err != nil || res.Outcome != cronium.Succeeded {
				t.Fatalf("%v %s %s", err, res.Outcome, res.Error)
			}
			if !strings.HasPrefix(out.String(), "err:ConnectionRefusedError") {
				t.Errorf("full-mode sandbox connecting to another process's sandbox: %q", out.String())
			}
			refused(t, res, ip+":8000/tcp (another sandbox)")
			if accepted() {
				t.Errorf("the victim sandbox accepted the connection")
			}
		})
	}
}

// Fixes from the review of the allowlist proxy and the resolver.
func TestAllowlistReviewFixes(t *testing.T) {
	policy := cronium.NetworkPolicy{Mode: cronium.NetworkEgress, AllowDomains: []string{"api.example.test"}, Bandwidth: 2_000_000}
	got, res := runProbe(t, policy, `
R["connect_inner_host"] = tcp("203.0.113.10", 80, b"CONNECT api.example.test:80 HTTP/1.1\r\nHost: api.example.test:80\r\n\r\nGET / HTTP/1.1\r\nHost: evil.example.test\r\n\r\n")
t0 = time.monotonic(); R["private"] = tcp("10.99.0.5", 5432); R["private_secs"] = "%.1f" % (time.monotonic() - t0)
R["server_first"] = tcp("203.0.113.10", 5433, timeout=15)
t0 = time.monotonic(); R["slow_upload"] = http("http://api.example.test/sink", data=b"x" * 3500000, timeout=60); R["upload_secs"] = "%.0f" % (time.monotonic() - t0)
R["two_hosts"] = tcp("203.0.113.10", 80, b"GET / HTTP/1.1\r\nHost: api.example.test\r\nHost: evil.example.test\r\n\r\n")
`)
	want(t, got, map[string]string{
		"connect_inner_host": "ok:HTTP/1.1 200 Connection established\r\n\r\nHTTP/1.1 403",
		"private":            "err:ConnectionRefusedError",
		"private_secs":       "0.",
		"server_first":       "err:ConnectionResetError",
		"slow_upload":        "ok:received=3500000",
		"two_hosts":          "ok:HTTP/1.1 403",
	})
	refused(t, res,
		"evil.example.test/tcp (the request names another host than api.example.test",
		"10.99.0.5:5432/tcp (private address)",
		"203.0.113.10:5433/tcp (the client sent no TLS ClientHello or HTTP request within 10s",
		"(more than one Host header)",
	)
	// Egress resolves names with '_' (SRV, DMARC) through the upstream server.
	got, _ = runProbe(t, cronium.Net(cronium.NetworkEgress), `R["srv"] = resolve("_srv._tcp.ok.example.test")`)
	want(t, got, map[string]string{"srv": "ok:203.0.113.10"})
}

// A published container port on the host is the host: refused at once, as the host's address.
func TestPublishedPortIsTheHost(t *testing.T) {
	img := images.Refs()[cronium.Python]
	out, err := exec.Command("docker", "run", "-d", "--rm", "-p", "18081:8000", "--label", "io.cronium.test=1", img, "python3", "-m", "http.server", "8000").CombinedOutput()
	if err != nil {
		t.Fatalf("docker run: %v %s", err, out)
	}
	id := strings.TrimSpace(string(out))
	defer exec.Command("docker", "rm", "-f", id).Run()
	time.Sleep(time.Second)
	got, res := runProbe(t, cronium.Net(cronium.NetworkEgress), `R["published"] = tcp("198.51.100.1", 18081, b"GET / HTTP/1.0\r\n\r\n")`)
	want(t, got, map[string]string{"published": "err:ConnectionRefusedError"})
	refused(t, res, "198.51.100.1:18081/tcp (the host's own address)")
}
