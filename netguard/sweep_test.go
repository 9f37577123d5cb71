package netguard

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	cronium "github.com/cronium/executor"
)

// TestMain lets the test binary play a cronium process that sets up a
// guard with a lease and then dies.
func TestMain(m *testing.M) {
	if os.Getenv("NETGUARD_CHILD") == "1" {
		g, err := New(context.Background(), Config{UpstreamDNS: []string{"127.0.0.1:53"}})
		if err != nil {
			fmt.Println("ERR", err)
			os.Exit(1)
		}
		if _, err := g.Attach(context.Background(), "x", cronium.Net(cronium.NetworkEgress)); err != nil {
			fmt.Println("ERR", err)
			os.Exit(1)
		}
		fmt.Println("READY", g.ID())
		time.Sleep(time.Minute)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestSweepRemovesWhatADeadProcessLeft(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run", "^$")
	cmd.Env = append(os.Environ(), "NETGUARD_CHILD=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, _ := bufio.NewReader(out).ReadString('\n')
	id, ok := strings.CutPrefix(strings.TrimSpace(line), "READY ")
	if !ok {
		cmd.Process.Kill()
		t.Fatalf("child: %q", line)
	}
	// While it lives, a sweep leaves it alone.
	if _, err := Sweep(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(Links("br-crn"+id)) != 1 || !hasChains(t, id) {
		t.Fatalf("a sweep removed the guard of a live process")
	}
	cmd.Process.Kill() // kill -9: nothing is cleaned up
	cmd.Wait()
	if len(Links("br-crn"+id)) != 1 || !hasChains(t, id) {
		t.Fatalf("the dead process left nothing to sweep; the test proves nothing")
	}
	removed, err := Sweep(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(Links("br-crn"+id)) != 0 || hasChains(t, id) {
		t.Errorf("after the sweep (removed %v): bridge %v, chains left %v", removed, Links("br-crn"+id), hasChains(t, id))
	}
}

func hasChains(t *testing.T, id string) bool {
	t.Helper()
	for _, c := range [][]string{{"iptables-save", "-t", "filter"}, {"iptables-save", "-t", "nat"}, {"ip6tables-save", "-t", "filter"}} {
		b, err := exec.Command(c[0], c[1:]...).Output()
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(b), "CRN-"+id+"-") {
			return true
		}
	}
	return false
}

// A guard set up while another process sweeps keeps its rules.
func TestSweepSparesAGuardBeingSetUp(t *testing.T) {
	for i := 0; i < 30; i++ { // dead processes' bridges make the sweep slow
		name := fmt.Sprintf("br-crnfe%04x", i)
		if out, err := exec.Command("ip", "link", "add", name, "type", "bridge").CombinedOutput(); err != nil {
			t.Fatalf("%v %s", err, out)
		}
		exec.Command("ip", "link", "set", name, "alias", "cronium owner=1:0").Run() // pid 1 never started at tick 0
	}
	done := make(chan error, 1)
	go func() { _, err := Sweep(context.Background()); done <- err }()
	time.Sleep(5 * time.Millisecond)
	g, err := New(context.Background(), Config{UpstreamDNS: []string{"127.0.0.1:53"}})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !hasChains(t, g.ID()) || !g.intact(context.Background()) {
		t.Errorf("a sweep running while the guard was set up removed its rules")
	}
	if left := Links("br-crnfe"); len(left) != 0 {
		t.Errorf("the dead bridges were not swept: %v", left)
	}
}
