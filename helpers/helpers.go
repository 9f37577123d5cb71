// Package helpers embeds the runtime helper sources mounted into every sandbox at /.cronium/lib.
//
// The helpers give scripts Cronium's documented API (input, output,
// get/set/delete/listVariables, increment, set/getCondition, event) with no
// import, require or source line, in any image that has the interpreter:
//
//   - bash: cronium.sh, loaded through BASH_ENV; functions cronium_input,
//     cronium_getVariable, ... run the agent's client (`/.cronium/agent api`);
//   - python: cronium.py (socket + json only), made the builtin `cronium` by
//     sitecustomize.py on PYTHONPATH; `import cronium` works too;
//   - node: cronium.js, made the global `cronium` by cronium-preload.js
//     (NODE_OPTIONS=--require); require('cronium') works through NODE_PATH.
//     Calls are synchronous: each runs `/.cronium/agent api` with the request
//     on stdin.
//
// In a warm sandbox the agent may start the python or node interpreter of
// the next run ahead of it (agent.Prepare): sitecustomize.py (through
// cronium-prestart.py) and the end of cronium-preload.js then wait for the
// run there, once the helpers are loaded, and hand over to the script as
// a fresh start would.
//
// All of them speak the runtime API of package agent: one JSON request line
// with the execution's CRONIUM_RUNTIME_TOKEN per connection to the unix
// socket CRONIUM_API_SOCKET (default /run/cronium/api.sock), one JSON reply line.
package helpers

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
)

//go:embed lib
var libFS embed.FS

var load = sync.OnceValues(func() (map[string][]byte, string) {
	files := map[string][]byte{}
	err := fs.WalkDir(libFS, "lib", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := libFS.ReadFile(p)
		files[strings.TrimPrefix(p, "lib/")] = b
		return err
	})
	if err != nil {
		panic("helpers: embedded files: " + err.Error()) // cannot happen with a built binary
	}
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names)
	h := sha256.New()
	for _, name := range names {
		fmt.Fprintf(h, "%s\x00%d\x00", name, len(files[name]))
		h.Write(files[name])
	}
	return files, hex.EncodeToString(h.Sum(nil))[:12]
})

// Files returns the helper files: relative path (slash-separated) -> content.
// The map is the caller's to keep.
func Files() map[string][]byte {
	files, _ := load()
	out := make(map[string][]byte, len(files))
	for name, b := range files {
		out[name] = append([]byte(nil), b...)
	}
	return out
}

// Hash is a short content hash of all files (for a content-addressed install directory).
func Hash() string {
	_, h := load()
	return h
}

// Env returns the environment variables the engine sets so helpers load without import/source lines,
// given the mount directory (e.g. "/.cronium/lib"): BASH_ENV, PYTHONPATH, NODE_OPTIONS, NODE_PATH.
// The script also needs CRONIUM_RUNTIME_TOKEN (and CRONIUM_API_SOCKET when the
// socket is not at /run/cronium/api.sock); CRONIUM_AGENT_BIN overrides the
// client binary, /.cronium/agent.
func Env(dir string) []string {
	preload := path.Join(dir, "cronium-preload.js")
	if strings.ContainsAny(preload, " \t\"\\") { // NODE_OPTIONS splits on spaces; quote as Node expects
		preload = `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(preload) + `"`
	}
	return []string{
		"BASH_ENV=" + path.Join(dir, "cronium.sh"),
		"PYTHONPATH=" + dir,
		"NODE_OPTIONS=--require " + preload,
		"NODE_PATH=" + dir,
	}
}

// Install writes the files into a directory named after Hash under parent
// (directories 0755, files 0444) and returns its path. The files are written
// into a fresh temporary directory with O_NOFOLLOW|O_CREAT|O_EXCL, which is
// then renamed into place, so a reader never sees a partial directory and
// nothing planted in parent is followed. An existing directory whose files
// match is reused; one that does not (or a symlink in its place) is replaced.
func Install(parent string) (string, error) {
	files, hash := load()
	final := filepath.Join(parent, "helpers-"+hash)
	if matches(final, files) {
		return final, nil
	}
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return "", err
	}
	tmp, err := os.MkdirTemp(parent, ".helpers-tmp-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp) // a no-op once renamed
	if err := write(tmp, files); err != nil {
		return "", fmt.Errorf("install helpers: %w", err)
	}
	if err := os.Rename(tmp, final); err != nil {
		if matches(final, files) { // another process installed it first
			return final, nil
		}
		// A stale or tampered entry is in the way: replace it.
		if rerr := os.RemoveAll(final); rerr != nil {
			return "", fmt.Errorf("install helpers: %w", rerr)
		}
		if err := os.Rename(tmp, final); err != nil {
			return "", fmt.Errorf("install helpers: %w", err)
		}
	}
	return final, nil
}

// write creates every file (and directory) under dir, refusing to follow or reuse anything.
func write(dir string, files map[string][]byte) error {
	for name, b := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil { // dir is fresh and ours: nothing to follow
			return err
		}
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o444)
		if err != nil {
			return err
		}
		_, err = f.Write(b)
		if err == nil {
			err = f.Chmod(0o444) // whatever the umask
		}
		if err == nil {
			err = f.Sync()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	}
	return os.Chmod(dir, 0o755)
}

// matches reports whether dir is a real directory holding these file contents.
func matches(dir string, files map[string][]byte) bool {
	if fi, err := os.Lstat(dir); err != nil || !fi.IsDir() {
		return false
	}
	for name, want := range files {
		f, err := os.OpenFile(filepath.Join(dir, filepath.FromSlash(name)), os.O_RDONLY|syscall.O_NOFOLLOW, 0)
		if err != nil {
			return false
		}
		got, err := io.ReadAll(io.LimitReader(f, int64(len(want))+1))
		f.Close()
		if err != nil || string(got) != string(want) {
			return false
		}
	}
	return true
}
