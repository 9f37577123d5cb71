// Package images builds Cronium's runtime images offline: a minimal Debian
// root file system per runtime, made with mmdebstrap from the host's Debian
// package mirror and imported into the engine. No registry is needed.
//
// An image's tag carries a hash of its recipe (suite, packages, trim hook,
// image config), so an unchanged image is never rebuilt.
package images

import (
	"bufio"
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	cronium "github.com/cronium/executor"
)

//go:embed recipes/hook.sh recipes/builder-hook.sh
var recipes embed.FS

// Recipe describes one runtime image.
type Recipe struct {
	Language cronium.Language
	// Packages are the Debian packages added to the essential set.
	Packages []string
	// Check is a command that must succeed inside the image.
	Check []string
	// Name overrides the image's name (default runtime-<language>).
	Name string
	// Hook is the recipes/ file that trims the root file system (default hook.sh).
	Hook string
}

// BuilderRecipe is the image that builds declared packages into layers:
// apt, pip and npm, which the runtime images do not contain.
var BuilderRecipe = Recipe{
	Language: cronium.Bash, Name: "builder", Hook: "builder-hook.sh",
	Packages: []string{"apt", "ca-certificates", "python3", "python3-pip", "nodejs", "npm"},
	Check:    []string{"sh", "-c", "apt-get --version && pip3 --version && npm --version"},
}

// Suite is the Debian release the images are built from.
const Suite = "bookworm"

// recipeVersion changes when the build procedure itself changes.
const recipeVersion = "1"

// changes are applied on import, as Dockerfile instructions.
var changes = []string{
	"ENV PATH=/usr/local/bin:/usr/bin:/bin",
	"ENV LANG=C.UTF-8",
	"WORKDIR /workspace",
	`CMD ["/bin/bash"]`,
}

// Recipes lists the runtime images, one per language.
var Recipes = map[cronium.Language]Recipe{
	cronium.Bash:   {Language: cronium.Bash, Packages: []string{"jq", "bc", "tzdata"}, Check: []string{"bash", "-c", "echo ok | jq -R . && echo 1+1 | bc && TZ=Europe/Berlin date -d @0 +%Z | grep -qx CET"}},
	cronium.Python: {Language: cronium.Python, Packages: []string{"python3", "tzdata"}, Check: []string{"python3", "-c", "import json, socket, os, time; os.environ['TZ'] = 'Europe/Berlin'; time.tzset(); assert time.strftime('%Z', time.localtime(0)) == 'CET'"}},
	cronium.Node:   {Language: cronium.Node, Packages: []string{"nodejs", "tzdata"}, Check: []string{"node", "-e", "require('net'); process.env.TZ = 'Europe/Berlin'; if (new Date(0).getTimezoneOffset() !== -60) process.exit(1)"}},
}

func (r Recipe) hook() []byte {
	name := r.Hook
	if name == "" {
		name = "hook.sh"
	}
	b, err := recipes.ReadFile("recipes/" + name)
	if err != nil {
		panic(err) // embedded at build time
	}
	return b
}

// Hash is the content hash of the recipe, the tag of its image.
func (r Recipe) Hash() string {
	h := sha256.New()
	fmt.Fprintf(h, "v%s\n%s\n%s\n%s\n", recipeVersion, Suite, strings.Join(r.Packages, ","), strings.Join(changes, "\n"))
	h.Write(r.hook())
	return hex.EncodeToString(h.Sum(nil))[:12]
}

// Repository is the repository the images are named in: "cronium" gives
// cronium/runtime-python:<hash>. The CLI sets it from --image-repo (or
// CRONIUM_IMAGE_REPO) before anything uses it, so that several
// installations (or test runs) can share one engine without sharing images.
var Repository = "cronium"

// Ref is the image reference, e.g. cronium/runtime-python:3f2a9c0d11aa.
func (r Recipe) Ref() string {
	if r.Name != "" {
		return Repository + "/" + r.Name + ":" + r.Hash()
	}
	return Repository + "/runtime-" + string(r.Language) + ":" + r.Hash()
}

// Refs maps each language to its image reference.
func Refs() map[cronium.Language]string {
	m := map[cronium.Language]string{}
	for l, r := range Recipes {
		m[l] = r.Ref()
	}
	return m
}

// Engine is what the builder needs from a container engine.
type Engine interface {
	ImageExists(ctx context.Context, ref string) (bool, error)
	ImportImage(ctx context.Context, rootfs io.Reader, ref string, changes []string) error
}

// Builder builds runtime images. The zero value uses the host's apt sources.
type Builder struct {
	// Engine receives the images: an engine's image store. Required.
	Engine cronium.ImageStore
	// Mirror is passed to mmdebstrap: a mirror URL or an apt sources file.
	// Default: the host's /etc/apt/sources.list.d/debian.sources or /etc/apt/sources.list.
	Mirror string
	// Progress receives build progress lines. Default: discard.
	Progress io.Writer
}

// Build builds the image of each language unless it exists. It reports
// whether each was built (true) or already present (false).
func (b *Builder) Build(ctx context.Context, langs ...cronium.Language) (map[cronium.Language]bool, error) {
	if b.Progress == nil {
		b.Progress = io.Discard
	}
	if len(langs) == 0 {
		langs = cronium.Languages
	}
	built := map[cronium.Language]bool{}
	for _, l := range langs {
		r, ok := Recipes[l]
		if !ok {
			return built, cronium.Invalid("language", string(l), "has no runtime image: want bash, python or node")
		}
		did, err := b.Ensure(ctx, r)
		if err != nil {
			return built, err
		}
		built[l] = did
	}
	return built, nil
}

// Ensure builds the image of r unless it exists, and reports whether it built it.
func (b *Builder) Ensure(ctx context.Context, r Recipe) (bool, error) {
	if b.Progress == nil {
		b.Progress = io.Discard
	}
	ok, err := b.Engine.ImageExists(ctx, r.Ref())
	if err != nil {
		return false, err
	}
	if ok {
		fmt.Fprintf(b.Progress, "%s: up to date\n", r.Ref())
		return false, nil
	}
	if err := b.build(ctx, r, r.Ref()); err != nil {
		return false, fmt.Errorf("build %s: %w", r.Ref(), err)
	}
	return true, nil
}

func (b *Builder) mirror() (string, error) {
	if b.Mirror != "" {
		return b.Mirror, nil
	}
	for _, p := range []string{"/etc/apt/sources.list.d/debian.sources", "/etc/apt/sources.list"} {
		if fi, err := os.Stat(p); err == nil && fi.Size() > 0 {
			return p, nil
		}
	}
	return "", errors.New("no apt sources on this host: pass --mirror with a Debian mirror URL")
}

// build builds r's image and imports it as ref.
func (b *Builder) build(ctx context.Context, r Recipe, ref string) error {
	if _, err := exec.LookPath("mmdebstrap"); err != nil {
		return errors.New("mmdebstrap is not installed: `apt-get install -y mmdebstrap` (the images are built offline from the Debian mirror)")
	}
	mirror, err := b.mirror()
	if err != nil {
		return err
	}
	hookFile, err := os.CreateTemp("", "cronium-hook-*.sh")
	if err != nil {
		return err
	}
	defer os.Remove(hookFile.Name())
	hookFile.Write(r.hook())
	hookFile.Close()

	begin := time.Now()
	fmt.Fprintf(b.Progress, "%s: building from the Debian %s mirror (packages: %s)\n", ref, Suite, strings.Join(r.Packages, " "))
	args := []string{
		"--variant=essential",
		"--include=" + strings.Join(r.Packages, ","),
		"--dpkgopt=path-exclude=/usr/share/doc/*",
		"--dpkgopt=path-exclude=/usr/share/man/*",
		"--dpkgopt=path-exclude=/usr/share/locale/*",
		"--dpkgopt=path-exclude=/usr/share/info/*",
		"--customize-hook=sh " + hookFile.Name() + ` "$1"`,
		"--skip=cleanup/apt,cleanup/mmdebstrap", // the runtime hook removed apt and dpkg wholesale
		"--format=tar",
		Suite, "-", mirror,
	}
	// Build into a file first: a failed build must never leave a partial image.
	tarball, err := os.CreateTemp("", "cronium-rootfs-*.tar")
	if err != nil {
		return err
	}
	defer os.Remove(tarball.Name())
	defer tarball.Close()
	cmd := exec.CommandContext(ctx, "mmdebstrap", args...)
	// Interrupted, mmdebstrap gets SIGTERM and time to remove its work
	// directory (SIGKILL would leave a root file system in /tmp).
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 30 * time.Second
	cmd.Stdout = tarball
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start mmdebstrap: %w", err)
	}
	var tail []string
	s := bufio.NewScanner(stderr)
	for s.Scan() {
		line := s.Text()
		tail = append(tail, line)
		if len(tail) > 20 {
			tail = tail[1:]
		}
		if strings.HasPrefix(line, "I: ") || strings.HasPrefix(line, "E: ") || strings.HasPrefix(line, "W: ") {
			fmt.Fprintf(b.Progress, "  %s [%s]\n", line, time.Since(begin).Round(time.Second))
		}
	}
	if err := cmd.Wait(); err != nil {
		return fmt.Errorf("mmdebstrap failed: %w\n%s", err, strings.Join(tail, "\n"))
	}
	if _, err := tarball.Seek(0, io.SeekStart); err != nil {
		return err
	}
	fmt.Fprintf(b.Progress, "%s: importing into the engine [%s]\n", ref, time.Since(begin).Round(time.Second))
	if err := b.Engine.ImportImage(ctx, tarball, ref, changes); err != nil {
		return err
	}
	fmt.Fprintf(b.Progress, "%s: built in %s\n", ref, time.Since(begin).Round(time.Second))
	return nil
}
