package agent

import (
	"fmt"
	"os"
	"syscall"
)

// ScriptOOMScoreAdj is the OOM score adjustment of the script and every
// process it starts: the most killable. When the sandbox runs out of
// memory (tmpfs pages count too), the kernel kills a script process, never
// the agent, which then reports oom_killed with the output and usage.
const ScriptOOMScoreAdj = 1000

// ExecScriptMain is `cronium-agent exec-script PATH ARGV...`, run as the
// script user: it marks itself the first choice of the OOM killer (raising
// one's own score needs no privilege, and children inherit it) and then
// becomes the interpreter, PATH with ARGV, in the same process.
func ExecScriptMain(args []string) int {
	if len(args) < 2 {
		fmt.Fprintln(os.Stderr, "cronium-agent exec-script: want PATH ARGV...")
		return 126
	}
	if err := os.WriteFile("/proc/self/oom_score_adj", []byte(fmt.Sprint(ScriptOOMScoreAdj)), 0); err != nil {
		fmt.Fprintln(os.Stderr, "cronium-agent exec-script: mark the script killable first:", err)
		return 126
	}
	err := syscall.Exec(args[0], args[1:], os.Environ())
	fmt.Fprintf(os.Stderr, "cronium-agent exec-script: exec %s: %v\n", args[0], err)
	return 126
}
