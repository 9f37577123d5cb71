// Package registrytest starts a real local image registry for tests:
// Debian's docker-registry (the Docker distribution registry 2.8) on a free
// loopback port, storing into a temporary directory. Install it with
// `apt-get install -y docker-registry` (scripts/setup.sh does).
package registrytest

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Binary is where Debian installs the registry; it is used when
// docker-registry is not on PATH.
const Binary = "/usr/bin/docker-registry"

// startTimeout bounds how long Start waits for GET /v2/ to answer.
const startTimeout = 10 * time.Second

// Registry is a running docker-registry process.
type Registry struct {
	// Host is "127.0.0.1:PORT", the registry part of image references.
	Host string
	// Dir is the registry's storage root.
	Dir string

	cmd      *exec.Cmd
	done     chan struct{} // closed when the process has exited
	waitErr  error         // the process's exit status, once done is closed
	stderr   *syncBuffer
	stopOnce sync.Once
	tokens   atomic.Int64 // token requests served, with WithTokenAuth
}

// Option configures Start.
type Option func(*options)

type options struct{ tokenAuth bool }

// WithTokenAuth makes the registry require Docker token auth: every request
// needs a bearer token from a local token server, which hands one to
// anyone who asks (like Docker Hub's anonymous pulls). It exercises a
// client's 401 → token → retry flow against the real registry.
func WithTokenAuth() Option { return func(o *options) { o.tokenAuth = true } }

// Start starts a docker-registry on a free 127.0.0.1 port and waits until
// GET /v2/ answers. The process is killed and reaped when the test ends.
// A missing binary fails the test with the command that installs it.
func Start(t testing.TB, opts ...Option) *Registry {
	t.Helper()
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	bin, err := exec.LookPath("docker-registry")
	if err != nil {
		if _, statErr := os.Stat(Binary); statErr != nil {
			t.Fatalf("docker-registry is not installed: run `apt-get install -y docker-registry` (scripts/setup.sh installs it)")
		}
		bin = Binary
	}
	dir := t.TempDir()
	r := &Registry{Dir: filepath.Join(dir, "storage")}
	var auth string
	if o.tokenAuth {
		auth = startTokenServer(t, dir, &r.tokens)
	}
	// The free port is found by listening and closing, so another process
	// may take it before the registry does; retry a few times if so.
	for attempt := 1; ; attempt++ {
		port, err := freePort()
		if err != nil {
			t.Fatalf("finding a free port: %v", err)
		}
		r.Host = fmt.Sprintf("127.0.0.1:%d", port)
		cfg := filepath.Join(dir, "config.yml")
		if err := os.WriteFile(cfg, []byte(config(r.Dir, r.Host, auth)), 0o600); err != nil {
			t.Fatalf("writing the registry config: %v", err)
		}
		err = r.start(bin, cfg, o.tokenAuth)
		if err == nil {
			break
		}
		r.kill()
		if attempt < 3 && strings.Contains(r.stderr.String(), "address already in use") {
			continue
		}
		t.Fatalf("docker-registry did not start: %v\nits stderr:\n%s", err, r.stderr.String())
	}
	t.Cleanup(r.Stop)
	return r
}

// config returns the registry's YAML configuration.
func config(storage, addr, auth string) string {
	return fmt.Sprintf(`version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
http:
  addr: %s
  secret: %s
%s`, storage, addr, rand.Text(), auth)
}

// start runs the process and waits until it answers.
func (r *Registry) start(bin, cfg string, tokenAuth bool) error {
	r.stderr = &syncBuffer{}
	r.done = make(chan struct{})
	r.cmd = exec.Command(bin, "serve", cfg)
	r.cmd.Stdout = r.stderr
	r.cmd.Stderr = r.stderr
	r.cmd.SysProcAttr = sysProcAttr()
	if err := r.cmd.Start(); err != nil {
		close(r.done)
		return fmt.Errorf("running %s: %w", bin, err)
	}
	go func() {
		r.waitErr = r.cmd.Wait()
		close(r.done)
	}()
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(startTimeout)
	for {
		select {
		case <-r.done:
			return fmt.Errorf("it exited before answering: %v", r.waitErr)
		default:
		}
		resp, err := client.Get("http://" + r.Host + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK || (tokenAuth && resp.StatusCode == http.StatusUnauthorized) {
				return nil
			}
			err = fmt.Errorf("GET /v2/ answered %s", resp.Status)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("GET http://%s/v2/ did not answer 200 within %v: %v", r.Host, startTimeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop kills the registry and waits for it to exit. It is safe to call
// more than once; Start arranges for it to run when the test ends.
func (r *Registry) Stop() { r.stopOnce.Do(r.kill) }

// kill kills the process, if it runs, and waits for it to exit.
func (r *Registry) kill() {
	if r.done == nil {
		return
	}
	select {
	case <-r.done:
	default:
		_ = r.cmd.Process.Kill()
		<-r.done
	}
}

// Stderr returns what the registry has logged so far.
func (r *Registry) Stderr() string { return r.stderr.String() }

// TokenRequests returns how many tokens the WithTokenAuth token server has
// handed out.
func (r *Registry) TokenRequests() int { return int(r.tokens.Load()) }

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// syncBuffer is a bytes.Buffer safe for the process's writer and readers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	if s == nil {
		return ""
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// GenerateKey returns a new ECDSA P-256 key pair (cosign's default) and
// the public key as PEM "PUBLIC KEY", like cosign.pub.
func GenerateKey(t testing.TB) (priv *ecdsa.PrivateKey, pubPEM []byte) {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("generating an ECDSA key: %v", err)
	}
	return priv, publicPEM(t, &priv.PublicKey)
}

// GenerateEd25519Key returns a new Ed25519 key pair and the public key as
// PEM "PUBLIC KEY".
func GenerateEd25519Key(t testing.TB) (priv ed25519.PrivateKey, pubPEM []byte) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatalf("generating an Ed25519 key: %v", err)
	}
	return priv, publicPEM(t, pub)
}

func publicPEM(t testing.TB, pub any) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatalf("encoding a public key: %v", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// Layer returns a gzip-compressed tar holding files (name → content), for
// PushImage. The same files always give the same bytes.
func Layer(t testing.TB, files map[string]string) []byte {
	t.Helper()
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for _, n := range names {
		hdr := &tar.Header{Name: n, Mode: 0o644, Size: int64(len(files[n])), Typeflag: tar.TypeReg, ModTime: time.Unix(0, 0)}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatalf("writing tar header %s: %v", n, err)
		}
		if _, err := tw.Write([]byte(files[n])); err != nil {
			t.Fatalf("writing tar entry %s: %v", n, err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatalf("closing tar: %v", err)
	}
	if err := zw.Close(); err != nil {
		t.Fatalf("closing gzip: %v", err)
	}
	return buf.Bytes()
}
