// Package testenv holds set-up shared by the test binaries that run real
// sandboxes.
package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
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
