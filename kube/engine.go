// Package kube is the Cronium engine on Kubernetes (`engine: kubernetes`):
// one Pod per execution or warm sandbox, created through the API server
// with k8s.io/client-go.
//
// The Pod runs the cronium agent as PID 1 with the strict profile's
// guarantees (the script as uid 65534, read-only root, no capabilities, no
// new privileges, seccomp RuntimeDefault, no service account token),
// resources from the limits, memory-backed emptyDirs with size limits for
// /tmp, the workspace and /dev/shm, activeDeadlineSeconds behind the
// agent's own timeout, and labels plus annotations that GC and Reattach
// find.
//
// This engine is node-local: cronium runs on the Kubernetes node its Pods
// are placed on (engine_options.node, pinned with a node selector). The
// agent binary and the sandbox's socket directory reach the Pod as hostPath
// volumes, so the agent talks to cronium over a unix socket that needs no
// network in the Pod, and nothing is pushed to a registry. On the node,
// before any script runs, cronium also enforces what Kubernetes has no
// per-Pod field for: the pids cap (a node setting in Kubernetes), nofile
// and nproc, noexec/nosuid/nodev on the writable mounts, the secrets
// directory's owner, and the network policy (the Pod's CNI interface is
// removed; a networked sandbox gets cronium's guarded link, as on Docker).
package kube

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	cronium "github.com/cronium/executor"
	"github.com/cronium/executor/helpers"
	"github.com/cronium/executor/netguard"
	"github.com/cronium/executor/session"
)

func init() {
	cronium.RegisterEngine("kubernetes", cronium.EngineDriver{Open: Open, CheckOptions: func(params map[string]string) error {
		_, err := options(params)
		return err
	}})
}

// Options are the engine's own settings (engine_options in the config).
type Options struct {
	// Kubeconfig is the kubeconfig file. Empty: $KUBECONFIG, then
	// ~/.kube/config, then the in-cluster configuration.
	Kubeconfig string
	// Namespace holds the Pods. Default "default".
	Namespace string
	// Node is the Kubernetes node this cronium runs on; its Pods are
	// placed there. Default: the node named like this host.
	Node string
	// NodeSelector is added to every Pod's node selector.
	NodeSelector map[string]string
	// RuntimeClass is the Pods' runtimeClassName (gVisor, Kata), optional.
	RuntimeClass string
}

// optionNames are the keys of engine_options, for error messages.
const optionNames = "kubeconfig, namespace, node, node_selector, runtime_class"

// options reads engine_options.
func options(params map[string]string) (Options, error) {
	var o Options
	for k, v := range params {
		field := "engine_options." + k
		switch k {
		case "kubeconfig":
			o.Kubeconfig = v
		case "namespace":
			if !dnsLabel(v) {
				return o, cronium.Invalid(field, v, "is not a namespace name: lower-case letters, digits and '-', at most 63")
			}
			o.Namespace = v
		case "node":
			if v == "" || len(v) > 253 || strings.ContainsAny(v, " /,=") {
				return o, cronium.Invalid(field, v, "is not a node name: give the name `kubectl get nodes` shows")
			}
			o.Node = v
		case "node_selector":
			o.NodeSelector = map[string]string{}
			for _, kv := range strings.Split(v, ",") {
				key, val, ok := strings.Cut(strings.TrimSpace(kv), "=")
				if !ok || len(validation.IsQualifiedName(key)) > 0 || len(validation.IsValidLabelValue(val)) > 0 {
					return o, cronium.Invalid(field, v, "is not a node selector: write label=value pairs separated by commas, like disk=ssd,zone=a (labels and values as Kubernetes writes them)")
				}
				if key == corev1.LabelHostname {
					return o, cronium.Invalid(field, v, "names the node: give it as engine_options.node (the Pods always run on cronium's node)")
				}
				o.NodeSelector[key] = val
			}
		case "runtime_class":
			if !dnsLabel(v) {
				return o, cronium.Invalid(field, v, "is not a RuntimeClass name: lower-case letters, digits and '-'")
			}
			o.RuntimeClass = v
		default:
			return o, cronium.Invalid(field, v, "is not an option of the kubernetes engine: it takes "+optionNames)
		}
	}
	if o.Namespace == "" {
		o.Namespace = "default"
	}
	return o, nil
}

func dnsLabel(v string) bool {
	if len(v) == 0 || len(v) > 63 {
		return false
	}
	for i, r := range v {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' && i > 0 && i < len(v)-1) {
			return false
		}
	}
	return true
}

// Engine runs executions in Kubernetes Pods. It is safe for concurrent use.
type Engine struct {
	o         Options
	opts      cronium.EngineOptions
	cs        *kubernetes.Clientset
	host      string // the API server
	version   string // the API server's version
	agentPath string // content-addressed agent copy on this node
	libPath   string // the runtime helpers on this node
	log       *slog.Logger

	startTimeout time.Duration
	backstop     time.Duration

	bg       context.Context // cancelled by Close: background removals stop
	bgCancel context.CancelFunc
	pending  sync.WaitGroup

	net *netguard.Lazy // enforces network policies; created on the first networked run

	allocatable corev1.ResourceList // of the node, read at start
}

var _ cronium.Engine = (*Engine)(nil)

// Open opens the kubernetes engine (cronium.EngineDriver.Open): it loads
// the kubeconfig, checks that the API server answers, that the namespace
// and the node exist, that cronium runs on that node, and that the
// credentials may do everything the engine does, naming what is missing.
func Open(ctx context.Context, o cronium.EngineOptions) (cronium.Engine, error) {
	kopts, err := options(o.Params)
	if err != nil {
		return nil, err
	}
	if o.AgentPath == "" {
		return nil, cronium.Invalid("agent_path", "", "is empty: point it at the cronium-agent binary (built by `make build` into bin/)")
	}
	if o.StateDir == "" {
		o.StateDir = "/var/lib/cronium"
	}
	if o.NodeID == "" {
		o.NodeID, _ = os.Hostname()
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("%w: the kubernetes engine runs as root on its node: it enforces pids, mounts and the network policy of its Pods there", cronium.ErrUnavailable)
	}
	rc, where, err := restConfig(kopts.Kubeconfig)
	if err != nil {
		return nil, err
	}
	rc.QPS, rc.Burst = 200, 400 // 20 executions at once make ~10 requests each
	rc.UserAgent = "cronium"
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client (%s): %w", where, err)
	}
	e := &Engine{o: kopts, opts: o, cs: cs, host: rc.Host, log: o.Logger, startTimeout: 30 * time.Second, backstop: 10 * time.Second,
		net: netguard.NewLazy(o.Network, o.StateDir, o.Logger)}
	if err := e.check(ctx, where); err != nil {
		return nil, err
	}
	if err := session.StaticBinary(o.AgentPath); err != nil {
		return nil, cronium.Invalid("agent_path", o.AgentPath, err.Error())
	}
	if e.agentPath, err = session.InstallAgent(o.AgentPath, o.StateDir); err != nil {
		return nil, err
	}
	if e.libPath, err = helpers.Install(filepath.Join(o.StateDir, "lib")); err != nil {
		return nil, fmt.Errorf("install runtime helpers: %w", err)
	}
	e.bg, e.bgCancel = context.WithCancel(context.Background())
	return e, nil
}

// restConfig loads the client configuration: the kubeconfig named, else
// $KUBECONFIG or ~/.kube/config, else the in-cluster service account.
// where says which, for error messages.
func restConfig(path string) (*rest.Config, string, error) {
	if path != "" {
		if _, err := os.Stat(path); err != nil {
			return nil, "", cronium.Invalid("engine_options.kubeconfig", path, "cannot be read ("+err.Error()+"): give the path of a kubeconfig file")
		}
		rc, err := clientcmd.BuildConfigFromFlags("", path)
		if err != nil {
			return nil, "", cronium.Invalid("engine_options.kubeconfig", path, "is not a usable kubeconfig: "+err.Error())
		}
		return rc, "kubeconfig " + path, nil
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if files := rules.GetLoadingPrecedence(); len(files) > 0 {
		for _, f := range files {
			if _, err := os.Stat(f); err == nil {
				rc, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
				if err != nil {
					return nil, "", cronium.Invalid("engine_options.kubeconfig", f, "is not a usable kubeconfig: "+err.Error())
				}
				return rc, "kubeconfig " + f, nil
			}
		}
	}
	rc, err := rest.InClusterConfig()
	if err != nil {
		return nil, "", fmt.Errorf("%w: no kubeconfig: set engine_options.kubeconfig (or $KUBECONFIG) to one, or run cronium in a Pod with a service account (%v)", cronium.ErrUnavailable, err)
	}
	return rc, "the in-cluster service account", nil
}

// permissions are what the engine does through the API server.
var permissions = []struct{ verb, resource, sub string }{
	{"create", "pods", ""}, {"get", "pods", ""}, {"list", "pods", ""}, {"delete", "pods", ""},
}

// check makes sure the cluster is usable before anything runs.
func (e *Engine) check(ctx context.Context, where string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	v, err := e.cs.Discovery().ServerVersion()
	if err != nil {
		return fmt.Errorf("%w: the Kubernetes API server at %s (from %s) did not answer: %v. Start the cluster (for the test cluster: scripts/k8s-cluster.sh up) or fix the server address",
			cronium.ErrUnavailable, e.host, where, err)
	}
	e.version = v.GitVersion
	for _, p := range permissions {
		ok, err := e.allowed(ctx, p.verb, p.resource, p.sub, e.o.Namespace)
		if err != nil {
			return fmt.Errorf("%w: ask the API server at %s what the credentials of %s may do: %v", cronium.ErrUnavailable, e.host, where, err)
		}
		if !ok {
			return fmt.Errorf("%w: the credentials of %s may not %s %s in namespace %s: grant them with a Role and RoleBinding (docs/kubernetes.md lists the rules)",
				cronium.ErrUnavailable, where, p.verb, p.resource, e.o.Namespace)
		}
	}
	if ok, err := e.allowed(ctx, "get", "nodes", "", ""); err == nil && !ok {
		return fmt.Errorf("%w: the credentials of %s may not get nodes: grant them with a ClusterRole and ClusterRoleBinding (docs/kubernetes.md lists the rules)", cronium.ErrUnavailable, where)
	}
	if _, err := e.cs.CoreV1().Namespaces().Get(ctx, e.o.Namespace, metav1.GetOptions{}); err != nil {
		if apierrors.IsNotFound(err) {
			return cronium.Invalid("engine_options.namespace", e.o.Namespace, "does not exist in the cluster at "+e.host+": create it (kubectl create namespace "+e.o.Namespace+") or name another")
		}
		if !apierrors.IsForbidden(err) { // a namespaced Role cannot read namespaces: the pod checks above did
			return fmt.Errorf("%w: read namespace %s: %v", cronium.ErrUnavailable, e.o.Namespace, err)
		}
	}
	if e.o.Node == "" {
		h, _ := os.Hostname()
		e.o.Node = h
	}
	node, err := e.cs.CoreV1().Nodes().Get(ctx, e.o.Node, metav1.GetOptions{})
	if err != nil {
		if apierrors.IsNotFound(err) {
			return cronium.Invalid("engine_options.node", e.o.Node, "is not a node of the cluster at "+e.host+": name the node cronium runs on (kubectl get nodes)")
		}
		return fmt.Errorf("%w: read node %s: %v", cronium.ErrUnavailable, e.o.Node, err)
	}
	e.allocatable = node.Status.Allocatable
	if err := e.dryRun(ctx); err != nil {
		return err
	}
	if !onThisHost(node) {
		var addrs []string
		for _, a := range node.Status.Addresses {
			addrs = append(addrs, a.Address)
		}
		return cronium.Invalid("engine_options.node", e.o.Node, fmt.Sprintf("is not this host: none of its addresses (%s) is here. The kubernetes engine runs on the node of its Pods: start cronium there", strings.Join(addrs, ", ")))
	}
	return nil
}

// dryRun has the API server admit a Pod like the engine's (a server-side
// dry run: nothing is created), so what admission refuses (the namespace's
// Pod Security level, a RuntimeClass that does not exist, a bad selector)
// is said at start, not on every run.
func (e *Engine) dryRun(ctx context.Context) error {
	spec := cronium.Spec{ID: "dry-run", Language: cronium.Bash, Script: []byte(" "), Image: "cronium/dry-run:check"}
	if err := session.CheckSpec(&spec, nil); err != nil {
		return err
	}
	now := time.Now()
	pod := buildPod(podInput{spec: spec, name: sandboxName("dry-run-" + cronium.NewID()), namespace: e.o.Namespace, node: e.opts.NodeID,
		k8sNode: e.o.Node, selector: e.o.NodeSelector, runtime: e.o.RuntimeClass,
		agentPath: "/nonexistent/agent", libPath: "/nonexistent/lib", hostDir: "/nonexistent/host",
		created: now, deadline: now.Add(time.Minute), activeDeadline: time.Minute})
	_, err := e.cs.CoreV1().Pods(e.o.Namespace).Create(ctx, pod, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
	if err == nil {
		return nil
	}
	msg := err.Error()
	switch {
	case strings.Contains(msg, "PodSecurity"):
		return fmt.Errorf("%w: namespace %s refuses the engine's Pods: %v. The Pods need hostPath volumes and three capabilities for the agent: label the namespace `kubectl label namespace %s pod-security.kubernetes.io/enforce=privileged` (docs/kubernetes.md)",
			cronium.ErrUnavailable, e.o.Namespace, err, e.o.Namespace)
	case e.o.RuntimeClass != "" && strings.Contains(msg, "RuntimeClass"):
		return cronium.Invalid("engine_options.runtime_class", e.o.RuntimeClass, "is refused by the cluster ("+msg+"): name a RuntimeClass that exists (kubectl get runtimeclass)")
	}
	return fmt.Errorf("%w: the API server refuses the engine's Pods in namespace %s (a dry run): %v", cronium.ErrUnavailable, e.o.Namespace, err)
}

// allowed asks the API server whether the engine's credentials may verb
// resource (a SelfSubjectAccessReview).
func (e *Engine) allowed(ctx context.Context, verb, resource, sub, ns string) (bool, error) {
	r, err := e.cs.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, &authorizationv1.SelfSubjectAccessReview{
		Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &authorizationv1.ResourceAttributes{
			Namespace: ns, Verb: verb, Resource: resource, Subresource: sub}},
	}, metav1.CreateOptions{})
	if err != nil {
		return false, err
	}
	return r.Status.Allowed, nil
}

// onThisHost reports whether one of node's internal addresses is on this host.
func onThisHost(node *corev1.Node) bool {
	local := map[string]bool{}
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if ip, _, err := net.ParseCIDR(a.String()); err == nil {
			local[ip.String()] = true
		}
	}
	h, _ := os.Hostname()
	for _, a := range node.Status.Addresses {
		if (a.Type == corev1.NodeInternalIP || a.Type == corev1.NodeExternalIP) && local[a.Address] {
			return true
		}
		if a.Type == corev1.NodeHostName && a.Address == h {
			return true
		}
	}
	return false
}

// Close implements cronium.Engine.
func (e *Engine) Close() error {
	e.bgCancel()
	e.pending.Wait()
	e.net.Close()
	return nil
}

// Capabilities implements cronium.Engine. Pods cannot be paused, user
// workspaces and image builds are not offered on Kubernetes yet.
func (e *Engine) Capabilities() cronium.Capabilities {
	return cronium.Capabilities{Name: "kubernetes", Address: e.host + " namespace " + e.o.Namespace + " node " + e.o.Node, Version: e.version,
		Reattach: true, Warm: true,
		Networks: []cronium.NetworkMode{cronium.NetworkNone, cronium.NetworkEgress, cronium.NetworkInternal, cronium.NetworkFull}}
}

func (e *Engine) timing() session.Timing {
	return session.Timing{StartTimeout: e.startTimeout, Backstop: e.backstop, Logger: e.log, Enforcement: enforcement}
}

// enforcement is what Kubernetes has no Pod field for, and how this engine
// enforces it (Result.Enforcement).
var enforcement = []string{
	"pids: pids.max of the Pod's container, set by cronium on the node (Kubernetes only has the node-wide podPidsLimit)",
	"nofile, nproc: set on the agent by cronium on the node, inherited by the script (Kubernetes has no ulimits)",
	"noexec /tmp, /workspace, /dev/shm: remounted by cronium on the node (the kubelet mounts emptyDirs exec-able)",
	"network policy: the Pod's interface removed and cronium's guarded link plugged in, on the node (no NetworkPolicy needed)",
}

// Run implements cronium.Engine.
func (e *Engine) Run(ctx context.Context, spec cronium.Spec) (cronium.Result, error) {
	if err := e.checkSpec(&spec); err != nil {
		return cronium.Result{}, err
	}
	return session.Cold(ctx, e.timing(), e.newBox(spec, 0), spec), nil
}

// NewSandbox implements cronium.Engine: a Pod held with its agent idle.
func (e *Engine) NewSandbox(ctx context.Context, template cronium.Spec, lifetime time.Duration) (cronium.Sandbox, error) {
	template.ID = "sbx-" + cronium.NewID()[:16]
	if template.Script == nil {
		template.Script = []byte(" ")
	}
	if template.Language == "" {
		template.Language = cronium.Bash
	}
	if err := e.checkSpec(&template); err != nil {
		return nil, err
	}
	prepare := template.Image != "" && template.Image == e.opts.Images[template.Language]
	w, err := session.NewWarm(ctx, e.timing(), e.newBox(template, lifetime), template, prepare)
	if err != nil {
		return nil, err
	}
	return w, nil
}

// Reattach implements cronium.Engine: it finds the execution's Pod by its
// labels, listens again on its socket and waits for the agent to redial.
func (e *Engine) Reattach(ctx context.Context, r cronium.Reattach) (cronium.Result, error) {
	id := r.Sandbox
	if id == "" {
		id = r.ExecutionID
	}
	if !validID(id) || !validID(r.ExecutionID) {
		return cronium.Result{}, cronium.Invalid("id", id, "is not an id: use letters, digits, '-' and '_' only, at most 64")
	}
	if r.Node != "" && r.Node != e.opts.NodeID {
		// Its Pod's agent dials a socket on the dead node's host; this
		// engine reaches only its own node's.
		return cronium.Result{}, fmt.Errorf("%w: the kubernetes engine re-attaches only its own node's Pods, and execution %s ran on node %s", cronium.ErrNotFound, r.ExecutionID, r.Node)
	}
	name := sandboxName(id)
	pods, err := e.pods(ctx, LabelSandbox+"="+name)
	if err != nil {
		return cronium.Result{}, fmt.Errorf("find the Pod of execution %s: %w", id, err)
	}
	if len(pods) == 0 || pods[0].DeletionTimestamp != nil {
		os.RemoveAll(filepath.Join(e.opts.StateDir, "s", name))
		return cronium.Result{}, fmt.Errorf("%w: no Pod of execution %s on node %s", cronium.ErrNotFound, id, e.opts.NodeID)
	}
	p := &pods[0]
	spec := cronium.Spec{ID: r.ExecutionID, Image: imageName(p.Spec.Containers[0].Image), Output: r.Output, Sample: r.Sample, Runtime: r.Runtime}
	if v, ok := p.Annotations[AnnotationLimits]; ok {
		if err := json.Unmarshal([]byte(v), &spec.Limits); err != nil {
			e.log.Warn("unreadable limits annotation", "execution_id", id, "pod", p.Name, "err", err)
		}
	}
	b := e.newBox(spec, 0)
	b.name, b.pod = name, p.Name
	// The kubelet reports a container running up to a second after it
	// started: a Pod that has not ended may hold a live agent.
	st := podState(p)
	running := st.Running || (st.Status != "exited" && p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed)
	if running {
		if err := b.relisten(); err != nil {
			return cronium.Result{}, err
		}
	}
	backstop := podTime(p, AnnotationDeadline, time.Now())
	return session.Reattach(ctx, e.timing(), b, spec, r.AfterSeq, running, backstop)
}

// pods lists this node's Pods, with an extra label selector.
func (e *Engine) pods(ctx context.Context, selector string) ([]corev1.Pod, error) {
	sel := LabelManaged + "=true," + LabelNode + "=" + labelValue(e.opts.NodeID)
	if selector != "" {
		sel += "," + selector
	}
	list, err := e.cs.CoreV1().Pods(e.o.Namespace).List(ctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		return nil, err
	}
	return list.Items, nil
}

// Sandboxes implements cronium.Engine: this node's Pods, from their labels.
func (e *Engine) Sandboxes(ctx context.Context) ([]cronium.SandboxInfo, error) {
	pods, err := e.pods(ctx, "")
	if err != nil {
		return nil, fmt.Errorf("list cronium Pods: %w", err)
	}
	out := make([]cronium.SandboxInfo, 0, len(pods))
	for i := range pods {
		p := &pods[i]
		out = append(out, cronium.SandboxInfo{ID: p.Annotations[AnnotationExecution], Ref: p.Name, Image: imageName(p.Spec.Containers[0].Image),
			State: podState(p).Status, Created: podTime(p, AnnotationCreated, p.CreationTimestamp.Time)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// Recover implements cronium.Engine: warm sandboxes a dead process left
// idle are removed, except those in keep (being re-attached).
func (e *Engine) Recover(ctx context.Context, keep map[string]bool) (int, error) {
	pods, err := e.pods(ctx, "")
	if err != nil {
		return 0, fmt.Errorf("list sandboxes: %w", err)
	}
	n := 0
	for i := range pods {
		id := pods[i].Annotations[AnnotationExecution]
		if !strings.HasPrefix(id, "sbx-") || keep[id] {
			continue
		}
		if err := e.deletePod(ctx, pods[i].Name); err == nil {
			n++
		}
		os.RemoveAll(filepath.Join(e.opts.StateDir, "s", pods[i].Labels[LabelSandbox]))
	}
	return n, e.net.Sweep(ctx)
}

// Release implements cronium.Engine: there are no workspaces to unmount.
func (e *Engine) Release() (int, error) { return 0, nil }

// GC implements cronium.Engine: it deletes this node's Pods that ended
// and are older than grace, or whose deadline passed more than grace ago,
// and sandbox directories no Pod uses.
func (e *Engine) GC(ctx context.Context, grace time.Duration) (int, error) {
	pods, err := e.pods(ctx, "")
	if err != nil {
		return 0, fmt.Errorf("list cronium Pods: %w", err)
	}
	now := time.Now()
	inUse := map[string]bool{}
	removed := 0
	for i := range pods {
		p := &pods[i]
		created := podTime(p, AnnotationCreated, p.CreationTimestamp.Time)
		deadline := podTime(p, AnnotationDeadline, created)
		ended := p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed
		if !(ended && now.Sub(created) > grace) && now.Sub(deadline) <= grace {
			inUse[p.Labels[LabelSandbox]] = true
			continue
		}
		if err := e.deletePod(ctx, p.Name); err != nil {
			return removed, fmt.Errorf("delete orphan Pod %s: %w", p.Name, err)
		}
		e.log.Info("removed orphan Pod", "pod", p.Name, "execution_id", p.Annotations[AnnotationExecution])
		removed++
	}
	if err := e.net.Sweep(ctx); err != nil {
		e.log.Warn("sweep sandbox networks", "err", err)
	}
	dirs, _ := os.ReadDir(filepath.Join(e.opts.StateDir, "s"))
	for _, d := range dirs {
		if inUse[d.Name()] {
			continue
		}
		if fi, err := d.Info(); err == nil && now.Sub(fi.ModTime()) > grace {
			os.RemoveAll(filepath.Join(e.opts.StateDir, "s", d.Name()))
		}
	}
	return removed, nil
}

// deletePod deletes a Pod at once (grace 0): its agent is done or gone.
func (e *Engine) deletePod(ctx context.Context, name string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	err := e.cs.CoreV1().Pods(e.o.Namespace).Delete(ctx, name, metav1.DeleteOptions{GracePeriodSeconds: ptr(int64(0))})
	if err != nil && !apierrors.IsNotFound(err) {
		return err
	}
	return nil
}

func (e *Engine) checkSpec(spec *cronium.Spec) error {
	if err := session.CheckSpec(spec, e.opts.Images); err != nil {
		return err
	}
	if spec.Workspace != nil {
		return fmt.Errorf("%w: the kubernetes engine keeps no user workspaces", cronium.ErrUnsupported)
	}
	// A Pod asking for more than its node has would wait for the start
	// timeout and fail: say so now.
	l := spec.Limits
	if cpu := e.allocatable.Cpu().MilliValue(); cpu > 0 && int64(l.CPUGuaranteed*1000) > cpu {
		return cronium.Invalid("cpus", fmt.Sprint(l.CPUGuaranteed), fmt.Sprintf("asks node %s to guarantee more CPU than it has (%dm allocatable): ask for less", e.o.Node, cpu))
	}
	if mem := e.allocatable.Memory().Value(); mem > 0 && int64(l.MemoryReservation) > mem {
		return cronium.Invalid("memory", l.MemoryReservation.String(), fmt.Sprintf("asks node %s to reserve more memory than it has (%s allocatable): ask for less", e.o.Node, cronium.Size(mem)))
	}
	if spec.Collect != nil {
		return fmt.Errorf("%w: the kubernetes engine does not collect files (image builds run on Docker or Podman)", cronium.ErrUnsupported)
	}
	return nil
}

func validID(id string) bool { return session.ValidID(id) }

// NodeID is the node label of the engine's Pods.
func (e *Engine) NodeID() string { return e.opts.NodeID }

// Namespace is where the engine's Pods are.
func (e *Engine) Namespace() string { return e.o.Namespace }

// Client is the engine's Kubernetes client (for tests and tools).
func (e *Engine) Client() kubernetes.Interface { return e.cs }

func unixTime(t time.Time) string { return strconv.FormatInt(t.Unix(), 10) }

// Node is the Kubernetes node the engine's Pods run on.
func (e *Engine) Node() string { return e.o.Node }

// SettleNetwork waits until the network rules and devices of finished
// sandboxes are removed (that happens in the background).
func (e *Engine) SettleNetwork() { e.net.Settle() }

// NetworkGuard names this engine's network guard: its ID and subnet; ok is
// false until a networked sandbox made one.
func (e *Engine) NetworkGuard() (id string, subnet netip.Prefix, ok bool) { return e.net.Info() }
