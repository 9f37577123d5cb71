package docker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
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
