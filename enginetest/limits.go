package enginetest

import (
	"context"
	"errors"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	cronium "github.com/cronium/executor"
)

// Limits, outcomes, output and the strict profile: every engine enforces
// them the same way.
func init() {
	add("HelloEachLanguage", testHelloEachLanguage)
	add("ExitCodeFailed", testExitCodeFailed)
	add("MemoryBombIsOOMKilled", testMemoryBombIsOOMKilled)
	add("ForkBombIsContained", testForkBombIsContained)
	add("CPUQuota", testCPUQuota)
	add("FullMountsAndMemoryBombLeaveTheAgentAlive", testFullMountsAndMemoryBombLeaveTheAgentAlive)
	add("TmpFullGetsENOSPC", testTmpFullGetsENOSPC)
	add("SandboxIdentity", testSandboxIdentity)
	add("EnvironmentIsOnlyUserAndCronium", testEnvironmentIsOnlyUserAndCronium)
	add("TimeoutKillsScriptIgnoringTERM", testTimeoutKillsScriptIgnoringTERM)
	add("DaemonizedChildDoesNotOutlive", testDaemonizedChildDoesNotOutlive)
	add("OutputFloodIsTruncated", testOutputFloodIsTruncated)
	add("OutputKillPolicy", testOutputKillPolicy)
	add("CancelRemovesEverything", testCancelRemovesEverything)
	add("MissingImageSaysHowToBuild", testMissingImageSaysHowToBuild)
	add("BadSpecIsRejected", testBadSpecIsRejected)
	add("OutputChunksKeepCharactersWhole", testOutputChunksKeepCharactersWhole)
	add("OutputWithinTheCapIsNotTruncated", testOutputWithinTheCapIsNotTruncated)
	add("NoNamespacesForScripts", testNoNamespacesForScripts)
}

func testHelloEachLanguage(t *testing.T) {
	scripts := map[cronium.Language]string{
		cronium.Bash:   `read -r line; echo "hi $line"; echo err >&2`,
		cronium.Python: "import sys\nprint('hi', sys.stdin.read().strip())\nprint('err', file=sys.stderr)",
		cronium.Node:   "let s='';process.stdin.on('data',d=>s+=d).on('end',()=>{console.log('hi '+s.trim());console.error('err')})",
	}
	for lang, script := range scripts {
		t.Run(string(lang), func(t *testing.T) {
			t.Parallel()
			var chunks []cronium.OutputChunk
			var stdout, stderr strings.Builder
			res, out := run(t, lang, script, func(s *cronium.Spec) {
				s.Input = []byte(`{"n":1}`)
				inner := s.Output
				s.Output = func(c cronium.OutputChunk) {
					chunks = append(chunks, c)
					inner(c)
					if c.Stream == cronium.Stderr {
						stderr.Write(c.Data)
					} else {
						stdout.Write(c.Data)
					}
				}
			})
			wantOutcome(t, res, out, cronium.Succeeded)
			if stdout.String() != "hi {\"n\":1}\n" || stderr.String() != "err\n" {
				t.Errorf("stdout %q stderr %q, want the input echoed on stdout and one stderr line", stdout.String(), stderr.String())
			}
			for i, c := range chunks {
				if c.Seq != uint64(i+1) {
					t.Errorf("chunk %d has seq %d, want %d", i, c.Seq, i+1)
				}
			}
			if res.Phases.Create <= 0 || res.Phases.Start <= 0 || res.Phases.Run <= 0 || res.Phases.Cleanup <= 0 {
				t.Errorf("phases %+v, want all measured", res.Phases)
			}
			if res.Usage.PeakMemory <= 0 || res.Usage.CPUSeconds <= 0 {
				t.Errorf("usage %+v, want peak memory and CPU measured", res.Usage)
			}
		})
	}
}

func testExitCodeFailed(t *testing.T) {
	res, out := run(t, cronium.Bash, "echo bye; exit 3", nil)
	wantOutcome(t, res, out, cronium.Failed)
	if res.ExitCode != 3 {
		t.Errorf("exit code %d, want 3", res.ExitCode)
	}
}

func testMemoryBombIsOOMKilled(t *testing.T) {
	script := "a = []\nwhile True:\n    a.append(bytearray(8 << 20))\n"
	res, out := run(t, cronium.Python, script, func(s *cronium.Spec) { s.Limits.Memory = 64 << 20 })
	wantOutcome(t, res, out, cronium.OOMKilled)
	if res.Error != "" || res.ExitCode != 137 {
		t.Errorf("error %q exit %d: want the agent to survive and report the script's SIGKILL (137)", res.Error, res.ExitCode)
	}
	if res.Usage.PeakMemory > 64<<20 {
		t.Errorf("peak memory %d, above the 64Mi limit", res.Usage.PeakMemory)
	}
}

func testForkBombIsContained(t *testing.T) {
	// Count how many processes can be created; children sleep so they all stay alive.
	script := `
import os, time
n = 0
try:
    while n < 1000:
        if os.fork() == 0:
            time.sleep(60)
            os._exit(0)
        n += 1
except OSError as e:
    print("fork failed after", n, "children:", e.strerror, flush=True)
print("children", n, flush=True)
`
	res, out := run(t, cronium.Python, script, func(s *cronium.Spec) { s.Limits.Pids = 40 })
	wantOutcome(t, res, out, cronium.Succeeded)
	var n int
	for _, line := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(line, "children "); ok {
			n, _ = strconv.Atoi(v)
		}
	}
	if n == 0 || n >= 40 {
		t.Fatalf("created %d children under a pids cap of 40, want 1..39; output:\n%s", n, out)
	}

	// The classic bomb: it must end at the timeout while the host stays responsive.
	done := make(chan cronium.Result)
	go func() {
		r, _ := run(t, cronium.Bash, `b(){ b | b & }; b; sleep 100`, func(s *cronium.Spec) {
			s.Limits.Pids = 64
			s.Limits.Timeout = 4 * time.Second
			s.Limits.Grace = time.Second
		})
		done <- r
	}()
	time.Sleep(2 * time.Second)
	begin := time.Now()
	if err := exec.Command("true").Run(); err != nil {
		t.Errorf("host could not start a process during the fork bomb: %v", err)
	}
	if d := time.Since(begin); d > 2*time.Second {
		t.Errorf("host took %s to start a process during the fork bomb", d)
	}
	r := <-done
	if r.Outcome != cronium.TimedOut && r.Outcome != cronium.Failed {
		t.Errorf("fork bomb outcome %s (%s), want timed_out or failed", r.Outcome, r.Error)
	}
}

// The CPU quota is a ceiling: a busy loop never gets more than its share,
// however idle the host.
func testCPUQuota(t *testing.T) {
	script := "import time\nend = time.time() + 4\nwhile time.time() < end:\n    pass\n"
	res, out := run(t, cronium.Python, script, func(s *cronium.Spec) { s.Limits.CPUs = 0.5 })
	wantOutcome(t, res, out, cronium.Succeeded)
	rate := res.Usage.CPUSeconds / res.Phases.Run.Seconds()
	t.Logf("busy loop at --cpus 0.5: %.2f CPU-seconds in %.2fs wall = %.2f", res.Usage.CPUSeconds, res.Phases.Run.Seconds(), rate)
	if rate > 0.6 {
		t.Errorf("used %.2f CPU-seconds per wall second, want at most 0.6", rate)
	}
	// The quota is a ceiling, proved above; how much CPU a busy host leaves
	// the loop is not the sandbox's to promise. It ran, and was measured.
	if res.Usage.CPUSeconds < 0.05 {
		t.Errorf("used %.2f CPU-seconds: the busy loop did not run or CPU was not measured", res.Usage.CPUSeconds)
	}
}

// tmpfs pages are memory: a script that fills /tmp, /workspace and
// /dev/shm (100M each asked, past every cap) in a small sandbox gets
// ENOSPC from each, and the mounts can never add up to the memory limit:
// the agent survives and reports the run with its output and usage.
// Then, with the mounts full, a memory bomb: the kernel kills a script
// process (the OOM killer's first choice), never the agent, and the run
// ends oom_killed, its output kept.
func testFullMountsAndMemoryBombLeaveTheAgentAlive(t *testing.T) {
	fill := `cat /proc/self/oom_score_adj
for d in /tmp /workspace /dev/shm; do head -c 100M /dev/zero > $d/fill; echo "$d status=$?"; done
echo filled
`
	small := func(s *cronium.Spec) { s.Limits.Memory = 128 << 20 }
	res, out := run(t, cronium.Bash, fill, small)
	wantOutcome(t, res, out, cronium.Succeeded)
	if strings.Count(out, "No space left on device") != 3 || !strings.Contains(out, "filled") || !strings.HasPrefix(out, "1000\n") {
		t.Errorf("output %q: want ENOSPC from each mount, the script at OOM score 1000, and the end", out)
	}
	if res.Usage.PeakMemory == 0 || res.Usage.PeakMemory > 128<<20 {
		t.Errorf("peak memory %d: want the usage kept, within 128Mi", res.Usage.PeakMemory)
	}
	for _, lang := range []cronium.Language{cronium.Bash, cronium.Python} {
		script := fill + "x=$(head -c 200M /dev/zero | tr '\\0' a); echo survived\n"
		if lang == cronium.Python {
			script = "import subprocess\nsubprocess.run(['bash', '-c', '''" + fill + "'''])\nprint('eating', flush=True)\na = []\nwhile True:\n    a.append(bytearray(1 << 20))\n"
		}
		res, out := run(t, lang, script, small)
		wantOutcome(t, res, out, cronium.OOMKilled)
		if res.Error != "" || !strings.Contains(out, "filled") || strings.Contains(out, "survived") {
			t.Errorf("%s: error %q output %q: want the agent to report the kill with the output", lang, res.Error, out)
		}
		if res.Usage.PeakMemory == 0 {
			t.Errorf("%s: usage lost: %+v", lang, res.Usage)
		}
	}
}

func testTmpFullGetsENOSPC(t *testing.T) {
	res, out := run(t, cronium.Bash, "head -c 64M /dev/zero > /tmp/fill; echo status=$?", func(s *cronium.Spec) { s.Limits.TmpSize = 16 << 20 })
	wantOutcome(t, res, out, cronium.Succeeded)
	if !strings.Contains(out, "No space left on device") || !strings.Contains(out, "status=1") {
		t.Errorf("output %q, want ENOSPC from filling /tmp past 16Mi", out)
	}
}

func testSandboxIdentity(t *testing.T) {
	script := `
echo "uid=$(id -u) gid=$(id -g)"
grep -E '^Cap(Eff|Prm|Amb)' /proc/self/status
grep NoNewPrivs /proc/self/status
echo "ifaces=$(ls /sys/class/net | tr '\n' ' ')"
touch /rootfile 2>&1 || echo "root write failed"
touch /workspace/ok && echo "workspace writable"
echo "setuid=$(find / -xdev -type f -perm /6000 2>/dev/null | wc -l)"
cat /.cronium/host/agent.sock 2>&1 | head -1
echo x >> /.cronium/agent 2>&1 || echo "agent write failed"
kill -9 1 2>&1 || echo "kill agent failed"
for d in /run /var/tmp /etc /usr/local/bin; do touch $d/x 2>/dev/null && echo "wrote $d" || echo "no write $d"; done
cp /bin/true /tmp/t && /tmp/t 2>/dev/null && echo "exec from tmp" || echo "no exec tmp"
cp /bin/true /workspace/t && /workspace/t 2>/dev/null && echo "exec from workspace" || echo "no exec workspace"
stat -c 'secrets %U %a' /run/secrets
# Every read-write mount other than the sandbox's own memory file systems
# (a file or directory of the host's disk) must be closed to the script.
awk '{split($0, a, " - "); split(a[1], l, " "); split(a[2], r, " ");
  if (r[1] !~ /^(tmpfs|proc|sysfs|cgroup2?|devpts|mqueue)$/ && l[6] ~ /(^|,)rw(,|$)/) print l[5]}' /proc/self/mountinfo |
  while read -r m; do [ -w "$m" ] && echo "writable host mount $m"; done
echo mounts-checked
`
	res, out := run(t, cronium.Bash, script, nil)
	wantOutcome(t, res, out, cronium.Succeeded)
	for _, bad := range []string{"wrote ", "exec from ", "writable host mount"} {
		if strings.Contains(out, bad) {
			t.Errorf("output has %q:\n%s", bad, out)
		}
	}
	for _, want := range []string{
		"uid=65534 gid=65534",
		"CapEff:\t0000000000000000",
		"CapPrm:\t0000000000000000",
		"CapAmb:\t0000000000000000",
		"NoNewPrivs:\t1",
		"ifaces=lo \n",
		"Read-only file system",
		"root write failed",
		"workspace writable",
		"setuid=0",
		"Permission denied", // the host socket directory
		"agent write failed",
		"kill agent failed",
		// Nothing writable outside the sandbox's own mounts, and nothing
		// written there can run (Podman adds writable /run and /var/tmp
		// of its own: they must not be).
		"no write /run", "no write /var/tmp", "no write /etc", "no write /usr/local/bin",
		"no exec tmp", "no exec workspace",
		"secrets nobody 700",
		"mounts-checked",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func testEnvironmentIsOnlyUserAndCronium(t *testing.T) {
	res, out := run(t, cronium.Bash, "env -0 | tr '\\0' '\\n' | cut -d= -f1 | sort", func(s *cronium.Spec) {
		s.Env = map[string]string{"MODE": "prod"}
	})
	wantOutcome(t, res, out, cronium.Succeeded)
	got := strings.Fields(out)
	// bash itself adds PWD, SHLVL and _; the helper loaders and the runtime
	// API token and socket come with every execution that has a runtime API.
	want := []string{"BASH_ENV", "CRONIUM_API_SOCKET", "CRONIUM_EXECUTION_ID", "CRONIUM_LANGUAGE", "CRONIUM_PROFILE", "CRONIUM_RUNTIME_TOKEN", "CRONIUM_TIMEOUT_SECONDS",
		"HOME", "MODE", "NODE_OPTIONS", "NODE_PATH", "PATH", "PWD", "PYTHONPATH", "SHLVL", "_"}
	sort.Strings(want)
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("environment %v, want %v", got, want)
	}
}

func testTimeoutKillsScriptIgnoringTERM(t *testing.T) {
	res, out := run(t, cronium.Bash, "trap '' TERM; echo started; while true; do sleep 0.2; done", func(s *cronium.Spec) {
		s.Limits.Timeout = 2 * time.Second
		s.Limits.Grace = time.Second
	})
	wantOutcome(t, res, out, cronium.TimedOut)
	if d := res.Phases.Run; d < 3*time.Second || d > 6*time.Second {
		t.Errorf("run took %s, want about timeout+grace = 3s", d)
	}
	if res.Signal != "killed" {
		t.Errorf("signal %q, want killed", res.Signal)
	}
}

func testDaemonizedChildDoesNotOutlive(t *testing.T) {
	// Double fork plus setsid: the grandchild is reparented to PID 1 in its own session.
	script := `( setsid bash -c 'trap "" TERM HUP; sleep 3; echo still-alive' & ) ; echo parent-done`
	res, out := run(t, cronium.Bash, script, nil)
	wantOutcome(t, res, out, cronium.Succeeded)
	if strings.Contains(out, "still-alive") {
		t.Errorf("daemonized child outlived its execution: %q", out)
	}
	if res.Phases.Run > 2*time.Second {
		t.Errorf("run took %s: the agent waited for the daemon instead of killing it", res.Phases.Run)
	}
}

func testOutputFloodIsTruncated(t *testing.T) {
	var got int64
	var markers []string
	var tailStderr strings.Builder // stderr after the marker: the end of the output
	res, _ := run(t, cronium.Bash, "head -c 1G /dev/zero | tr '\\0' a; echo done >&2", func(s *cronium.Spec) {
		s.Limits.CPUs = 2
		s.Limits.Timeout = 90 * time.Second
		s.Output = func(c cronium.OutputChunk) {
			got += int64(len(c.Data))
			switch text := string(c.Data); {
			case strings.Contains(text, "[cronium] output"):
				markers = append(markers, text)
			case len(markers) == 1 && c.Stream == cronium.Stderr:
				tailStderr.WriteString(text)
			}
		}
	})
	if res.Outcome != cronium.Succeeded || !res.Truncated {
		t.Fatalf("outcome %s truncated=%v (%s), want succeeded and truncated", res.Outcome, res.Truncated, res.Error)
	}
	if res.Usage.OutputBytes != 1<<30+5 {
		t.Errorf("output bytes %d, want the whole 1GiB+5 counted", res.Usage.OutputBytes)
	}
	if res.Usage.KeptOutputBytes != 10<<20 {
		t.Errorf("kept %d bytes, want exactly the 10Mi cap", res.Usage.KeptOutputBytes)
	}
	if got > 10<<20+400 {
		t.Errorf("received %d bytes, want at most the cap plus the markers", got)
	}
	// The head, a line saying what was left out, and the tail: the end of
	// the output, where errors are.
	if len(markers) != 1 || !strings.Contains(markers[0], "output truncated: the 10485760 byte output limit was reached; ") || !strings.Contains(markers[0], " bytes were left out here; the last 1048576 bytes follow") {
		t.Errorf("marker lines %q, want one before the tail saying what was left out", markers)
	}
	// Both streams are read at once, so "done" may come before the last of
	// stdout: it is in the tail, whichever.
	if tailStderr.String() != "done\n" {
		t.Errorf("stderr in the tail %q, want the script's last output", tailStderr.String())
	}
	if res.Usage.PeakMemory > 128<<20 {
		t.Errorf("peak memory %d during the flood: output is being buffered", res.Usage.PeakMemory)
	}
}

func testOutputKillPolicy(t *testing.T) {
	res, out := run(t, cronium.Bash, "yes", func(s *cronium.Spec) {
		s.Limits.Output = 64 << 10
		s.Limits.OutputPolicy = cronium.OutputKill
	})
	wantOutcome(t, res, out, cronium.OutputLimit)
}

func testCancelRemovesEverything(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	started := make(chan struct{}, 1)
	spec := cronium.Spec{Language: cronium.Bash, Script: []byte("echo started; sleep 60"), ID: "cancel-" + newID()}
	spec.Limits.Grace = time.Second
	spec.Output = func(cronium.OutputChunk) {
		select {
		case started <- struct{}{}:
		default:
		}
	}
	go func() { <-started; cancel() }()
	res, err := eng.Run(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	if res.Outcome != cronium.Cancelled {
		t.Fatalf("outcome %s (%s), want cancelled", res.Outcome, res.Error)
	}
	checkGone(t, spec.ID)
}

func testMissingImageSaysHowToBuild(t *testing.T) {
	res, _ := run(t, cronium.Bash, "true", func(s *cronium.Spec) { s.Image = "cronium/runtime-bash:missing000" })
	if res.Outcome != cronium.EngineError || !strings.Contains(res.Error, "cronium images build") || !strings.Contains(res.Error, "missing000") {
		t.Errorf("outcome %s error %q, want engine_error naming the image and how to build it", res.Outcome, res.Error)
	}
	// A package layer removed since the event was applied: re-apply, not images build.
	res, _ = run(t, cronium.Bash, "true", func(s *cronium.Spec) { s.Image = "cronium/pkgs-bash:missing000" })
	if res.Outcome != cronium.EngineError || !strings.Contains(res.Error, "apply the event again") {
		t.Errorf("outcome %s error %q, want advice to re-apply the event", res.Outcome, res.Error)
	}
}

func testBadSpecIsRejected(t *testing.T) {
	for name, spec := range map[string]cronium.Spec{
		"no script":    {Language: cronium.Bash},
		"bad language": {Language: "cobol", Script: []byte("x")},
		"bad id":       {ID: "../x", Language: cronium.Bash, Script: []byte("x")},
		"reserved env": {Language: cronium.Bash, Script: []byte("x"), Env: map[string]string{"CRONIUM_X": "1"}},
		"tiny memory":  {Language: cronium.Bash, Script: []byte("x"), Limits: cronium.Limits{Memory: 1 << 20}},
	} {
		if _, err := eng.Run(context.Background(), spec); !errors.Is(err, cronium.ErrInvalid) {
			t.Errorf("%s: err %v, want ErrInvalid", name, err)
		}
	}
}

// Output chunks end on character boundaries: multi-byte characters that
// straddle the agent's 64 KiB reads arrive whole, in every chunk.
func testOutputChunksKeepCharactersWhole(t *testing.T) {
	script := "import sys\nfor pad in range(1, 4):\n    sys.stdout.buffer.write(b'a' * (65536 - pad) + 'é€😀'.encode() * 3000)\n    sys.stdout.buffer.flush()\n"
	var chunks [][]byte
	res, _ := run(t, cronium.Python, script, func(s *cronium.Spec) {
		s.Output = func(c cronium.OutputChunk) { chunks = append(chunks, append([]byte(nil), c.Data...)) }
	})
	wantOutcome(t, res, "", cronium.Succeeded)
	total := 0
	for i, c := range chunks {
		total += len(c)
		if !utf8.Valid(c) {
			t.Errorf("chunk %d of %d (%d bytes) splits a character: ends % x", i, len(chunks), len(c), c[max(0, len(c)-4):])
		}
	}
	if want := 3*65536 - 6 + 3*3000*9; total != want || len(chunks) < 4 {
		t.Errorf("%d bytes in %d chunks, want %d in several", total, len(chunks), want)
	}
}

// Output past the head but within the cap is sent whole, in order, and not
// said to be truncated.
func testOutputWithinTheCapIsNotTruncated(t *testing.T) {
	var got strings.Builder
	res, _ := run(t, cronium.Bash, "seq 1 20000", func(s *cronium.Spec) {
		s.Limits.Output = 128 << 10 // seq prints 108,894 bytes: past the 96Ki head, within the cap
		s.Output = func(c cronium.OutputChunk) { got.WriteString(string(c.Data)) }
	})
	var want strings.Builder
	for i := 1; i <= 20000; i++ {
		want.WriteString(strconv.Itoa(i) + "\n")
	}
	if res.Outcome != cronium.Succeeded || res.Truncated || got.String() != want.String() {
		t.Errorf("outcome %s, truncated %v, %d bytes (want %d, whole)", res.Outcome, res.Truncated, got.Len(), want.Len())
	}
}

// A script can make no namespace of its own: a user namespace would give
// it every capability inside (mounts over noexec, netlink, raw sockets).
func testNoNamespacesForScripts(t *testing.T) {
	script := `
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
for name, flag in [("user", 0x10000000), ("mount", 0x00020000), ("net", 0x40000000), ("user+mount", 0x10020000)]:
    r = libc.unshare(flag)
    print(name, "created" if r == 0 else "refused " + os.strerror(ctypes.get_errno()))
pid = os.fork()
if pid == 0:
    os._exit(0 if libc.unshare(0x10000000) == 0 else 1)
_, st = os.waitpid(pid, 0)
print("child user", "created" if os.waitstatus_to_exitcode(st) == 0 else "refused")
`
	res, out := run(t, cronium.Python, script, nil)
	wantOutcome(t, res, out, cronium.Succeeded)
	if strings.Contains(out, "created") || strings.Count(out, "refused") != 5 {
		t.Errorf("a script made a namespace:\n%s", out)
	}
}
