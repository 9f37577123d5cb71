package main

import (
	"context"
	"crypto"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	cronium "github.com/cronium/executor"
	"github.com/cronium/executor/images"
	"github.com/cronium/executor/registry"
	"github.com/cronium/executor/registry/registrytest"
)

// push tags image as host/repo:tag, pushes it with the engine and returns its digest.
func push(t *testing.T, image, host, repo, tag string) string {
	t.Helper()
	ref := host + "/" + repo + ":" + tag
	for _, args := range [][]string{{"tag", image, ref}, {"push", ref}, {"rmi", ref}} {
		if out, err := exec.Command("docker", args...).CombinedOutput(); err != nil {
			t.Fatalf("docker %v: %v\n%s", args, err, out)
		}
	}
	d, err := (&registry.Client{}).Resolve(context.Background(), registry.Ref{Registry: host, Repository: repo, Tag: tag})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func sign(t *testing.T, host, repo, digest string, key crypto.Signer) {
	t.Helper()
	if err := (&registry.Client{}).SignCosign(context.Background(), registry.Ref{Registry: host, Repository: repo, Digest: digest}, key); err != nil {
		t.Fatal(err)
	}
}

// A custom image runs when it comes from an allowed registry, signed with
// the operator's key, has the interpreter and passes the scanner; it is
// refused otherwise, with the reason. Runs use the digest pinned at apply.
func TestServeCustomImages(t *testing.T) {
	t.Parallel()
	reg := registrytest.Start(t)
	host := reg.Host
	keyA, pubA := registrytest.GenerateKey(t)
	keyB, _ := registrytest.GenerateKey(t)
	dir := t.TempDir()
	pubFile := filepath.Join(dir, "cosign.pub")
	os.WriteFile(pubFile, pubA, 0o644)
	scanner := filepath.Join(dir, "scan.sh")
	os.WriteFile(scanner, []byte(`#!/bin/sh
case "$1" in
*/vuln@*) echo '{"findings":[{"id":"CVE-2026-0002","severity":"low","package":"zlib"},{"id":"CVE-2026-0001","severity":"critical","package":"openssl","title":"remote code execution"}]}';;
*) echo '{"findings":[{"id":"CVE-2026-0003","severity":"medium","package":"bash"}]}';;
esac
`), 0o755)
	cfg := filepath.Join(dir, "cronium.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`images:
  registries: [%q]
  signature:
    keys: [%q]
  scanner:
    command: [%q]
    refuse_at: high
`, host, pubFile, scanner)), 0o644)

	bash := images.Recipes[cronium.Bash].Ref()
	d1 := push(t, bash, host, "team/tool", "1")
	sign(t, host, "team/tool", d1, keyA)
	dUnsigned := push(t, bash, host, "team/unsigned", "1")
	dOther := push(t, bash, host, "team/otherkey", "1")
	sign(t, host, "team/otherkey", dOther, keyB)
	dVuln := push(t, bash, host, "team/vuln", "1")
	sign(t, host, "team/vuln", dVuln, keyA)
	_ = dUnsigned

	s, key := startAs(t, "free", "CRONIUM_CONFIG="+cfg)
	apply := func(name, lang, image string) error {
		f := filepath.Join(t.TempDir(), name+".yaml")
		script := "test -e /moved && echo MOVED || echo ORIGINAL"
		if lang == "python" {
			script = "print('hi')"
		}
		os.WriteFile(f, []byte(fmt.Sprintf("name: %s\nlanguage: %s\nimage: %s\nscript: %q\n", name, lang, image, script)), 0o644)
		_, err := s.cli("event", "apply", "-f", f)
		return err
	}
	// Signed with the right key, by tag: pinned to the digest.
	if err := apply("tool", "bash", host+"/team/tool:1"); err != nil {
		t.Fatalf("signed image refused: %v\n%s", err, s.log)
	}
	var ev cronium.Event
	s.api(key, "GET", "/v1/events/tool", nil, &ev)
	if want := host + "/team/tool@" + d1; ev.ImagePinned != want {
		t.Fatalf("pinned %q, want %q", ev.ImagePinned, want)
	}
	// The tag moves to another (unsigned) image: runs keep the pinned one,
	// and applying the tag again is refused.
	out, err := exec.Command("docker", "run", "--name", "crn-moved-"+filepath.Base(dir), bash, "bash", "-c", "true").CombinedOutput()
	if err != nil {
		t.Fatalf("%v %s", err, out)
	}
	cname := "crn-moved-" + filepath.Base(dir)
	defer exec.Command("docker", "rm", "-f", cname).Run()
	exec.Command("docker", "cp", pubFile, cname+":/moved").Run()
	moved := "cronium-test-moved:" + filepath.Base(dir)
	if out, err := exec.Command("docker", "commit", cname, moved).CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	defer exec.Command("docker", "rmi", moved).Run()
	if d2 := push(t, moved, host, "team/tool", "1"); d2 == d1 {
		t.Fatal("the tag did not move")
	}
	if out, err := s.cli("trigger", "tool"); err != nil {
		t.Fatalf("trigger: %v %s", err, out)
	}
	xs := s.waitAll(key, 60*time.Second)
	if len(xs) != 1 || xs[0].Outcome != cronium.Succeeded || xs[0].Result == nil || xs[0].Result.Image != ev.ImagePinned {
		t.Fatalf("execution %+v\n%s", xs, s.log)
	}
	if logs, _ := s.cli("exec", "logs", xs[0].ID); !strings.Contains(logs, "ORIGINAL") {
		t.Errorf("the run did not use the pinned image: %q", logs)
	}
	if err := apply("tool", "bash", host+"/team/tool:1"); err == nil || !strings.Contains(err.Error(), "has no signature") {
		t.Errorf("the moved (unsigned) tag applied: %v", err)
	}
	var still cronium.Event
	s.api(key, "GET", "/v1/events/tool", nil, &still)
	if still.ImagePinned != ev.ImagePinned {
		t.Errorf("a refused apply changed the pinned image: %q", still.ImagePinned)
	}

	refused := []struct {
		name, lang, image string
		says              []string
	}{
		{"unsigned", "bash", host + "/team/unsigned:1", []string{"refused", "has no signature"}},
		{"otherkey", "bash", host + "/team/otherkey:1", []string{"refused", "signed with another key"}},
		{"notallowed", "bash", "registry.example/team/tool:1", []string{"image", "registry.example", "does not allow", host}},
		{"nodigest", "bash", host + "/team/tool@sha256:" + strings.Repeat("0", 64), []string{"image", "does not exist"}},
		{"nointerp", "python", host + "/team/tool@" + d1, []string{"image", "has no python interpreter"}},
		{"vuln", "bash", host + "/team/vuln:1", []string{"scanner found 1 finding(s) at or above high", "CRITICAL CVE-2026-0001 in openssl: remote code execution"}},
	}
	for _, c := range refused {
		err := apply(c.name, c.lang, c.image)
		for _, w := range c.says {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %v, want it to say %q", c.name, err, w)
			}
		}
		if err != nil && strings.Contains(err.Error(), "CVE-2026-0002") {
			t.Errorf("%s: a low finding was shown as refusing: %v", c.name, err)
		}
		if st := s.api(key, "GET", "/v1/events/"+c.name, nil, nil); st != 404 {
			t.Errorf("%s: a refused event was stored (%d)", c.name, st)
		}
	}
}
