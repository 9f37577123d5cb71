package nettest

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"

	cronium "github.com/cronium/executor"
	"github.com/cronium/executor/internal/fakenet"
)

// gateway is the host's address on the sandbox network (the resolver's).
func gateway(t *testing.T) string {
	t.Helper()
	got, _ := runProbe(t, cronium.Net(cronium.NetworkEgress), `R["ns"] = open("/etc/resolv.conf").read().split()[1]`)
	return got["ns"]
}

func TestEgress(t *testing.T) {
	gw := gateway(t)
	ctx := context.Background()
	onGateway, err := fakenet.Listen(ctx, gw+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer onGateway.Close()
	onHost, err := fakenet.Listen(ctx, fakenet.HostSide+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer onHost.Close()
	gwPort := onGateway.Addr().(*net.TCPAddr).Port
	hostPort := onHost.Addr().(*net.TCPAddr).Port

	got, res := runProbe(t, cronium.Net(cronium.NetworkEgress), fmt.Sprintf(`
R["http"] = http("http://api.example.test/x")
R["https"] = http("https://api.example.test/y")
R["public_ip"] = tcp("203.0.113.10", 80, b"GET / HTTP/1.0\r\nHost: raw\r\n\r\n")
R["gateway"] = tcp(%[1]q, %[2]d)
R["host_other_addr"] = tcp("198.51.100.1", %[3]d)
R["metadata"] = tcp("169.254.169.254", 80, timeout=2)
R["private"] = tcp("10.99.0.5", 5432)
R["smtp"] = tcp("203.0.113.10", 25)
R["dns_direct"] = udp("203.0.113.53", 53)
R["udp_public"] = udp("203.0.113.10", 5353)
try:
    s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM); s.settimeout(2)
    s.connect(("2001:db8::10", 80)); R["ipv6"] = "ok:connected"
except Exception as e:
    R["ipv6"] = "err:%%s" %% e
R["ipv6_addrs"] = open("/proc/net/if_inet6").read() if os.path.exists("/proc/net/if_inet6") else ""
`, gw, gwPort, hostPort))
	want(t, got, map[string]string{
		"http":            "ok:host=api.example.test path=/x",
		"https":           "ok:host=api.example.test path=/y",
		"public_ip":       "ok:HTTP/1.0 200",
		"gateway":         "err:ConnectionRefusedError",
		"host_other_addr": "err:ConnectionRefusedError",
		"metadata":        "err:",
		"private":         "err:ConnectionRefusedError",
		"smtp":            "err:ConnectionRefusedError",
		"dns_direct":      "err:",
		"udp_public":      "ok:ping",
		"ipv6":            "err:",
	})
	if got["ipv6_addrs"] != "" {
		t.Errorf("the sandbox has IPv6 addresses: %q", got["ipv6_addrs"])
	}
	refused(t, res,
		fmt.Sprintf("%s:%d/tcp (the host's own address)", gw, gwPort),
		fmt.Sprintf("198.51.100.1:%d/tcp (the host's own address)", hostPort),
		"169.254.169.254:80/tcp (metadata address)",
		"10.99.0.5:5432/tcp (private address)",
		"203.0.113.10:25/tcp (blocked port)",
		"203.0.113.53:53/udp (DNS goes only through cronium's resolver)",
	)
	if n := res.Usage.Network; n.BytesIn < 200 || n.BytesOut < 200 || n.Refused < 6 {
		t.Errorf("usage %+v: want bytes both ways and at least 6 refusals counted", *n)
	}
}

// Another running sandbox is not reachable, not even on the same bridge.
func TestEgressOtherSandbox(t *testing.T) {
	ip, accepted := listenIn(t, engine)
	got, res := runProbe(t, cronium.Net(cronium.NetworkEgress), fmt.Sprintf(`R["other"] = tcp(%q, 8000)`, ip))
	// Sandboxes send everything to the host (a /32 and an on-link default
	// route; bridge ports are isolated), whose rules refuse it and say why.
	want(t, got, map[string]string{"other": "err:ConnectionRefusedError"})
	refused(t, res, ip+":8000/tcp (another sandbox)")
	if accepted() {
		t.Errorf("the other sandbox accepted a connection")
	}
}

func TestAllowlist(t *testing.T) {
	policy := cronium.NetworkPolicy{Mode: cronium.NetworkEgress, AllowDomains: []string{"api.example.test", "*.ok.example.test"}}
	before := len(inet.Queries())
	got, res := runProbe(t, policy, `
R["http"] = http("http://api.example.test/a")
R["https"] = http("https://api.example.test/b")
R["wildcard"] = http("http://x.ok.example.test/c")
R["denied_name"] = http("http://evil.example.test/")
R["denied_host_header"] = tcp("203.0.113.10", 80, b"GET / HTTP/1.1\r\nHost: evil.example.test\r\n\r\n")
R["raw_ip"] = http("http://203.0.113.10/")
R["sni_denied"] = tls("203.0.113.10", 443, "evil.example.test")
R["uri_host_mismatch"] = tcp("203.0.113.10", 80, b"GET http://api.example.test/ HTTP/1.1\r\nHost: evil.example.test\r\n\r\n")
R["keepalive_switch"] = tcp("203.0.113.10", 80, b"GET /1 HTTP/1.1\r\nHost: api.example.test\r\n\r\nGET /2 HTTP/1.1\r\nHost: evil.example.test\r\n\r\n")
R["connect_ip"] = tcp("203.0.113.10", 443, b"CONNECT 203.0.113.10:443 HTTP/1.1\r\nHost: 203.0.113.10:443\r\n\r\n")
R["connect_name"] = tcp("203.0.113.10", 80, b"CONNECT api.example.test:80 HTTP/1.1\r\nHost: api.example.test:80\r\n\r\nGET /tunnel HTTP/1.0\r\nHost: api.example.test\r\n\r\n")
R["rebind"] = http("http://rebind.ok.example.test/")
R["rebind_later_lookup"] = resolve("rebind.ok.example.test")
R["private_name"] = http("http://private.example.test/")
R["udp"] = udp("203.0.113.10", 5353)
R["canary"] = resolve("leak.evil.example.test")
R["smtp"] = tcp("203.0.113.10", 25, b"EHLO x\r\n")
import struct
def hello(name, ech):
    sn = name.encode()
    exts = struct.pack(">HHHBH", 0, len(sn) + 5, len(sn) + 3, 0, len(sn)) + sn
    if ech:
        exts += struct.pack(">HH", 0xfe0d, 3) + b"\x00\x01\x02"
    body = b"\x03\x03" + b"\x00" * 32 + b"\x00" + b"\x00\x02\x13\x01" + b"\x01\x00" + struct.pack(">H", len(exts)) + exts
    hs = b"\x01" + len(body).to_bytes(3, "big") + body
    return b"\x16\x03\x01" + struct.pack(">H", len(hs)) + hs
R["ech"] = tcp("203.0.113.10", 443, hello("api.example.test", True))
`)
	want(t, got, map[string]string{
		"http":                "ok:host=api.example.test path=/a",
		"https":               "ok:host=api.example.test path=/b",
		"wildcard":            "ok:host=x.ok.example.test path=/c",
		"denied_name":         "err:URLError",
		"denied_host_header":  "ok:HTTP/1.1 403",
		"raw_ip":              "http403:cronium: refused 203.0.113.10:80 (IP literal not in allow_domains)",
		"sni_denied":          "err:",
		"uri_host_mismatch":   "ok:HTTP/1.1 403",
		"connect_ip":          "ok:HTTP/1.1 403",
		"connect_name":        "ok:HTTP/1.1 200 Connection established\r\n\r\nHTTP/1.1 200 OK",
		"rebind_later_lookup": "ok:10.99.0.5",
		"rebind":              "http403:cronium: refused rebind.ok.example.test:80 (resolves to 10.99.0.5, a private address)",
		"private_name":        "err:URLError",
		"udp":                 "err:",
		"canary":              "err:gaierror",
		"ech":                 "err:ConnectionResetError",
	})
	if !strings.Contains(got["keepalive_switch"], "host=api.example.test path=/1") || !strings.Contains(got["keepalive_switch"], "403 Forbidden") {
		t.Errorf("keep-alive: got %q, want the first request answered and the second (another host) refused", got["keepalive_switch"])
	}
	refused(t, res,
		"dns evil.example.test (not in allow_domains)",
		"evil.example.test:80/tcp (not in allow_domains)",
		"evil.example.test:443/tcp (not in allow_domains)",
		"203.0.113.10:80/tcp (IP literal not in allow_domains)",
		"203.0.113.10:5353/udp (only TCP through the proxy with allow_domains)",
		"dns leak.evil.example.test (not in allow_domains)",
		"(blocked port)",
		"(TLS Encrypted Client Hello hides the real name)",
	)
	for _, q := range inet.Queries()[before:] {
		if strings.Contains(q, "evil") || strings.Contains(q, "private.example") {
			t.Errorf("the upstream DNS server was asked %q, a name the policy denies", q)
		}
	}
}

func TestInternal(t *testing.T) {
	got, res := runProbe(t, cronium.NetworkPolicy{Mode: cronium.NetworkInternal, AllowServices: []string{"billing-db"}}, `
R["service"] = tcp("10.99.0.5", 5432)
R["other_port"] = tcp("10.99.0.5", 5433)
R["public"] = tcp("203.0.113.10", 80, b"GET / HTTP/1.0\r\n\r\n")
R["name"] = resolve("api.example.test")
`)
	want(t, got, map[string]string{
		"service":    "ok:private-5432",
		"other_port": "err:ConnectionRefusedError",
		"public":     "err:ConnectionRefusedError",
		"name":       "err:gaierror",
	})
	refused(t, res, "10.99.0.5:5433/tcp (not an allowed internal service)", "203.0.113.10:80/tcp (not an allowed internal service)")
}

func TestFullKeepsMetadataBlocked(t *testing.T) {
	trusted, _ := cronium.LookupProfile("profile", "trusted")
	got, res := runProbe(t, cronium.Net(cronium.NetworkFull), `
R["private"] = tcp("10.99.0.5", 5432)
R["public"] = http("http://api.example.test/")
R["metadata"] = tcp("169.254.169.254", 80, timeout=2)
`, func(s *cronium.Spec) { s.Profile = trusted })
	want(t, got, map[string]string{"private": "ok:private-5432", "public": "ok:host=api.example.test", "metadata": "err:"})
	refused(t, res, "169.254.169.254:80/tcp (metadata address)")
}

// 4 MB at 8 Mbit/s takes 4 s ± 20% each way, and the byte counts are within 5%.
func TestBandwidth(t *testing.T) {
	policy := cronium.NetworkPolicy{Mode: cronium.NetworkEgress, Bandwidth: 8_000_000}
	const n = 4_000_000
	check := func(name string, secs float64, counted int64) {
		t.Helper()
		if secs < 3.2 || secs > 4.8 {
			t.Errorf("%s: 4 MB took %.2fs at 8 Mbit/s, want 4s ± 20%%", name, secs)
		}
		if d := float64(counted-n) / n; d < 0 || d > 0.05 {
			t.Errorf("%s: counted %d bytes for %d sent (%.1f%% off), want within 5%%", name, counted, n, 100*d)
		}
	}
	got, res := runProbe(t, policy, fmt.Sprintf(`
t = time.monotonic(); r = http("http://api.example.test/bytes?n=%d", timeout=30); R["secs"] = str(time.monotonic() - t); R["len"] = str(len(r) - 3)
`, n))
	var secs float64
	fmt.Sscan(got["secs"], &secs)
	if got["len"] != fmt.Sprint(n) {
		t.Fatalf("download got %s bytes, want %d", got["len"], n)
	}
	check("download", secs, res.Usage.Network.BytesIn)
	got, res = runProbe(t, policy, fmt.Sprintf(`
t = time.monotonic(); r = http("http://api.example.test/sink", data=b"x" * %d, timeout=30); R["secs"] = str(time.monotonic() - t); R["r"] = r
`, n))
	fmt.Sscan(got["secs"], &secs)
	want(t, got, map[string]string{"r": fmt.Sprintf("ok:received=%d", n)})
	check("upload", secs, res.Usage.Network.BytesOut)
}
