package agent

import (
	"bufio"
	"os"
	"strconv"
	"strings"
)

// cgroup reads the sandbox's own cgroup, v2 or v1, as mounted by the engine
// at /sys/fs/cgroup. Missing files read as zero.
type cgroup struct {
	v2 bool
}

func detectCgroup() cgroup {
	_, err := os.Stat("/sys/fs/cgroup/cgroup.controllers")
	return cgroup{v2: err == nil}
}

func (c cgroup) oomKills() int64 {
	if c.v2 {
		return readKey("/sys/fs/cgroup/memory.events", "oom_kill")
	}
	return readKey("/sys/fs/cgroup/memory/memory.oom_control", "oom_kill")
}

func (c cgroup) peakMemory() int64 {
	if c.v2 {
		return readInt("/sys/fs/cgroup/memory.peak")
	}
	return readInt("/sys/fs/cgroup/memory/memory.max_usage_in_bytes")
}

func readInt(path string) int64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	n, _ := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	return n
}

// readKey reads the number after key in a "key value" file. With field
// set, key is the field-th space-separated word of a line (blkio's "MAJ:MIN
// Read N" lines) and the values of every such line are summed.
func readKey(path, key string, field ...int) int64 {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	var sum int64
	for s.Scan() {
		words := strings.Fields(s.Text())
		if len(field) > 0 {
			i := field[0]
			if len(words) == i+2 && words[i] == key {
				n, _ := strconv.ParseInt(words[i+1], 10, 64)
				sum += n
			}
			continue
		}
		if len(words) == 2 && words[0] == key {
			n, _ := strconv.ParseInt(words[1], 10, 64)
			return n
		}
	}
	return sum
}

// counters are the sandbox's cumulative cgroup counters at one moment.
type counters struct {
	cpuNS, ioRead, ioWrite, throttledNS int64
}

func (c cgroup) counters() counters {
	if c.v2 {
		r, w := ioStatV2("/sys/fs/cgroup/io.stat")
		return counters{cpuNS: readKey("/sys/fs/cgroup/cpu.stat", "usage_usec") * 1000, ioRead: r, ioWrite: w,
			throttledNS: readKey("/sys/fs/cgroup/cpu.stat", "throttled_usec") * 1000}
	}
	return counters{cpuNS: readInt("/sys/fs/cgroup/cpuacct/cpuacct.usage"),
		ioRead:      readKey("/sys/fs/cgroup/blkio/blkio.throttle.io_service_bytes_recursive", "Read", 1),
		ioWrite:     readKey("/sys/fs/cgroup/blkio/blkio.throttle.io_service_bytes_recursive", "Write", 1),
		throttledNS: readKey("/sys/fs/cgroup/cpu/cpu.stat", "throttled_time")}
}

// sample is the usage since base.
func (c cgroup) sample(base counters) Sample {
	now := c.counters()
	s := Sample{CPUNS: now.cpuNS - base.cpuNS, IORead: now.ioRead - base.ioRead, IOWrite: now.ioWrite - base.ioWrite,
		ThrottledNS: now.throttledNS - base.throttledNS, PeakMemory: c.peakMemory()}
	if c.v2 {
		s.Memory, s.Pids = readInt("/sys/fs/cgroup/memory.current"), readInt("/sys/fs/cgroup/pids.current")
	} else {
		s.Memory, s.Pids = readInt("/sys/fs/cgroup/memory/memory.usage_in_bytes"), readInt("/sys/fs/cgroup/pids/pids.current")
	}
	return s
}

// pidsPeak is the most processes and threads the sandbox had at once (0 if unknown).
func (c cgroup) pidsPeak() int64 {
	if c.v2 {
		return readInt("/sys/fs/cgroup/pids.peak")
	}
	return readInt("/sys/fs/cgroup/pids/pids.peak")
}

// ioStatV2 sums rbytes and wbytes over the devices of a v2 io.stat.
func ioStatV2(path string) (r, w int64) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		for _, f := range strings.Fields(line) {
			if v, ok := strings.CutPrefix(f, "rbytes="); ok {
				n, _ := strconv.ParseInt(v, 10, 64)
				r += n
			} else if v, ok := strings.CutPrefix(f, "wbytes="); ok {
				n, _ := strconv.ParseInt(v, 10, 64)
				w += n
			}
		}
	}
	return r, w
}

// selfIO reads the agent's own read_bytes and write_bytes, which count its
// reaped children's too (less the writes they cancelled by truncating).
func selfIO() (read, write int64) {
	read = readKey("/proc/self/io", "read_bytes:")
	write = readKey("/proc/self/io", "write_bytes:") - readKey("/proc/self/io", "cancelled_write_bytes:")
	return read, write
}
