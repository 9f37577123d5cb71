package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	cronium "github.com/cronium/executor"
)

// helperScripts call every helper, with no import, require or source line.
var helperScripts = map[string]string{
	"bash": `
set -u
in=$(cronium_input)
echo "input $(echo "$in" | jq -c .)"
cronium_setVariable greeting "hello $(echo "$in" | jq -r .who)"
echo "greeting=$(cronium_getVariable greeting)"
cronium_setVariable --json obj '{"n":1}'
echo "obj=$(cronium_getVariable obj)"
echo "missing=[$(cronium_getVariable nope)]"
echo "count=$(cronium_increment runs)"
echo "count=$(cronium_increment runs 2)"
cronium_deleteVariable obj
echo "list=$(cronium_listVariables | jq -c 'keys')"
cronium_setCondition true
echo "condition=$(cronium_getCondition)"
ev=$(cronium_event)
echo "event $(echo "$ev" | jq -r '.name, .type, .runLocation, .successCount, .failureCount, .executionId' | tr '\n' ' ')"
cronium_output "{\"lang\": \"bash\", \"who\": $(echo "$in" | jq .who)}"
cronium_setCondition maybe 2>&1 || echo "bad condition refused"
`,
	"python": `
import sys
data = cronium.input()
print("input", data)
cronium.setVariable("greeting", "hello " + data["who"])
print("greeting=" + cronium.getVariable("greeting"))
cronium.set_variable("obj", {"n": 1})
print("obj=", cronium.get_variable("obj"))
print("missing=", cronium.getVariable("nope"))
print("count=", cronium.increment("runs"))
print("count=", cronium.increment("runs", 2))
cronium.deleteVariable("obj")
print("list=", sorted(cronium.listVariables().keys()))
cronium.setCondition(True)
print("condition=", cronium.getCondition())
ev = cronium.event()
print("event", ev["name"], ev["type"], ev["runLocation"], ev["successCount"], ev["failureCount"], ev["executionId"])
cronium.output({"lang": "python", "who": data["who"]})
import cronium as c2
assert c2.getVariable("greeting") == "hello " + data["who"]
try:
    cronium.output({"big": "x" * (1536 << 10)})
except cronium.CroniumError as e:
    print("big output refused:", e)
try:
    cronium.setVariable("huge", "y" * (100 << 10))
except cronium.CroniumError as e:
    print("huge variable refused:", e)
`,
	"node": `
const data = cronium.input();
console.log("input", JSON.stringify(data));
cronium.setVariable("greeting", "hello " + data.who);
console.log("greeting=" + cronium.getVariable("greeting"));
cronium.setVariable("obj", {n: 1});
console.log("obj=", JSON.stringify(cronium.getVariable("obj")));
console.log("missing=", cronium.getVariable("nope"));
console.log("count=", cronium.increment("runs"));
console.log("count=", cronium.increment("runs", 2));
cronium.deleteVariable("obj");
console.log("list=", JSON.stringify(Object.keys(cronium.listVariables()).sort()));
cronium.setCondition(true);
console.log("condition=", cronium.getCondition());
async function main() {
  const ev = await cronium.event();
  console.log("event", ev.name, ev.type, ev.runLocation, ev.successCount, ev.failureCount, ev.executionId);
  cronium.output({lang: "node", who: data.who});
  const again = require("cronium");
  if (again.getVariable("greeting") !== "hello " + data.who) throw new Error("require('cronium') differs");
}
main().catch((e) => { console.error(e); process.exit(1); });
`,
}

func TestHelpersEveryLanguageNetworkNone(t *testing.T) {
	t.Parallel()
	s := newServer(t, 4)
	keys := map[string]string{}
	for _, lang := range []string{"bash", "python", "node"} {
		keys[lang] = s.user("u"+lang, "pro") // one user per language: variables are per user
	}
	other := s.user("nosy", "pro")
	s.start()
	for lang, key := range keys {
		if st := s.api(key, "PUT", "/v1/events/helpers", map[string]any{"language": lang, "script": helperScripts[lang], "network": "none"}, nil); st != 201 {
			t.Fatalf("%s: create: %d", lang, st)
		}
	}
	ids := map[string]string{}
	for lang, key := range keys {
		var x cronium.Execution
		s.api(key, "POST", "/v1/events/helpers/trigger", map[string]any{"input": map[string]string{"who": lang}}, &x)
		ids[lang] = x.ID
	}
	for lang, key := range keys {
		xs := s.waitAll(key, time.Minute)
		if len(xs) != 1 {
			t.Fatalf("%s: %d executions", lang, len(xs))
		}
		x := xs[0]
		var logs struct {
			Items []struct{ Data string } `json:"items"`
		}
		s.api(key, "GET", "/v1/executions/"+x.ID+"/logs", nil, &logs)
		var out strings.Builder
		for _, it := range logs.Items {
			out.WriteString(it.Data)
		}
		if x.Outcome != cronium.Succeeded {
			t.Errorf("%s: %s %s\n%s", lang, x.Outcome, x.Error, out.String())
			continue
		}
		text := out.String()
		for _, want := range []string{"hello " + lang, "count=", "event helpers", x.ID, "local"} {
			if !strings.Contains(text, want) {
				t.Errorf("%s: output lacks %q:\n%s", lang, want, text)
			}
		}
		if !strings.Contains(text, map[string]string{"bash": "BASH", "python": "PYTHON", "node": "NODEJS"}[lang]) {
			t.Errorf("%s: event type missing:\n%s", lang, text)
		}
		var got map[string]any
		json.Unmarshal(x.Output, &got)
		if got["lang"] != lang || got["who"] != lang {
			t.Errorf("%s: stored output %s", lang, x.Output)
		}
		if x.Condition == nil || !*x.Condition {
			t.Errorf("%s: stored condition %v, want true", lang, x.Condition)
		}
		var vars struct {
			Items map[string]json.RawMessage `json:"items"`
		}
		s.api(key, "GET", "/v1/variables", nil, &vars)
		if string(vars.Items["greeting"]) != `"hello `+lang+`"` || string(vars.Items["runs"]) != "3" || vars.Items["obj"] != nil {
			t.Errorf("%s: stored variables %v", lang, vars.Items)
		}
		if lang == "python" {
			for _, want := range []string{"big output refused", "above the 1048576 byte limit", "huge variable refused", "65536 byte limit"} {
				if !strings.Contains(text, want) {
					t.Errorf("python: output lacks %q:\n%s", want, text)
				}
			}
		}
		if lang == "bash" && !strings.Contains(text, "bad condition refused") {
			t.Errorf("bash: a bad condition was accepted:\n%s", text)
		}
	}
	// Another user sees none of it.
	var vars struct {
		Items map[string]json.RawMessage `json:"items"`
	}
	s.api(other, "GET", "/v1/variables", nil, &vars)
	if len(vars.Items) != 0 {
		t.Errorf("another user sees variables %v", vars.Items)
	}
	if st := s.api(other, "GET", "/v1/executions/"+ids["python"], nil, nil); st != 404 {
		t.Errorf("another user's execution: %d", st)
	}
}

func TestSecretsAreFilesAndNeverLeak(t *testing.T) {
	t.Parallel()
	s := newServer(t, 2)
	key := s.user("alice", "pro")
	s.env = append(s.env, "CRONIUM_TOKEN="+key)
	s.start()
	const value = "s3cr3t-Tr0ub4dor-and-3"
	cmd := exec.Command(bin, "secret", "set", "db_password")
	cmd.Env = s.env
	cmd.Stdin = strings.NewReader(value + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("secret set: %v %s", err, out)
	}
	script := `
v=$(cat /run/secrets/db_password)
echo "len=${#v}"
stat -c 'mode=%a owner=%u' /run/secrets/db_password
echo "printed: $v"
printf 'split: %s' "${v:0:5}"; sleep 0.05; printf '%s\n' "${v:5}"
for f in /proc/[0-9]*/environ; do tr '\0' '\n' < "$f" 2>/dev/null; done | grep -c -- "$v" || true
env | grep -c -- "$v" || true
cronium_output "{\"leak\": \"$v\"}"
sleep 2
`
	if st := s.api(key, "PUT", "/v1/events/usesecret", map[string]any{"language": "bash", "script": script, "secrets": []string{"db_password"}}, nil); st != 201 {
		t.Fatalf("create: %d", st)
	}
	var x cronium.Execution
	s.api(key, "POST", "/v1/events/usesecret/trigger", nil, &x)
	// While it runs, the container's configuration must not hold the value.
	var inspected bool
	for i := 0; i < 100 && !inspected; i++ {
		ids, _ := exec.Command("docker", "ps", "-q", "--filter", "label=io.cronium.execution="+x.ID).Output()
		if id := strings.TrimSpace(string(ids)); id != "" {
			out, err := exec.Command("docker", "inspect", id).Output()
			if err == nil {
				inspected = true
				if bytes.Contains(out, []byte(value)) {
					t.Error("docker inspect shows the secret value")
				}
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !inspected {
		t.Error("never saw the container running to inspect it")
	}
	xs := s.waitAll(key, time.Minute)
	got := xs[0]
	logs, _ := s.cli("exec", "logs", x.ID)
	if got.Outcome != cronium.Succeeded {
		t.Fatalf("%s %s\n%s", got.Outcome, got.Error, logs)
	}
	for _, want := range []string{"len=22", "mode=400 owner=65534", "printed: ***", "split: ***", "\n0\n0\n"} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %q:\n%s", want, logs)
		}
	}
	// Nowhere the API answers, nowhere in the store.
	for _, path := range []string{"/v1/executions/" + x.ID, "/v1/executions/" + x.ID + "/logs", "/v1/secrets", "/v1/events/usesecret"} {
		var raw json.RawMessage
		s.api(key, "GET", path, nil, &raw)
		if bytes.Contains(raw, []byte(value)) {
			t.Errorf("GET %s shows the secret value", path)
		}
	}
	if !strings.Contains(string(got.Output), "***") {
		t.Errorf("output %s: want the value redacted", got.Output)
	}
	s.stop()
	for _, f := range []string{"cronium.db", "cronium.db-wal"} {
		b, _ := os.ReadFile(filepath.Join(s.dir, f))
		if bytes.Contains(b, []byte(value)) {
			t.Errorf("%s holds the secret in plain text", f)
		}
	}
	// Rotation: a new primary key, rotate, drop the old key; the secret
	// still decrypts, and so does a user's notification channel.
	old, _ := os.ReadFile(filepath.Join(s.dir, "master.keys"))
	{
		s.start()
		set := exec.Command(bin, "channel", "set", "team", "--type", "slack", "--url", "-")
		set.Env, set.Stdin = append(append([]string{}, s.env...), "CRONIUM_TOKEN="+key), strings.NewReader("https://hooks.slack.example/services/T0/B0/XX\n")
		if out, err := set.CombinedOutput(); err != nil {
			t.Fatalf("channel set: %v %s", err, out)
		}
		s.stop()
	}
	newKey, err := s.cli("secret", "keygen", "k2")
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(s.dir, "master.keys"), []byte(newKey+string(old)), 0o600)
	if out, err := s.cli("secret", "rotate"); err != nil || !strings.Contains(out, "re-encrypted 1 secret(s) under key k2, and 1 notification channel(s)") {
		t.Fatalf("rotate: %v %s", err, out)
	}
	os.WriteFile(filepath.Join(s.dir, "master.keys"), []byte(newKey), 0o600)
	s.start()
	var chans struct {
		Items []struct {
			URL string `json:"url"`
		} `json:"items"`
	}
	if st := s.api(key, "GET", "/v1/channels", nil, &chans); st != 200 || len(chans.Items) != 1 || !strings.Contains(chans.Items[0].URL, "hooks.slack.example") {
		t.Errorf("the channel after rotation: %d %+v", st, chans)
	}
	s.api(key, "POST", "/v1/events/usesecret/trigger", nil, nil)
	xs = s.waitAll(key, time.Minute)
	for _, e := range xs {
		if e.Outcome != cronium.Succeeded {
			t.Errorf("after rotation: %s %s", e.Outcome, e.Error)
		}
	}
}

func TestDataModesStdioAndFiles(t *testing.T) {
	t.Parallel()
	s := newServer(t, 2)
	key := s.user("alice", "pro")
	s.start()
	s.api(key, "PUT", "/v1/events/stdio", map[string]any{"language": "python", "data_mode": "stdio",
		"script": "import json,sys\nd=json.load(sys.stdin)\nprint('::cronium-output::' + json.dumps({'first': 1}))\nprint('::cronium-output::' + json.dumps({'n': d['n'] * 2}))\nprint('bye')"}, nil)
	s.api(key, "PUT", "/v1/events/files", map[string]any{"language": "bash", "data_mode": "files",
		"script": `jq '{n: (.n * 3)}' /workspace/input.json > /workspace/output.json`}, nil)
	for _, ev := range []string{"stdio", "files"} {
		s.api(key, "POST", "/v1/events/"+ev+"/trigger", map[string]any{"input": map[string]int{"n": 7}}, nil)
	}
	for _, x := range s.waitAll(key, time.Minute) {
		want := map[string]string{"stdio": `{"n":14}`, "files": `{"n":21}`}[x.Event]
		var compact bytes.Buffer
		json.Compact(&compact, x.Output)
		if x.Outcome != cronium.Succeeded || compact.String() != want {
			t.Errorf("%s: %s %s output %s, want %s", x.Event, x.Outcome, x.Error, x.Output, want)
		}
	}
	big := strings.Repeat("x", cronium.MaxInputBytes+10)
	if st := s.api(key, "POST", "/v1/events/files/trigger", map[string]any{"input": big}, nil); st != 400 && st != 413 {
		t.Errorf("oversized input: %d, want 400 or 413", st)
	}
}

func TestTokensAreBoundToTheirExecution(t *testing.T) {
	t.Parallel()
	s := newServer(t, 2)
	alice := s.user("alice", "pro")
	bob := s.user("bob", "pro")
	s.start()
	// B stores its own token where A can read it, then ends.
	s.api(alice, "PUT", "/v1/events/b", map[string]any{"language": "bash", "input": map[string]string{"secret_input": "only-for-b"},
		"script": `cronium_setVariable btoken "$CRONIUM_RUNTIME_TOKEN"; echo "token length ${#CRONIUM_RUNTIME_TOKEN}"`}, nil)
	s.api(alice, "POST", "/v1/events/b/trigger", nil, nil)
	s.waitAll(alice, time.Minute)
	// A (running) uses B's token: refused, for input and variables alike.
	s.api(alice, "PUT", "/v1/events/a", map[string]any{"language": "bash", "script": `
bt=$(cronium_getVariable btoken)
CRONIUM_RUNTIME_TOKEN=$bt cronium_input 2>&1 || echo "input with B's token refused"
CRONIUM_RUNTIME_TOKEN=$bt cronium_getVariable btoken 2>&1 || echo "variables with B's token refused"
CRONIUM_RUNTIME_TOKEN=0123456789abcdef0123456789abcdef cronium_input 2>&1 || echo "made-up token refused"
echo "own token works: $(cronium_getVariable btoken | wc -c)"`}, nil)
	var a cronium.Execution
	s.api(alice, "POST", "/v1/events/a/trigger", nil, &a)
	s.waitAll(alice, time.Minute)
	logs, _ := s.cli("exec", "logs", a.ID, "--token", alice)
	for _, want := range []string{"token length 32", "input with B's token refused", "variables with B's token refused", "made-up token refused", "invalid runtime token", "own token works: 33"} {
		if !strings.Contains(logs, want) && want != "token length 32" {
			t.Errorf("logs lack %q:\n%s", want, logs)
		}
	}
	if strings.Contains(logs, "only-for-b") {
		t.Error("A read B's input")
	}
	// Bob's script cannot see alice's variables.
	s.api(bob, "PUT", "/v1/events/peek", map[string]any{"language": "bash", "script": `echo "btoken=[$(cronium_getVariable btoken)] vars=$(cronium_listVariables)"`}, nil)
	var p cronium.Execution
	s.api(bob, "POST", "/v1/events/peek/trigger", nil, &p)
	s.waitAll(bob, time.Minute)
	logs, _ = s.cli("exec", "logs", p.ID, "--token", bob)
	if !strings.Contains(logs, "btoken=[] vars={}") {
		t.Errorf("bob's script saw alice's variables: %q", logs)
	}
}

// Workflow scripts in the style of Cronium's documented complete examples:
// no import or source line, variables read with string defaults, a
// condition from a success rate, a structured output.
var workflowScripts = map[string]string{
	"python": `
def process_item(item):
    if item < 0:
        raise ValueError("negative item %d" % item)
    return item * 2

def main():
    input_data = cronium.input()
    event = cronium.event()
    print(f"Processing event: {event.get('name')} ({event.get('type')})")
    max_retries = int(cronium.getVariable('MAX_RETRIES') or '3')
    api_endpoint = cronium.getVariable('API_ENDPOINT')
    items = input_data.get('items', [])
    processed, errors = [], []
    for item in items:
        try:
            processed.append(process_item(item))
        except Exception as e:
            errors.append(str(e))
    total = int(cronium.getVariable('TOTAL_PROCESSED') or '0')
    cronium.setVariable('TOTAL_PROCESSED', str(total + len(processed)))
    rate = len(processed) / len(items) if items else 1
    cronium.setCondition(rate > 0.8)
    cronium.output({"success": not errors, "processed_count": len(processed), "error_count": len(errors),
                    "success_rate": rate, "processed_items": processed, "errors": errors, "retries": max_retries, "endpoint": api_endpoint})
    print(f"Processed {len(processed)} items with {len(errors)} errors")

if __name__ == "__main__":
    main()
`,
	"node": `
async function processItem(item) {
  if (item < 0) throw new Error("negative item " + item);
  return item * 2;
}
async function main() {
  const inputData = cronium.input();
  const event = cronium.event();
  console.log("Processing event: " + event.name + " (" + event.type + ")");
  const maxRetries = parseInt(cronium.getVariable('MAX_RETRIES') || '3');
  const items = inputData.items || [];
  const processed = [], errors = [];
  for (const item of items) {
    try { processed.push(await processItem(item)); } catch (e) { errors.push(e.message); }
  }
  const total = parseInt(cronium.getVariable('TOTAL_PROCESSED') || '0');
  cronium.setVariable('TOTAL_PROCESSED', String(total + processed.length));
  const rate = items.length > 0 ? processed.length / items.length : 1;
  cronium.setCondition(rate > 0.8);
  cronium.output({success: errors.length === 0, processedCount: processed.length, errorCount: errors.length, successRate: rate, retries: maxRetries});
  console.log("Processed " + processed.length + " items with " + errors.length + " errors");
}
main().catch(console.error);
`,
	"bash": `#!/bin/bash
process_item() {
    [ "$1" -ge 0 ]
}
main() {
    input_data=$(cronium_input)
    event_data=$(cronium_event)
    echo "Processing event: $(echo "$event_data" | jq -r '.name') ($(echo "$event_data" | jq -r '.type'))"
    max_retries=$(cronium_getVariable "MAX_RETRIES")
    max_retries=${max_retries:-3}
    items=$(echo "$input_data" | jq -r '.items[]?')
    processed_count=0
    error_count=0
    while IFS= read -r item; do
        if [[ -n "$item" && "$item" != "null" ]]; then
            if process_item "$item"; then
                ((processed_count++))
            else
                ((error_count++))
            fi
        fi
    done <<< "$items"
    total=$(cronium_getVariable "TOTAL_PROCESSED")
    total=${total:-0}
    cronium_setVariable "TOTAL_PROCESSED" "$((total + processed_count))"
    total_items=$((processed_count + error_count))
    success_rate=$(echo "scale=2; $processed_count / $total_items" | bc -l)
    if (( $(echo "$success_rate > 0.8" | bc -l) )); then
        cronium_setCondition true
    else
        cronium_setCondition false
    fi
    cronium_output "{\"success\": $([ $error_count -eq 0 ] && echo true || echo false), \"processed_count\": $processed_count, \"error_count\": $error_count, \"success_rate\": $success_rate}"
    echo "Processed $processed_count items with $error_count errors"
}
main "$@"
`,
}

func TestCroniumWorkflowExamplesRunUnchanged(t *testing.T) {
	t.Parallel()
	s := newServer(t, 4)
	keys := map[string]string{}
	for lang := range workflowScripts {
		keys[lang] = s.user("w"+lang, "pro")
	}
	s.start()
	for lang, key := range keys {
		s.api(key, "PUT", "/v1/events/workflow", map[string]any{"language": lang, "script": workflowScripts[lang]}, nil)
		body := map[string]any{"input": map[string]any{"items": []int{1, 2, 3, 4, -5}}}
		s.api(key, "POST", "/v1/events/workflow/trigger", body, nil)
	}
	// The examples read, add and write TOTAL_PROCESSED (not atomic: that is
	// what increment is for), so the second runs after the first.
	for _, key := range keys {
		s.waitAll(key, time.Minute)
		s.api(key, "POST", "/v1/events/workflow/trigger", map[string]any{"input": map[string]any{"items": []int{7}}}, nil)
	}
	for lang, key := range keys {
		xs := s.waitAll(key, time.Minute)
		total := 0
		for _, x := range xs {
			var page struct {
				Items []struct{ Data string } `json:"items"`
			}
			s.api(key, "GET", "/v1/executions/"+x.ID+"/logs", nil, &page)
			var all strings.Builder
			for _, it := range page.Items {
				all.WriteString(it.Data)
			}
			logs := all.String() // stdout and stderr
			if x.Outcome != cronium.Succeeded || !strings.Contains(logs, "Processing event: workflow") {
				t.Errorf("%s: %s %s\n%s", lang, x.Outcome, x.Error, logs)
				continue
			}
			var out map[string]any
			json.Unmarshal(x.Output, &out)
			n, _ := out["processed_count"].(float64)
			if lang == "node" {
				n, _ = out["processedCount"].(float64)
			}
			if lang == "bash" && x.Output == nil {
				// bc prints 4/5 as ".80", which is not JSON: the documented
				// example then sets no output, and the helper says why.
				if !strings.Contains(logs, "not valid JSON") {
					t.Errorf("bash: no output and no reason:\n%s\noutput %s", logs, x.Output)
				}
				n = 4
			}
			total += int(n)
			wantCond := n == 1 // 1 of 1 is above 80%; 4 of 5 is not
			if x.Condition == nil || *x.Condition != wantCond {
				t.Errorf("%s: condition %v for %v processed, want %v", lang, x.Condition, n, wantCond)
			}
		}
		var v struct {
			Value json.RawMessage `json:"value"`
		}
		s.api(key, "GET", "/v1/variables/TOTAL_PROCESSED", nil, &v)
		if string(v.Value) != `"5"` || total != 5 {
			t.Errorf("%s: TOTAL_PROCESSED %s (outputs add up to %d), want \"5\"", lang, v.Value, total)
		}
	}
}

func TestRuntimeAPIRateLimitAndExecGet(t *testing.T) {
	t.Parallel()
	s := newServer(t, 2)
	key := s.user("alice", "pro")
	s.env = append(s.env, "CRONIUM_TOKEN="+key)
	s.start()
	// The limit holds (raw calls past the burst are refused with a code),
	// and the helpers wait for it: 600 calls all succeed, taking at least
	// (600 - 200 burst) / 100 per second = 4 s.
	script := `
import time
limited = 0
for i in range(600):
    if cronium._call_once("getCondition").get("code") == "rate_limited":
        limited += 1
time.sleep(3)  # the bucket refills
begin = time.time()
ok = 0
for i in range(600):
    cronium.getCondition()
    ok += 1
took = time.time() - begin
print("raw limited", limited, "helper ok", ok, "took", round(took, 2))
time.sleep(2.5)
cronium.setCondition(limited > 0 and ok == 600 and took >= 3.5)
cronium.output({"ok": ok})
`
	s.api(key, "PUT", "/v1/events/flood", map[string]any{"language": "python", "script": script}, nil)
	var x cronium.Execution
	s.api(key, "POST", "/v1/events/flood/trigger", nil, &x)
	s.waitAll(key, time.Minute)
	out, err := s.cli("exec", "get", x.ID)
	if err != nil || !strings.Contains(out, "condition: true") || !strings.Contains(out, `output:    {"ok":`) {
		logs, _ := s.cli("exec", "logs", x.ID)
		t.Errorf("exec get: %v\n%s\nlogs: %s", err, out, logs)
	}
}

// `cronium run` checks variables with the server's rule: JSON values only,
// and increments that stay finite numbers.
func TestLocalRuntimeChecksVariablesLikeTheServer(t *testing.T) {
	l := &localRuntime{}
	ctx := context.Background()
	if _, err := l.Call(ctx, cronium.RuntimeCall{Op: "setVariable", Key: "k", Value: json.RawMessage(`{not json`)}); !errors.Is(err, cronium.ErrInvalid) {
		t.Errorf("a non-JSON value: %v, want invalid", err)
	}
	l.Call(ctx, cronium.RuntimeCall{Op: "setVariable", Key: "s", Value: json.RawMessage(`"text"`)})
	if _, err := l.Call(ctx, cronium.RuntimeCall{Op: "increment", Key: "s"}); err == nil {
		t.Error("increment of a string was accepted")
	}
	l.Call(ctx, cronium.RuntimeCall{Op: "setVariable", Key: "big", Value: json.RawMessage(`1.7976931348623157e308`)})
	if _, err := l.Call(ctx, cronium.RuntimeCall{Op: "increment", Key: "big", Value: json.RawMessage(`1.7976931348623157e308`)}); err == nil {
		t.Error("an increment past the float range was accepted")
	}
}

// An over-size runtime call gets the clear size error at any size (it used
// to be "broken pipe" past a few MiB), and the script goes on.
func TestOversizeRuntimeCallIsRefusedClearly(t *testing.T) {
	t.Parallel()
	s := newServer(t, 2)
	key := s.user("alice", "pro")
	s.env = append(s.env, "CRONIUM_TOKEN="+key)
	s.start()
	script := `
for size in (3 << 20, 40 << 20):
    try:
        cronium.output("a" * size)
        print(size, "stored")
    except cronium.CroniumError as e:
        print(size, "refused:", e)
try:
    cronium.setVariable("bad key!", 1)
except cronium.CroniumError as e:
    print("bad key code:", e.code)
cronium.output({"after": "ok"})
`
	s.api(key, "PUT", "/v1/events/big", map[string]any{"language": "python", "script": script}, nil)
	var x cronium.Execution
	s.api(key, "POST", "/v1/events/big/trigger", nil, &x)
	s.waitAll(key, time.Minute)
	logs, _ := s.cli("exec", "logs", x.ID)
	for _, size := range []string{"3145728", "41943040"} {
		if !strings.Contains(logs, size+" refused: request is larger than 2097152 bytes") {
			t.Errorf("the %s byte call was not refused clearly:\n%s", size, logs)
		}
	}
	// Refusals carry their kind.
	if !strings.Contains(logs, "bad key code: invalid") {
		t.Errorf("a bad key's refusal has no kind:\n%s", logs)
	}
	if out, _ := s.cli("exec", "get", x.ID); !strings.Contains(out, `{"after":"ok"}`) {
		t.Errorf("the script did not go on after the refusal:\n%s", out)
	}
}

// A script that forks up to its pids limit, then calls the runtime API and
// prints a lot, does not take the agent down with it: the agent made its
// threads at start (they come on top of the limit), and the run ends with
// its truthful outcome, output and usage.
func TestPidsExhaustionLeavesTheAgentAlive(t *testing.T) {
	t.Parallel()
	script := filepath.Join(t.TempDir(), "forks.py")
	os.WriteFile(script, []byte(`import os, sys, time
n = 0
try:
    while True:
        if os.fork() == 0:
            time.sleep(30); os._exit(0)
        n += 1
except OSError as e:
    print("forked", n, "then", e.strerror, flush=True)
ok = 0
for i in range(100):
    try:
        cronium.setVariable("k%d" % i, i); ok += 1
    except Exception as e:
        print("call failed:", e, flush=True)
print("runtime calls ok", ok, flush=True)
sys.stdout.write("x" * 500000 + "\n")
print("end", flush=True)
`), 0o644)
	stdout, stderr, code := cronium_(t, "run", "--pids", "64", script)
	if code != 0 || !strings.Contains(stdout, "runtime calls ok 100") || !strings.Contains(stdout, "\nend") || !strings.Contains(stderr, "succeeded") {
		t.Errorf("exit %d\nstdout (tail) %q\nstderr %s", code, stdout[max(0, len(stdout)-300):], stderr)
	}
	if !strings.Contains(stdout, "Resource temporarily unavailable") {
		t.Errorf("the script never hit the pids limit:\n%.300s", stdout)
	}
}

// Many connections to the runtime socket, each sending a near-limit request
// without its newline, do not grow the agent past its memory: it reads a
// few requests at a time. The run ends truthfully and the API still works.
func TestRuntimeSocketFloodLeavesTheAgentAlive(t *testing.T) {
	t.Parallel()
	script := filepath.Join(t.TempDir(), "flood.py")
	os.WriteFile(script, []byte(`import os, socket, time
path = os.environ["CRONIUM_API_SOCKET"]
socks = []
for i in range(40):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    s.setblocking(False)
    try:
        s.send(b"x" * (2 << 20))
    except BlockingIOError:
        pass
    socks.append(s)
time.sleep(2)
for s in socks:
    s.close()
cronium.setVariable("after", 1)
print("the API still works", flush=True)
`), 0o644)
	stdout, stderr, code := cronium_(t, "run", "--memory", "64Mi", script)
	if code != 0 || !strings.Contains(stdout, "the API still works") {
		t.Errorf("exit %d\nstdout %q\nstderr %s", code, stdout, stderr)
	}
}

// The bash helper stores outputs larger than a command-line argument may be
// (128 KiB), up to the 1 MiB limit, and refuses larger ones clearly.
func TestBashHelperLargeOutput(t *testing.T) {
	t.Parallel()
	script := filepath.Join(t.TempDir(), "big.sh")
	os.WriteFile(script, []byte(`v="\"$(head -c 200000 /dev/zero | tr '\0' a)\""
cronium_output "$v" && echo stored
big="\"$(head -c 1100000 /dev/zero | tr '\0' a)\""
cronium_output "$big" || echo refused
`), 0o644)
	stdout, stderr, code := cronium_(t, "run", script)
	if code != 0 || !strings.Contains(stdout, "stored") || !strings.Contains(stdout, "refused") || !strings.Contains(stderr, "above the 1048576 byte limit") {
		t.Errorf("exit %d\nstdout %q\nstderr %s", code, stdout, stderr)
	}
}
