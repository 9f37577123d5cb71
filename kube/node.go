package kube

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	cronium "github.com/cronium/executor"
	"github.com/cronium/executor/agent"
	"github.com/cronium/executor/session"
)

// peerPID is the process at the other end of a unix connection, as this
// host's pid namespace numbers it: the sandbox's agent.
func peerPID(c *net.UnixConn) int {
	raw, err := c.SyscallConn()
	if err != nil {
		return 0
	}
	var cred *unix.Ucred
	raw.Control(func(fd uintptr) {
		cred, err = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	})
	if err != nil || cred == nil {
		return 0
	}
	return int(cred.Pid)
}

// mountFix is one of a sandbox's writable mounts and what it must be.
type mountFix struct {
	path string
	mode uint32
	own  bool // owned by the script user
}

// enforce does, on the node, what a Pod spec cannot say, before the
// script exists (its agent is PID 1 and alone):
//   - the writable mounts (emptyDirs, which the kubelet mounts exec-able
//     and 0777) become nosuid, nodev, noexec, with Docker's modes; the
//     secrets directory becomes the script user's, 0700;
//   - /dev/termination-log, a file on the node's disk the kubelet mounts
//     writable by everyone, is taken away;
//   - the pids cap goes on the container's cgroup (Kubernetes only has a
//     node-wide per-Pod limit);
//   - nofile and nproc go on the agent, and so on every script process.
func enforce(pid int, spec cronium.Spec) error {
	l, p := spec.Limits, spec.Profile
	fixes := []mountFix{
		{"/tmp", 0o1777, false},
		{agent.Workspace, 0o1777, false},
		{"/dev/shm", 0o1777, false},
		{agent.RuntimeDir, 0o755, false},
		{agent.SecretsDir, 0o700, true},
	}
	if err := inMountNS(pid, func() error {
		for _, f := range fixes {
			if err := fixMount(f, p.UID, p.GID); err != nil {
				return err
			}
		}
		// The kubelet's termination message file: on the node's disk,
		// mode 0666. Unmounted, it is the empty root-owned file runc made.
		if err := unix.Unmount("/dev/termination-log", unix.MNT_DETACH|unix.UMOUNT_NOFOLLOW); err != nil && err != unix.EINVAL && err != unix.ENOENT {
			return fmt.Errorf("unmount /dev/termination-log: %w", err)
		}
		return nil
	}); err != nil {
		return err
	}
	if err := setPids(pid, l.Pids+agent.AgentThreads); err != nil {
		return err
	}
	for _, r := range []struct {
		res int
		v   int64
	}{{unix.RLIMIT_NOFILE, l.NoFile}, {unix.RLIMIT_NPROC, min(l.NProc, session.HostNProc())}} {
		lim := unix.Rlimit{Cur: uint64(r.v), Max: uint64(r.v)}
		if err := unix.Prlimit(pid, r.res, &lim, nil); err != nil {
			return fmt.Errorf("set rlimit %d of the agent: %w", r.res, err)
		}
	}
	return nil
}

// fixMount makes the tmpfs mounted at f.path what it must be. The path is
// opened without following any symbolic link (the image's file system
// could hold some), must be the root of a tmpfs mount, and is changed
// through its descriptor alone.
func fixMount(f mountFix, uid, gid int) error {
	fd, err := unix.Openat2(unix.AT_FDCWD, f.path, &unix.OpenHow{
		Flags:   unix.O_RDONLY | unix.O_DIRECTORY | unix.O_CLOEXEC | unix.O_NOFOLLOW,
		Resolve: unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
	})
	if err != nil {
		return fmt.Errorf("open %s: %w", f.path, err)
	}
	defer unix.Close(fd)
	var st unix.Statfs_t
	if err := unix.Fstatfs(fd, &st); err != nil || st.Type != unix.TMPFS_MAGIC {
		return fmt.Errorf("%s is not the sandbox's tmpfs (%v)", f.path, err)
	}
	var sx unix.Statx_t
	if err := unix.Statx(fd, "", unix.AT_EMPTY_PATH, unix.STATX_BASIC_STATS, &sx); err != nil || sx.Attributes_mask&unix.STATX_ATTR_MOUNT_ROOT == 0 || sx.Attributes&unix.STATX_ATTR_MOUNT_ROOT == 0 {
		return fmt.Errorf("%s is not a mount of its own (%v)", f.path, err)
	}
	attr := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_NOEXEC | unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV}
	if err := unix.MountSetattr(fd, "", unix.AT_EMPTY_PATH, &attr); err != nil {
		return fmt.Errorf("make %s noexec: %w", f.path, err)
	}
	if f.own {
		if err := unix.Fchown(fd, uid, gid); err != nil {
			return fmt.Errorf("chown %s: %w", f.path, err)
		}
	}
	if err := unix.Fchmod(fd, f.mode); err != nil {
		return fmt.Errorf("chmod %s: %w", f.path, err)
	}
	return nil
}

// agentOf checks that pid is the agent of the Pod whose UID is podUID: in
// that Pod's cgroup, and in namespaces other than this process's. A pid
// the agent left (it died) and the node reused is refused.
func agentOf(pid int, podUID string) error {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		return fmt.Errorf("read the agent's cgroup: %w", err)
	}
	under := strings.ReplaceAll(podUID, "-", "_") // the systemd cgroup driver's spelling
	if podUID == "" || (!strings.Contains(string(b), "pod"+podUID) && !strings.Contains(string(b), "pod"+under)) {
		return fmt.Errorf("process %d is not in the cgroup of Pod %s", pid, podUID)
	}
	for _, ns := range []string{"mnt", "net", "pid"} {
		mine, err1 := os.Stat("/proc/self/ns/" + ns)
		theirs, err2 := os.Stat(fmt.Sprintf("/proc/%d/ns/%s", pid, ns))
		if err1 != nil || err2 != nil {
			return fmt.Errorf("compare %s namespaces: %v %v", ns, err1, err2)
		}
		if os.SameFile(mine, theirs) {
			return fmt.Errorf("process %d shares this host's %s namespace: it is not a sandbox's agent", pid, ns)
		}
	}
	return nil
}

// inMountNS runs f on a thread of its own inside the mount namespace of
// process pid. The thread is never given back to the Go runtime: it ends
// with f's goroutine.
func inMountNS(pid int, f func() error) error {
	errc := make(chan error, 1)
	go func() { // ends when f returns; its locked thread exits with it
		runtime.LockOSThread()
		fd, err := unix.Open(fmt.Sprintf("/proc/%d/ns/mnt", pid), unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- fmt.Errorf("open the sandbox's mount namespace: %w", err)
			return
		}
		defer unix.Close(fd)
		// setns(CLONE_NEWNS) refuses a thread sharing its file system
		// attributes, as Go's threads do.
		if err := unix.Unshare(unix.CLONE_FS); err != nil {
			errc <- fmt.Errorf("unshare fs: %w", err)
			return
		}
		if err := unix.Setns(fd, unix.CLONE_NEWNS); err != nil {
			errc <- fmt.Errorf("enter the sandbox's mount namespace: %w", err)
			return
		}
		errc <- f()
	}()
	return <-errc
}

// setPids sets pids.max of process pid's pids cgroup (cgroup v1 or v2).
func setPids(pid int, max int64) error {
	f, err := os.Open(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		return fmt.Errorf("read the agent's cgroup: %w", err)
	}
	defer f.Close()
	var v1, v2 string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		for _, c := range strings.Split(parts[1], ",") {
			if c == "pids" {
				v1 = parts[2]
			}
		}
		if parts[0] == "0" && parts[1] == "" {
			v2 = parts[2]
		}
	}
	var file string
	switch {
	case v1 != "":
		file = filepath.Join("/sys/fs/cgroup/pids", v1, "pids.max")
	case v2 != "":
		file = filepath.Join("/sys/fs/cgroup", v2, "pids.max")
	default:
		return fmt.Errorf("the agent (pid %d) is in no pids cgroup", pid)
	}
	if v1 == "/" || (v1 == "" && v2 == "/") {
		return fmt.Errorf("the agent (pid %d) is in the root cgroup", pid)
	}
	if err := os.WriteFile(file, []byte(strconv.FormatInt(max, 10)), 0); err != nil {
		return fmt.Errorf("set the sandbox's pids cap: %w", err)
	}
	return nil
}

// isolate removes every interface but lo from the network namespace at
// path: the Pod's CNI link. A networked sandbox then gets cronium's
// guarded link, as on Docker.
func isolate(path string) error {
	ns, err := netns.GetFromPath(path)
	if err != nil {
		return fmt.Errorf("network namespace %s: %w", path, err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return fmt.Errorf("netlink in %s: %w", path, err)
	}
	defer h.Close()
	links, err := h.LinkList()
	if err != nil {
		return fmt.Errorf("list the Pod's interfaces: %w", err)
	}
	for _, l := range links {
		if l.Attrs().Flags&net.FlagLoopback != 0 {
			continue
		}
		if err := h.LinkDel(l); err != nil {
			return fmt.Errorf("remove the Pod's interface %s: %w", l.Attrs().Name, err)
		}
	}
	return nil
}
