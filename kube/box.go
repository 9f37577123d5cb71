package kube

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	cronium "github.com/cronium/executor"
	"github.com/cronium/executor/agent"
	"github.com/cronium/executor/netguard"
	"github.com/cronium/executor/session"
)

// box is one sandbox's Pod and host directory: the Kubernetes half of a
// sandbox (session.Box).
type box struct {
	e        *Engine
	spec     cronium.Spec
	name     string // sandboxName
	pod      string // the Pod's name, once created
	podUID   string
	dir      string // the socket directory on the node
	ln       *net.UnixListener
	lease    *netguard.Lease
	lifetime time.Duration
	agentPID int // the agent on the node, from the socket's peer credentials
}

var _ session.Box = (*box)(nil)

func (e *Engine) newBox(spec cronium.Spec, lifetime time.Duration) *box {
	return &box{e: e, spec: spec, name: sandboxName(spec.ID), lifetime: lifetime}
}

// Ref implements session.Box: the Pod's name.
func (s *box) Ref() string { return s.pod }

// relisten listens again on the socket of a sandbox whose host process
// died, for its agent to redial.
func (s *box) relisten() (err error) {
	s.dir, s.ln, err = session.Relisten(s.e.opts.StateDir, s.name)
	return err
}

// Create implements session.Box: the socket directory, the network rules
// of a networked sandbox (before the Pod exists: fail closed), the Pod.
func (s *box) Create(ctx context.Context) error {
	e, spec := s.e, s.spec
	dir, err := session.SandboxDir(e.opts.StateDir, s.name)
	if err != nil {
		// Another run of the same id owns it: Remove must leave it alone.
		return fmt.Errorf("execution %s: %w", spec.ID, err)
	}
	s.dir = dir
	if s.ln, err = session.ListenSandbox(s.dir); err != nil {
		return err
	}
	var resolv string
	if spec.Network.Networked() {
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
	}
	l := spec.Limits
	now := time.Now()
	behind := e.startTimeout + l.Timeout + l.Grace + e.backstop + s.lifetime
	pod := buildPod(podInput{
		spec: spec, name: s.name, namespace: e.o.Namespace, node: e.opts.NodeID, k8sNode: e.o.Node,
		selector: e.o.NodeSelector, runtime: e.o.RuntimeClass,
		agentPath: e.agentPath, libPath: e.libPath, hostDir: s.dir, resolv: resolv,
		created: now, deadline: now.Add(behind),
		// The cluster's backstop comes after the host's: the agent's
		// timeout, then the host's, then Kubernetes'.
		activeDeadline: behind + 30*time.Second,
	})
	created, err := e.cs.CoreV1().Pods(e.o.Namespace).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		if apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("%w: Pod %s of execution %s exists already", cronium.ErrInvalid, pod.Name, spec.ID)
		}
		return fmt.Errorf("create Pod for execution %s: %w", spec.ID, err)
	}
	s.pod, s.podUID = created.Name, string(created.UID)
	return nil
}

// Start implements session.Box: a Pod starts once created.
func (s *box) Start(context.Context) error { return nil }

// Connect implements session.Box: it waits up to timeout for the agent to
// dial the sandbox socket and say hello, watching the Pod meanwhile: a Pod
// that cannot be scheduled, whose image is not on the node or whose
// container ended fails at once, with the cluster's reason.
func (s *box) Connect(ctx context.Context, timeout time.Duration) (*agent.Session, error) {
	s.ln.SetDeadline(time.Now().Add(timeout))
	type accepted struct {
		sess *agent.Session
		pid  int
		err  error
	}
	ch := make(chan accepted, 1)
	go func() { // ends at the listener deadline or when the listener is closed
		c, err := s.ln.AcceptUnix()
		if err != nil {
			ch <- accepted{err: err}
			return
		}
		pid := peerPID(c)
		c.SetDeadline(time.Now().Add(s.e.startTimeout))
		sess, err := agent.Handshake(c)
		if err != nil {
			c.Close()
		} else {
			c.SetDeadline(time.Time{})
		}
		ch <- accepted{sess, pid, err}
	}()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	var fatal error
	pending := "" // why the scheduler has not placed the Pod yet
	for {
		select {
		case a := <-ch:
			if a.err != nil && fatal != nil {
				return nil, fatal
			}
			if a.err != nil && pending != "" {
				return nil, fmt.Errorf("%w; the Pod is still not scheduled: %s", a.err, pending)
			}
			s.agentPID = a.pid
			return a.sess, a.err
		case <-ctx.Done():
			s.ln.Close()
			if a := <-ch; a.sess != nil {
				a.sess.Close()
			}
			return nil, ctx.Err()
		case <-tick.C:
			if fatal != nil || s.pod == "" {
				continue
			}
			p, err := s.e.cs.CoreV1().Pods(s.e.o.Namespace).Get(ctx, s.pod, metav1.GetOptions{})
			if err != nil {
				if apierrors.IsNotFound(err) {
					fatal = fmt.Errorf("the Pod %s was deleted before its agent started", s.pod)
					s.ln.Close()
				}
				continue
			}
			pending = ""
			for _, c := range p.Status.Conditions {
				if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse {
					pending = strings.TrimSpace(c.Message)
				}
			}
			if fatal = startProblem(p, s.spec.Image); fatal != nil {
				s.ln.Close() // the accept above ends: return fatal
			}
		}
	}
}

// startProblem is why a Pod whose agent has not said hello never will, or nil.
func startProblem(p *corev1.Pod, image string) error {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Reason == corev1.PodReasonUnschedulable {
			if strings.Contains(c.Message, "Insufficient") {
				return nil // may fit once other Pods end: the start timeout decides
			}
			var sel []string
			for k, v := range p.Spec.NodeSelector {
				sel = append(sel, k+"="+v)
			}
			sort.Strings(sel)
			return fmt.Errorf("the Pod cannot be scheduled: %s (node selector %s)", strings.TrimSpace(c.Message), strings.Join(sel, ","))
		}
	}
	for _, cs := range p.Status.ContainerStatuses {
		if w := cs.State.Waiting; w != nil {
			switch w.Reason {
			case "ErrImageNeverPull", "ErrImagePull", "ImagePullBackOff", "InvalidImageName":
				how := "the engine never pulls (imagePullPolicy Never): build it with `cronium images build` (into Docker) and import it into the node's container runtime (scripts/k8s-cluster.sh import " + image + ")"
				switch {
				case strings.Contains(image, "/pkgs-"):
					how = "it is an event's package layer, removed since: apply the event again to rebuild it"
				case strings.Contains(image, "@sha256:"):
					how = "it is an event's custom image, removed since: apply the event again to pull it"
				}
				return fmt.Errorf("%w: image %s is not on node %s (%s: %s): %s", cronium.ErrNotFound, image, p.Spec.NodeName, w.Reason, w.Message, how)
			case "CreateContainerConfigError", "CreateContainerError", "RunContainerError", "CrashLoopBackOff":
				return fmt.Errorf("the Pod's container cannot start: %s: %s", w.Reason, w.Message)
			}
		}
		if t := cs.State.Terminated; t != nil {
			return fmt.Errorf("the Pod's container ended before its agent said hello: %s, exit code %d %s", t.Reason, t.ExitCode, strings.TrimSpace(t.Message))
		}
	}
	if p.Status.Phase == corev1.PodFailed {
		return fmt.Errorf("the Pod failed before its agent said hello: %s %s", p.Status.Reason, p.Status.Message)
	}
	return nil
}

// Ready implements session.Box: on the node, before any script exists,
// cronium enforces what the Pod spec cannot say (see enforce).
func (s *box) Ready(ctx context.Context) error {
	if s.agentPID <= 0 {
		return fmt.Errorf("the agent of Pod %s has no process on this node: is cronium on the Pod's node?", s.pod)
	}
	if err := agentOf(s.agentPID, s.podUID); err != nil {
		return fmt.Errorf("the agent of Pod %s: %w", s.pod, err)
	}
	if err := enforce(s.agentPID, s.spec); err != nil {
		return fmt.Errorf("enforce the sandbox's limits on the node: %w", err)
	}
	ns := fmt.Sprintf("/proc/%d/ns/net", s.agentPID)
	if err := isolate(ns); err != nil {
		return err
	}
	if s.lease == nil {
		return nil
	}
	return s.lease.Link(ctx, ns)
}

// State implements session.Box.
func (s *box) State(ctx context.Context) (session.State, error) {
	if s.pod == "" {
		return session.State{Status: "removed"}, nil
	}
	p, err := s.e.cs.CoreV1().Pods(s.e.o.Namespace).Get(ctx, s.pod, metav1.GetOptions{})
	if err != nil {
		if apierrors.IsNotFound(err) {
			return session.State{Status: "removed"}, nil
		}
		return session.State{}, err
	}
	st := podState(p)
	if st.Error == "" {
		st.Error = s.e.warning(ctx, p.Name)
	}
	return st, nil
}

// warning is the kubelet's last warning about Pod name that ends a Pod
// (eviction, preemption), or "": the eviction manager says why before
// it kills, the Pod's status says so only later. Best effort: without the
// right to list events, nothing.
func (e *Engine) warning(ctx context.Context, name string) string {
	list, err := e.cs.CoreV1().Events(e.o.Namespace).List(ctx, metav1.ListOptions{
		FieldSelector: "involvedObject.kind=Pod,involvedObject.name=" + name + ",type=Warning"})
	if err != nil {
		return ""
	}
	for i := len(list.Items) - 1; i >= 0; i-- {
		switch ev := list.Items[i]; ev.Reason {
		case "Evicted", "Preempting", "Killing", "NodeShutdown":
			return "the Pod was " + strings.ToLower(ev.Reason) + ": " + ev.Message
		}
	}
	return ""
}

// podState maps a Pod's status to a session.State.
func podState(p *corev1.Pod) session.State {
	st := session.State{Status: strings.ToLower(string(p.Status.Phase))}
	if p.DeletionTimestamp != nil {
		st.Status = "removing"
		st.Error = "the Pod was deleted"
	}
	if p.Status.Reason != "" && p.Status.Reason != "DeadlineExceeded" {
		st.Error = strings.TrimSpace("the Pod was " + strings.ToLower(p.Status.Reason) + ": " + p.Status.Message)
	}
	if p.Status.Reason == "DeadlineExceeded" {
		st.TimedOut = true
		st.Error = "Kubernetes stopped the Pod at its activeDeadlineSeconds: " + p.Status.Message
	}
	for _, cs := range p.Status.ContainerStatuses {
		switch {
		case cs.State.Running != nil:
			st.Running = p.DeletionTimestamp == nil
			st.Status = "running"
		case cs.State.Terminated != nil:
			t := cs.State.Terminated
			st.Status, st.ExitCode = "exited", int(t.ExitCode)
			st.OOMKilled = t.Reason == "OOMKilled"
			if t.Reason != "" && t.Reason != "Completed" && t.Reason != "OOMKilled" && st.Error == "" {
				st.Error = strings.TrimSpace(t.Reason + " " + t.Message)
			}
		case cs.State.Waiting != nil:
			st.Status = "waiting"
			if st.Error == "" {
				st.Error = strings.TrimSpace(cs.State.Waiting.Reason + " " + cs.State.Waiting.Message)
			}
		}
	}
	return st
}

// Collect implements session.Box: not offered (checkSpec refuses Collect).
func (s *box) Collect(context.Context, string) (io.ReadCloser, error) {
	return nil, fmt.Errorf("%w: the kubernetes engine does not collect files", cronium.ErrUnsupported)
}

// BeginRun implements session.Box.
func (s *box) BeginRun(ctx context.Context) {
	if s.lease != nil {
		s.lease.StartRun(ctx)
	}
}

// AfterReset implements session.Box.
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

// Pause implements session.Box: Pods cannot be paused.
func (s *box) Pause(context.Context) error {
	return fmt.Errorf("%w: Kubernetes cannot pause a Pod", cronium.ErrUnsupported)
}

// Unpause implements session.Box.
func (s *box) Unpause(context.Context) error {
	return fmt.Errorf("%w: Kubernetes cannot pause a Pod", cronium.ErrUnsupported)
}

// Remove implements session.Box: the Pod (deleted at once; a finished one
// in the background), its network rules and its host directory.
func (s *box) Remove(finished bool) {
	if s.ln != nil {
		s.ln.Close()
	}
	if s.pod != "" {
		if finished {
			s.e.deleteLater(s.pod, s.spec.ID)
		} else if err := s.e.deletePod(context.Background(), s.pod); err != nil {
			s.e.log.Error("delete Pod; gc will retry", "pod", s.pod, "execution_id", s.spec.ID, "err", err)
		}
	}
	if s.lease != nil {
		s.lease.Release()
	}
	if s.dir != "" {
		os.RemoveAll(s.dir)
	}
}

// deleteLater deletes a finished sandbox's Pod off the run's path.
func (e *Engine) deleteLater(pod, execution string) {
	e.pending.Add(1)
	go func() { // owned by the engine: Close waits
		defer e.pending.Done()
		if err := e.deletePod(context.WithoutCancel(e.bg), pod); err != nil {
			e.log.Error("delete Pod; gc will retry", "pod", pod, "execution_id", execution, "err", err)
		}
	}()
}

// Notes implements session's enforcement notes.
func (s *box) Notes() []string {
	if s.spec.Limits.IOLimited() {
		return []string{"disk I/O caps: not enforced on Kubernetes (/workspace is an emptyDir in memory; the Pod's disk I/O is the node's)"}
	}
	return nil
}
