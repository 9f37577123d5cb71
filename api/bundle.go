package api

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	cronium "github.com/cronium/executor"
	"github.com/cronium/executor/dispatch"
	"github.com/cronium/executor/redact"
)

// bundleReadme says what a trace bundle holds.
const bundleReadme = `A Cronium trace bundle of one execution.

execution.json  the execution and its result: outcome, error, limits, network policy, phases,
                usage (and its timeline of samples), hints, audit, the agent's trail, where
                the sandbox was kept, notifications, debug sessions
event.json      the event as it is now (secrets by name only; their values never appear)
logs.txt        the stored output, stdout and stderr as they came ("--- stderr ---" where it changes)
trail.txt       what the agent saw happen: start, stops and why, signals, the exit
timeline.tsv    the usage samples taken while the script ran
oom.txt         the kernel's report of the out-of-memory kill, when there was one
engine.json     the engine's own view of the sandbox, when it still existed (kept or running),
                its environment's values hidden; engine.txt says why it is not there otherwise

Every secret value of the event is replaced by *** in every file.
`

// bundle streams a trace bundle (tar.gz) of an execution, for its owner
// (admins: any, as GET /v1/executions/{id}).
func (s *Server) bundle(w http.ResponseWriter, r *http.Request, u *cronium.User) error {
	x, err := s.execution(r, u)
	if err != nil {
		return err
	}
	// A bundle is built in memory (a few MiB at most): a few at a time.
	select {
	case bundles <- struct{}{}:
		defer func() { <-bundles }()
	default:
		return &Error{Status: http.StatusTooManyRequests, Code: "busy", Message: "other trace bundles are being built: try again in a moment"}
	}
	ctx := r.Context()
	ns, _ := s.cfg.Store.NotificationsFor(ctx, x.ID)
	view := ExecutionView{Execution: x, Notifications: ns, DebugSessions: s.debugSessions(ctx, x.ID)}
	secrets := s.secretValues(ctx, x)
	files := []struct {
		name string
		data []byte
	}{{"README.txt", []byte(bundleReadme)}}
	add := func(name string, data []byte) {
		files = append(files, struct {
			name string
			data []byte
		}{name, redact.Bytes(data, secrets)})
	}
	j, _ := json.MarshalIndent(view, "", "  ")
	add("execution.json", j)
	if ev, err := s.cfg.Store.Event(ctx, x.UserID, x.Event); err == nil {
		ev.Files = nil // the folder's files are the user's, not the run's trace
		j, _ := json.MarshalIndent(ev, "", "  ")
		add("event.json", j)
	}
	var logs bytes.Buffer
	stream := cronium.Stdout
	for after := uint64(0); ; {
		chunks, err := s.cfg.Store.Logs(ctx, x.ID, after, 500)
		if err != nil {
			return err
		}
		for _, c := range chunks {
			if c.Stream != stream { // a marker where the stream changes: the log grows by lines, not by a prefix on each
				stream = c.Stream
				if logs.Len() > 0 && logs.Bytes()[logs.Len()-1] != '\n' {
					logs.WriteByte('\n')
				}
				fmt.Fprintf(&logs, "--- %s ---\n", stream)
			}
			logs.Write(c.Data)
			after = c.Seq
		}
		if len(chunks) < 500 {
			break
		}
	}
	add("logs.txt", []byte(logs.String()))
	if res := x.Result; res != nil {
		add("trail.txt", []byte(strings.Join(res.Trail, "\n")+"\n"))
		if len(res.Timeline) > 0 {
			var tl strings.Builder
			tl.WriteString("elapsed_s\tcpu_s\tmemory_bytes\tpeak_memory_bytes\tio_read_bytes\tio_write_bytes\tpids\tcpu_throttled_s\n")
			for _, u := range res.Timeline {
				fmt.Fprintf(&tl, "%.1f\t%.3f\t%d\t%d\t%d\t%d\t%d\t%.3f\n", time.Duration(u.Elapsed).Seconds(), u.CPUSeconds, u.MemoryBytes, u.PeakMemory, u.IORead, u.IOWrite, u.Pids, u.CPUThrottledSeconds)
			}
			add("timeline.tsv", []byte(tl.String()))
		}
		if res.OOMReport != "" {
			add("oom.txt", []byte(res.OOMReport+"\n"))
		}
	}
	if view, err := s.cfg.Dispatcher.Inspect(ctx, x.UserID, x.ID); err == nil {
		var b bytes.Buffer
		red := redact.JSON(trimEngineView(view), secrets) // compact
		if json.Indent(&b, red, "", "  ") != nil {
			b.Reset()
			b.Write(red)
		}
		add("engine.json", b.Bytes())
	} else {
		why := err.Error()
		if errors.Is(err, cronium.ErrNotFound) {
			why = "the sandbox was removed when the run ended (an event's debug.keep_failed keeps a failed run's sandbox), or runs on another node"
		}
		add("engine.txt", []byte(why+"\n"))
	}
	w.Header().Set("Content-Type", "application/gzip")
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="%s-bundle.tar.gz"`, x.ID))
	gz := gzip.NewWriter(w)
	tw := tar.NewWriter(gz)
	now := time.Now()
	for _, f := range files {
		hdr := &tar.Header{Name: x.ID + "/" + f.name, Mode: 0o644, Size: int64(len(f.data)), ModTime: now, Typeflag: tar.TypeReg}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if _, err := tw.Write(f.data); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return gz.Close()
}

// bundles bounds the trace bundles built at once.
var bundles = make(chan struct{}, 2)

// hostDetails are the fields of an engine's view that only say where
// things are on the host (paths, the engine's own files).
var hostDetails = []string{"GraphDriver", "HostnamePath", "HostsPath", "LogPath", "ResolvConfPath", "Mounts"}

// trimEngineView drops an engine view's host details, and the sources of
// its mounts, keeping what the sandbox was.
func trimEngineView(b []byte) []byte {
	var v map[string]any
	if json.Unmarshal(b, &v) != nil {
		return b
	}
	for _, k := range hostDetails {
		delete(v, k)
	}
	if hc, ok := v["HostConfig"].(map[string]any); ok {
		if ms, ok := hc["Mounts"].([]any); ok {
			for _, m := range ms {
				if mm, ok := m.(map[string]any); ok {
					delete(mm, "Source")
				}
			}
		}
	}
	if ns, ok := v["NetworkSettings"].(map[string]any); ok {
		delete(ns, "SandboxKey")
	}
	out, err := json.Marshal(v)
	if err != nil {
		return b
	}
	return out
}

// secretValues are the values of the execution's event's secrets, to
// hide in its bundle (none without a keyring).
func (s *Server) secretValues(ctx context.Context, x cronium.Execution) [][]byte {
	if s.cfg.Keyring == nil {
		return nil
	}
	ev, err := s.cfg.Store.Event(ctx, x.UserID, x.Event)
	if err != nil {
		return nil
	}
	var out [][]byte
	for _, name := range ev.Secrets {
		sealed, err := s.cfg.Store.Secret(ctx, x.UserID, name)
		if err != nil {
			continue
		}
		if v, err := s.cfg.Keyring.Open(sealed.KeyID, sealed.Blob, dispatch.SecretAAD(x.UserID, name)); err == nil {
			out = append(out, v)
		}
	}
	return out
}
