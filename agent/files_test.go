package agent

import (
	"os"
	"path/filepath"
	"testing"
)

// A link planted in a kept workspace never redirects the files' writes.
func TestWriteFilesNeverFollowsLinks(t *testing.T) {
	dir, outside := t.TempDir(), t.TempDir()
	os.Symlink(outside, filepath.Join(dir, "lib"))
	os.Symlink(filepath.Join(outside, "target"), filepath.Join(dir, "data.csv"))
	if err := writeFiles(dir, map[string][]byte{"lib/util.py": []byte("x")}); err == nil {
		t.Error("a file was written through a linked folder")
	}
	if err := writeFiles(dir, map[string][]byte{"data.csv": []byte("new")}); err != nil {
		t.Errorf("replace a planted link: %v", err)
	}
	if entries, _ := os.ReadDir(outside); len(entries) != 0 {
		t.Errorf("a write left the workspace: %v", entries)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "data.csv")); err != nil || string(b) != "new" {
		t.Errorf("data.csv = %q %v", b, err)
	}
	if fi, err := os.Lstat(filepath.Join(dir, "data.csv")); err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o444 {
		t.Errorf("data.csv is %v %v, want a regular read-only file", fi.Mode(), err)
	}
	if err := writeFiles(dir, map[string][]byte{"a/b/c.txt": []byte("deep"), "a/d.txt": []byte("d")}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "a/b/c.txt")); string(b) != "deep" {
		t.Errorf("a/b/c.txt = %q", b)
	}
}
