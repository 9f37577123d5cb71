package docker

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"

	"golang.org/x/sys/unix"

	cronium "github.com/cronium/executor"
)

var volumeName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$`)

// workspaceDir returns the host directory of a persistent workspace: an
// ext4 file system in StateDir/ws/NAME.img, as large as the quota, mounted
// (loop, nosuid, nodev, noexec) at StateDir/ws/NAME. The kernel enforces
// the quota (ENOSPC); the files outlive sandboxes, idle shutdowns and
// restarts. The image is created and formatted once, and mounted again
// after a reboot. The host never writes inside: it only makes the root
// sticky and open, as the agent expects of a workspace.
func (e *Engine) workspaceDir(ws *cronium.Volume) (string, error) {
	if !volumeName.MatchString(ws.Name) {
		return "", cronium.Invalid("workspace", ws.Name, "is not a volume name")
	}
	if ws.Size < 16<<20 {
		return "", cronium.Invalid("workspace", ws.Size.String(), "is too small: want at least 16Mi")
	}
	e.wsMu.Lock()
	defer e.wsMu.Unlock()
	base := filepath.Join(e.cfg.StateDir, "ws")
	if err := os.MkdirAll(base, 0o700); err != nil {
		return "", err
	}
	img, dir := filepath.Join(base, ws.Name+".img"), filepath.Join(base, ws.Name)
	if mounted(dir) {
		return dir, nil
	}
	if _, err := os.Lstat(img); os.IsNotExist(err) {
		f, err := os.OpenFile(img, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return "", fmt.Errorf("create workspace image: %w", err)
		}
		err = f.Truncate(int64(ws.Size))
		f.Close()
		if err == nil {
			var out []byte
			out, err = exec.Command("mkfs.ext4", "-q", "-F", "-m", "0", "-E", "root_owner=0:0", img).CombinedOutput()
			if err != nil {
				err = fmt.Errorf("%v: %s", err, strings.TrimSpace(string(out)))
			}
		}
		if err != nil {
			os.Remove(img)
			return "", fmt.Errorf("format workspace %s (needs mkfs.ext4, from e2fsprogs): %w", ws.Name, err)
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	if out, err := exec.Command("mount", "-o", "loop,nosuid,nodev,noexec", img, dir).CombinedOutput(); err != nil {
		return "", fmt.Errorf("mount workspace %s (needs root and loop devices): %v: %s", ws.Name, err, strings.TrimSpace(string(out)))
	}
	os.RemoveAll(filepath.Join(dir, "lost+found"))
	if err := unix.Chmod(dir, 0o1777); err != nil { // os.Chmod would drop the sticky bit
		return "", err
	}
	return dir, nil
}

// mounted reports whether dir is a mount point.
func mounted(dir string) bool {
	f, err := os.Open("/proc/self/mounts")
	if err != nil {
		return false
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if fields := strings.Fields(s.Text()); len(fields) > 1 && fields[1] == dir {
			return true
		}
	}
	return false
}

// UnmountWorkspaces unmounts every persistent workspace of this engine (at
// shutdown, once no sandbox uses them: the next use mounts them again).
// It returns how many it unmounted.
func (e *Engine) UnmountWorkspaces() (int, error) {
	e.wsMu.Lock()
	defer e.wsMu.Unlock()
	base := filepath.Join(e.cfg.StateDir, "ws")
	ents, err := os.ReadDir(base)
	if err != nil {
		if os.IsNotExist(err) {
			return 0, nil
		}
		return 0, err
	}
	n := 0
	var errs []error
	for _, d := range ents {
		dir := filepath.Join(base, d.Name())
		if !d.IsDir() || !mounted(dir) {
			continue
		}
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			errs = append(errs, fmt.Errorf("unmount workspace %s: %v: %s", d.Name(), err, strings.TrimSpace(string(out))))
			continue
		}
		n++
	}
	return n, errors.Join(errs...)
}

// RemoveWorkspace unmounts and deletes a persistent workspace (tests, user deletion).
func (e *Engine) RemoveWorkspace(name string) error {
	if !volumeName.MatchString(name) {
		return cronium.Invalid("workspace", name, "is not a volume name")
	}
	e.wsMu.Lock()
	defer e.wsMu.Unlock()
	dir := filepath.Join(e.cfg.StateDir, "ws", name)
	if mounted(dir) {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			return fmt.Errorf("unmount workspace %s: %v: %s", name, err, out)
		}
	}
	os.Remove(dir)
	return os.Remove(dir + ".img")
}
