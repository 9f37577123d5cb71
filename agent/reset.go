package agent

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// wiped are the directories a reset empties: everything a run may write.
var wiped = []string{"/tmp", "/dev/shm", "/dev/mqueue", Workspace, SecretsDir}

// reset makes an idle sandbox as fresh as a new one for its next run: every
// process but the agent is killed, and /tmp, the workspace and the secrets
// are emptied, then checked. Files the script user owns are removed by a
// child running as that user (the agent has no CAP_DAC_OVERRIDE); the
// agent removes its own. Anything left is reported, never ignored.
func (a *Agent) reset(r Reset) Clean {
	if a.pid1 {
		syscall.Kill(-1, syscall.SIGKILL)
	}
	// Wait for the kernel to take them: a process that survives is an anomaly.
	deadline := time.Now().Add(2 * time.Second)
	for a.pid1 {
		n := others()
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			return Clean{Problem: fmt.Sprintf("%d process(es) survived SIGKILL", n)}
		}
		time.Sleep(5 * time.Millisecond)
	}
	dirs, checked := wiped, []string{"/tmp", "/dev/shm", "/dev/mqueue", Workspace}
	if r.KeepWorkspace {
		dirs, checked = []string{"/tmp", "/dev/shm", "/dev/mqueue", SecretsDir}, []string{"/tmp", "/dev/shm", "/dev/mqueue"}
		removeOwn(Workspace)
	}
	for _, dir := range dirs {
		emptyDir(dir) // the agent's own files (script, input.json), which the sticky bit keeps from the script user
	}
	// The script user's files, removed and checked by the script user: the
	// agent may not even look into the secrets directory.
	if err := a.wipeAs(r, dirs); err != nil {
		return Clean{Problem: err.Error()}
	}
	for _, dir := range checked {
		if left, err := os.ReadDir(dir); err != nil && !os.IsNotExist(err) {
			return Clean{Problem: fmt.Sprintf("cannot check %s: %v", dir, err)}
		} else if len(left) > 0 {
			return Clean{Problem: fmt.Sprintf("%s still holds %s after the reset", dir, left[0].Name())}
		}
	}
	return Clean{Clean: true}
}

// keep readies a sandbox whose run failed to be kept for debugging: its
// secrets go (as a reset removes them) and its files stay; every process
// is gone already (the run's end killed them).
func (a *Agent) keep(r Reset) Clean {
	emptyDir(SecretsDir)
	if err := a.wipeAs(r, []string{SecretsDir}); err != nil {
		return Clean{Problem: err.Error()}
	}
	if left, err := os.ReadDir(SecretsDir); err == nil && len(left) > 0 {
		return Clean{Problem: fmt.Sprintf("%s still holds %s", SecretsDir, left[0].Name())}
	}
	return Clean{Clean: true}
}

// others counts the processes of the sandbox other than the agent.
func others() int {
	ents, _ := os.ReadDir("/proc")
	n := 0
	for _, e := range ents {
		if pid, err := strconv.Atoi(e.Name()); err == nil && pid != os.Getpid() {
			n++
		}
	}
	return n
}

// wipeAs runs `cronium-agent wipe DIR...` as the script user and waits for it.
func (a *Agent) wipeAs(r Reset, dirs []string) error {
	self, err := os.Executable()
	if err != nil {
		self = BinaryPath
	}
	null, err := os.Open(os.DevNull)
	if err != nil {
		return err
	}
	defer null.Close()
	a.reaper.mu.Lock()
	proc, err := os.StartProcess(self, append([]string{self, "wipe"}, dirs...), &os.ProcAttr{
		Files: []*os.File{null, os.Stderr, os.Stderr},
		Sys:   &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(r.UID), Gid: uint32(r.GID), Groups: []uint32{}}},
	})
	var exited chan syscall.WaitStatus
	if err == nil {
		exited = a.reaper.watch(proc.Pid)
	}
	a.reaper.mu.Unlock()
	if err != nil {
		return fmt.Errorf("start the wiper: %w", err)
	}
	select {
	case ws := <-exited:
		if !ws.Exited() || ws.ExitStatus() != 0 {
			return fmt.Errorf("the wiper failed: %v", ws)
		}
		return nil
	case <-time.After(10 * time.Second):
		proc.Kill()
		return fmt.Errorf("the wiper did not finish in 10s")
	}
}

// WipeMain is `cronium-agent wipe DIR...`: it empties each directory,
// without following symbolic links, then checks it is empty; it exits 1,
// naming what is left, when one is not.
func WipeMain(dirs []string) int {
	code := 0
	for _, d := range dirs {
		emptyDir(d)
		left, err := os.ReadDir(d)
		if err != nil && !os.IsNotExist(err) {
			fmt.Fprintf(os.Stderr, "cronium-agent wipe: cannot check %s: %v\n", d, err)
			code = 1
		} else if len(left) > 0 {
			fmt.Fprintf(os.Stderr, "cronium-agent wipe: %s still holds %s\n", d, left[0].Name())
			code = 1
		}
	}
	return code
}

// emptyDir removes the entries of dir. os.RemoveAll never follows symlinks.
func emptyDir(dir string) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		p := filepath.Join(dir, e.Name())
		if e.IsDir() {
			os.Chmod(p, 0o700) // a directory the script made unwritable to itself
		}
		os.RemoveAll(p)
	}
}

// removeOwn removes the regular files root owns at the top of dir: what the
// agent wrote there (the script, input.json), never the script's files.
func removeOwn(dir string) {
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		fi, err := e.Info()
		if err != nil || !fi.Mode().IsRegular() {
			continue
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Uid == 0 {
			os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}
