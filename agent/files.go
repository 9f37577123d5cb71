package agent

import (
	"fmt"
	"os"
	"strings"
	"syscall"
)

// writeFiles writes the script's other files under dir. Every folder is
// opened with O_NOFOLLOW from the one above it, and every file is created
// with O_EXCL|O_NOFOLLOW, so nothing a previous run planted in a kept
// workspace (a symbolic link, say) can redirect a write out of it. Folders
// are 0755 and files 0444, owned by the agent: the script reads them and
// cannot replace them.
func writeFiles(dir string, files map[string][]byte) error {
	root, err := syscall.Open(dir, syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", dir, err)
	}
	defer syscall.Close(root)
	for p, data := range files {
		if err := writeScriptFile(root, p, data); err != nil {
			return fmt.Errorf("file %s: %w", p, err)
		}
	}
	return nil
}

func writeScriptFile(root int, p string, data []byte) error {
	parts := strings.Split(p, "/")
	for _, c := range parts {
		if c == "" || c[0] == '.' {
			return fmt.Errorf("bad path")
		}
	}
	fd := root
	for _, c := range parts[:len(parts)-1] {
		err := syscall.Mkdirat(fd, c, 0o755)
		if err != nil && err != syscall.EEXIST {
			return err
		}
		next, err := syscall.Openat(fd, c, syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0)
		if fd != root {
			syscall.Close(fd)
		}
		if err != nil {
			return fmt.Errorf("folder %s: %w", c, err)
		}
		fd = next
	}
	if fd != root {
		defer syscall.Close(fd)
	}
	name := parts[len(parts)-1]
	syscall.Unlinkat(fd, name) // a previous run's, in a kept workspace; never follows a link
	f, err := syscall.Openat(fd, name, syscall.O_WRONLY|syscall.O_CREAT|syscall.O_EXCL|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0o444)
	if err != nil {
		return err
	}
	file := os.NewFile(uintptr(f), name)
	_, err = file.Write(data)
	if cerr := file.Close(); err == nil {
		err = cerr
	}
	return err
}
