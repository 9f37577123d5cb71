package docker

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/client"

	cronium "github.com/cronium/executor"
	"github.com/cronium/executor/session"
)

// Prestarted interpreters (agent.Prepare): a run handed to the interpreter
// the agent prepared in a warm sandbox behaves exactly as the same run in
// a sandbox where the interpreter starts with the run. Each case runs in
// two sandboxes of one template: one prepared (what NewSandbox makes),
// one whose prepared interpreter was discarded by an agent reset.

// recorder is a runtime API that answers deterministically and records the calls.
type recorder struct {
	mu    sync.Mutex
	calls []string
}

func (r *recorder) Call(_ context.Context, c cronium.RuntimeCall) (json.RawMessage, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, fmt.Sprintf("%s %s %s", c.Op, c.Key, c.Value))
	switch c.Op {
	case "getVariable":
		return json.RawMessage(`"value of ` + c.Key + `"`), nil
	case "increment":
		return json.RawMessage(`7`), nil
	}
	return json.RawMessage(`null`), nil
}

type prestartRun struct {
	res      cronium.Result
	stdout   string
	stderr   string
	switches []string // the streams in the order output arrived, adjacent chunks of one stream merged
	prestart string   // what the agent's report said of the prepared interpreter
	calls    []string
}

func (r prestartRun) String() string {
	return fmt.Sprintf("outcome %s exit %d signal %q truncated %v error %q output %s output_error %q prestart %q\nstdout:\n%s\nstderr:\n%s",
		r.res.Outcome, r.res.ExitCode, r.res.Signal, r.res.Truncated, r.res.Error, r.res.Output, r.res.OutputError, r.prestart, tail(r.stdout), tail(r.stderr))
}

type prestartCase struct {
	name   string
	script string
	spec   func(*cronium.Spec) // the run's spec
	// want checks the prepared run on its own (the comparison alone would
	// pass if both runs were wrong in the same way).
	want func(t *testing.T, r prestartRun)
	// fallback: the run must not use the prepared interpreter, and the
	// agent's reason names this.
	fallback string
	// streams: the order of stdout and stderr must match too.
	streams bool
}

// newWarm makes a warm sandbox of tmpl; prepared false discards what NewSandbox prepared.
func newWarm(t *testing.T, tmpl cronium.Spec, prepared bool) *session.Warm {
	t.Helper()
	ctx := context.Background()
	s, err := testEngine().NewSandbox(ctx, tmpl, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	sb := s.(*session.Warm)
	t.Cleanup(sb.Close)
	if !prepared {
		if err := sb.Unprepare(ctx); err != nil {
			t.Fatalf("discard the prepared interpreter: %v", err)
		}
	}
	return sb
}

func runWarm(ctx context.Context, sb *session.Warm, spec cronium.Spec) prestartRun {
	var r prestartRun
	var out, errs strings.Builder
	rec := &recorder{}
	if spec.Runtime != nil {
		spec.Runtime = rec
	}
	spec.Output = func(c cronium.OutputChunk) {
		s := "stdout"
		if c.Stream == cronium.Stderr {
			s = "stderr"
			errs.Write(c.Data)
		} else {
			out.Write(c.Data)
		}
		if n := len(r.switches); n == 0 || r.switches[n-1] != s {
			r.switches = append(r.switches, s)
		}
	}
	r.res = sb.Run(ctx, spec)
	r.stdout, r.stderr, r.prestart, r.calls = out.String(), errs.String(), sb.Prestart(), rec.calls
	return r
}

// comparePrestart runs each case in a prepared and in a plain sandbox of lang and compares.
func comparePrestart(t *testing.T, lang cronium.Language, cases []prestartCase) {
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tmpl := cronium.Spec{Language: lang}
			var prepared, plain *session.Warm
			var wg sync.WaitGroup
			wg.Add(2)
			go func() { defer wg.Done(); prepared = newWarm(t, tmpl, true) }()
			go func() { defer wg.Done(); plain = newWarm(t, tmpl, false) }()
			wg.Wait()
			if prepared == nil || plain == nil {
				t.FailNow()
			}
			spec := func() cronium.Spec {
				s := cronium.Spec{ID: "pst-" + string(lang) + "-" + strings.ReplaceAll(c.name, " ", "-"), Language: lang, Script: []byte(c.script)}
				s.Limits.Timeout = 20 * time.Second
				if c.spec != nil {
					c.spec(&s)
				}
				return s
			}
			ctx := context.Background()
			got := runWarm(ctx, prepared, spec())
			want := runWarm(ctx, plain, spec())
			if want.prestart != "" {
				t.Fatalf("the plain sandbox had a prepared interpreter: %q", want.prestart)
			}
			switch {
			case c.fallback == "" && got.prestart != "used":
				t.Fatalf("the run did not use the prepared interpreter: %q", got.prestart)
			case c.fallback != "" && (got.prestart == "used" || !strings.Contains(got.prestart, c.fallback)):
				t.Fatalf("the run used the prepared interpreter or fell back for another reason (%q), want a fallback naming %s", got.prestart, c.fallback)
			}
			g, w := got.res, want.res
			same := g.Outcome == w.Outcome && g.ExitCode == w.ExitCode && g.Signal == w.Signal && g.Truncated == w.Truncated &&
				g.Error == w.Error && string(g.Output) == string(w.Output) && g.OutputError == w.OutputError &&
				(g.Usage.OutputBytes == w.Usage.OutputBytes || g.Outcome == cronium.OutputLimit) && // how much more a killed script wrote is a race
				g.Usage.KeptOutputBytes == w.Usage.KeptOutputBytes &&
				got.stdout == want.stdout && got.stderr == want.stderr && strings.Join(got.calls, "\n") == strings.Join(want.calls, "\n")
			if c.streams {
				// Both alternate (c.want checks the prepared run's count). The
				// exact sequence is not compared: on a loaded machine the
				// agent may read two writes 30 ms apart as one chunk, in
				// either run.
				same = same && len(want.switches) >= 10
			}
			if !same {
				t.Errorf("prepared and plain runs differ%s%s\nprepared: %s\ncalls %q streams %v\n\nplain: %s\ncalls %q streams %v",
					firstDiff("stdout", got.stdout, want.stdout), firstDiff("stderr", got.stderr, want.stderr), got, got.calls, got.switches, want, want.calls, want.switches)
			}
			if c.want != nil {
				c.want(t, got)
			}
		})
	}
}

// firstDiff shows the first line where a and b differ, if they do.
func firstDiff(what, a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := 0; i < max(len(al), len(bl)); i++ {
		var x, y string
		if i < len(al) {
			x = al[i]
		}
		if i < len(bl) {
			y = bl[i]
		}
		if x != y || i >= len(al) || i >= len(bl) {
			return fmt.Sprintf("\n%s line %d:\n  prepared: %q\n  plain:    %q", what, i+1, x, y)
		}
	}
	return ""
}

func wantExit(outcome cronium.Outcome, code int, signal string) func(*testing.T, prestartRun) {
	return func(t *testing.T, r prestartRun) {
		t.Helper()
		if r.res.Outcome != outcome || r.res.ExitCode != code || r.res.Signal != signal {
			t.Errorf("got %s exit %d signal %q, want %s exit %d signal %q\n%s", r.res.Outcome, r.res.ExitCode, r.res.Signal, outcome, code, signal, r)
		}
	}
}

func wantOut(stdout, stderr string) func(*testing.T, prestartRun) {
	return func(t *testing.T, r prestartRun) {
		t.Helper()
		if !strings.Contains(r.stdout, stdout) || !strings.Contains(r.stderr, stderr) {
			t.Errorf("stdout lacks %q or stderr lacks %q\n%s", stdout, stderr, r)
		}
	}
}

func both(fs ...func(*testing.T, prestartRun)) func(*testing.T, prestartRun) {
	return func(t *testing.T, r prestartRun) {
		for _, f := range fs {
			f(t, r)
		}
	}
}

// Cases both languages share, apart from their scripts.
func commonCases(lang cronium.Language, scripts map[string]string) []prestartCase {
	userEnv := func(s *cronium.Spec) {
		s.Env = map[string]string{"MODE": "prod", "ANSWER": "42", "EMPTY": "", "UNICODE": "grüße ✓"}
	}
	cases := []prestartCase{
		{name: "exit 0", script: scripts["exit 0"], want: both(wantExit(cronium.Succeeded, 0, ""), wantOut("hello", ""))},
		{name: "environment", script: scripts["environment"], want: wantOut("CRONIUM_EXECUTION_ID=pst-"+string(lang)+"-environment", "")},
		{name: "user environment", script: scripts["user environment"], spec: userEnv, want: wantOut("ANSWER=42", "")},
		{name: "streams in order", script: scripts["streams in order"], streams: true, want: func(t *testing.T, r prestartRun) {
			if len(r.switches) < 10 {
				t.Errorf("streams arrived as %v, want them alternating", r.switches)
			}
		}},
		{name: "timeout", script: scripts["timeout"], spec: func(s *cronium.Spec) { s.Limits.Timeout, s.Limits.Grace = 2*time.Second, time.Second }, want: func(t *testing.T, r prestartRun) {
			wantExit(cronium.TimedOut, 128+15, "terminated")(t, r)
			if r.res.Phases.Run > 8*time.Second {
				t.Errorf("the 2s timeout took %s", r.res.Phases.Run)
			}
		}},
		{name: "output cap", script: scripts["output cap"], spec: func(s *cronium.Spec) { s.Limits.Output = 64 << 10 }, want: func(t *testing.T, r prestartRun) {
			if !r.res.Truncated || !strings.Contains(r.stderr, "output truncated") || r.res.Outcome != cronium.Succeeded {
				t.Errorf("want a truncated output\n%s", r)
			}
		}},
		{name: "output cap kill", script: scripts["output cap"], spec: func(s *cronium.Spec) { s.Limits.Output, s.Limits.OutputPolicy = 64<<10, cronium.OutputKill }, want: wantExit(cronium.OutputLimit, 128+15, "terminated")},
		{name: "stdio data mode", script: scripts["stdio data mode"], spec: func(s *cronium.Spec) { s.DataMode, s.Input = cronium.DataStdio, []byte(`{"n": 41}`) }, want: func(t *testing.T, r prestartRun) {
			if string(r.res.Output) != `{"got":42}` {
				t.Errorf("output %s, want {\"got\":42}\n%s", r.res.Output, r)
			}
		}},
		{name: "files data mode", script: scripts["files data mode"], spec: func(s *cronium.Spec) { s.DataMode, s.Input = cronium.DataFiles, []byte(`{"n": 1}`) }, want: func(t *testing.T, r prestartRun) {
			if string(r.res.Output) != `{"got":2}` {
				t.Errorf("output %s, want {\"got\":2}\n%s", r.res.Output, r)
			}
		}},
		{name: "secrets", script: scripts["secrets"], spec: func(s *cronium.Spec) { s.Secrets = map[string][]byte{"tok": []byte("s3cr3t-value-123")} }, want: wantOut("secret: ***", "")},
		{name: "runtime api", script: scripts["runtime api"], spec: func(s *cronium.Spec) { s.Runtime, s.Input = &recorder{}, []byte(`{"a": 1}`) }, want: func(t *testing.T, r prestartRun) {
			wantOut("value of k", "")(t, r)
			if len(r.calls) != 3 || !strings.HasPrefix(r.calls[2], "output") {
				t.Errorf("runtime calls %q, want getVariable, setVariable, output", r.calls)
			}
		}},
		{name: "user variable that does not act at start-up", script: scripts["exit 0"], spec: func(s *cronium.Spec) { s.Env = map[string]string{"DEBUG": "1"} }, want: wantOut("hello", "")},
		{name: "LANG falls back", script: scripts["user environment"], spec: func(s *cronium.Spec) { s.Env = map[string]string{"LANG": "C.UTF-8"} }, fallback: "LANG", want: wantOut("LANG=C.UTF-8", "")},
	}
	// The dispatcher sets TZ for every run: the bootstraps apply it as a fresh start would.
	for _, zone := range []string{"", "UTC", "Europe/Berlin", "America/New_York", "Nowhere/Zone", "-"} {
		c := prestartCase{name: "time zone " + zone, script: scripts["timezone"], want: wantOut(scripts["timezone "+zone], "")}
		if zone != "" {
			c.spec = func(s *cronium.Spec) { s.Env = map[string]string{"TZ": strings.TrimPrefix(zone, "-")} } // "-": set and empty
		}
		cases = append(cases, c)
	}
	return cases
}

func TestPrestartPythonBehavesAsAFreshStart(t *testing.T) {
	t.Parallel()
	scripts := map[string]string{
		"exit 0": `print("hello")`,
		"environment": `import os, posix, subprocess
print(list(os.environ.items()))
print(posix.environ is os.environ._data, list(os.environb.items()) == list(posix.environ.items()))
print(subprocess.run(["env"], capture_output=True, text=True).stdout)`,
		"user environment": `import os, subprocess
print(sorted(os.environ.items()))
print("\n".join(sorted(subprocess.run(["env"], capture_output=True, text=True).stdout.splitlines())))`,
		"streams in order": `import sys, time
for i in range(6):
    print("out", i)
    time.sleep(0.03)
    print("err", i, file=sys.stderr)
    time.sleep(0.03)
sys.stdout.write("no newline at the end")`,
		"timeout":         "import time\nprint('sleeping')\ntime.sleep(60)",
		"output cap":      `import sys; sys.stdout.write(("x" * 99 + "\n") * 3000 + "end\n")`,
		"stdio data mode": `import json, sys; d = json.load(sys.stdin); print("::cronium-output::" + json.dumps({"got": d["n"] + 1}))`,
		"files data mode": `import json; d = json.load(open("input.json")); json.dump({"got": d["n"] + 1}, open("output.json", "w"))`,
		"secrets":         `import os; print("secret:", open("/run/secrets/tok").read()); print(sorted(os.listdir("/run/secrets")))`,
		"runtime api": `print(cronium.input())
print(cronium.getVariable("k"))
cronium.setVariable("k", 2)
cronium.output({"done": True})
print(cronium.event())`,
		"timezone": `import datetime, time
print(time.tzname, time.timezone, time.altzone, time.daylight, time.strftime("%Z %z", time.localtime(0)), time.strftime("%Z %z", time.localtime(1720000000)), time.mktime((2024, 7, 1, 12, 0, 0, 0, 0, -1)))
print(datetime.datetime.fromtimestamp(0).astimezone().tzname(), datetime.datetime(2024, 7, 1).astimezone().utcoffset())`,
		"timezone ":                 "('UTC', 'UTC') 0 0 0 UTC +0000",
		"timezone UTC":              "('UTC', 'UTC') 0 0 0 UTC +0000",
		"timezone Europe/Berlin":    "('CET', 'CEST') -3600 -7200 1 CET +0100 CEST +0200",
		"timezone America/New_York": "('EST', 'EDT') 18000 14400 1 EST -0500 EDT -0400",
		"timezone Nowhere/Zone":     "('Nowhere', 'Nowhere') 0 0 0",
		"timezone -":                "('UTC', 'UTC') 0 0 0",
	}
	cases := append(commonCases(cronium.Python, scripts),
		prestartCase{name: "the world the script sees", script: `import os, sys, resource, time, builtins
print(__name__, __file__, __doc__, __package__, __spec__, __cached__, type(__loader__).__name__, __loader__.name, __loader__.path)
print(sorted(globals()))
print(sys.argv, sys.orig_argv, sys.executable, sys.path, sys.flags, sys.prefix, sys.base_prefix)
print(sorted(sys.modules))
print(sorted(sys.path_importer_cache))
print(sorted(vars(sys.modules["sitecustomize"])))
print(sorted(vars(builtins)), type(cronium).__name__)
print(os.getcwd(), os.getuid(), os.geteuid(), os.getgid(), os.getgroups(), os.getppid(), os.getsid(0) == os.getpid(), os.getpgrp() == os.getpid(), oct(os.umask(0o22)))
print(sorted(os.listdir("/proc/self/fd")), [os.readlink("/proc/self/fd/%d" % fd)[:5] for fd in (0, 1, 2)])
for line in open("/proc/self/status"):
    if line.split(":")[0] in ("Uid", "Gid", "Groups", "FDSize", "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp", "Threads", "SigBlk", "SigIgn", "SigCgt"):
        print(line.strip())
print([resource.getrlimit(r) for r in (resource.RLIMIT_NOFILE, resource.RLIMIT_NPROC, resource.RLIMIT_CORE, resource.RLIMIT_STACK, resource.RLIMIT_AS, resource.RLIMIT_FSIZE)])
print(open("/proc/self/oom_score_adj").read().strip(), open("/proc/self/cmdline", "rb").read())
print(sys.stdout.line_buffering, sys.stdout.write_through, sys.stdout.encoding, sys.stdin.encoding, sys.stderr.errors, sys.getfilesystemencoding(), sys.getdefaultencoding())
print(time.tzname, time.timezone, time.daylight)
import warnings; print(warnings.filters, sys.warnoptions, sys._xoptions)
print(os.get_inheritable(0), os.get_inheritable(1), os.get_inheritable(2), os.get_blocking(0), os.get_blocking(1))
print(sys.getrecursionlimit(), sys.getswitchinterval(), sys.gettrace(), sys.getprofile(), sys.excepthook is sys.__excepthook__)`,
			want: wantOut("__main__ /workspace/script.py None None None None SourceFileLoader __main__ /workspace/script.py", "")},
		prestartCase{name: "exit 3", script: "import sys\nprint('x')\nsys.exit(3)", want: wantExit(cronium.Failed, 3, "")},
		prestartCase{name: "uncaught exception", script: "def f():\n    raise ValueError('boom')\nprint('before')\nf()\n", want: both(wantExit(cronium.Failed, 1, ""),
			wantOut("before", "Traceback (most recent call last):\n  File \"/workspace/script.py\", line 4, in <module>\n    f()\n  File \"/workspace/script.py\", line 2, in f\n    raise ValueError('boom')\nValueError: boom\n"))},
		prestartCase{name: "sys.exit with a message", script: "import sys\nsys.exit('bye')", want: both(wantExit(cronium.Failed, 1, ""), wantOut("", "bye"))},
		prestartCase{name: "KeyboardInterrupt", script: "print('x')\nraise KeyboardInterrupt", want: both(wantExit(cronium.Failed, 130, "interrupt"), wantOut("x", "KeyboardInterrupt"))},
		prestartCase{name: "killed by a signal", script: "import os, signal\nprint('x', flush=True)\nos.kill(os.getpid(), signal.SIGKILL)", want: wantExit(cronium.Failed, 137, "killed")},
		prestartCase{name: "terminated", script: "import os, signal\nos.kill(os.getpid(), signal.SIGTERM)", want: wantExit(cronium.Failed, 143, "terminated")},
		prestartCase{name: "os._exit", script: "import os\nprint('x')\nos._exit(9)", want: wantExit(cronium.Failed, 9, "")},
		prestartCase{name: "syntax error", script: "print('a'\n", want: both(wantExit(cronium.Failed, 1, ""), wantOut("", `File "/workspace/script.py", line 1`))},
		prestartCase{name: "threads and atexit", script: "import atexit, threading, time\natexit.register(print, 'atexit ran')\nthreading.Thread(target=lambda: (time.sleep(0.2), print('thread done'))).start()\nprint('main done')",
			want: wantOut("main done\nthread done\natexit ran\n", "")},
		prestartCase{name: "a module next to the script", script: "open('helper.py', 'w').write('X = 42\\n')\nimport helper\nprint(helper.X, helper.__file__)",
			want: wantOut("42 /workspace/helper.py", "")},
		prestartCase{name: "PYTHONHASHSEED falls back", script: `import sys; print(sys.flags.hash_randomization, hash("abc"))`, spec: func(s *cronium.Spec) { s.Env = map[string]string{"PYTHONHASHSEED": "0"} },
			fallback: "PYTHONHASHSEED", want: wantOut("0 ", "")},
		prestartCase{name: "PYTHONPATH falls back", script: `import sys; print(sys.path[:3])`, spec: func(s *cronium.Spec) { s.Env = map[string]string{"PYTHONPATH": "/tmp/lib"} },
			fallback: "PYTHONPATH", want: wantOut("'/tmp/lib'", "")},
	)
	comparePrestart(t, cronium.Python, cases)
}

func TestPrestartNodeBehavesAsAFreshStart(t *testing.T) {
	t.Parallel()
	scripts := map[string]string{
		"exit 0": `console.log('hello')`,
		"environment": `console.log(JSON.stringify(Object.entries(process.env)));
console.log(require('child_process').execFileSync('env').toString());`,
		"user environment": `console.log(JSON.stringify(Object.entries(process.env).sort()));
console.log(require('child_process').execFileSync('env').toString().split('\n').sort().join('\n'));`,
		"streams in order": `const sleep = (ms) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
for (let i = 0; i < 6; i++) {
  console.log('out', i); sleep(30);
  console.error('err', i); sleep(30);
}
process.stdout.write('no newline at the end');`,
		"timeout":         `console.log('sleeping'); setTimeout(() => {}, 60000);`,
		"output cap":      `process.stdout.write(('x'.repeat(99) + '\n').repeat(3000) + 'end\n');`,
		"stdio data mode": `const d = JSON.parse(require('fs').readFileSync(0, 'utf8')); console.log('::cronium-output::' + JSON.stringify({got: d.n + 1}));`,
		"files data mode": `const fs = require('fs'); const d = JSON.parse(fs.readFileSync('input.json')); fs.writeFileSync('output.json', JSON.stringify({got: d.n + 1}));`,
		"secrets":         `const fs = require('fs'); console.log('secret: ' + fs.readFileSync('/run/secrets/tok', 'utf8')); console.log(fs.readdirSync('/run/secrets'));`,
		"runtime api": `console.log(cronium.input());
console.log(cronium.getVariable('k'));
cronium.setVariable('k', 2);
cronium.output({done: true});
console.log(cronium.event());`,
		"timezone": `console.log(Intl.DateTimeFormat().resolvedOptions().timeZone, new Date(0).getTimezoneOffset(), new Date(1720000000000).getTimezoneOffset(), new Date(2024, 6, 1, 12).getTime());
console.log(new Date(0).toString(), new Date(1720000000000).toLocaleString('en-US', {timeZoneName: 'short'}), process.env.TZ);`,
		"timezone ":                 "UTC 0 0 1719835200000",
		"timezone UTC":              "UTC 0 0 1719835200000",
		"timezone Europe/Berlin":    "Europe/Berlin -60 -120 1719828000000",
		"timezone America/New_York": "America/New_York 300 240 1719849600000",
		"timezone Nowhere/Zone":     "undefined 0 0 1719835200000",
		"timezone -":                "Etc/Unknown 0 0 1719835200000",
	}
	cases := append(commonCases(cronium.Node, scripts),
		prestartCase{name: "the world the script sees", script: `const fs = require('fs');
console.log(process.argv, process.execArgv, process.argv0, process.execPath, process.title);
console.log(require.main === module, module.id, module.filename, module.paths, __filename, __dirname, module.parent, module.children.length);
console.log(Object.keys(require.cache), require.resolve.paths('x'));
console.log(process.cwd(), process.getuid(), process.geteuid(), process.getgid(), process.getgroups(), process.ppid, process.umask().toString(8));
console.log(fs.readdirSync('/proc/self/fd').map(Number).sort((a, b) => a - b).map((fd) => { try { return fd + '>' + fs.readlinkSync('/proc/self/fd/' + fd).replace(/[0-9]+/g, 'N'); } catch (e) { return fd + '>gone'; } }).join(' '));
for (const line of fs.readFileSync('/proc/self/status', 'utf8').split('\n')) {
  if (['Uid', 'Gid', 'Groups', 'FDSize', 'CapInh', 'CapPrm', 'CapEff', 'CapBnd', 'CapAmb', 'NoNewPrivs', 'Seccomp', 'Threads', 'SigBlk', 'SigIgn', 'SigCgt'].includes(line.split(':')[0])) console.log(line);
}
console.log(fs.readFileSync('/proc/self/oom_score_adj', 'utf8').trim(), JSON.stringify(fs.readFileSync('/proc/self/cmdline', 'latin1')));
console.log(typeof cronium, Object.keys(cronium).sort().join(','));
console.log(Object.getOwnPropertyNames(globalThis).sort().join(','));
console.log(process.moduleLoadList.join(','));
console.log(['exit', 'warning', 'SIGINT', 'SIGTERM', 'uncaughtException', 'unhandledRejection', 'beforeExit'].map((e) => process.listenerCount(e)));
console.log(Intl.DateTimeFormat().resolvedOptions(), new Date(0).getTimezoneOffset());
console.log(process.stdout.constructor.name, process.stdout.isTTY, process.stdin.constructor.name, require('os').homedir(), require('os').tmpdir());
console.log(process.execArgv, process.allowedNodeEnvironmentFlags.size, process.noDeprecation, process.features.inspector, process.report.directory);`,
			want: wantOut("[ '/usr/bin/node', '/workspace/script.js' ] [] node /usr/bin/node node\ntrue . /workspace/script.js", "")},
		prestartCase{name: "process.exit 5", script: "console.log('x'); process.exit(5)", want: wantExit(cronium.Failed, 5, "")},
		prestartCase{name: "process.exitCode", script: "process.exitCode = 4; setTimeout(() => console.log('late'), 50)", want: both(wantExit(cronium.Failed, 4, ""), wantOut("late", ""))},
		prestartCase{name: "uncaught exception", script: "function f() { throw new Error('boom'); }\nconsole.log('before');\nf();\n", want: both(wantExit(cronium.Failed, 1, ""),
			wantOut("before", "/workspace/script.js:1\nfunction f() { throw new Error('boom'); }\n               ^\n\nError: boom\n    at f (/workspace/script.js:1:22)\n    at Object.<anonymous> (/workspace/script.js:3:1)"))},
		prestartCase{name: "unhandled rejection", script: "Promise.reject(new Error('nope'))", want: both(wantExit(cronium.Failed, 1, ""), wantOut("", "Error: nope"))},
		prestartCase{name: "killed by a signal", script: "console.log('x'); process.kill(process.pid, 'SIGKILL')", want: wantExit(cronium.Failed, 137, "killed")},
		prestartCase{name: "terminated", script: "process.kill(process.pid, 'SIGTERM'); setTimeout(() => {}, 5000)", want: wantExit(cronium.Failed, 143, "terminated")},
		prestartCase{name: "syntax error", script: "console.log('a'\n", want: both(wantExit(cronium.Failed, 1, ""), wantOut("", "/workspace/script.js:1"))},
		prestartCase{name: "exit and beforeExit handlers", script: "process.on('beforeExit', () => console.log('beforeExit')); process.on('exit', (c) => console.log('exit', c)); setTimeout(() => console.log('timer'), 100); console.log('main')",
			want: wantOut("main\ntimer\nbeforeExit\nexit 0\n", "")},
		prestartCase{name: "a module next to the script", script: "require('fs').writeFileSync('helper.js', 'exports.X = 42;'); const h = require('./helper'); console.log(h.X, require.resolve('./helper'))",
			want: wantOut("42 /workspace/helper.js", "")},
		prestartCase{name: "NODE_OPTIONS falls back", script: "console.log(require('v8').getHeapStatistics().heap_size_limit < 200 << 20)", spec: func(s *cronium.Spec) { s.Env = map[string]string{"NODE_OPTIONS": "--max-old-space-size=100"} },
			fallback: "NODE_OPTIONS", want: wantOut("true", "")},
	)
	comparePrestart(t, cronium.Node, cases)
}

// TestPrestartReuse: after a Reset, which kills every process, the agent
// prepares a fresh interpreter; the next run uses it and sees nothing of
// the run before, nor its interpreter.
func TestPrestartReuse(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, c := range []struct {
		lang         cronium.Language
		first, after string
	}{
		{cronium.Python, `import builtins, os, subprocess
builtins.LEAK = 1
os.environ["LEAK"] = "1"
open("/tmp/x", "w").write("x")
subprocess.Popen(["sleep", "1000"], start_new_session=True)
print("pid", os.getpid())`, `import builtins, os
print("pid", os.getpid())
print("leak", hasattr(builtins, "LEAK"), os.environ.get("LEAK"), os.path.exists("/tmp/x"))
print("sleepers", sum(b"sleep" in open("/proc/%s/cmdline" % p, "rb").read() for p in os.listdir("/proc") if p.isdigit()))`},
		{cronium.Node, `globalThis.LEAK = 1; process.env.LEAK = '1';
require('fs').writeFileSync('/tmp/x', 'x');
require('child_process').spawn('sleep', ['1000'], {detached: true, stdio: 'ignore'}).unref();
console.log('pid', process.pid);`, `const fs = require('fs');
console.log('pid', process.pid);
console.log('leak', globalThis.LEAK !== undefined, process.env.LEAK, fs.existsSync('/tmp/x'));
console.log('sleepers', fs.readdirSync('/proc').filter((p) => /^[0-9]+$/.test(p)).filter((p) => { try { return fs.readFileSync('/proc/' + p + '/cmdline', 'latin1').includes('sleep'); } catch (e) { return false; } }).length);`},
	} {
		sb := newWarm(t, cronium.Spec{Language: c.lang}, true)
		r1 := runWarm(ctx, sb, cronium.Spec{ID: NewID(), Language: c.lang, Script: []byte(c.first)})
		if r1.res.Outcome != cronium.Succeeded || r1.prestart != "used" {
			t.Fatalf("%s run 1: %s", c.lang, r1)
		}
		if err := sb.Reset(ctx); err != nil {
			t.Fatalf("%s reset: %v", c.lang, err)
		}
		r2 := runWarm(ctx, sb, cronium.Spec{ID: NewID(), Language: c.lang, Script: []byte(c.after)})
		if r2.res.Outcome != cronium.Succeeded || r2.prestart != "used" {
			t.Fatalf("%s run 2 did not use a prepared interpreter: %s", c.lang, r2)
		}
		pid1, _, _ := strings.Cut(r1.stdout, "\n")
		pid2, _, _ := strings.Cut(r2.stdout, "\n")
		if pid1 == pid2 {
			t.Errorf("%s: run 2 ran in run 1's interpreter (%s)", c.lang, pid1)
		}
		want := map[cronium.Language]string{cronium.Python: "leak False None False\nsleepers 0\n", cronium.Node: "leak false undefined false\nsleepers 0\n"}[c.lang]
		if !strings.HasSuffix(r2.stdout, want) {
			t.Errorf("%s: run 2 sees something of run 1:\n%s\nwant it to end with:\n%s", c.lang, r2.stdout, want)
		}
	}
}

// TestPrestartedRunIsCancelled: the host's cancel reaches a run handed to
// a prepared interpreter, in a sandbox that was paused while it waited.
func TestPrestartedRunIsCancelled(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	sb := newWarm(t, cronium.Spec{Language: cronium.Python}, true)
	if err := sb.Pause(ctx); err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithCancel(ctx)
	time.AfterFunc(1500*time.Millisecond, cancel)
	spec := cronium.Spec{ID: NewID(), Language: cronium.Python, Script: []byte("import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nprint('waiting', flush=True)\ntime.sleep(60)")}
	spec.Limits.Timeout, spec.Limits.Grace = 30*time.Second, time.Second
	begin := time.Now()
	r := runWarm(cctx, sb, spec)
	if r.res.Outcome != cronium.Cancelled || r.prestart != "used" || !strings.Contains(r.stdout, "waiting") {
		t.Fatalf("want a cancelled run of the prepared interpreter: %s", r)
	}
	if d := time.Since(begin); d > 10*time.Second {
		t.Errorf("cancelling took %s", d)
	}
}

// TestPreparedInterpreterGoesWithItsSandbox: an idle sandbox holds its
// prepared interpreter, as the script user, and Close leaves nothing.
func TestPreparedInterpreterGoesWithItsSandbox(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	sb, err := testEngine().NewSandbox(ctx, cronium.Spec{Language: cronium.Node}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	// The agent starts it once it read the Prepare NewSandbox sent.
	var procs [][]string
	found := ""
	for deadline := time.Now().Add(10 * time.Second); found == "" && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		top, err := testEngine().cli.ContainerTop(ctx, sb.(*session.Warm).Ref(), client.ContainerTopOptions{Arguments: []string{"-eo", "pid,user,args"}})
		if err != nil {
			sb.Close()
			t.Fatal(err)
		}
		procs = top.Processes
		for _, p := range procs {
			if line := strings.Join(p, " "); strings.Contains(line, "node /workspace/script.js") {
				found = line
			}
		}
	}
	if found == "" {
		t.Errorf("no prepared interpreter in the idle sandbox: %v", procs)
	} else if !strings.Contains(found, "nobody") && !strings.Contains(found, "65534") {
		t.Errorf("the prepared interpreter does not run as the script user: %s", found)
	}
	sb.Close()
	if _, err := testEngine().cli.ContainerInspect(ctx, sb.(*session.Warm).Ref(), client.ContainerInspectOptions{}); err == nil {
		t.Errorf("container %.12s still exists after Close", sb.(*session.Warm).Ref())
	}
}

// Runs that must not be prepared: bash, and a sandbox whose workspace is
// persistent (shared with other sandboxes, so not as fresh as a run's).
func TestNothingPreparedForBashOrAPersistentWorkspace(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ws := &cronium.Volume{Name: "pst-" + NewID()[:8], Size: 16 << 20}
	defer testEngine().RemoveWorkspace(ws.Name)
	for _, tmpl := range []cronium.Spec{{Language: cronium.Bash}, {Language: cronium.Python, Workspace: ws}} {
		sb := newWarm(t, tmpl, true)
		script := map[cronium.Language]string{cronium.Bash: "echo hi", cronium.Python: "print('hi')"}[tmpl.Language]
		r := runWarm(ctx, sb, cronium.Spec{ID: NewID(), Language: tmpl.Language, Script: []byte(script)})
		if r.res.Outcome != cronium.Succeeded || r.prestart != "" {
			t.Errorf("%s (workspace %v): want a run with nothing prepared: %s", tmpl.Language, tmpl.Workspace != nil, r)
		}
	}
}

func tail(s string) string {
	if len(s) > 2000 {
		return "..." + s[len(s)-2000:]
	}
	return s
}
