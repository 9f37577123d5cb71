// Package imagepolicy admits custom images: an event's `image:` is taken
// only from a registry on the operator's allowlist, pinned to a digest at
// apply time, verified against the operator's cosign public keys (offline)
// when a signature policy is set, scanned by the operator's scanner when
// one is configured, and checked for the interpreter the event needs.
// Executions run the pinned digest, never a tag.
package imagepolicy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sort"
	"strings"
	"time"

	cronium "github.com/cronium/executor"
	"github.com/cronium/executor/registry"
)

// Config is the operator's policy for custom images (images: in the server config).
type Config struct {
	// Registries are the registry hosts events may name ("registry.example",
	// "127.0.0.1:5000"). Empty: no custom images.
	Registries []string `json:"registries,omitempty"`
	// Signature, if it names keys, requires every custom image to carry a
	// cosign signature made with one of them.
	Signature Signature `json:"signature,omitzero"`
	// Scanner, if set, scans every custom image before first use.
	Scanner Scanner `json:"scanner,omitzero"`
}

// Signature is the signature policy.
type Signature struct {
	// Keys are files of PEM public keys (cosign.pub: ECDSA P-256 or Ed25519).
	Keys []string `json:"keys,omitempty"`
}

// Scanner is an external command that reads an image reference (its last
// argument) and writes a JSON report on stdout: {"findings": [{"id",
// "severity", "package", "title"}]} (a bare array of findings is accepted).
type Scanner struct {
	// Command and its arguments; the image reference is appended.
	Command []string `json:"command,omitempty"`
	// RefuseAt is the lowest severity that refuses the image: low, medium,
	// high (default) or critical.
	RefuseAt string `json:"refuse_at,omitempty"`
	// Timeout of one scan. Default 5m.
	Timeout cronium.Duration `json:"timeout,omitempty"`
}

var severities = map[string]int{"unknown": 0, "negligible": 0, "info": 0, "low": 1, "medium": 2, "moderate": 2, "high": 3, "critical": 4}

// Validate checks the configuration; errors name the field under images.
func (c Config) Validate() error {
	for i, r := range c.Registries {
		if _, err := registry.ParseRef(r + "/x"); err != nil || strings.ContainsAny(r, "/@") {
			return cronium.Invalid(fmt.Sprintf("images.registries[%d]", i), r, "is not a registry host: give a host with an optional port, like registry.example or 127.0.0.1:5000")
		}
	}
	for i, k := range c.Signature.Keys {
		b, err := os.ReadFile(k)
		if err != nil {
			return cronium.Invalid(fmt.Sprintf("images.signature.keys[%d]", i), k, "cannot be read: "+err.Error())
		}
		if _, err := registry.ParsePublicKey(b); err != nil {
			return cronium.Invalid(fmt.Sprintf("images.signature.keys[%d]", i), k, "is not a public key: "+err.Error())
		}
	}
	if s := c.Scanner.RefuseAt; s != "" {
		if _, ok := severities[s]; !ok || severities[s] == 0 {
			return cronium.Invalid("images.scanner.refuse_at", s, "is not a severity: want low, medium, high or critical")
		}
	}
	if len(c.Scanner.Command) == 0 && (c.Scanner.RefuseAt != "" || c.Scanner.Timeout != 0) {
		return cronium.Invalid("images.scanner.command", "", "is empty: give the scanner's command, like [\"/usr/local/bin/scan\", \"--json\"]")
	}
	return nil
}

// Engine is what admission needs from the container engine.
type Engine interface {
	PullImage(ctx context.Context, ref string) error
	ImageHasFile(ctx context.Context, image string, paths ...string) (string, error)
}

// Policy admits custom images. Safe for concurrent use.
type Policy struct {
	Config Config
	Engine Engine
	// Client talks to the registries. Zero value: plain HTTP for loopback registries only.
	Client registry.Client
}

// Finding is one line of a scanner's report.
type Finding struct {
	ID       string `json:"id"`
	Severity string `json:"severity"`
	Package  string `json:"package,omitempty"`
	Title    string `json:"title,omitempty"`
}

// RefusedError is an image the policy refused; Findings are the scanner's, if it was the scanner.
type RefusedError struct {
	Image    string
	Reason   string
	Findings []Finding
}

func (e *RefusedError) Error() string {
	s := fmt.Sprintf("image: %s is refused: %s", e.Image, e.Reason)
	for i, f := range e.Findings {
		if i == 10 {
			s += fmt.Sprintf("; and %d more", len(e.Findings)-10)
			break
		}
		s += fmt.Sprintf("; %s %s", strings.ToUpper(f.Severity), f.ID)
		if f.Package != "" {
			s += " in " + f.Package
		}
		if f.Title != "" {
			s += ": " + f.Title
		}
	}
	return s
}

// Unwrap makes a refusal a bad input (400).
func (e *RefusedError) Unwrap() error { return cronium.ErrInvalid }

// interpreters are where an image must hold each language's interpreter.
var interpreters = map[cronium.Language][]string{
	cronium.Bash:   {"/usr/bin/bash", "/bin/bash", "/usr/local/bin/bash"},
	cronium.Python: {"/usr/bin/python3", "/usr/local/bin/python3", "/bin/python3"},
	cronium.Node:   {"/usr/bin/node", "/usr/local/bin/node", "/usr/bin/nodejs"},
}

// Admit checks image (as the event gives it) for an event of lang and
// returns the pinned reference (registry/repo@sha256:...) runs must use.
// Progress lines go to progress.
func (p *Policy) Admit(ctx context.Context, image string, lang cronium.Language, progress io.Writer) (string, error) {
	if progress == nil {
		progress = io.Discard
	}
	ref, err := registry.ParseRef(image)
	if err != nil {
		return "", cronium.Invalid("image", image, err.Error())
	}
	allowed := false
	for _, r := range p.Config.Registries {
		allowed = allowed || strings.EqualFold(r, ref.Registry)
	}
	if !allowed {
		regs := "none are (images.registries is empty)"
		if len(p.Config.Registries) > 0 {
			regs = "allowed: " + strings.Join(p.Config.Registries, ", ")
		}
		return "", cronium.Invalid("image", image, fmt.Sprintf("is from registry %s, which the operator does not allow (%s)", ref.Registry, regs))
	}
	fmt.Fprintf(progress, "image %s: resolving\n", image)
	digest, err := p.Client.Resolve(ctx, ref)
	if err != nil {
		if errors.Is(err, registry.ErrNotFound) {
			return "", cronium.Invalid("image", image, err.Error())
		}
		return "", fmt.Errorf("%w: image %s: %v", cronium.ErrUnavailable, image, err)
	}
	pinned := registry.Ref{Registry: ref.Registry, Repository: ref.Repository, Digest: digest}
	fmt.Fprintf(progress, "image %s: pinned to %s\n", image, digest)
	if keys := p.Config.Signature.Keys; len(keys) > 0 {
		var pems [][]byte
		for _, k := range keys {
			b, err := os.ReadFile(k)
			if err != nil {
				return "", fmt.Errorf("images.signature.keys: %s: %w", k, err)
			}
			pems = append(pems, b)
		}
		if err := p.Client.VerifyCosign(ctx, pinned, pems); err != nil {
			if errors.Is(err, registry.ErrUnsigned) || errors.Is(err, registry.ErrBadSignature) {
				return "", &RefusedError{Image: pinned.String(), Reason: err.Error()}
			}
			return "", fmt.Errorf("%w: image %s: verify its signature: %v", cronium.ErrUnavailable, image, err)
		}
		fmt.Fprintf(progress, "image %s: signature verified with the operator's key\n", image)
	}
	if err := p.Engine.PullImage(ctx, pinned.String()); err != nil {
		return "", fmt.Errorf("%w: image %s: %v", cronium.ErrUnavailable, image, err)
	}
	if len(p.Config.Scanner.Command) > 0 {
		if err := p.scan(ctx, pinned.String(), progress); err != nil {
			return "", err
		}
	}
	found, err := p.Engine.ImageHasFile(ctx, pinned.String(), interpreters[lang]...)
	if err != nil {
		return "", err
	}
	if found == "" {
		return "", cronium.Invalid("image", image, fmt.Sprintf("has no %s interpreter (looked for %s): use an image that has it, or no image (the %s runtime image)",
			lang, strings.Join(interpreters[lang], ", "), lang))
	}
	return pinned.String(), nil
}

func (p *Policy) scan(ctx context.Context, ref string, progress io.Writer) error {
	sc := p.Config.Scanner
	timeout := sc.Timeout.D()
	if timeout == 0 {
		timeout = 5 * time.Minute
	}
	refuseAt := severities["high"]
	if sc.RefuseAt != "" {
		refuseAt = severities[sc.RefuseAt]
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	fmt.Fprintf(progress, "image %s: scanning with %s\n", ref, sc.Command[0])
	cmd := exec.CommandContext(ctx, sc.Command[0], append(append([]string{}, sc.Command[1:]...), ref)...)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	runErr := cmd.Run()
	var report struct {
		Findings []Finding `json:"findings"`
	}
	trimmed := bytes.TrimSpace(out.Bytes())
	var perr error
	if bytes.HasPrefix(trimmed, []byte("[")) {
		perr = json.Unmarshal(trimmed, &report.Findings)
	} else {
		perr = json.Unmarshal(trimmed, &report)
	}
	if perr != nil {
		// A scanner that fails or writes no report refuses the image: an
		// unscanned image is not a clean one.
		why := fmt.Sprintf("the scanner wrote no JSON report (%v)", perr)
		if runErr != nil {
			why = fmt.Sprintf("the scanner failed (%v): %s", runErr, strings.TrimSpace(lastLine(stderr.String())))
		}
		return &RefusedError{Image: ref, Reason: why}
	}
	var bad []Finding
	for _, f := range report.Findings {
		if severities[strings.ToLower(f.Severity)] >= refuseAt {
			bad = append(bad, f)
		}
	}
	sort.SliceStable(bad, func(i, j int) bool {
		return severities[strings.ToLower(bad[i].Severity)] > severities[strings.ToLower(bad[j].Severity)]
	})
	if len(bad) > 0 {
		level := sc.RefuseAt
		if level == "" {
			level = "high"
		}
		return &RefusedError{Image: ref, Reason: fmt.Sprintf("the scanner found %d finding(s) at or above %s", len(bad), level), Findings: bad}
	}
	fmt.Fprintf(progress, "image %s: scanned, %d finding(s), none at or above the refused severity\n", ref, len(report.Findings))
	return nil
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}
