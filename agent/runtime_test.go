package agent

import (
	"bufio"
	"encoding/json"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A request whose keys repeat, also in another case, is refused over the
// real socket as the HTTP API refuses such a body: the agent never picks
// one of two tokens, ops or keys.
func TestRuntimeRefusesDuplicateKeys(t *testing.T) {
	path := filepath.Join(t.TempDir(), "api.sock")
	r, err := startRuntime(Start{Token: "tok", Input: []byte(`{"n":1}`)}, nil, path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.stop)
	call := func(line string) Reply {
		t.Helper()
		c, err := net.Dial("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write([]byte(line + "\n")); err != nil {
			t.Fatal(err)
		}
		b, err := bufio.NewReader(c).ReadBytes('\n')
		if err != nil {
			t.Fatal(err)
		}
		var rep Reply
		if err := json.Unmarshal(b, &rep); err != nil {
			t.Fatalf("reply %q: %v", b, err)
		}
		return rep
	}
	if rep := call(`{"token": "tok", "op": "input", "extra": 1}`); !rep.OK || string(rep.Value) != `{"n":1}` {
		t.Fatalf("a good request: %+v", rep)
	}
	for _, c := range []struct{ line, want string }{
		{`{"token": "tok", "op": "input", "op": "event"}`, "request: op: is given twice: give each field once"},
		{`{"token": "tok", "op": "input", "key": "a", "Key": "b"}`, `request: Key: is given twice (as "key" and "Key"): give each field once, in lowercase`},
		{`{"token": "tok", "op": "input", "Op": "event"}`, `request: Op: is given twice (as "op" and "Op")`},
		{`{"token": "tok", "OP": "input"}`, `request: OP: is not a field: did you mean "op"? Field names are lowercase`},
		{`{"token": "nope", "token": "tok", "op": "input"}`, "request: token: is given twice"},
		{`{"token": "tok", "op": "input", "value": {"a": 1, "b": [{"c": 1, "c": 2}]}}`, "request: value.b[0].c: is given twice"},
		{`{"token": "tok", "op": 5}`, "request: op: want a string, got 5"},
		{`{"token": "tok", "op": "input"} {"op": "event"}`, "request has data after its JSON value: send one JSON object"},
		{`{"token": "tok", op: "input"}`, "request is not valid JSON"},
		{``, "request is empty: send a JSON object"},
	} {
		rep := call(c.line)
		if rep.OK || rep.Code != "invalid" || !strings.HasPrefix(rep.Error, c.want) {
			t.Errorf("%s: got %+v, want refused (invalid) saying %q", c.line, rep, c.want)
		}
	}
}
