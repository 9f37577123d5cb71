// Command cronium-agent is PID 1 of every Cronium sandbox. Engines mount it
// read-only; it is not meant to be run by hand. See package agent.
//
// It has two helper modes: `cronium-agent api ...`, the runtime API client
// the bash and node helpers call, and `cronium-agent write-secrets DIR`,
// which the agent runs as the script user to write secret files; `wipe`
// is internal too (see package agent).
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/cronium/executor/agent"
)

func main() {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "api":
			os.Exit(agent.ClientMain(os.Args[2:], os.Stdin, os.Stdout, os.Stderr))
		case "write-secrets":
			os.Exit(agent.SecretsWriterMain(os.Args[2:], os.Stdin))
		case "wipe":
			os.Exit(agent.WipeMain(os.Args[2:]))
		}
	}
	if err := agent.OwnSecretsDir(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "cronium-agent:", err)
		os.Exit(72)
	}
	agent.ReserveThreads(agent.AgentThreads)
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
