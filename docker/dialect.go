package docker

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/profiles/seccomp"

	cronium "github.com/cronium/executor"
	"github.com/cronium/executor/agent"
	"github.com/cronium/executor/session"
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

// adjust changes a container's configuration for the dialect. seccomp is
// the file of Docker's default seccomp profile (see seccompProfile).
func (d dialect) adjust(cfg *container.Config, host *container.HostConfig, p cronium.Profile, seccomp string) {
	if d != podman {
		return
	}
	// Podman's own default profile lets a script unshare a user namespace
	// and, inside it, mount file systems and open netlink and packet
	// sockets: Docker's default profile, the one every sandbox gets on
	// Docker, does not. Podman takes a profile by path only.
	if p.Seccomp == "default" || p.Seccomp == "" {
		host.SecurityOpt = append(host.SecurityOpt, "seccomp="+seccomp)
	}
	// Podman adds the host's own entries to /etc/hosts: the sandbox gets
	// a file of its own, as on Docker.
	host.Mounts = append(host.Mounts, mount.Mount{Type: mount.TypeBind, Source: filepath.Join(filepath.Dir(seccomp), "hosts"), Target: "/etc/hosts", ReadOnly: true})
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
	cfg.Cmd = []string{agent.SecretsOwnerFlag + "=" + strconv.Itoa(p.UID) + ":" + strconv.Itoa(p.GID)}
}

// seccompProfile writes Docker's default seccomp profile and a plain
// /etc/hosts into dir (content-addressed, never through a link) for
// Podman, and returns the profile's path.
func seccompProfile(dir string) (string, error) {
	b, err := json.Marshal(seccomp.DefaultProfile())
	if err != nil {
		return "", fmt.Errorf("seccomp profile: %w", err)
	}
	sum := sha256.Sum256(b)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("seccomp profile: %w", err)
	}
	hosts := []byte("127.0.0.1\tlocalhost cronium\n::1\tlocalhost ip6-localhost ip6-loopback\n")
	if _, err := session.InstallFile(filepath.Join(dir, "hosts"), hosts, 0o444); err != nil {
		return "", err
	}
	return session.InstallFile(filepath.Join(dir, "docker-default-"+hex.EncodeToString(sum[:6])+".json"), b, 0o444)
}

// imageName is an image name as the rest of cronium writes it: Podman
// lists local images under localhost/, and those it tagged or committed
// under docker.io/.
func (d dialect) imageName(name string) string {
	if d != podman {
		return name
	}
	for _, p := range []string{"localhost/", "docker.io/library/", "docker.io/"} {
		if v, ok := strings.CutPrefix(name, p); ok {
			return v
		}
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
	// cgroup v1 (cgroupfs or systemd), then v2: while the container exists.
	for _, f := range []string{"/sys/fs/cgroup/memory/libpod_parent/libpod-" + id + "/memory.oom_control",
		"/sys/fs/cgroup/memory/machine.slice/libpod-" + id + ".scope/memory.oom_control",
		"/sys/fs/cgroup/machine.slice/libpod-" + id + ".scope/memory.events",
		"/sys/fs/cgroup/libpod_parent/libpod-" + id + "/memory.events"} {
		b, err := os.ReadFile(f)
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
