package session

import (
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"syscall"

	"github.com/cronium/executor/agent"
)

// What every engine's host side shares: the agent binary installed where
// sandboxes mount it, the per-sandbox socket directory the agent dials,
// and the host's limits.

// StaticBinary refuses a dynamically linked agent: it would load the
// image's dynamic loader and C library, which a custom image or a package
// layer could replace.
func StaticBinary(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("is not an executable: %v", err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return errors.New("is dynamically linked: build it with CGO_ENABLED=0 (make build does)")
		}
	}
	return nil
}

// InstallAgent copies the agent to StateDir/agent/cronium-agent-<hash>, owned
// by us and read-only, so what is mounted into sandboxes cannot change under them.
func InstallAgent(src, stateDir string) (string, error) {
	b, err := os.ReadFile(src)
	if err != nil {
		return "", fmt.Errorf("read agent binary %s: %w (build it with `make build`)", src, err)
	}
	sum := sha256.Sum256(b)
	dir := filepath.Join(stateDir, "agent")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("create agent dir: %w", err)
	}
	return InstallFile(filepath.Join(dir, "cronium-agent-"+hex.EncodeToString(sum[:6])), b, 0o555)
}

// InstallFile writes b to dst with mode, through a temporary file and a
// rename (never through a link someone put at dst), unless a regular file
// of that size is there already: dst is content-addressed or fixed.
func InstallFile(dst string, b []byte, mode os.FileMode) (string, error) {
	if fi, err := os.Lstat(dst); err == nil && fi.Mode().IsRegular() && fi.Size() == int64(len(b)) {
		return dst, nil
	}
	tmp, err := os.CreateTemp(filepath.Dir(dst), ".install-*")
	if err != nil {
		return "", fmt.Errorf("install %s: %w", dst, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return "", fmt.Errorf("install %s: %w", dst, err)
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return "", fmt.Errorf("install %s: %w", dst, err)
	}
	if err := tmp.Close(); err != nil {
		return "", fmt.Errorf("install %s: %w", dst, err)
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return "", fmt.Errorf("install %s: %w", dst, err)
	}
	return dst, nil
}

// SandboxDir creates the socket directory of sandbox name under
// stateDir/s, 0700. It fails if it exists: another run of the same id
// owns it.
func SandboxDir(stateDir, name string) (string, error) {
	dir := filepath.Join(stateDir, "s", name)
	if err := os.MkdirAll(filepath.Dir(dir), 0o711); err != nil {
		return "", fmt.Errorf("create sandbox parent dir: %w", err)
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		return "", fmt.Errorf("create sandbox dir: %w", err)
	}
	return dir, nil
}

// ListenSandbox listens on the socket the agent dials in dir, replacing a
// stale one a host process that died left.
func ListenSandbox(dir string) (*net.UnixListener, error) {
	path := filepath.Join(dir, agent.SocketName)
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("remove stale sandbox socket: %w", err)
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("listen on sandbox socket: %w", err)
	}
	return ln, nil
}

// Relisten listens again in the socket directory of sandbox name (made
// again if it is gone), for the agent of a re-attached run to redial.
func Relisten(stateDir, name string) (string, *net.UnixListener, error) {
	dir := filepath.Join(stateDir, "s", name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", nil, fmt.Errorf("create sandbox dir: %w", err)
	}
	ln, err := ListenSandbox(dir)
	return dir, ln, err
}

// HostNProc is this host's limit on processes per user: a sandbox's nproc
// cannot be above it (a runtime refuses to start it, and a lowered limit
// cannot be raised back).
var HostNProc = sync.OnceValue(func() int64 {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(6 /* RLIMIT_NPROC */, &r); err != nil || r.Max == 0 || r.Max > 1<<22 {
		return 1 << 22
	}
	return int64(r.Max)
})
