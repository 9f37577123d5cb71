package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	cronium "github.com/cronium/executor"
	"github.com/cronium/executor/images"
)

// docker_ runs the docker CLI (the test's own view of the engine).
func docker_(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("docker", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// `cronium images update` with a changed base: the server moves new runs
// and warm pools to the new image, rebuilds the package layer built on the
// old one, leaves the execution running on the old image untouched, and
// removes the old image once nothing uses it.
//
// The images live in a repository of the test's own (--image-repo), so
// that the other tests' images never move. Its "current" bash image is the
// real one with an older bash in its package list: to the update, the
// mirror has changed since it was built.
func TestImagesUpdateMovesToTheNewBase(t *testing.T) {
	t.Parallel()
	repo := "crtest-upd-" + strings.ToLower(cronium.NewID()[:8])
	bashRecipe := images.Recipes[cronium.Bash]
	ref := repo + "/runtime-bash:" + bashRecipe.Hash()
	t.Cleanup(func() {
		// Every tag of the test's repository, at any depth: a reference
		// filter's "repo/*" stops at one (it left repo/sub/... behind).
		out, err := exec.Command("docker", "images", "--format", "{{.Repository}}:{{.Tag}}").Output()
		if err != nil {
			t.Logf("list images to remove the test's: %v", err)
		}
		for _, tag := range strings.Fields(string(out)) {
			if !strings.HasPrefix(tag, repo+"/") {
				continue
			}
			if out, err := exec.Command("docker", "rmi", "-f", tag).CombinedOutput(); err != nil {
				t.Logf("remove the test's image %s: %v %s", tag, err, out)
			}
		}
	})
	docker_(t, "tag", images.BuilderRecipe.Ref(), repo+"/builder:"+images.BuilderRecipe.Hash())
	dir := t.TempDir()
	pkgs := docker_(t, "run", "--rm", "--network", "none", bashRecipe.Ref(), "cat", "/usr/share/cronium/packages.txt")
	realBash := regexp.MustCompile(`(?m)^bash (\S+)$`).FindStringSubmatch(pkgs)
	if realBash == nil {
		t.Fatalf("no bash in the package list:\n%s", pkgs)
	}
	stale := regexp.MustCompile(`(?m)^bash \S+$`).ReplaceAllString(pkgs, "bash 5.0-0stale")
	os.WriteFile(filepath.Join(dir, "packages.txt"), []byte(stale+"\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM "+bashRecipe.Ref()+"\nCOPY packages.txt /usr/share/cronium/packages.txt\n"), 0o644)
	docker_(t, "build", "-q", "-t", ref, dir)
	staleID := docker_(t, "image", "inspect", "-f", "{{.Id}}", ref)
	// Not one of this repository's images: the server never removes it,
	// "-prev-" or not.
	notOurs := repo + "/sub/runtime-bash:" + bashRecipe.Hash() + "-prev-20200101T000000Z"
	docker_(t, "tag", bashRecipe.Ref(), notOurs)
	// A mistyped repository has nothing to update: refused, nothing built.
	if _, stderr, code := cronium_(t, "--image-repo", repo+"-typo", "images", "update", "bash"); code != 2 || !strings.Contains(stderr, "holds no images") {
		t.Errorf("update of an empty repository: exit %d %q, want 2 and a refusal", code, stderr)
	}

	// pro: slow may run for as long as the rebuild takes on a busy host.
	s, key := startAs(t, "pro", "CRONIUM_IMAGE_REPO="+repo)
	// plain and slow share a prewarmed pool; pkg has a package layer.
	apply := func(name, yaml string) {
		t.Helper()
		f := filepath.Join(dir, name+".yaml")
		os.WriteFile(f, []byte(yaml), 0o644)
		if out, err := s.cli("event", "apply", "-f", f); err != nil {
			t.Fatalf("apply %s: %v %s", name, err, out)
		}
	}
	apply("plain", "name: plain\nlanguage: bash\nstrategy: prewarmed\nscript: grep '^bash ' /usr/share/cronium/packages.txt\n")
	apply("slow", `name: slow
language: bash
strategy: prewarmed
timeout: 20m
script: |
  grep '^bash ' /usr/share/cronium/packages.txt
  until [ "$(cronium_getVariable go)" = 1 ]; do sleep 0.5; done
  grep '^bash ' /usr/share/cronium/packages.txt
`)
	apply("pkg", "name: pkg\nlanguage: bash\nstrategy: prewarmed\nscript: |\n  sqlite3 :memory: 'select 6*7'\n  grep '^bash ' /usr/share/cronium/packages.txt\npackages:\n  apt: [sqlite3]\n")
	var pkg cronium.Event
	s.api(key, "GET", "/v1/events/pkg", nil, &pkg)
	if pkg.PackageLock == nil || pkg.PackageLock.BaseID != staleID || !strings.HasPrefix(pkg.PackageLock.Image, repo+"/pkgs-bash:") {
		t.Fatalf("the layer is not on the test's base %s: %+v", staleID, pkg.PackageLock)
	}
	run := func(name string) cronium.Execution {
		t.Helper()
		var x cronium.Execution
		if st := s.api(key, "POST", "/v1/events/"+name+"/trigger", map[string]any{}, &x); st != 201 && st != 200 && st != 202 {
			t.Fatalf("trigger %s: %d", name, st)
		}
		deadline := time.Now().Add(90 * time.Second)
		for x.Status != cronium.StatusFinished {
			if time.Now().After(deadline) {
				t.Fatalf("%s did not finish: %+v\n%s", name, x, s.log)
			}
			time.Sleep(100 * time.Millisecond)
			s.api(key, "GET", "/v1/executions/"+x.ID, nil, &x)
		}
		return x
	}
	logs := func(x cronium.Execution) string {
		t.Helper()
		out, _ := s.cli("exec", "logs", x.ID)
		return out
	}

	before := run("plain")
	if before.Outcome != cronium.Succeeded || before.Result.ImageID != staleID || !strings.Contains(logs(before), "bash 5.0-0stale") {
		t.Fatalf("before the update: %s on %s: %q", before.Outcome, before.Result.ImageID, logs(before))
	}
	// A run in progress on the old image, from the warm pool.
	var slow cronium.Execution
	s.api(key, "POST", "/v1/events/slow/trigger", map[string]any{}, &slow)
	for deadline := time.Now().Add(60 * time.Second); !strings.Contains(logs(slow), "0stale"); {
		if time.Now().After(deadline) {
			t.Fatalf("slow did not start: %q\n%s", logs(slow), s.log)
		}
		time.Sleep(200 * time.Millisecond)
	}

	out, err := s.cli("images", "update", "bash")
	if err != nil || !strings.Contains(out, ref+": updated") || !strings.Contains(out, "bash 5.0-0stale -> "+realBash[1]) {
		t.Fatalf("images update: %v\n%s", err, out)
	}
	newID := docker_(t, "image", "inspect", "-f", "{{.Id}}", ref)
	if newID == staleID {
		t.Fatal("the tag did not move")
	}
	prev := regexp.MustCompile(regexp.QuoteMeta(ref) + `-prev-\d{8}T\d{6}Z`).FindString(out)
	if prev == "" || docker_(t, "image", "inspect", "-f", "{{.Id}}", prev) != staleID {
		t.Fatalf("the old image is not kept under a -prev- tag:\n%s", out)
	}
	// Again: nothing changed on the mirror since.
	if out, err := s.cli("images", "update", "bash"); err != nil || !strings.Contains(out, ref+": up to date") {
		t.Errorf("a second update: %v\n%s", err, out)
	}

	// The server rebuilds the layer on the new base and records it.
	var after cronium.Event
	for deadline := time.Now().Add(5 * time.Minute); ; {
		s.api(key, "GET", "/v1/events/pkg", nil, &after)
		if after.PackageLock != nil && after.PackageLock.BaseID == newID {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the package layer was not rebuilt on %s: %+v\n%s", newID, after.PackageLock, s.log)
		}
		time.Sleep(500 * time.Millisecond)
	}
	if after.PackageLock.Image == pkg.PackageLock.Image || !after.UpdatedAt.Equal(pkg.UpdatedAt) {
		t.Errorf("rebuilt lock %+v (updated %s, was %s)", after.PackageLock, after.UpdatedAt, pkg.UpdatedAt)
	}
	// The warm pool of plain and slow was retired (slow still runs in it).
	if !regexp.MustCompile(`runtime image updated.*retired_pools=1`).MatchString(s.log.String()) {
		t.Errorf("the server did not retire the old image's pool:\n%s", s.log)
	}
	// New runs are on the new image.
	x := run("plain")
	if x.Outcome != cronium.Succeeded || x.Result.ImageID != newID || !strings.Contains(logs(x), "bash "+realBash[1]) {
		t.Errorf("a run after the update: %s on %s (want %s): %q", x.Outcome, x.Result.ImageID, newID, logs(x))
	}
	x = run("pkg")
	if l := logs(x); x.Outcome != cronium.Succeeded || x.Result.Image != after.PackageLock.Image || !strings.Contains(l, "42") || !strings.Contains(l, "bash "+realBash[1]) {
		t.Errorf("the package event after the update: %s on %s: %q", x.Outcome, x.Result.Image, l)
	}

	// The run that started before is untouched: same image, same files.
	s.api(key, "GET", "/v1/executions/"+slow.ID, nil, &slow)
	if slow.Status != cronium.StatusRunning {
		t.Fatalf("slow is %s %s, want still running", slow.Status, slow.Outcome)
	}
	if _, err := s.cli("var", "set", "go", "1"); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); slow.Status != cronium.StatusFinished; {
		if time.Now().After(deadline) {
			t.Fatalf("slow did not finish: %+v", slow)
		}
		time.Sleep(200 * time.Millisecond)
		s.api(key, "GET", "/v1/executions/"+slow.ID, nil, &slow)
	}
	if l := logs(slow); slow.Outcome != cronium.Succeeded || slow.Result.ImageID != staleID || strings.Count(l, "bash 5.0-0stale") != 2 {
		t.Errorf("the run across the update: %s on %s: %q", slow.Outcome, slow.Result.ImageID, l)
	}

	// Nothing uses the old image any more: no container (the retired
	// pool's sandboxes are gone), and its tag goes.
	for deadline := time.Now().Add(2 * time.Minute); ; {
		users := docker_(t, "ps", "-aq", "--filter", "ancestor="+staleID)
		_, err := exec.Command("docker", "image", "inspect", prev).Output()
		if users == "" && err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the old image is still in use (%q) or kept (%v)\n%s", users, err == nil, s.log)
		}
		time.Sleep(time.Second)
	}
	if _, err := exec.Command("docker", "image", "inspect", notOurs).Output(); err != nil {
		t.Errorf("the server removed %s, which is not one of its images", notOurs)
	}
}
