package cronium

import (
	"strings"
	"testing"
)

// Disk caps come from the tier and may be lowered by the event; a cap
// above the tier's, or malformed, is refused naming the field.
func TestEventDiskCaps(t *testing.T) {
	tier := DefaultTiers()["free"]
	tier.Name, tier.IOWrite = "free", 20<<20
	for _, c := range []struct {
		read, write        string
		wantRead, wantWrit Size
		err                string
	}{
		{"", "", 0, 20 << 20, ""},
		{"5Mi", "10Mi/s", 5 << 20, 10 << 20, ""},
		{"", "30Mi", 0, 0, `resources.io_write: "30Mi" is above the free tier's cap of 20Mi per second`},
		{"fast", "", 0, 0, `resources.io_read: "fast" is not a size`},
		{"1Ki", "", 0, 0, `resources.io_read: "1Ki" is too small: want at least 64Ki per second`},
	} {
		ev := Event{Name: "e", Language: Bash, Script: "x", Resources: Resources{IORead: c.read, IOWrite: c.write}}
		l, err := ev.Limits(tier)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("read %q write %q: %v, want %q", c.read, c.write, err, c.err)
			}
			continue
		}
		if err != nil || l.IOReadBPS != c.wantRead || l.IOWriteBPS != c.wantWrit {
			t.Errorf("read %q write %q: %v %v/%v", c.read, c.write, err, l.IOReadBPS, l.IOWriteBPS)
		}
	}
}
