package docker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"syscall"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	cronium "github.com/cronium/executor"
	"github.com/cronium/executor/agent"
)

var _ cronium.Debugger = (*Engine)(nil)

// debugShell starts bash where the image has it, else sh.
var debugShell = []string{"/bin/sh", "-c", "if command -v bash >/dev/null; then exec bash -i; else exec sh -i; fi"}

// kept finds the kept sandbox of execution id: this node's container of
// that execution, paused (a kept sandbox is frozen between debug sessions).
func (e *Engine) kept(ctx context.Context, id string) (container.Summary, error) {
	if !validID(id) {
		return container.Summary{}, fmt.Errorf("execution %q: %w", id, cronium.ErrNotFound)
	}
	list, err := e.cli.ContainerList(ctx, client.ContainerListOptions{All: true,
		Filters: client.Filters{}.Add("label", LabelManaged+"=true", LabelNode+"="+e.cfg.NodeID, LabelExecution+"="+id)})
	if err != nil {
		return container.Summary{}, fmt.Errorf("find the kept sandbox: %w", err)
	}
	for _, c := range list.Items {
		if c.State == container.StatePaused || c.State == container.StateRunning {
			return c, nil
		}
	}
	return container.Summary{}, fmt.Errorf("no kept sandbox of execution %s: %w", id, cronium.ErrNotFound)
}

// Debug implements cronium.Debugger: the sandbox is thawed for the shell
// (docker exec, as the script user, on a TTY, in /workspace) and frozen
// again after it. The shell has the container's limits, profile and
// seccomp, and no network (the sandbox's link went when it was kept).
func (e *Engine) Debug(ctx context.Context, id string, t cronium.Terminal) (int, error) {
	mu := e.debugLock(id)
	if !mu.TryLock() {
		return -1, fmt.Errorf("%w: a debug session of execution %s is open already", cronium.ErrConflict, id)
	}
	defer mu.Unlock()
	c, err := e.kept(ctx, id)
	if err != nil {
		return -1, err
	}
	user := c.Labels[LabelUser]
	if user == "" {
		user = "65534:65534"
	}
	if c.State == container.StatePaused {
		if _, err := e.cli.ContainerUnpause(ctx, c.ID, client.ContainerUnpauseOptions{}); err != nil {
			return -1, fmt.Errorf("thaw the kept sandbox: %w", err)
		}
	}
	defer func() { // frozen again, whatever happened (ctx may be done)
		e.cli.ContainerPause(context.WithoutCancel(ctx), c.ID, client.ContainerPauseOptions{})
	}()
	term := t.Term
	if term == "" {
		term = "xterm"
	}
	size := client.ConsoleSize{Height: uint(max(t.Size.Rows, 1)), Width: uint(max(t.Size.Cols, 1))}
	x, err := e.cli.ExecCreate(ctx, c.ID, client.ExecCreateOptions{User: user, TTY: true, AttachStdin: true, AttachStdout: true, AttachStderr: true,
		ConsoleSize: size, WorkingDir: agent.Workspace, Cmd: debugShell,
		Env: []string{"TERM=" + term, "HOME=" + agent.Workspace, "PS1=debug:\\w$ "}})
	if err != nil {
		return -1, fmt.Errorf("start a shell in the kept sandbox: %w", err)
	}
	att, err := e.cli.ExecAttach(ctx, x.ID, client.ExecAttachOptions{TTY: true, ConsoleSize: size})
	if err != nil {
		return -1, fmt.Errorf("attach to the shell: %w", err)
	}
	defer att.Close()
	// The size again, now that the shell runs: engines before API 1.42
	// ignore it at the start.
	e.cli.ExecResize(ctx, x.ID, client.ExecResizeOptions{Height: size.Height, Width: size.Width})
	go func() { // the user's keys: ends when the caller closes t.In (after Debug returns) or the connection goes
		io.Copy(att.Conn, t.In)
		att.CloseWrite()
	}()
	stop := context.AfterFunc(ctx, func() { att.Close() })
	defer stop()
	go func() { // resizes, until the shell ends
		for {
			select {
			case sz, ok := <-t.Resize:
				if !ok {
					return
				}
				e.cli.ExecResize(ctx, x.ID, client.ExecResizeOptions{Height: uint(sz.Rows), Width: uint(sz.Cols)})
			case <-ctx.Done():
				return
			}
		}
	}()
	_, copyErr := io.Copy(t.Out, att.Reader)
	att.Close()
	if ctx.Err() != nil {
		return -1, ctx.Err()
	}
	ins, err := e.cli.ExecInspect(context.WithoutCancel(ctx), x.ID, client.ExecInspectOptions{})
	if err != nil {
		return -1, fmt.Errorf("the shell's exit: %w", errors.Join(err, copyErr))
	}
	return ins.ExitCode, nil
}

// Discard implements cronium.Debugger.
func (e *Engine) Discard(ctx context.Context, id string) error {
	c, err := e.kept(ctx, id)
	if errors.Is(err, cronium.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := e.remove(ctx, c.ID); err != nil && !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("remove the kept sandbox: %w", err)
	}
	if err := e.removeScratch(c.Labels[LabelSandbox]); err != nil { // its disk workspace, if it had one
		e.log.Warn("remove a kept sandbox's disk workspace; gc will retry", "execution_id", id, "err", err)
	}
	e.debugMu.Lock()
	delete(e.debugs, id)
	e.debugMu.Unlock()
	return nil
}

// debugLock is the lock of execution id's debug sessions (one at a time).
func (e *Engine) debugLock(id string) *sync.Mutex {
	e.debugMu.Lock()
	defer e.debugMu.Unlock()
	if e.debugs == nil {
		e.debugs = map[string]*sync.Mutex{}
	}
	m, ok := e.debugs[id]
	if !ok {
		m = &sync.Mutex{}
		e.debugs[id] = m
	}
	return m
}

// Changes implements session's audit of file writes: the paths the
// sandbox added, changed or deleted in its root file system (its writable
// layer; the mounts, /tmp and /workspace, are not in it), at most 200.
func (s *box) Changes(ctx context.Context) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second) // a script that wrote 100,000 files does not hold its cleanup
	defer cancel()
	d, err := s.e.cli.ContainerDiff(ctx, s.id, client.ContainerDiffOptions{})
	if err != nil {
		return nil, err
	}
	var out []string
	for _, c := range d.Changes {
		if len(out) == 200 {
			break
		}
		kind := "changed"
		switch c.Kind {
		case container.ChangeAdd:
			kind = "wrote"
		case container.ChangeDelete:
			kind = "deleted"
		}
		out = append(out, kind+" "+c.Path)
	}
	return out, nil
}

// OOMReport implements session's OOM report: the kernel log's lines about
// this sandbox's out-of-memory kill (those naming its container, with
// their neighbours: the usage and limit before, the killed process after),
// at most 24 lines. Empty where the kernel log cannot be read.
func (s *box) OOMReport() string {
	// A raw descriptor: through os.File a non-blocking read would wait in
	// the runtime's poller instead of saying there is no more.
	fd, err := syscall.Open("/dev/kmsg", syscall.O_RDONLY|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if err != nil {
		return ""
	}
	defer syscall.Close(fd)
	var lines []string
	buf := make([]byte, 8192)
	for len(lines) < 100000 {
		n, err := syscall.Read(fd, buf)
		if err == syscall.EPIPE || err == syscall.EINTR {
			continue // records were overwritten while reading: go on with the next
		}
		if err != nil || n <= 0 {
			break // EAGAIN: no more
		}
		if _, msg, ok := strings.Cut(string(buf[:n]), ";"); ok {
			lines = append(lines, strings.SplitN(msg, "\n", 2)[0])
		}
	}
	keep := map[int]bool{}
	for i, l := range lines {
		if strings.Contains(l, s.id) || (len(s.id) > 12 && strings.Contains(l, s.id[:12])) {
			for j := max(0, i-1); j <= min(len(lines)-1, i+1); j++ {
				keep[j] = true
			}
		}
	}
	var out []string
	for i, l := range lines {
		if keep[i] {
			out = append(out, l)
		}
	}
	if len(out) > 24 {
		out = out[len(out)-24:]
	}
	return strings.Join(out, "\n")
}

// Inspect implements dispatch's engine view of a sandbox: the engine's
// own inspection of execution id's container while it exists (running,
// or kept), with the values of its environment hidden. It wraps
// ErrNotFound when the container is gone.
func (e *Engine) Inspect(ctx context.Context, id string) (json.RawMessage, error) {
	if !validID(id) {
		return nil, fmt.Errorf("execution %q: %w", id, cronium.ErrNotFound)
	}
	list, err := e.cli.ContainerList(ctx, client.ContainerListOptions{All: true,
		Filters: client.Filters{}.Add("label", LabelManaged+"=true", LabelNode+"="+e.cfg.NodeID, LabelExecution+"="+id)})
	if err != nil {
		return nil, err
	}
	if len(list.Items) == 0 {
		return nil, fmt.Errorf("the sandbox of execution %s is gone: %w", id, cronium.ErrNotFound)
	}
	r, err := e.cli.ContainerInspect(ctx, list.Items[0].ID, client.ContainerInspectOptions{})
	if err != nil {
		return nil, err
	}
	var v map[string]any
	if err := json.Unmarshal(r.Raw, &v); err != nil {
		return nil, err
	}
	if cfg, ok := v["Config"].(map[string]any); ok {
		if env, ok := cfg["Env"].([]any); ok {
			for i, kv := range env {
				s, _ := kv.(string)
				name, _, _ := strings.Cut(s, "=")
				switch name {
				case "PATH", "LANG", "HOME", "TERM":
				default:
					env[i] = name + "=***"
				}
			}
		}
	}
	return json.MarshalIndent(v, "", "  ")
}
