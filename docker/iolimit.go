package docker

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	cronium "github.com/cronium/executor"
)

// scratch is a sandbox's disk-backed /workspace: an ext4 image in
// StateDir/io/NAME.img on a loop device of its own, mounted (nosuid,
// nodev, noexec, sync) at StateDir/io/NAME. The device being the
// sandbox's alone, its caps can be set where the kernel applies them:
//   - reads and writes: on the container's cgroup (its blkio or io
//     settings for the device); the mount is synchronous, so writes are
//     issued by the writer, in its cgroup, as it writes;
//   - what still reaches the disk as writeback (pages dirtied through
//     mmap): cgroup v1 charges writeback to the root cgroup, so the write
//     cap also goes on the root blkio cgroup for this device, and the
//     device's writeback is made strict (bdi strict_limit, max_bytes) so
//     that the kernel paces the dirtying to it.
//
// On cgroup v2 the container's io.max throttles writeback itself.
type scratch struct {
	img, dir string
	dev      string // /dev/loopN
	majmin   string // "7:N"
	rootCap  bool   // the root blkio cgroup caps its writes (cgroup v1)
	bdi      bool   // its writeback is strict
}

// Host files the write cap goes in on cgroup v1.
const (
	rootWriteBPS = "/sys/fs/cgroup/blkio/blkio.throttle.write_bps_device"
	bdiDir       = "/sys/class/bdi"
)

// newScratch makes, mounts and caps the disk workspace of sandbox name.
// notes says how the caps are enforced where that differs from the
// ideal. The caller removes it (remove) with the sandbox.
func (e *Engine) newScratch(name string, l cronium.Limits) (s *scratch, notes []string, err error) {
	base := filepath.Join(e.cfg.StateDir, "io")
	if err := privateDir(base); err != nil {
		return nil, nil, err
	}
	s = &scratch{img: filepath.Join(base, name+".img"), dir: filepath.Join(base, name)}
	defer func() {
		if err != nil {
			s.remove()
			s = nil
		}
	}()
	f, err := os.OpenFile(s.img, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return s, nil, fmt.Errorf("disk workspace: create its image: %w", err)
	}
	err = f.Truncate(int64(max(l.WorkspaceSize, 16<<20))) // the workspace's size, as on tmpfs (sparse: disk is taken as written)
	f.Close()
	if err != nil {
		return s, nil, fmt.Errorf("disk workspace: size its image: %w", err)
	}
	if out, err := exec.Command("mkfs.ext4", "-q", "-F", "-m", "0", "-E", "root_owner=0:0,lazy_itable_init=0,lazy_journal_init=0", s.img).CombinedOutput(); err != nil {
		return s, nil, fmt.Errorf("disk workspace: format it (needs mkfs.ext4, from e2fsprogs): %v: %s", err, strings.TrimSpace(string(out)))
	}
	// A loop device of its own; direct I/O keeps the data out of the
	// host's page cache twice (where the backing file system refuses it,
	// plain).
	out, err := exec.Command("losetup", "-f", "--show", "--direct-io=on", s.img).CombinedOutput()
	if err != nil {
		out, err = exec.Command("losetup", "-f", "--show", s.img).CombinedOutput()
	}
	if err != nil {
		return s, nil, fmt.Errorf("disk workspace: attach a loop device (needs root and loop devices): %v: %s", err, strings.TrimSpace(string(out)))
	}
	s.dev = strings.TrimSpace(string(out))
	var st unix.Stat_t
	if err := unix.Stat(s.dev, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFBLK {
		return s, nil, fmt.Errorf("disk workspace: %s is not a block device (%v)", s.dev, err)
	}
	s.majmin = fmt.Sprintf("%d:%d", unix.Major(st.Rdev), unix.Minor(st.Rdev))
	if w := int64(l.IOWriteBPS); w > 0 {
		if _, err := os.Stat(rootWriteBPS); err == nil { // cgroup v1
			bdi := filepath.Join(bdiDir, s.majmin)
			if writeSys(filepath.Join(bdi, "strict_limit"), "1") == nil && writeSys(filepath.Join(bdi, "max_bytes"), strconv.FormatInt(max(w/4, 1<<20), 10)) == nil {
				s.bdi = true
			} else {
				notes = append(notes, "disk write cap: this kernel cannot pace writers to a device (no bdi strict_limit/max_bytes): buffered writes are capped as they are written back, so a script may write up to its memory in the page cache at full speed first")
			}
			if err := writeSys(rootWriteBPS, s.majmin+" "+strconv.FormatInt(w, 10)); err != nil {
				return s, nil, fmt.Errorf("disk workspace: cap its writeback: %w", err)
			}
			s.rootCap = true
		}
	}
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return s, nil, err
	}
	// Synchronous: a write reaches the disk before write() returns, issued
	// by the writer, so the container's cap paces it from the first byte
	// (buffered writes otherwise pace in only after a few seconds' start).
	if err := unix.Mount(s.dev, s.dir, "ext4", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC|unix.MS_SYNCHRONOUS, ""); err != nil {
		return s, nil, fmt.Errorf("disk workspace: mount it: %w", err)
	}
	os.Remove(filepath.Join(s.dir, "lost+found"))
	if err := unix.Chmod(s.dir, 0o1777); err != nil { // os.Chmod would drop the sticky bit
		return s, nil, err
	}
	notes = append(notes, fmt.Sprintf("disk I/O caps: /workspace is a %s file system on disk (not memory), mounted sync, whose reads and writes are capped; /tmp stays memory and is not capped", l.WorkspaceSize))
	return s, notes, nil
}

// remove takes the caps off, unmounts, detaches and deletes the
// workspace, in that order: the caps and strict writeback stay on a loop
// device after it is detached, and would hold whatever uses it next.
// Call it once the container is gone.
func (s *scratch) remove() error {
	var errs []error
	if s.rootCap {
		if err := writeSys(rootWriteBPS, s.majmin+" 0"); err != nil { // what is left to flush goes at full speed
			errs = append(errs, fmt.Errorf("take the write cap off %s: %w", s.dev, err))
		}
		s.rootCap = false
	}
	if mounted(s.dir) {
		if err := unix.Unmount(s.dir, 0); err != nil {
			errs = append(errs, fmt.Errorf("unmount %s: %w", s.dir, err))
		}
	}
	if s.bdi {
		bdi := filepath.Join(bdiDir, s.majmin)
		writeSys(filepath.Join(bdi, "strict_limit"), "0")
		writeSys(filepath.Join(bdi, "max_ratio"), "100") // also resets max_bytes
		s.bdi = false
	}
	if s.dev != "" {
		if out, err := exec.Command("losetup", "-d", s.dev).CombinedOutput(); err != nil {
			errs = append(errs, fmt.Errorf("detach %s: %v: %s", s.dev, err, strings.TrimSpace(string(out))))
		}
		s.dev = ""
	}
	os.Remove(s.dir)
	if err := os.Remove(s.img); err != nil && !os.IsNotExist(err) {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// privateDir makes dir (created if need be, 0700) a mount point of its
// own with private propagation, so that the file systems mounted under it
// are not copied into mount namespaces made meanwhile (a container
// starting, a kubelet), which would hold their devices busy.
func privateDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if !mounted(dir) {
		if err := unix.Mount(dir, dir, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("make %s a mount point: %w", dir, err)
		}
	}
	if err := unix.Mount("", dir, "", unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make %s private: %w", dir, err)
	}
	return nil
}

// releaseScratchDir unmounts the disk workspaces' directory (privateDir)
// once it holds none: a workspace in use keeps it.
func releaseScratchDir(dir string) {
	if ents, err := os.ReadDir(dir); err == nil && len(ents) == 0 && mounted(dir) {
		unix.Unmount(dir, unix.MNT_DETACH)
	}
}

// writeSys writes v into a kernel file.
func writeSys(path, v string) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(v)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// sweepScratch removes the disk workspaces of sandboxes that are gone
// (a crashed process's): whatever is in StateDir/io, not named by inUse
// and made before olderThan (a younger one may be a sandbox being made).
func (e *Engine) sweepScratch(inUse map[string]bool, olderThan time.Time) {
	ents, err := os.ReadDir(filepath.Join(e.cfg.StateDir, "io"))
	if err != nil {
		return
	}
	for _, d := range ents {
		name, ok := strings.CutSuffix(d.Name(), ".img")
		if !ok || inUse[name] {
			continue
		}
		if fi, err := d.Info(); err != nil || fi.ModTime().After(olderThan) {
			continue
		}
		if err := e.removeScratch(name); err != nil {
			e.log.Warn("remove a dead sandbox's disk workspace", "sandbox", name, "err", err)
		} else {
			e.log.Info("removed a dead sandbox's disk workspace", "sandbox", name)
		}
	}
}

// removeScratch removes the disk workspace of sandbox name, if it has one,
// whose container is gone. Its loop device is found by its backing file.
func (e *Engine) removeScratch(name string) error {
	if name == "" || strings.ContainsAny(name, "/.") {
		return nil
	}
	base := filepath.Join(e.cfg.StateDir, "io")
	s := &scratch{img: filepath.Join(base, name+".img"), dir: filepath.Join(base, name)}
	if _, err := os.Lstat(s.img); os.IsNotExist(err) {
		return nil
	}
	if out, err := exec.Command("losetup", "--list", "-n", "-O", "NAME", "-j", s.img).Output(); err == nil {
		if dev := strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0]); dev != "" {
			var st unix.Stat_t
			if unix.Stat(dev, &st) == nil {
				s.dev, s.majmin = dev, fmt.Sprintf("%d:%d", unix.Major(st.Rdev), unix.Minor(st.Rdev))
				_, err := os.Stat(rootWriteBPS)
				s.rootCap, s.bdi = err == nil, true
			}
		}
	}
	return s.remove()
}
