package strictjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"testing"
)

// Decode is encoding/json made stricter, never looser: what it accepts,
// encoding/json (refusing unknown fields) accepts with the same result,
// what that refuses it refuses, and every refusal is an *Error that says
// something.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		`{"name": "x", "tiers": {"free": {"concurrency": 2, "timeout": "30s", "burst": 255}}}`,
		`{"steps": [{"modes": ["a"]}, {"concurrency": 1.5}]}`, `{"name": "a", "Name": "b"}`,
		`{"value": {"a": 1, "a": 2}}`, `{"any": [1, "x", null, {"k": {}}]}`, `{"addr": "192.0.2.1", "count": "12"}`,
		`{"script": "aGk="}`, `{"cpus": 1e400}`, `[]`, `null`, ` `, "\ufeff{}", `{} {}`, `{"nmae": 1}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var got, want config
		err := Decode(b, &got)
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		werr := dec.Decode(&want)
		if err == nil {
			if werr != nil {
				t.Fatalf("accepted what encoding/json refuses (%v): %q", werr, b)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("decoded %+v, encoding/json %+v: %q", got, want, b)
			}
			return
		}
		var e *Error
		if !errors.As(err, &e) || e.Problem == "" {
			t.Fatalf("refusal %#v is not an *Error with a problem: %q", err, b)
		}
	})
}
