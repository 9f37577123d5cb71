package main

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/cronium/executor/docker"
	"github.com/cronium/executor/images"
	"github.com/cronium/executor/packages"
	"github.com/cronium/executor/pool"
	"github.com/cronium/executor/sqlite"
)

// followEvery is how often the server looks for runtime images that
// `cronium images update` moved.
const followEvery = 5 * time.Second

// previousGrace is how long a replaced image stays at least: runs
// dispatched to it just before the update was noticed still find it.
const previousGrace = 30 * time.Second

// follower keeps a node on its current runtime images. When `cronium
// images update` moves a runtime image, it retires the warm pools of the
// old image (their runs go on; their idle sandboxes go), rebuilds the
// package layers built on it and records them on their events, and
// removes the images updates replaced once nothing uses them.
type follower struct {
	bases  *images.Bases
	eng    *docker.Engine
	pools  *pool.Manager
	store  *sqlite.Store
	layers *packages.Builder
	log    *slog.Logger

	failed  map[int64]string // event ID: the base its layer failed to build on
	pending bool             // a replaced image was still in use at the last sweep
}

// run checks every followEvery until ctx ends.
func (f *follower) run(ctx context.Context) {
	t := time.NewTicker(followEvery)
	defer t.Stop()
	for i := 0; ; i++ {
		f.check(ctx, i%12 == 0)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// check does one pass; sweep also tries to remove replaced images.
func (f *follower) check(ctx context.Context, sweep bool) {
	moved, err := f.bases.Refresh(ctx)
	if err != nil && ctx.Err() == nil {
		f.log.Warn("look up the runtime images", "err", err)
	}
	for _, m := range moved {
		n := f.pools.Retire(func(key string) bool { return strings.Contains(key, "#"+m.OldID+"/") })
		f.log.Info("runtime image updated: new runs use the new image; runs in progress keep theirs",
			"image", m.Ref, "old", short(m.OldID), "new", short(m.NewID), "retired_pools", n)
	}
	if len(moved) > 0 || f.failed == nil {
		f.relayer(ctx)
	}
	if sweep || f.pending || len(moved) > 0 {
		removed, kept, err := images.RemovePrevious(ctx, f.eng, previousGrace, time.Now())
		if err != nil && ctx.Err() == nil {
			f.log.Warn("remove replaced runtime images", "err", err)
		} else if len(removed) > 0 {
			f.log.Info("removed replaced runtime images: nothing uses them any more", "images", removed)
		}
		f.pending = kept > 0
	}
}

// relayer rebuilds the package layers whose base is not the current
// runtime image. A failed rebuild leaves the event on its old layer (which
// keeps its old base) and is not retried on that base until a restart.
func (f *follower) relayer(ctx context.Context) {
	if f.failed == nil {
		f.failed = map[int64]string{}
	}
	evs, err := f.store.Events(ctx, 0)
	if err != nil {
		f.log.Warn("rebuild package layers: list events", "err", err)
		return
	}
	for _, ev := range evs {
		lock := ev.PackageLock
		if lock == nil || ev.Packages.Empty() || ev.ImagePinned != "" {
			continue
		}
		ref, id := f.bases.Base(ev.Language)
		if id == "" || lock.BaseID == id || f.failed[ev.ID] == id || ctx.Err() != nil {
			continue
		}
		begin := time.Now()
		fresh, _, err := f.layers.Ensure(ctx, ev.Language, ref, ev.Packages, io.Discard)
		if err != nil {
			f.failed[ev.ID] = id
			f.log.Warn("rebuild a package layer on the updated runtime image: the event keeps its layer on the previous image",
				"event", ev.Name, "user", ev.User, "layer", lock.Image, "err", err)
			continue
		}
		ok, err := f.store.SetPackageLock(ctx, ev.ID, lock.Image, fresh)
		if err != nil {
			f.log.Warn("record a rebuilt package layer", "event", ev.Name, "err", err)
			continue
		}
		if !ok {
			continue // applied again meanwhile: its own layer stands
		}
		n := f.pools.Retire(func(key string) bool { return strings.Contains(key, "@"+lock.Image+"/") })
		f.log.Info("package layer rebuilt on the updated runtime image", "event", ev.Name, "user", ev.User,
			"old", lock.Image, "new", fresh.Image, "took", time.Since(begin).Round(100*time.Millisecond), "retired_pools", n)
	}
}

func short(id string) string {
	id = strings.TrimPrefix(id, "sha256:")
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
