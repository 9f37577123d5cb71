// Package podman is the Podman engine: rootful Podman from the Debian
// package, driven through its Docker-compatible API by package docker
// (which handles what Podman does differently). No daemon has to run:
// without a socket given, cronium starts Podman's API service itself
// (`podman system service`) on a socket in its state directory when it
// first needs it, and the service stops by itself once idle; the next
// call starts it again.
package podman

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	cronium "github.com/cronium/executor"
	"github.com/cronium/executor/docker"
)

func init() {
	cronium.RegisterEngine("podman", cronium.EngineDriver{Open: Open, CheckOptions: func(params map[string]string) error {
		_, err := options(params)
		return err
	}})
}

// options reads the engine's options: idle_timeout only.
func options(params map[string]string) (idle time.Duration, err error) {
	idle = IdleTimeout
	for k, v := range params {
		if k != "idle_timeout" {
			return 0, cronium.Invalid("engine_options."+k, v, "is not an option of the podman engine: it takes idle_timeout")
		}
		d, err := cronium.ParseDuration("engine_options.idle_timeout", v)
		if err != nil {
			return 0, err
		}
		if d < time.Second {
			return 0, cronium.Invalid("engine_options.idle_timeout", v, "is too short: want at least 1s, like 60s")
		}
		idle = d
	}
	return idle, nil
}

// IdleTimeout is how long the API service cronium starts stays up without
// a request, unless the engine option idle_timeout says otherwise.
const IdleTimeout = 60 * time.Second

// Open opens the Podman engine. With o.Host empty, the API service is
// started on demand (see Service). Engine options: idle_timeout, how long
// that service stays up idle (a duration, at least 1s; default 60s).
func Open(ctx context.Context, o cronium.EngineOptions) (cronium.Engine, error) {
	host := o.Host
	idle, err := options(o.Params)
	if err != nil {
		return nil, err
	}
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("%w: the podman engine is rootful Podman: run cronium as root (rootless Podman is not supported)", cronium.ErrUnsupported)
	}
	cfg := docker.Config{Host: host, AgentPath: o.AgentPath, StateDir: o.StateDir, NodeID: o.NodeID, Images: o.Images,
		Logger: o.Logger, Network: o.Network, Dialect: "podman"}
	if host == "" {
		stateDir := o.StateDir
		if stateDir == "" {
			stateDir = docker.DefaultStateDir()
		}
		svc, err := NewService(filepath.Join(stateDir, "podman"))
		if err != nil {
			return nil, err
		}
		svc.idle = idle
		cfg.Host, cfg.Dial = "unix://"+svc.Socket(), svc.Dial
	}
	return docker.New(ctx, cfg)
}

// Service is a Podman API service cronium starts when a connection needs
// it. Safe for concurrent use.
type Service struct {
	dir    string
	binary string
	idle   time.Duration
	mu     sync.Mutex // serialises starts within this process
}

// NewService prepares a service whose socket and lock live in dir. It
// fails at once, saying what to install, when there is no podman binary.
func NewService(dir string) (*Service, error) {
	bin, err := exec.LookPath("podman")
	if err != nil {
		return nil, fmt.Errorf("%w: the podman engine needs the podman binary, and none is on PATH: install it (apt-get install podman catatonit), or give the socket of a running Podman service with --docker-host unix:///run/podman/podman.sock", cronium.ErrUnavailable)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("podman service dir: %w", err)
	}
	if sock := filepath.Join(dir, "podman.sock"); len(sock) > 100 {
		return nil, cronium.Invalid("--state-dir", dir, fmt.Sprintf("is too long for the podman service's socket (%d bytes; unix sockets take at most 107): use a shorter --state-dir", len(sock)))
	}
	return &Service{dir: dir, binary: bin, idle: IdleTimeout}, nil
}

// Socket is the service's socket path.
func (s *Service) Socket() string { return filepath.Join(s.dir, "podman.sock") }

// Dial connects to the service's socket, starting the service first when
// nothing answers there.
func (s *Service) Dial(ctx context.Context, _, _ string) (net.Conn, error) {
	var d net.Dialer
	if c, err := d.DialContext(ctx, "unix", s.Socket()); err == nil {
		return c, nil
	}
	if err := s.start(ctx); err != nil {
		return nil, err
	}
	return d.DialContext(ctx, "unix", s.Socket())
}

// start starts the service unless another process did meanwhile, and
// waits until its socket accepts connections.
func (s *Service) start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	lock, err := os.OpenFile(filepath.Join(s.dir, "lock"), os.O_CREATE|os.O_RDWR|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return fmt.Errorf("podman service lock: %w", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("podman service lock: %w", err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	if answers(s.Socket()) {
		return nil // started by another process or call
	}
	os.Remove(s.Socket())
	logf, err := os.OpenFile(filepath.Join(s.dir, "service.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return fmt.Errorf("podman service log: %w", err)
	}
	defer logf.Close()
	cmd := exec.Command(s.binary, "system", "service", fmt.Sprintf("--time=%d", int(s.idle/time.Second)), "unix://"+s.Socket())
	cmd.Stdout, cmd.Stderr = logf, logf
	// Nothing of cronium's environment (tokens, keys) reaches the service.
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=/root", "LANG=C.UTF-8"}
	// Its own session: it outlives this process until idle, and a ^C to
	// cronium does not reach it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start the podman API service (%s system service): %w", s.binary, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }() // reaps it whenever it stops
	deadline := time.Now().Add(20 * time.Second)
	for !answers(s.Socket()) {
		select {
		case err := <-exited:
			return fmt.Errorf("%w: the podman API service exited at start (%v): see %s", cronium.ErrUnavailable, err, logf.Name())
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w: the podman API service did not answer on %s within 20s: see %s", cronium.ErrUnavailable, s.Socket(), logf.Name())
		}
	}
	return nil
}

// answers reports whether something accepts connections on the socket.
func answers(path string) bool {
	c, err := net.DialTimeout("unix", path, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}
