//go:build enginerestart

package nettest

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	cronium "github.com/cronium/executor"
	"github.com/cronium/executor/internal/fakenet"
	"github.com/cronium/executor/internal/testenv"
)

// restartDockerd stops dockerd and starts it again, as a restart of the
// container engine would. It runs alone (`make test` runs it after the
// other packages): every container on the machine stops.
func restartDockerd(t *testing.T) { restartDockerdWith(t, "-TERM") }

// restartDockerdWith stops dockerd with signal (-TERM: a clean stop; -KILL:
// a crash) and starts it again.
func restartDockerdWith(t *testing.T, signal string) {
	t.Helper()
	// The engine cannot remove the sandboxes that a stopped dockerd left
	// (exited, or never reported): this node's leftovers go when the test
	// ends, failed or not. The restart tests run alone, so none is another's.
	t.Cleanup(func() {
		if err := testenv.RemoveContainers(engine.NodeID()); err != nil {
			t.Log(err)
		}
	})
	pid, err := exec.Command("pidof", "dockerd").Output()
	if err != nil {
		t.Fatalf("dockerd is not running: %v", err)
	}
	if out, err := exec.Command("kill", signal, strings.Fields(string(pid))[0]).CombinedOutput(); err != nil {
		t.Fatalf("stop dockerd: %v %s", err, out)
	}
	for i := 0; i < 60 && exec.Command("pidof", "dockerd").Run() == nil; i++ {
		time.Sleep(500 * time.Millisecond)
	}
	// A killed dockerd leaves its pid file, and its pid may linger (a zombie
	// nobody reaped yet): the file is stale, as an init system would know.
	exec.Command("rm", "-f", "/var/run/docker.pid").Run()
	// Its containerd goes with it; a new one cannot start before.
	for i := 0; i < 60 && exec.Command("pgrep", "-f", "containerd --config /var/run/docker/containerd").Run() == nil; i++ {
		time.Sleep(500 * time.Millisecond)
	}
	// Started through a shell that exits at once: dockerd is nobody's
	// child here (a killed child of the test would stay a zombie, and its
	// pid file would stop the next dockerd from starting). A dockerd whose
	// containerd did not come up in time exits: start it again, as an init
	// system would.
	for attempt := 0; attempt < 3; attempt++ {
		exec.Command("rm", "-f", "/var/run/docker.pid").Run()
		if out, err := exec.Command("sh", "-c", "nohup dockerd >>/var/log/cronium-dockerd.log 2>&1 &").CombinedOutput(); err != nil {
			t.Fatalf("start dockerd: %v %s", err, out)
		}
		for i := 0; i < 60; i++ {
			if exec.Command("docker", "version").Run() == nil {
				return
			}
			if i > 4 && exec.Command("pidof", "dockerd").Run() != nil {
				break // it gave up
			}
			time.Sleep(500 * time.Millisecond)
		}
	}
	t.Fatal("dockerd did not come back")
}

// Restarting the container engine while an egress execution runs does not
// open a hole: the running script never reaches the host, and afterwards
// the rules are in place for new executions.
func TestEngineRestartOpensNoHole(t *testing.T) {
	ctx := context.Background()
	got, _ := runProbe(t, cronium.Net(cronium.NetworkEgress), `R["ns"] = open("/etc/resolv.conf").read().split()[1]`)
	gw := got["ns"]
	ln, err := fakenet.Listen(ctx, gw+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().String()[strings.LastIndex(ln.Addr().String(), ":")+1:]
	done := make(chan string, 1)
	go func() {
		var out strings.Builder
		spec := cronium.Spec{Language: cronium.Python, Network: cronium.Net(cronium.NetworkEgress),
			Script: []byte(probe + fmt.Sprintf(`
end = time.time() + 25
while time.time() < end:
    for name, (h, p) in {"host": (%q, %s), "private": ("10.99.0.5", 5432)}.items():
        r = tcp(h, p, timeout=0.3)
        if r.startswith("ok:"):
            print("REACHED", name, r, flush=True)
    time.sleep(0.1)
print("done", flush=True)
`, gw, port)),
			Output: func(c cronium.OutputChunk) { out.Write(c.Data) }}
		spec.Limits.Timeout = 40 * time.Second
		engine.Run(ctx, spec)
		done <- out.String()
	}()
	time.Sleep(3 * time.Second)
	restartDockerd(t)
	out := <-done
	if strings.Contains(out, "REACHED") {
		t.Errorf("the sandbox reached a forbidden destination around the restart:\n%s", out)
	}
	time.Sleep(3 * time.Second) // the guard checks its rules every 2 s
	got, res := runProbe(t, cronium.Net(cronium.NetworkEgress), fmt.Sprintf(`
R["public"] = http("http://api.example.test/")
R["host"] = tcp(%q, %s)
R["private"] = tcp("10.99.0.5", 5432)
`, gw, port))
	want(t, got, map[string]string{"public": "ok:host=api.example.test", "host": "err:ConnectionRefusedError", "private": "err:ConnectionRefusedError"})
	refused(t, res, "(the host's own address)", "10.99.0.5:5432/tcp (private address)")
}

// An engine that restarts mid-run (a clean restart, or a crash: kill -9)
// never turns the run into a silent "cancelled": the run either survives
// (live-restore) and succeeds, or ends engine_error with a reason that
// says the engine stopped it (and the retry policy applies to that).
func TestEngineRestartMidRunIsNotACancel(t *testing.T) {
	for _, sig := range []string{"-KILL", "-TERM"} {
		t.Run(sig, func(t *testing.T) {
			done := make(chan cronium.Result, 1)
			var out strings.Builder
			go func() {
				spec := cronium.Spec{Language: cronium.Bash, Script: []byte("echo started; sleep 20; echo done"),
					Output: func(c cronium.OutputChunk) { out.Write(c.Data) }}
				spec.Limits.Timeout = 60 * time.Second
				res, err := engine.Run(context.Background(), spec)
				if err != nil {
					res = cronium.Result{Outcome: "run error", Error: err.Error()}
				}
				done <- res
			}()
			time.Sleep(3 * time.Second)
			restartDockerdWith(t, sig)
			var res cronium.Result
			select {
			case res = <-done:
			case <-time.After(90 * time.Second):
				t.Fatal("the run did not end after the engine restarted")
			}
			live, _ := exec.Command("docker", "info", "--format", "{{.LiveRestoreEnabled}}").Output()
			t.Logf("live-restore %s: %s %q, output %q", strings.TrimSpace(string(live)), res.Outcome, res.Error, out.String())
			switch res.Outcome {
			case cronium.Succeeded:
				if !strings.Contains(out.String(), "done") {
					t.Errorf("succeeded without its output: %q", out.String())
				}
			case cronium.EngineError:
				if !strings.Contains(res.Error, "engine") {
					t.Errorf("engine_error %q does not say the engine stopped the run", res.Error)
				}
			default:
				t.Errorf("outcome %s (exit %d, %q): want succeeded (the run survived) or engine_error naming the engine", res.Outcome, res.ExitCode, res.Error)
			}
		})
	}
}
