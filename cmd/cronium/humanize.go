package main

import (
	"encoding/json"
	"reflect"
	"strings"
	"time"

	cronium "github.com/cronium/executor"
)

var (
	sizeType     = reflect.TypeFor[cronium.Size]()
	durationType = reflect.TypeFor[cronium.Duration]()
	marshaler    = reflect.TypeFor[json.Marshaler]()
)

// humanize turns v into plain data for printing to people: sizes as they
// are written (8Gi) and durations too (2h, 1m30s), field names as the
// configuration file spells them.
func humanize(v reflect.Value) any {
	switch {
	case !v.IsValid():
		return nil
	case v.Type() == sizeType:
		return cronium.Size(v.Int()).String()
	case v.Type() == durationType:
		return shortDuration(time.Duration(v.Int()))
	}
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return nil
		}
		return humanize(v.Elem())
	case reflect.Struct:
		if v.Type().Implements(marshaler) {
			return viaJSON(v)
		}
		out := map[string]any{}
		humanizeFields(v, out)
		return out
	case reflect.Map:
		out := map[string]any{}
		for _, k := range v.MapKeys() {
			out[k.String()] = humanize(v.MapIndex(k))
		}
		return out
	case reflect.Slice, reflect.Array:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			return viaJSON(v)
		}
		out := make([]any, v.Len())
		for i := range out {
			out[i] = humanize(v.Index(i))
		}
		return out
	}
	if v.Type().Implements(marshaler) {
		return viaJSON(v)
	}
	return v.Interface()
}

func humanizeFields(v reflect.Value, out map[string]any) {
	for i := 0; i < v.NumField(); i++ {
		f := v.Type().Field(i)
		if !f.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if f.Anonymous && name == "" && f.Type.Kind() == reflect.Struct {
			humanizeFields(v.Field(i), out)
			continue
		}
		if name == "" {
			name = f.Name
		}
		if strings.Contains(opts, "omit") && v.Field(i).IsZero() {
			continue
		}
		out[name] = humanize(v.Field(i))
	}
}

func viaJSON(v reflect.Value) any {
	b, err := json.Marshal(v.Interface())
	if err != nil {
		return nil
	}
	var out any
	json.Unmarshal(b, &out)
	return out
}

// shortDuration prints d without zero units: 2h, 1m30s, 500ms.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
