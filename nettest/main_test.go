// Package nettest tests network policies end to end: a real engine (Docker;
// the Kubernetes test cluster with CRONIUM_NETTEST_ENGINE=kubernetes), the
// real agent and runtime images, and a fake internet in a network
// namespace (internal/fakenet). Traffic only goes to addresses the tests
// created.
package nettest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	cronium "github.com/cronium/executor"
	_ "github.com/cronium/executor/docker" // registers the engines under test
	"github.com/cronium/executor/images"
	"github.com/cronium/executor/internal/fakenet"
	_ "github.com/cronium/executor/kube"
)

var (
	inet     *fakenet.Internet
	engine   netEngine
	agentBin string
	stateDir string
)

// services are the operator's internal services in these tests.
var services = map[string]cronium.InternalService{
	"billing-db": {Address: fakenet.Private + ":5432"},
}

func TestMain(m *testing.M) { os.Exit(runMain(m)) }

func runMain(m *testing.M) int {
	tmp, err := os.MkdirTemp("", "crnet")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(tmp)
	agentBin = filepath.Join(tmp, "cronium-agent")
	build := exec.Command("go", "build", "-o", agentBin, "github.com/cronium/executor/cmd/cronium-agent")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build agent: %v\n%s", err, out)
		return 1
	}
	if inet, err = fakenet.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "FAIL: build the fake internet (needs root, iproute2):", err)
		return 1
	}
	defer inet.Close()
	stateDir = filepath.Join(tmp, "st")
	if engine, err = newEngine(context.Background()); err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: the network tests need a running %s: %v\n", engineName(), err)
		return 1
	}
	code := m.Run()
	guard, _, _ := engine.NetworkGuard()
	engine.Close()
	// Other test binaries (run in parallel by go test ./...) have guards of
	// their own: only this one's traces count.
	if left := leftovers(guard); left != "" && code == 0 {
		fmt.Fprintln(os.Stderr, "FAIL: left behind:", left)
		return 1
	}
	return code
}

// netEngine is an engine with cronium's network guard on this host.
type netEngine interface {
	cronium.Engine
	NetworkGuard() (id string, subnet netip.Prefix, ok bool)
	SettleNetwork()
	NodeID() string
}

// engineName is the engine under test: docker, or $CRONIUM_NETTEST_ENGINE.
func engineName() string {
	if v := os.Getenv("CRONIUM_NETTEST_ENGINE"); v != "" {
		return v
	}
	return "docker"
}

func newEngine(ctx context.Context) (netEngine, error) {
	return openEngine(ctx, "nettest-", cronium.NetworkSetup{UpstreamDNS: []string{fakenet.DNS}, Services: services})
}

// openEngine opens the engine under test on a node of its own. The
// kubernetes engine runs on the test cluster (scripts/k8s-cluster.sh up).
func openEngine(ctx context.Context, node string, network cronium.NetworkSetup) (netEngine, error) {
	var params map[string]string
	if engineName() == "kubernetes" {
		lab := os.Getenv("K8S_LAB")
		if lab == "" {
			lab = "/var/cache/cronium/k8s/lab"
		}
		params = map[string]string{"kubeconfig": filepath.Join(lab, "kubeconfigs", "admin.kubeconfig"), "node": "k8s-lab-node"}
	}
	e, err := cronium.OpenEngine(ctx, "engine", engineName(), cronium.EngineOptions{
		AgentPath: agentBin, StateDir: stateDir, Images: images.Refs(), NodeID: node + cronium.NewID()[:6],
		Network: network, Params: params,
	})
	if err != nil {
		return nil, err
	}
	ne, ok := e.(netEngine)
	if !ok {
		e.Close()
		return nil, fmt.Errorf("the %s engine has no network guard on this host", engineName())
	}
	return ne, nil
}

// leftovers describes the chains, bridge, veths and IFB devices of guard
// that exist now.
func leftovers(guard string) string {
	if guard == "" {
		return ""
	}
	var out []string
	for _, bin := range []string{"iptables-save", "ip6tables-save"} {
		b, _ := exec.Command(bin).Output()
		if n := strings.Count(string(b), "CRN-"+guard); n > 0 {
			out = append(out, fmt.Sprintf("%d %s lines naming CRN-%s chains", n, bin, guard))
		}
	}
	b, _ := exec.Command("ip", "-o", "link").Output()
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		name := strings.TrimSuffix(strings.Split(f[1], "@")[0], ":")
		if strings.HasPrefix(name, "crn"+guard) || strings.HasPrefix(name, "crv"+guard) || name == "br-crn"+guard {
			out = append(out, "link "+name)
		}
	}
	return strings.Join(out, "; ")
}

// probe is python run in every probe script first: helpers that return a
// short verdict string per attempt ("ok:<data>", "err:<exception>", "http403:<body>").
const probe = `
import socket, json, ssl, os, sys, time, urllib.request, urllib.error
CA = os.environ.get("TEST_CA", "")
R = {}
def tcp(host, port, send=b"", timeout=4):
    try:
        s = socket.create_connection((host, port), timeout=timeout)
    except Exception as e:
        return "err:%s:%s" % (type(e).__name__, e)
    try:
        if send:
            s.sendall(send)
        data = b""
        s.settimeout(timeout)
        while True:
            d = s.recv(65536)
            if not d:
                break
            data += d
        return "ok:" + data.decode(errors="replace")
    except Exception as e:
        return "err:%s:%s" % (type(e).__name__, e)
    finally:
        s.close()
def http(url, host=None, data=None, timeout=8):
    try:
        h = {"Host": host} if host else {}
        req = urllib.request.Request(url, headers=h, data=data)
        ctx = ssl.create_default_context(cadata=CA) if url.startswith("https") else None
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=ctx))
        with opener.open(req, timeout=timeout) as r:
            return "ok:" + r.read().decode(errors="replace")
    except urllib.error.HTTPError as e:
        return "http%d:%s" % (e.code, e.read().decode(errors="replace"))
    except Exception as e:
        return "err:%s:%s" % (type(e).__name__, e)
def tls(ip, port, sni, timeout=4):
    try:
        ctx = ssl.create_default_context(cadata=CA)
        ctx.check_hostname = False
        s = socket.create_connection((ip, port), timeout=timeout)
        t = ctx.wrap_socket(s, server_hostname=sni)
        t.sendall(b"GET / HTTP/1.1\r\nHost: " + sni.encode() + b"\r\nConnection: close\r\n\r\n")
        data = b""
        while True:
            d = t.recv(65536)
            if not d:
                break
            data += d
        return "ok:" + data.decode(errors="replace")
    except Exception as e:
        return "err:%s:%s" % (type(e).__name__, e)
def resolve(name):
    try:
        return "ok:" + ",".join(sorted(set(a[4][0] for a in socket.getaddrinfo(name, 80, proto=socket.IPPROTO_TCP))))
    except Exception as e:
        return "err:%s:%s" % (type(e).__name__, e)
def udp(host, port, timeout=2):
    try:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(timeout)
        s.sendto(b"ping", (host, port))
        d, _ = s.recvfrom(100)
        return "ok:" + d.decode()
    except Exception as e:
        return "err:%s:%s" % (type(e).__name__, e)
def myip():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.connect(("203.0.113.10", 9))
    return s.getsockname()[0]
`

// runProbe runs a python probe script (after the helpers) under policy
// and returns the JSON object it printed last, and the result.
func runProbe(t *testing.T, policy cronium.NetworkPolicy, script string, mod ...func(*cronium.Spec)) (map[string]string, cronium.Result) {
	t.Helper()
	var mu sync.Mutex
	var out strings.Builder
	spec := cronium.Spec{
		Language: cronium.Python, Script: []byte(probe + script + "\nprint(json.dumps(R))\n"),
		Network: policy, Env: map[string]string{"TEST_CA": string(inet.CA)},
		Output: func(c cronium.OutputChunk) { mu.Lock(); out.Write(c.Data); mu.Unlock() },
	}
	spec.Limits.Timeout = 60 * time.Second
	spec.Limits.CPUs = 1
	for _, f := range mod {
		f(&spec)
	}
	res, err := engine.Run(context.Background(), spec)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	mu.Lock()
	text := out.String()
	mu.Unlock()
	if res.Outcome != cronium.Succeeded {
		t.Fatalf("outcome %s (%s); output:\n%s", res.Outcome, res.Error, text)
	}
	lines := strings.Split(strings.TrimSpace(text), "\n")
	got := map[string]string{}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &got); err != nil {
		t.Fatalf("probe output is not JSON: %v\n%s", err, text)
	}
	return got, res
}

// want checks that each probe's verdict starts with its expected prefix.
func want(t *testing.T, got map[string]string, prefixes map[string]string) {
	t.Helper()
	for k, p := range prefixes {
		if !strings.HasPrefix(got[k], p) {
			t.Errorf("%s: got %q, want a verdict starting %q", k, got[k], p)
		}
	}
}

// refused checks that the execution's usage lists a refusal containing each part.
func refused(t *testing.T, res cronium.Result, parts ...string) {
	t.Helper()
	n := res.Usage.Network
	if n == nil {
		t.Fatalf("no network usage recorded")
	}
	for _, p := range parts {
		found := false
		for _, r := range n.Refusals {
			found = found || strings.Contains(r, p)
		}
		if !found {
			t.Errorf("no refusal mentions %q; refusals: %q", p, n.Refusals)
		}
	}
}
