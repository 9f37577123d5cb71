package redact

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
)

// JSON replaces the values in the strings (keys included) of the JSON
// document b with "***", matching them as the strings read after JSON's
// escapes are undone: a secret written "pa\"ss" or "\u00fcml" is found too,
// which Bytes on the raw text would miss. The document keeps its order
// and is returned compact. A document that is not valid JSON is redacted
// with Bytes.
func JSON(b []byte, values [][]byte) []byte {
	m := newMatcher(values)
	if len(m.values) == 0 {
		return b
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var out bytes.Buffer
	type level struct {
		object  bool
		n       int // tokens written in this container
		wantKey bool
	}
	var stack []level
	write := func(tok []byte) {
		if len(stack) > 0 {
			top := &stack[len(stack)-1]
			switch {
			case top.object && !top.wantKey:
				out.WriteByte(':')
			case top.n > 0:
				out.WriteByte(',')
			}
			if top.object {
				if top.wantKey {
					top.n++
				}
				top.wantKey = !top.wantKey
			} else {
				top.n++
			}
		}
		out.Write(tok)
	}
	for {
		tok, err := dec.Token()
		if err != nil {
			if errors.Is(err, io.EOF) && len(stack) == 0 && out.Len() > 0 {
				return Bytes(out.Bytes(), values) // numbers and the like: as text
			}
			return Bytes(b, values)
		}
		switch t := tok.(type) {
		case json.Delim:
			switch t {
			case '{', '[':
				write([]byte{byte(t)})
				stack = append(stack, level{object: t == '{', wantKey: t == '{'})
			default:
				stack = stack[:len(stack)-1]
				out.WriteByte(byte(t))
			}
		case string:
			s, _ := m.scan([]byte(t), true)
			if s == nil {
				s = []byte(t)
			}
			enc, _ := json.Marshal(string(s))
			write(enc)
		case json.Number:
			write([]byte(t))
		case bool:
			if t {
				write([]byte("true"))
			} else {
				write([]byte("false"))
			}
		case nil:
			write([]byte("null"))
		}
	}
}
