package tailbuf

import (
	"bytes"
	"fmt"
	"testing"
	"unicode/utf8"
)

// The tail holds exactly the last Max bytes (less at most a character's
// split), never splits a character, and counts what it dropped.
func TestTailKeepsTheNewestBytes(t *testing.T) {
	for _, max := range []int64{0, 1, 7, 100, 4096} {
		tl := Tail{Max: max}
		var all bytes.Buffer
		for i := 0; i < 500; i++ {
			p := []byte(fmt.Sprintf("%d:é€%s|", i, bytes.Repeat([]byte("x"), i%13)))
			all.Write(p)
			tl.Add(Chunk{Stream: uint8(1 + i%2), Seq: uint64(i + 1), Data: p})
		}
		var got bytes.Buffer
		last := uint64(0)
		for _, c := range tl.Take() {
			if c.Seq <= last {
				t.Errorf("max %d: chunks out of order", max)
			}
			last = c.Seq
			got.Write(c.Data)
		}
		if int64(got.Len()) != tl.Bytes() || tl.Bytes()+tl.Dropped() != int64(all.Len()) {
			t.Errorf("max %d: holds %d (said %d), dropped %d, of %d", max, got.Len(), tl.Bytes(), tl.Dropped(), all.Len())
		}
		if int64(got.Len()) > max || int64(got.Len()) < max-3 {
			t.Errorf("max %d: holds %d bytes", max, got.Len())
		}
		if !bytes.HasSuffix(all.Bytes(), got.Bytes()) || !utf8.Valid(got.Bytes()) {
			t.Errorf("max %d: %q is not the valid end of the output", max, got.Bytes())
		}
		if len(tl.Take()) != 0 {
			t.Errorf("max %d: Take did not empty the tail", max)
		}
	}
}
