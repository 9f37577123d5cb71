package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	cronium "github.com/cronium/executor"
)

// Two servers on one host, each with its own data directory and no node
// name given, get node identities of their own, and the second one's start
// (which cleans up its own node's leftovers) leaves the first one's warm
// sandboxes alone. A third server on a data directory in use refuses to
// start.
func TestTwoServersOnOneHostKeepTheirSandboxes(t *testing.T) {
	t.Parallel()
	own := func() *server {
		s := newServer(t, 2)
		s.env = slices.DeleteFunc(s.env, func(v string) bool { return strings.HasPrefix(v, "CRONIUM_NODE_ID=") })
		return s
	}
	a, b := own(), own()
	keyA, keyB := a.user("alice", "free"), b.user("bob", "free")
	a.start()
	warm := map[string]any{"name": "warm", "language": "bash", "script": "echo warm", "strategy": "prewarmed"}
	if st := a.api(keyA, "PUT", "/v1/events/warm", warm, nil); st != 201 {
		t.Fatalf("apply: %d", st)
	}
	a.api(keyA, "POST", "/v1/events/warm/trigger", map[string]any{}, nil)
	a.waitAll(keyA, time.Minute)

	idA := readNodeID(t, a.dir)
	sandboxes := func(node string) []string {
		out, _ := exec.Command("docker", "ps", "-q", "--filter", "label=io.cronium.node="+node).Output()
		ids := strings.Fields(string(out))
		slices.Sort(ids)
		return ids
	}
	// The used sandbox goes, the pool refills to its one idle sandbox.
	deadline := time.Now().Add(30 * time.Second)
	var before []string
	for stable := 0; stable < 5; time.Sleep(200 * time.Millisecond) {
		now := sandboxes(idA)
		if len(now) == 1 && slices.Equal(now, before) {
			stable++
		} else {
			stable = 0
		}
		before = now
		if time.Now().After(deadline) {
			t.Fatalf("server A does not settle on one warm sandbox: %v\n%s", now, a.log)
		}
	}

	b.start()
	if idB := readNodeID(t, b.dir); idB == idA || !strings.HasPrefix(idA, hostPrefix()) {
		t.Fatalf("node IDs %q and %q: want two different ones starting with the host name", idA, idB)
	}
	if st := b.api(keyB, "PUT", "/v1/events/warm", warm, nil); st != 201 {
		t.Fatalf("apply on B: %d", st)
	}
	b.api(keyB, "POST", "/v1/events/warm/trigger", map[string]any{}, nil)
	for _, x := range b.waitAll(keyB, time.Minute) {
		if x.Outcome != cronium.Succeeded {
			t.Errorf("B's run: %s %s", x.Outcome, x.Error)
		}
	}
	if after := sandboxes(idA); !slices.Equal(before, after) {
		t.Errorf("server A's sandboxes were %v before server B started, %v after", before, after)
	}

	// A third server on A's data directory.
	third := exec.Command(bin, "serve")
	third.Env = append(slices.Clone(a.env), "CRONIUM_LISTEN=127.0.0.1:0")
	out, err := third.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "is using the data directory "+a.dir) {
		t.Errorf("a second server on one data directory: %v\n%s", err, out)
	}
}

func readNodeID(t *testing.T, dir string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "node-id"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func hostPrefix() string {
	h, _ := os.Hostname()
	if len(h) > 40 {
		h = h[:40]
	}
	return h
}
