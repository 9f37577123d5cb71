package enginetest

import (
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	cronium "github.com/cronium/executor"
)

func init() {
	add("DiskWriteCap", testDiskWriteCap)
	add("DiskReadCap", testDiskReadCap)
}

// A run capped at 10Mi/s of disk reads reads 30Mi from the disk in 3 s ± 20%
// (its writes, uncapped, are not held).
func testDiskReadCap(t *testing.T) {
	if !eng.Capabilities().DiskIO { // /workspace is memory there: no direct reads; the result says the cap is not enforced
		res, out := run(t, cronium.Bash, "echo hi", func(s *cronium.Spec) { s.Limits.IOReadBPS = 10 << 20 })
		wantOutcome(t, res, out, cronium.Succeeded)
		if !strings.Contains(strings.Join(res.Enforcement, "\n"), "disk I/O caps: not enforced") {
			t.Errorf("the %s engine enforces no disk caps and does not say so: %q", eng.Capabilities().Name, res.Enforcement)
		}
		return
	}
	script := "dd if=/dev/urandom of=/workspace/f bs=1M count=30 2>&1 | tail -1; dd if=/workspace/f of=/dev/null bs=1M iflag=direct 2>&1 | tail -1"
	res, out := run(t, cronium.Bash, script, func(s *cronium.Spec) { s.Limits.IOReadBPS = 10 << 20 })
	wantOutcome(t, res, out, cronium.Succeeded)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 {
		t.Fatalf("dd said %q", out)
	}
	write, read := ddSeconds(t, lines[0]), ddSeconds(t, lines[1])
	if read < 2.4 || read > 3.6 || write > 2 {
		t.Errorf("30Mi written in %.2fs (uncapped), read at 10Mi/s in %.2fs: want the read in 3s ± 20%%", write, read)
	}
}

// ddSeconds is the time dd reports in its last line ("..., 2.97 s, 10.6 MB/s").
func ddSeconds(t *testing.T, line string) float64 {
	t.Helper()
	f := strings.Split(line, ", ")
	if len(f) < 3 {
		t.Fatalf("dd said %q", line)
	}
	v, err := strconv.ParseFloat(strings.TrimSuffix(f[len(f)-2], " s"), 64)
	if err != nil {
		t.Fatalf("dd said %q: %v", line, err)
	}
	return v
}

// A run capped at 10Mi/s of disk writes that writes 100Mi to /workspace
// (plain buffered writes, as scripts do) takes 10 s ± 20%, and its usage
// records the bytes; an engine without disk caps says so on the result.
func testDiskWriteCap(t *testing.T) {
	script := "dd if=/dev/zero of=/workspace/f bs=1M count=100 2>&1 | tail -1"
	// The cap is an upper bound: a disk busy writing back what the host
	// wrote (this test's build, say) slows a capped script further. What is
	// measured here is the cap, on a disk that is not flushing a backlog.
	syscall.Sync()
	begin := time.Now()
	res, out := run(t, cronium.Bash, script, func(s *cronium.Spec) {
		s.Limits.IOWriteBPS, s.Limits.Memory, s.Limits.WorkspaceSize = 10<<20, 512<<20, 200<<20 // a workspace with room for 100Mi
	})
	took := time.Since(begin)
	wantOutcome(t, res, out, cronium.Succeeded)
	if !eng.Capabilities().DiskIO {
		if !strings.Contains(strings.Join(res.Enforcement, "\n"), "disk I/O caps: not enforced") {
			t.Errorf("the %s engine enforces no disk caps and does not say so: %q", eng.Capabilities().Name, res.Enforcement)
		}
		return
	}
	if run := res.Phases.Run; run < 8*time.Second || run > 12*time.Second {
		t.Errorf("writing 100Mi at 10Mi/s ran %s, want 10s ± 20%% (dd said %q)", run.Round(10*time.Millisecond), strings.TrimSpace(out))
	}
	if res.Usage.IOWrite < 100<<20 || res.Usage.IOWrite > 110<<20 {
		t.Errorf("usage records %d bytes written, want 100Mi", res.Usage.IOWrite)
	}
	if !strings.Contains(strings.Join(res.Enforcement, "\n"), "/workspace is a") {
		t.Errorf("the result does not say /workspace is on disk: %q", res.Enforcement)
	}
	t.Logf("100Mi at 10Mi/s: run %s, whole run %s, dd: %s", res.Phases.Run.Round(10*time.Millisecond), took.Round(10*time.Millisecond), strings.TrimSpace(out))
}
