package main

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
)

// privateDir creates the data directory, or closes an existing one, to
// everyone but its owner (mode 0700): it holds the store, the master keys
// and the sandboxes' sockets. A directory made world-readable by something
// else (cronium run's state directory is the same default) is corrected.
func privateDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create data directory: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("data directory %s: %w", dir, err)
	}
	return nil
}

// lockDataDir makes sure one `cronium serve` at a time uses dir: two on one
// store would both run its queue and remove each other's sandboxes. The
// lock is held until the process ends (the returned file stays open).
func lockDataDir(dir string) (*os.File, error) {
	path := filepath.Join(dir, "serve.lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock data directory: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		b := make([]byte, 32)
		n, _ := f.Read(b)
		f.Close()
		holder := "another cronium serve"
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b[:n]))); err == nil {
			holder += fmt.Sprintf(" (pid %d)", pid)
		}
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%s is using the data directory %s: stop it, or give this server another data_dir (CRONIUM_DATA_DIR)", holder, dir)
		}
		return nil, fmt.Errorf("lock data directory %s: %w", dir, err)
	}
	f.Truncate(0)
	f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return f, nil
}

// nodeIDPattern is what a node ID may look like: it is a container label value.
var nodeIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)

// nodeID returns the node identity of the data directory dir, kept in its
// node-id file: the host name and a random suffix, made on first start,
// so that two servers on one host with their own data directories never
// take each other's sandboxes for their own. A data directory whose store
// has run executions under the plain host name (before node-id files)
// keeps it: its sandboxes are labelled with it.
func nodeID(dir string, usedHostName func(host string) bool) (string, error) {
	path := filepath.Join(dir, "node-id")
	if b, err := os.ReadFile(path); err == nil {
		id := strings.TrimSpace(string(b))
		if !nodeIDPattern.MatchString(id) {
			return "", fmt.Errorf("%s holds %q, which is not a node ID: delete the file to get a new one", path, id)
		}
		return id, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("read node ID: %w", err)
	}
	host, _ := os.Hostname()
	host = strings.Trim(regexp.MustCompile(`[^A-Za-z0-9._-]+`).ReplaceAllString(host, "-"), "-._")
	if len(host) > 40 {
		host = host[:40]
	}
	if host == "" {
		host = "node"
	}
	id := host
	if !usedHostName(host) {
		b := make([]byte, 3)
		rand.Read(b)
		id += "-" + hex.EncodeToString(b)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return "", fmt.Errorf("write node ID: %w", err)
	}
	defer f.Close()
	if _, err := f.WriteString(id + "\n"); err != nil {
		return "", fmt.Errorf("write node ID: %w", err)
	}
	return id, nil
}
