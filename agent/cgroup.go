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

func readKey(path, key string) int64 {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		k, v, ok := strings.Cut(s.Text(), " ")
		if ok && k == key {
			n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return n
		}
	}
	return 0
}
