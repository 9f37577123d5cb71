package kube

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	cronium "github.com/cronium/executor"
	"github.com/cronium/executor/agent"
)

// Labels select (short values); annotations carry what does not fit a
// label (the execution id, times, the limits).
const (
	LabelManaged = "cronium.io/managed"
	LabelNode    = "cronium.io/node"    // the cronium node (EngineOptions.NodeID), label-safe
	LabelSandbox = "cronium.io/sandbox" // hash of the execution or sandbox id (sandboxName)

	AnnotationExecution = "cronium.io/execution" // the execution or warm sandbox id
	AnnotationCreated   = "cronium.io/created"   // unix seconds
	AnnotationDeadline  = "cronium.io/deadline"  // unix seconds after which the host backstop has fired
	AnnotationLimits    = "cronium.io/limits"    // the Limits in force, JSON, for Reattach
	AnnotationNetwork   = "cronium.io/network"   // the network policy in force
	AnnotationEnforced  = "cronium.io/enforced"  // how each limit is enforced on Kubernetes
)

// Names of the Pod's volumes.
const (
	volAgent       = "cronium-agent"
	volLib         = "cronium-lib"
	volHost        = "cronium-host"
	volTmp         = "tmp"
	volWorkspace   = "workspace"
	volRun         = "cronium-run"
	volSecrets     = "secrets"
	volShm         = "shm"
	volResolv      = "resolv"
	containerAgent = "agent"
)

// sandboxName derives a short, unique name from an execution or sandbox
// id: the Pod's name, its host directory, its selector label. Unix socket
// paths are limited to 108 bytes and label values to 63.
func sandboxName(id string) string {
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:8])
}

// podName is the Pod of the sandbox named name.
func podName(name string) string { return "cronium-" + name }

// labelValue is v when it is a valid label value, else a hash of it.
func labelValue(v string) string {
	ok := len(v) > 0 && len(v) <= 63
	for i, r := range v {
		alnum := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9'
		if !alnum && (i == 0 || i == len(v)-1 || (r != '-' && r != '_' && r != '.')) {
			ok = false
		}
	}
	if ok {
		return v
	}
	sum := sha256.Sum256([]byte(v))
	return "h-" + hex.EncodeToString(sum[:12])
}

// podInput is what a sandbox's Pod is made of.
type podInput struct {
	spec      cronium.Spec
	name      string // sandboxName
	namespace string
	node      string // the cronium node id
	k8sNode   string // the Kubernetes node the Pod must run on
	selector  map[string]string
	runtime   string // RuntimeClass, optional
	agentPath string // the agent binary on the node
	libPath   string // the runtime helpers on the node
	hostDir   string // the sandbox's socket directory on the node
	resolv    string // the resolv.conf of a networked sandbox, on the node
	created   time.Time
	deadline  time.Time
	// activeDeadline is the Pod's activeDeadlineSeconds: the cluster's own
	// backstop, behind the agent's timeout and the host's.
	activeDeadline time.Duration
}

// buildPod turns a checked spec into its Pod: the agent as PID 1 with only
// the capabilities it needs, the script user's mounts as memory-backed
// emptyDirs with size limits, resources from the limits, no service
// account token, no service links, and the labels GC and Reattach use.
func buildPod(in podInput) *corev1.Pod {
	l, p := in.spec.Limits, in.spec.Profile
	mem := func(s cronium.Size) *resource.Quantity { return resource.NewQuantity(int64(s), resource.BinarySI) }
	emptyDir := func(name string, size cronium.Size) corev1.Volume {
		return corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{
			Medium: corev1.StorageMediumMemory, SizeLimit: mem(size)}}}
	}
	hostPath := func(name, path string, t corev1.HostPathType) corev1.Volume {
		return corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: path, Type: &t}}}
	}
	volumes := []corev1.Volume{
		hostPath(volAgent, in.agentPath, corev1.HostPathFile),
		hostPath(volLib, in.libPath, corev1.HostPathDirectory),
		hostPath(volHost, in.hostDir, corev1.HostPathDirectory),
		emptyDir(volTmp, l.TmpSize),
		emptyDir(volWorkspace, l.WorkspaceSize),
		emptyDir(volRun, 1<<20),
		emptyDir(volSecrets, 1<<20),
		emptyDir(volShm, l.ShmSize()),
	}
	mounts := []corev1.VolumeMount{
		{Name: volAgent, MountPath: agent.BinaryPath, ReadOnly: true},
		{Name: volLib, MountPath: agent.LibDir, ReadOnly: true},
		{Name: volHost, MountPath: agent.HostDir},
		{Name: volTmp, MountPath: "/tmp"},
		{Name: volWorkspace, MountPath: agent.Workspace},
		{Name: volRun, MountPath: agent.RuntimeDir},
		{Name: volSecrets, MountPath: agent.SecretsDir},
		{Name: volShm, MountPath: "/dev/shm"},
	}
	if in.resolv != "" {
		volumes = append(volumes, hostPath(volResolv, in.resolv, corev1.HostPathFile))
		mounts = append(mounts, corev1.VolumeMount{Name: volResolv, MountPath: "/etc/resolv.conf", ReadOnly: true})
	}

	sc := &corev1.SecurityContext{
		RunAsUser:                ptr(int64(0)), // the agent; it runs the script as the profile's user
		RunAsGroup:               ptr(int64(0)),
		ReadOnlyRootFilesystem:   ptr(p.ReadOnlyRoot),
		AllowPrivilegeEscalation: ptr(!p.NoNewPrivileges),
		Capabilities:             &corev1.Capabilities{},
		SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
	}
	if p.Seccomp == "unconfined" {
		sc.SeccompProfile.Type = corev1.SeccompProfileTypeUnconfined
	}
	for _, c := range p.DropCaps {
		sc.Capabilities.Drop = append(sc.Capabilities.Drop, corev1.Capability(c))
	}
	if len(p.DropCaps) == 1 && p.DropCaps[0] == "ALL" {
		for _, c := range p.AgentCaps {
			sc.Capabilities.Add = append(sc.Capabilities.Add, corev1.Capability(c))
		}
	}
	if in.spec.Network.Networked() && in.spec.Network.Mode != cronium.NetworkFull && len(sc.Capabilities.Add) == 0 {
		// Raw sockets could forge another sandbox's source address.
		sc.Capabilities.Drop = append(sc.Capabilities.Drop, "NET_RAW")
	}

	res := corev1.ResourceRequirements{
		Limits: corev1.ResourceList{
			corev1.ResourceMemory: *mem(l.Memory),
			corev1.ResourceCPU:    *resource.NewMilliQuantity(int64(math.Ceil(l.CPUs*1000)), resource.DecimalSI),
		},
		Requests: corev1.ResourceList{
			corev1.ResourceMemory: *mem(l.MemoryReservation),
			corev1.ResourceCPU:    *resource.NewMilliQuantity(max(1, int64(l.CPUGuaranteed*1000)), resource.DecimalSI),
		},
	}

	if !p.ReadOnlyRoot {
		// A writable root is on the node's disk: the kubelet evicts the Pod
		// past this (Docker has no such cap).
		res.Limits[corev1.ResourceEphemeralStorage] = *mem(max(l.WorkspaceSize, 64<<20))
	}

	annotations := map[string]string{
		AnnotationExecution: in.spec.ID,
		AnnotationCreated:   strconv.FormatInt(in.created.Unix(), 10),
		AnnotationDeadline:  strconv.FormatInt(in.deadline.Unix(), 10),
		AnnotationEnforced:  strings.Join(enforcement, "; "),
	}
	if b, err := json.Marshal(l); err == nil {
		annotations[AnnotationLimits] = string(b)
	}
	if in.spec.Network.Networked() {
		annotations[AnnotationNetwork] = in.spec.Network.String()
	}
	selector := map[string]string{corev1.LabelHostname: in.k8sNode}
	for k, v := range in.selector {
		selector[k] = v
	}
	image := in.spec.Image
	if in.spec.ImageID != "" {
		image = in.spec.ImageID // what Image named at dispatch, whatever it names now
	}
	grace := int64(math.Ceil(l.Grace.Seconds()))
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name:      podName(in.name),
			Namespace: in.namespace,
			Labels: map[string]string{
				LabelManaged: "true",
				LabelNode:    labelValue(in.node),
				LabelSandbox: in.name,
			},
			Annotations: annotations,
		},
		Spec: corev1.PodSpec{
			RestartPolicy:                 corev1.RestartPolicyNever,
			AutomountServiceAccountToken:  ptr(false),
			EnableServiceLinks:            ptr(false),
			ShareProcessNamespace:         ptr(false),
			Hostname:                      "cronium",
			DNSPolicy:                     corev1.DNSDefault,
			TerminationGracePeriodSeconds: &grace,
			ActiveDeadlineSeconds:         ptr(int64(math.Ceil(in.activeDeadline.Seconds()))),
			NodeSelector:                  selector,
			Volumes:                       volumes,
			Containers: []corev1.Container{{
				Name:                     containerAgent,
				Image:                    image,
				ImagePullPolicy:          corev1.PullNever,
				Command:                  []string{agent.BinaryPath},
				WorkingDir:               agent.Workspace,
				SecurityContext:          sc,
				Resources:                res,
				VolumeMounts:             mounts,
				TerminationMessagePolicy: corev1.TerminationMessageReadFile,
			}},
		},
	}
	if in.runtime != "" {
		pod.Spec.RuntimeClassName = ptr(in.runtime)
	}
	return pod
}

func ptr[T any](v T) *T { return &v }

// podTime reads a unix-seconds annotation.
func podTime(p *corev1.Pod, key string, fallback time.Time) time.Time {
	n, err := strconv.ParseInt(p.Annotations[key], 10, 64)
	if err != nil {
		return fallback
	}
	return time.Unix(n, 0)
}

// imageName is how a person wrote ref: the node reports docker.io/ names.
func imageName(ref string) string {
	ref = strings.TrimPrefix(ref, "docker.io/")
	return strings.TrimPrefix(ref, "library/")
}
