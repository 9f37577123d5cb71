package docker

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/blkiodev"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/client"

	cronium "github.com/cronium/executor"
	"github.com/cronium/executor/agent"
	"github.com/cronium/executor/netguard"
	"github.com/cronium/executor/session"
)

// box is one sandbox's container and host directory: the Docker half of a
// sandbox (session.Box); the session package drives its agent.
type box struct {
	e    *Engine
	spec cronium.Spec
	name string
	dir  string
	// stateDir holds its socket directory: the engine's, or an adopted
	// execution's dead node's.
	stateDir string
	ln       *net.UnixListener
	id       string          // container id
	lease    *netguard.Lease // the sandbox's address and network rules, if it has a network

	lifetime   time.Duration // pooled sandboxes: how long past one run's deadline they may live
	autoRemove bool          // the engine removes the container when its agent exits
	scratch    *scratch      // the disk-backed /workspace of a sandbox with disk I/O caps
	notes      []string      // how its limits are enforced, where that is not plain (Result.Enforcement)
}

var _ session.Box = (*box)(nil)

// newBox prepares the sandbox of a checked spec. A cold run's container
// without network or files to collect removes itself when its agent exits.
func (e *Engine) newBox(spec cronium.Spec, lifetime time.Duration, cold bool) *box {
	return &box{e: e, spec: spec, name: sandboxName(spec.ID), lifetime: lifetime, stateDir: e.cfg.StateDir,
		autoRemove: cold && !spec.Network.Networked() && spec.Collect == nil && spec.Workspace == nil && !spec.Limits.IOLimited()}
}

// Ref implements session.Box.
func (s *box) Ref() string { return s.id }

// relisten listens again on the socket of a sandbox whose host process
// died, for its agent to redial.
func (s *box) relisten() (err error) {
	s.dir, s.ln, err = session.Relisten(s.stateDir, s.name)
	return err
}

// Create implements session.Box: the host directory and socket, the
// network rules (before the container exists: fail closed), the container.
func (s *box) Create(ctx context.Context) error {
	e, spec := s.e, s.spec
	dir, err := session.SandboxDir(e.cfg.StateDir, s.name)
	if err != nil {
		// Another run of the same id owns it: Remove must leave it alone.
		return fmt.Errorf("execution %s: %w", spec.ID, err)
	}
	s.dir = dir
	if s.ln, err = session.ListenSandbox(s.dir); err != nil {
		return err
	}

	l, p := spec.Limits, spec.Profile
	now := time.Now()
	deadline := now.Add(e.cfg.StartTimeout + l.Timeout + l.Grace + e.cfg.Backstop + s.lifetime + spec.KeepFailed)
	labels := map[string]string{
		LabelManaged:   "true",
		LabelExecution: spec.ID,
		LabelNode:      e.cfg.NodeID,
		LabelCreated:   strconv.FormatInt(now.Unix(), 10),
		LabelDeadline:  strconv.FormatInt(deadline.Unix(), 10),
		LabelSandbox:   s.name,
		LabelUser:      fmt.Sprintf("%d:%d", p.UID, p.GID),
	}
	if b, err := json.Marshal(l); err == nil {
		labels[LabelLimits] = string(b)
	}
	tmpfs := func(size cronium.Size) string {
		return fmt.Sprintf("rw,nosuid,nodev,noexec,size=%d,mode=1777", int64(size))
	}
	pids := l.Pids + agent.AgentThreads      // the agent's threads, made at its start, come on top
	netMode := container.NetworkMode("none") // networked sandboxes are plugged in by the guard
	capDrop := p.DropCaps
	var capAdd []string
	if len(p.DropCaps) == 1 && p.DropCaps[0] == "ALL" {
		capAdd = p.AgentCaps
	}
	var resolv string
	if spec.Network.Networked() {
		// Fail closed: the rules exist before the container does.
		g, rc, err := e.net.Get(ctx)
		if err != nil {
			return fmt.Errorf("network policy: %w", err)
		}
		attach := g.Attach
		if spec.Audit {
			attach = g.AttachAudited
		}
		if s.lease, err = attach(ctx, spec.ID, spec.Network); err != nil {
			return fmt.Errorf("network policy: %w", err)
		}
		resolv = rc
		// IPv6 is switched off in the sandbox by the guard when it plugs it in
		// (a Docker sysctl costs ~25 ms of container start), and dropped on the host.
		if len(capAdd) == 0 && spec.Network.Mode != cronium.NetworkFull {
			// Raw sockets could forge another sandbox's source address.
			capDrop = append(append([]string(nil), capDrop...), "NET_RAW")
		}
		labels[LabelNetwork] = spec.Network.String()
	}
	var secOpt []string
	if p.NoNewPrivileges {
		secOpt = append(secOpt, "no-new-privileges")
	}
	shares := int64(l.CPUGuaranteed * 1024)
	if shares < 2 {
		shares = 2
	}
	cfg := &container.Config{
		Hostname:   "cronium",
		User:       "0:0",
		Entrypoint: []string{agent.BinaryPath},
		Cmd:        []string{},
		WorkingDir: agent.Workspace,
		Labels:     labels,
	}
	host := &container.HostConfig{
		NetworkMode: netMode,
		Mounts: []mount.Mount{
			{Type: mount.TypeBind, Source: e.agentPath, Target: agent.BinaryPath, ReadOnly: true},
			// Read-only: the agent only connects to the socket in it (a
			// socket needs no write access to its file system), and a
			// script running as root in its container (compat) must not
			// write into a host directory.
			{Type: mount.TypeBind, Source: s.dir, Target: agent.HostDir, ReadOnly: true},
			{Type: mount.TypeBind, Source: e.libPath, Target: agent.LibDir, ReadOnly: true},
		},
		Tmpfs: map[string]string{
			"/tmp": tmpfs(l.TmpSize),
			// The runtime API socket; root-owned, the socket itself is open to the script.
			agent.RuntimeDir: "rw,nosuid,nodev,noexec,size=1m,mode=0755",
			// Secrets: owned by the script user alone; the agent writes them as that user.
			agent.SecretsDir: e.dialect.secretsTmpfs(p),
		},
		ShmSize:        int64(l.ShmSize()), // tmpfs: within the memory limit with the other mounts (Limits.TmpfsBudget)
		ReadonlyRootfs: p.ReadOnlyRoot,
		CapDrop:        capDrop,
		CapAdd:         capAdd,
		SecurityOpt:    secOpt,
		OomScoreAdj:    500,
		Resources: container.Resources{
			Memory:            int64(l.Memory),
			MemorySwap:        int64(l.Memory), // equal to Memory: no swap
			MemoryReservation: int64(l.MemoryReservation),
			CPUPeriod:         100000,
			CPUQuota:          int64(l.CPUs * 100000),
			CPUShares:         shares,
			PidsLimit:         &pids,
			Ulimits: []*container.Ulimit{
				{Name: "nofile", Soft: l.NoFile, Hard: l.NoFile},
				{Name: "nproc", Soft: min(l.NProc, session.HostNProc()), Hard: min(l.NProc, session.HostNProc())},
			},
		},
	}
	e.dialect.adjust(cfg, host, p, e.seccomp)
	if s.autoRemove {
		// The engine removes the container once its agent exits: the
		// result does not wait for the removal (Remove).
		host.AutoRemove = true
	}
	if resolv != "" {
		host.Mounts = append(host.Mounts, mount.Mount{Type: mount.TypeBind, Source: resolv, Target: "/etc/resolv.conf", ReadOnly: true})
	}
	switch ws := spec.Workspace; {
	case ws != nil:
		dir, err := e.workspaceDir(ws)
		if err != nil {
			return err
		}
		host.Mounts = append(host.Mounts, mount.Mount{Type: mount.TypeBind, Source: dir, Target: agent.Workspace})
		if l.IOLimited() {
			s.notes = append(s.notes, "disk I/O caps: not applied to a persistent user workspace")
		}
	case l.IOLimited():
		if s.scratch, s.notes, err = e.newScratch(s.name, l); err != nil {
			return err
		}
		host.Mounts = append(host.Mounts, mount.Mount{Type: mount.TypeBind, Source: s.scratch.dir, Target: agent.Workspace})
		if l.IOReadBPS > 0 {
			host.Resources.BlkioDeviceReadBps = []*blkiodev.ThrottleDevice{{Path: s.scratch.dev, Rate: uint64(l.IOReadBPS)}}
		}
		if l.IOWriteBPS > 0 {
			host.Resources.BlkioDeviceWriteBps = []*blkiodev.ThrottleDevice{{Path: s.scratch.dev, Rate: uint64(l.IOWriteBPS)}}
		}
	default:
		host.Tmpfs[agent.Workspace] = tmpfs(l.WorkspaceSize)
	}
	if spec.Collect != nil {

		// A volume, not a tmpfs: the engine reads the files back from it
		// (it cannot read a tmpfs). The image's directory lends it its owner.
		host.Mounts = append(host.Mounts, mount.Mount{Type: mount.TypeVolume, Target: spec.CollectPath})
	}
	image := spec.Image
	if spec.ImageID != "" {
		image = spec.ImageID // what Image named at dispatch, whatever it names now
	}
	opts := client.ContainerCreateOptions{Config: cfg, HostConfig: host, Name: "cronium-" + s.name, Image: image}
	r, err := e.cli.ContainerCreate(ctx, opts)
	if cerrdefs.IsConflict(err) {
		// The name is this execution's: an earlier container of it is
		// being removed (a re-attach found that its script never started,
		// and its agent exited). Once it is gone, the name is free.
		e.waitGone(ctx, opts.Name)
		r, err = e.cli.ContainerCreate(ctx, opts)
	}
	if err != nil {
		if cerrdefs.IsNotFound(err) {
			how := "build it with `cronium images build` (or `make images`)"
			if e.dialect == podman {
				how = "build it with `cronium images build --engine podman`, or copy it from Docker with scripts/podman-images.sh"
			}
			switch {
			case strings.Contains(spec.Image, "/pkgs-"):
				how = "it is an event's package layer, removed since: apply the event again to rebuild it"
			case strings.Contains(spec.Image, "@sha256:"):
				how = "it is an event's custom image, removed since: apply the event again to pull it"
			}
			return fmt.Errorf("%w: image %s is not in the engine at %s: %s", cronium.ErrNotFound, spec.Image, e.cli.DaemonHost(), how)
		}
		return fmt.Errorf("create container for execution %s: %w", spec.ID, err)
	}
	s.id = r.ID
	return nil
}

// Start implements session.Box.
func (s *box) Start(ctx context.Context) error {
	if _, err := s.e.cli.ContainerStart(ctx, s.id, client.ContainerStartOptions{}); err != nil {
		return fmt.Errorf("start container for execution %s: %w", s.spec.ID, err)
	}
	return nil
}

// Ready implements session.Box: a networked sandbox's link is isolated and
// its bandwidth capped before the script exists.
func (s *box) Ready(ctx context.Context) error {
	if s.lease == nil {
		return nil
	}
	r, err := s.e.cli.ContainerInspect(ctx, s.id, client.ContainerInspectOptions{})
	if err != nil {
		return fmt.Errorf("inspect container: %w", err)
	}
	st := r.Container.State
	if st == nil || !st.Running || st.Pid <= 0 {
		return fmt.Errorf("container %.12s is not running", s.id)
	}
	// The network namespace of the container's first process: Podman has
	// no SandboxKey without a network of its own, Docker's is the same
	// namespace.
	ns := ""
	if r.Container.NetworkSettings != nil {
		ns = r.Container.NetworkSettings.SandboxKey
	}
	if ns == "" {
		ns = "/proc/" + strconv.Itoa(st.Pid) + "/ns/net"
	}
	return s.lease.Link(ctx, ns)
}

// Connect implements session.Box: it waits up to timeout for the agent to
// dial the sandbox socket and say hello; a done ctx closes the listener.
func (s *box) Connect(ctx context.Context, timeout time.Duration) (*agent.Session, error) {
	s.ln.SetDeadline(time.Now().Add(timeout))
	type accepted struct {
		sess *agent.Session
		err  error
	}
	ch := make(chan accepted, 1)
	go func() { // ends at the listener deadline or when the listener is closed
		c, err := s.ln.AcceptUnix()
		if err != nil {
			ch <- accepted{nil, err}
			return
		}
		c.SetDeadline(time.Now().Add(s.e.cfg.StartTimeout))
		sess, err := agent.Handshake(c)
		if err != nil {
			c.Close()
		} else {
			c.SetDeadline(time.Time{})
		}
		ch <- accepted{sess, err}
	}()
	select {
	case a := <-ch:
		return a.sess, a.err
	case <-ctx.Done():
		s.ln.Close()
		if a := <-ch; a.sess != nil {
			a.sess.Close()
		}
		return nil, ctx.Err()
	}
}

// State implements session.Box.
func (s *box) State(ctx context.Context) (session.State, error) {
	r, err := s.e.cli.ContainerInspect(ctx, s.id, client.ContainerInspectOptions{})
	if err != nil {
		if cerrdefs.IsNotFound(err) {
			return session.State{Status: "removed"}, nil
		}
		return session.State{}, err
	}
	st := r.Container.State
	if st == nil {
		return session.State{}, fmt.Errorf("container %.12s has no state", s.id)
	}
	out := session.State{Running: st.Running, OOMKilled: st.OOMKilled, ExitCode: st.ExitCode, Status: string(st.Status), Error: st.Error}
	if !out.OOMKilled && !out.Running {
		out.OOMKilled = s.e.dialect.oomKilled(s.id, st.ExitCode)
	}
	return out, nil
}

// Collect implements session.Box: the engine reads the files from inside
// the container, so the host never follows a path the script made.
func (s *box) Collect(ctx context.Context, path string) (io.ReadCloser, error) {
	r, err := s.e.cli.CopyFromContainer(ctx, s.id, client.CopyFromContainerOptions{SourcePath: path})
	if err != nil {
		return nil, err
	}
	return r.Content, nil
}

// BeginRun implements session.Box: a networked sandbox counts the run's traffic from now.
func (s *box) BeginRun(ctx context.Context) {
	if s.lease != nil {
		s.lease.StartRun(ctx)
	}
}

// AfterReset implements session.Box: the processes are gone, so are their
// sockets; the proxy's ends go too.
func (s *box) AfterReset() {
	if s.lease != nil {
		s.lease.DropConnections()
	}
}

// Usage implements session.Box.
func (s *box) Usage(context.Context) *cronium.NetworkUsage {
	if s.lease == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	u := s.lease.Usage(ctx)
	return &u
}

// Pause implements session.Box (cgroup freezer).
func (s *box) Pause(ctx context.Context) error {
	_, err := s.e.cli.ContainerPause(ctx, s.id, client.ContainerPauseOptions{})
	return err
}

// Unpause implements session.Box.
func (s *box) Unpause(ctx context.Context) error {
	_, err := s.e.cli.ContainerUnpause(ctx, s.id, client.ContainerUnpauseOptions{})
	return err
}

// Remove implements session.Box: the container, its network rules and the
// host directory, whatever happened. A finished container that removes
// itself is left to the engine; a watchdog removes it if it lingers.
func (s *box) Remove(finished bool) {
	if s.ln != nil {
		s.ln.Close()
	}
	if s.id != "" {
		if finished && s.autoRemove {
			s.e.watch(s.id, s.spec.ID)
		} else if err := s.e.remove(context.Background(), s.id); err != nil {
			s.e.log.Error("remove container; gc will retry", "container", s.id, "execution_id", s.spec.ID, "err", err)
		}
	}
	if s.lease != nil {
		s.lease.Release()
	}
	if s.dir != "" {
		os.RemoveAll(s.dir)
	}
	if s.scratch != nil {
		if err := s.scratch.remove(); err != nil {
			s.e.log.Error("remove the sandbox's disk workspace; gc will retry", "execution_id", s.spec.ID, "err", err)
		}
	}
}

// Keep implements session.Keeper: the sandbox's network goes (its link
// is deleted, leaving lo), then it is frozen.
func (s *box) Keep(ctx context.Context) error {
	if s.lease != nil {
		s.lease.Release()
		s.lease = nil
	}
	return s.Pause(ctx)
}

// Leave implements session.Keeper: the socket goes; the container, its
// directory and its disk workspace stay until Discard or GC.
func (s *box) Leave() {
	if s.ln != nil {
		s.ln.Close()
	}
}

// Notes implements session's enforcement notes: how this sandbox's limits
// are enforced where that is not plain.
func (s *box) Notes() []string { return s.notes }

// remove force-removes container id with its anonymous volumes. Podman
// may refuse a container that is stopping at that moment ("container
// state improper"): it is tried again.
func (e *Engine) remove(ctx context.Context, id string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var err error
	for try := 0; try < 5; try++ {
		_, err = e.cli.ContainerRemove(ctx, id, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true})
		if err == nil || cerrdefs.IsNotFound(err) {
			return nil
		}
		if ctx.Err() != nil || (cerrdefs.IsConflict(err) && strings.Contains(err.Error(), "in progress")) {
			return nil // being removed already (by the engine: AutoRemove)
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Duration(try+1) * 100 * time.Millisecond):
		}
	}
	return err
}

// waitGone waits (up to 30s) until no container is named name.
func (e *Engine) waitGone(ctx context.Context, name string) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for ctx.Err() == nil {
		if _, err := e.cli.ContainerInspect(ctx, name, client.ContainerInspectOptions{}); cerrdefs.IsNotFound(err) {
			return
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// watch removes a self-removing container whose removal did not happen
// within removeWait (its agent did not exit). Close stops the watchers.
func (e *Engine) watch(id, execution string) {
	e.pending.Add(1)
	go func() { // owned by the engine: Close cancels and waits
		defer e.pending.Done()
		ctx, cancel := context.WithTimeout(e.bg, removeWait)
		defer cancel()
		w := e.cli.ContainerWait(ctx, id, client.ContainerWaitOptions{Condition: container.WaitConditionRemoved})
		select {
		case <-w.Result:
			return
		case err := <-w.Error:
			if cerrdefs.IsNotFound(err) || e.bg.Err() != nil {
				return
			}
		}
		if e.bg.Err() != nil {
			return // closing: GC finds it by its deadline label
		}
		if err := e.remove(context.WithoutCancel(e.bg), id); err != nil {
			e.log.Error("remove container; gc will retry", "container", id, "execution_id", execution, "err", err)
		}
	}()
}

// removeWait is how long a finished container may take to remove itself.
const removeWait = 15 * time.Second
