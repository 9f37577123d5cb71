package kube_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	cronium "github.com/cronium/executor"
	"github.com/cronium/executor/enginetest"
	"github.com/cronium/executor/kube"
)

func engine() *kube.Engine { return enginetest.Engine().(*kube.Engine) }

// open opens another kubernetes engine with params over the suite's.
func open(t *testing.T, params map[string]string) (cronium.Engine, error) {
	t.Helper()
	o := enginetest.Options()
	p := map[string]string{}
	for k, v := range o.Params {
		p[k] = v
	}
	for k, v := range params {
		if v == "" {
			delete(p, k)
		} else {
			p[k] = v
		}
	}
	o.Params = p
	o.StateDir = t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return cronium.OpenEngine(ctx, "engine", "kubernetes", o)
}

// The Pod of a running execution carries the strict profile, the limits
// and what GC and Reattach need, and nothing a script could use against
// the cluster (no service account token, no service links).
func TestPodHasTheSandboxGuarantees(t *testing.T) {
	e := engine()
	spec := cronium.Spec{ID: "pod-" + cronium.NewID()[:12], Language: cronium.Bash, Script: []byte("echo up; sleep 3")}
	spec.Limits.Memory = 96 << 20
	spec.Limits.CPUs = 0.5
	spec.Limits.TmpSize = 8 << 20
	up := make(chan struct{}, 1)
	spec.Output = func(cronium.OutputChunk) {
		select {
		case up <- struct{}{}:
		default:
		}
	}
	done := make(chan cronium.Result, 1)
	go func() {
		res, err := e.Run(context.Background(), spec)
		if err != nil {
			t.Error(err)
		}
		done <- res
	}()
	select {
	case <-up:
	case res := <-done:
		t.Fatalf("ended before its output: %s %s", res.Outcome, res.Error)
	}
	ctx := context.Background()
	list, err := e.Client().CoreV1().Pods(e.Namespace()).List(ctx, metav1.ListOptions{LabelSelector: kube.LabelManaged + "=true," + kube.LabelNode + "=" + e.NodeID()})
	if err != nil {
		t.Fatal(err)
	}
	var p *corev1.Pod
	for i := range list.Items {
		if list.Items[i].Annotations[kube.AnnotationExecution] == spec.ID {
			p = &list.Items[i]
		}
	}
	if p == nil {
		t.Fatalf("no Pod annotated with execution %s among %d", spec.ID, len(list.Items))
	}
	ps := p.Spec
	c := ps.Containers[0]
	sc := c.SecurityContext
	check := func(what string, ok bool) {
		t.Helper()
		if !ok {
			t.Errorf("%s: pod spec %+v", what, ps)
		}
	}
	check("no service account token", ps.AutomountServiceAccountToken != nil && !*ps.AutomountServiceAccountToken)
	check("no service links", ps.EnableServiceLinks != nil && !*ps.EnableServiceLinks)
	check("restart never", ps.RestartPolicy == corev1.RestartPolicyNever)
	check("activeDeadlineSeconds past the timeout", ps.ActiveDeadlineSeconds != nil && *ps.ActiveDeadlineSeconds > int64(spec.Limits.Timeout.Seconds()))
	check("pinned to this node", ps.NodeSelector[corev1.LabelHostname] == "k8s-lab-node")
	check("read-only root", sc.ReadOnlyRootFilesystem != nil && *sc.ReadOnlyRootFilesystem)
	check("no privilege escalation", sc.AllowPrivilegeEscalation != nil && !*sc.AllowPrivilegeEscalation)
	check("all capabilities dropped", len(sc.Capabilities.Drop) == 1 && sc.Capabilities.Drop[0] == "ALL")
	check("only the agent's capabilities", strings.Join(capNames(sc.Capabilities.Add), ",") == "SETUID,SETGID,KILL")
	check("seccomp RuntimeDefault", sc.SeccompProfile != nil && sc.SeccompProfile.Type == corev1.SeccompProfileTypeRuntimeDefault)
	check("memory limit", c.Resources.Limits.Memory().Value() == 96<<20)
	check("cpu limit", c.Resources.Limits.Cpu().MilliValue() == 500)
	check("image never pulled", c.ImagePullPolicy == corev1.PullNever)
	sizes := map[string]int64{}
	for _, v := range ps.Volumes {
		if v.EmptyDir != nil {
			if v.EmptyDir.Medium != corev1.StorageMediumMemory || v.EmptyDir.SizeLimit == nil {
				t.Errorf("emptyDir %s: medium %q size %v, want memory with a size limit", v.Name, v.EmptyDir.Medium, v.EmptyDir.SizeLimit)
				continue
			}
			sizes[v.Name] = v.EmptyDir.SizeLimit.Value()
		}
	}
	if sizes["tmp"] != 8<<20 || sizes["workspace"] == 0 || sizes["shm"] == 0 {
		t.Errorf("emptyDir sizes %v, want tmp 8Mi and workspace and shm limited", sizes)
	}
	for _, k := range []string{kube.AnnotationLimits, kube.AnnotationDeadline, kube.AnnotationCreated, kube.AnnotationEnforced} {
		if p.Annotations[k] == "" {
			t.Errorf("annotation %s missing: %v", k, p.Annotations)
		}
	}
	res := <-done
	if res.Outcome != cronium.Succeeded {
		t.Fatalf("outcome %s (%s)", res.Outcome, res.Error)
	}
	if len(res.Enforcement) == 0 || !strings.HasPrefix(res.Enforcement[0], "pids: pids.max") {
		t.Errorf("enforcement %q: want the result to say how pids and the rest are enforced", res.Enforcement)
	}
	if res.Container != p.Name {
		t.Errorf("result names sandbox %q, want the Pod %q", res.Container, p.Name)
	}
}

func capNames(cs []corev1.Capability) []string {
	var out []string
	for _, c := range cs {
		out = append(out, string(c))
	}
	return out
}

// A Pod no node can take fails at once with the scheduler's reason, not
// after the start timeout.
func TestUnschedulablePodSaysWhy(t *testing.T) {
	e, err := open(t, map[string]string{"node_selector": "cronium.io/test=nowhere"})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	begin := time.Now()
	res, err := e.Run(context.Background(), cronium.Spec{Language: cronium.Bash, Script: []byte("echo never")})
	if err != nil {
		t.Fatal(err)
	}
	if res.Outcome != cronium.EngineError || !strings.Contains(res.Error, "cannot be scheduled") || !strings.Contains(res.Error, "cronium.io/test=nowhere") {
		t.Errorf("outcome %s error %q: want engine_error with the scheduler's reason and the selector", res.Outcome, res.Error)
	}
	if d := time.Since(begin); d > 10*time.Second {
		t.Errorf("took %s to say so, want well under the start timeout", d)
	}
	if left, _ := e.Sandboxes(context.Background()); len(left) > 0 {
		t.Errorf("left %+v", left)
	}
}

// Start-up errors name what is wrong and how to fix it.
func TestBadConfigurationIsClearAtStart(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage")
	os.WriteFile(garbage, []byte("not: [a kubeconfig"), 0o600)
	unreachable := filepath.Join(dir, "unreachable")
	os.WriteFile(unreachable, []byte(`apiVersion: v1
kind: Config
clusters: [{name: x, cluster: {server: "https://127.0.0.1:1", insecure-skip-tls-verify: true}}]
users: [{name: x, user: {token: abc}}]
contexts: [{name: x, context: {cluster: x, user: x}}]
current-context: x
`), 0o600)
	for _, tc := range []struct {
		name   string
		params map[string]string
		is     error
		want   []string
	}{
		{"missing kubeconfig", map[string]string{"kubeconfig": filepath.Join(dir, "nope")}, cronium.ErrInvalid, []string{"engine_options.kubeconfig", "nope"}},
		{"invalid kubeconfig", map[string]string{"kubeconfig": garbage}, cronium.ErrInvalid, []string{"engine_options.kubeconfig", "not a usable kubeconfig"}},
		{"unreachable", map[string]string{"kubeconfig": unreachable}, cronium.ErrUnavailable, []string{"127.0.0.1:1", "did not answer"}},
		{"no such namespace", map[string]string{"namespace": "cronium-nowhere"}, cronium.ErrInvalid, []string{"engine_options.namespace", "does not exist", "kubectl create namespace cronium-nowhere"}},
		{"bad namespace", map[string]string{"namespace": "No_Such"}, cronium.ErrInvalid, []string{"engine_options.namespace"}},
		{"unknown node", map[string]string{"node": "elsewhere"}, cronium.ErrInvalid, []string{"engine_options.node", "elsewhere", "kubectl get nodes"}},
		{"unknown option", map[string]string{"context": "x"}, cronium.ErrInvalid, []string{"engine_options.context", "kubeconfig, namespace"}},
		{"bad selector", map[string]string{"node_selector": "disk"}, cronium.ErrInvalid, []string{"engine_options.node_selector", "label=value"}},
		{"selector value", map[string]string{"node_selector": "a=b=c"}, cronium.ErrInvalid, []string{"engine_options.node_selector", "label=value"}},
		{"selector names the node", map[string]string{"node_selector": "kubernetes.io/hostname=other"}, cronium.ErrInvalid, []string{"engine_options.node_selector", "engine_options.node"}},
		{"no such runtime class", map[string]string{"runtime_class": "gvisor"}, cronium.ErrInvalid, []string{"engine_options.runtime_class", "gvisor", "kubectl get runtimeclass"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, err := open(t, tc.params)
			if err == nil {
				e.Close()
				t.Fatal("opened")
			}
			if !errors.Is(err, tc.is) {
				t.Errorf("err %v, want %v", err, tc.is)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("err %q lacks %q", err, w)
				}
			}
		})
	}
}

// Credentials that may not do everything the engine does are refused at
// start, naming the verb and the resource missing.
func TestMissingPermissionsAreNamed(t *testing.T) {
	ctx := context.Background()
	cs := engine().Client()
	ns := engine().Namespace()
	name := "cronium-test-" + cronium.NewID()[:6]
	limited := filepath.Join(lab(), "kubeconfigs", "limited.kubeconfig")
	grant := func(verbs ...string) {
		t.Helper()
		role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: verbs}}}
		if _, err := cs.RbacV1().Roles(ns).Update(ctx, role, metav1.UpdateOptions{}); err != nil {
			if _, err := cs.RbacV1().Roles(ns).Create(ctx, role, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
	}
	grant("get", "list")
	t.Cleanup(func() {
		cs.RbacV1().Roles(ns).Delete(ctx, name, metav1.DeleteOptions{})
		cs.RbacV1().RoleBindings(ns).Delete(ctx, name, metav1.DeleteOptions{})
	})
	if _, err := cs.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: name},
		Subjects: []rbacv1.Subject{{Kind: "User", Name: "cronium-limited", APIGroup: "rbac.authorization.k8s.io"}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	e, err := open(t, map[string]string{"kubeconfig": limited})
	if err == nil {
		e.Close()
		t.Fatal("opened with read-only credentials")
	}
	if !errors.Is(err, cronium.ErrUnavailable) || !strings.Contains(err.Error(), "may not create pods in namespace "+ns) {
		t.Errorf("err %v, want it to name create pods", err)
	}
	grant("get", "list", "create", "delete")
	e, err = open(t, map[string]string{"kubeconfig": limited})
	if err == nil {
		e.Close()
		t.Fatal("opened without the right to read nodes")
	}
	if !strings.Contains(err.Error(), "may not get nodes") {
		t.Errorf("err %v, want it to name get nodes", err)
	}
}

// A Pod stopped at its activeDeadlineSeconds is a timeout, an OOMKilled
// container is out of memory, whatever the agent could say.
func TestPodStatusMapsToOutcomes(t *testing.T) {
	deadline := &corev1.Pod{Status: corev1.PodStatus{Phase: corev1.PodFailed, Reason: "DeadlineExceeded", Message: "Pod was active on the node longer than the specified deadline",
		ContainerStatuses: []corev1.ContainerStatus{{State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 137, Reason: "Error"}}}}}}
	if st := kube.PodState(deadline); !st.TimedOut || st.Running || !strings.Contains(st.Error, "activeDeadlineSeconds") {
		t.Errorf("deadline: %+v", st)
	}
	oom := &corev1.Pod{Status: corev1.PodStatus{Phase: corev1.PodFailed,
		ContainerStatuses: []corev1.ContainerStatus{{State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 137, Reason: "OOMKilled"}}}}}}
	if st := kube.PodState(oom); !st.OOMKilled || st.ExitCode != 137 {
		t.Errorf("oom: %+v", st)
	}
	running := &corev1.Pod{Status: corev1.PodStatus{Phase: corev1.PodRunning,
		ContainerStatuses: []corev1.ContainerStatus{{State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}}}}
	if st := kube.PodState(running); !st.Running || st.OOMKilled || st.TimedOut {
		t.Errorf("running: %+v", st)
	}
}

// The dispatcher runs Pods cold, prewarmed and reused from its pools.
func TestDispatcherAndPoolsRunPods(t *testing.T) { enginetest.RunDispatcher(t) }

// A namespace whose Pod Security level refuses the engine's Pods is named
// at start, with the label that fixes it (a server-side dry run).
func TestPodSecurityLevelIsCheckedAtStart(t *testing.T) {
	ctx := context.Background()
	cs := engine().Client()
	name := "cronium-psa-" + strings.ToLower(cronium.NewID()[:6])
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name,
		Labels: map[string]string{"pod-security.kubernetes.io/enforce": "baseline"}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cs.CoreV1().Namespaces().Delete(context.Background(), name, metav1.DeleteOptions{}) })
	e, err := open(t, map[string]string{"namespace": name})
	if err == nil {
		e.Close()
		t.Fatal("opened on a namespace that refuses hostPath volumes")
	}
	if !strings.Contains(err.Error(), "PodSecurity") || !strings.Contains(err.Error(), "pod-security.kubernetes.io/enforce=privileged") {
		t.Errorf("err %v, want the Pod Security refusal and the label that fixes it", err)
	}
}

// A run asking the node for more than it has is refused before its Pod
// exists, naming the limit; one that fits waits for the scheduler.
func TestMoreThanTheNodeHasIsRefused(t *testing.T) {
	_, err := engine().Run(context.Background(), cronium.Spec{Language: cronium.Bash, Script: []byte("true"),
		Limits: cronium.Limits{CPUs: 64}})
	if !errors.Is(err, cronium.ErrInvalid) || !strings.Contains(err.Error(), "cpus") || !strings.Contains(err.Error(), "k8s-lab-node") {
		t.Errorf("err %v, want cpus refused, naming the node", err)
	}
}

// The pid of a process that is not the Pod's agent (here: this test
// process, as if the node had reused the agent's pid) is refused before
// cronium touches its namespaces.
func TestAReusedPidIsNotTakenForTheAgent(t *testing.T) {
	err := kube.AgentOf(os.Getpid(), "0b1d3f3e-0000-4000-8000-000000000000")
	if err == nil || !strings.Contains(err.Error(), "not in the cgroup of Pod") {
		t.Errorf("err %v, want this process refused", err)
	}
}
