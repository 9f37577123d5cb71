package cronium

import (
	"encoding/json"
	"fmt"
	"math"
	"time"
)

// OutputPolicy says what happens when an execution's output passes its cap.
type OutputPolicy string

// Output policies.
const (
	// OutputTruncate drops output past the cap, writes a marker line and lets the script finish.
	OutputTruncate OutputPolicy = "truncate"
	// OutputKill ends the execution with outcome output_limit when output passes the cap.
	OutputKill OutputPolicy = "kill"
)

// Limits are the resources an execution may use. Every limit is enforced:
// by the kernel (memory, CPU, pids, tmpfs sizes, ulimits) or by the agent
// (timeout, output cap). The zero value means "use the default" for each field.
type Limits struct {
	// Memory is the hard memory limit; swap is disabled. Default 256Mi.
	Memory Size
	// MemoryReservation is the soft limit the kernel reclaims towards under
	// pressure. Default 0.8 of Memory.
	MemoryReservation Size
	// CPUs is the burst: the most CPU time per wall second (CFS quota). Default 0.5.
	CPUs float64
	// CPUGuaranteed is the baseline share under contention (CPU shares, 1024 per CPU). Default CPUs/5, at least 0.05.
	CPUGuaranteed float64
	// Pids caps the number of processes and threads in the container. Default 100.
	Pids int64
	// NoFile is the open-files ulimit. Default 1024.
	NoFile int64
	// NProc is the processes-per-user ulimit. The kernel counts it per uid
	// across the whole host: every sandbox's script user (65534) shares one
	// count, so a low value would let one tenant's processes stop another's
	// forks. The pids cgroup is the cap; this is only a backstop. Default
	// 32768, and never above the host's own limit.
	NProc int64
	// TmpSize is the size of the /tmp tmpfs. Default 100Mi, less when
	// Memory is small: see TmpfsBudget.
	TmpSize Size
	// WorkspaceSize is the size of the /workspace tmpfs. Default as TmpSize.
	WorkspaceSize Size
	// Timeout is the wall-clock limit of the script, in whole seconds end to end. Default 30s.
	Timeout time.Duration
	// Grace is how long a script has between SIGTERM and SIGKILL at timeout or cancel. Default 5s.
	Grace time.Duration
	// Output caps stdout plus stderr. Default 10Mi.
	Output Size
	// OutputPolicy says what happens past the output cap. Default truncate.
	OutputPolicy OutputPolicy
	// IOReadBPS and IOWriteBPS cap the bytes per second the script reads
	// from and writes to disk; 0: no cap. With either set, /workspace is a
	// file system on disk (not memory) that the engine throttles.
	IOReadBPS, IOWriteBPS Size
}

// MinIOBPS is the smallest disk I/O cap, in bytes per second.
const MinIOBPS Size = 64 << 10

// IOLimited reports whether the limits cap disk I/O.
func (l Limits) IOLimited() bool { return l.IOReadBPS > 0 || l.IOWriteBPS > 0 }

// MaxPids is the most processes and threads any execution may have (tiers
// cap it lower: Tier.PidsCap).
const MaxPids = 32768

// MinMemory is the smallest memory limit: the agent, the interpreter and
// the tmpfs mounts (which are memory) need it.
const MinMemory Size = 32 << 20

// defaultTmpfs is the default size of /tmp and of /workspace.
const defaultTmpfs Size = 100 << 20

// Reserve is the memory that the tmpfs mounts can never take: the agent's
// and the interpreter's floor, max(16Mi, Memory/8). With it, a script that
// fills every mount still leaves the agent room to report a truthful
// outcome.
func (l Limits) Reserve() Size { return max(16<<20, l.Memory/8) }

// ShmSize is the size of /dev/shm: Memory/16 in whole Mi, 1Mi to 64Mi.
func (l Limits) ShmSize() Size { return max(1<<20, min(64<<20, l.Memory/16)&^(1<<20-1)) }

// systemTmpfs is what the agent's own tmpfs mounts may hold (the runtime
// socket directory and the secrets, 1Mi each).
const systemTmpfs Size = 2 << 20

// TmpfsBudget is how much /tmp and /workspace may hold together. tmpfs
// pages are memory charged to the sandbox, so the mounts' sizes must add
// up to less than Memory: Memory - Reserve - ShmSize - 2Mi.
func (l Limits) TmpfsBudget() Size {
	return l.Memory - l.Reserve() - l.ShmSize() - systemTmpfs
}

// Defaults returns l with every zero field set to its default.
func (l Limits) Defaults() Limits {
	if l.Memory == 0 {
		l.Memory = 256 << 20
	}
	if l.MemoryReservation == 0 {
		l.MemoryReservation = Size(float64(l.Memory) * 0.8)
	}
	if l.CPUs == 0 {
		l.CPUs = 0.5
	}
	if l.CPUGuaranteed == 0 {
		l.CPUGuaranteed = math.Max(0.05, l.CPUs/5)
	}
	if l.Pids == 0 {
		l.Pids = 100
	}
	if l.NoFile == 0 {
		l.NoFile = 1024
	}
	if l.NProc == 0 {
		l.NProc = 32768
	}
	// Default mount sizes fit the memory: they share what the other leaves.
	mib := func(s Size) Size { return max(1<<20, s&^(1<<20-1)) }
	budget := l.TmpfsBudget()
	switch {
	case l.TmpSize == 0 && l.WorkspaceSize == 0:
		l.TmpSize = mib(min(defaultTmpfs, budget/2))
		l.WorkspaceSize = l.TmpSize
	case l.TmpSize == 0:
		l.TmpSize = mib(min(defaultTmpfs, budget-l.WorkspaceSize))
	case l.WorkspaceSize == 0:
		l.WorkspaceSize = mib(min(defaultTmpfs, budget-l.TmpSize))
	}
	if l.Timeout == 0 {
		l.Timeout = 30 * time.Second
	}
	if l.Grace == 0 {
		l.Grace = 5 * time.Second
	}
	if l.Output == 0 {
		l.Output = 10 << 20
	}
	if l.OutputPolicy == "" {
		l.OutputPolicy = OutputTruncate
	}
	return l
}

// Validate checks limits after Defaults. Errors name the field.
func (l Limits) Validate() error {
	switch {
	case l.Memory < MinMemory:
		return Invalid("memory", l.Memory.String(), "is too small: give at least "+MinMemory.String()+" (the agent, the interpreter and the tmpfs mounts need it)")
	case l.MemoryReservation > l.Memory:
		return Invalid("memory_reservation", l.MemoryReservation.String(), "is above the hard limit memory="+l.Memory.String())
	case l.CPUs < 0.01 || l.CPUs > 1024:
		return Invalid("cpus", fmt.Sprint(l.CPUs), "is out of range: want a number of CPUs between 0.01 and 1024, like 0.5 or 2")
	case l.CPUGuaranteed > l.CPUs:
		return Invalid("cpu_guaranteed", fmt.Sprint(l.CPUGuaranteed), fmt.Sprintf("is above the burst cpus=%v", l.CPUs))
	case l.Pids < 4 || l.Pids > MaxPids:
		return Invalid("pids", fmt.Sprint(l.Pids), fmt.Sprintf("is out of range: want 4 (the agent, the interpreter and a child) to %d", MaxPids))
	case l.NoFile < 16 || l.NoFile > 1<<20:
		return Invalid("nofile", fmt.Sprint(l.NoFile), "is out of range: want 16 to 1048576")
	case l.NProc < 4 || l.NProc > 1<<22:
		return Invalid("nproc", fmt.Sprint(l.NProc), "is out of range: want 4 to 4194304")
	case l.TmpSize < 1<<20:
		return Invalid("tmp_size", l.TmpSize.String(), "is too small: want at least 1Mi")
	case l.WorkspaceSize < 1<<20:
		return Invalid("workspace_size", l.WorkspaceSize.String(), "is too small: want at least 1Mi")
	case l.TmpSize > l.TmpfsBudget() || l.WorkspaceSize > l.TmpfsBudget()-l.TmpSize: // no overflow
		return Invalid("tmp_size", l.TmpSize.String(), fmt.Sprintf("plus workspace_size %s is more than memory %s leaves for files: /tmp and /workspace are memory (tmpfs) and count against the memory limit, which keeps %s for the agent and the interpreter and %s for /dev/shm; give them %s together at most, or raise memory",
			l.WorkspaceSize, l.Memory, l.Reserve(), l.ShmSize(), l.TmpfsBudget()))
	case l.Timeout < time.Second:
		return Invalid("timeout", l.Timeout.String(), "is below one second: timeouts are whole seconds, like 30s")
	case l.Timeout%time.Second != 0:
		return Invalid("timeout", l.Timeout.String(), "is not a whole number of seconds: like 30s or 2m")
	case l.Grace < 0 || l.Grace > time.Minute:
		return Invalid("grace", l.Grace.String(), "is out of range: want 0s to 1m")
	case l.Output < 1024:
		return Invalid("output", l.Output.String(), "is too small: want at least 1Ki")
	case l.OutputPolicy != OutputTruncate && l.OutputPolicy != OutputKill:
		return Invalid("output_policy", string(l.OutputPolicy), "is unknown: want truncate or kill")
	case l.IOReadBPS < 0 || (l.IOReadBPS > 0 && l.IOReadBPS < MinIOBPS):
		return Invalid("io_read", l.IOReadBPS.String(), "is too small: want at least "+MinIOBPS.String()+" per second, or 0 for no cap")
	case l.IOWriteBPS < 0 || (l.IOWriteBPS > 0 && l.IOWriteBPS < MinIOBPS):
		return Invalid("io_write", l.IOWriteBPS.String(), "is too small: want at least "+MinIOBPS.String()+" per second, or 0 for no cap")
	}
	return nil
}

// limitsJSON is the wire form of Limits: sizes in bytes, times in whole seconds.
type limitsJSON struct {
	Memory            Size         `json:"memory_bytes"`
	MemoryReservation Size         `json:"memory_reservation_bytes"`
	CPUs              float64      `json:"cpus"`
	CPUGuaranteed     float64      `json:"cpu_guaranteed"`
	Pids              int64        `json:"pids"`
	NoFile            int64        `json:"nofile"`
	NProc             int64        `json:"nproc"`
	TmpSize           Size         `json:"tmp_bytes"`
	WorkspaceSize     Size         `json:"workspace_bytes"`
	ShmSize           Size         `json:"shm_bytes,omitempty"` // derived from Memory; read-only
	TimeoutSeconds    float64      `json:"timeout_seconds"`
	GraceSeconds      float64      `json:"grace_seconds"`
	Output            Size         `json:"output_bytes"`
	OutputPolicy      OutputPolicy `json:"output_policy"`
	IOReadBPS         Size         `json:"io_read_bps,omitempty"`
	IOWriteBPS        Size         `json:"io_write_bps,omitempty"`
}

// MarshalJSON encodes sizes in bytes and times in seconds, with the unit in the field name.
func (l Limits) MarshalJSON() ([]byte, error) {
	return json.Marshal(limitsJSON{
		l.Memory, l.MemoryReservation, l.CPUs, l.CPUGuaranteed, l.Pids, l.NoFile, l.NProc,
		l.TmpSize, l.WorkspaceSize, l.ShmSize(), l.Timeout.Seconds(), l.Grace.Seconds(), l.Output, l.OutputPolicy, l.IOReadBPS, l.IOWriteBPS,
	})
}

// UnmarshalJSON decodes the form MarshalJSON writes.
func (l *Limits) UnmarshalJSON(b []byte) error {
	var j limitsJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*l = Limits{
		Memory: j.Memory, MemoryReservation: j.MemoryReservation, CPUs: j.CPUs, CPUGuaranteed: j.CPUGuaranteed,
		Pids: j.Pids, NoFile: j.NoFile, NProc: j.NProc, TmpSize: j.TmpSize, WorkspaceSize: j.WorkspaceSize,
		Timeout: time.Duration(j.TimeoutSeconds * float64(time.Second)), Grace: time.Duration(j.GraceSeconds * float64(time.Second)),
		Output: j.Output, OutputPolicy: j.OutputPolicy, IOReadBPS: j.IOReadBPS, IOWriteBPS: j.IOWriteBPS,
	}
	return nil
}
