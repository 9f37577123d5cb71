package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"sync"
	"time"

	cronium "github.com/cronium/executor"
)

// Packages builds and lists the layered images of declared packages.
type Packages interface {
	// Ensure returns the lock of the image for (lang, p), building it first
	// if there is none; build output goes to progress.
	Ensure(ctx context.Context, lang cronium.Language, p cronium.Packages, progress io.Writer) (cronium.PackageLock, bool, error)
	// List returns the layered images this node holds.
	List(ctx context.Context) ([]cronium.LayeredImage, error)
}

// Images admits custom images.
type Images interface {
	// Admit checks image for an event of lang and returns the pinned
	// reference runs use.
	Admit(ctx context.Context, image string, lang cronium.Language, progress io.Writer) (string, error)
}

// admitImage pins and checks ev's custom image, recording the pinned
// reference on ev. A refusal leaves the stored event as it was.
func (s *Server) admitImage(ctx context.Context, ev *cronium.Event, progress io.Writer) error {
	ev.ImagePinned = ""
	if ev.Image == "" {
		return nil
	}
	if s.cfg.Images == nil {
		return cronium.Invalid("image", ev.Image, "is not allowed: this server takes no custom images")
	}
	pinned, err := s.cfg.Images.Admit(ctx, ev.Image, ev.Language, progress)
	if err != nil {
		return err
	}
	ev.ImagePinned = pinned
	return nil
}

// ensurePackages builds ev's packages (or finds them built) and records the
// lock on ev. A failed build leaves the stored event as it was.
func (s *Server) ensurePackages(ctx context.Context, ev *cronium.Event, progress io.Writer) error {
	ev.PackageLock = nil
	if ev.Packages.Empty() {
		return nil
	}
	if s.cfg.Packages == nil {
		return fmt.Errorf("%w: this server builds no packages (no engine with a builder image): remove packages from the event", cronium.ErrUnavailable)
	}
	lock, _, err := s.cfg.Packages.Ensure(ctx, ev.Language, ev.Packages, progress)
	if err != nil {
		return err
	}
	ev.PackageLock = &lock
	return nil
}

type buildRequest struct {
	Language cronium.Language `json:"language"`
	Packages cronium.Packages `json:"packages"`
}

// buildImage builds a package set and streams the build as JSON lines:
// {"progress": "..."} while it runs, then {"lock": {...}, "built": bool}
// or {"error": {...}}. event apply calls it before it saves an event with
// packages, so that the user sees the build.
func (s *Server) buildImage(w http.ResponseWriter, r *http.Request, u *cronium.User) error {
	var req buildRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	lang, err := cronium.ParseLanguage("language", string(req.Language))
	if err != nil {
		return err
	}
	if err := req.Packages.Normalize("packages", lang); err != nil {
		return err
	}
	if req.Packages.Empty() {
		return cronium.Invalid("packages", "", "is empty: declare apt, python or node packages")
	}
	if s.cfg.Packages == nil {
		return fmt.Errorf("%w: this server builds no packages", cronium.ErrUnavailable)
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	lw := &lineStream{w: w, rc: http.NewResponseController(w)}
	lock, built, err := s.cfg.Packages.Ensure(r.Context(), lang, req.Packages, lw)
	if err != nil {
		lw.send(map[string]any{"error": map[string]any{"code": "build_failed", "message": err.Error()}})
		return nil
	}
	lw.send(map[string]any{"lock": lock, "built": built})
	return nil
}

// lineStream writes each progress line as one JSON object and flushes it.
type lineStream struct {
	mu  sync.Mutex
	w   io.Writer
	rc  *http.ResponseController
	buf []byte
}

func (l *lineStream) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			return len(p), nil
		}
		l.sendLocked(map[string]string{"progress": string(l.buf[:i])})
		l.buf = l.buf[i+1:]
	}
}

func (l *lineStream) send(v any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sendLocked(v)
}

func (l *lineStream) sendLocked(v any) {
	b, _ := json.Marshal(v)
	// Each line must reach a client within streamWriteWait: one that stops
	// reading does not hold the server's memory (see Server.Close).
	l.rc.SetWriteDeadline(time.Now().Add(streamWriteWait))
	l.w.Write(append(b, '\n'))
	l.rc.Flush()
}

// listImages lists the layered images with their locks: an admin sees
// all, a user those their events use.
func (s *Server) listImages(w http.ResponseWriter, r *http.Request, u *cronium.User) error {
	items := []cronium.LayeredImage{}
	if s.cfg.Packages != nil {
		got, err := s.cfg.Packages.List(r.Context())
		if err != nil {
			return err
		}
		mine := map[string]bool{}
		if !u.Admin {
			evs, err := s.cfg.Store.Events(r.Context(), u.ID)
			if err != nil {
				return err
			}
			for _, ev := range evs {
				if ev.PackageLock != nil {
					mine[ev.PackageLock.Image] = true
				}
			}
		}
		for _, li := range got {
			if u.Admin || mine[li.Lock.Image] {
				items = append(items, li)
			}
		}
	}
	sort.Slice(items, func(i, j int) bool { return items[i].Lock.Image < items[j].Lock.Image })
	return writeJSON(w, http.StatusOK, map[string]any{"items": items})
}
