// Package strictjson decodes JSON that people write (API request bodies,
// configuration files, runtime API calls from scripts) strictly, and says
// what is wrong in words, naming the field by its full path
// ("tiers.free.concurrency", "steps[2].name").
//
// On top of encoding/json it refuses what that package would quietly
// accept: a key given twice in one object (also when only its case
// differs: the decoder would keep one), and a key that names a field in
// another case ("Name" for "name"). Unknown keys are refused unless
// [Decoder.AllowUnknownFields] says otherwise.
//
// It imports only the standard library: the agent in every sandbox uses it.
package strictjson

import (
	"bytes"
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
)

// Error is why a document was refused. Decode returns only *Error.
type Error struct {
	// Field is the path of the offending field, like "resources.memory",
	// "tiers.free.concurrency" or "steps[2]"; empty when the problem is
	// the document as a whole.
	Field string
	// Problem says what is wrong and what is accepted. For the document as
	// a whole it reads after a subject: "request body " + Problem gives
	// "request body is empty: send a JSON object".
	Problem string
}

// Error implements error: "field: problem", or the problem alone for the
// document as a whole.
func (e *Error) Error() string {
	if e.Field == "" {
		return e.Problem
	}
	return e.Field + ": " + e.Problem
}

// Decoder decodes documents strictly. The zero value refuses unknown keys.
// It is safe for concurrent use.
type Decoder struct {
	// AllowUnknownFields ignores keys that name no field of the target
	// struct, as encoding/json does. Default false: they are refused.
	AllowUnknownFields bool
	// Forms say in words what a field wants where its Go type says too
	// little, by path ("resources.memory": "a size like 512Mi"), for the
	// errors of values of the wrong kind. Default: the kind ("a string").
	Forms map[string]string
}

// Decode decodes data into v (a pointer) with the zero Decoder.
func Decode(data []byte, v any) error { return Decoder{}.Decode(data, v) }

// Decode decodes the one JSON value in data into v, a pointer. v may be
// partly written when an error comes back. Every error is an *Error.
func (d Decoder) Decode(data []byte, v any) error {
	t := reflect.TypeOf(v)
	dec := json.NewDecoder(bytes.NewReader(data))
	if !d.AllowUnknownFields {
		dec.DisallowUnknownFields()
	}
	if err := dec.Decode(v); err != nil {
		var syn *json.SyntaxError
		switch {
		case errors.Is(err, io.EOF):
			return &Error{Problem: "is empty: send " + document(t)}
		case bytes.HasPrefix(data, []byte("\xef\xbb\xbf")):
			return &Error{Problem: "starts with a byte order mark: send plain UTF-8 JSON"}
		case errors.As(err, &syn) || errors.Is(err, io.ErrUnexpectedEOF):
			return &Error{Problem: "is not valid JSON: " + strings.TrimPrefix(err.Error(), "json: ")}
		}
		// Valid JSON that a field refused: find which, to name it.
		var e *Error
		if errors.As(d.check(data, t), &e) {
			return e
		}
		return &Error{Problem: "was refused: " + strings.TrimPrefix(err.Error(), "json: ")}
	}
	if _, err := dec.Token(); err != io.EOF {
		return &Error{Problem: "has data after its JSON value: send " + strings.Replace(document(t), "a ", "one ", 1)}
	}
	return d.check(data, t)
}

// document names what a document decoding into t is, for errors.
func document(t reflect.Type) string {
	if want(t) == "an object" {
		return "a JSON object"
	}
	return "a JSON value"
}

// check walks data's first value against t, returning the first problem
// as an *Error (or the decoder's error for broken JSON).
func (d Decoder) check(data []byte, t reflect.Type) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	return walker{unknown: !d.AllowUnknownFields, forms: d.Forms}.value(dec, t, "")
}

var (
	jsonUnmarshaler = reflect.TypeFor[json.Unmarshaler]()
	textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// walker checks one document. unknown refuses keys naming no field; forms
// are the Decoder's.
type walker struct {
	unknown bool
	forms   map[string]string
}

// value reads one value from dec, checking it against t (nil: anything).
func (w walker) value(dec *json.Decoder, t reflect.Type, path string) error {
	pointer := t != nil && t.Kind() == reflect.Pointer
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t != nil && t.Kind() != reflect.Interface && reflect.PointerTo(t).Implements(jsonUnmarshaler) {
		return w.selfDecoding(dec, t, path, pointer)
	}
	return w.token(dec, t, path, true)
}

// selfDecoding checks a value that t decodes itself (a size, a duration,
// a network policy): inside first, so that a problem deeper down is named
// by its full path, then by decoding it alone, so that its refusal is
// named by this path. As in encoding/json, a null is decoded too, unless
// into a pointer (which it sets to nil).
func (w walker) selfDecoding(dec *json.Decoder, t reflect.Type, path string, pointer bool) error {
	var raw json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		return err
	}
	var fields reflect.Type
	if t.Kind() == reflect.Struct {
		fields = t // it still names its fields by its tags
	}
	inner := json.NewDecoder(bytes.NewReader(raw))
	inner.UseNumber()
	if err := w.token(inner, fields, path, false); err != nil {
		return err
	}
	if pointer && string(raw) == "null" {
		return nil
	}
	if err := reflect.New(t).Interface().(json.Unmarshaler).UnmarshalJSON(raw); err != nil {
		return refused(path, err)
	}
	return nil
}

// refused names path in err, a field's own refusal, dropping what would
// repeat it ("json: ", "bandwidth: ").
func refused(path string, err error) *Error {
	msg := strings.TrimPrefix(err.Error(), "json: ")
	last := path[strings.LastIndexAny(path, ".]")+1:]
	if last != "" {
		msg = strings.TrimPrefix(msg, last+": ")
	}
	msg = strings.TrimPrefix(msg, "json: ")
	if path == "" {
		msg = "was refused: " + msg
	}
	return &Error{Field: path, Problem: msg}
}

// token reads one value from dec by its tokens. checked is false for the
// top of a value that decodes itself: its kind and keys are its own to
// judge, while duplicate keys are still refused.
func (w walker) token(dec *json.Decoder, t reflect.Type, path string, checked bool) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if checked {
		if err := kind(tok, t, path, w.forms[path]); err != nil {
			return err
		}
	}
	d, ok := tok.(json.Delim)
	if !ok {
		return nil // a scalar
	}
	switch d {
	case '[':
		var elem reflect.Type
		if t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
			elem = t.Elem()
		}
		for i := 0; dec.More(); i++ {
			if err := w.value(dec, elem, fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
		_, err = dec.Token() // ]
		return err
	case '{':
		fields := jsonFields(t)
		seen := map[string]bool{}
		var keys []string // of a struct: few
		for dec.More() {
			tok, err := dec.Token()
			if err != nil {
				return err
			}
			key, _ := tok.(string)
			name := join(path, key)
			if seen[key] {
				return &Error{Field: name, Problem: "is given twice: give each field once"}
			}
			seen[key] = true
			if fields != nil {
				// encoding/json matches a struct's fields by Unicode case
				// folding ("ſ" is "s"): two keys that fold alike would
				// silently replace each other.
				for _, prev := range keys {
					if strings.EqualFold(prev, key) {
						return &Error{Field: name, Problem: fmt.Sprintf("is given twice (as %q and %q): give each field once, in lowercase", prev, key)}
					}
				}
				keys = append(keys, key)
			}
			var sub reflect.Type
			switch {
			case fields != nil:
				f, exact := fields[key]
				if !exact {
					for k := range fields {
						if strings.EqualFold(k, key) {
							return &Error{Field: name, Problem: fmt.Sprintf("is not a field: did you mean %q? Field names are lowercase", join(path, k))}
						}
					}
					if w.unknown && checked {
						return &Error{Field: name, Problem: unknown(key, fields)}
					}
				}
				sub = f
			case t != nil && t.Kind() == reflect.Map:
				sub = t.Elem()
			}
			if err := w.value(dec, sub, name); err != nil {
				return err
			}
		}
		_, err = dec.Token() // }
		return err
	}
	return nil
}

// unknown says that key names no field, suggesting the nearest one or
// listing them.
func unknown(key string, fields map[string]reflect.Type) string {
	names := make([]string, 0, len(fields))
	for k := range fields {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, k := range names {
		if Distance(strings.ToLower(key), k) <= 2 {
			return fmt.Sprintf("unknown field: did you mean %q?", k)
		}
	}
	return "unknown field: the fields are " + strings.Join(names, ", ")
}

// Distance is the Levenshtein distance between a and b, in bytes (for
// "did you mean" suggestions).
func Distance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

// kind checks that tok (a scalar or the start of an object or list) is
// what t decodes from, as encoding/json would. form, if any, says what t
// wants better than its kind.
func kind(tok json.Token, t reflect.Type, path, form string) error {
	if t == nil || tok == nil || t.Kind() == reflect.Interface { // anything; null leaves any field as it is
		return nil
	}
	w := want(t)
	if form != "" {
		w = form
	}
	fail := func() error { return &Error{Field: path, Problem: fmt.Sprintf("want %s, got %s", w, describe(tok))} }
	if reflect.PointerTo(t).Implements(textUnmarshaler) {
		s, ok := tok.(string)
		if !ok {
			return fail()
		}
		if err := reflect.New(t).Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(s)); err != nil {
			return refused(path, err)
		}
		return nil
	}
	switch v := tok.(type) {
	case json.Delim:
		if k := want(t); (v == '{' && k != "an object") || (v == '[' && k != "a list" && t.Kind() != reflect.Slice) {
			return fail()
		}
	case bool:
		if t.Kind() != reflect.Bool {
			return fail()
		}
	case string:
		if t.Kind() != reflect.String && !(t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Uint8) { // []byte: base64
			return fail()
		}
	case json.Number:
		return number(v, t, path, w)
	}
	return nil
}

// number checks n against a numeric t.
func number(n json.Number, t reflect.Type, path, w string) error {
	s := string(n)
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		i, err := strconv.ParseInt(s, 10, 64)
		if err == nil && !reflect.Zero(t).OverflowInt(i) {
			return nil
		}
		if errors.Is(err, strconv.ErrRange) || err == nil {
			lo, hi := int64(math.MinInt64)>>(64-t.Bits()), int64(math.MaxInt64)>>(64-t.Bits())
			return &Error{Field: path, Problem: fmt.Sprintf("want a whole number from %d to %d, got %s", lo, hi, s)}
		}
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		u, err := strconv.ParseUint(s, 10, 64)
		if err == nil && !reflect.Zero(t).OverflowUint(u) {
			return nil
		}
		if errors.Is(err, strconv.ErrRange) || err == nil {
			return &Error{Field: path, Problem: fmt.Sprintf("want a whole number from 0 to %d, got %s", uint64(math.MaxUint64)>>(64-t.Bits()), s)}
		}
	case reflect.Float32, reflect.Float64:
		f, err := strconv.ParseFloat(s, t.Bits())
		if err == nil && !reflect.Zero(t).OverflowFloat(f) {
			return nil
		}
		return &Error{Field: path, Problem: "want a smaller number, got " + s}
	}
	return &Error{Field: path, Problem: fmt.Sprintf("want %s, got %s", w, s)}
}

// want names in words the JSON kind that t decodes from.
func want(t reflect.Type) string {
	if t == nil {
		return "any JSON value"
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if reflect.PointerTo(t).Implements(textUnmarshaler) {
		return "a string"
	}
	switch t.Kind() {
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "a whole number"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return "a whole number, 0 or more"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.String:
		return "a string"
	case reflect.Struct, reflect.Map:
		return "an object"
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 {
			return "a base64 string"
		}
		return "a list"
	case reflect.Array:
		return "a list"
	}
	return "any JSON value"
}

// describe says what tok is, for "got ...".
func describe(tok json.Token) string {
	switch v := tok.(type) {
	case json.Delim:
		if v == '{' {
			return "an object"
		}
		return "a list"
	case string:
		if r := []rune(v); len(r) > 40 {
			v = string(r[:40]) + "..."
		}
		return fmt.Sprintf("the string %q", v)
	case json.Number:
		return string(v)
	case bool:
		return strconv.FormatBool(v)
	}
	return "null"
}

// jsonFields maps the JSON names of struct t's fields to their types (nil
// when t is not a struct).
func jsonFields(t reflect.Type) map[string]reflect.Type {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil || t.Kind() != reflect.Struct {
		return nil
	}
	out := map[string]reflect.Type{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" && opts == "" {
			continue
		}
		if f.Anonymous && name == "" && jsonFields(f.Type) != nil {
			// An embedded struct: its fields are promoted, even from an
			// unexported type.
			for k, v := range jsonFields(f.Type) {
				out[k] = v
			}
			continue
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		ft := f.Type
		if slices.Contains(strings.Split(opts, ","), "string") {
			ft = nil // a number or bool in a string: encoding/json's to check
		}
		out[name] = ft
	}
	return out
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}
