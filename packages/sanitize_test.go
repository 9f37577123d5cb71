package packages

import (
	"archive/tar"
	"bytes"
	"io"
	"strings"
	"testing"
)

type entry struct {
	name, link string
	typ        byte
	mode       int64
}

func tarOf(es ...entry) io.Reader {
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, e := range es {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Linkname: e.link, Mode: e.mode, Uid: 65534}
		if e.typ == tar.TypeReg {
			h.Size = 1
		}
		tw.WriteHeader(h)
		if e.typ == tar.TypeReg {
			tw.Write([]byte("x"))
		}
	}
	tw.Close()
	return &b
}

func TestSanitize(t *testing.T) {
	bad := []struct {
		name string
		in   []entry
		says string
	}{
		{"outside", []entry{{name: "out/boot/x", typ: tar.TypeReg, mode: 0o644}}, "outside the allowed directories"},
		{"system dir as link", []entry{{name: "out/usr/lib", typ: tar.TypeSymlink, link: "/tmp"}}, "system folder"},
		{"lib as link", []entry{{name: "out/lib", typ: tar.TypeSymlink, link: "/etc"}}, "system folder"},
		{"through a link", []entry{{name: "out/usr/share/x", typ: tar.TypeSymlink, link: "/etc"}, {name: "out/usr/share/x/passwd", typ: tar.TypeReg, mode: 0o644}}, "below a symbolic link"},
		{"hard link outside", []entry{{name: "out/usr/share/y", typ: tar.TypeLink, link: "out/.cronium/agent"}}, "hard link"},
		{"hard link not in out", []entry{{name: "out/usr/share/y", typ: tar.TypeLink, link: "/etc/shadow"}}, "hard link"},
		{"device", []entry{{name: "out/usr/share/dev", typ: tar.TypeChar}}, "not a file"},
		{"dotdot", []entry{{name: "out/../etc/x", typ: tar.TypeReg, mode: 0o644}}, ""},
	}
	for _, c := range bad {
		var out bytes.Buffer
		err := sanitize(tarOf(c.in...), &out)
		if c.says == "" {
			// "out/../etc/x" cleans to "etc/x", which is not under out/: skipped, never written.
			if err != nil || strings.Contains(out.String(), "etc/x") {
				t.Errorf("%s: %v, wrote %q", c.name, err, out.String())
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), c.says) {
			t.Errorf("%s: error %v, want %q", c.name, err, c.says)
		}
	}
	var out bytes.Buffer
	err := sanitize(tarOf(
		entry{name: "out/bin/tool", typ: tar.TypeReg, mode: 0o4755},
		entry{name: "out/var/cache/x", typ: tar.TypeReg, mode: 0o644},
		entry{name: "out/usr/share/doc-link", typ: tar.TypeSymlink, link: "../bin/tool"},
		entry{name: "out/usr/share/hard", typ: tar.TypeLink, link: "out/bin/tool"},
		entry{name: "out/etc/tool.conf", typ: tar.TypeReg, mode: 0o666},
	), &out)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(&out)
	got := map[string]*tar.Header{}
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		got[h.Name] = h
	}
	if h := got["usr/bin/tool"]; h == nil || h.Mode&0o6000 != 0 || h.Uid != 0 {
		t.Errorf("bin/tool: %+v, want usr/bin/tool without setuid, owned by root", h)
	}
	if got["var/cache/x"] != nil {
		t.Error("var/cache was kept")
	}
	if h := got["usr/share/hard"]; h == nil || h.Linkname != "usr/bin/tool" {
		t.Errorf("hard link %+v", h)
	}
	if h := got["etc/tool.conf"]; h == nil || h.Mode&0o002 != 0 {
		t.Errorf("world-writable mode kept: %+v", h)
	}
}
