package netguard

import (
	"net/netip"
	"os/exec"
	"strconv"
	"testing"
	"time"
)

// The refusal log delivers a packet logged to its group, at once, and sync
// returns only after it was handed over.
func TestNflogDeliversAtOnce(t *testing.T) {
	got := make(chan string, 10)
	n, err := openNflog(func(reason string, src, dst netip.Addr, proto string, port int) {
		got <- reason + " " + dst.String() + " " + proto + " " + strconv.Itoa(port)
	})
	if err != nil {
		t.Fatal(err)
	}
	defer n.close()
	rule := []string{"OUTPUT", "-d", "127.0.0.77", "-j", "NFLOG", "--nflog-group", strconv.Itoa(int(n.group)), "--nflog-prefix", "test", "--nflog-size", "64"}
	if out, err := exec.Command("iptables", append([]string{"-w", "-I"}, rule...)...).CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	defer exec.Command("iptables", append([]string{"-w", "-D"}, rule...)...).Run()
	// Loopback: the SYN is logged in OUTPUT and refused by the kernel.
	exec.Command("bash", "-c", "timeout 0.3 bash -c 'echo > /dev/tcp/127.0.0.77/80'").Run()
	n.sync(time.Second)
	select {
	case s := <-got:
		if s != "test 127.0.0.77 tcp 80" {
			t.Errorf("got %q", s)
		}
	default:
		t.Fatal("sync returned before the logged packet was delivered")
	}
}
