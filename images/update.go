package images

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	cronium "github.com/cronium/executor"
)

// UpdateEngine is what Update needs from a container engine.
type UpdateEngine interface {
	Engine
	ImageID(ctx context.Context, ref string) (string, error)
	TagImage(ctx context.Context, source, target string) error
	RemoveImage(ctx context.Context, ref string) error
	ReadImageFile(ctx context.Context, ref, path string, limit int64) ([]byte, error)
	ImageTags(ctx context.Context, prefix string) (map[string]string, error)
}

// packageList is where every image records its packages and versions.
const packageList = "/usr/share/cronium/packages.txt"

// prevMark separates an image's tag from the date it was replaced, in the
// tag a replaced image keeps: runtime-bash:3c6549a524b0-prev-20261202T120000Z.
const prevMark = "-prev-"

// Change is what Update did to one image.
type Change struct {
	// Ref is the image's reference: it names the current image.
	Ref string
	// Built is true when there was no image to update: it was built.
	Built bool
	// Updated is true when Ref now names a new image.
	Updated bool
	// OldID and NewID are the image Ref named before and names now.
	OldID, NewID string
	// Previous is the tag the replaced image keeps until nothing uses it.
	Previous string
	// Diff lists the package changes: "libc6 2.36-9 -> 2.36-10", "+pkg 1.0", "-pkg 1.0".
	Diff []string
}

// Update rebuilds r's image from the mirror and, when its packages changed,
// moves r's reference to the new image. The image it replaces keeps a
// "-prev-" tag: containers made from it (running executions, warm
// sandboxes) go on unchanged, and RemovePrevious removes it once nothing
// uses it. An image whose packages did not change is left as it is.
func (b *Builder) Update(ctx context.Context, r Recipe) (Change, error) {
	if b.Progress == nil {
		b.Progress = io.Discard
	}
	eng := b.Engine
	ref := r.Ref()
	ch := Change{Ref: ref}
	unlock, err := lockUpdate(ref)
	if err != nil {
		return ch, err
	}
	defer unlock()
	exists, err := eng.ImageExists(ctx, ref)
	if err != nil {
		return ch, err
	}
	if !exists {
		fmt.Fprintf(b.Progress, "%s: not built yet: building it\n", ref)
		if err := b.build(ctx, r, ref); err != nil {
			return ch, fmt.Errorf("build %s: %w", ref, err)
		}
		ch.Built, ch.NewID = true, mustID(ctx, eng, ref)
		return ch, nil
	}
	if ch.OldID, err = eng.ImageID(ctx, ref); err != nil {
		return ch, err
	}
	if left, err := eng.ImageTags(ctx, ref+"-next-"); err == nil {
		for tag := range left {
			_ = eng.RemoveImage(ctx, tag) // a candidate an interrupted update left
		}
	}
	old, err := eng.ReadImageFile(ctx, ref, packageList, 8<<20)
	if err != nil {
		return ch, fmt.Errorf("%s has no package list (%w): rebuild it with `cronium images build`", ref, err)
	}
	// The candidate is built beside the image, under a tag of its own: a
	// failed or interrupted build never touches the reference runs use.
	next := fmt.Sprintf("%s-next-%d", ref, time.Now().UnixNano())
	if err := b.build(ctx, r, next); err != nil {
		if ctx.Err() != nil {
			return ch, fmt.Errorf("interrupted: %s is unchanged", ref)
		}
		return ch, fmt.Errorf("rebuild %s (%s is unchanged): %w", ref, ref, err)
	}
	defer eng.RemoveImage(context.WithoutCancel(ctx), next) // only a tag once ref names it
	fresh, err := eng.ReadImageFile(ctx, next, packageList, 8<<20)
	if err != nil {
		return ch, fmt.Errorf("the rebuilt %s has no package list: %w", ref, err)
	}
	ch.Diff = Diff(old, fresh)
	if len(ch.Diff) == 0 {
		ch.NewID = ch.OldID
		fmt.Fprintf(b.Progress, "%s: up to date (the mirror has the same packages)\n", ref)
		return ch, nil
	}
	// Nobody moved ref meanwhile (an update elsewhere, a build by hand).
	if now, err := eng.ImageID(ctx, ref); err != nil || now != ch.OldID {
		return ch, fmt.Errorf("%s moved to another image during the rebuild (%s, was %s): nothing changed; run the update again", ref, ShortID(now), ShortID(ch.OldID))
	}
	ch.Previous = ref + prevMark + time.Now().UTC().Format("20060102T150405Z")
	// Tag the old image first, so that it is never without a name.
	if err := eng.TagImage(ctx, ch.OldID, ch.Previous); err != nil {
		return ch, err
	}
	if err := eng.TagImage(ctx, next, ref); err != nil {
		return ch, err
	}
	ch.Updated, ch.NewID = true, mustID(ctx, eng, ref)
	fmt.Fprintf(b.Progress, "%s: updated (%d package changes); the previous image is %s until nothing uses it\n", ref, len(ch.Diff), ch.Previous)
	return ch, nil
}

// ShortID is an image ID as docker prints it: 12 hex digits, no "sha256:".
func ShortID(id string) string {
	id = strings.TrimPrefix(id, "sha256:")
	return id[:min(12, len(id))]
}

// lockUpdate makes updates of ref take turns (several CLIs on one host):
// a second one waits for the first and then finds the image up to date.
func lockUpdate(ref string) (func(), error) {
	name := strings.NewReplacer("/", "_", ":", "_").Replace(ref)
	f, err := os.OpenFile(filepath.Join(os.TempDir(), "cronium-update-"+name+".lock"), os.O_CREATE|os.O_RDWR|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock the update of %s: %w", ref, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock the update of %s: %w", ref, err)
	}
	return func() { syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() }, nil
}

func mustID(ctx context.Context, eng UpdateEngine, ref string) string {
	id, _ := eng.ImageID(ctx, ref)
	return id
}

// Diff compares two package lists ("name version" per line) and returns
// the changes, sorted by package.
func Diff(old, fresh []byte) []string {
	parse := func(b []byte) map[string]string {
		m := map[string]string{}
		for _, l := range bytes.Split(b, []byte("\n")) {
			name, version, _ := strings.Cut(strings.TrimSpace(string(l)), " ")
			if name != "" {
				m[name] = version
			}
		}
		return m
	}
	a, b := parse(old), parse(fresh)
	var out []string
	for name, v := range a {
		switch w, ok := b[name]; {
		case !ok:
			out = append(out, "-"+name+" "+v)
		case w != v:
			out = append(out, name+" "+v+" -> "+w)
		}
	}
	for name, w := range b {
		if _, ok := a[name]; !ok {
			out = append(out, "+"+name+" "+w)
		}
	}
	sort.Slice(out, func(i, j int) bool { return strings.TrimLeft(out[i], "+-") < strings.TrimLeft(out[j], "+-") })
	return out
}

// RemovePrevious removes the images that updates replaced at least grace
// ago, except those a container still uses (a running execution or a warm
// sandbox): the engine refuses those, and they are tried again next time.
// The grace covers runs dispatched to the old image just before the
// update was noticed. It returns the tags it removed and how many it kept.
// keep names images (by ID) that must stay whatever their age: package
// builds in flight use them as their base.
func RemovePrevious(ctx context.Context, eng UpdateEngine, grace time.Duration, now time.Time, keep map[string]bool) (removed []string, kept int, err error) {
	tags, err := eng.ImageTags(ctx, Repository+"/")
	if err != nil {
		return nil, 0, err
	}
	ours := map[string]bool{BuilderRecipe.Ref(): true}
	for _, r := range Recipes {
		ours[r.Ref()] = true
	}
	for tag, id := range tags {
		i := strings.LastIndex(tag, prevMark)
		if i < 0 || !ours[tag[:i]] {
			continue // not a replaced image of this repository's recipes
		}
		if keep[id] {
			kept++
			continue
		}
		at, err := time.Parse("20060102T150405Z", tag[i+len(prevMark):])
		if err != nil {
			continue // not ours
		}
		if now.Sub(at) < grace || eng.RemoveImage(ctx, tag) != nil {
			kept++
			continue
		}
		removed = append(removed, tag)
	}
	sort.Strings(removed)
	return removed, kept, nil
}

// Bases tracks the exact image (engine ID) each runtime image's reference
// names, so that runs and warm pools use one image per generation and an
// update is noticed. It is safe for concurrent use.
type Bases struct {
	engine interface {
		ImageID(ctx context.Context, ref string) (string, error)
	}
	refs map[cronium.Language]string

	mu  sync.RWMutex
	ids map[cronium.Language]string
}

// NewBases tracks refs (language to runtime image reference) in eng.
func NewBases(eng interface {
	ImageID(ctx context.Context, ref string) (string, error)
}, refs map[cronium.Language]string) *Bases {
	return &Bases{engine: eng, refs: refs, ids: map[cronium.Language]string{}}
}

// Base returns lang's runtime image reference and the ID it named at the
// last Refresh (empty when it was not built then).
func (b *Bases) Base(lang cronium.Language) (ref, id string) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.refs[lang], b.ids[lang]
}

// Moved is a runtime image whose reference names a new image.
type Moved struct {
	Language     cronium.Language
	Ref          string
	OldID, NewID string
}

// Refresh looks every reference up again and returns those that moved
// since the last Refresh (not those seen for the first time).
func (b *Bases) Refresh(ctx context.Context) ([]Moved, error) {
	var moved []Moved
	var errs []error
	for lang, ref := range b.refs {
		id, err := b.engine.ImageID(ctx, ref)
		if err != nil {
			if errors.Is(err, cronium.ErrNotFound) {
				continue // not built: runs say so
			}
			errs = append(errs, err)
			continue
		}
		b.mu.Lock()
		old := b.ids[lang]
		b.ids[lang] = id
		b.mu.Unlock()
		if old != "" && old != id {
			moved = append(moved, Moved{Language: lang, Ref: ref, OldID: old, NewID: id})
		}
	}
	sort.Slice(moved, func(i, j int) bool { return moved[i].Language < moved[j].Language })
	return moved, errors.Join(errs...)
}
