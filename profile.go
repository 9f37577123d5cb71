package cronium

import "sort"

// Profile is a security profile: who the script runs as and what the
// container may do. Profiles are data; the engines translate them.
type Profile struct {
	// Name is strict, standard, trusted or compat.
	Name string `json:"name"`
	// UID and GID are the script user. The agent itself runs as root with only
	// the capabilities it needs to drop privileges and kill the script.
	UID int `json:"uid"`
	GID int `json:"gid"`
	// ReadOnlyRoot mounts the image's root file system read-only.
	ReadOnlyRoot bool `json:"read_only_root"`
	// DropCaps are capabilities removed from the container; "ALL" removes all.
	DropCaps []string `json:"drop_caps"`
	// AgentCaps are the capabilities kept for the agent (PID 1) when DropCaps is ALL.
	// They are never effective in the script, which runs as a non-root user.
	AgentCaps []string `json:"agent_caps"`
	// ScriptCaps are raised as ambient capabilities in the script itself.
	ScriptCaps []string `json:"script_caps"`
	// NoNewPrivileges stops the script gaining privileges through execve (setuid binaries, file caps).
	NoNewPrivileges bool `json:"no_new_privileges"`
	// Seccomp is "default" for the engine's default profile.
	Seccomp string `json:"seccomp"`
	// Network is the default network mode when the run does not choose one.
	Network NetworkMode `json:"network"`
}

// agentCaps are what PID 1 needs in the strict profile: drop to the script
// user (SETUID, SETGID) and signal every process of the execution (KILL).
var agentCaps = []string{"SETUID", "SETGID", "KILL"}

// Profiles is the table of security profiles, from the brainstorm: strict
// by default, standard and trusted for scripts that need more.
var profiles = map[string]Profile{
	"strict": {
		Name: "strict", UID: 65534, GID: 65534,
		ReadOnlyRoot: true, DropCaps: []string{"ALL"}, AgentCaps: agentCaps,
		NoNewPrivileges: true, Seccomp: "default", Network: NetworkNone,
	},
	"standard": {
		Name: "standard", UID: 1000, GID: 1000,
		ReadOnlyRoot: false, DropCaps: []string{"NET_ADMIN", "SYS_ADMIN"},
		NoNewPrivileges: true, Seccomp: "default", Network: NetworkNone,
	},
	// compat behaves like running the script directly, as cron jobs often
	// do, as root: root in its container (never on the host), a writable
	// root file system, the network, generous limits (the tier's most
	// memory and processes). It keeps the engine's default capabilities
	// less those that reach past the container (raw packets, device nodes,
	// the audit log, file capabilities). With audit: strict, a run says
	// what strict would have stopped.
	"compat": {
		Name: "compat", UID: 0, GID: 0,
		ReadOnlyRoot: false, DropCaps: []string{"NET_ADMIN", "SYS_ADMIN", "NET_RAW", "MKNOD", "AUDIT_WRITE", "SETFCAP"},
		NoNewPrivileges: true, Seccomp: "default", Network: NetworkFull,
	},
	"trusted": {
		Name: "trusted", UID: 1000, GID: 1000,
		ReadOnlyRoot: false, DropCaps: []string{"NET_ADMIN", "SYS_ADMIN"},
		ScriptCaps:      []string{"NET_BIND_SERVICE"},
		NoNewPrivileges: true, Seccomp: "default", Network: NetworkFull,
	},
}

// DefaultProfile is the profile used when none is named.
const DefaultProfile = "strict"

// LookupProfile returns the named profile. field names the input in the error.
func LookupProfile(field, name string) (Profile, error) {
	if name == "" {
		name = DefaultProfile
	}
	p, ok := profiles[name]
	if !ok {
		return Profile{}, Invalid(field, name, "is not a profile: want one of "+joinKeys(profiles))
	}
	return p, nil
}

// ProfileNames lists the profiles, sorted.
func ProfileNames() []string {
	names := make([]string, 0, len(profiles))
	for n := range profiles {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func joinKeys[V any](m map[string]V) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	s := ""
	for i, k := range keys {
		if i > 0 {
			s += ", "
		}
		s += k
	}
	return s
}
