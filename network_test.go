package cronium

import (
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
)

func TestNetworkPolicyJSON(t *testing.T) {
	var p NetworkPolicy
	if err := json.Unmarshal([]byte(`"egress"`), &p); err != nil || p.Mode != NetworkEgress {
		t.Fatalf("bare string: %+v %v", p, err)
	}
	in := `{"mode":"egress","allow_domains":["API.GitHub.com.","*.example.com"],"blocked_ports":[25,2525],"bandwidth":"10Mbps"}`
	if err := json.Unmarshal([]byte(in), &p); err != nil {
		t.Fatal(err)
	}
	if err := p.Normalize("network"); err != nil {
		t.Fatal(err)
	}
	if p.Bandwidth != 10_000_000 || p.AllowDomains[0] != "*.example.com" || p.AllowDomains[1] != "api.github.com" {
		t.Errorf("normalized %+v", p)
	}
	b, _ := json.Marshal(p)
	var q NetworkPolicy
	if err := json.Unmarshal(b, &q); err != nil || q.String() != p.String() {
		t.Errorf("round trip %s -> %+v %v", b, q, err)
	}
	if err := json.Unmarshal([]byte(`{"mode":"egress","allow_domain":["x.com"]}`), &p); err == nil || !strings.Contains(err.Error(), "allow_domain") {
		t.Errorf("unknown field: %v", err)
	}
	if err := json.Unmarshal([]byte(`{"bandwidth":"10"}`), &p); err == nil || !strings.Contains(err.Error(), "no unit") {
		t.Errorf("bandwidth without unit: %v", err)
	}
}

func TestNetworkPolicyErrors(t *testing.T) {
	cases := []struct {
		p          NetworkPolicy
		field, msg string
	}{
		{NetworkPolicy{Mode: "open"}, "network.mode", "not a network mode"},
		{NetworkPolicy{Mode: NetworkEgress, AllowDomains: []string{"*.com"}}, "network.allow_domains", "public suffix"},
		{NetworkPolicy{Mode: NetworkEgress, AllowDomains: []string{"*.co.uk"}}, "network.allow_domains", "public suffix"},
		{NetworkPolicy{Mode: NetworkEgress, AllowDomains: []string{"api.*.example.com"}}, "network.allow_domains", "first label"},
		{NetworkPolicy{Mode: NetworkEgress, AllowDomains: []string{"https://example.com/x"}}, "network.allow_domains", "without scheme"},
		{NetworkPolicy{Mode: NetworkEgress, AllowDomains: []string{"localhost"}}, "network.allow_domains", "single label"},
		{NetworkPolicy{Mode: NetworkEgress, AllowDomains: []string{"bad_name!.com"}}, "network.allow_domains", "not a valid domain"},
		{NetworkPolicy{Mode: NetworkFull, AllowDomains: []string{"example.com"}}, "network.allow_domains", "only applies to mode egress"},
		{NetworkPolicy{Mode: NetworkEgress, AllowServices: []string{"db"}}, "network.allow_services", "only applies to mode internal"},
		{NetworkPolicy{Mode: NetworkInternal}, "network.allow_services", "is empty"},
		{NetworkPolicy{Mode: NetworkEgress, BlockedPorts: []int{0}}, "network.blocked_ports", "not a port"},
		{NetworkPolicy{Mode: NetworkEgress, BlockedPorts: []int{70000}}, "network.blocked_ports", "not a port"},
		{NetworkPolicy{Mode: NetworkNone, Bandwidth: 1e6}, "network.mode", "has no network"},
		{NetworkPolicy{Mode: NetworkEgress, Bandwidth: 1000}, "network.bandwidth", "too small"},
		{NetworkPolicy{Mode: NetworkEgress, AllowDomains: []string{"10.0.0.5"}}, "network.allow_domains", "private address"},
		{NetworkPolicy{Mode: NetworkEgress, AllowDomains: []string{"::1"}}, "network.allow_domains", "loopback"},
		{NetworkPolicy{Mode: NetworkEgress, AllowDomains: []string{"2606:4700::1"}}, "network.allow_domains", "IPv6"},
	}
	for _, c := range cases {
		err := c.p.Normalize("network")
		if err == nil || !strings.Contains(err.Error(), c.field) || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%+v: got %v, want an error naming %s and saying %q", c.p, err, c.field, c.msg)
		}
	}
	// The same mistakes from flags name the flag.
	p := NetworkPolicy{Mode: NetworkEgress, AllowDomains: []string{"*.com"}}
	if err := p.Normalize("--network"); err == nil || !strings.Contains(err.Error(), "--allow-domain") {
		t.Errorf("flag field: %v", err)
	}
	// A policy that asks for network without a mode gets egress.
	p = NetworkPolicy{AllowDomains: []string{"api.github.com"}}
	if err := p.Normalize("network"); err != nil || p.Mode != NetworkEgress {
		t.Errorf("no mode: %+v %v", p, err)
	}
}

func TestParseBandwidth(t *testing.T) {
	for in, want := range map[string]Bandwidth{"10Mbps": 10e6, "8mbit": 8e6, "512kbps": 512e3, "1Gbps": 1e9, "1.5Mbps": 1.5e6} {
		if got, err := ParseBandwidth("bandwidth", in); err != nil || got != want {
			t.Errorf("%s: %v %v, want %v", in, got, err, want)
		}
	}
	for in, msg := range map[string]string{"10": "no unit", "10MB": "unknown unit", "fast": "not a rate", "10bps": "too small",
		"5000Gbps": "too large", "99999999999Gbps": "too large"} {
		if _, err := ParseBandwidth("bandwidth", in); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("%s: %v, want %q", in, err, msg)
		}
	}
}

func TestDeniedIP(t *testing.T) {
	denied := map[string]string{
		"10.1.2.3": "private", "172.20.0.1": "private", "192.168.1.1": "private", "127.0.0.1": "loopback",
		"169.254.169.254": "metadata", "169.254.1.1": "link-local", "100.64.0.1": "shared", "0.1.2.3": "reserved",
		"192.0.0.8": "reserved", "198.18.0.1": "reserved", "224.0.0.1": "multicast", "240.0.0.1": "reserved",
		"255.255.255.255": "reserved", "::1": "loopback", "fc00::1": "private", "fe80::1": "link-local",
		"::ffff:10.0.0.1": "IPv4-in-IPv6", "64:ff9b::a00:1": "IPv4-in-IPv6", "2002:a00:1::": "IPv4-in-IPv6",
		"2001:0:a00:1::": "IPv4-in-IPv6", "2606:4700::1111": "IPv6",
	}
	for s, reason := range denied {
		r, bad := DeniedIP(netip.MustParseAddr(s))
		if !bad || !strings.Contains(r, reason) {
			t.Errorf("%s: denied=%v reason %q, want denied as %q", s, bad, r, reason)
		}
	}
	for _, s := range []string{"203.0.113.10", "8.8.8.8", "140.82.112.3"} {
		if r, bad := DeniedIP(netip.MustParseAddr(s)); bad {
			t.Errorf("%s is public but denied: %s", s, r)
		}
	}
}

func TestDomainAllowed(t *testing.T) {
	pats := []string{"api.github.com", "*.example.com"}
	for host, want := range map[string]bool{
		"api.github.com": true, "github.com": false, "x.api.github.com": false,
		"a.example.com": true, "a.b.example.com": true, "example.com": false, "badexample.com": false, "example.com.evil.io": false,
	} {
		if got := DomainAllowed(pats, host); got != want {
			t.Errorf("%s: %v, want %v", host, got, want)
		}
	}
	if n, ok := NormalizeHost("BÜCHER.example.COM."); !ok || n != "xn--bcher-kva.example.com" {
		t.Errorf("punycode: %q %v", n, ok)
	}
	for _, h := range []string{"_srv._tcp.example.com", "_dmarc.example.com", "under_score.example.com"} {
		if n, ok := NormalizeHost(h); !ok || n != h {
			t.Errorf("%s: %q %v; names with '_' are valid DNS names", h, n, ok)
		}
	}
}

func TestNetworkRulesResolve(t *testing.T) {
	strict, _ := LookupProfile("p", "strict")
	trusted, _ := LookupProfile("p", "trusted")
	free := DefaultTiers()["free"]
	ent := DefaultTiers()["enterprise"]
	rules := NetworkRules{Services: map[string]InternalService{"billing-db": {Address: "10.1.2.3:5432"}}}
	if p, err := rules.Resolve("network", NetworkPolicy{}, strict, free); err != nil || p.Mode != NetworkNone {
		t.Errorf("strict default: %+v %v", p, err)
	}
	if _, err := rules.Resolve("network", Net(NetworkFull), strict, free); err == nil || !strings.Contains(err.Error(), "not allowed for the free tier") {
		t.Errorf("full on free: %v", err)
	}
	if _, err := rules.Resolve("network", Net(NetworkFull), trusted, free); err != nil {
		t.Errorf("full with trusted: %v", err)
	}
	if _, err := rules.Resolve("network", Net(NetworkFull), strict, ent); err != nil {
		t.Errorf("full on enterprise: %v", err)
	}
	if _, err := rules.Resolve("network", NetworkPolicy{Mode: NetworkInternal, AllowServices: []string{"ledger"}}, strict, free); err == nil ||
		!strings.Contains(err.Error(), "network.allow_services") || !strings.Contains(err.Error(), "billing-db") {
		t.Errorf("undefined service: %v", err)
	}
	limited := Tier{Name: "tiny", NetworkModes: []NetworkMode{NetworkNone}}
	if _, err := rules.Resolve("network", Net(NetworkEgress), strict, limited); err == nil || !strings.Contains(err.Error(), "want one of none") {
		t.Errorf("egress on a none-only tier: %v", err)
	}
	for _, bad := range []InternalService{{}, {Address: "10.1.2.3"}, {Address: "db.local:5432"}, {Address: "10.1.2.3:0"}} {
		r := NetworkRules{Services: map[string]InternalService{"x": bad}}
		if err := r.Validate("network"); err == nil || !strings.Contains(err.Error(), "network.internal_services.x") {
			t.Errorf("%+v: %v", bad, err)
		}
	}
	eps, err := InternalService{Addresses: []string{"10.1.2.0/24:5432", "10.9.9.9:80"}}.Endpoints("s")
	if err != nil || len(eps) != 2 || eps[0].String() != "10.1.2.0/24:5432" || eps[1].String() != "10.9.9.9:80" {
		t.Errorf("endpoints %v %v", eps, err)
	}
}
