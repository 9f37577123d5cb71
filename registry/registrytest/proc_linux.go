package registrytest

import "syscall"

// sysProcAttr makes the kernel kill the registry if the test process dies
// without cleaning up, so no registry outlives its test.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
