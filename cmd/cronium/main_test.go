package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moby/moby/client"

	cronium "github.com/cronium/executor"
)

var bin string // the cronium binary under test, with cronium-agent beside it

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "crcli")
	if err != nil {
		panic(err)
	}
	cmd := exec.Command("go", "build", "-o", dir+"/", "github.com/cronium/executor/cmd/cronium", "github.com/cronium/executor/cmd/cronium-agent")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build: %v\n%s", err, out)
		os.Exit(1)
	}
	bin = filepath.Join(dir, "cronium")
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func cronium_(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var o, e strings.Builder
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return o.String(), e.String(), ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return o.String(), e.String(), 0
}

func TestRunBadFlagsExit2NamingTheFlag(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--memory", "lots"}, "--memory"},
		{[]string{"--memory", "1Ki"}, "--memory"},
		{[]string{"--cpus", "many"}, "--cpus"},
		{[]string{"--pids", "-3"}, "--pids"},
		{[]string{"--pids", "99999999"}, "--pids"},
		{[]string{"--timeout", "soon"}, "--timeout"},
		{[]string{"--timeout", "1.5s"}, "whole seconds"},
		{[]string{"--network", "internet"}, "--network"},
		{[]string{"--profile", "root"}, "--profile"},
		{[]string{"--env", "NOEQUALS"}, "--env"},
		{[]string{"--env", "CRONIUM_X=1"}, "reserved"},
		{[]string{"--input", "{not json"}, "--input"},
		{[]string{"--input", "@/does/not/exist"}, "--input"},
		{[]string{"--lang", "cobol"}, "--lang"},
		{[]string{"--output-limit", "x"}, "--output-limit"},
		{[]string{"--no-such-flag"}, "unknown flag"},
		{[]string{"--network", "open"}, "--network"},
		{[]string{"--network", "full"}, "full needs the trusted profile"},
		{[]string{"--allow-domain", "*.com"}, "--allow-domain"},
		{[]string{"--allow-domain", "https://x.example.com/"}, "--allow-domain"},
		{[]string{"--allow-domain", "x.example.com", "--network", "full", "--profile", "trusted"}, "--allow-domain"},
		{[]string{"--allow-service", "ledger"}, "--allow-service"},
		{[]string{"--block-port", "0"}, "--block-port"},
		{[]string{"--block-port", "smtp"}, "--block-port"},
		{[]string{"--bandwidth", "10"}, "--bandwidth"},
		{[]string{"--bandwidth", "10MB"}, "--bandwidth"},
	} {
		args := append([]string{"run", "../../examples/hello.py"}, c.args...)
		_, stderr, code := cronium_(t, args...)
		if code != 2 || !strings.Contains(stderr, c.want) {
			t.Errorf("cronium %v: exit %d, stderr %q; want exit 2 naming %q", c.args, code, stderr, c.want)
		}
	}
	if _, stderr, code := cronium_(t, "run", "/no/such/file.py"); code != 2 || !strings.Contains(stderr, "/no/such/file.py") {
		t.Errorf("missing file: exit %d, %q", code, stderr)
	}
}

func TestRunHelloJSON(t *testing.T) {
	t.Parallel()
	stdout, stderr, code := cronium_(t, "run", "../../examples/hello.py", "--json", "--input", `{"name":"ci"}`)
	if code != 0 {
		t.Fatalf("exit %d, stderr %s", code, stderr)
	}
	var r struct {
		Outcome  string             `json:"outcome"`
		ExitCode int                `json:"exit_code"`
		Phases   map[string]float64 `json:"phases"`
		Usage    map[string]float64 `json:"usage"`
		Stdout   string             `json:"stdout"`
		Limits   map[string]any     `json:"limits"`
	}
	if err := json.Unmarshal([]byte(stdout), &r); err != nil {
		t.Fatalf("stdout is not one JSON object: %v\n%s", err, stdout)
	}
	if r.Outcome != "succeeded" || r.ExitCode != 0 {
		t.Errorf("outcome %s exit %d", r.Outcome, r.ExitCode)
	}
	for _, p := range []string{"create_ms", "start_ms", "run_ms", "cleanup_ms"} {
		if r.Phases[p] <= 0 {
			t.Errorf("phase %s = %v, want > 0", p, r.Phases[p])
		}
	}
	if r.Usage["cpu_seconds"] <= 0 || r.Usage["peak_memory_bytes"] <= 0 {
		t.Errorf("usage %v, want cpu_seconds and peak_memory_bytes", r.Usage)
	}
	if !strings.Contains(r.Stdout, `"name": "ci"`) || !strings.Contains(r.Stdout, "uid: 65534") {
		t.Errorf("stdout %q, want the input and uid 65534", r.Stdout)
	}
	if r.Limits["timeout_seconds"] != 30.0 {
		t.Errorf("limits %v, want timeout_seconds 30", r.Limits)
	}
}

func TestRunExitsWithScriptStatus(t *testing.T) {
	t.Parallel()
	f := filepath.Join(t.TempDir(), "x.sh")
	os.WriteFile(f, []byte("echo out; exit 7"), 0o644)
	stdout, stderr, code := cronium_(t, "run", f)
	if code != 7 || stdout != "out\n" || !strings.Contains(stderr, "failed (exit 7)") {
		t.Errorf("exit %d stdout %q stderr %q; want 7, the output, and a summary", code, stdout, stderr)
	}
	os.WriteFile(f, []byte("sleep 10"), 0o644)
	if _, stderr, code := cronium_(t, "run", f, "--timeout", "1", "--env", "A=b"); code != 124 || !strings.Contains(stderr, "timed_out") {
		t.Errorf("timeout: exit %d stderr %q; want 124 timed_out", code, stderr)
	}
}

// TestCtrlCCancelsAndRemoves is not parallel: it checks that no container of
// this node is left, and parallel tests of this package wait until it ends.
func TestCtrlCCancelsAndRemoves(t *testing.T) {
	f := filepath.Join(t.TempDir(), "x.sh")
	os.WriteFile(f, []byte("echo started; sleep 60"), 0o644)
	node := "ctrlc-" + cronium.NewID()[:8] // its own node: other test binaries run sandboxes meanwhile
	cmd := exec.Command(bin, "run", f)
	cmd.Env = append(os.Environ(), "CRONIUM_NODE_ID="+node)
	out, _ := cmd.StdoutPipe()
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, _ := bufio.NewReader(out).ReadString('\n')
	if line != "started\n" {
		t.Fatalf("first line %q", line)
	}
	cmd.Process.Signal(syscall.SIGINT)
	err := cmd.Wait()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 130 || !strings.Contains(stderr.String(), "cancelled") {
		t.Fatalf("exit %v stderr %q; want 130 cancelled", err, stderr.String())
	}
	cli, err := client.New(client.FromEnv)
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// The container removes itself once its agent exited (the run's result
	// does not wait for that): within moments, without another cronium.
	for {
		list, err := cli.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: client.Filters{}.Add("label", "io.cronium.node="+node)})
		if err != nil {
			t.Fatal(err)
		}
		if len(list.Items) == 0 {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("%d container(s) of this node left 10s after Ctrl-C", len(list.Items))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestImagesAreUpToDate(t *testing.T) {
	t.Parallel()
	_, stderr, code := cronium_(t, "images", "build")
	if code != 0 || strings.Count(stderr, "up to date") != len(cronium.Languages)+1 { // and the builder
		t.Errorf("exit %d, stderr %q: want every image up to date (built once, not rebuilt)", code, stderr)
	}
}

// `cronium user create` refuses the names the API refuses, before any store.
func TestUserCreateValidatesTheName(t *testing.T) {
	t.Parallel()
	_, stderr, code := cronium_(t, "user", "create", "Bad Name!")
	if code != 2 || !strings.Contains(stderr, "name:") {
		t.Errorf("exit %d, %q: want 2 naming the field", code, stderr)
	}
}
