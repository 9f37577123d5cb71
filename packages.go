package cronium

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"
)

// Packages are an event's declared dependencies, built into a layer on top
// of the runtime image (see package packages).
type Packages struct {
	// Apt are Debian packages ("postgresql-client", "jq=1.6-2.1"), for every language.
	Apt []string `json:"apt,omitempty"`
	// Python are pip requirements ("requests==2.*", "pyyaml>=6,<7"); python events only.
	Python []string `json:"python,omitempty"`
	// Node are npm packages ("axios@1", "@scope/pkg@^2.1.0"); node events only.
	Node []string `json:"node,omitempty"`
}

// MaxPackages bounds each list of declared packages.
const MaxPackages = 50

var (
	aptName    = regexp.MustCompile(`^[a-z0-9][a-z0-9+.-]+$`)
	aptVersion = regexp.MustCompile(`^[0-9][A-Za-z0-9.+~:-]*$`)
	pyName     = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$`)
	pyExtras   = regexp.MustCompile(`^\[\s*[A-Za-z0-9][A-Za-z0-9._-]*(\s*,\s*[A-Za-z0-9][A-Za-z0-9._-]*)*\s*\]`)
	pySpec     = regexp.MustCompile(`^(===|==|!=|~=|<=|>=|<|>)\s*[A-Za-z0-9][A-Za-z0-9.*+!_-]*$`)
	npmName    = regexp.MustCompile(`^(@[a-z0-9][a-z0-9._~-]*/)?[a-z0-9][a-z0-9._~-]*$`)
	npmRange   = regexp.MustCompile(`^[0-9A-Za-z.*^~<>=| +-]+$`)
)

// Empty reports whether no package is declared.
func (p Packages) Empty() bool { return len(p.Apt)+len(p.Python)+len(p.Node) == 0 }

// Normalize checks every entry and sorts and deduplicates each list. Errors
// name the field (field.apt[2]) and the entry.
func (p *Packages) Normalize(field string, lang Language) error {
	check := func(kind string, list []string, ok func(string) string) ([]string, error) {
		if len(list) > MaxPackages {
			return nil, Invalid(field+"."+kind, fmt.Sprint(len(list)), fmt.Sprintf("lists too many packages: at most %d", MaxPackages))
		}
		seen := map[string]bool{}
		var out []string
		for i, s := range list {
			s = strings.TrimSpace(s)
			if why := ok(s); why != "" {
				return nil, Invalid(fmt.Sprintf("%s.%s[%d]", field, kind, i), s, why)
			}
			if !seen[s] {
				seen[s] = true
				out = append(out, s)
			}
		}
		sort.Strings(out)
		return out, nil
	}
	var err error
	if p.Apt, err = check("apt", p.Apt, aptWhy); err != nil {
		return err
	}
	if p.Python, err = check("python", p.Python, pyWhy); err != nil {
		return err
	}
	if p.Node, err = check("node", p.Node, npmWhy); err != nil {
		return err
	}
	if len(p.Python) > 0 && lang != Python {
		return Invalid(field+".python", strings.Join(p.Python, ","), "needs a python event (this one is "+string(lang)+"): use packages.apt for tools")
	}
	if len(p.Node) > 0 && lang != Node {
		return Invalid(field+".node", strings.Join(p.Node, ","), "needs a node event (this one is "+string(lang)+"): use packages.apt for tools")
	}
	return nil
}

func aptWhy(s string) string {
	if len(s) > 200 {
		return "is too long: at most 200 characters"
	}
	name, version, pinned := strings.Cut(s, "=")
	if strings.HasSuffix(name, "-") {
		return "ends with '-', which apt reads as \"remove\": give the package's name"
	}
	if !aptName.MatchString(name) {
		return "is not a Debian package name: lowercase letters, digits, '+', '-' and '.', like postgresql-client"
	}
	if pinned && !aptVersion.MatchString(version) {
		return "has a version that does not parse: give name=version, like jq=1.6-2.1"
	}
	return ""
}

func pyWhy(s string) string {
	const want = `: give a name with optional version specifiers, like requests==2.* or pyyaml>=6,<7`
	if len(s) > 200 {
		return "is too long: at most 200 characters"
	}
	if strings.ContainsAny(s, "@;") || strings.HasPrefix(s, "-") || strings.Contains(s, "://") {
		return "is not a plain requirement (no URLs, options, paths or markers)" + want
	}
	i := 0
	for i < len(s) && (s[i] == '.' || s[i] == '_' || s[i] == '-' || s[i] >= '0' && s[i] <= '9' || s[i] >= 'a' && s[i] <= 'z' || s[i] >= 'A' && s[i] <= 'Z') {
		i++
	}
	name, rest := s[:i], strings.TrimSpace(s[i:])
	if !pyName.MatchString(name) {
		return "is not a Python package name" + want
	}
	if m := pyExtras.FindString(rest); m != "" {
		rest = strings.TrimSpace(rest[len(m):])
	}
	if rest == "" {
		return ""
	}
	for _, c := range strings.Split(rest, ",") {
		if !pySpec.MatchString(strings.TrimSpace(c)) {
			return fmt.Sprintf("has a version specifier %q that does not parse", strings.TrimSpace(c)) + want
		}
	}
	return ""
}

func npmWhy(s string) string {
	const want = `: give name@range, like axios@1 or @scope/pkg@^2.1.0`
	if len(s) > 300 {
		return "is too long: at most 300 characters"
	}
	if strings.Contains(s, ":") || strings.HasPrefix(s, ".") || strings.HasPrefix(s, "/") || strings.HasPrefix(s, "-") {
		return "is not a registry package (no URLs, git, paths or options)" + want
	}
	name, rng := s, ""
	if at := strings.LastIndex(s, "@"); at > 0 {
		name, rng = s[:at], s[at+1:]
		if rng == "" {
			return "has an empty version range" + want
		}
	}
	if !npmName.MatchString(name) || len(name) > 214 {
		return "is not an npm package name" + want
	}
	if rng != "" && !npmRange.MatchString(rng) {
		return "has a version range that does not parse" + want
	}
	return ""
}

// PackageLock is what a package build resolved: the image it made and
// every package in it with its exact version.
type PackageLock struct {
	// Image is the layered image, tagged by the hash of (base, resolved packages).
	Image string `json:"image"`
	// Base is the runtime image it was built on.
	Base string `json:"base"`
	// BaseID is the exact image Base named then: after `cronium images
	// update` moves Base, the server rebuilds layers whose BaseID is old.
	BaseID string `json:"base_id,omitempty"`
	// Key is the hash of (base, declared packages, indexes) that finds it again.
	Key    string   `json:"key"`
	Apt    []string `json:"apt,omitempty"`
	Python []string `json:"python,omitempty"`
	Node   []string `json:"node,omitempty"`
	// BuiltAt is when the layer was built.
	BuiltAt time.Time `json:"built_at"`
}

// ImageInfo describes an image an engine holds.
type ImageInfo struct {
	ID, Ref string
	Labels  map[string]string
	Size    int64
	Created time.Time
}

// LayeredImage is a package layer an engine holds, for listings.
type LayeredImage struct {
	Lock PackageLock `json:"lock"`
	// Size is the layer's own size (the base image is shared).
	Size    int64     `json:"size_bytes"`
	Created time.Time `json:"created_at"`
}
