package helpers

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// The tests run real scripts through real interpreters against a fake
// runtime API server, with the helpers installed by Install and the agent's
// client built from testdata/agentclient (agent.ClientMain).

const (
	testToken    = "tok-3f9a"
	badTokenText = "invalid runtime token: each execution has its own, in CRONIUM_RUNTIME_TOKEN"
	eventJSON    = `{"id":42,"name":"nightly-report","type":"python","runLocation":"local","successCount":7,"failureCount":1,"executionId":"exec-1","trigger":"schedule","scheduledAt":"2025-01-01T02:30:00Z","attempt":1,"limits":{"memory":268435456,"timeout_seconds":120}}`
)

var (
	libDir   string // helpers installed by Install
	agentBin string // the runtime API client
	interp   = map[string]string{}
)

func TestMain(m *testing.M) {
	os.Exit(func() int {
		tmp, err := os.MkdirTemp("", "cronium-helpers-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(tmp)
		if libDir, err = Install(filepath.Join(tmp, "lib")); err != nil {
			fmt.Fprintln(os.Stderr, "install:", err)
			return 1
		}
		goBin, err := exec.LookPath("go")
		if err != nil {
			goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
		}
		agentBin = filepath.Join(tmp, "agent")
		if out, err := exec.Command(goBin, "build", "-o", agentBin, "./testdata/agentclient").CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "build agent client: %v\n%s", err, out)
			return 1
		}
		if p, err := exec.LookPath("bash"); err == nil {
			interp["bash"] = p
		}
		if p, err := exec.LookPath("node"); err == nil {
			interp["node"] = p
		}
		// The real python, not a pyenv shim (a bash script that BASH_ENV would also load).
		if out, err := exec.Command("python3", "-c", "import sys; print(sys.executable)").Output(); err == nil {
			interp["python"] = strings.TrimSpace(string(out))
		}
		return m.Run()
	}())
}

// fakeAPI implements the runtime API protocol with an in-memory store.
type fakeAPI struct {
	sock  string
	input string
	fail  map[string]string // op -> error message to reply with

	mu     sync.Mutex
	vars   map[string]json.RawMessage
	output json.RawMessage
	cond   bool
	calls  []string // "op key value" of every call with the right token
}

// newFakeAPI starts a server; setup runs before it serves.
func newFakeAPI(t *testing.T, setup ...func(*fakeAPI)) *fakeAPI {
	dir, err := os.MkdirTemp("", "crn") // short: unix socket paths are limited to 108 bytes
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeAPI{sock: filepath.Join(dir, "api.sock"), input: `{"name": "Cronium", "n": 2}`, vars: map[string]json.RawMessage{}}
	for _, fn := range setup {
		fn(f)
	}
	ln, err := net.Listen("unix", f.sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close(); os.RemoveAll(dir) })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go f.serve(c)
		}
	}()
	return f
}

type reply struct {
	OK    bool            `json:"ok"`
	Value json.RawMessage `json:"value,omitempty"`
	Error string          `json:"error,omitempty"`
}

func (f *fakeAPI) serve(c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	line, _ := bufio.NewReader(c).ReadBytes('\n')
	rep := f.handle(line)
	b, _ := json.Marshal(rep)
	c.Write(append(b, '\n'))
}

func (f *fakeAPI) handle(line []byte) reply {
	var q struct {
		Token string          `json:"token"`
		Op    string          `json:"op"`
		Key   *string         `json:"key"`
		Value json.RawMessage `json:"value"`
	}
	if err := json.Unmarshal(line, &q); err != nil {
		return reply{Error: "request is not JSON: " + err.Error()}
	}
	if q.Token != testToken {
		return reply{Error: badTokenText}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	key := ""
	if q.Key != nil {
		key = *q.Key
	}
	call := q.Op
	for _, s := range []string{key, compact(q.Value)} {
		if s != "" {
			call += " " + s
		}
	}
	f.calls = append(f.calls, call)
	if msg := f.fail[q.Op]; msg != "" {
		return reply{Error: msg}
	}
	ok := func(v any) reply {
		b, _ := json.Marshal(v)
		return reply{OK: true, Value: b}
	}
	needKey := q.Op == "getVariable" || q.Op == "setVariable" || q.Op == "deleteVariable" || q.Op == "increment"
	if needKey && key == "" {
		return reply{Error: q.Op + " needs a key"}
	}
	switch q.Op {
	case "input":
		return reply{OK: true, Value: json.RawMessage(f.input)}
	case "event":
		return reply{OK: true, Value: json.RawMessage(eventJSON)}
	case "output":
		if q.Value == nil {
			return reply{Error: "output needs a value"}
		}
		f.output = q.Value
		return reply{OK: true}
	case "getVariable":
		return reply{OK: true, Value: f.vars[key]}
	case "setVariable":
		if q.Value == nil {
			return reply{Error: "setVariable needs a value"}
		}
		f.vars[key] = q.Value
		return reply{OK: true}
	case "deleteVariable":
		delete(f.vars, key)
		return reply{OK: true}
	case "listVariables":
		return ok(f.vars)
	case "increment":
		var cur, by float64 = 0, 1
		if v, set := f.vars[key]; set && json.Unmarshal(v, &cur) != nil {
			return reply{Error: "variable " + key + " is not a number"}
		}
		if q.Value != nil && json.Unmarshal(q.Value, &by) != nil {
			return reply{Error: "increment needs a number"}
		}
		b, _ := json.Marshal(cur + by)
		f.vars[key] = b
		return reply{OK: true, Value: b}
	case "setCondition":
		if json.Unmarshal(q.Value, &f.cond) != nil {
			return reply{Error: "setCondition needs true or false"}
		}
		return reply{OK: true}
	case "getCondition":
		return ok(f.cond)
	}
	return reply{Error: fmt.Sprintf("unknown op %q", q.Op)}
}

func compact(v json.RawMessage) string {
	var b bytes.Buffer
	if json.Compact(&b, v) != nil {
		return string(v)
	}
	return b.String()
}

func (f *fakeAPI) state() (calls []string, output string, vars map[string]string, cond bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	vars = map[string]string{}
	for k, v := range f.vars {
		vars[k] = compact(v)
	}
	return append([]string(nil), f.calls...), compact(f.output), vars, f.cond
}

// scriptEnv is the environment a sandbox gives a script, pointed at f.
func scriptEnv(f *fakeAPI, lib string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(k, "CRONIUM_"), strings.HasPrefix(k, "PYTHON"), strings.HasPrefix(k, "NODE_"),
			k == "BASH_ENV", k == "ENV":
			continue
		}
		env = append(env, kv)
	}
	env = append(env, Env(lib)...)
	return append(env, "CRONIUM_API_SOCKET="+f.sock, "CRONIUM_RUNTIME_TOKEN="+testToken, "CRONIUM_AGENT_BIN="+agentBin)
}

type result struct {
	stdout, stderr string
	code           int
}

func runCmd(t *testing.T, env []string, stdin string, name string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env, cmd.Dir, cmd.Stdin = env, t.TempDir(), strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run %s: %v", name, err)
	}
	return result{out.String(), errb.String(), code}
}

var extension = map[string]string{"bash": ".sh", "python": ".py", "node": ".js"}

// runScript runs script with lang's interpreter the way a sandbox does: no
// import, require or source line is added. extra overrides the environment.
func runScript(t *testing.T, f *fakeAPI, lang, script string, extra ...string) result {
	t.Helper()
	bin := interp[lang]
	if bin == "" {
		t.Fatalf("%s is not installed on this host: the helper tests need bash, python3 and node (make test installs what is missing)", lang)
	}
	file := filepath.Join(t.TempDir(), "script"+extension[lang])
	if err := os.WriteFile(file, []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	return runCmd(t, append(scriptEnv(f, libDir), extra...), "", bin, file)
}

func wantOut(t *testing.T, r result, want string) {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	if got := strings.TrimSpace(r.stdout); got != strings.TrimSpace(want) {
		t.Errorf("stdout:\n%s\nwant:\n%s\nstderr:\n%s", got, strings.TrimSpace(want), r.stderr)
	}
}

func wantCalls(t *testing.T, f *fakeAPI, want ...string) {
	t.Helper()
	calls, _, _, _ := f.state()
	if !reflect.DeepEqual(calls, want) {
		t.Errorf("server saw:\n  %s\nwant:\n  %s", strings.Join(calls, "\n  "), strings.Join(want, "\n  "))
	}
}

func TestFilesHashEnv(t *testing.T) {
	files := Files()
	for _, name := range []string{"cronium.sh", "cronium.py", "sitecustomize.py", "cronium.js", "cronium-preload.js"} {
		if len(files[name]) == 0 {
			t.Errorf("Files() has no %s", name)
		}
	}
	files["cronium.sh"][0] = 'X' // the caller's copy
	if Files()["cronium.sh"][0] == 'X' {
		t.Error("Files() shares its buffers")
	}
	if h := Hash(); len(h) != 12 || h != Hash() {
		t.Errorf("Hash() = %q", h)
	}
	want := []string{
		"BASH_ENV=/.cronium/lib/cronium.sh",
		"PYTHONPATH=/.cronium/lib",
		"NODE_OPTIONS=--require /.cronium/lib/cronium-preload.js",
		"NODE_PATH=/.cronium/lib",
	}
	if got := Env("/.cronium/lib"); !reflect.DeepEqual(got, want) {
		t.Errorf("Env = %q, want %q", got, want)
	}
	if got := Env("/a b")[2]; got != `NODE_OPTIONS=--require "/a b/cronium-preload.js"` {
		t.Errorf("Env with a space: %s", got)
	}
}

func TestInstall(t *testing.T) {
	parent := filepath.Join(t.TempDir(), "state", "lib")
	dir, err := Install(parent)
	if err != nil {
		t.Fatal(err)
	}
	if dir != filepath.Join(parent, "helpers-"+Hash()) {
		t.Errorf("Install = %s", dir)
	}
	check := func() {
		t.Helper()
		fi, err := os.Lstat(dir)
		if err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o755 {
			t.Fatalf("dir: %v %v", fi, err)
		}
		for name, want := range Files() {
			p := filepath.Join(dir, name)
			fi, err := os.Lstat(p)
			if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o444 {
				t.Errorf("%s: %v %v", name, fi, err)
				continue
			}
			if got, _ := os.ReadFile(p); !bytes.Equal(got, want) {
				t.Errorf("%s differs", name)
			}
		}
		if ents, _ := os.ReadDir(parent); len(ents) != 1 {
			t.Errorf("parent holds %d entries (temporary directories left?)", len(ents))
		}
	}
	check()

	// Reused as it is.
	stamp := time.Unix(1e9, 0)
	os.Chtimes(dir, stamp, stamp)
	if again, err := Install(parent); err != nil || again != dir {
		t.Fatalf("second Install = %s, %v", again, err)
	}
	if fi, _ := os.Stat(dir); !fi.ModTime().Equal(stamp) {
		t.Error("an intact install was rewritten")
	}

	// A tampered install is replaced.
	os.Chmod(filepath.Join(dir, "cronium.py"), 0o644)
	os.WriteFile(filepath.Join(dir, "cronium.py"), []byte("evil"), 0o644)
	if _, err := Install(parent); err != nil {
		t.Fatal(err)
	}
	check()

	// A symlink planted in its place is not followed.
	os.RemoveAll(dir)
	target := t.TempDir()
	if err := os.Symlink(target, dir); err != nil {
		t.Fatal(err)
	}
	if _, err := Install(parent); err != nil {
		t.Fatal(err)
	}
	check()
	if ents, _ := os.ReadDir(target); len(ents) != 0 {
		t.Errorf("Install wrote through a symlink: %d entries", len(ents))
	}
}

func TestBash(t *testing.T) {
	f := newFakeAPI(t)
	r := runScript(t, f, "bash", `
echo "input=$(cronium_input)"
cronium_setVariable greeting 'hi "there" $HOME \n'
echo "greeting=$(cronium_getVariable greeting)"
cronium_setVariable --json cfg '{"a": [1, 2]}'
echo "cfg=$(cronium_getVariable cfg)"
echo "missing=[$(cronium_getVariable nope)]"
echo "n=$(cronium_increment counter) $(cronium_increment counter 5) $(cronium_increment counter -2.5)"
cronium_deleteVariable cfg
echo "list=$(cronium_listVariables)"
echo "cond=$(cronium_getCondition)"
cronium_setCondition true
echo "cond=$(cronium_getCondition)"
echo "event=$(cronium_event)"
out=$(cronium_setVariable quiet --json); echo "set prints [$out], status $?"
bash -c 'echo "child=$(cronium_getVariable quiet)"'
cronium_output '{"done": true, "count": 2}'
`)
	wantOut(t, r, `
input={"name":"Cronium","n":2}
greeting=hi "there" $HOME \n
cfg={"a":[1,2]}
missing=[]
n=1 6 3.5
list={"counter":3.5,"greeting":"hi \"there\" $HOME \\n"}
cond=false
cond=true
event=`+eventJSON+`
set prints [], status 0
child=--json
`)
	wantCalls(t, f,
		"input",
		`setVariable greeting "hi \"there\" $HOME \\n"`,
		"getVariable greeting",
		`setVariable cfg {"a":[1,2]}`,
		"getVariable cfg",
		"getVariable nope",
		"increment counter 1", "increment counter 5", "increment counter -2.5",
		"deleteVariable cfg",
		"listVariables",
		"getCondition", "setCondition true", "getCondition",
		"event",
		`setVariable quiet "--json"`,
		"getVariable quiet",
		`output {"done":true,"count":2}`,
	)
	if _, out, _, cond := f.state(); out != `{"done":true,"count":2}` || !cond {
		t.Errorf("output %s, condition %v", out, cond)
	}
}

func TestBashUsageErrors(t *testing.T) {
	f := newFakeAPI(t)
	r := runScript(t, f, "bash", `
cronium_setCondition maybe; echo "setCondition maybe: $?"
cronium_setVariable onlykey; echo "setVariable onlykey: $?"
cronium_setVariable --json k '{bad'; echo "setVariable --json bad: $?"
cronium_increment k lots; echo "increment lots: $?"
cronium_getVariable; echo "getVariable: $?"
`)
	wantOut(t, r, `
setCondition maybe: 2
setVariable onlykey: 2
setVariable --json bad: 2
increment lots: 2
getVariable: 2
`)
	for _, msg := range []string{
		"cronium: setCondition expects true or false, got \"maybe\"",
		"cronium: setVariable expects KEY VALUE, got 1 argument(s)",
		"cronium: setVariable: --json value is not valid JSON",
		"cronium: increment: BY must be a number, got \"lots\"",
		"cronium: getVariable expects KEY, got 0 argument(s)",
	} {
		if !strings.Contains(r.stderr, msg) {
			t.Errorf("stderr lacks %q:\n%s", msg, r.stderr)
		}
	}
	wantCalls(t, f) // nothing reached the server
}

// BASH_ENV must print nothing, change no option, survive being sourced again,
// and reach child bash processes.
func TestBashEnvIsQuiet(t *testing.T) {
	if interp["bash"] == "" {
		t.Fatal("bash is not installed on this host")
	}
	f := newFakeAPI(t)
	probe := `echo "$-"; shopt -p; set -o; trap -p`
	env := scriptEnv(f, libDir)
	var plain []string
	for _, kv := range env {
		if !strings.HasPrefix(kv, "BASH_ENV=") {
			plain = append(plain, kv)
		}
	}
	with := runCmd(t, env, "", "bash", "-c", `. "$BASH_ENV"; . "$BASH_ENV"; `+probe)
	without := runCmd(t, plain, "", "bash", "-c", probe)
	if with.stdout != without.stdout || with.stderr != "" || with.code != 0 {
		t.Errorf("sourcing changed the shell:\nwith:\n%s%s\nwithout:\n%s", with.stdout, with.stderr, without.stdout)
	}
	r := runCmd(t, env, "", "bash", "-c", `set -eu; bash -c 'cronium_setCondition true && cronium_getCondition'; declare -F | grep -c ' cronium_'`)
	wantOut(t, r, "true\n10")
}

func TestPython(t *testing.T) {
	f := newFakeAPI(t)
	r := runScript(t, f, "python", `
import json
print("input", json.dumps(cronium.input(), sort_keys=True))
cronium.setVariable("greeting", "hi")
cronium.setVariable("cfg", {"a": [1, 2]})
print("greeting", cronium.getVariable("greeting"))
print("cfg", cronium.getVariable("cfg"))
print("missing", cronium.getVariable("nope"))
print("n", cronium.increment("counter"), cronium.increment("counter", 5), cronium.increment("counter", by=-2.5))
cronium.deleteVariable("cfg")
print("list", json.dumps(cronium.listVariables(), sort_keys=True))
print("cond", cronium.getCondition())
cronium.setCondition(True)
print("cond", cronium.getCondition())
try:
    cronium.setCondition("yes")
except TypeError as e:
    print("TypeError", e)
ev = cronium.event()
print("event", ev["name"], ev["executionId"], ev["attempt"], ev["limits"]["timeout_seconds"])
cronium.output({"done": True, "count": 2})
print("builtin input is intact:", input.__module__)
`)
	wantOut(t, r, `
input {"n": 2, "name": "Cronium"}
greeting hi
cfg {'a': [1, 2]}
missing None
n 1 6 3.5
list {"counter": 3.5, "greeting": "hi"}
cond False
cond True
TypeError cronium: setCondition needs a bool, not str
event nightly-report exec-1 1 120
builtin input is intact: builtins
`)
	wantCalls(t, f,
		"input",
		`setVariable greeting "hi"`,
		`setVariable cfg {"a":[1,2]}`,
		"getVariable greeting", "getVariable cfg", "getVariable nope",
		"increment counter 1", "increment counter 5", "increment counter -2.5",
		"deleteVariable cfg",
		"listVariables",
		"getCondition", "setCondition true", "getCondition",
		"event",
		`output {"done":true,"count":2}`,
	)
}

func TestPythonImport(t *testing.T) {
	f := newFakeAPI(t)
	r := runScript(t, f, "python", `
import builtins
import cronium
from cronium import get_variable, set_variable, delete_variable, list_variables, set_condition, get_condition
print("same module:", builtins.cronium is cronium)
set_variable("a", 1)
set_variable("b", "two")
print(get_variable("a"), get_variable("b"))
delete_variable("a")
print(list_variables())
set_condition(False)
print(get_condition())
print(issubclass(cronium.CroniumError, Exception))
`)
	wantOut(t, r, `
same module: True
1 two
{'b': 'two'}
False
True
`)
	wantCalls(t, f, "setVariable a 1", `setVariable b "two"`, "getVariable a", "getVariable b",
		"deleteVariable a", "listVariables", "setCondition false", "getCondition")
}

func TestNode(t *testing.T) {
	f := newFakeAPI(t)
	r := runScript(t, f, "node", `
console.log('input', JSON.stringify(cronium.input()));
cronium.setVariable('greeting', 'hi');
cronium.setVariable('cfg', { a: [1, 2] });
console.log('greeting', cronium.getVariable('greeting'));
console.log('cfg', JSON.stringify(cronium.getVariable('cfg')));
console.log('missing', cronium.getVariable('nope'));
console.log('n', cronium.increment('counter'), cronium.increment('counter', 5), cronium.increment('counter', -2.5));
cronium.deleteVariable('cfg');
console.log('list', JSON.stringify(cronium.listVariables()));
console.log('cond', cronium.getCondition());
cronium.setCondition(true);
console.log('cond', cronium.getCondition());
try { cronium.setCondition('yes'); } catch (e) { console.log(e.name, e.message); }
const e = cronium.event();
console.log('event', e.name, e.executionId, e.attempt, e.limits.timeout_seconds);
(async () => {
  const again = await cronium.event();
  console.log('awaited', again.name);
  cronium.output({ done: true, count: 2 });
})();
`)
	wantOut(t, r, `
input {"name":"Cronium","n":2}
greeting hi
cfg {"a":[1,2]}
missing null
n 1 6 3.5
list {"counter":3.5,"greeting":"hi"}
cond false
cond true
TypeError cronium: setCondition needs a boolean, not string
event nightly-report exec-1 1 120
awaited nightly-report
`)
	wantCalls(t, f,
		"input",
		`setVariable greeting "hi"`,
		`setVariable cfg {"a":[1,2]}`,
		"getVariable greeting", "getVariable cfg", "getVariable nope",
		"increment counter 1", "increment counter 5", "increment counter -2.5",
		"deleteVariable cfg",
		"listVariables",
		"getCondition", "setCondition true", "getCondition",
		"event", "event",
		`output {"done":true,"count":2}`,
	)
}

func TestNodeRequire(t *testing.T) {
	f := newFakeAPI(t)
	r := runScript(t, f, "node", `
const c = require('cronium');
console.log('same module:', c === globalThis.cronium);
c.setVariable('a', 1);
console.log(c.getVariable('a'), c.increment('a', 2));
console.log(new c.CroniumError('x') instanceof Error);
`)
	wantOut(t, r, "same module: true\n1 3\ntrue")
	wantCalls(t, f, "setVariable a 1", "getVariable a", "increment a 2")
}

// The helpers also load from a directory whose path has a space (NODE_OPTIONS quoting).
func TestPathWithSpace(t *testing.T) {
	lib, err := Install(filepath.Join(t.TempDir(), "with space"))
	if err != nil {
		t.Fatal(err)
	}
	f := newFakeAPI(t)
	for lang, script := range map[string]string{
		"bash":   "cronium_setCondition true",
		"python": "cronium.setCondition(True)",
		"node":   "cronium.setCondition(true)",
	} {
		if interp[lang] == "" {
			continue
		}
		file := filepath.Join(t.TempDir(), "script"+extension[lang])
		os.WriteFile(file, []byte(script+"\n"), 0o644)
		wantOut(t, runCmd(t, scriptEnv(f, lib), "", interp[lang], file), "")
	}
}

// Errors reach the script: python raises CroniumError, node throws, bash
// prints "cronium: <message>" and returns non-zero.
func TestErrors(t *testing.T) {
	scripts := map[string]string{
		"bash": `cronium_getVariable k; echo "status $?"
cronium_setVariable k v && echo "not reached"; echo "status $?"`,
		"python": `
for call in (lambda: cronium.getVariable("k"), lambda: cronium.setVariable("k", "v")):
    try:
        call()
    except cronium.CroniumError as e:
        print("CroniumError", isinstance(e, Exception), e)`,
		"node": `
for (const call of [() => cronium.getVariable('k'), () => cronium.setVariable('k', 'v')]) {
  try { call(); } catch (e) { console.log(e.name, e instanceof Error, e.message); }
}`,
	}
	wantStdout := map[string]string{
		"bash":   "status 1\nstatus 1",
		"python": "CroniumError True MSG\nCroniumError True MSG",
		"node":   "CroniumError true MSG\nCroniumError true MSG",
	}
	cases := []struct {
		name  string
		fail  map[string]string
		extra []string
		msg   string
	}{
		{"error reply", map[string]string{"getVariable": "variable store is down", "setVariable": "variable store is down"}, nil, "variable store is down"},
		{"wrong token", nil, []string{"CRONIUM_RUNTIME_TOKEN=wrong"}, badTokenText},
		{"no token", nil, []string{"CRONIUM_RUNTIME_TOKEN="}, "CRONIUM_RUNTIME_TOKEN is not set: the runtime API is only available inside a Cronium execution"},
		{"no socket", nil, []string{"CRONIUM_API_SOCKET=/nonexistent/api.sock"}, "cannot reach the runtime API at /nonexistent/api.sock: "},
	}
	for _, c := range cases {
		for _, lang := range []string{"bash", "python", "node"} {
			t.Run(c.name+"/"+lang, func(t *testing.T) {
				f := newFakeAPI(t, func(f *fakeAPI) { f.fail = c.fail })
				r := runScript(t, f, lang, scripts[lang], c.extra...)
				if r.code != 0 {
					t.Fatalf("exit %d\n%s%s", r.code, r.stdout, r.stderr)
				}
				// The unreachable socket's message ends with the OS error, which differs by language.
				got := strings.TrimSpace(r.stdout)
				if c.name == "no socket" && lang != "bash" {
					if !strings.Contains(got, c.msg) {
						t.Errorf("stdout %q lacks %q", got, c.msg)
					}
				} else if want := strings.ReplaceAll(wantStdout[lang], "MSG", c.msg); got != want {
					t.Errorf("stdout:\n%s\nwant:\n%s", got, want)
				}
				if lang == "bash" && strings.Count(r.stderr, "cronium: "+c.msg) != 2 {
					t.Errorf("stderr:\n%s\nwant twice: cronium: %s", r.stderr, c.msg)
				}
			})
		}
	}
}

// Workflow scripts in the style of Cronium's documented complete example.
func TestWorkflow(t *testing.T) {
	scripts := map[string]string{
		"python": `
def main():
    data = cronium.input()
    event = cronium.event()
    print(f"Run {event['executionId']} of {event['name']} (attempt {event['attempt']})")

    max_retries = int(cronium.getVariable('MAX_RETRIES') or '3')
    endpoint = cronium.getVariable('API_ENDPOINT') or 'https://api.example.com'
    total = int(cronium.getVariable('TOTAL_PROCESSED') or '0')

    records = data.get('records', [])
    processed = [r for r in records if r.get('valid')]
    success_rate = len(processed) / len(records) if records else 0.0

    cronium.setVariable('TOTAL_PROCESSED', str(total + len(processed)))
    cronium.setCondition(success_rate > 0.8)

    result = {
        'event': event['name'],
        'endpoint': endpoint,
        'max_retries': max_retries,
        'processed': len(processed),
        'success_rate': success_rate,
        'total_processed': total + len(processed),
    }
    cronium.output(result)
    return result


if __name__ == '__main__':
    main()
`,
		"node": `
async function main() {
  const data = cronium.input();
  const event = cronium.event();
  console.log(` + "`Run ${event.executionId} of ${event.name} (attempt ${event.attempt})`" + `);

  const maxRetries = parseInt(cronium.getVariable('MAX_RETRIES') || '3', 10);
  const endpoint = cronium.getVariable('API_ENDPOINT') || 'https://api.example.com';
  const total = parseInt(cronium.getVariable('TOTAL_PROCESSED') || '0', 10);

  const records = data.records || [];
  const processed = records.filter((r) => r.valid);
  const successRate = records.length ? processed.length / records.length : 0;

  cronium.setVariable('TOTAL_PROCESSED', String(total + processed.length));
  cronium.setCondition(successRate > 0.8);

  const result = {
    event: event.name,
    endpoint,
    max_retries: maxRetries,
    processed: processed.length,
    success_rate: successRate,
    total_processed: total + processed.length,
  };
  await cronium.output(result);
  return result;
}

main().catch(console.error);
`,
		"bash": `#!/bin/bash
set -euo pipefail
input=$(cronium_input)
event=$(cronium_event)
name=$(echo "$event" | jq -r .name)
echo "Run $(echo "$event" | jq -r .executionId) of $name (attempt $(echo "$event" | jq .attempt))"

max_retries=$(cronium_getVariable MAX_RETRIES); max_retries=${max_retries:-3}
endpoint=$(cronium_getVariable API_ENDPOINT); endpoint=${endpoint:-https://api.example.com}
total=$(cronium_getVariable TOTAL_PROCESSED); total=${total:-0}

count=$(echo "$input" | jq '.records | length')
valid=$(echo "$input" | jq '[.records[] | select(.valid)] | length')
rate=$(echo "scale=2; $valid / $count" | bc | sed 's/^\./0./')

cronium_setVariable TOTAL_PROCESSED "$((total + valid))"
if [ "$(echo "$rate > 0.8" | bc)" = 1 ]; then cronium_setCondition true; else cronium_setCondition false; fi

cronium_output "$(jq -n --arg event "$name" --arg endpoint "$endpoint" \
  --argjson max_retries "$max_retries" --argjson processed "$valid" --argjson rate "$rate" \
  --argjson total "$((total + valid))" \
  '{event: $event, endpoint: $endpoint, max_retries: $max_retries, processed: $processed,
    success_rate: $rate, total_processed: $total}')"
`,
	}
	for _, lang := range []string{"python", "node", "bash"} {
		t.Run(lang, func(t *testing.T) {
			if lang == "bash" {
				for _, tool := range []string{"jq", "bc"} {
					if _, err := exec.LookPath(tool); err != nil {
						t.Fatalf("%s is not installed on this host (make test installs it)", tool)
					}
				}
			}
			var recs []string
			for i := 1; i <= 10; i++ {
				recs = append(recs, fmt.Sprintf(`{"id": %d, "valid": %v}`, i, i != 7))
			}
			f := newFakeAPI(t, func(f *fakeAPI) {
				f.input = `{"records": [` + strings.Join(recs, ", ") + `]}`
				f.vars["API_ENDPOINT"] = json.RawMessage(`"https://internal.example/api"`)
				f.vars["TOTAL_PROCESSED"] = json.RawMessage(`"40"`)
			})
			r := runScript(t, f, lang, scripts[lang])
			wantOut(t, r, "Run exec-1 of nightly-report (attempt 1)")
			if r.stderr != "" {
				t.Errorf("stderr: %s", r.stderr)
			}
			_, out, vars, cond := f.state()
			var got map[string]any
			if err := json.Unmarshal([]byte(out), &got); err != nil {
				t.Fatalf("output %q: %v", out, err)
			}
			want := map[string]any{
				"event": "nightly-report", "endpoint": "https://internal.example/api", "max_retries": 3.0,
				"processed": 9.0, "success_rate": 0.9, "total_processed": 49.0,
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("output %v\nwant %v", got, want)
			}
			if vars["TOTAL_PROCESSED"] != `"49"` || !cond {
				t.Errorf("TOTAL_PROCESSED = %s, condition %v", vars["TOTAL_PROCESSED"], cond)
			}
		})
	}
}

// The client's own command line, in both forms.
func TestClientCLI(t *testing.T) {
	f := newFakeAPI(t, func(f *fakeAPI) { f.vars["greeting"] = json.RawMessage(`"hi"`) })
	env := scriptEnv(f, libDir)
	cases := []struct {
		stdin string
		args  []string
		code  int
		out   string
		err   string
	}{
		{"", []string{"getVariable", "greeting"}, 0, "\"hi\"\n", ""},
		{"", []string{"--raw", "getVariable", "--", "greeting"}, 0, "hi\n", ""},
		{"", []string{"getVariable", "unset"}, 0, "", ""},
		{"", []string{"setVariable", "-k", "-v"}, 0, "", ""},
		{"", []string{"--json", "setVariable", "n", " 5 "}, 0, "", ""},
		{"", []string{"increment", "n", "-1"}, 0, "4\n", ""},
		{"", []string{"getCondition"}, 0, "false\n", ""},
		{"", []string{"bogus"}, 2, "", "cronium: unknown op \"bogus\""},
		{"", []string{"--frob", "input"}, 2, "", "cronium: unknown flag --frob"},
		{"", []string{"input", "extra"}, 2, "", "cronium: input takes no arguments, got 1"},
		{"", []string{}, 2, "{\"ok\":false,\"error\":\"read request from stdin: unexpected EOF\"}\n", "cronium: read request from stdin"},
		{"not json\n", nil, 2, "{\"ok\":false,\"error\":\"the request on stdin is not a JSON object\"}\n", "cronium: the request on stdin"},
		{`{"op": "getVariable", "key": "greeting"}`, nil, 0, "{\"ok\":true,\"value\":\"hi\"}\n", ""},
		{`{"op": "nope"}` + "\n", nil, 1, "{\"ok\":false,\"error\":\"unknown op \\\"nope\\\"\"}\n", "cronium: unknown op \"nope\""},
		{`{"op": "input", "token": "stale"}` + "\n", nil, 1, "{\"ok\":false,\"error\":\"" + badTokenText + "\"}\n", "cronium: invalid runtime token"},
	}
	for _, c := range cases {
		r := runCmd(t, env, c.stdin, agentBin, append([]string{"api"}, c.args...)...)
		if r.code != c.code || r.stdout != c.out || !strings.HasPrefix(r.stderr, c.err) || (c.err == "" && r.stderr != "") {
			t.Errorf("api %q <<< %q: exit %d, stdout %q, stderr %q; want %d, %q, %q...", c.args, c.stdin, r.code, r.stdout, r.stderr, c.code, c.out, c.err)
		}
	}
	if _, _, vars, _ := f.state(); vars["-k"] != `"-v"` || vars["n"] != "4" {
		t.Errorf("vars: %v", vars)
	}
	if r := runCmd(t, env, "", agentBin, "api", "--help"); r.code != 0 || !strings.Contains(r.stdout, "usage: cronium-agent api") {
		t.Errorf("--help: %d %q", r.code, r.stdout)
	}
}
