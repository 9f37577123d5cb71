package packages_test

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	cronium "github.com/cronium/executor"
	"github.com/cronium/executor/docker"
	"github.com/cronium/executor/images"
	"github.com/cronium/executor/packages"
)

func builder() *packages.Builder {
	return &packages.Builder{Engine: engine, BuilderImage: images.BuilderRecipe.Ref(), Indexes: packages.Indexes{Python: indexURL}}
}

// run runs script on image with no network and returns its output.
func run(t *testing.T, lang cronium.Language, image, script string) string {
	t.Helper()
	var mu sync.Mutex
	var out strings.Builder
	res, err := engine.Run(context.Background(), cronium.Spec{Language: lang, Image: image, Script: []byte(script),
		Network: cronium.Net(cronium.NetworkNone),
		Output:  func(c cronium.OutputChunk) { mu.Lock(); out.Write(c.Data); mu.Unlock() }})
	if err != nil {
		t.Fatal(err)
	}
	if res.Outcome != cronium.Succeeded {
		t.Fatalf("run on %s: %s %s\n%s", image, res.Outcome, res.Error, out.String())
	}
	return out.String()
}

// ensure builds (or finds) a package set and checks the second apply builds nothing.
func ensure(t *testing.T, b *packages.Builder, lang cronium.Language, p cronium.Packages) cronium.PackageLock {
	t.Helper()
	ctx := context.Background()
	base := images.Refs()[lang]
	var progress strings.Builder
	lock, _, err := b.Ensure(ctx, lang, base, p, &progress)
	if err != nil {
		t.Fatalf("build %+v: %v\n%s", p, err, progress.String())
	}
	if lock.Image == "" || lock.Base != base {
		t.Fatalf("lock %+v", lock)
	}
	begin := time.Now()
	again, built, err := b.Ensure(ctx, lang, base, p, nil)
	if err != nil || built {
		t.Fatalf("second apply: built %v err %v", built, err)
	}
	if !reflect.DeepEqual(again, lock) {
		t.Errorf("second apply found another lock:\n%+v\n%+v", again, lock)
	}
	t.Logf("second apply of %+v: %s", p, time.Since(begin))
	return lock
}

// A python event imports requests from the local index; the run has no network.
func TestPythonFromLocalIndex(t *testing.T) {
	lock := ensure(t, builder(), cronium.Python, cronium.Packages{Python: []string{"requests==2.*"}})
	if want := []string{"fakedep==1.0", "requests==2.31.0"}; !reflect.DeepEqual(lock.Python, want) {
		t.Errorf("lock %v, want %v (2.* pinned to 2.31.0, not 3.0.0, with its dependency)", lock.Python, want)
	}
	out := run(t, cronium.Python, lock.Image, "import requests, fakedep\nprint(requests.__version__, requests.get('x'), fakedep.answer)\n")
	if !strings.Contains(out, "2.31.0 fake get x 42") {
		t.Errorf("output %q", out)
	}
	// Another declaration that resolves to the same versions gets an image
	// of its own: it never moves the tag the first event's lock names.
	other := ensure(t, builder(), cronium.Python, cronium.Packages{Python: []string{"requests==2.31.0"}})
	if !reflect.DeepEqual(other.Python, lock.Python) || other.Image == lock.Image {
		t.Errorf("same versions %v %v, images %s %s: want the same versions in two images", other.Python, lock.Python, other.Image, lock.Image)
	}
}

// A node event requires an npm package from the npm registry; the run has no network.
func TestNodeFromNpm(t *testing.T) {
	// With a Debian node-* package too: both land where node looks, and
	// apt brings only what the image lacks (not nodejs again).
	lock := ensure(t, builder(), cronium.Node, cronium.Packages{Node: []string{"is-number@>=7 <8"}, Apt: []string{"node-ms"}})
	if len(lock.Node) != 1 || !strings.HasPrefix(lock.Node[0], "is-number@7.") {
		t.Errorf("lock %v, want is-number@7.x", lock.Node)
	}
	if len(lock.Apt) != 1 || !strings.HasPrefix(lock.Apt[0], "node-ms=") {
		t.Errorf("apt lock %v, want node-ms alone (the base has nodejs)", lock.Apt)
	}
	out := run(t, cronium.Node, lock.Image, "console.log('is-number', require('is-number')(5), require('is-number')('x'), require('ms')(60000))\n")
	if !strings.Contains(out, "is-number true false 1m") {
		t.Errorf("output %q", out)
	}
}

// A bash event uses a Debian package; the run has no network.
func TestAptPackage(t *testing.T) {
	lock := ensure(t, builder(), cronium.Bash, cronium.Packages{Apt: []string{"sqlite3"}})
	found := false
	for _, l := range lock.Apt {
		found = found || strings.HasPrefix(l, "sqlite3=")
	}
	if !found || len(lock.Apt) > 3 {
		t.Errorf("lock %v: want sqlite3=version and its library, not the base's packages again", lock.Apt)
	}
	out := run(t, cronium.Bash, lock.Image, "sqlite3 :memory: 'select 6*7'; test ! -u \"$(command -v sqlite3)\" && echo no-setuid\n")
	if !strings.Contains(out, "42") || !strings.Contains(out, "no-setuid") {
		t.Errorf("output %q", out)
	}
}

// Failed builds name the field and the package and quote the indexer, and leave no image.
func TestFailedBuilds(t *testing.T) {
	down := builder()
	down.Indexes.Python = "http://" + indexAddr + "/down/simple"
	aptDown := builder()
	aptDown.Indexes.Apt = []string{"deb http://" + indexAddr + "/down/debian bookworm main"}
	cases := []struct {
		name string
		b    *packages.Builder
		lang cronium.Language
		p    cronium.Packages
		want []string
	}{
		{"unknown python package", builder(), cronium.Python, cronium.Packages{Python: []string{"requests==2.*", "no-such-package-xyz"}}, []string{"packages.python", "no-such-package-xyz", "No matching distribution"}},
		{"version that does not exist", builder(), cronium.Python, cronium.Packages{Python: []string{"requests==9.9"}}, []string{"packages.python", "requests==9.9", "from versions: 2.31.0, 3.0.0"}},
		{"index down", down, cronium.Python, cronium.Packages{Python: []string{"requests"}}, []string{"packages.python", "requests", "503"}},
		{"unknown npm package", builder(), cronium.Node, cronium.Packages{Node: []string{"cronium-no-such-package-xyz@1"}}, []string{"packages.node", "cronium-no-such-package-xyz@1", "404"}},
		{"apt mirror down (the package is in the base image)", aptDown, cronium.Bash, cronium.Packages{Apt: []string{"jq"}}, []string{"packages.apt", "jq", "503"}},
		{"unknown apt package", builder(), cronium.Bash, cronium.Packages{Apt: []string{"jq", "no-such-package-xyz"}}, []string{"packages.apt", "no-such-package-xyz", "Unable to locate package"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			base := images.Refs()[c.lang]
			var progress strings.Builder
			_, _, err := c.b.Ensure(context.Background(), c.lang, base, c.p, &progress)
			defer func() {
				if t.Failed() {
					t.Log(progress.String())
				}
			}()
			var be *packages.BuildError
			if !errors.As(err, &be) {
				t.Fatalf("error %v (%T), want a BuildError", err, err)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q\n%s", err, w, strings.Join(be.Messages, "\n"))
				}
			}
			if _, ok, err := c.b.Find(context.Background(), base, c.p); ok || err != nil {
				t.Errorf("a failed build left an image (%v)", err)
			}
		})
	}
}

// Layers no event uses go after UnusedFor, or at once past the disk budget;
// layers in use stay.
func TestPruneUnusedLayers(t *testing.T) {
	b := builder()
	// Its own namespace: the other tests' layers (and other test binaries') are not its to prune.
	b.Namespace = "cronium-test/prune-" + strings.ToLower(docker.NewID()[:6]) + "-"
	t.Cleanup(func() {
		left, _ := b.List(context.Background())
		for _, l := range left {
			engine.RemoveImage(context.Background(), l.Lock.Image)
		}
	})
	ctx := context.Background()
	used := ensure(t, b, cronium.Python, cronium.Packages{Python: []string{"fakedep==1.0"}})
	spare := ensure(t, b, cronium.Python, cronium.Packages{Python: []string{"requests==2.31.0"}})
	p := &packages.Pruner{Builder: b, Remove: engine.RemoveImage, UnusedFor: time.Hour}
	now := time.Now()
	inUse := map[string]bool{used.Image: true}
	if removed, err := p.Prune(ctx, inUse, now); err != nil || len(removed) != 0 {
		t.Fatalf("first pass removed %v (%v): it only starts remembering", removed, err)
	}
	if removed, _ := p.Prune(ctx, inUse, now.Add(30*time.Minute)); len(removed) != 0 {
		t.Errorf("removed %v before unused_for", removed)
	}
	removed, err := p.Prune(ctx, inUse, now.Add(2*time.Hour))
	if err != nil || !reflect.DeepEqual(removed, []string{spare.Image}) {
		t.Errorf("removed %v (%v), want only the unused %s", removed, err, spare.Image)
	}
	if _, ok, _ := b.Find(ctx, images.Refs()[cronium.Python], cronium.Packages{Python: []string{"fakedep==1.0"}}); !ok {
		t.Error("the layer in use is gone")
	}
	// Past the budget, unused layers go at once; used ones never.
	spare = ensure(t, b, cronium.Python, cronium.Packages{Python: []string{"requests==2.31.0"}})
	tight := &packages.Pruner{Builder: b, Remove: engine.RemoveImage, UnusedFor: time.Hour, Budget: 1}
	removed, _ = tight.Prune(ctx, inUse, now)
	if len(removed) != 1 || removed[0] != spare.Image {
		t.Errorf("over budget removed %v, want %s", removed, spare.Image)
	}
	if _, ok, _ := b.Find(ctx, images.Refs()[cronium.Python], cronium.Packages{Python: []string{"fakedep==1.0"}}); !ok {
		t.Error("the layer in use was removed for the budget")
	}
}
