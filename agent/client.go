package agent

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

// Runtime API client settings (the helpers' side of APISocket).
const (
	clientSocketEnv = "CRONIUM_API_SOCKET"
	clientTokenEnv  = "CRONIUM_RUNTIME_TOKEN"
	clientTimeout   = 30 * time.Second
	clientMaxLine   = 16 << 20 // longest response (and stdin request) line
)

// clientOp says which arguments an op takes on the command line.
type clientOp struct {
	key   bool   // a KEY comes first
	value string // "" none; "json" a string unless --json; "number" optional, default 1; "bool" true|false
}

var clientOps = map[string]clientOp{
	"input":          {},
	"event":          {},
	"listVariables":  {},
	"getCondition":   {},
	"getVariable":    {key: true},
	"deleteVariable": {key: true},
	"output":         {value: "json"},
	"setVariable":    {key: true, value: "json"},
	"increment":      {key: true, value: "number"},
	"setCondition":   {value: "bool"},
}

const clientUsage = `usage: cronium-agent api                      (one request JSON line on stdin, the response line on stdout)
       cronium-agent api [--raw] [--json] OP [--] [KEY] [VALUE]
ops: input, output VALUE, getVariable KEY, setVariable KEY VALUE, deleteVariable KEY,
     listVariables, increment KEY [BY], setCondition true|false, getCondition, event
VALUE is stored as a JSON string unless --json (then it must be JSON); BY is a number.
Prints the reply's value as JSON (nothing for null); --raw prints a string value without quotes.
Exit status: 0 ok, 1 error reply (message on stderr), 2 usage error.
`

// ClientMain implements `cronium-agent api ...`: the runtime API client used by the helpers.
// With no further arguments it reads one request JSON line from stdin (adding "token" from CRONIUM_RUNTIME_TOKEN
// if the request has none) and prints the response JSON line to stdout. With arguments it builds the request:
//
//	api <op> [key] [value] [--json]      (value is a string unless --json, then it must be valid JSON)
//
// and prints only the reply's value: strings raw (no quotes) when --raw is given, otherwise as JSON.
// Exit status 0 on ok, 1 on an error reply (message on stderr as "cronium: <message>"), 2 on usage errors.
//
// In the stdin form stdout always gets exactly one response line: when the
// socket cannot be reached or the request is bad, a synthesized
// {"ok":false,"error":...} line. A null value prints nothing in the argument form.
func ClientMain(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		return clientRaw(stdin, stdout, stderr)
	}
	var raw, isJSON bool
	var pos []string
	for i, a := range args {
		if a == "--" {
			pos = append(pos, args[i+1:]...)
			break
		}
		switch {
		case a == "--raw":
			raw = true
		case a == "--json":
			isJSON = true
		case a == "-h" || a == "--help":
			io.WriteString(stdout, clientUsage)
			return 0
		case strings.HasPrefix(a, "--"):
			fmt.Fprintf(stderr, "cronium: unknown flag %s\n%s", a, clientUsage)
			return 2
		default:
			pos = append(pos, a)
		}
	}
	if len(pos) == 0 {
		fmt.Fprintf(stderr, "cronium: no op given\n%s", clientUsage)
		return 2
	}
	req, err := clientBuild(pos[0], pos[1:], isJSON)
	if err != nil {
		fmt.Fprintf(stderr, "cronium: %v\n", err)
		return 2
	}
	rep, err := clientCall(req)
	if err == nil && !rep.OK {
		err = errors.New(rep.Error)
	}
	if err != nil {
		fmt.Fprintf(stderr, "cronium: %v\n", err)
		return 1
	}
	clientPrint(stdout, rep.Value, raw)
	return 0
}

// clientBuild makes the request for `api OP ARGS...`.
func clientBuild(op string, args []string, isJSON bool) (map[string]json.RawMessage, error) {
	spec, ok := clientOps[op]
	if !ok {
		return nil, fmt.Errorf("unknown op %q (want input, output, getVariable, setVariable, deleteVariable, listVariables, increment, setCondition, getCondition or event)", op)
	}
	want, names := 0, ""
	if spec.key {
		want, names = 1, " KEY"
	}
	switch spec.value {
	case "json":
		want, names = want+1, names+" VALUE"
	case "bool":
		want, names = want+1, names+" true|false"
	case "number":
		names += " [BY]"
	}
	if n := len(args); n != want && !(spec.value == "number" && n == want+1) {
		if names == "" {
			return nil, fmt.Errorf("%s takes no arguments, got %d", op, n)
		}
		return nil, fmt.Errorf("%s expects%s, got %d argument(s)", op, names, n)
	}
	req := map[string]json.RawMessage{"op": clientString(op)}
	if spec.key {
		req["key"], args = clientString(args[0]), args[1:]
	}
	var v string
	if len(args) > 0 {
		v = args[0]
	}
	switch spec.value {
	case "json":
		if !isJSON {
			req["value"] = clientString(v)
		} else if !json.Valid([]byte(v)) {
			return nil, fmt.Errorf("%s: --json value is not valid JSON: %.80q", op, v)
		} else {
			req["value"] = json.RawMessage(v)
		}
	case "bool":
		if v != "true" && v != "false" {
			return nil, fmt.Errorf("%s expects true or false, got %.80q", op, v)
		}
		req["value"] = json.RawMessage(v)
	case "number":
		if len(args) == 0 {
			v = "1"
		}
		v = strings.TrimSpace(v)
		if _, err := strconv.ParseFloat(v, 64); err != nil || !json.Valid([]byte(v)) {
			return nil, fmt.Errorf("%s: BY must be a number, got %.80q", op, v)
		}
		req["value"] = json.RawMessage(v)
	}
	return req, nil
}

// clientReply is the server's answer.
type clientReply struct {
	OK    bool            `json:"ok"`
	Value json.RawMessage `json:"value,omitempty"`
	Error string          `json:"error,omitempty"`
	Code  string          `json:"code,omitempty"`
}

// clientRaw is the stdin form: request line in, response line out.
func clientRaw(stdin io.Reader, stdout, stderr io.Writer) int {
	failed := func(code int, err error) int {
		b, _ := json.Marshal(clientReply{Error: err.Error()})
		fmt.Fprintf(stdout, "%s\n", b)
		fmt.Fprintf(stderr, "cronium: %v\n", err)
		return code
	}
	line, err := clientReadLine(stdin)
	if err != nil {
		return failed(2, fmt.Errorf("read request from stdin: %w", err))
	}
	var req map[string]json.RawMessage // values pass through untouched
	if err := json.Unmarshal(line, &req); err != nil || req == nil {
		return failed(2, fmt.Errorf("the request on stdin is not a JSON object"))
	}
	rep, err := clientCall(req)
	if err != nil {
		return failed(1, err)
	}
	b, _ := json.Marshal(rep) // re-encoded: one line, whatever the server's spacing
	fmt.Fprintf(stdout, "%s\n", b)
	if !rep.OK {
		fmt.Fprintf(stderr, "cronium: %s\n", rep.Error)
		return 1
	}
	return 0
}

// clientCall sends one request (adding the token when it has none) and
// reads the reply. A call refused by the rate limit is tried again, waiting
// longer each time (up to about 10 s in all).
func clientCall(req map[string]json.RawMessage) (clientReply, error) {
	wait := 20 * time.Millisecond
	for attempt := 0; ; attempt++ {
		rep, err := clientCallOnce(req)
		if err != nil || rep.Code != CodeRateLimited || attempt >= 9 {
			return rep, err
		}
		time.Sleep(wait)
		wait = min(2*wait, 2*time.Second)
	}
}

func clientCallOnce(req map[string]json.RawMessage) (clientReply, error) {
	var rep clientReply
	if t := bytes.TrimSpace(req["token"]); len(t) == 0 || string(t) == "null" || string(t) == `""` {
		t := os.Getenv(clientTokenEnv)
		if t == "" {
			return rep, errors.New(clientTokenEnv + " is not set: the runtime API is only available inside a Cronium execution")
		}
		req["token"] = clientString(t)
	}
	b, err := json.Marshal(req)
	if err != nil {
		return rep, err
	}
	path := os.Getenv(clientSocketEnv)
	if path == "" {
		path = APISocket
	}
	conn, err := net.DialTimeout("unix", path, clientTimeout)
	if err != nil {
		return rep, fmt.Errorf("cannot reach the runtime API at %s: %w", path, err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(clientTimeout))
	if _, err := conn.Write(append(b, '\n')); err != nil {
		return rep, fmt.Errorf("runtime API: send request: %w", err)
	}
	line, err := clientReadLine(conn)
	if err != nil {
		return rep, fmt.Errorf("runtime API: read reply: %w", err)
	}
	if err := json.Unmarshal(line, &rep); err != nil {
		return rep, fmt.Errorf("runtime API: the reply is not JSON: %w", err)
	}
	if !rep.OK && rep.Error == "" {
		rep.Error = "the runtime API failed without a message"
	}
	return rep, nil
}

func clientString(s string) json.RawMessage {
	b, _ := json.Marshal(s) // a string always encodes
	return b
}

// clientReadLine reads one line of at most clientMaxLine bytes; a last line
// without "\n" counts, an empty input does not.
func clientReadLine(r io.Reader) ([]byte, error) {
	line, err := bufio.NewReaderSize(io.LimitReader(r, clientMaxLine+1), 64<<10).ReadBytes('\n')
	if len(line) > clientMaxLine {
		return nil, fmt.Errorf("line longer than %d bytes", clientMaxLine)
	}
	if err != nil && !(errors.Is(err, io.EOF) && len(bytes.TrimSpace(line)) > 0) {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return line, nil
}

// clientPrint prints a reply value: nothing for null, a string without
// quotes when raw, otherwise compact JSON; each followed by a newline.
func clientPrint(w io.Writer, v json.RawMessage, raw bool) {
	v = bytes.TrimSpace(v)
	if len(v) == 0 || string(v) == "null" {
		return
	}
	var s string
	if raw && v[0] == '"' && json.Unmarshal(v, &s) == nil {
		io.WriteString(w, s+"\n")
		return
	}
	var buf bytes.Buffer
	if json.Compact(&buf, v) != nil {
		buf.Reset()
		buf.Write(v)
	}
	buf.WriteByte('\n')
	w.Write(buf.Bytes())
}
