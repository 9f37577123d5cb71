package packages_test

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/cronium/executor/docker"
	"github.com/cronium/executor/images"
	"github.com/cronium/executor/internal/fakenet"
	"github.com/cronium/executor/internal/testenv"
)

var (
	engine *docker.Engine
	// index is the local PyPI-like index the tests serve (PyPI is not reachable here).
	index *fakenet.Host
)

// The index's address: a documentation address nothing else here uses.
const (
	indexAddr = "203.0.113.140"
	indexLink = "198.51.100.8/30"
	indexURL  = "http://" + indexAddr + "/simple"
)

func TestMain(m *testing.M) { os.Exit(runMain(m)) }

func runMain(m *testing.M) int {
	tmp, err := os.MkdirTemp("", "crpkg")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(tmp)
	agentBin, err := testenv.BuildAgent(tmp)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx := context.Background()
	engine, err = docker.New(ctx, docker.Config{AgentPath: agentBin, StateDir: filepath.Join(tmp, "st"), Images: images.Refs(), NodeID: "pkgtest-" + docker.NewID()[:6]})
	if err != nil {
		fmt.Fprintln(os.Stderr, "FAIL: the package tests need a running Docker:", err)
		return 1
	}
	defer engine.Close()
	ok, err := engine.ImageExists(ctx, images.BuilderRecipe.Ref())
	if err != nil || !ok {
		fmt.Fprintf(os.Stderr, "FAIL: the builder image %s is missing (%v): run `make images`\n", images.BuilderRecipe.Ref(), err)
		return 1
	}
	index, err = fakenet.ServeHost(indexAddr, indexLink, pypi(wheels()))
	if err != nil {
		fmt.Fprintln(os.Stderr, "FAIL: serve the local package index:", err)
		return 1
	}
	defer index.Close()
	return m.Run()
}

// wheel builds a pure-Python wheel of name and version with the given modules and requirements.
func wheel(name, version string, files map[string]string, requires ...string) (string, []byte) {
	dist := name + "-" + version + ".dist-info/"
	meta := "Metadata-Version: 2.1\nName: " + name + "\nVersion: " + version + "\n"
	for _, r := range requires {
		meta += "Requires-Dist: " + r + "\n"
	}
	all := map[string]string{}
	for k, v := range files {
		all[k] = v
	}
	all[dist+"METADATA"] = meta
	all[dist+"WHEEL"] = "Wheel-Version: 1.0\nGenerator: cronium-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
	names := make([]string, 0, len(all))
	for k := range all {
		names = append(names, k)
	}
	sort.Strings(names)
	var record strings.Builder
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, n := range names {
		w, _ := zw.Create(n)
		w.Write([]byte(all[n]))
		sum := sha256.Sum256([]byte(all[n]))
		fmt.Fprintf(&record, "%s,sha256=%s,%d\n", n, base64.RawURLEncoding.EncodeToString(sum[:]), len(all[n]))
	}
	fmt.Fprintf(&record, "%sRECORD,,\n", dist)
	w, _ := zw.Create(dist + "RECORD")
	w.Write([]byte(record.String()))
	zw.Close()
	return fmt.Sprintf("%s-%s-py3-none-any.whl", strings.ReplaceAll(name, "-", "_"), version), buf.Bytes()
}

type dist struct {
	project, file string
	data          []byte
}

func wheels() []dist {
	var out []dist
	add := func(project string, f string, b []byte) { out = append(out, dist{project, f, b}) }
	f, b := wheel("requests", "2.31.0", map[string]string{
		"requests/__init__.py": "from fakedep import answer\n__version__ = '2.31.0'\ndef get(url):\n    return 'fake get ' + url\n",
	}, "fakedep>=1")
	add("requests", f, b)
	f, b = wheel("requests", "3.0.0", map[string]string{"requests/__init__.py": "__version__ = '3.0.0'\n"})
	add("requests", f, b)
	f, b = wheel("fakedep", "1.0", map[string]string{"fakedep/__init__.py": "answer = 42\n"})
	add("fakedep", f, b)
	return out
}

// pypi serves a PEP 503 simple index of the wheels: /simple/<project>/ and /files/<wheel>.
func pypi(ds []dist) http.Handler {
	mux := http.NewServeMux()
	projects := map[string][]dist{}
	for _, d := range ds {
		projects[d.project] = append(projects[d.project], d)
		data := d.data
		mux.HandleFunc("/files/"+d.file, func(w http.ResponseWriter, r *http.Request) { w.Write(data) })
	}
	mux.HandleFunc("/simple/", func(w http.ResponseWriter, r *http.Request) {
		p := strings.Trim(strings.TrimPrefix(r.URL.Path, "/simple/"), "/")
		if p == "" {
			for name := range projects {
				fmt.Fprintf(w, "<a href=\"%s/\">%s</a>\n", name, name)
			}
			return
		}
		list, ok := projects[p]
		if !ok {
			http.NotFound(w, r)
			return
		}
		fmt.Fprintln(w, "<!DOCTYPE html><html><body>")
		for _, d := range list {
			sum := sha256.Sum256(d.data)
			fmt.Fprintf(w, "<a href=\"/files/%s#sha256=%s\">%s</a>\n", d.file, hex.EncodeToString(sum[:]), d.file)
		}
		fmt.Fprintln(w, "</body></html>")
	})
	mux.HandleFunc("/down/", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "index under maintenance", http.StatusServiceUnavailable)
	})
	return mux
}
