package agent

import (
	"runtime"
	"sync"
)

// AgentThreads is how many OS threads the agent starts at once and keeps:
// the engine adds them to the sandbox's pids limit. A script that forks up
// to the limit then leaves the agent unable to create a thread, which the
// Go runtime cannot survive; with its threads made beforehand, the agent
// does not need to.
const AgentThreads = 16

// ReserveThreads makes the Go runtime create n OS threads now and keep
// them idle for later use (a thread a goroutine releases with
// UnlockOSThread goes back to the runtime's pool).
func ReserveThreads(n int) {
	var ready, release sync.WaitGroup
	ready.Add(n)
	release.Add(1)
	var done sync.WaitGroup
	for i := 0; i < n; i++ {
		done.Add(1)
		go func() {
			defer done.Done()
			runtime.LockOSThread() // each goroutine on a thread of its own
			ready.Done()
			release.Wait()
			runtime.UnlockOSThread()
		}()
	}
	ready.Wait()
	release.Done()
	done.Wait()
}
