package redact

import (
	"bytes"
	"math/rand"
	"strings"
	"testing"
)

func vals(ss ...string) [][]byte {
	out := make([][]byte, len(ss))
	for i, s := range ss {
		out[i] = []byte(s)
	}
	return out
}

func TestRedactBytes(t *testing.T) {
	cases := []struct {
		name   string
		values []string
		in     string
		want   string
	}{
		{"none", []string{"hunter22"}, "nothing to see", "nothing to see"},
		{"one", []string{"hunter22"}, "pw=hunter22!", "pw=***!"},
		{"start and end", []string{"hunter22"}, "hunter22 and hunter22", "*** and ***"},
		{"repeated", []string{"hunter22"}, "hunter22hunter22hunter22", "*********"},
		{"self-overlapping", []string{"aaaa"}, "aaaaaaaaa", "******a"},
		{"overlap left first", []string{"abcdef", "cdefgh"}, "abcdefgh", "***gh"},
		{"overlap right only", []string{"abcdef", "cdefgh"}, "xxcdefghyy", "xx***yy"},
		{"longest first", []string{"pass", "password", "password123"}, "password123 password pass", "*** *** ***"},
		{"longest first any order", []string{"password123", "pass", "password"}, "passwor password1", "***wor ***1"},
		{"too short ignored", []string{"abc", "42", "x"}, "abc 42 x", "abc 42 x"},
		{"empty and duplicates", []string{"", "token", "token"}, "a token", "a ***"},
		{"no values", nil, "plain", "plain"},
		{"binary", []string{"\x00\xff\x00\xff"}, "\x01\x00\xff\x00\xff\x02", "\x01***\x02"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := string(Bytes([]byte(c.in), vals(c.values...))); got != c.want {
				t.Errorf("Bytes(%q, %q) = %q, want %q", c.in, c.values, got, c.want)
			}
			// Any split gives the same result.
			for cut := 0; cut <= len(c.in); cut++ {
				r := New(vals(c.values...))
				var out []byte
				out = append(out, r.Write([]byte(c.in[:cut]))...)
				out = append(out, r.Write([]byte(c.in[cut:]))...)
				out = append(out, r.Flush()...)
				if string(out) != c.want {
					t.Errorf("split at %d: %q, want %q", cut, out, c.want)
				}
			}
		})
	}
}

// streamCheck streams in through a Redactor in chunks whose ends are at cuts,
// checks the invariants, and returns the concatenated output.
func streamCheck(t testing.TB, values [][]byte, in []byte, cuts []int, secretFree bool) []byte {
	t.Helper()
	r := New(values)
	maxLen := r.m.maxLen
	var out []byte
	emit := func(chunk []byte) {
		if secretFree {
			for _, v := range r.m.values {
				if bytes.Contains(chunk, v) {
					t.Fatalf("emitted chunk %q contains secret %q (input %q, cuts %v)", chunk, v, in, cuts)
				}
			}
		}
		out = append(out, chunk...)
	}
	prev := 0
	for _, c := range append(cuts, len(in)) {
		chunk := bytes.Clone(in[prev:c]) // a fresh slice, as from a pipe read
		emit(r.Write(chunk))
		clear(chunk) // the caller reuses its buffer: nothing may depend on it
		if r.Active() && len(r.held) > maxLen-1 {
			t.Fatalf("held back %d bytes, more than maxLen-1 = %d", len(r.held), maxLen-1)
		}
		prev = c
	}
	emit(r.Flush())
	if r.Active() && len(r.held) != 0 {
		t.Fatalf("Flush left %d bytes held", len(r.held))
	}
	if want := Bytes(in, values); !bytes.Equal(out, want) {
		t.Fatalf("stream output %q != Bytes %q (input %q, values %q, cuts %v)", out, want, in, values, cuts)
	}
	if secretFree {
		for _, v := range r.m.values {
			if bytes.Contains(out, v) {
				t.Fatalf("output %q contains secret %q", out, v)
			}
		}
	}
	return out
}

// randomCuts returns sorted chunk end positions in [0, n].
func randomCuts(rng *rand.Rand, n int) []int {
	var cuts []int
	switch rng.Intn(4) {
	case 0: // every byte its own chunk
		for i := 1; i < n; i++ {
			cuts = append(cuts, i)
		}
	case 1: // one cut
		cuts = append(cuts, rng.Intn(n+1))
	default: // random cuts, possibly empty chunks
		pos := 0
		for pos < n {
			pos = min(n, pos+rng.Intn(6))
			cuts = append(cuts, pos)
		}
	}
	return cuts
}

func TestRedactorRandomSplits(t *testing.T) {
	secretSets := [][]string{
		{"s3cr3t"},
		{"abcdef", "cdefgh"},
		{"pass", "password", "password123"},
		{"aaaa"},
		{"abab", "ababab"},
		{"tok_ABCDEFGHIJKLMNOP", "ABCD", "NOPQ"},
		{"line1\nline2", "\nline"},
	}
	const filler = "abcdefgh-_ \n12pswor"
	rng := rand.New(rand.NewSource(1))
	for _, set := range secretSets {
		values := vals(set...)
		for iter := 0; iter < 400; iter++ {
			var b []byte
			// Texts start and end with a secret half of the time.
			if rng.Intn(2) == 0 {
				b = append(b, set[rng.Intn(len(set))]...)
			}
			for n := rng.Intn(12); n > 0; n-- {
				switch rng.Intn(4) {
				case 0: // a whole secret, possibly repeated back to back
					s := set[rng.Intn(len(set))]
					for k := 1 + rng.Intn(2); k > 0; k-- {
						b = append(b, s...)
					}
				case 1: // a prefix of a secret that never completes
					s := set[rng.Intn(len(set))]
					b = append(b, s[:rng.Intn(len(s))]...)
				default:
					for k := rng.Intn(5); k > 0; k-- {
						b = append(b, filler[rng.Intn(len(filler))])
					}
				}
			}
			if rng.Intn(2) == 0 {
				b = append(b, set[rng.Intn(len(set))]...)
			}
			for split := 0; split < 10; split++ {
				streamCheck(t, values, b, randomCuts(rng, len(b)), true)
			}
		}
	}
}

func TestRedactorEmitsEarly(t *testing.T) {
	r := New(vals("password"))
	if got := r.Write([]byte("hello world\n")); string(got) != "hello world\n" {
		t.Errorf("Write with no secret prefix at the end = %q, want everything emitted", got)
	}
	if got := r.Write([]byte("pw: pass")); string(got) != "pw: " {
		t.Errorf("Write ending in a secret prefix = %q, want %q", got, "pw: ")
	}
	if got := r.Write([]byte("port\n")); string(got) != "passport\n" {
		t.Errorf("Write completing a non-secret = %q, want %q", got, "passport\n")
	}
	if got := r.Write([]byte("passwor")); len(got) != 0 {
		t.Errorf("Write of a 7-byte prefix = %q, want nothing yet", got)
	}
	if got := r.Flush(); string(got) != "passwor" {
		t.Errorf("Flush = %q, want the held prefix", got)
	}
	if got := r.Flush(); got != nil {
		t.Errorf("second Flush = %q, want nil", got)
	}
}

func TestRedactorInactive(t *testing.T) {
	for _, r := range []*Redactor{New(nil), New(vals("", "abc")), nil} {
		if r.Active() {
			t.Fatal("Active() with nothing to redact")
		}
		p := []byte("abc and more")
		if got := r.Write(p); &got[0] != &p[0] || len(got) != len(p) {
			t.Error("inactive Write did not return p itself")
		}
		if got := r.Flush(); got != nil {
			t.Errorf("inactive Flush = %q, want nil", got)
		}
	}
	if !New(vals("abcd")).Active() {
		t.Error("Active() = false with a 4-byte value")
	}
}

func TestRedactorCopiesValues(t *testing.T) {
	v := []byte("secret-value")
	r := New([][]byte{v})
	copy(v, "XXXXXX")
	out := append(r.Write([]byte("a secret-value b")), r.Flush()...)
	if string(out) != "a *** b" {
		t.Errorf("after the caller changed its slice: %q, want %q", out, "a *** b")
	}
}

func FuzzRedactor(f *testing.F) {
	f.Add([]byte("pw=hunter22 and hunter22"), "hunter22", "", []byte{3, 1, 4})
	f.Add([]byte("abcdefgh xxcdefghyy"), "abcdef", "cdefgh", []byte{5, 0, 2, 7})
	f.Add([]byte("password123 password pass"), "password", "password123", []byte{1, 1, 1, 1, 1})
	f.Add([]byte("aaaaaaaaaaaaa"), "aaaa", "aaaaaa", []byte{2})
	f.Add([]byte("***x ***x"), "***x", "x **", []byte{0, 3})
	f.Add([]byte(""), "abcd", "", []byte{})
	f.Fuzz(func(t *testing.T, in []byte, s1, s2 string, splits []byte) {
		values := vals(s1, s2)
		var cuts []int
		pos := 0
		for _, s := range splits {
			pos = min(len(in), pos+int(s%16))
			cuts = append(cuts, pos)
		}
		// Values containing '*' can be recreated by the mask itself, so only
		// check that no secret comes out when they do not.
		secretFree := !strings.Contains(s1+s2, "*")
		streamCheck(t, values, in, cuts, secretFree)
	})
}
