// Package packages builds an event's declared packages (apt, pip, npm)
// into one layer on top of its runtime image.
//
// The build runs in a sandbox made from the builder image, as nobody, with
// a network that reaches only the configured package indexes. It never runs
// a package's code: Debian packages are unpacked without their maintainer
// scripts, Python packages are installed from wheels only, npm packages with
// --ignore-scripts. The engine copies the result out of the sandbox and
// commits it as a layer on the runtime image; the host never writes or
// follows a path the build made.
//
// An image is found again by the hash of (base image, declared packages,
// indexes), so the second apply of the same set builds nothing, and it is
// tagged by the hash of (base image, resolved packages), which the lock records.
package packages

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	cronium "github.com/cronium/executor"
)

//go:embed build.sh
var buildScript []byte

// buildVersion changes when the build procedure changes, so that layers
// are built again.
const buildVersion = "1"

// Labels on a layered image.
const (
	LabelKey  = "io.cronium.packages.key"  // the hash that finds the image again
	LabelLock = "io.cronium.packages.lock" // the PackageLock, JSON
	LabelBase = "io.cronium.packages.base" // the runtime image it is built on
)

// Indexes are the package indexes builds may use: the builder sandbox's
// network reaches these hosts and no others.
type Indexes struct {
	// Apt are sources.list lines ("deb http://deb.debian.org/debian bookworm main").
	// Default: this host's apt sources.
	Apt []string `json:"apt,omitempty"`
	// Python is the pip index URL (a PEP 503 "simple" index). Default https://pypi.org/simple.
	Python string `json:"python,omitempty"`
	// Node is the npm registry URL. Default https://registry.npmjs.org/.
	Node string `json:"node,omitempty"`
	// ExtraHosts are more hosts builds may reach: where an index keeps its
	// files, if elsewhere (files.pythonhosted.org is added for pypi.org).
	ExtraHosts []string `json:"extra_hosts,omitempty"`
	// CAFile is a PEM file of certificate authorities the builder trusts
	// beside Debian's (a TLS-inspecting proxy in front of the indexes).
	// Default: the ones this host added (/usr/local/share/ca-certificates).
	CAFile string `json:"ca_file,omitempty"`
}

// extraCAs reads the configured or the host's added certificate authorities.
func (ix Indexes) extraCAs() (string, error) {
	if ix.CAFile != "" {
		b, err := os.ReadFile(ix.CAFile)
		if err != nil {
			return "", cronium.Invalid("images.indexes.ca_file", ix.CAFile, "cannot be read: "+err.Error())
		}
		if !strings.Contains(string(b), "-----BEGIN CERTIFICATE-----") {
			return "", cronium.Invalid("images.indexes.ca_file", ix.CAFile, "holds no PEM certificate")
		}
		return string(b), nil
	}
	files, _ := filepath.Glob("/usr/local/share/ca-certificates/*.crt")
	var all strings.Builder
	for _, f := range files {
		if b, err := os.ReadFile(f); err == nil && strings.Contains(string(b), "-----BEGIN CERTIFICATE-----") {
			all.Write(b)
			all.WriteString("\n")
		}
	}
	return all.String(), nil
}

// Engine is what a build needs from a container engine.
type Engine interface {
	Run(ctx context.Context, spec cronium.Spec) (cronium.Result, error)
	CommitLayer(ctx context.Context, base string, layer io.Reader, ref string, changes []string) error
	ReadImageFile(ctx context.Context, ref, path string, limit int64) ([]byte, error)
	FindImages(ctx context.Context, label, value string) ([]cronium.ImageInfo, error)
	ImageSize(ctx context.Context, ref string) (int64, error)
	ImageID(ctx context.Context, ref string) (string, error)
}

// Builder builds and finds layered images. Methods are safe for concurrent use.
type Builder struct {
	// Engine runs the builds and holds the images. Required.
	Engine Engine
	// BuilderImage is the image builds run in (images.BuilderRecipe). Required.
	BuilderImage string
	// Indexes are the package indexes.
	Indexes Indexes
	// Limits of a build. Default: 2 CPUs, 2Gi memory and /tmp, 10 minutes.
	Limits cronium.Limits
	// Namespace prefixes the layers' names (+ language:hash); List and
	// Prune see only its layers. Default "cronium/pkgs-".
	Namespace string

	// MaxBuilds is how many builds run at once on the node. Default 1.
	MaxBuilds int

	mu       sync.Mutex
	building map[string]chan struct{}
	slots    chan struct{}
	bases    map[string][]byte
	inFlight map[string]int // base image ID: builds on it in progress
}

// InFlight returns the IDs of the base images that builds in progress use:
// they must not be removed under them.
func (b *Builder) InFlight() map[string]bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := map[string]bool{}
	for id := range b.inFlight {
		out[id] = true
	}
	return out
}

// hold marks base id in use by a build until the returned func is called.
func (b *Builder) hold(id string) func() {
	b.mu.Lock()
	if b.inFlight == nil {
		b.inFlight = map[string]int{}
	}
	b.inFlight[id]++
	b.mu.Unlock()
	return func() {
		b.mu.Lock()
		if b.inFlight[id]--; b.inFlight[id] <= 0 {
			delete(b.inFlight, id)
		}
		b.mu.Unlock()
	}
}

// Defaults fills in the indexes this host uses when none are configured.
func (ix Indexes) Defaults() Indexes {
	if len(ix.Apt) == 0 {
		ix.Apt = hostAptSources()
	}
	if ix.Python == "" {
		ix.Python = "https://pypi.org/simple"
	}
	if ix.Node == "" {
		ix.Node = "https://registry.npmjs.org/"
	}
	return ix
}

// Validate checks the indexes; field names them in errors (images.indexes).
func (ix Indexes) Validate(field string) error {
	for i, h := range ix.ExtraHosts {
		if _, err := cronium.NormalizeDomainPattern(h); err != nil || strings.Contains(h, "*") {
			return cronium.Invalid(fmt.Sprintf("%s.extra_hosts[%d]", field, i), h, "is not a public host name or address")
		}
	}
	for i, l := range ix.Apt {
		f := strings.Fields(stripAptOptions(l))
		if len(f) < 4 || f[0] != "deb" {
			return cronium.Invalid(fmt.Sprintf("%s.apt[%d]", field, i), l, `is not a sources.list line: give "deb URL SUITE COMPONENT...", like "deb http://deb.debian.org/debian bookworm main"`)
		}
		if _, err := indexHost(f[1]); err != nil {
			return cronium.Invalid(fmt.Sprintf("%s.apt[%d]", field, i), l, err.Error())
		}
	}
	for _, k := range []struct{ name, u string }{{"python", ix.Python}, {"node", ix.Node}} {
		if k.u == "" {
			continue
		}
		if _, err := indexHost(k.u); err != nil {
			return cronium.Invalid(field+"."+k.name, k.u, err.Error())
		}
	}
	return nil
}

func indexHost(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" {
		return "", errors.New("is not an http(s) URL, like https://registry.npmjs.org/")
	}
	if u.Port() != "" && u.Port() != "80" && u.Port() != "443" {
		return "", errors.New("uses a port other than 80 or 443, which the builder's network does not reach")
	}
	if _, err := cronium.NormalizeDomainPattern(u.Hostname()); err != nil {
		return "", fmt.Errorf("names a host the builder's network cannot reach (%v): builds reach public indexes only", err)
	}
	return u.Hostname(), nil
}

// stripAptOptions drops a sources.list line's [options] ("deb [signed-by=...] URL ...").
func stripAptOptions(l string) string {
	if i := strings.Index(l, "["); i >= 0 {
		if j := strings.Index(l[i:], "]"); j >= 0 {
			return l[:i] + l[i+j+1:]
		}
	}
	return l
}

// hostAptSources turns this host's apt sources (deb822 or one-line) into sources.list lines.
func hostAptSources() []string {
	var out []string
	if b, err := os.ReadFile("/etc/apt/sources.list.d/debian.sources"); err == nil {
		for _, stanza := range strings.Split(string(b), "\n\n") {
			kv := map[string]string{}
			for _, line := range strings.Split(stanza, "\n") {
				if k, v, ok := strings.Cut(line, ":"); ok && !strings.HasPrefix(line, "#") {
					kv[strings.TrimSpace(k)] = strings.TrimSpace(v)
				}
			}
			if !strings.Contains(kv["Types"], "deb") || kv["URIs"] == "" {
				continue
			}
			for _, u := range strings.Fields(kv["URIs"]) {
				for _, s := range strings.Fields(kv["Suites"]) {
					out = append(out, "deb "+u+" "+s+" "+kv["Components"])
				}
			}
		}
	}
	if b, err := os.ReadFile("/etc/apt/sources.list"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(strings.TrimSpace(line), "deb ") {
				out = append(out, strings.Join(strings.Fields(stripAptOptions(line)), " "))
			}
		}
	}
	return out
}

func (b *Builder) namespace() string {
	if b.Namespace == "" {
		return "cronium/pkgs-"
	}
	return b.Namespace
}

// Key is the hash of (base, declared packages, indexes) that finds a build
// again. base names the exact runtime image, ref@id: after `cronium images
// update` moves the ref, the same packages make another key.
func (b *Builder) Key(base string, p cronium.Packages) string {
	ix := b.Indexes.Defaults()
	h := sha256.New()
	fmt.Fprintf(h, "v%s\n%s\n%s\n", buildVersion, base, b.namespace())
	h.Write(buildScript)
	j, _ := json.Marshal(p)
	h.Write(j)
	if len(p.Apt) > 0 {
		fmt.Fprintf(h, "%q", ix.Apt)
	}
	if len(p.Python) > 0 {
		fmt.Fprintf(h, "%q", ix.Python)
	}
	if len(p.Node) > 0 {
		fmt.Fprintf(h, "%q", ix.Node)
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// Find returns the lock of an image already built for (base, p), if any,
// on the image base names now.
func (b *Builder) Find(ctx context.Context, base string, p cronium.Packages) (cronium.PackageLock, bool, error) {
	id, err := b.baseID(ctx, base)
	if err != nil {
		return cronium.PackageLock{}, false, err
	}
	return b.find(ctx, base+"@"+id, p)
}

// baseID returns the ID of the image base names now.
func (b *Builder) baseID(ctx context.Context, base string) (string, error) {
	id, err := b.Engine.ImageID(ctx, base)
	if err != nil {
		return "", fmt.Errorf("the runtime image %s (build it with `cronium images build`): %w", base, err)
	}
	return id, nil
}

func (b *Builder) find(ctx context.Context, exact string, p cronium.Packages) (cronium.PackageLock, bool, error) {
	imgs, err := b.Engine.FindImages(ctx, LabelKey, b.Key(exact, p))
	if err != nil {
		return cronium.PackageLock{}, false, err
	}
	for _, im := range imgs {
		var lock cronium.PackageLock
		// An image whose tag moved to a newer build of the same set is not it.
		if json.Unmarshal([]byte(im.Labels[LabelLock]), &lock) == nil && lock.Image != "" && lock.Image == im.Ref {
			return lock, true, nil
		}
	}
	return cronium.PackageLock{}, false, nil
}

// Ensure returns the lock of the image for (base, p), building it first if
// there is none. Build output streams to progress. built says whether it
// built. A failed build returns an error naming the packages and quoting
// the indexer, and leaves no image behind.
func (b *Builder) Ensure(ctx context.Context, lang cronium.Language, base string, p cronium.Packages, progress io.Writer) (lock cronium.PackageLock, built bool, err error) {
	if progress == nil {
		progress = io.Discard
	}
	if err := p.Normalize("packages", lang); err != nil {
		return lock, false, err
	}
	// The build uses the image base names now, by ID, from start to end:
	// an update that moves base meanwhile changes nothing here.
	id, err := b.baseID(ctx, base)
	if err != nil {
		return lock, false, err
	}
	defer b.hold(id)()
	exact := base + "@" + id
	if lock, ok, err := b.find(ctx, exact, p); err != nil || ok {
		return lock, false, err
	}
	if err := ctx.Err(); err != nil {
		return lock, false, err
	}
	key := b.Key(exact, p)
	// One build per key at a time; the others wait (or give up with their
	// request) and find its image. At most MaxBuilds builds run on the node.
	b.mu.Lock()
	if b.building == nil {
		b.building = map[string]chan struct{}{}
		b.slots = make(chan struct{}, max(b.MaxBuilds, 1))
	}
	m := b.building[key]
	if m == nil {
		m = make(chan struct{}, 1)
		b.building[key] = m
	}
	slots := b.slots
	b.mu.Unlock()
	select {
	case m <- struct{}{}:
	default:
		fmt.Fprintln(progress, "waiting for the same package set, which is being built for another apply")
		select {
		case m <- struct{}{}:
		case <-ctx.Done():
			return lock, false, ctx.Err()
		}
	}
	defer func() { <-m }()
	if lock, ok, err := b.find(ctx, exact, p); err != nil || ok {
		return lock, false, err
	}
	select {
	case slots <- struct{}{}:
	default:
		fmt.Fprintf(progress, "waiting for a build slot (%d package builds run at a time on this node)\n", cap(slots))
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return lock, false, ctx.Err()
		}
	}
	defer func() { <-slots }()
	lock, err = b.build(ctx, lang, base, id, key, p, progress)
	return lock, err == nil, err
}

// basePackages returns the dpkg database of the runtime image id (see images/recipes/hook.sh).
func (b *Builder) basePackages(ctx context.Context, id string) ([]byte, error) {
	b.mu.Lock()
	got, ok := b.bases[id]
	b.mu.Unlock()
	if ok {
		return got, nil
	}
	raw, err := b.Engine.ReadImageFile(ctx, id, "/usr/share/cronium/dpkg-status", 8<<20)
	if err != nil {
		return nil, fmt.Errorf("the runtime image's package database (rebuild it with `cronium images build`): %w", err)
	}
	b.mu.Lock()
	if b.bases == nil {
		b.bases = map[string][]byte{}
	}
	b.bases[id] = raw
	b.mu.Unlock()
	return raw, nil
}

func (b *Builder) limits() cronium.Limits {
	l := b.Limits
	if l.Memory == 0 {
		l.Memory = 2 << 30
	}
	if l.TmpSize == 0 {
		l.TmpSize = 1536 << 20
	}
	if l.CPUs == 0 {
		l.CPUs = 2
	}
	if l.Pids == 0 {
		l.Pids = 512
	}
	if l.Timeout == 0 {
		l.Timeout = 10 * time.Minute
	}
	if l.Output == 0 {
		l.Output = 10 << 20
	}
	return l
}

func (b *Builder) build(ctx context.Context, lang cronium.Language, base, baseID, key string, p cronium.Packages, progress io.Writer) (cronium.PackageLock, error) {
	ix := b.Indexes.Defaults()
	if err := ix.Validate("images.indexes"); err != nil {
		return cronium.PackageLock{}, err
	}
	env := map[string]string{}
	files := map[string][]byte{}
	ca, err := ix.extraCAs()
	if err != nil {
		return cronium.PackageLock{}, err
	}
	if len(ca) > 100<<10 {
		return cronium.PackageLock{}, cronium.Invalid("images.indexes.ca_file", ix.CAFile, "is larger than 100Ki: give only the extra authorities")
	}
	if ca != "" {
		env["CR_CA"] = ca
	}
	var hosts []string
	if len(p.Apt) > 0 {
		if len(ix.Apt) == 0 {
			return cronium.PackageLock{}, cronium.Invalid("images.indexes.apt", "", "is empty and this host has no apt sources: configure a Debian mirror")
		}
		bp, err := b.basePackages(ctx, baseID)
		if err != nil {
			return cronium.PackageLock{}, err
		}
		env["CR_APT"] = strings.Join(p.Apt, " ")
		var lines []string
		for _, l := range ix.Apt {
			lines = append(lines, strings.Join(strings.Fields(stripAptOptions(l)), " "))
		}
		env["CR_APT_SOURCES"] = strings.Join(lines, "\n")
		files["base-dpkg-status"] = bp
		for _, l := range lines {
			h, _ := indexHost(strings.Fields(l)[1])
			hosts = append(hosts, h)
		}
	}
	if len(p.Python) > 0 && strings.Contains(ix.Python, "://pypi.org/") {
		hosts = append(hosts, "files.pythonhosted.org") // where PyPI keeps the wheels
	}
	hosts = append(hosts, ix.ExtraHosts...)
	if len(p.Python) > 0 {
		env["CR_PYTHON"] = strings.Join(p.Python, "\n")
		h, _ := indexHost(ix.Python)
		hosts = append(hosts, h)
		env["CR_PIP_URL"] = ix.Python
		env["CR_PIP_INDEX"] = "--index-url " + ix.Python
		if strings.HasPrefix(ix.Python, "http://") {
			env["CR_PIP_INDEX"] += " --trusted-host " + h
		}
	}
	if len(p.Node) > 0 {
		env["CR_NODE"] = strings.Join(p.Node, "\n")
		env["CR_NPM_REGISTRY"] = ix.Node
		h, _ := indexHost(ix.Node)
		hosts = append(hosts, h)
	}
	sort.Strings(hosts)

	begin := time.Now()
	fmt.Fprintf(progress, "building packages on %s in a sandbox that reaches only %s\n", base, strings.Join(uniq(hosts), ", "))
	layer, err := os.CreateTemp("", "cronium-layer-*.tar")
	if err != nil {
		return cronium.PackageLock{}, err
	}
	defer os.Remove(layer.Name())
	defer layer.Close()

	lw := &lineWriter{progress: progress}
	res, err := b.Engine.Run(ctx, cronium.Spec{
		ID:          "pkgbuild-" + key + "-" + fmt.Sprint(time.Now().UnixNano()),
		Language:    cronium.Bash,
		Image:       b.BuilderImage,
		Script:      buildScript,
		Env:         env,
		Files:       files,
		Limits:      b.limits(),
		Network:     cronium.NetworkPolicy{Mode: cronium.NetworkEgress, AllowDomains: uniq(hosts)},
		DataMode:    "stdio",
		Output:      func(c cronium.OutputChunk) { lw.Write(c.Data) },
		CollectPath: "/out",
		Collect:     func(r io.Reader) error { return sanitize(r, layer) },
	})
	lw.flush()
	if err != nil {
		return cronium.PackageLock{}, fmt.Errorf("package build: %w", err)
	}
	if res.Outcome != cronium.Succeeded || !lw.done {
		return cronium.PackageLock{}, buildError(p, lw, res)
	}
	lock := cronium.PackageLock{Base: base, BaseID: baseID, Key: key, BuiltAt: time.Now().UTC().Truncate(time.Second)}
	for _, l := range lw.locks {
		kind, v, _ := strings.Cut(l, " ")
		switch kind {
		case "apt":
			lock.Apt = append(lock.Apt, v)
		case "python":
			lock.Python = append(lock.Python, v)
		case "node":
			lock.Node = append(lock.Node, v)
		}
	}
	sort.Strings(lock.Apt)
	sort.Strings(lock.Python)
	sort.Strings(lock.Node)
	h := sha256.New()
	// The key is in the tag too: another declaration that resolves to the
	// same versions (later, from changed indexes) never moves this tag.
	fmt.Fprintf(h, "%s@%s\n%s\n%q\n%q\n%q\n", base, baseID, key, lock.Apt, lock.Python, lock.Node)
	lock.Image = b.namespace() + string(lang) + ":" + hex.EncodeToString(h.Sum(nil))[:12]
	lj, _ := json.Marshal(lock)
	changes := []string{
		"LABEL " + LabelKey + "=" + key,
		"LABEL " + LabelBase + "=" + base,
		"LABEL " + LabelLock + "=" + strconvQuote(string(lj)),
	}
	if _, err := layer.Seek(0, io.SeekStart); err != nil {
		return cronium.PackageLock{}, err
	}
	fmt.Fprintf(progress, "committing the layer as %s\n", lock.Image)
	if err := b.Engine.CommitLayer(ctx, baseID, layer, lock.Image, changes); err != nil {
		return cronium.PackageLock{}, err
	}
	fmt.Fprintf(progress, "built %s in %s: %d apt, %d python, %d node packages\n", lock.Image, time.Since(begin).Round(100*time.Millisecond), len(lock.Apt), len(lock.Python), len(lock.Node))
	return lock, nil
}

func strconvQuote(s string) string { b, _ := json.Marshal(s); return string(b) }

func uniq(s []string) []string {
	var out []string
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}

// BuildError is a failed package build: which kind of packages failed, and
// what the indexer or installer said.
type BuildError struct {
	// Field is packages.apt, packages.python or packages.node.
	Field string
	// Packages are the declared packages the messages name (all of the kind if none is named).
	Packages []string
	// Messages are the indexer's or installer's error lines.
	Messages []string
}

func (e *BuildError) Error() string {
	return fmt.Sprintf("%s: %s could not be installed: %s", e.Field, strings.Join(e.Packages, ", "), strings.Join(e.Messages, "; "))
}

func (e *BuildError) Unwrap() error { return cronium.ErrInvalid }

func buildError(p cronium.Packages, lw *lineWriter, res cronium.Result) error {
	kind := lw.failed
	if kind == "" {
		why := res.Error
		if why == "" {
			why = fmt.Sprintf("outcome %s, exit code %d", res.Outcome, res.ExitCode)
		}
		return fmt.Errorf("package build failed (%s): %s", why, strings.Join(lw.tail(8), "; "))
	}
	declared := map[string][]string{"apt": p.Apt, "python": p.Python, "node": p.Node}[kind]
	var msgs, warnings []string
	for _, l := range lw.lines {
		switch t := strings.TrimSpace(l); {
		case isErrorLine(t):
			msgs = append(msgs, t)
		case strings.HasPrefix(t, "WARNING: ") && (strings.Contains(t, "Retrying") || strings.Contains(t, "Could not fetch")) && len(warnings) == 0:
			warnings = append(warnings, t) // an index that is down or refuses: the first says why
		}
	}
	msgs = append(msgs, warnings...)
	if len(msgs) == 0 {
		msgs = lw.tail(5)
	}
	if len(msgs) > 6 {
		msgs = msgs[:6]
	}
	var named []string
	all := strings.ToLower(strings.Join(msgs, "\n"))
	for _, d := range declared {
		name := strings.ToLower(pkgName(kind, d))
		if strings.Contains(all, name) {
			named = append(named, d)
		}
	}
	if len(named) == 0 {
		named = declared
	}
	return &BuildError{Field: "packages." + kind, Packages: named, Messages: msgs}
}

func isErrorLine(l string) bool {
	for _, p := range []string{"E: ", "W: Failed to fetch", "ERROR: ", "npm ERR! ", "npm error ", "error: "} {
		if strings.HasPrefix(strings.TrimSpace(l), p) {
			return true
		}
	}
	return false
}

// pkgName is the bare name of a declared package.
func pkgName(kind, s string) string {
	switch kind {
	case "apt":
		n, _, _ := strings.Cut(s, "=")
		return n
	case "node":
		if at := strings.LastIndex(s, "@"); at > 0 {
			return s[:at]
		}
		return s
	}
	i := strings.IndexAny(s, "[=!<>~ ,")
	if i < 0 {
		return s
	}
	return s[:i]
}

// lineWriter splits the build's output into lines: progress for the user,
// markers for the builder.
type lineWriter struct {
	progress io.Writer
	buf      []byte
	lines    []string
	locks    []string
	failed   string
	done     bool
}

func (w *lineWriter) Write(p []byte) {
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			return
		}
		w.line(string(w.buf[:i]))
		w.buf = w.buf[i+1:]
	}
}

func (w *lineWriter) flush() {
	if len(w.buf) > 0 {
		w.line(string(w.buf))
		w.buf = nil
	}
}

func (w *lineWriter) line(l string) {
	switch {
	case strings.HasPrefix(l, "::cronium-lock::"):
		w.locks = append(w.locks, strings.TrimPrefix(l, "::cronium-lock::"))
		return
	case strings.HasPrefix(l, "::cronium-fail::"):
		w.failed = strings.TrimSpace(strings.TrimPrefix(l, "::cronium-fail::"))
		return
	case strings.HasPrefix(l, "::cronium-done::"):
		w.done = true
		return
	}
	if len(w.lines) < 5000 {
		w.lines = append(w.lines, l)
	}
	fmt.Fprintf(w.progress, "  %s\n", l)
}

func (w *lineWriter) tail(n int) []string {
	if len(w.lines) <= n {
		return w.lines
	}
	return w.lines[len(w.lines)-n:]
}

// Layer limits: what one build may add to an image.
const (
	maxLayerBytes = 2 << 30
	maxLayerFiles = 200_000
)

// mergedUsr moves /bin, /sbin, /lib* paths under /usr: in the runtime
// images (Debian bookworm) those are symlinks into /usr, and a layer must
// not replace them with directories.
func mergedUsr(p string) string {
	for _, d := range []string{"bin", "sbin", "lib", "lib32", "lib64", "libx32"} {
		if p == d || strings.HasPrefix(p, d+"/") {
			return "usr/" + p
		}
	}
	return p
}

// droppedRoots are caches and run-time state packages ship: left out of a layer.
var droppedRoots = []string{"var/cache", "var/log", "var/spool", "var/tmp", "run", "srv", "tmp", "var/run", "var/mail", "home", "root"}

func dropped(p string) bool {
	for _, d := range droppedRoots {
		if p == d || strings.HasPrefix(p, d+"/") {
			return true
		}
	}
	return p == "var"
}

// systemDirs are folders of the runtime images a layer may add to but
// never replace with a link.
var systemDirs = map[string]bool{"usr": true, "etc": true, "opt": true, "var": true, "var/lib": true, "usr/bin": true, "usr/sbin": true,
	"usr/lib": true, "usr/lib64": true, "usr/lib32": true, "usr/libx32": true, "usr/share": true, "usr/local": true, "usr/local/bin": true,
	"usr/local/lib": true, "usr/lib/x86_64-linux-gnu": true, "usr/share/nodejs": true, "usr/local/lib/python3.11": true,
	"usr/local/lib/python3.11/dist-packages": true, "usr/lib/python3": true, "usr/lib/python3/dist-packages": true}

// allowedRoots are where a layer may put files.
var allowedRoots = []string{"usr/", "etc/", "opt/", "var/lib/"}

// sanitize copies the build's tar (entries under "out/") to w as a layer
// rooted at /: regular files, directories, symlinks and hard links only,
// under allowedRoots, owned by root, without setuid, setgid or sticky
// bits, and without world-writable modes.
func sanitize(r io.Reader, w io.Writer) error {
	tr := tar.NewReader(r)
	tw := tar.NewWriter(w)
	var total int64
	n := 0
	links := map[string]bool{} // the layer's symbolic links: nothing may be written through one
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("read the build's files: %w", err)
		}
		name := path.Clean(strings.TrimPrefix(h.Name, "./"))
		rest, ok := strings.CutPrefix(name, "out/")
		if !ok {
			continue // the out directory itself
		}
		rest = mergedUsr(rest)
		if dropped(rest) {
			continue
		}
		if strings.HasPrefix(rest, "../") || rest == ".." || path.IsAbs(rest) {
			return fmt.Errorf("the build made a path outside its output: %q", h.Name)
		}
		allowed := false
		for _, root := range allowedRoots {
			if strings.HasPrefix(rest+"/", root) || strings.HasPrefix(root, rest+"/") {
				allowed = true
			}
		}
		if !allowed {
			return fmt.Errorf("the build put %q outside the allowed directories (%s)", "/"+rest, strings.Join(allowedRoots, ", "))
		}
		for dir := path.Dir(rest); dir != "."; dir = path.Dir(dir) {
			if links[dir] {
				return fmt.Errorf("the build put %q below a symbolic link of its own (%q)", "/"+rest, "/"+dir)
			}
		}
		if h.Typeflag == tar.TypeSymlink {
			if systemDirs[rest] {
				return fmt.Errorf("the build made the system folder %q a symbolic link", "/"+rest)
			}
			links[rest] = true
		}
		if n++; n > maxLayerFiles {
			return fmt.Errorf("the build made more than %d files", maxLayerFiles)
		}
		out := &tar.Header{Name: rest, Mode: h.Mode &^ 0o7002, ModTime: h.ModTime, Uid: 0, Gid: 0, Format: tar.FormatPAX}
		switch h.Typeflag {
		case tar.TypeDir:
			out.Typeflag, out.Name = tar.TypeDir, rest+"/"
		case tar.TypeReg:
			out.Typeflag, out.Size = tar.TypeReg, h.Size
			if total += h.Size; total > maxLayerBytes {
				return fmt.Errorf("the build's files are larger than %d MiB", maxLayerBytes>>20)
			}
		case tar.TypeSymlink:
			out.Typeflag, out.Linkname = tar.TypeSymlink, h.Linkname
		case tar.TypeLink:
			target, ok := strings.CutPrefix(path.Clean(h.Linkname), "out/")
			if !ok {
				return fmt.Errorf("the build made a hard link %q to %q outside its output", h.Name, h.Linkname)
			}
			target = mergedUsr(target)
			ok = false
			for _, root := range allowedRoots {
				ok = ok || strings.HasPrefix(target+"/", root)
			}
			if !ok || dropped(target) {
				return fmt.Errorf("the build made a hard link %q to %q outside the allowed directories", h.Name, h.Linkname)
			}
			out.Typeflag, out.Linkname = tar.TypeLink, target
		default:
			return fmt.Errorf("the build made %q, which is not a file, directory or link (type %c)", h.Name, h.Typeflag)
		}
		if err := tw.WriteHeader(out); err != nil {
			return err
		}
		if out.Typeflag == tar.TypeReg {
			if _, err := io.CopyN(tw, tr, h.Size); err != nil {
				return fmt.Errorf("read the build's files: %w", err)
			}
		}
	}
	return tw.Close()
}

// List returns the layered images the engine holds, with their locks.
func (b *Builder) List(ctx context.Context) ([]cronium.LayeredImage, error) {
	imgs, err := b.Engine.FindImages(ctx, LabelKey, "")
	if errors.Is(err, cronium.ErrUnsupported) {
		return nil, nil // an engine without image builds holds no layers
	}
	if err != nil {
		return nil, err
	}
	var out []cronium.LayeredImage
	bases := map[string]int64{}
	for _, im := range imgs {
		var lock cronium.PackageLock
		if json.Unmarshal([]byte(im.Labels[LabelLock]), &lock) != nil || lock.Image == "" || lock.Image != im.Ref || !strings.HasPrefix(lock.Image, b.namespace()) {
			continue
		}
		// The layer's own size: the base is shared.
		bs, ok := bases[lock.Base]
		if !ok {
			bs, _ = b.Engine.ImageSize(ctx, lock.Base)
			bases[lock.Base] = bs
		}
		out = append(out, cronium.LayeredImage{Lock: lock, Size: max(im.Size-bs, 0), Created: im.Created})
	}
	return out, nil
}

// Pruner removes package layers nothing has used for a while, within a
// disk budget. Its memory of when each layer was last in use starts when it
// does: after a restart nothing is removed for UnusedFor.
type Pruner struct {
	Builder *Builder
	// Remove removes an image; the engine refuses while a container uses it.
	Remove func(ctx context.Context, ref string) error
	// UnusedFor is how long a layer no event uses is kept. Default 7 days.
	UnusedFor time.Duration
	// Budget bounds the layers' total size: past it, layers no event uses
	// go first, oldest use first, whatever UnusedFor says. 0: no budget.
	Budget int64

	mu       sync.Mutex
	lastUsed map[string]time.Time
}

// Prune removes what should go, given the images in use now (events'
// locks), and returns the removed references.
func (p *Pruner) Prune(ctx context.Context, inUse map[string]bool, now time.Time) ([]string, error) {
	unused := p.UnusedFor
	if unused == 0 {
		unused = 7 * 24 * time.Hour
	}
	layers, err := p.Builder.List(ctx)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.lastUsed == nil {
		p.lastUsed = map[string]time.Time{}
	}
	var total int64
	var candidates []cronium.LayeredImage
	for _, l := range layers {
		total += l.Size
		ref := l.Lock.Image
		if _, seen := p.lastUsed[ref]; !seen || inUse[ref] {
			p.lastUsed[ref] = now
		}
		if !inUse[ref] {
			candidates = append(candidates, l)
		}
	}
	sort.Slice(candidates, func(i, j int) bool {
		return p.lastUsed[candidates[i].Lock.Image].Before(p.lastUsed[candidates[j].Lock.Image])
	})
	var removed []string
	for _, l := range candidates {
		ref := l.Lock.Image
		overBudget := p.Budget > 0 && total > p.Budget
		if now.Sub(p.lastUsed[ref]) < unused && !overBudget {
			continue
		}
		if err := p.Remove(ctx, ref); err != nil {
			continue // a container still uses it: next time
		}
		total -= l.Size
		delete(p.lastUsed, ref)
		removed = append(removed, ref)
	}
	return removed, nil
}
