package agent

import (
	"fmt"
	"strconv"
	"strings"
	"syscall"
	"unsafe"
)

// SecretsOwnerFlag, as the agent's one argument ("--secrets-owner=uid:gid"),
// asks it to hand SecretsDir to that user at its start: engines that cannot
// make a tmpfs the script user's (Podman) give the agent CAP_CHOWN for that
// one chown, and the agent drops the capability at once, before anything
// else runs. An argument, not the environment: an image's ENV cannot set it.
const SecretsOwnerFlag = "--secrets-owner"

// capChown is CAP_CHOWN's number.
const capChown = 0

// OwnSecretsDir does what args (the agent's arguments) ask with
// SecretsOwnerFlag, if anything, and then drops CAP_CHOWN from every
// thread of the agent, whether the chown worked or not.
func OwnSecretsDir(args []string) error {
	if len(args) != 1 {
		return nil
	}
	v, ok := strings.CutPrefix(args[0], SecretsOwnerFlag+"=")
	if !ok {
		return fmt.Errorf("unknown argument %q", args[0])
	}
	err := chownSecrets(v)
	if derr := dropCap(capChown); derr != nil && err == nil {
		err = derr
	}
	return err
}

func chownSecrets(v string) error {
	u, g, ok := strings.Cut(v, ":")
	uid, err1 := strconv.Atoi(u)
	gid, err2 := strconv.Atoi(g)
	if !ok || err1 != nil || err2 != nil || uid < 0 || gid < 0 {
		return fmt.Errorf("%s=%q: want uid:gid", SecretsOwnerFlag, v)
	}
	var st syscall.Stat_t
	if err := syscall.Lstat(SecretsDir, &st); err != nil {
		return fmt.Errorf("secrets dir: %w", err)
	}
	if st.Mode&syscall.S_IFMT != syscall.S_IFDIR {
		return fmt.Errorf("secrets dir %s is not a directory", SecretsDir)
	}
	if err := syscall.Lchown(SecretsDir, uid, gid); err != nil {
		return fmt.Errorf("hand the secrets dir to %d:%d: %w", uid, gid, err)
	}
	return nil
}

// capHeader and capData are the kernel's capability structures (version 3).
type capHeader struct {
	version uint32
	pid     int32
}

type capData struct {
	effective, permitted, inheritable uint32
}

const capV3 = 0x20080522

// dropCap removes capability c from the effective, permitted and
// inheritable sets of every thread of the process.
func dropCap(c uint) error {
	hdr := capHeader{version: capV3}
	var data [2]capData
	if _, _, e := syscall.RawSyscall(syscall.SYS_CAPGET, uintptr(unsafe.Pointer(&hdr)), uintptr(unsafe.Pointer(&data[0])), 0); e != 0 {
		return fmt.Errorf("capget: %w", e)
	}
	mask := ^uint32(1 << (c % 32))
	i := c / 32
	data[i].effective &= mask
	data[i].permitted &= mask
	data[i].inheritable &= mask
	hdr = capHeader{version: capV3}
	if _, _, e := syscall.AllThreadsSyscall(syscall.SYS_CAPSET, uintptr(unsafe.Pointer(&hdr)), uintptr(unsafe.Pointer(&data[0])), 0); e != 0 {
		return fmt.Errorf("capset: %w", e)
	}
	return nil
}
