package redact

import (
	"bytes"
	"testing"
)

// splitValues turns spec into secret values: its first byte is the
// separator, the rest is split on it (so any number of values, empty and
// short ones included).
func splitValues(spec []byte) [][]byte {
	if len(spec) == 0 {
		return nil
	}
	return bytes.Split(spec[1:], spec[:1])
}

// FuzzRedactorStream streams in through a Redactor in chunks given by cuts,
// with Flush calls between some chunks (flushes), for any number of secret
// values (valueSpec, see splitValues), and checks:
//   - Active() is true exactly when some value has at least 4 bytes (the
//     documented minimum, minRedactLen); values below it are never redacted;
//   - Write never holds back more than maxLen-1 bytes, Flush holds back nothing,
//     and the caller may reuse its buffer right after Write;
//   - the output is the concatenation of Bytes over the pieces of input
//     between Flush calls (with no Flush but the final one: Bytes of the
//     whole input, whatever the chunking); this is intended: see
//     TestRedactBytes' "any split gives the same result" and Flush's doc (a
//     mid-stream Flush emits the held bytes as they are);
//   - the output is never longer than the input (the mask "***" is shorter
//     than any redacted value);
//   - when no value contains '*', neither any emitted chunk nor the whole
//     output contains a value of 4 bytes or more, and Bytes of the
//     output is the output (redaction is idempotent). Values with '*' can be
//     re-formed by the mask next to the text ("x***" from "xx***" with value
//     "x***"), which is why the existing FuzzRedactor excludes them too.
func FuzzRedactorStream(f *testing.F) {
	f.Add([]byte("|hunter22|abc|hunter22"), []byte("pw=hunter22 and hunter22, abc"), []byte{3, 1, 4}, []byte{})
	f.Add([]byte("|abcdef|cdefgh"), []byte("abcdefgh xxcdefghyy"), []byte{5, 0, 2, 7}, []byte{2})
	f.Add([]byte(",pass,password,password123,"), []byte("password123 password pass passwor"), []byte{1, 1, 1, 1, 1}, []byte{0, 3})
	f.Add([]byte(" aaaa aaaaaa"), []byte("aaaaaaaaaaaaa"), []byte{2}, []byte{1})
	f.Add([]byte("\nline1\nline2\n\nline"), []byte("a\nline1\nline2\nb\nlin"), []byte{4, 4, 4}, []byte{})
	f.Add([]byte("|***x|x **"), []byte("***x ***x"), []byte{0, 3}, []byte{})
	f.Add([]byte("\x00\x00\xff\x00\xff"), []byte("\x01\x00\xff\x00\xff\x02"), []byte{1}, []byte{})
	f.Add([]byte("|abab|ababab|bababa"), []byte("abababababab"), []byte{1, 2, 3, 4, 5}, []byte{2, 4})
	f.Add([]byte{}, []byte("nothing to redact"), []byte{3}, []byte{0})
	f.Add([]byte("|ab|c|xyz"), []byte("ab c xyz"), []byte{2}, []byte{})
	f.Fuzz(func(t *testing.T, valueSpec, in, splits, flushes []byte) {
		values := splitValues(valueSpec)
		if len(values) > 64 {
			values = values[:64]
		}
		long, star := false, false
		for _, v := range values {
			if len(v) >= minRedactLen {
				long = true
				star = star || bytes.IndexByte(v, '*') >= 0
			}
		}
		r := New(values)
		if r.Active() != long {
			t.Fatalf("Active() = %v with values %q", r.Active(), values)
		}
		if !long {
			if out := Bytes(in, values); !bytes.Equal(out, in) {
				t.Fatalf("values %q are all shorter than %d bytes, yet %q became %q", values, minRedactLen, in, out)
			}
		}
		// Chunk ends, and after which chunks to Flush.
		var cuts []int
		pos := 0
		for _, s := range splits {
			pos = min(len(in), pos+int(s%17))
			cuts = append(cuts, pos)
		}
		cuts = append(cuts, len(in))
		flushAfter := map[int]bool{}
		for _, b := range flushes {
			flushAfter[int(b)%len(cuts)] = true
		}
		checkSecretFree := func(what string, b []byte) {
			t.Helper()
			if star {
				return
			}
			for _, v := range values {
				if len(v) >= minRedactLen && bytes.Contains(b, v) {
					t.Fatalf("%s %q contains secret %q (values %q, input %q, cuts %v, flushes %v)", what, b, v, values, in, cuts, flushAfter)
				}
			}
		}
		var out, want []byte
		prev, segStart := 0, 0
		for i, c := range cuts {
			chunk := bytes.Clone(in[prev:c])
			w := r.Write(chunk)
			checkSecretFree("Write output", w)
			out = append(out, w...)
			clear(chunk) // the caller reuses its buffer
			if r.Active() && len(r.held) > r.m.maxLen-1 {
				t.Fatalf("held %d bytes, more than maxLen-1 = %d", len(r.held), r.m.maxLen-1)
			}
			prev = c
			if flushAfter[i] || i == len(cuts)-1 {
				fl := r.Flush()
				checkSecretFree("Flush output", fl)
				out = append(out, fl...)
				if len(r.held) != 0 {
					t.Fatalf("Flush left %d bytes held", len(r.held))
				}
				want = append(want, Bytes(in[segStart:c], values)...)
				segStart = c
			}
		}
		if !bytes.Equal(out, want) {
			t.Fatalf("stream output %q, want %q (Bytes per flushed segment; values %q, input %q, cuts %v, flushes %v)",
				out, want, values, in, cuts, flushAfter)
		}
		if len(out) > len(in) {
			t.Fatalf("output %q is longer than input %q", out, in)
		}
		whole := Bytes(in, values)
		if len(whole) > len(in) {
			t.Fatalf("Bytes output %q is longer than input %q", whole, in)
		}
		checkSecretFree("Bytes output", whole)
		if !star {
			if again := Bytes(whole, values); !bytes.Equal(again, whole) {
				t.Fatalf("Bytes is not idempotent: %q then %q (values %q)", whole, again, values)
			}
		}
	})
}
