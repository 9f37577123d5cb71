package kube_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/cronium/executor/enginetest"
	"github.com/cronium/executor/kube"
)

// lab is the test cluster's directory (scripts/k8s-cluster.sh).
func lab() string {
	if v := os.Getenv("K8S_LAB"); v != "" {
		return v
	}
	return "/var/cache/cronium/k8s/lab"
}

func kubeconfig() string { return filepath.Join(lab(), "kubeconfigs", "admin.kubeconfig") }

// The conformance suite runs on the real single-node cluster that
// scripts/k8s-cluster.sh up starts (make test starts it).
func TestMain(m *testing.M) {
	if _, err := os.Stat(kubeconfig()); err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: the kubernetes engine tests need the test cluster: run scripts/k8s-cluster.sh up (%v)\n", err)
		os.Exit(1)
	}
	os.Exit(enginetest.Main(m, enginetest.Config{
		Engine: "kubernetes",
		Params: map[string]string{"kubeconfig": kubeconfig(), "node": "k8s-lab-node"},
		Kill:   kill,
	}))
}

func TestConformance(t *testing.T) { enginetest.Run(t) }

// kill signals the agent of Pod ref through the node's containerd, as the
// kubelet would see a container die.
func kill(ref, signal string) error {
	e := enginetest.Engine().(*kube.Engine)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// The kubelet reports the container's id once it noticed the start
	// (its relist runs every second).
	var id string
	for id == "" {
		p, err := e.Client().CoreV1().Pods(e.Namespace()).Get(ctx, ref, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if len(p.Status.ContainerStatuses) > 0 {
			_, id, _ = strings.Cut(p.Status.ContainerStatuses[0].ContainerID, "://")
		}
		if id == "" {
			select {
			case <-ctx.Done():
				return fmt.Errorf("pod %s has no container after 10s", ref)
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	out, err := exec.Command("ctr", "-a", filepath.Join(lab(), "run", "containerd.sock"), "-n", "k8s.io",
		"tasks", "kill", "-s", "SIG"+signal, id).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ctr tasks kill: %s", strings.TrimSpace(string(out)))
	}
	return nil
}
