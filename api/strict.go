package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"
)

// checkStrict refuses what encoding/json would quietly accept in a
// request body: a key given twice in one object (also when only its case
// differs: the decoder would keep one), and a key that names a field in
// another case ("Name" for "name"). Unknown keys and trailing data are
// the decoder's to refuse. t is the type the body decodes into.
func checkStrict(body []byte, t reflect.Type) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	return walk(dec, t, "")
}

// walk reads one value from dec, checking objects against t (nil: any).
func walk(dec *json.Decoder, t reflect.Type, path string) error {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	tok, err := dec.Token()
	if err != nil {
		return err
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
			if err := walk(dec, elem, fmt.Sprintf("%s[%d]", path, i)); err != nil {
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
				return invalidBody(name, "is given twice: give each field once")
			}
			seen[key] = true
			if fields != nil {
				// encoding/json matches a struct's fields by Unicode case
				// folding ("ſ" is "s"): two keys that fold alike would
				// silently replace each other.
				for _, prev := range keys {
					if strings.EqualFold(prev, key) {
						return invalidBody(name, fmt.Sprintf("is given twice (as %q and %q): give each field once, in lowercase", prev, key))
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
							return invalidBody(name, fmt.Sprintf("is not a field: did you mean %q? Field names are lowercase", join(path, k)))
						}
					}
				}
				sub = f
			case t != nil && t.Kind() == reflect.Map:
				sub = t.Elem()
			}
			if err := walk(dec, sub, name); err != nil {
				return err
			}
		}
		_, err = dec.Token() // }
		return err
	}
	return nil
}

// jsonFields maps the JSON names of struct t's fields to their types (nil
// when t is not a struct, or decodes itself).
func jsonFields(t reflect.Type) map[string]reflect.Type {
	// A struct that decodes itself (NetworkPolicy) still names its fields
	// by its tags.
	if t == nil || t.Kind() != reflect.Struct {
		return nil
	}
	out := map[string]reflect.Type{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if f.Anonymous && name == "" {
			for k, v := range jsonFields(f.Type) {
				out[k] = v
			}
			continue
		}
		if name == "" {
			name = f.Name
		}
		out[name] = f.Type
	}
	return out
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func invalidBody(field, msg string) error {
	return &Error{Status: http.StatusBadRequest, Code: "invalid", Field: field, Message: field + " " + msg}
}

// trailing reports whether dec holds more than whitespace after the value
// it decoded.
func trailing(dec *json.Decoder) bool {
	_, err := dec.Token()
	return err != io.EOF
}
