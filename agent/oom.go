package agent

import (
	"os"
	"strconv"
	"strings"
	"sync"
)

// ScriptOOMScoreAdj is the OOM score adjustment of the script and every
// process it starts: the most killable. When the sandbox runs out of
// memory (tmpfs pages count too), the kernel kills a script process, never
// the agent, which then reports oom_killed with the output and usage.
const ScriptOOMScoreAdj = 1000

const oomScoreAdj = "/proc/self/oom_score_adj"

var oomMu sync.Mutex // one start at a time moves the agent's own score

// startKillable starts a process that inherits ScriptOOMScoreAdj: the
// agent raises its own score for the fork and lowers it back at once
// (raising needs no privilege; lowering back to the value the engine set
// does not either, as that value is the floor the engine allowed).
func startKillable(start func() (*os.Process, error)) (*os.Process, error) {
	oomMu.Lock()
	defer oomMu.Unlock()
	old, err := os.ReadFile(oomScoreAdj)
	if err != nil {
		return start() // no /proc: the score stays as it is
	}
	if os.WriteFile(oomScoreAdj, []byte(strconv.Itoa(ScriptOOMScoreAdj)), 0) != nil {
		return start()
	}
	p, err := start()
	os.WriteFile(oomScoreAdj, []byte(strings.TrimSpace(string(old))), 0)
	return p, err
}
