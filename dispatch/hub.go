package dispatch

import (
	"sync"

	cronium "github.com/cronium/executor"
)

// Hub fans live output and usage samples out to followers of an
// execution, and keeps each running execution's latest sample. It is safe
// for concurrent use.
type Hub struct {
	mu    sync.Mutex // guards the maps
	subs  map[string]map[chan cronium.OutputChunk]struct{}
	usage map[string]map[chan cronium.UsageSample]struct{}
	last  map[string]cronium.UsageSample
}

// NewHub returns an empty hub.
func NewHub() *Hub {
	return &Hub{subs: map[string]map[chan cronium.OutputChunk]struct{}{}, usage: map[string]map[chan cronium.UsageSample]struct{}{},
		last: map[string]cronium.UsageSample{}}
}

// SubscribeUsage returns a channel of the execution's usage samples from
// now on, closed when the execution ends or cancel is called. A follower
// that falls 16 samples behind misses the newer ones (they are of the moment).
func (h *Hub) SubscribeUsage(id string) (<-chan cronium.UsageSample, func()) {
	ch := make(chan cronium.UsageSample, 16)
	h.mu.Lock()
	if h.usage[id] == nil {
		h.usage[id] = map[chan cronium.UsageSample]struct{}{}
	}
	h.usage[id][ch] = struct{}{}
	h.mu.Unlock()
	return ch, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		if _, ok := h.usage[id][ch]; ok {
			delete(h.usage[id], ch)
			close(ch)
		}
	}
}

// PublishUsage records the execution's latest sample and sends it to its followers.
func (h *Hub) PublishUsage(id string, u cronium.UsageSample) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.last[id] = u
	for ch := range h.usage[id] {
		select {
		case ch <- u:
		default:
		}
	}
}

// LastUsage is the execution's latest sample while it runs on this node.
func (h *Hub) LastUsage(id string) (cronium.UsageSample, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	u, ok := h.last[id]
	return u, ok
}

// Subscribe returns a channel of the execution's chunks from now on. The
// channel is closed when the execution ends or cancel is called. A follower
// too slow to keep a 1024-chunk buffer is dropped (its channel is closed) and
// resumes from the store by sequence number.
func (h *Hub) Subscribe(id string) (<-chan cronium.OutputChunk, func()) {
	ch := make(chan cronium.OutputChunk, 1024)
	h.mu.Lock()
	if h.subs[id] == nil {
		h.subs[id] = map[chan cronium.OutputChunk]struct{}{}
	}
	h.subs[id][ch] = struct{}{}
	h.mu.Unlock()
	return ch, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		if _, ok := h.subs[id][ch]; ok {
			delete(h.subs[id], ch)
			close(ch)
		}
	}
}

// Publish sends a chunk to every follower of the execution.
func (h *Hub) Publish(id string, c cronium.OutputChunk) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for ch := range h.subs[id] {
		select {
		case ch <- c:
		default:
			delete(h.subs[id], ch)
			close(ch)
		}
	}
}

// End closes every follower of the execution and forgets its sample.
func (h *Hub) End(id string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for ch := range h.subs[id] {
		close(ch)
	}
	delete(h.subs, id)
	for ch := range h.usage[id] {
		close(ch)
	}
	delete(h.usage, id)
	delete(h.last, id)
}
