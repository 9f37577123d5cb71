package enginetest

import (
	"context"
	"sync"
	"testing"

	cronium "github.com/cronium/executor"
)

// Usage: live samples while a script runs, and a warm run's own peak memory.
func init() {
	add("UsageSamplesWhileRunning", testUsageSamplesWhileRunning)
	add("WarmRunPeakMemoryIsItsOwn", testWarmRunPeakMemoryIsItsOwn)
}

// A script that holds 60 MiB and burns CPU for 3 s is sampled about every
// second: elapsed time and CPU grow, memory shows what it holds.
func testUsageSamplesWhileRunning(t *testing.T) {
	var mu sync.Mutex
	var samples []cronium.UsageSample
	script := "import time\nb = bytearray(60 << 20)\nfor i in range(0, len(b), 4096): b[i] = 1\nend = time.time() + 3\nwhile time.time() < end: pass\nprint('done')\n"
	res, out := run(t, cronium.Python, script, func(s *cronium.Spec) {
		s.Limits.CPUs = 2
		s.Sample = func(u cronium.UsageSample) {
			mu.Lock()
			samples = append(samples, u)
			mu.Unlock()
		}
	})
	wantOutcome(t, res, out, cronium.Succeeded)
	mu.Lock()
	defer mu.Unlock()
	if len(samples) < 2 || len(samples) > 5 {
		t.Fatalf("%d samples of a 3 s run, want about 3: %+v", len(samples), samples)
	}
	for i := 1; i < len(samples); i++ {
		a, b := samples[i-1], samples[i]
		if b.Elapsed <= a.Elapsed || b.CPUSeconds < a.CPUSeconds {
			t.Errorf("sample %d goes back: %+v then %+v", i, a, b)
		}
	}
	last := samples[len(samples)-1]
	if last.CPUSeconds < 0.3 || last.MemoryBytes < 60<<20 || last.PeakMemory < last.MemoryBytes || last.Pids < 1 {
		t.Errorf("last sample %+v: want a busy loop's CPU-seconds (over 0.3 even on a loaded host), 60Mi in use, a peak at least that, a process", last)
	}
	if res.Usage.CPUSeconds < last.CPUSeconds*0.8 || res.Usage.PidsPeak < 1 {
		t.Errorf("result usage %+v, after a sample of %+v", res.Usage, last)
	}
}

// A warm sandbox's run reports its own peak memory, not the sandbox's
// highest since it started.
func testWarmRunPeakMemoryIsItsOwn(t *testing.T) {
	ctx := context.Background()
	sb := newSandbox(t, cronium.Spec{Language: cronium.Python})
	big := sb.Run(ctx, cronium.Spec{ID: newID(), Language: cronium.Python, Script: []byte("b = bytearray(150 << 20)\nfor i in range(0, len(b), 4096): b[i] = 1\n")})
	if big.Outcome != cronium.Succeeded || big.Usage.PeakMemory < 150<<20 {
		t.Fatalf("the big run: %s %q, peak %d", big.Outcome, big.Error, big.Usage.PeakMemory)
	}
	if err := sb.Reset(ctx); err != nil {
		t.Fatal(err)
	}
	small := sb.Run(ctx, cronium.Spec{ID: newID(), Language: cronium.Python, Script: []byte("print(1)\n")})
	if small.Outcome != cronium.Succeeded || small.Container != big.Container {
		t.Fatalf("the small run: %s %q in %s (the big one ran in %s)", small.Outcome, small.Error, small.Container, big.Container)
	}
	if small.Usage.PeakMemory <= 0 || small.Usage.PeakMemory > 80<<20 {
		t.Errorf("the small run after a 150Mi one reports a peak of %d MiB: not its own", small.Usage.PeakMemory>>20)
	}
}
