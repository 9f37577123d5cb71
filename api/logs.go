package api

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"time"

	cronium "github.com/cronium/executor"
)

// logChunk is the JSON form of a stored chunk.
type logChunk struct {
	Seq    uint64    `json:"seq"`
	Stream string    `json:"stream"`
	Data   string    `json:"data"`
	Time   time.Time `json:"time,omitzero"` // when the server received it
}

// streamWriteWait is how long a stream's client may take to read one write.
const streamWriteWait = 30 * time.Second

// maxLogPage bounds the log bytes of one JSON page.
const maxLogPage = 256 << 10

func toChunk(c cronium.OutputChunk) logChunk {
	return logChunk{Seq: c.Seq, Stream: c.Stream.String(), Data: string(c.Data), Time: c.Time}
}

// logs serves an execution's logs: a JSON page, or with ?follow=true (or
// Accept: text/event-stream) a Server-Sent Events stream whose event ids are
// sequence numbers, so a client that reconnects with Last-Event-ID resumes
// without gaps or duplicates. The stream ends with an "end" event.
func (s *Server) logs(w http.ResponseWriter, r *http.Request, u *cronium.User) error {
	x, err := s.execution(r, u)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	var after uint64
	if v := r.Header.Get("Last-Event-ID"); v != "" {
		q.Set("after", v)
	}
	if v := q.Get("after"); v != "" {
		if after, err = strconv.ParseUint(v, 10, 64); err != nil || after > math.MaxInt64 {
			return cronium.Invalid("after", v, "is not a sequence number: want a whole number from 0 to 9223372036854775807")
		}
	}
	switch q.Get("follow") {
	case "", "true", "false", "1", "0":
	default:
		return cronium.Invalid("follow", q.Get("follow"), "is not a yes or no: want true or false")
	}
	follow := q.Get("follow") == "true" || q.Get("follow") == "1" || r.Header.Get("Accept") == "text/event-stream"
	if v := q.Get("tail"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxLogTail || follow || q.Get("after") != "" {
			return cronium.Invalid("tail", v, fmt.Sprintf("is not a byte count from 1 to %d without follow or after: it asks for the newest logs, as one page", maxLogTail))
		}
		return s.logTail(w, r, x, n)
	}
	if !follow {
		chunks, err := s.cfg.Store.Logs(r.Context(), x.ID, after, 1000)
		if err != nil {
			return err
		}
		// A page holds at most about maxLogPage bytes of log (next_after
		// goes on from there): a response stays small, whoever reads it slowly.
		items := make([]logChunk, 0, len(chunks))
		size, more := 0, len(chunks) == 1000
		for i, c := range chunks {
			if i > 0 && size+len(c.Data) > maxLogPage {
				more = true
				break
			}
			size += len(c.Data)
			items = append(items, toChunk(c))
			after = c.Seq
		}
		return writeJSON(w, http.StatusOK, map[string]any{
			"items": items, "next_after": after, "truncated": x.LogTruncated,
			"done": x.Status == cronium.StatusFinished && !more,
		})
	}
	return s.follow(w, r, x.ID, after)
}

// maxLogTail bounds ?tail=: the newest logs a page holds.
const maxLogTail = 1 << 20

// logTail answers ?tail=N: the newest chunks holding at most n bytes (the
// newest one whole, however long), oldest first; "earlier" says whether
// older logs exist, and next_after is where a follower goes on.
func (s *Server) logTail(w http.ResponseWriter, r *http.Request, x cronium.Execution, n int) error {
	chunks, err := s.cfg.Store.LastLogs(r.Context(), x.ID, 1000)
	if err != nil {
		return err
	}
	first, size := len(chunks), 0
	for first > 0 && (first == len(chunks) || size+len(chunks[first-1].Data) <= n) {
		size += len(chunks[first-1].Data)
		first--
	}
	items := make([]logChunk, 0, len(chunks)-first)
	var after uint64
	for _, c := range chunks[first:] {
		items = append(items, toChunk(c))
		after = c.Seq
	}
	earlier := first > 0 || (len(chunks) > 0 && chunks[0].Seq > 1)
	return writeJSON(w, http.StatusOK, map[string]any{
		"items": items, "next_after": after, "truncated": x.LogTruncated, "earlier": earlier,
		"done": x.Status == cronium.StatusFinished,
	})
}

// streamAuthCheck is how often a log stream checks that its key still works.
const streamAuthCheck = 5 * time.Second

// streamAuthWait bounds each of those checks.
const streamAuthWait = time.Second

// remotePoll is how often a follower of an execution on another node
// reads the store.
const remotePoll = 300 * time.Millisecond

func (s *Server) follow(w http.ResponseWriter, r *http.Request, id string, after uint64) error {
	fl, ok := w.(http.Flusher)
	if !ok {
		return fmt.Errorf("streaming unsupported by this connection")
	}
	// A stream outlives the server's write timeout; each write must reach
	// the client within streamWriteWait instead.
	rc := http.NewResponseController(w)
	flush := func() {
		rc.SetWriteDeadline(time.Now().Add(streamWriteWait))
		fl.Flush()
	}
	rc.SetWriteDeadline(time.Now().Add(streamWriteWait))
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	emit := func(c cronium.OutputChunk) {
		if c.Seq <= after {
			return // already sent: no duplicates
		}
		b, _ := json.Marshal(string(c.Data))
		rc.SetWriteDeadline(time.Now().Add(streamWriteWait))
		fmt.Fprintf(w, "id: %d\nevent: %s\ndata: %s\n\n", c.Seq, c.Stream, b)
		after = c.Seq
	}
	// catchUp sends everything stored past after.
	catchUp := func() error {
		for {
			chunks, err := s.cfg.Store.Logs(r.Context(), id, after, 500)
			if err != nil {
				return err
			}
			for _, c := range chunks {
				emit(c)
			}
			if len(chunks) < 500 {
				flush()
				return nil
			}
		}
	}
	ping := time.NewTicker(15 * time.Second)
	defer ping.Stop()
	// The key a stream was opened with is checked again every
	// streamAuthCheck: revoking it (or signing out of the dashboard, or
	// deleting its user) ends its streams too. A store that does not
	// answer ends nothing.
	recheck := time.NewTicker(streamAuthCheck)
	defer recheck.Stop()
	// An execution another node runs publishes nothing here: its follower
	// reads the store again every remotePoll, by sequence number as after
	// a drop, so nothing is lost or sent twice.
	remote := time.NewTicker(remotePoll)
	defer remote.Stop()
	for {
		// Subscribe before reading the store: chunks are published only
		// after they are stored, so between the two nothing can slip past.
		sub, cancelOut := s.cfg.Dispatcher.Hub().Subscribe(id)
		usage, cancelUsage := s.cfg.Dispatcher.Hub().SubscribeUsage(id)
		cancel := func() { cancelOut(); cancelUsage() }
		if err := catchUp(); err != nil {
			cancel()
			return nil
		}
		x, err := s.cfg.Store.Execution(r.Context(), 0, id)
		if err != nil {
			cancel()
			return nil
		}
		if x.Status == cronium.StatusFinished {
			cancel()
			if err := catchUp(); err != nil {
				return nil
			}
			end, _ := json.Marshal(map[string]any{"status": x.Status, "outcome": x.Outcome, "exit_code": x.ExitCode, "truncated": x.LogTruncated})
			rc.SetWriteDeadline(time.Now().Add(streamWriteWait))
			fmt.Fprintf(w, "event: end\ndata: %s\n\n", end)
			flush()
			return nil
		}
	live:
		for {
			select {
			case <-r.Context().Done():
				cancel()
				return nil
			case <-s.closing:
				cancel()
				rc.SetWriteDeadline(time.Now().Add(streamWriteWait))
				fmt.Fprint(w, "event: shutdown\ndata: {}\n\n")
				flush()
				return nil
			case <-remote.C:
				if !s.cfg.Dispatcher.Runs(id) {
					break live
				}
			case <-ping.C:
				rc.SetWriteDeadline(time.Now().Add(streamWriteWait))
				fmt.Fprint(w, ": keep-alive\n\n")
				flush()
			case <-recheck.C:
				// Bounded: a store that hangs holds the stream up for at
				// most streamAuthWait, and a timeout is not a refusal.
				ctx, stop := context.WithTimeout(r.Context(), streamAuthWait)
				_, _, err := s.authenticate(r.WithContext(ctx))
				stop()
				if err == errUnauthorized {
					cancel()
					b, _ := json.Marshal(map[string]string{"code": "unauthorized", "message": "the key this stream was opened with was revoked or expired, or its user deleted: the stream ends"})
					rc.SetWriteDeadline(time.Now().Add(streamWriteWait))
					fmt.Fprintf(w, "event: unauthorized\ndata: %s\n\n", b)
					flush()
					return nil
				}
			case c, ok := <-sub:
				if !ok {
					break live // ended, or we fell behind: go round and resume from the store
				}
				emit(c)
				flush()
			case u, ok := <-usage:
				if !ok {
					usage = nil // ended: the output channel says so too
					continue
				}
				// No id: a sample is of the moment, resuming never repeats it.
				b, _ := json.Marshal(u)
				rc.SetWriteDeadline(time.Now().Add(streamWriteWait))
				fmt.Fprintf(w, "event: usage\ndata: %s\n\n", b)
				flush()
			}
		}
		cancel()
	}
}
