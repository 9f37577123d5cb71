package cronium

import (
	"fmt"
	"math"
	"time"
)

// Hint is an optimisation an execution's usage suggests: what to change
// and what it would save.
type Hint struct {
	// Kind is one of the Hint* kinds.
	Kind string `json:"kind"`
	// Message says what was seen and what would do, like "peak 31Mi of
	// 512Mi over the last 12 runs: 64Mi would do".
	Message string `json:"message"`
	// Saving is what following it would save per run (zero fields: none of that kind).
	Saving Saving `json:"saving,omitzero"`
}

// Saving is what a hint would save on each run.
type Saving struct {
	// MemoryBytes of reservation.
	MemoryBytes int64 `json:"memory_bytes,omitempty"`
	// Time of start-up or run time.
	Time Duration `json:"time,omitempty"`
	// CostMicros by the price table.
	CostMicros int64 `json:"cost_micros,omitempty"`
}

// Hint kinds.
const (
	HintMemory      = "memory_oversized"
	HintCPU         = "cpu_throttled"
	HintColdStart   = "cold_start"
	HintOutput      = "output_near_cap"
	HintNearTimeout = "near_timeout"
)

// HintInput is what hints are computed from besides the result.
type HintInput struct {
	// Strategy is how the execution ran.
	Strategy string
	// PerMinute is how often its event runs on schedule (0: not scheduled).
	PerMinute float64
	// Runs and PeakMemory are the event's other runs lately (the last 7
	// days) and the highest peak memory among them.
	Runs       int64
	PeakMemory int64
	// Prices prices the savings (zero: no cost savings).
	Prices Prices
}

// Hint thresholds.
const (
	// hintMemoryFraction: a peak below this share of the limit is oversized.
	hintMemoryFraction = 0.25
	// hintNear: a share of a cap or timeout above this is near it.
	hintNear = 0.8
	// hintThrottled: throttled for more than this share of the run.
	hintThrottled = 0.5
	// hintFrequent is the least runs per minute for a cold start to matter (every 10 minutes).
	hintFrequent = 0.1
	// warmStart is about what a warm sandbox's start costs.
	warmStart = 50 * time.Millisecond
)

// Hints computes the optimisation hints of a finished execution from its
// usage against its limits and its event's recent runs. Executions that
// did not run to an end of their own (engine errors, cancels) get none.
func Hints(res Result, in HintInput) []Hint {
	switch res.Outcome {
	case EngineError, Cancelled, "":
		return nil
	}
	var hints []Hint
	l, u := res.Limits, res.Usage
	run := res.Phases.Run
	// Memory far below the limit, over this run and the event's others.
	if peak := max(u.PeakMemory, in.PeakMemory); res.Outcome == Succeeded && u.PeakMemory > 0 && l.Memory > 0 && float64(peak) < hintMemoryFraction*float64(l.Memory) {
		suggest := suggestMemory(peak)
		if suggest < int64(l.Memory) {
			over := "this run"
			if in.Runs > 0 {
				over = fmt.Sprintf("the last %d runs", in.Runs+1)
			}
			saving := int64(l.Memory) - suggest
			h := Hint{Kind: HintMemory, Message: fmt.Sprintf("peak %s of %s over %s: %s would do (resources.memory)", approx(peak), l.Memory, over, Size(suggest)),
				Saving: Saving{MemoryBytes: saving}}
			h.Saving.CostMicros = in.Prices.Cost(Metered{ReservedMiBMs: saving / 1024 * run.Milliseconds() / 1024}, true) - in.Prices.Cost(Metered{}, true)
			hints = append(hints, h)
		}
	}
	// CPU throttled most of the run.
	if run >= time.Second && u.CPUThrottledSeconds > hintThrottled*run.Seconds() && l.CPUs > 0 {
		share := u.CPUThrottledSeconds / run.Seconds()
		hints = append(hints, Hint{Kind: HintCPU, Message: fmt.Sprintf("the CPU limit (%g) held the script back %.0f%% of its run: resources.cpus %g would run it faster, if the tier allows",
			l.CPUs, 100*math.Min(share, 1), l.CPUs*2)})
	}
	// A cold start that dominates a short, frequent run.
	if start := res.Phases.Create + res.Phases.Start; in.Strategy == StrategyCold && in.PerMinute >= hintFrequent && start > run && start > warmStart {
		saving := start - warmStart
		hints = append(hints, Hint{Kind: HintColdStart, Message: fmt.Sprintf("starting its sandbox took %s, the script ran %s, and it runs %s: strategy reuse would save about %s a run",
			start.Round(time.Millisecond), run.Round(time.Millisecond), every(in.PerMinute), saving.Round(10*time.Millisecond)), Saving: Saving{Time: Duration(saving)}})
	}
	// Output near its cap.
	if l.Output > 0 && float64(u.OutputBytes) > hintNear*float64(l.Output) && u.OutputBytes <= int64(l.Output) {
		hints = append(hints, Hint{Kind: HintOutput, Message: fmt.Sprintf("output %s of its %s cap: a little more and it is cut (write less, or raise the cap)", approx(u.OutputBytes), l.Output)})
	}
	// Close to the timeout.
	if l.Timeout > 0 && res.Outcome == Succeeded && float64(run) > hintNear*float64(l.Timeout) {
		hints = append(hints, Hint{Kind: HintNearTimeout, Message: fmt.Sprintf("ran %s of its %s timeout: as it grows it will time out (raise timeout, or split the work)",
			run.Round(100*time.Millisecond), l.Timeout)})
	}
	return hints
}

// suggestMemory is a memory limit with room for peak: twice it, rounded up
// to a power of two MiB, at least MinMemory.
func suggestMemory(peak int64) int64 {
	s := int64(MinMemory)
	for s < 2*peak {
		s *= 2
	}
	return s
}

// approx writes a byte count in the largest binary unit it has, with one
// decimal where that unit is not whole: "6.4Mi", "31Mi", "900Ki".
func approx(n int64) string {
	for _, u := range []struct {
		s string
		v int64
	}{{"Gi", 1 << 30}, {"Mi", 1 << 20}, {"Ki", 1 << 10}} {
		if n >= u.v {
			if n%u.v == 0 || n >= 100*u.v {
				return fmt.Sprintf("%d%s", (n+u.v/2)/u.v, u.s)
			}
			return fmt.Sprintf("%.1f%s", float64(n)/float64(u.v), u.s)
		}
	}
	return fmt.Sprintf("%dB", n)
}

// every says how often a rate per minute is, like "every 1m0s".
func every(perMinute float64) string {
	return "every " + time.Duration(float64(time.Minute)/perMinute).Round(time.Second).String()
}
