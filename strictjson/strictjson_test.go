package strictjson

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// span decodes itself, as sizes and durations do.
type span time.Duration

func (s *span) UnmarshalJSON(b []byte) error {
	var str string
	if err := json.Unmarshal(b, &str); err != nil {
		str = string(b)
	}
	d, err := time.ParseDuration(str)
	if err != nil {
		return fmt.Errorf("%q is not a duration: want one like 30s or 5m", str)
	}
	*s = span(d)
	return nil
}

type tier struct {
	Concurrency int      `json:"concurrency"`
	Timeout     span     `json:"timeout"`
	Burst       uint8    `json:"burst"`
	Modes       []string `json:"modes"`
}

// Label is embedded in config as a plain field named Label.
type Label string

// extra is embedded in config: its fields are config's.
type extra struct {
	Note string `json:"note"`
}

type config struct {
	Label
	extra
	Name    string          `json:"name"`
	Enabled bool            `json:"enabled"`
	CPUs    float64         `json:"cpus"`
	Tiers   map[string]tier `json:"tiers"`
	Steps   []tier          `json:"steps"`
	Addr    netip.Addr      `json:"addr"`
	Count   int64           `json:"count,string"`
	Value   json.RawMessage `json:"value"`
	Any     any             `json:"any"`
	Script  []byte          `json:"script"`
}

func TestDecodeNamesTheFieldAndSaysWhatIsWanted(t *testing.T) {
	for _, c := range []struct {
		name, body, field, want string
	}{
		{"a whole number", `{"tiers": {"free": {"concurrency": "lots"}}}`, "tiers.free.concurrency", `want a whole number, got the string "lots"`},
		{"a fraction for a whole number", `{"steps": [{}, {"concurrency": 1.5}]}`, "steps[1].concurrency", "want a whole number, got 1.5"},
		{"out of range", `{"steps": [{"burst": 300}]}`, "steps[0].burst", "want a whole number from 0 to 255, got 300"},
		{"negative for unsigned", `{"steps": [{"burst": -1}]}`, "steps[0].burst", "want a whole number, 0 or more, got -1"},
		{"a number", `{"cpus": "two"}`, "cpus", `want a number, got the string "two"`},
		{"a string", `{"name": 5}`, "name", "want a string, got 5"},
		{"true or false", `{"enabled": "yes"}`, "enabled", `want true or false, got the string "yes"`},
		{"an object", `{"tiers": []}`, "tiers", "want an object, got a list"},
		{"a list", `{"steps": {"a": 1}}`, "steps", "want a list, got an object"},
		{"a list of strings", `{"steps": [{"modes": [1]}]}`, "steps[0].modes[0]", "want a string, got 1"},
		{"a field that decodes itself", `{"tiers": {"pro": {"timeout": "5 minutes"}}}`, "tiers.pro.timeout", `"5 minutes" is not a duration: want one like 30s or 5m`},
		{"a text field", `{"addr": "not-an-ip"}`, "addr", "ParseAddr"},
		{"a text field given a number", `{"addr": 5}`, "addr", "want a string, got 5"},
		{"unknown field, near", `{"nmae": "x"}`, "nmae", `unknown field: did you mean "name"?`},
		{"an embedded struct's field", `{"note": 1}`, "note", "want a string, got 1"},
		{"an embedded named type", `{"Label": 1}`, "Label", "want a string, got 1"},
		{"unknown field, far", `{"tiers": {"free": {"colour": 1}}}`, "tiers.free.colour", "unknown field: the fields are burst, concurrency, modes, timeout"},
		{"duplicate", `{"name": "a", "name": "b"}`, "name", "is given twice: give each field once"},
		{"duplicate in another case", `{"name": "a", "Name": "b"}`, "Name", `is given twice (as "name" and "Name")`},
		{"key in another case", `{"tiers": {"free": {"Concurrency": 1}}}`, "tiers.free.Concurrency", `did you mean "tiers.free.concurrency"?`},
		{"duplicate inside a raw value", `{"value": {"a": 1, "a": 2}}`, "value.a", "is given twice"},
		{"duplicate inside any", `{"any": [{"k": 1, "k": 2}]}`, "any[0].k", "is given twice"},
		{"empty", ` `, "", "is empty: send a JSON object"},
		{"not JSON", `{name: x}`, "", "is not valid JSON: invalid character 'n'"},
		{"a byte order mark", "\ufeff{}", "", "starts with a byte order mark"},
		{"trailing data", `{} {}`, "", "has data after its JSON value: send one JSON object"},
	} {
		var v config
		err := Decode([]byte(c.body), &v)
		var e *Error
		if !errors.As(err, &e) || e.Field != c.field || !strings.Contains(e.Problem, c.want) {
			t.Errorf("%s: got %#v, want field %q and a problem saying %q", c.name, err, c.field, c.want)
		}
	}
}

func TestDecodeAcceptsWhatEncodingJSONAccepts(t *testing.T) {
	body := `{"name": "x", "enabled": true, "cpus": 1.5, "tiers": {"free": {"concurrency": 2, "timeout": "30s", "burst": 255, "modes": ["a"]}},
		"steps": [{"modes": null}], "addr": "192.0.2.1", "count": "12", "value": {"a": [1, {"b": null}]}, "any": {"A": 1, "a": 2},
		"script": "aGk=", "Label": "l", "note": "n", "name": "y"}`
	var v config
	if err := Decode([]byte(body), &v); err == nil || !strings.Contains(err.Error(), "name: is given twice") {
		t.Fatalf("got %v, want the duplicate name refused", err)
	}
	body = strings.Replace(body, `, "name": "y"`, "", 1)
	if err := Decode([]byte(body), &v); err != nil {
		t.Fatal(err)
	}
	if v.Tiers["free"].Timeout != span(30*time.Second) || v.Count != 12 || string(v.Script) != "hi" || v.Label != "l" || v.Note != "n" {
		t.Errorf("got %+v", v)
	}
	if err := (Decoder{AllowUnknownFields: true}).Decode([]byte(`{"colour": 1, "name": "x"}`), &v); err != nil {
		t.Errorf("an unknown field with AllowUnknownFields: %v", err)
	}
	if err := (Decoder{AllowUnknownFields: true}).Decode([]byte(`{"Name": "x"}`), &v); err == nil {
		t.Error("a field in another case was accepted with AllowUnknownFields")
	}
	forms := Decoder{Forms: map[string]string{"tiers.free.modes": "a list of modes like [\"none\"]"}}
	err := forms.Decode([]byte(`{"tiers": {"free": {"modes": "none"}}}`), &v)
	if want := `tiers.free.modes: want a list of modes like ["none"], got the string "none"`; err == nil || err.Error() != want {
		t.Errorf("got %v, want %s", err, want)
	}
}

func ExampleDecode() {
	var cfg struct {
		Capacity int `json:"capacity"`
		Tiers    map[string]struct {
			Concurrency int `json:"concurrency"`
		} `json:"tiers"`
	}
	fmt.Println(Decode([]byte(`{"tiers": {"free": {"concurrency": "two"}}}`), &cfg))
	fmt.Println(Decode([]byte(`{"capacity": 4, "Capacity": 8}`), &cfg))
	// Output:
	// tiers.free.concurrency: want a whole number, got the string "two"
	// Capacity: is given twice (as "capacity" and "Capacity"): give each field once, in lowercase
}
