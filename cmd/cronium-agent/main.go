// Command cronium-agent is PID 1 of every Cronium sandbox. Engines mount it
// read-only; it is not meant to be run by hand. See package agent.
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/cronium/executor/agent"
)

func main() {
	conn, err := agent.Dial(filepath.Join(agent.HostDir, agent.SocketName), 10*time.Second)
	if err != nil {
		fmt.Fprintln(os.Stderr, "cronium-agent:", err)
		os.Exit(70)
	}
	if err := agent.NewAgent(conn).Serve(); err != nil {
		fmt.Fprintln(os.Stderr, "cronium-agent:", err)
		os.Exit(71)
	}
}
