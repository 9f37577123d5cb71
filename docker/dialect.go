package docker

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/moby/moby/api/types/container"

	cronium "github.com/cronium/executor"
	"github.com/cronium/executor/agent"
)

// dialect is which engine answers the Docker API: Docker itself, or
// Podman through its Docker-compatible service. What Podman does
// differently is handled here, and only here (docs/research/podman-4.3.md).
type dialect uint8

const (
	dockerEngine dialect = iota
	podman
)

func (d dialect) name() string {
	if d == podman {
		return "podman"
	}
	return "docker"
}

// secretsTmpfs are the options of the secrets tmpfs. Docker makes it the
// script user's own. Podman refuses uid= and gid= on a tmpfs: it is made
// root's with mode 0700, and the agent (given CAP_CHOWN for that, see
// adjust) hands it to the script user at its start, then drops the
// capability before anything else runs.
func (d dialect) secretsTmpfs(p cronium.Profile) string {
	if d == podman {
		return "rw,nosuid,nodev,noexec,size=1m,mode=0700"
	}
	return fmt.Sprintf("rw,nosuid,nodev,noexec,size=1m,mode=0700,uid=%d,gid=%d", p.UID, p.GID)
}

// adjust changes a container's configuration for the dialect.
func (d dialect) adjust(cfg *container.Config, host *container.HostConfig, p cronium.Profile) {
	if d != podman {
		return
	}
	// Podman's read-only root has writable, exec-able tmpfs at /run and
	// /var/tmp of its own: ours replace them, like Docker's read-only root.
	if host.ReadonlyRootfs {
		host.Tmpfs["/run"] = "rw,nosuid,nodev,noexec,size=1m,mode=0755,notmpcopyup"
		host.Tmpfs["/var/tmp"] = "ro,nosuid,nodev,noexec,size=4k,mode=0755,notmpcopyup"
	}
	for k, v := range host.Tmpfs {
		if !strings.Contains(v, "tmpcopyup") {
			host.Tmpfs[k] = v + ",notmpcopyup" // Docker does not copy the image's files into a tmpfs
		}
	}
	host.CapAdd = append(append([]string(nil), host.CapAdd...), "CHOWN")
	cfg.Env = append(cfg.Env, agent.EnvSecretsOwner+"="+strconv.Itoa(p.UID)+":"+strconv.Itoa(p.GID))
}

// imageName is an image name as the rest of cronium writes it: Podman
// lists local images under localhost/.
func (d dialect) imageName(name string) string {
	if d == podman {
		return strings.TrimPrefix(name, "localhost/")
	}
	return name
}

// oomKilled says whether a stopped container whose engine did not say
// OOMKilled was killed for memory anyway. Podman 4.3 never says so
// (containers/podman#13102): a SIGKILL exit (137) whose memory cgroup
// counted an OOM kill is one. Docker says so itself.
func (d dialect) oomKilled(id string, exitCode int) bool {
	if d != podman || exitCode != 137 {
		return false
	}
	for _, dir := range []string{"/sys/fs/cgroup/memory/libpod_parent/libpod-" + id, "/sys/fs/cgroup/memory/machine.slice/libpod-" + id + ".scope"} {
		b, err := os.ReadFile(dir + "/memory.oom_control")
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if n, ok := strings.CutPrefix(line, "oom_kill "); ok && n != "0" {
				return true
			}
		}
	}
	return false
}
