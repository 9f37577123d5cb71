package nettest

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	cronium "github.com/cronium/executor"
	"github.com/cronium/executor/netguard"
)

// ourGuard is the ID and subnet of the test engine's guard: other test
// binaries running at the same time have guards of their own.
func ourGuard(t *testing.T) (string, netip.Prefix) {
	t.Helper()
	id, subnet, ok := engine.NetworkGuard()
	if !ok {
		t.Fatal("the test engine has no network guard")
	}
	return id, subnet
}

// leaseChains counts the per-sandbox chains (CRN-<guard>-<a>.<b>-X) of our guard in both tables.
func leaseChains(t *testing.T) int {
	t.Helper()
	n := 0
	id, _ := ourGuard(t)
	re := regexp.MustCompile(`(?m)^:CRN-` + id + `-\d+\.\d+-[OIHN] `)
	for _, table := range []string{"filter", "nat"} {
		out, err := exec.Command("iptables-save", "-t", table).Output()
		if err != nil {
			t.Fatal(err)
		}
		n += len(re.FindAll(out, -1))
	}
	return n
}

func ifbLinks(t *testing.T) []string {
	id, _ := ourGuard(t)
	return append(netguard.Links("crn"+id), netguard.Links("crv"+id)...)
}

// A setup step that fails ends the run as engine_error before the script starts.
func TestFailedSetupFailsTheRun(t *testing.T) {
	for _, step := range []string{"rules", "link"} {
		t.Run(step, func(t *testing.T) {
			netguard.InjectFault(step, errors.New("injected failure"))
			var out strings.Builder
			res, err := engine.Run(context.Background(), cronium.Spec{Language: cronium.Bash, Script: []byte("echo SCRIPT-RAN"),
				Network: cronium.NetworkPolicy{Mode: cronium.NetworkEgress, Bandwidth: 1_000_000},
				Output:  func(c cronium.OutputChunk) { out.Write(c.Data) }})
			if err != nil {
				t.Fatal(err)
			}
			if res.Outcome != cronium.EngineError || !strings.Contains(res.Error, "network policy") || !strings.Contains(res.Error, "injected failure") {
				t.Errorf("outcome %s error %q, want engine_error naming the network policy and the failure", res.Outcome, res.Error)
			}
			if strings.Contains(out.String(), "SCRIPT-RAN") {
				t.Errorf("the script ran although its network could not be set up")
			}
		})
	}
	engine.SettleNetwork()
	if n := leaseChains(t); n != 0 {
		t.Errorf("%d sandbox chains left after failed setups", n)
	}
}

// 100 executions (half with a bandwidth cap) leave no rule, device or network behind.
func TestHundredExecutionsLeaveNothing(t *testing.T) {
	const total, workers = 100, 4
	var wg sync.WaitGroup
	errs := make(chan string, total)
	jobs := make(chan int)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				p := cronium.Net(cronium.NetworkEgress)
				if i%2 == 0 {
					p.Bandwidth = 10_000_000
				}
				if i%10 == 0 {
					p = cronium.NetworkPolicy{Mode: cronium.NetworkEgress, AllowDomains: []string{"api.example.test"}}
				}
				res, err := engine.Run(context.Background(), cronium.Spec{Language: cronium.Bash, Network: p,
					Script: []byte(`exec 3<>/dev/tcp/api.example.test/80 && printf 'GET / HTTP/1.0\r\nHost: api.example.test\r\n\r\n' >&3 && head -c 100 <&3`)})
				if err != nil || res.Outcome != cronium.Succeeded {
					errs <- fmt.Sprintf("run %d: %v %s %s", i, err, res.Outcome, res.Error)
				}
			}
		}()
	}
	for i := 0; i < total; i++ {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	// The bridge's own address was set, so it never changed under the
	// sandboxes as their ports came and went (they would lose their gateway).
	gid, _ := ourGuard(t)
	bridges, _ := filepath.Glob("/sys/class/net/br-crn" + gid)
	if len(bridges) == 0 {
		t.Error("no sandbox bridge found")
	}
	for _, b := range bridges {
		if v, err := os.ReadFile(b + "/addr_assign_type"); err != nil || strings.TrimSpace(string(v)) != "3" {
			t.Errorf("%s: address assignment %q %v, want 3 (set): a bridge that takes its ports' lowest address changes it under its sandboxes", b, v, err)
		}
	}
	engine.SettleNetwork()
	if n := leaseChains(t); n != 0 {
		t.Errorf("%d sandbox chains left after %d executions", n, total)
	}
	if l := ifbLinks(t); len(l) != 0 {
		t.Errorf("devices left: %v", l)
	}
	// Nor connection-tracking entries of the released addresses.
	flows, err := netlink.ConntrackTableList(netlink.ConntrackTable, netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	_, pool := ourGuard(t)
	for _, f := range flows {
		// Sandboxes' own flows: not the bridges' gateways (the host's IGMP).
		if ip, ok := netip.AddrFromSlice(f.Forward.SrcIP); ok && pool.Contains(ip.Unmap()) && ip.Unmap().As4()[3] != 1 {
			t.Errorf("connection tracking still holds a flow of a released sandbox: %s", f)
		}
	}
	// The engine's own base rules and network go at Close: TestMain checks.
}

// A removed jump (a firewall reload, an engine restart) is put back, and
// while it is missing the sandbox network stays closed: Docker's own rules
// for an internal network drop what the guard does not accept.
func TestRulesReappliedAndClosedMeanwhile(t *testing.T) {
	got, _ := runProbe(t, cronium.Net(cronium.NetworkEgress), `R["ns"] = open("/etc/resolv.conf").read().split()[1]`)
	gw := got["ns"]
	out, err := exec.Command("iptables-save", "-t", "filter").Output()
	if err != nil {
		t.Fatal(err)
	}
	var jumps []string
	id, _ := ourGuard(t)
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, "-A DOCKER-USER ") && strings.Contains(l, "-j CRN-"+id+"-") {
			jumps = append(jumps, l)
		}
	}
	if len(jumps) != 2 {
		t.Fatalf("want the two DOCKER-USER jumps of the guard, found %q", jumps)
	}
	// Remove them and start a probe at once: it must not get out.
	for _, j := range jumps {
		args := append([]string{"-w", "-D"}, strings.Fields(j)[1:]...)
		if o, err := exec.Command("iptables", args...).CombinedOutput(); err != nil {
			t.Fatalf("remove %q: %v %s", j, err, o)
		}
	}
	start := time.Now()
	got, _ = runProbe(t, cronium.Net(cronium.NetworkEgress), `
import time
R["first"] = tcp("203.0.113.10", 80, b"GET / HTTP/1.0\r\nHost: x\r\n\r\n", timeout=1)
time.sleep(3)
R["later"] = http("http://api.example.test/")
R["gateway_later"] = tcp(`+fmt.Sprintf("%q", gw)+`, 9)
`)
	if time.Since(start) > 30*time.Second {
		t.Fatalf("probe took %s", time.Since(start))
	}
	if strings.HasPrefix(got["first"], "ok:") {
		t.Logf("note: the rules were back before the first probe (%q)", got["first"])
	}
	want(t, got, map[string]string{"later": "ok:host=api.example.test", "gateway_later": "err:ConnectionRefusedError"})
	out, _ = exec.Command("iptables-save", "-t", "filter").Output()
	if n := strings.Count(string(out), "-j CRN-"+id+"-F"); n < 2 {
		t.Errorf("the guard's jumps were not re-applied:\n%s", out)
	}
}
