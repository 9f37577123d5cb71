package dispatch

import (
	"sync"

	cronium "github.com/cronium/executor"
)

// Hub fans live output out to followers of an execution. It is safe for concurrent use.
type Hub struct {
	mu   sync.Mutex // guards subs
	subs map[string]map[chan cronium.OutputChunk]struct{}
}

// NewHub returns an empty hub.
func NewHub() *Hub { return &Hub{subs: map[string]map[chan cronium.OutputChunk]struct{}{}} }

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

// End closes every follower of the execution.
func (h *Hub) End(id string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for ch := range h.subs[id] {
		close(ch)
	}
	delete(h.subs, id)
}
