// Package testenv holds set-up shared by the test binaries that run real
// sandboxes.
package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// BuildAgent builds the static cronium-agent into dir and returns its path.
func BuildAgent(dir string) (string, error) {
	bin := filepath.Join(dir, "cronium-agent")
	build := exec.Command("go", "build", "-o", bin, "github.com/cronium/executor/cmd/cronium-agent")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build the agent: %v\n%s", err, out)
	}
	return bin, nil
}

// RemoveContainers removes every container whose io.cronium.node label is
// node, running or not, with its anonymous volumes: the clean-up of a test
// whose engine or server left sandboxes behind (dockerd killed under them,
// a server stopped before they ended). Only the test's own node: other
// tests' containers are never touched. It needs the docker CLI.
func RemoveContainers(node string) error {
	out, err := exec.Command("docker", "ps", "-aq", "--filter", "label=io.cronium.node="+node).Output()
	if err != nil {
		return fmt.Errorf("list the containers of node %s: %v", node, err)
	}
	ids := strings.Fields(string(out))
	if len(ids) == 0 {
		return nil
	}
	if out, err := exec.Command("docker", append([]string{"rm", "-f", "-v"}, ids...)...).CombinedOutput(); err != nil {
		if strings.Contains(string(out), "is already in progress") {
			return nil // the engine removes it already
		}
		return fmt.Errorf("remove the containers of node %s: %v: %s", node, err, out)
	}
	return nil
}
