// Command agentclient is the helpers tests' stand-in for `cronium-agent api`:
// it runs agent.ClientMain exactly as the agent binary does.
package main

import (
	"fmt"
	"os"

	"github.com/cronium/executor/agent"
)

func main() {
	if len(os.Args) < 2 || os.Args[1] != "api" {
		fmt.Fprintln(os.Stderr, "usage: agentclient api ...")
		os.Exit(2)
	}
	os.Exit(agent.ClientMain(os.Args[2:], os.Stdin, os.Stdout, os.Stderr))
}
