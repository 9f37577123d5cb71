// Package yamljson turns YAML into JSON, so that one strict JSON decoder
// (with field names in its errors) reads files, forms and API bodies alike.
package yamljson

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"go.yaml.in/yaml/v3"
)

// ToJSON decodes one YAML document and re-encodes it as JSON.
func ToJSON(data []byte) ([]byte, error) {
	var v any
	if err := yaml.Unmarshal(data, &v); err != nil {
		return nil, err
	}
	return json.Marshal(Normalize(v))
}

// Docs decodes every document of a YAML stream (separated by "---",
// with or without a comment or content after it) to JSON, skipping empty
// ones.
func Docs(data []byte) ([][]byte, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var out [][]byte
	for i := 1; ; i++ {
		var v any
		err := dec.Decode(&v)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("document %d is not valid YAML: %v", i, err)
		}
		if v == nil {
			continue // an empty document
		}
		j, err := json.Marshal(Normalize(v))
		if err != nil {
			return nil, fmt.Errorf("document %d: %v", i, err)
		}
		out = append(out, j)
	}
}

// Normalize turns the maps YAML decodes (keys of any type) into maps with
// string keys, which JSON can encode.
func Normalize(v any) any {
	switch t := v.(type) {
	case map[string]any:
		for k, x := range t {
			t[k] = Normalize(x)
		}
		return t
	case map[any]any:
		m := map[string]any{}
		for k, x := range t {
			m[fmt.Sprint(k)] = Normalize(x)
		}
		return m
	case []any:
		for i, x := range t {
			t[i] = Normalize(x)
		}
		return t
	}
	return v
}

// FromJSON re-encodes a JSON value as YAML (maps in key order), for
// showing and editing what the API returns.
func FromJSON(data []byte) ([]byte, error) {
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		return nil, err
	}
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}
