package cronium

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/net/idna"
	"golang.org/x/net/publicsuffix"
)

// NetworkMode is the kind of network an execution gets.
type NetworkMode string

// Network modes.
const (
	// NetworkNone gives the container only a loopback interface.
	NetworkNone NetworkMode = "none"
	// NetworkEgress reaches the public internet only: never the host, other
	// sandboxes, private or special ranges. With AllowDomains, all TCP goes
	// through cronium's filtering proxy and only those names resolve.
	NetworkEgress NetworkMode = "egress"
	// NetworkInternal reaches only the operator's named internal services.
	NetworkInternal NetworkMode = "internal"
	// NetworkFull reaches everything but the metadata range (unless the operator allows it).
	NetworkFull NetworkMode = "full"
)

// NetworkModes lists the modes in order of reach.
var NetworkModes = []NetworkMode{NetworkNone, NetworkEgress, NetworkInternal, NetworkFull}

// ParseNetworkMode validates a mode name. Empty stays empty ("the default").
func ParseNetworkMode(field, s string) (NetworkMode, error) {
	switch NetworkMode(s) {
	case "", NetworkNone, NetworkEgress, NetworkInternal, NetworkFull:
		return NetworkMode(s), nil
	}
	return "", Invalid(field, s, "is not a network mode: want none, egress, internal or full")
}

// NetworkPolicy is what network an execution gets, as data: engines map it
// to their own mechanisms (host firewall, proxy and resolver on Docker;
// NetworkPolicy plus the same proxy on Kubernetes). The zero value means
// "the profile's default". In YAML and JSON a bare string ("egress") is a
// policy with only a mode.
type NetworkPolicy struct {
	// Mode is none, egress, internal or full. Empty with any other field set means egress.
	Mode NetworkMode `json:"mode,omitempty"`
	// AllowDomains (egress only) restricts egress to these names, through the
	// filtering proxy. "*.example.com" matches subdomains of example.com only.
	AllowDomains []string `json:"allow_domains,omitempty"`
	// AllowServices (internal only) names services the operator defined.
	AllowServices []string `json:"allow_services,omitempty"`
	// BlockedPorts are refused, on top of the operator's list (which they never shrink).
	BlockedPorts []int `json:"blocked_ports,omitempty"`
	// Bandwidth caps traffic in each direction; 0 means no cap.
	Bandwidth Bandwidth `json:"bandwidth,omitempty"`
}

// Net returns a policy with only a mode.
func Net(m NetworkMode) NetworkPolicy { return NetworkPolicy{Mode: m} }

// IsZero reports whether nothing was asked for.
func (p NetworkPolicy) IsZero() bool {
	return p.Mode == "" && len(p.AllowDomains) == 0 && len(p.AllowServices) == 0 && len(p.BlockedPorts) == 0 && p.Bandwidth == 0
}

// Networked reports whether the policy gives the sandbox an interface besides loopback.
func (p NetworkPolicy) Networked() bool { return p.Mode != "" && p.Mode != NetworkNone }

// Allowlist reports whether egress is restricted to named domains.
func (p NetworkPolicy) Allowlist() bool { return p.Mode == NetworkEgress && len(p.AllowDomains) > 0 }

// String is a short, stable description, also used in pool keys.
func (p NetworkPolicy) String() string {
	if p.Mode == "" {
		return "default"
	}
	s := string(p.Mode)
	if len(p.AllowDomains) > 0 {
		s += " allow_domains=" + strings.Join(p.AllowDomains, ",")
	}
	if len(p.AllowServices) > 0 {
		s += " allow_services=" + strings.Join(p.AllowServices, ",")
	}
	if len(p.BlockedPorts) > 0 {
		ps := make([]string, len(p.BlockedPorts))
		for i, n := range p.BlockedPorts {
			ps[i] = strconv.Itoa(n)
		}
		s += " blocked_ports=" + strings.Join(ps, ",")
	}
	if p.Bandwidth > 0 {
		s += " bandwidth=" + p.Bandwidth.String()
	}
	return s
}

// UnmarshalJSON accepts a bare mode string or an object.
func (p *NetworkPolicy) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*p = NetworkPolicy{Mode: NetworkMode(s)}
		return nil
	}
	if string(b) == "null" {
		*p = NetworkPolicy{}
		return nil
	}
	type plain NetworkPolicy
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var q plain
	if err := dec.Decode(&q); err != nil {
		return fmt.Errorf("network: %w (fields: mode, allow_domains, allow_services, blocked_ports, bandwidth)", err)
	}
	*p = NetworkPolicy(q)
	return nil
}

// Normalize validates the policy and puts it in canonical form: an empty
// mode with other fields set becomes egress, domains are lowercased and in
// punycode, lists sorted and de-duplicated. field prefixes error names
// ("network" or "--network"). It does not check operator data (services,
// tiers): see NetworkRules.
func (p *NetworkPolicy) Normalize(field string) error {
	sub := func(name string) string { return subField(field, name) }
	mode, err := ParseNetworkMode(sub("mode"), string(p.Mode))
	if err != nil {
		if strings.HasPrefix(field, "--") {
			err = Invalid(field, string(p.Mode), "is not a network mode: want none, egress, internal or full")
		}
		return err
	}
	if mode == "" && !p.IsZero() {
		mode = NetworkEgress
		if len(p.AllowServices) > 0 {
			mode = NetworkInternal
		}
	}
	p.Mode = mode
	if len(p.AllowDomains) > 0 && mode != NetworkEgress {
		return Invalid(sub("allow_domains"), strings.Join(p.AllowDomains, ","), "only applies to mode egress (it was "+string(mode)+")")
	}
	if len(p.AllowServices) > 0 && mode != NetworkInternal {
		return Invalid(sub("allow_services"), strings.Join(p.AllowServices, ","), "only applies to mode internal (it was "+string(mode)+")")
	}
	if mode == NetworkInternal && len(p.AllowServices) == 0 {
		return Invalid(sub("allow_services"), "", "is empty: mode internal reaches only the services named here (defined by the operator in internal_services)")
	}
	if mode == NetworkNone && !(len(p.BlockedPorts) == 0 && p.Bandwidth == 0) {
		return Invalid(sub("mode"), "none", "has no network: blocked_ports and bandwidth need mode egress, internal or full")
	}
	doms := make([]string, 0, len(p.AllowDomains))
	for _, d := range p.AllowDomains {
		n, err := NormalizeDomainPattern(d)
		if err != nil {
			return Invalid(sub("allow_domains"), d, err.Error())
		}
		doms = append(doms, n)
	}
	p.AllowDomains = uniqSorted(doms)
	for _, s := range p.AllowServices {
		if !serviceName.MatchString(s) {
			return Invalid(sub("allow_services"), s, "is not a service name: use lowercase letters, digits, '.', '_' or '-'")
		}
	}
	p.AllowServices = uniqSorted(append([]string(nil), p.AllowServices...))
	for _, n := range p.BlockedPorts {
		if n < 1 || n > 65535 {
			return Invalid(sub("blocked_ports"), strconv.Itoa(n), "is not a port: want 1 to 65535")
		}
	}
	sort.Ints(p.BlockedPorts)
	p.BlockedPorts = uniqInts(p.BlockedPorts)
	if p.Bandwidth < 0 || (p.Bandwidth > 0 && p.Bandwidth < minBandwidth) {
		return Invalid(sub("bandwidth"), p.Bandwidth.String(), "is too small: want at least 64kbps")
	}
	if p.Bandwidth > maxBandwidth {
		return Invalid(sub("bandwidth"), p.Bandwidth.String(), "is too large: want at most 10Gbps")
	}
	if len(p.AllowDomains) == 0 {
		p.AllowDomains = nil
	}
	if len(p.AllowServices) == 0 {
		p.AllowServices = nil
	}
	if len(p.BlockedPorts) == 0 {
		p.BlockedPorts = nil
	}
	return nil
}

// subField names a policy field in errors: "network.allow_domains" for
// YAML and the API, "--allow-domain" for flags.
func subField(field, name string) string {
	if strings.HasPrefix(field, "--") {
		flags := map[string]string{"mode": "--network", "allow_domains": "--allow-domain", "allow_services": "--allow-service",
			"blocked_ports": "--block-port", "bandwidth": "--bandwidth"}
		return flags[name]
	}
	return field + "." + name
}

var serviceName = regexp.MustCompile(`^[a-z0-9]([a-z0-9._-]{0,62}[a-z0-9])?$`)

func uniqSorted(s []string) []string {
	sort.Strings(s)
	out := s[:0]
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}

func uniqInts(s []int) []int {
	out := s[:0]
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}

// NormalizeDomainPattern checks an allow_domains entry and returns its
// canonical form: lowercase, no trailing dot, punycode. "*.example.com"
// matches subdomains of example.com (not example.com itself); a wildcard
// whose rest is a public suffix ("*.com", "*.co.uk") is refused, and so is a
// wildcard anywhere but as the first label. An IP literal is allowed and
// matches only itself.
func NormalizeDomainPattern(s string) (string, error) {
	s = strings.TrimSuffix(strings.TrimSpace(s), ".")
	if s == "" {
		return "", fmt.Errorf("is empty")
	}
	if ip, err := netip.ParseAddr(s); err == nil {
		if why, bad := DeniedIP(ip.Unmap()); bad {
			return "", fmt.Errorf("is a %s, which egress never reaches: allow a public address or a name", why)
		}
		return ip.Unmap().String(), nil
	}
	wild := strings.HasPrefix(s, "*.")
	rest := strings.TrimPrefix(s, "*.")
	if strings.Contains(rest, "*") {
		return "", fmt.Errorf("has a wildcard that is not the first label: use *.example.com")
	}
	if strings.ContainsAny(rest, ":/ @") {
		return "", fmt.Errorf("is not a domain name: give a name like api.example.com, without scheme, port or path")
	}
	a, err := hostnames.ToASCII(rest)
	if err == nil && !dnsName.MatchString(a) {
		err = fmt.Errorf("labels may hold only letters, digits, '-' and '_'")
	}
	if err != nil {
		return "", fmt.Errorf("is not a valid domain name: %v", err)
	}
	a = strings.ToLower(a)
	if !strings.Contains(a, ".") && !wild {
		return "", fmt.Errorf("is a single label: give a fully qualified name like api.example.com")
	}
	if wild {
		if suffix, _ := publicsuffix.PublicSuffix(a); suffix == a {
			return "", fmt.Errorf("spans a public suffix (%s): anyone can register names under it; name the domain, like *.example.%s", a, a)
		}
		return "*." + a, nil
	}
	return a, nil
}

// dnsName is a name in ASCII: labels of letters, digits, '-' and '_', of 1-63 bytes.
var dnsName = regexp.MustCompile(`^(?i)[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)*$`)

// hostnames is IDNA lookup that also allows '_' (SRV, DMARC, DKIM names).
var hostnames = idna.New(idna.MapForLookup(), idna.BidiRule(), idna.StrictDomainName(false))

// NormalizeHost turns a host name as a client sent it (SNI, Host header,
// DNS question) into the canonical form of NormalizeDomainPattern. ok is
// false when it is not a valid name.
func NormalizeHost(h string) (string, bool) {
	h = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(h)), ".")
	if h == "" {
		return "", false
	}
	if ip, err := netip.ParseAddr(strings.Trim(h, "[]")); err == nil {
		return ip.Unmap().String(), true
	}
	a, err := hostnames.ToASCII(h)
	if err != nil || !dnsName.MatchString(a) {
		return "", false
	}
	return strings.ToLower(a), true
}

// DomainAllowed reports whether host (normalized) matches one of patterns
// (normalized): exactly, or as a subdomain of a "*." pattern, on label boundaries.
func DomainAllowed(patterns []string, host string) bool {
	for _, p := range patterns {
		if rest, ok := strings.CutPrefix(p, "*."); ok {
			if strings.HasSuffix(host, "."+rest) {
				return true
			}
		} else if p == host {
			return true
		}
	}
	return false
}

// Bandwidth is a rate in bits per second. It reads "10Mbps", "512kbps",
// "1Gbps" (also "Mbit", "kbit"); a bare number is refused: the unit is
// easy to get wrong by 8×.
type Bandwidth int64

const (
	minBandwidth = 64_000
	maxBandwidth = 10_000_000_000
)

// ParseBandwidth parses a rate with a unit. field names the input in errors.
func ParseBandwidth(field, s string) (Bandwidth, error) {
	t := strings.TrimSpace(s)
	if t == "" || t == "0" {
		return 0, nil
	}
	i := 0
	for i < len(t) && (t[i] >= '0' && t[i] <= '9' || t[i] == '.') {
		i++
	}
	num, unit := t[:i], strings.TrimSpace(t[i:])
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || v <= 0 {
		return 0, Invalid(field, s, "is not a rate: want a number with a unit, like 10Mbps, 512kbps or 1Gbps")
	}
	mult := map[string]float64{
		"bps": 1, "bit": 1, "kbps": 1e3, "kbit": 1e3, "mbps": 1e6, "mbit": 1e6, "gbps": 1e9, "gbit": 1e9,
	}[strings.ToLower(unit)]
	if mult == 0 {
		if unit == "" {
			return 0, Invalid(field, s, "has no unit: write it like 10Mbps (megabits per second), 512kbps or 1Gbps")
		}
		return 0, Invalid(field, s, "has an unknown unit "+strconv.Quote(unit)+": want bps, kbps, Mbps or Gbps (bits per second)")
	}
	if v*mult > maxBandwidth {
		return 0, Invalid(field, s, "is too large: want at most 10Gbps")
	}
	b := Bandwidth(v * mult)
	if b < minBandwidth {
		return 0, Invalid(field, s, "is too small: want at least 64kbps")
	}
	return b, nil
}

// String writes the rate with the largest exact unit.
func (b Bandwidth) String() string {
	switch {
	case b == 0:
		return "0"
	case b%1e9 == 0:
		return strconv.FormatInt(int64(b/1e9), 10) + "Gbps"
	case b%1e6 == 0:
		return strconv.FormatInt(int64(b/1e6), 10) + "Mbps"
	case b%1e3 == 0:
		return strconv.FormatInt(int64(b/1e3), 10) + "kbps"
	}
	return strconv.FormatInt(int64(b), 10) + "bps"
}

// MarshalJSON writes the rate as a string with a unit.
func (b Bandwidth) MarshalJSON() ([]byte, error) { return json.Marshal(b.String()) }

// UnmarshalJSON reads a string with a unit.
func (b *Bandwidth) UnmarshalJSON(data []byte) error {
	var s string
	if err := json.Unmarshal(data, &s); err != nil {
		return fmt.Errorf("bandwidth: want a string with a unit, like \"10Mbps\"")
	}
	v, err := ParseBandwidth("bandwidth", s)
	if err != nil {
		return err
	}
	*b = v
	return nil
}

// deniedRanges are never reachable in egress mode, IPv4 and IPv6, with the
// reason shown to the user. Sources: IANA special-purpose registries and
// the bypasses in smokescreen's history (CGNAT, NAT64, 6to4, Teredo).
var deniedRanges = func() []deniedRange {
	var out []deniedRange
	add := func(reason string, cidrs ...string) {
		for _, c := range cidrs {
			out = append(out, deniedRange{netip.MustParsePrefix(c), reason})
		}
	}
	add("metadata address", "169.254.169.254/32", "fd00:ec2::254/128")
	add("link-local address", "169.254.0.0/16", "fe80::/10")
	add("loopback address", "127.0.0.0/8", "::1/128")
	add("private address", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")
	add("shared address space", "100.64.0.0/10")
	add("reserved address", "0.0.0.0/8", "192.0.0.0/24", "198.18.0.0/15", "240.0.0.0/4", "::/128", "100::/64", "2001:db8::/32")
	add("multicast address", "224.0.0.0/4", "ff00::/8")
	add("IPv4-in-IPv6 address", "::ffff:0:0/96", "64:ff9b::/96", "64:ff9b:1::/48", "2002::/16", "2001::/32", "::/96")
	return out
}()

type deniedRange struct {
	prefix netip.Prefix
	reason string
}

// DeniedPrefixes lists the IPv4 and IPv6 ranges egress never reaches.
func DeniedPrefixes() []netip.Prefix {
	out := make([]netip.Prefix, 0, len(deniedRanges))
	for _, d := range deniedRanges {
		out = append(out, d.prefix)
	}
	return out
}

// DeniedIP reports whether egress must refuse ip, and why ("private
// address", "metadata address", ...). IPv6 is always denied: sandboxes have
// no IPv6 route, and its embedded-IPv4 forms are how filters get bypassed.
func DeniedIP(ip netip.Addr) (reason string, denied bool) {
	for _, d := range deniedRanges {
		if d.prefix.Contains(ip) {
			return d.reason, true
		}
	}
	if ip.Is6() && !ip.Is4In6() {
		return "IPv6 address (sandboxes have IPv4 egress only)", true
	}
	if !ip.IsValid() {
		return "invalid address", true
	}
	return "", false
}

// NetworkUsage is what an execution did on the network.
type NetworkUsage struct {
	// BytesIn and BytesOut count traffic to and from the script (IP
	// packets forwarded for it, and payload through the proxy).
	BytesIn  int64 `json:"bytes_in"`
	BytesOut int64 `json:"bytes_out"`
	// Refused counts connections and packets refused by the policy.
	Refused int64 `json:"refused"`
	// Refusals describes the first refusals, like "10.0.0.5:5432/tcp (private address)".
	Refusals []string `json:"refusals,omitempty"`
	// Destinations are where an audited run opened connections, like
	// "192.0.2.7:443/tcp" (the first MaxRefusals).
	Destinations []string `json:"destinations,omitempty"`
}

// MaxRefusals is how many refusals an execution records in detail.
const MaxRefusals = 20

// InternalService is a service the operator lets internal-mode executions
// reach: "host:port" or "CIDR:port" addresses.
type InternalService struct {
	// Address is one "10.1.2.3:5432" or "10.1.2.0/24:5432".
	Address string `json:"address,omitempty"`
	// Addresses lists more of them.
	Addresses []string `json:"addresses,omitempty"`
}

// ServiceEndpoint is one parsed address of an internal service.
type ServiceEndpoint struct {
	Prefix netip.Prefix
	Port   int
}

// String writes the endpoint as "10.1.2.3:5432" or "10.1.2.0/24:5432".
func (s ServiceEndpoint) String() string {
	if s.Prefix.IsSingleIP() {
		return netip.AddrPortFrom(s.Prefix.Addr(), uint16(s.Port)).String()
	}
	return s.Prefix.String() + ":" + strconv.Itoa(s.Port)
}

// Endpoints parses the service's addresses. field names it in errors.
func (s InternalService) Endpoints(field string) ([]ServiceEndpoint, error) {
	all := append([]string(nil), s.Addresses...)
	if s.Address != "" {
		all = append([]string{s.Address}, all...)
	}
	if len(all) == 0 {
		return nil, Invalid(field+".address", "", "is empty: give \"IP:port\" or \"CIDR:port\", like 10.1.2.3:5432")
	}
	var out []ServiceEndpoint
	for _, a := range all {
		i := strings.LastIndex(a, ":")
		if i < 0 {
			return nil, Invalid(field+".address", a, "has no port: write it like 10.1.2.3:5432 or 10.1.2.0/24:5432")
		}
		host, ps := strings.Trim(a[:i], "[]"), a[i+1:]
		port, err := strconv.Atoi(ps)
		if err != nil || port < 1 || port > 65535 {
			return nil, Invalid(field+".address", a, "has no valid port (1-65535): write it like 10.1.2.3:5432")
		}
		var pfx netip.Prefix
		if strings.Contains(host, "/") {
			pfx, err = netip.ParsePrefix(host)
			pfx = pfx.Masked()
		} else {
			var ip netip.Addr
			ip, err = netip.ParseAddr(host)
			pfx = netip.PrefixFrom(ip, ip.BitLen())
		}
		if err != nil || !pfx.Addr().Is4() {
			return nil, Invalid(field+".address", a, "is not an IPv4 address or CIDR with a port: write it like 10.1.2.3:5432 (names are not resolved, so the rule cannot drift)")
		}
		out = append(out, ServiceEndpoint{pfx, port})
	}
	return out, nil
}

// NetworkRules are the operator's network settings the control plane
// checks policies against.
type NetworkRules struct {
	// Services are the internal services by name.
	Services map[string]InternalService `json:"internal_services,omitempty"`
	// DefaultModes is the mode per profile when an event names none. Default:
	// the profile's own (none for strict and standard, full for trusted).
	DefaultModes map[string]NetworkMode `json:"default_modes,omitempty"`
}

// DefaultTierNetworkModes are the modes a tier may use when it lists none:
// everything but full (full also needs the trusted profile).
var DefaultTierNetworkModes = []NetworkMode{NetworkNone, NetworkEgress, NetworkInternal}

// Resolve normalizes p for an execution with profile under tier: fills the
// default mode, and checks that the tier allows the mode and the services
// exist. Errors name field.
func (r NetworkRules) Resolve(field string, p NetworkPolicy, profile Profile, tier Tier) (NetworkPolicy, error) {
	if err := p.Normalize(field); err != nil {
		return p, err
	}
	if p.Mode == "" {
		p.Mode = profile.Network
		if m, ok := r.DefaultModes[profile.Name]; ok {
			p.Mode = m
		}
		if p.Mode == "" {
			p.Mode = NetworkNone
		}
	}
	modes := tier.NetworkModes
	if len(modes) == 0 {
		modes = DefaultTierNetworkModes
	}
	allowed := false
	for _, m := range modes {
		allowed = allowed || m == p.Mode
	}
	if p.Mode == NetworkFull && (profile.Name == "trusted" || profile.Name == "compat") {
		allowed = true
	}
	if !allowed {
		names := make([]string, len(modes))
		for i, m := range modes {
			names[i] = string(m)
		}
		hint := ""
		if p.Mode == NetworkFull {
			hint = " (full needs the trusted profile, or compat, or a tier that allows it)"
		}
		t := tier.Name
		if t == "" {
			t = "this"
		}
		return p, Invalid(field, string(p.Mode), fmt.Sprintf("is not allowed for the %s tier%s: want one of %s", t, hint, strings.Join(names, ", ")))
	}
	for _, s := range p.AllowServices {
		if _, ok := r.Services[s]; !ok {
			known := make([]string, 0, len(r.Services))
			for k := range r.Services {
				known = append(known, k)
			}
			sort.Strings(known)
			msg := "is not an internal service: the operator defines them in the server config (network.internal_services)"
			if len(known) > 0 {
				msg += "; defined: " + strings.Join(known, ", ")
			}
			return p, Invalid(subField(field, "allow_services"), s, msg)
		}
	}
	return p, nil
}

// Validate checks the operator's rules. field prefixes error names.
func (r NetworkRules) Validate(field string) error {
	for name, s := range r.Services {
		if !serviceName.MatchString(name) {
			return Invalid(field+".internal_services", name, "is not a service name: use lowercase letters, digits, '.', '_' or '-'")
		}
		if _, err := s.Endpoints(field + ".internal_services." + name); err != nil {
			return err
		}
	}
	for prof, m := range r.DefaultModes {
		if _, err := LookupProfile(field+".default_modes", prof); err != nil {
			return err
		}
		if _, err := ParseNetworkMode(field+".default_modes."+prof, string(m)); err != nil || m == "" {
			return Invalid(field+".default_modes."+prof, string(m), "is not a network mode: want none, egress, internal or full")
		}
	}
	return nil
}
