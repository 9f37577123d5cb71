package agent

import (
	"strings"
	"testing"
)

func TestEnvFits(t *testing.T) {
	prep := []string{"HOME=/workspace", "PYTHONPATH=/.cronium/lib", "NODE_OPTIONS=--require /.cronium/lib/cronium-preload.js", "CRONIUM_LANGUAGE=python", "PATH=/usr/bin:/bin"}
	run := func(extra ...string) []string {
		return append(append([]string(nil), prep...), extra...)
	}
	reversed := func() []string {
		r := run()
		for i, j := 0, len(r)-1; i < j; i, j = i+1, j-1 {
			r[i], r[j] = r[j], r[i]
		}
		return r
	}
	for _, c := range []struct {
		name string
		run  []string
		why  string // "" when it fits; else a word the reason names
	}{
		{"the same", run(), ""},
		{"per-run and user values", run("CRONIUM_RUNTIME_TOKEN=abc", "CRONIUM_EXECUTION_ID=x", "MODE=prod", "EMPTY="), ""},
		{"another order", reversed(), ""}, // the launch gives the run's order
		{"a Python variable", run("PYTHONHASHSEED=0"), "PYTHONHASHSEED"},
		{"the helpers' path joined by the user's", []string{prep[0], "PYTHONPATH=/.cronium/lib:/mine", prep[2], prep[3], prep[4]}, "PYTHONPATH"},
		{"a Node option", run("NODE_EXTRA_CA_CERTS=/ca.pem"), "NODE_EXTRA_CA_CERTS"},
		{"HOME gone", prep[1:], "HOME"},
		{"TZ, which the bootstraps set again", run("TZ=Europe/Berlin"), ""},
		{"TZDIR", run("TZDIR=/zones"), "TZDIR"},
		{"the locale", run("LC_ALL=C.UTF-8"), "LC_ALL"},
		{"LANG", run("LANG=de_DE.UTF-8"), "LANG"},
		{"the loader", run("LD_PRELOAD=/x.so"), "LD_PRELOAD"},
		{"malloc", run("MALLOC_ARENA_MAX=2"), "MALLOC_ARENA_MAX"},
		{"libuv", run("UV_THREADPOOL_SIZE=1"), "UV_THREADPOOL_SIZE"},
		{"OpenSSL", run("OPENSSL_CONF=/x"), "OPENSSL_CONF"},
		{"the bootstrap's own marker", run(PrestartEnv + "=0"), PrestartEnv},
		{"a name twice", run("MODE=a", "MODE=b"), "twice"},
		{"an entry without =", run("MODE"), "NAME=value"},
		{"an empty name", run("=x"), "NAME=value"},
		{"a NUL", run("MODE=a\x00b"), "NUL"},
	} {
		why := envFits(prep, c.run)
		switch {
		case c.why == "" && why != "":
			t.Errorf("%s: does not fit: %s", c.name, why)
		case c.why != "" && !strings.Contains(why, c.why):
			t.Errorf("%s: got %q, want a reason naming %s", c.name, why, c.why)
		}
	}
}

func TestStartupVar(t *testing.T) {
	for _, k := range []string{"PYTHONPATH", "PYTHONSTARTUP", "NODE_OPTIONS", "NODE_PATH", "HOME", "PATH", "LANG", "LANGUAGE", "LC_CTYPE", "TZDIR", "LD_LIBRARY_PATH", "GLIBC_TUNABLES", "SSL_CERT_FILE", "ICU_DATA", "LOCPATH", "FORCE_COLOR", PrestartEnv} {
		if !startupVar(k) {
			t.Errorf("%s acts at start-up", k)
		}
	}
	for _, k := range []string{"MODE", "CRONIUM_RUNTIME_TOKEN", "CRONIUM_EXECUTION_ID", "CRONIUM_TIMEOUT_SECONDS", "DEBUG", "MYPYTHON", "TMPDIR", "USER", "TZ"} {
		if startupVar(k) {
			t.Errorf("%s does not act at start-up", k)
		}
	}
}

func TestLaunchMessage(t *testing.T) {
	got := string(launchMessage([]string{"A=1", "B="}, []string{"C=3"}))
	if want := "cronium-launch\x00A=1\x00B=\x00\x00C=3\x00\x00"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if got := string(launchMessage(nil, nil)); got != "cronium-launch\x00\x00\x00" {
		t.Errorf("empty lists: %q", got)
	}
}
