// Package pgtest starts a real PostgreSQL server for tests: Debian's
// postgresql package, a data directory of its own in a temporary
// directory, a unix socket there and no TCP port, run as the postgres
// user. Nothing of the machine's own clusters is touched.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// Server is a running PostgreSQL server.
type Server struct {
	dir, data string
	as        func(name string, args ...string) *exec.Cmd
	cmd       *exec.Cmd
	done      chan error
	// URL connects to its database "cronium" as the superuser "cronium".
	URL string
}

// binDir is the newest installed PostgreSQL's binaries.
func binDir() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool {
		vi, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[i])))
		vj, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[j])))
		return vi < vj
	})
	for i := len(dirs) - 1; i >= 0; i-- {
		if _, err := os.Stat(filepath.Join(dirs[i], "initdb")); err == nil {
			return dirs[i], nil
		}
	}
	return "", errors.New("no PostgreSQL found in /usr/lib/postgresql: apt-get install postgresql (scripts/setup.sh does)")
}

// Start initialises a cluster in a new temporary directory and starts it.
// Stop ends it and removes the directory.
func Start(ctx context.Context) (*Server, error) {
	bin, err := binDir()
	if err != nil {
		return nil, err
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("the postgres user: %w (apt-get install postgresql makes it)", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	dir, err := os.MkdirTemp("", "crpg")
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*Server, error) {
		os.RemoveAll(dir)
		return nil, err
	}
	if err := os.Chown(dir, uid, gid); err != nil {
		return fail(err)
	}
	as := func(name string, args ...string) *exec.Cmd {
		c := exec.Command(filepath.Join(bin, name), args...)
		c.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, Setpgid: true}
		c.Env = []string{"PATH=/usr/bin:/bin", "LANG=C.UTF-8"}
		c.Dir = dir
		return c
	}
	data := filepath.Join(dir, "data")
	if out, err := as("initdb", "-D", data, "-A", "trust", "-U", "cronium", "-E", "UTF8", "--no-sync").CombinedOutput(); err != nil {
		return fail(fmt.Errorf("initdb: %v\n%s", err, out))
	}
	s := &Server{dir: dir, data: data, as: as, done: make(chan error, 1)}
	if err := s.launch(ctx); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	c, err := pgx.Connect(ctx, "postgres://cronium@/postgres?host="+dir)
	if err == nil {
		_, err = c.Exec(ctx, "CREATE DATABASE cronium")
		c.Close(ctx)
	}
	if err != nil {
		s.Stop()
		return nil, fmt.Errorf("create the test database: %w", err)
	}
	s.URL = "postgres://cronium@/cronium?host=" + dir
	return s, nil
}

// launch starts postgres on the data directory and waits until it
// accepts connections.
func (s *Server) launch(ctx context.Context) error {
	logf, err := os.OpenFile(filepath.Join(s.dir, "postgres.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	// No TCP (listen_addresses ''), the socket in our directory; no fsync:
	// a test database survives its server's crash (Kill), not the machine's.
	s.cmd = s.as("postgres", "-D", s.data, "-k", s.dir, "-c", "listen_addresses=", "-c", "fsync=off",
		"-c", "full_page_writes=off", "-c", "max_connections=200")
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	if err := s.cmd.Start(); err != nil {
		return fmt.Errorf("start postgres: %w", err)
	}
	go func() { s.done <- s.cmd.Wait() }()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		c, err := pgx.Connect(ctx, "postgres://cronium@/postgres?host="+s.dir)
		if err == nil {
			c.Close(ctx)
			return nil
		}
		select {
		case werr := <-s.done:
			log, _ := os.ReadFile(filepath.Join(s.dir, "postgres.log"))
			return fmt.Errorf("postgres exited: %v\n%s", werr, log)
		default:
		}
		if time.Now().After(deadline) {
			syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
			<-s.done
			return fmt.Errorf("postgres did not accept connections within 30s: %w", err)
		}
	}
}

// Restart starts the server again on its data, after Kill: a database
// that comes back.
func (s *Server) Restart(ctx context.Context) error {
	<-s.done // Kill's
	return s.launch(ctx)
}

// Stop shuts the server down (fast shutdown) and removes its directory.
func (s *Server) Stop() {
	if s.cmd != nil && s.cmd.Process != nil {
		s.cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-s.done:
		case <-time.After(30 * time.Second):
			syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
			<-s.done
		}
	}
	os.RemoveAll(s.dir)
}

// Kill ends the server with SIGKILL, as a crash (its directory stays until Stop).
func (s *Server) Kill() {
	syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
	<-s.done
	s.done <- nil // for Stop
}

// NewDatabase creates an empty database on the server and returns its URL.
func (s *Server) NewDatabase(ctx context.Context, name string) (string, error) {
	c, err := pgx.Connect(ctx, s.URL)
	if err != nil {
		return "", fmt.Errorf("connect: %w", err)
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", fmt.Errorf("create database %s: %w", name, err)
	}
	return "postgres://cronium@/" + name + "?host=" + s.dir, nil
}
