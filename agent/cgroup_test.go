package agent

import "testing"

// BenchmarkSample is what one usage sample costs the agent (one a second
// per running execution): reading the cgroup's counters.
func BenchmarkSample(b *testing.B) {
	cg := detectCgroup()
	base := cg.counters()
	for b.Loop() {
		cg.sample(base)
	}
}
