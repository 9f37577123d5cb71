package registry

import (
	"fmt"
	"regexp"
	"strings"
)

// Ref is a parsed image reference that names its registry explicitly,
// e.g. registry.example/team/tool:1.2 or 127.0.0.1:5000/team/tool@sha256:...
type Ref struct {
	// Registry is the registry host, with its port if any: "registry.example",
	// "127.0.0.1:5000", "[::1]:5000". Docker Hub is always "docker.io".
	Registry string
	// Repository is the repository path inside the registry: "team/tool".
	Repository string
	// Tag is the tag, or "" when the reference only has a digest.
	Tag string
	// Digest is "sha256:<64 hex>", or "" when the reference only has a tag.
	Digest string
}

// String returns the canonical form registry/repo:tag, registry/repo@digest
// or registry/repo:tag@digest.
func (r Ref) String() string {
	s := r.Name()
	if r.Tag != "" {
		s += ":" + r.Tag
	}
	if r.Digest != "" {
		s += "@" + r.Digest
	}
	return s
}

// Name returns registry/repo, without tag or digest.
func (r Ref) Name() string { return r.Registry + "/" + r.Repository }

// docker.io is special: its API lives elsewhere, cosign names it
// index.docker.io, and one-component repositories live under library/.
const (
	dockerHub        = "docker.io"
	dockerHubAPI     = "registry-1.docker.io"
	dockerHubCosign  = "index.docker.io"
	maxNameLength    = 255
	exampleReference = "registry.example/team/tool:1.2"
)

var (
	hostComponent = `(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])`
	hostRE        = regexp.MustCompile(`^(?:` + hostComponent + `(?:\.` + hostComponent + `)*|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?$`)
	pathRE        = regexp.MustCompile(`^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$`)
	tagRE         = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)
	digestRE      = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)
)

// ParseRef parses an image reference of the form
// registry/repo[:tag][@sha256:digest]. The registry host is required: the
// first path component must contain a '.' or a ':' or be "localhost". A
// reference with neither tag nor digest gets tag "latest". Errors say what
// is wrong and how to fix it; they do not name the field, so callers can
// prefix it.
func ParseRef(s string) (Ref, error) {
	if s == "" {
		return Ref{}, fmt.Errorf("image reference is empty: name an image such as %s", exampleReference)
	}
	if strings.ContainsAny(s, " \t\r\n") {
		return Ref{}, fmt.Errorf("image reference %q contains white space: remove it", s)
	}
	var r Ref
	name := s
	if at := strings.IndexByte(s, '@'); at >= 0 {
		name, r.Digest = s[:at], s[at+1:]
		if err := checkDigest(r.Digest); err != nil {
			return Ref{}, fmt.Errorf("image reference %q: %w", s, err)
		}
	}
	slash := strings.IndexByte(name, '/')
	if base, _, _ := strings.Cut(name, ":"); slash < 0 && looksLikeHost(base) {
		return Ref{}, fmt.Errorf("image reference %q names no repository: write registry/repository, e.g. %s/team/tool:1.2", s, name)
	}
	if slash < 0 || !looksLikeHost(name[:slash]) {
		return Ref{}, fmt.Errorf("image reference %q does not name a registry: write the registry host first, e.g. registry.example/%s",
			s, strings.TrimPrefix(s, "/"))
	}
	r.Registry = name[:slash]
	rest := name[slash+1:]
	if i := strings.LastIndexByte(rest, ':'); i >= 0 {
		rest, r.Tag = rest[:i], rest[i+1:]
		if err := checkTag(r.Tag); err != nil {
			return Ref{}, fmt.Errorf("image reference %q: %w", s, err)
		}
	}
	r.Repository = rest
	if err := checkName(r.Registry, r.Repository); err != nil {
		return Ref{}, fmt.Errorf("image reference %q: %w", s, err)
	}
	if r.Tag == "" && r.Digest == "" {
		r.Tag = "latest"
	}
	if r.Registry == "index.docker.io" || r.Registry == dockerHubAPI {
		r.Registry = dockerHub
	}
	if r.Registry == dockerHub && !strings.Contains(r.Repository, "/") {
		r.Repository = "library/" + r.Repository
	}
	return r, nil
}

// looksLikeHost reports whether the first path component of a reference is
// a registry host rather than the first part of a repository path.
func looksLikeHost(s string) bool {
	return strings.ContainsAny(s, ".:") || s == "localhost"
}

func checkDigest(d string) error {
	if !digestRE.MatchString(d) {
		return fmt.Errorf("digest %q is not valid: write sha256: followed by 64 lowercase hex digits", d)
	}
	return nil
}

func checkTag(t string) error {
	if !tagRE.MatchString(t) {
		return fmt.Errorf("tag %q is not valid: use 1 to 128 letters, digits, '_', '.' or '-', not starting with '.' or '-'", t)
	}
	return nil
}

// checkName validates a registry host and a repository path.
func checkName(registry, repository string) error {
	if !hostRE.MatchString(registry) {
		return fmt.Errorf("registry host %q is not valid: write a host name or IP address, optionally with :port", registry)
	}
	if repository == "" {
		return fmt.Errorf("no repository follows the registry host %q: write e.g. %s/team/tool", registry, registry)
	}
	for _, c := range strings.Split(repository, "/") {
		switch {
		case c == "":
			return fmt.Errorf("repository %q has an empty path component: remove the extra '/'", repository)
		case strings.ToLower(c) != c:
			return fmt.Errorf("repository %q is not valid: repository names must be lowercase", repository)
		case !pathRE.MatchString(c):
			return fmt.Errorf("repository %q is not valid: each path component must be lowercase letters and digits, separated by '.', '_', '__' or '-'", repository)
		}
	}
	if n := len(registry) + 1 + len(repository); n > maxNameLength {
		return fmt.Errorf("name %s/%s is %d characters long: the limit is %d", registry, repository, n, maxNameLength)
	}
	return nil
}

// check validates a Ref built by hand; needDigest requires a digest.
func (r Ref) check(needDigest bool) error {
	if err := checkName(r.Registry, r.Repository); err != nil {
		return fmt.Errorf("image reference %q: %w", r.String(), err)
	}
	if r.Tag != "" {
		if err := checkTag(r.Tag); err != nil {
			return fmt.Errorf("image reference %q: %w", r.String(), err)
		}
	}
	if r.Digest != "" {
		if err := checkDigest(r.Digest); err != nil {
			return fmt.Errorf("image reference %q: %w", r.String(), err)
		}
	} else if needDigest {
		return fmt.Errorf("image reference %q has no digest: resolve it to registry/repo@sha256:... first", r.String())
	}
	if r.Tag == "" && r.Digest == "" {
		return fmt.Errorf("image reference %q has neither tag nor digest", r.String())
	}
	return nil
}

// apiHost is the host that serves the registry's HTTP API.
func apiHost(registry string) string {
	if registry == dockerHub {
		return dockerHubAPI
	}
	return registry
}

// cosignIdentity is the docker-reference cosign writes for r: the
// repository's full name, with Docker Hub spelled index.docker.io as
// go-containerregistry does.
func cosignIdentity(r Ref) string {
	if r.Registry == dockerHub {
		return dockerHubCosign + "/" + r.Repository
	}
	return r.Name()
}

// sameRepository reports whether a payload's docker-reference names r's
// repository. A trailing :tag or @digest is tolerated (older cosign
// versions wrote the reference as given on the command line).
func sameRepository(dockerReference string, r Ref) bool {
	name := dockerReference
	if i := strings.IndexByte(name, '@'); i >= 0 {
		name = name[:i]
	}
	if i := strings.LastIndexByte(name, ':'); i > strings.LastIndexByte(name, '/') {
		name = name[:i]
	}
	if name == r.Name() {
		return true
	}
	if r.Registry == dockerHub {
		return name == dockerHubCosign+"/"+r.Repository
	}
	return false
}
