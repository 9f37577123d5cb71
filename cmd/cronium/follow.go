package main

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	cronium "github.com/cronium/executor"
	"github.com/cronium/executor/images"
	"github.com/cronium/executor/packages"
	"github.com/cronium/executor/pool"
	"github.com/cronium/executor/store"
)

// followEvery is how often the server looks for runtime images that
// `cronium images update` moved.
const followEvery = 5 * time.Second

// previousGrace is how long a replaced image stays at least after the
// server noticed the move: runs dispatched to it just before still find it.
const previousGrace = 30 * time.Second

// retryRebuild is the first wait before a failed layer rebuild is tried
// again; it doubles up to a day.
const retryRebuild = 10 * time.Minute

// follower keeps a node on its current runtime images. When `cronium
// images update` moves a runtime image, it retires the warm pools of the
// old image (their runs go on; their idle sandboxes go), rebuilds the
// package layers built on it and records them on their events (in the
// background, one at a time: following goes on meanwhile), and removes the
// images updates replaced once nothing uses them.
type follower struct {
	bases  *images.Bases
	eng    cronium.ImageStore
	pools  *pool.Manager
	store  store.Store
	layers *packages.Builder
	log    *slog.Logger

	kick    chan struct{}        // wakes the relayer
	noticed map[string]time.Time // replaced base ID: when the move was seen
	pending bool                 // a replaced image was still in use at the last sweep

	mu     sync.Mutex        // guards failed
	failed map[int64]failure // event ID: its last failed rebuild
}

// failure is a layer rebuild that failed on a base, and when to try again.
type failure struct {
	base  string
	retry time.Time
	wait  time.Duration
}

// run checks every followEvery until ctx ends; the relayer runs beside it.
func (f *follower) run(ctx context.Context) {
	f.kick = make(chan struct{}, 1)
	f.noticed = map[string]time.Time{}
	f.failed = map[int64]failure{}
	var wg sync.WaitGroup
	wg.Go(func() { f.relayerLoop(ctx) })
	defer wg.Wait()
	t := time.NewTicker(followEvery)
	defer t.Stop()
	f.wake() // layers whose base moved while the server was down
	for i := 0; ; i++ {
		f.check(ctx, i%12 == 0)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (f *follower) wake() {
	select {
	case f.kick <- struct{}{}:
	default:
	}
}

// check does one pass; sweep also tries to remove replaced images.
func (f *follower) check(ctx context.Context, sweep bool) {
	moved, err := f.bases.Refresh(ctx)
	if err != nil && ctx.Err() == nil {
		f.log.Warn("look up the runtime images", "err", err)
	}
	now := time.Now()
	for _, m := range moved {
		f.noticed[m.OldID] = now
		n := f.pools.Retire(func(key string) bool { return strings.Contains(key, "#"+m.OldID+"/") })
		f.log.Info("runtime image updated: new runs use the new image; runs in progress keep theirs",
			"image", m.Ref, "old", images.ShortID(m.OldID), "new", images.ShortID(m.NewID), "retired_pools", n)
	}
	// A pool of an old image made after the move was seen (a run
	// dispatched just before it) is retired too.
	current := map[string]bool{}
	for _, l := range cronium.Languages {
		if _, id := f.bases.Base(l); id != "" {
			current[id] = true
		}
	}
	if err == nil { // only when every image was looked up
		f.pools.Retire(func(key string) bool {
			i := strings.Index(key, "#sha256:")
			if i < 0 {
				return false
			}
			id, _, _ := strings.Cut(key[i+1:], "/")
			return !current[id]
		})
	}
	if len(moved) > 0 {
		f.wake()
	}
	if sweep || f.pending || len(moved) > 0 {
		keep := f.layers.InFlight()
		for id, at := range f.noticed {
			if now.Sub(at) < previousGrace {
				keep[id] = true
			} else if now.Sub(at) > time.Hour {
				delete(f.noticed, id)
			}
		}
		removed, kept, err := images.RemovePrevious(ctx, f.eng, previousGrace, now, keep)
		if err != nil && ctx.Err() == nil {
			f.log.Warn("remove replaced runtime images", "err", err)
		} else if len(removed) > 0 {
			f.log.Info("removed replaced runtime images: nothing uses them any more", "images", removed)
		}
		f.pending = kept > 0
	}
}

// relayerLoop rebuilds layers when woken, and every few minutes for
// failed rebuilds that are due again.
func (f *follower) relayerLoop(ctx context.Context) {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-f.kick:
		case <-t.C:
		}
		f.relayer(ctx)
	}
}

// relayer rebuilds the package layers whose base is not the current
// runtime image, one at a time. A failed rebuild leaves the event on its
// old layer (which keeps its old base) and is tried again later.
func (f *follower) relayer(ctx context.Context) {
	evs, err := f.store.Events(ctx, 0)
	if err != nil {
		if ctx.Err() == nil {
			f.log.Warn("rebuild package layers: list events", "err", err)
		}
		return
	}
	// Enabled events first: they run next.
	slices.SortStableFunc(evs, func(a, b cronium.Event) int {
		switch {
		case a.IsEnabled() == b.IsEnabled():
			return 0
		case a.IsEnabled():
			return -1
		}
		return 1
	})
	for _, ev := range evs {
		if ctx.Err() != nil {
			return
		}
		lock := ev.PackageLock
		if lock == nil || ev.Packages.Empty() || ev.ImagePinned != "" {
			continue
		}
		ref, id := f.bases.Base(ev.Language)
		if id == "" || lock.BaseID == id {
			continue
		}
		if lock.BaseID == "" && f.adopt(ctx, ev.ID, *lock, id) {
			continue // a layer from before base IDs were recorded, on the current base
		}
		f.mu.Lock()
		fl, failedBefore := f.failed[ev.ID]
		f.mu.Unlock()
		if failedBefore && fl.base == id && time.Now().Before(fl.retry) {
			continue
		}
		begin := time.Now()
		fresh, _, err := f.layers.Ensure(ctx, ev.Language, ref, ev.Packages, io.Discard)
		if err != nil {
			if ctx.Err() != nil {
				return // shutting down: not a failure
			}
			wait := retryRebuild
			if failedBefore && fl.base == id {
				wait = min(2*fl.wait, 24*time.Hour)
			}
			f.mu.Lock()
			f.failed[ev.ID] = failure{base: id, retry: time.Now().Add(wait), wait: wait}
			f.mu.Unlock()
			f.log.Warn("rebuild a package layer on the updated runtime image: the event keeps its layer on the previous image",
				"event", ev.Name, "user", ev.User, "layer", lock.Image, "retry_in", wait, "err", err)
			continue
		}
		f.mu.Lock()
		delete(f.failed, ev.ID)
		f.mu.Unlock()
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

// adopt records base ID id on a lock that has none (made before base IDs
// were recorded) when its layer is built on that image: no rebuild.
func (f *follower) adopt(ctx context.Context, event int64, lock cronium.PackageLock, id string) bool {
	base, err := f.eng.ImageLayers(ctx, id)
	if err != nil {
		return false
	}
	layer, err := f.eng.ImageLayers(ctx, lock.Image)
	if err != nil || len(layer) <= len(base) || !slices.Equal(layer[:len(base)], base) {
		return false
	}
	lock.BaseID = id
	ok, err := f.store.SetPackageLock(ctx, event, lock.Image, lock)
	return ok && err == nil
}
