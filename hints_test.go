package cronium

import (
	"strings"
	"testing"
	"time"
)

func kinds(hs []Hint) string {
	var k []string
	for _, h := range hs {
		k = append(k, h.Kind)
	}
	return strings.Join(k, ",")
}

// Each hint appears when its usage says so, and not for a well-sized run.
func TestHints(t *testing.T) {
	prices := Prices{GiBSecond: 0.0000025}
	base := func() Result {
		return Result{Outcome: Succeeded, Phases: Phases{Create: 200 * time.Millisecond, Start: 100 * time.Millisecond, Run: 2 * time.Second},
			Limits: Limits{Memory: 64 << 20, CPUs: 1, Timeout: time.Minute, Output: 1 << 20},
			Usage:  Usage{PeakMemory: 45 << 20, CPUSeconds: 1, OutputBytes: 100}}
	}
	for _, c := range []struct {
		name string
		mod  func(*Result, *HintInput)
		want string
		msg  string
	}{
		{"well sized", nil, "", ""},
		{"oversized memory", func(r *Result, _ *HintInput) { r.Limits.Memory = 512 << 20; r.Usage.PeakMemory = 31 << 20 },
			HintMemory, "peak 31Mi of 512Mi over this run: 64Mi would do"},
		{"oversized, but an earlier run used more", func(r *Result, in *HintInput) {
			r.Limits.Memory = 512 << 20
			r.Usage.PeakMemory = 31 << 20
			in.Runs, in.PeakMemory = 9, 300<<20
		}, "", ""},
		{"oversized over the event's runs", func(r *Result, in *HintInput) {
			r.Limits.Memory = 512 << 20
			r.Usage.PeakMemory = 31 << 20
			in.Runs, in.PeakMemory = 9, 40<<20
		}, HintMemory, "peak 40Mi of 512Mi over the last 10 runs: 128Mi would do"},
		{"an OOM-killed run is not oversized", func(r *Result, _ *HintInput) {
			r.Outcome, r.Limits.Memory, r.Usage.PeakMemory = OOMKilled, 512<<20, 31<<20
		}, "", ""},
		{"throttled", func(r *Result, _ *HintInput) { r.Limits.CPUs = 0.5; r.Usage.CPUThrottledSeconds = 1.5 }, HintCPU, "held the script back 75% of its run"},
		{"cold start of a frequent short run", func(r *Result, in *HintInput) {
			r.Phases.Run = 40 * time.Millisecond
			in.Strategy, in.PerMinute = StrategyCold, 1
		}, HintColdStart, "starting its sandbox took 300ms, the script ran 40ms, and it runs every 1m0s: strategy reuse would save about 250ms a run"},
		{"cold start of a rare run", func(r *Result, in *HintInput) {
			r.Phases.Run = 40 * time.Millisecond
			in.Strategy, in.PerMinute = StrategyCold, 1.0/1440
		}, "", ""},
		{"output near its cap", func(r *Result, _ *HintInput) { r.Usage.OutputBytes = 900 << 10 }, HintOutput, "output 900Ki of its 1Mi cap"},
		{"near its timeout", func(r *Result, _ *HintInput) { r.Phases.Run = 52 * time.Second }, HintNearTimeout, "ran 52s of its 1m0s timeout"},
		{"engine errors get none", func(r *Result, _ *HintInput) {
			r.Outcome, r.Limits.Memory, r.Usage.PeakMemory, r.Phases.Run = EngineError, 512<<20, 1<<20, 59*time.Second
		}, "", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			r, in := base(), HintInput{Strategy: StrategyReuse, Prices: prices}
			if c.mod != nil {
				c.mod(&r, &in)
			}
			hs := Hints(r, in)
			if kinds(hs) != c.want {
				t.Fatalf("hints %s (%+v), want %q", kinds(hs), hs, c.want)
			}
			if c.msg != "" && !strings.Contains(hs[0].Message, c.msg) {
				t.Errorf("message %q, want it to say %q", hs[0].Message, c.msg)
			}
		})
	}
	r := base()
	r.Limits.Memory, r.Usage.PeakMemory = 512<<20, 31<<20
	h := Hints(r, HintInput{Prices: prices})[0]
	// 448Mi for 2 s: 0.875 GiB-s at 0.0000025 = 2.1875 micro-units.
	if h.Saving.MemoryBytes != 448<<20 || h.Saving.CostMicros != 2 {
		t.Errorf("saving %+v, want 448Mi and 2 micro-units a run", h.Saving)
	}
}
