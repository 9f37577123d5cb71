// Package redact replaces secret values in output streams with "***",
// including values split across writes. It uses only the standard library:
// the agent, inside every sandbox, imports it.
package redact

import (
	"bytes"
	"cmp"
	"slices"
)

// minRedactLen is the shortest value that is redacted. Shorter values ("a",
// "42", "yes") occur everywhere in normal output: replacing them would destroy
// the output while hiding almost nothing.
const minRedactLen = 4

// mask replaces every redacted value.
var mask = []byte("***")

// matcher finds secret values, longest first at each position.
type matcher struct {
	values [][]byte  // distinct values of at least minRedactLen bytes, longest first
	first  [256]bool // first[c]: some value starts with byte c
	maxLen int       // length of the longest value
}

func newMatcher(values [][]byte) matcher {
	var m matcher
	seen := map[string]bool{}
	for _, v := range values {
		if len(v) < minRedactLen || seen[string(v)] {
			continue
		}
		seen[string(v)] = true
		m.values = append(m.values, bytes.Clone(v))
	}
	slices.SortFunc(m.values, func(a, b []byte) int {
		if c := cmp.Compare(len(b), len(a)); c != 0 {
			return c
		}
		return bytes.Compare(a, b)
	})
	for _, v := range m.values {
		m.first[v[0]] = true
		m.maxLen = max(m.maxLen, len(v))
	}
	return m
}

// scan redacts buf from the start. Unless final, it stops at the first
// position where buf's remaining bytes are a proper prefix of a value: whether
// a secret starts there depends on bytes not seen yet. It returns the stop
// position (len(buf) when final) and, if anything was replaced, the redacted
// form of buf[:stop] in a new slice; if nothing was replaced, out is nil and
// buf[:stop] is the output.
func (m *matcher) scan(buf []byte, final bool) (out []byte, stop int) {
	i, last := 0, 0 // last: start of the bytes not yet copied to out
	for i < len(buf) {
		if !m.first[buf[i]] {
			i++
			continue
		}
		rest := buf[i:]
		matched, pending := 0, false
		// Values are longest first, so every value that could still match
		// beyond the end of buf is seen before any shorter complete match.
		for _, v := range m.values {
			if len(rest) >= len(v) {
				if bytes.Equal(rest[:len(v)], v) {
					matched = len(v)
					break
				}
			} else if !final && bytes.HasPrefix(v, rest) {
				pending = true
				break
			}
		}
		if pending {
			break
		}
		if matched == 0 {
			i++
			continue
		}
		if out == nil {
			out = make([]byte, 0, len(buf))
		}
		out = append(out, buf[last:i]...)
		out = append(out, mask...)
		i += matched
		last = i
	}
	if out != nil {
		out = append(out, buf[last:i]...)
	}
	return out, i
}

// Redactor replaces every occurrence of any of its secret values with "***"
// in a stream of chunks, even when a value is split across chunks. At each
// position the longest matching value wins. Values shorter than 4 bytes are
// ignored: they are too short to redact without destroying the output.
//
// Use one Redactor per output stream (stdout and stderr each get their own).
// A Redactor is not safe for concurrent use.
type Redactor struct {
	m    matcher
	held []byte // tail that may be the start of a secret; at most maxLen-1 bytes
}

// New returns a Redactor for values. Empty, duplicate and too short
// (under 4 bytes) values are ignored; values are copied.
func New(values [][]byte) *Redactor {
	r := &Redactor{m: newMatcher(values)}
	if r.m.maxLen > 0 {
		r.held = make([]byte, 0, r.m.maxLen-1)
	}
	return r
}

// Active reports whether there is anything to redact. When it is false,
// Write returns p unchanged and Flush returns nil, with no copying.
func (r *Redactor) Active() bool {
	return r != nil && len(r.m.values) > 0
}

// Write takes the next chunk of the stream and returns the bytes that are
// safe to emit now, redacted. It holds back at most maxLen-1 trailing bytes
// (maxLen is the length of the longest value) that could be the start of a
// secret split across chunks; they are emitted by a later Write or by Flush.
// The returned slice may be empty, and may alias p when nothing was replaced
// and nothing was held back before: use it before reusing p.
func (r *Redactor) Write(p []byte) []byte {
	if !r.Active() {
		return p
	}
	buf := p
	if len(r.held) > 0 {
		buf = make([]byte, 0, len(r.held)+len(p))
		buf = append(append(buf, r.held...), p...)
	}
	out, stop := r.m.scan(buf, false)
	r.held = append(r.held[:0], buf[stop:]...)
	if out == nil {
		out = buf[:stop]
	}
	return out
}

// Flush returns whatever is held back, redacted, at the end of the stream (or
// whenever the caller must flush, e.g. before a pause in streaming). The
// Redactor can keep being used after Flush.
func (r *Redactor) Flush() []byte {
	if !r.Active() || len(r.held) == 0 {
		return nil
	}
	out, _ := r.m.scan(r.held, true)
	if out == nil {
		out = bytes.Clone(r.held)
	}
	r.held = r.held[:0]
	return out
}

// Bytes replaces every occurrence of the values in b with "***" (not
// streaming), for one-shot use on stored JSON and the like. Values follow the
// rules of [New]. When nothing is replaced, b itself is returned.
func Bytes(b []byte, values [][]byte) []byte {
	m := newMatcher(values)
	if len(m.values) == 0 {
		return b
	}
	out, _ := m.scan(b, true)
	if out == nil {
		return b
	}
	return out
}
