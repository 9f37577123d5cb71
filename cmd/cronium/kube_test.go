package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	cronium "github.com/cronium/executor"
	"github.com/cronium/executor/kube"
)

// kubeconfig is the test cluster's (scripts/k8s-cluster.sh up; make test starts it).
func kubeconfig(t *testing.T) string {
	lab := os.Getenv("K8S_LAB")
	if lab == "" {
		lab = "/var/cache/cronium/k8s/lab"
	}
	kc := filepath.Join(lab, "kubeconfigs", "admin.kubeconfig")
	if _, err := os.Stat(kc); err != nil {
		t.Fatalf("the kubernetes tests need the test cluster: run scripts/k8s-cluster.sh up (%v)", err)
	}
	return kc
}

// kill -9 of `cronium serve` on Kubernetes while Pods run: the restarted
// server re-attaches to each Pod and every execution finishes with every
// log line once; the queued ones run after.
func TestKillNineReattachesKubernetesPods(t *testing.T) {
	t.Parallel()
	kc := kubeconfig(t)
	s := newServer(t, 3)
	s.args = []string{"--engine", "kubernetes", "--engine-option", "kubeconfig=" + kc, "--engine-option", "node=k8s-lab-node"}
	t.Cleanup(func() { deleteKubePods(t, kc, s.node) })
	key := s.user("alice", "pro")
	s.start()
	slow := map[string]any{"language": "bash", "timeout": 60,
		"script": `for i in 1 2 3 4 5 6 7 8; do echo "tick $i"; sleep 0.5; done; echo done`}
	if st := s.api(key, "PUT", "/v1/events/slow", slow, nil); st != 201 {
		t.Fatalf("create slow: %d", st)
	}
	var ids []string
	for i := 0; i < 5; i++ {
		var x cronium.Execution
		if st := s.api(key, "POST", "/v1/events/slow/trigger", nil, &x); st != 202 {
			t.Fatalf("trigger: %d", st)
		}
		ids = append(ids, x.ID)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		running := 0
		for _, x := range s.executions(key, "event=slow&status=running") {
			if x.LogBytes > 0 {
				running++
			}
		}
		if running >= 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("three executions never ran together:\n%s", s.log)
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.kill()
	time.Sleep(1500 * time.Millisecond) // the Pods run on without their host
	s.start()
	after := s.waitAll(key, 2*time.Minute)
	if len(after) != len(ids) {
		t.Errorf("%d executions after the restart, want %d", len(after), len(ids))
	}
	for _, id := range ids {
		var x cronium.Execution
		s.api(key, "GET", "/v1/executions/"+id, nil, &x)
		if x.Outcome != cronium.Succeeded {
			t.Errorf("execution %s: %s %s (%s)", id, x.Outcome, x.Error, x.Reason)
			continue
		}
		var logs struct {
			Items []struct {
				Data string `json:"data"`
			} `json:"items"`
		}
		s.api(key, "GET", "/v1/executions/"+id+"/logs", nil, &logs)
		var out strings.Builder
		for _, it := range logs.Items {
			out.WriteString(it.Data)
		}
		if want := "tick 1\ntick 2\ntick 3\ntick 4\ntick 5\ntick 6\ntick 7\ntick 8\ndone\n"; out.String() != want {
			t.Errorf("execution %s logs %q, want every line exactly once: %q", id, out.String(), want)
		}
	}
}

// deleteKubePods deletes the Pods a test's server left on the cluster.
func deleteKubePods(t *testing.T, kc, node string) {
	rc, err := clientcmd.BuildConfigFromFlags("", kc)
	if err != nil {
		t.Log(err)
		return
	}
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		t.Log(err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	zero := int64(0)
	err = cs.CoreV1().Pods("default").DeleteCollection(ctx, metav1.DeleteOptions{GracePeriodSeconds: &zero},
		metav1.ListOptions{LabelSelector: kube.LabelManaged + "=true," + kube.LabelNode + "=" + node})
	if err != nil {
		t.Log(err)
	}
}
