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
	// across the whole host, so it is a backstop; Pids is the real cap. Default 4096.
	NProc int64
	// TmpSize is the size of the /tmp tmpfs. Default 100Mi.
	TmpSize Size
	// WorkspaceSize is the size of the /workspace tmpfs. Default 100Mi.
	WorkspaceSize Size
	// Timeout is the wall-clock limit of the script, in whole seconds end to end. Default 30s.
	Timeout time.Duration
	// Grace is how long a script has between SIGTERM and SIGKILL at timeout or cancel. Default 5s.
	Grace time.Duration
	// Output caps stdout plus stderr. Default 10Mi.
	Output Size
	// OutputPolicy says what happens past the output cap. Default truncate.
	OutputPolicy OutputPolicy
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
		l.NProc = 4096
	}
	if l.TmpSize == 0 {
		l.TmpSize = 100 << 20
	}
	if l.WorkspaceSize == 0 {
		l.WorkspaceSize = 100 << 20
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
	case l.Memory < 6<<20:
		return Invalid("memory", l.Memory.String(), "is below the 6Mi the engine needs: give at least 16Mi")
	case l.MemoryReservation > l.Memory:
		return Invalid("memory_reservation", l.MemoryReservation.String(), "is above the hard limit memory="+l.Memory.String())
	case l.CPUs < 0.01 || l.CPUs > 1024:
		return Invalid("cpus", fmt.Sprint(l.CPUs), "is out of range: want a number of CPUs between 0.01 and 1024, like 0.5 or 2")
	case l.CPUGuaranteed > l.CPUs:
		return Invalid("cpu_guaranteed", fmt.Sprint(l.CPUGuaranteed), fmt.Sprintf("is above the burst cpus=%v", l.CPUs))
	case l.Pids < 4:
		return Invalid("pids", fmt.Sprint(l.Pids), "is too small: want at least 4 (the agent, the interpreter and a child)")
	case l.NoFile < 16:
		return Invalid("nofile", fmt.Sprint(l.NoFile), "is too small: want at least 16")
	case l.NProc < 4:
		return Invalid("nproc", fmt.Sprint(l.NProc), "is too small: want at least 4")
	case l.TmpSize < 1<<20:
		return Invalid("tmp_size", l.TmpSize.String(), "is too small: want at least 1Mi")
	case l.WorkspaceSize < 1<<20:
		return Invalid("workspace_size", l.WorkspaceSize.String(), "is too small: want at least 1Mi")
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
	TimeoutSeconds    float64      `json:"timeout_seconds"`
	GraceSeconds      float64      `json:"grace_seconds"`
	Output            Size         `json:"output_bytes"`
	OutputPolicy      OutputPolicy `json:"output_policy"`
}

// MarshalJSON encodes sizes in bytes and times in seconds, with the unit in the field name.
func (l Limits) MarshalJSON() ([]byte, error) {
	return json.Marshal(limitsJSON{
		l.Memory, l.MemoryReservation, l.CPUs, l.CPUGuaranteed, l.Pids, l.NoFile, l.NProc,
		l.TmpSize, l.WorkspaceSize, l.Timeout.Seconds(), l.Grace.Seconds(), l.Output, l.OutputPolicy,
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
		Output: j.Output, OutputPolicy: j.OutputPolicy,
	}
	return nil
}
