package main

import (
	"os/exec"
	"strings"
	"testing"
	"time"

	cronium "github.com/cronium/executor"
	"github.com/cronium/executor/api"
)

// A secret the script puts in its output value is redacted even when JSON
// escapes it (a quote, a backslash, non-ASCII characters as \uXXXX).
func TestOutputRedactsEscapedSecrets(t *testing.T) {
	t.Parallel()
	s := newServer(t, 1)
	key := s.user("alice", "free")
	s.env = append(s.env, "CRONIUM_TOKEN="+key)
	s.start()
	for name, value := range map[string]string{"mb": "ümlaut-ßecret-€€", "q": `pa"ss\word-1234`} {
		cmd := exec.Command(bin, "secret", "set", name)
		cmd.Env, cmd.Stdin = s.env, strings.NewReader(value)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("secret set: %v %s", err, out)
		}
	}
	script := "import cronium\nd = {k: open('/run/secrets/' + k).read() for k in ['mb', 'q']}\ncronium.output(d)\n"
	if st := s.api(key, "PUT", "/v1/events/leak", map[string]any{"language": "python", "script": script, "secrets": []string{"mb", "q"}}, nil); st != 201 {
		t.Fatalf("apply: %d", st)
	}
	var x cronium.Execution
	s.api(key, "POST", "/v1/events/leak/trigger", map[string]any{}, &x)
	s.waitAll(key, time.Minute)
	var view api.ExecutionView
	s.api(key, "GET", "/v1/executions/"+x.ID, nil, &view)
	out := string(view.Output)
	if view.Outcome != cronium.Succeeded || out == "" || strings.Contains(out, "mlaut") || strings.Contains(out, "u00fc") || strings.Contains(out, "word-1234") {
		t.Errorf("outcome %s, output %s: want both secrets redacted", view.Outcome, out)
	}
	// A secret an event uses is not deleted from under it.
	if _, stderr, err := s.run("secret", "delete", "mb"); err == nil || !strings.Contains(stderr, "used by event leak") {
		t.Errorf("secret delete of a used secret: %v %s", err, stderr)
	}
}
