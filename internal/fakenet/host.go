package fakenet

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"strings"
)

// Host is one public-looking address in a namespace of its own, serving
// HTTP on port 80: a package index or another outside service for tests
// that do not need the whole fake internet (and may run beside it).
type Host struct {
	in   *Internet
	addr string
	peer string
	ln   net.Listener
}

// ServeHost routes addr (a /32 in a documentation range that nothing else
// on this machine uses) into a new namespace linked to the host through
// link, a free /30 ("198.51.100.8/30": the host takes .9, the namespace
// .10), and serves h there on port 80. Close removes it all.
func ServeHost(addr, link string, h http.Handler) (*Host, error) {
	ip, ipnet, err := net.ParseCIDR(link)
	if err != nil || ipnet.IP.To4() == nil {
		return nil, fmt.Errorf("fakenet: link %q is not an IPv4 /30", link)
	}
	base := ip.Mask(ipnet.Mask).To4()
	hostSide := net.IPv4(base[0], base[1], base[2], base[3]+1).String()
	nsSideAddr := net.IPv4(base[0], base[1], base[2], base[3]+2).String()
	for _, a := range []string{addr, hostSide} {
		out, _ := exec.Command("ip", "-4", "route", "get", a).Output()
		if strings.Contains(string(out), " dev crn") || strings.Contains(string(out), "local ") {
			return nil, fmt.Errorf("fakenet: %s is already in use here (%s)", a, strings.TrimSpace(string(out)))
		}
		out, _ = exec.Command("ip", "-4", "route", "show", a+"/32").Output()
		if len(strings.TrimSpace(string(out))) > 0 {
			return nil, fmt.Errorf("fakenet: %s already has a route", a)
		}
	}
	var b [3]byte
	rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	in := &Internet{ns: "crn-host-" + id, hostIf: "crnih" + id[:5]} // crni: the fake internet's links, which tests do not count as leftovers
	steps := [][]string{
		{"ip", "netns", "add", in.ns},
		{"ip", "link", "add", in.hostIf, "type", "veth", "peer", "name", "eth0", "netns", in.ns},
		{"ip", "addr", "add", hostSide + "/30", "dev", in.hostIf},
		{"ip", "link", "set", in.hostIf, "up"},
		{"ip", "-n", in.ns, "link", "set", "lo", "up"},
		{"ip", "-n", in.ns, "addr", "add", nsSideAddr + "/30", "dev", "eth0"},
		{"ip", "-n", in.ns, "link", "set", "eth0", "up"},
		{"ip", "-n", in.ns, "addr", "add", addr + "/32", "dev", "lo"},
		{"ip", "-n", in.ns, "route", "add", "default", "via", hostSide},
		{"ip", "route", "add", addr + "/32", "via", nsSideAddr},
	}
	hs := &Host{in: in, addr: addr, peer: nsSideAddr}
	for _, s := range steps {
		if err := sh(s...); err != nil {
			hs.Close()
			return nil, err
		}
	}
	err = in.inNS(func() error {
		ln, err := net.Listen("tcp4", addr+":80")
		hs.ln = ln
		return err
	})
	if err != nil {
		hs.Close()
		return nil, err
	}
	go http.Serve(hs.ln, h) // ends when Close closes the listener
	return hs, nil
}

// Close stops the server and removes the route, link and namespace.
func (h *Host) Close() error {
	if h.ln != nil {
		h.ln.Close()
	}
	exec.Command("ip", "route", "del", h.addr+"/32", "via", h.peer).Run()
	exec.Command("ip", "link", "del", h.in.hostIf).Run()
	exec.Command("ip", "netns", "del", h.in.ns).Run()
	return nil
}
