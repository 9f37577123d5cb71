package helpers

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// The bootstrap of a prestarted interpreter (cronium-prestart.py, the end
// of cronium-preload.js), driven here as the agent drives it (see
// agent/prestart.go), with the host's interpreters. The engine tests
// compare prestarted and fresh runs in the runtime images.

const prestartFD = 63 // agent.PrestartFD

// launchMessage is the agent's: a magic line, then the environment the
// interpreter was started with and the run's, each entry ended by a NUL
// and each list by an empty entry.
func launchMessage(given, run []string) []byte {
	b := []byte("cronium-launch\x00")
	for _, list := range [][]string{given, run} {
		for _, kv := range list {
			b = append(append(b, kv...), 0)
		}
		b = append(b, 0)
	}
	return b
}

var prestartScripts = map[string]string{
	"python": `import os, subprocess, sys
print(list(os.environ.items()))
print(subprocess.run(["env"], capture_output=True, text=True).stdout)
import time
print(sys.argv, sys.path[0], __name__, time.tzname, time.timezone)
`,
	"node": `console.log(JSON.stringify(Object.entries(process.env)));
console.log(require('child_process').execFileSync('env').toString());
console.log(process.argv.slice(1), module.paths, require.main === module, new Date(0).getTimezoneOffset(), Intl.DateTimeFormat().resolvedOptions().timeZone);
`,
}

// prestart starts lang's interpreter as the agent prepares one: the script's
// command line, env plus the marker, the launch pipe at descriptor 63.
func prestart(t *testing.T, lang, script string, env []string) (*exec.Cmd, *os.File, *bytes.Buffer) {
	t.Helper()
	if interp[lang] == "" {
		t.Fatalf("no %s on this machine", lang)
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	args := []string{script}
	if lang == "python" {
		args = []string{"-u", script}
	}
	var out bytes.Buffer
	cmd := exec.Command(interp[lang], args...)
	cmd.Dir, cmd.Stdout, cmd.Stderr = filepath.Dir(script), &out, &out
	cmd.Env = append(append([]string(nil), env...), "CRONIUM_PRESTART_FD=63")
	cmd.ExtraFiles = append(make([]*os.File, prestartFD-3), r)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r.Close()
	return cmd, w, &out
}

func baseEnv() []string {
	return []string{
		"HOME=" + os.TempDir(), "PATH=" + os.Getenv("PATH"), "PYTHONPATH=" + libDir,
		"NODE_OPTIONS=--require " + filepath.Join(libDir, "cronium-preload.js"), "NODE_PATH=" + libDir,
	}
}

// A launched interpreter runs the script in the run's environment exactly
// as a fresh start of it does. (The engine tests compare descriptors too:
// here the test process may pass its own on.)
func TestPrestartedInterpreterRunsAsAFreshStart(t *testing.T) {
	for _, lang := range []string{"python", "node"} {
		dir := t.TempDir()
		script := filepath.Join(dir, map[string]string{"python": "script.py", "node": "script.js"}[lang])
		given := baseEnv()
		run := append(baseEnv(), "MODE=prod", "CRONIUM_RUNTIME_TOKEN=abc", "EMPTY=", "UNICODE=grüße", "TZ=Europe/Berlin")
		cmd, w, out := prestart(t, lang, script, given)
		// The script is written after the interpreter started, as the agent does.
		if err := os.WriteFile(script, []byte(prestartScripts[lang]), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(launchMessage(append(given, "CRONIUM_PRESTART_FD=63"), run)); err != nil {
			t.Fatal(err)
		}
		w.Close()
		if err := cmd.Wait(); err != nil {
			t.Fatalf("%s: %v\n%s", lang, err, out)
		}
		fresh := exec.Command(cmd.Path, cmd.Args[1:]...)
		fresh.Dir, fresh.Env = dir, run
		want, err := fresh.CombinedOutput()
		if err != nil {
			t.Fatalf("%s fresh: %v\n%s", lang, err, want)
		}
		if out.String() != string(want) {
			t.Errorf("%s: the prestarted run printed\n%s\na fresh start printed\n%s", lang, out, want)
		}
		if !strings.Contains(out.String(), "MODE=prod") || !strings.Contains(out.String(), map[string]string{"python": "('CET', 'CEST') -3600", "node": "-60 Europe/Berlin"}[lang]) {
			t.Errorf("%s: the run's environment is not the script's:\n%s", lang, out)
		}
	}
}

// An interpreter whose launch pipe closes without a launch message (the
// agent discarded it, or is gone) exits 70 and never runs the script.
func TestDiscardedInterpreterExits(t *testing.T) {
	for _, lang := range []string{"python", "node"} {
		dir := t.TempDir()
		script := filepath.Join(dir, map[string]string{"python": "script.py", "node": "script.js"}[lang])
		if err := os.WriteFile(script, []byte(map[string]string{"python": "print('ran')", "node": "console.log('ran')"}[lang]), 0o644); err != nil {
			t.Fatal(err)
		}
		for _, msg := range []string{"", "not a launch", "cronium-launch\x00A=1\x00"} {
			cmd, w, out := prestart(t, lang, script, baseEnv())
			w.Write([]byte(msg))
			w.Close()
			err := cmd.Wait()
			ws, _ := cmd.ProcessState.Sys().(syscall.WaitStatus)
			if err == nil || ws.ExitStatus() != 70 || strings.Contains(out.String(), "ran") {
				t.Errorf("%s, message %q: %v (exit %d), output %q: want exit 70 and no run", lang, msg, err, ws.ExitStatus(), out)
			}
		}
	}
}
