// Package api is Cronium's control-plane HTTP API under /v1: JSON bodies,
// bearer API keys, errors with a stable code and the offending field, and an
// OpenAPI document at /v1/openapi.json that a test keeps in step with the routes.
//
// A user sees and touches only their own events, executions and logs: anything
// else answers 404, exactly as if it did not exist. Admins see everything and
// may act for a user with ?user=NAME.
package api

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	cronium "github.com/cronium/executor"
	"github.com/cronium/executor/dispatch"
	"github.com/cronium/executor/notify"
	"github.com/cronium/executor/pool"
	"github.com/cronium/executor/schedule"
	"github.com/cronium/executor/secrets"
	"github.com/cronium/executor/store"
	"github.com/cronium/executor/strictjson"
)

//go:embed openapi.json
var openapiDoc []byte

// Dispatcher is what the API needs from the dispatcher.
type Dispatcher interface {
	Wake()
	Cancel(ctx context.Context, id, reason string) error
	Hub() *dispatch.Hub
	// Running is how many executions this node runs now.
	Running() int
	// Runs says whether this node runs the execution now.
	Runs(id string) bool
	// Self is this node as the store knows it, with its running count now.
	Self() store.Node
	// StoreDown is since when the store has not answered this node (zero: it answers).
	StoreDown() time.Time
	// CheckDebug says whether userID may debug execution id on this node
	// (kept here, not expired), and if not why; Debug opens the shell;
	// Release removes the kept sandbox.
	CheckDebug(ctx context.Context, userID int64, id string) (cronium.Execution, error)
	Debug(ctx context.Context, userID int64, id string, t cronium.Terminal) (int, error)
	Release(ctx context.Context, userID int64, id string) error
	// Inspect is the engine's own view of an execution's sandbox while it exists.
	Inspect(ctx context.Context, userID int64, id string) (json.RawMessage, error)
}

// Scheduler is told when events change.
type Scheduler interface {
	// Notify says events changed.
	Notify()
	// NextFire is when the scheduler will next fire an event, if it has it queued.
	NextFire(eventID int64) (time.Time, bool)
}

// Config configures a Server.
type Config struct {
	Store      store.API  // required
	Dispatcher Dispatcher // required
	Scheduler  Scheduler  // required
	// Tiers maps tier names to limits. Default cronium.DefaultTiers().
	Tiers map[string]cronium.Tier
	// MaxBody caps request bodies. Default 2Mi.
	MaxBody int64
	// Ready reports whether the server can take work (for /v1/ready). Default: always.
	Ready func(ctx context.Context) error
	// Logger defaults to discard.
	Logger *slog.Logger
	// Keyring seals secrets. Nil: the secrets endpoints answer 503.
	Keyring *secrets.Keyring
	// Pools are the warm pools, for GET /v1/pools. Nil: none.
	Pools *pool.Manager
	// Network are the operator's network rules events are checked against.
	Network cronium.NetworkRules
	// Packages builds events' declared packages. Nil: events with packages are refused.
	Packages Packages
	// Images admits custom images. Nil: events with an image are refused.
	Images Images
	// Channel reports whether a user may name a notification channel in
	// an event's on: actions. Nil: no channel exists.
	Channel func(user, name string) bool
	// Metrics serves GET /metrics (Prometheus text). Nil: 404.
	Metrics http.Handler
	// MetricsToken, when set, is the bearer token GET /metrics asks for
	// (scrapers have no API key). Empty: /metrics is open.
	MetricsToken string
	// Prices is the price table (its currency names costs in usage reports).
	Prices cronium.Prices
}

// Server is the HTTP handler. It is safe for concurrent use.
type Server struct {
	cfg Config
	mux *http.ServeMux
	log *slog.Logger

	closing   chan struct{} // closed by Close: streams end
	closeOnce sync.Once

	// triggers serialises saving events that trigger others, so that two
	// applies at once cannot each pass the cycle check and close a cycle.
	triggers sync.Mutex

	authMu sync.Mutex
	authed map[[32]byte]authed // by the key's SHA-256: keys the store accepted lately
}

// Close ends the log streams in progress (an http.Server's Shutdown waits
// for handlers, and a stream would never end by itself). Call it before
// Shutdown. Other requests are not affected.
func (s *Server) Close() {
	s.closeOnce.Do(func() { close(s.closing) })
}

// Route is one endpoint, listed once for the mux and for the OpenAPI test.
type Route struct {
	Method, Pattern string
	Public          bool
	handle          func(s *Server, w http.ResponseWriter, r *http.Request, u *cronium.User) error
}

// Routes lists every endpoint.
func Routes() []Route {
	return []Route{
		{"GET", "/v1/health", true, (*Server).health},
		{"GET", "/metrics", true, (*Server).metrics},
		{"GET", "/v1/ready", true, (*Server).ready},
		{"GET", "/v1/openapi.json", true, (*Server).openapi},
		{"GET", "/v1/me", false, (*Server).me},
		{"POST", "/v1/users", false, (*Server).createUser},
		{"GET", "/v1/users", false, (*Server).listUsers},
		{"GET", "/v1/users/{name}", false, (*Server).getUser},
		{"DELETE", "/v1/users/{name}", false, (*Server).deleteUser},
		{"PUT", "/v1/users/{name}/tier", false, (*Server).setTier},
		{"GET", "/v1/users/{name}/keys", false, (*Server).listKeys},
		{"POST", "/v1/users/{name}/keys", false, (*Server).createKey},
		{"DELETE", "/v1/users/{name}/keys/{id}", false, (*Server).revokeKey},
		{"GET", "/v1/audit", false, (*Server).auditLog},
		{"GET", "/v1/channels", false, (*Server).listChannels},
		{"PUT", "/v1/channels/{name}", false, (*Server).putChannel},
		{"DELETE", "/v1/channels/{name}", false, (*Server).deleteChannel},
		{"GET", "/v1/events", false, (*Server).listEvents},
		{"POST", "/v1/events", false, (*Server).createEvent},
		{"GET", "/v1/events/{name}", false, (*Server).getEvent},
		{"GET", "/v1/events/{name}/next", false, (*Server).nextRuns},
		{"PUT", "/v1/events/{name}", false, (*Server).putEvent},
		{"DELETE", "/v1/events/{name}", false, (*Server).deleteEvent},
		{"POST", "/v1/events/{name}/pause", false, (*Server).pauseEvent},
		{"POST", "/v1/events/{name}/resume", false, (*Server).resumeEvent},
		{"POST", "/v1/events/{name}/trigger", false, (*Server).triggerEvent},
		{"GET", "/v1/executions", false, (*Server).listExecutions},
		{"GET", "/v1/executions/{id}", false, (*Server).getExecution},
		{"POST", "/v1/executions/{id}/cancel", false, (*Server).cancelExecution},
		{"GET", "/v1/executions/{id}/logs", false, (*Server).logs},
		{"POST", "/v1/executions/{id}/debug", false, (*Server).debugExecution},
		{"DELETE", "/v1/executions/{id}/kept", false, (*Server).releaseKept},
		{"GET", "/v1/executions/{id}/bundle", false, (*Server).bundle},
		{"GET", "/v1/usage", false, (*Server).usage},
		{"GET", "/v1/pools", false, (*Server).listPools},
		{"GET", "/v1/debug/runtime", false, (*Server).debugRuntime},
		{"GET", "/v1/nodes", false, (*Server).listNodes},
		{"GET", "/v1/images", false, (*Server).listImages},
		{"POST", "/v1/images/build", false, (*Server).buildImage},
		{"GET", "/v1/variables", false, (*Server).listVariables},
		{"GET", "/v1/variables/{key}", false, (*Server).getVariable},
		{"PUT", "/v1/variables/{key}", false, (*Server).putVariable},
		{"DELETE", "/v1/variables/{key}", false, (*Server).deleteVariable},
		{"GET", "/v1/secrets", false, (*Server).listSecrets},
		{"PUT", "/v1/secrets/{name}", false, (*Server).putSecret},
		{"DELETE", "/v1/secrets/{name}", false, (*Server).deleteSecret},
	}
}

// New returns a Server.
func New(cfg Config) (*Server, error) {
	if cfg.Store == nil || cfg.Dispatcher == nil || cfg.Scheduler == nil {
		return nil, errors.New("api: Store, Dispatcher and Scheduler are required")
	}
	if cfg.Tiers == nil {
		cfg.Tiers = cronium.DefaultTiers()
	}
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = 2 << 20
	}
	if cfg.Ready == nil {
		cfg.Ready = func(context.Context) error { return nil }
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{cfg: cfg, mux: http.NewServeMux(), log: cfg.Logger, closing: make(chan struct{})}
	for _, rt := range Routes() {
		rt := rt
		s.mux.HandleFunc(rt.Method+" "+rt.Pattern, func(w http.ResponseWriter, r *http.Request) {
			r.Body = http.MaxBytesReader(w, r.Body, s.cfg.MaxBody)
			var u *cronium.User
			var key store.KeyInfo
			if !rt.Public {
				user, k, err := s.authenticate(r)
				if err == nil && k.Name == DashboardKeyName && !FromDashboard(r.Context()) {
					err = &Error{Status: http.StatusUnauthorized, Code: "unauthorized", Message: "this is a dashboard session's key: it works only in the dashboard; create an API key with `cronium key create USER`"}
				}
				if err != nil {
					s.fail(w, r, err)
					return
				}
				u, key = &user, k
			}
			r, note, action := withAudit(r, rt.Method+" "+rt.Pattern)
			tw := &trackingWriter{ResponseWriter: w}
			err := rt.handle(s, tw, r, u)
			if err == nil && note != nil && u != nil {
				s.audit(r, u, key, action, note)
			}
			if err != nil {
				if tw.wrote {
					// The response was under way (a client that went away):
					// nothing more can be said to it.
					s.log.Debug("response not completed", "method", r.Method, "path", r.URL.Path, "err", err)
					return
				}
				s.fail(w, r, err)
			}
		})
	}
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.fail(w, r, &Error{Status: http.StatusNotFound, Code: "not_found", Message: "no such endpoint: " + r.Method + " " + r.URL.Path + " (see /v1/openapi.json)"})
	})
	return s, nil
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// trackingWriter remembers whether a response was started.
type trackingWriter struct {
	http.ResponseWriter
	wrote bool
}

func (t *trackingWriter) WriteHeader(code int) { t.wrote = true; t.ResponseWriter.WriteHeader(code) }
func (t *trackingWriter) Write(b []byte) (int, error) {
	t.wrote = true
	return t.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection (flush, deadlines).
func (t *trackingWriter) Unwrap() http.ResponseWriter { return t.ResponseWriter }

// Flush passes through: the log streams flush as they go.
func (t *trackingWriter) Flush() {
	t.wrote = true
	if f, ok := t.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// DashboardKeyName names the API keys the dashboard makes for its
// sessions: they work only through the dashboard (see WithDashboard), so
// that a session cookie cannot be used as an API key.
const DashboardKeyName = "dashboard session"

type dashboardKey struct{}

// WithDashboard marks a request context as the dashboard's own, in-process
// call (no request from the network carries it).
func WithDashboard(ctx context.Context) context.Context {
	return context.WithValue(ctx, dashboardKey{}, true)
}

// FromDashboard says whether ctx is marked by WithDashboard.
func FromDashboard(ctx context.Context) bool {
	v, _ := ctx.Value(dashboardKey{}).(bool)
	return v
}

// Error is the JSON error body: {"error": {"code", "message", "field"}}.
type Error struct {
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}

func (e *Error) Error() string { return e.Message }

var errUnauthorized = &Error{Status: http.StatusUnauthorized, Code: "unauthorized", Message: "missing, unknown, revoked or expired API key: send Authorization: Bearer <key> (create one with `cronium key create USER`)"}

// authenticate returns the user and key of the request's API key, which
// must be known, not revoked and not expired.
func (s *Server) authenticate(r *http.Request) (cronium.User, store.KeyInfo, error) {
	key, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || key == "" {
		return cronium.User{}, store.KeyInfo{}, errUnauthorized
	}
	key = strings.TrimSpace(key)
	sum := sha256.Sum256([]byte(key))
	u, k, err := s.cfg.Store.Authenticate(r.Context(), key, time.Now())
	switch {
	case errors.Is(err, cronium.ErrNotFound):
		s.authMu.Lock()
		delete(s.authed, sum)
		s.authMu.Unlock()
		return u, k, errUnauthorized
	case err == nil:
		s.authMu.Lock()
		if s.authed == nil {
			s.authed = map[[32]byte]authed{}
		}
		s.authed[sum] = authed{u, k, time.Now()}
		s.authMu.Unlock()
		return u, k, nil
	}
	// The store does not answer: a key it accepted lately may still read
	// (what this node knows without it), never write.
	s.authMu.Lock()
	a, ok := s.authed[sum]
	s.authMu.Unlock()
	if _, down := s.storeDown(r.Context()); ok && down && r.Method == http.MethodGet && time.Since(a.at) < authWhileDown {
		return a.user, a.key, nil
	}
	return u, k, err
}

// storeDown says whether the store does not answer, and since when: as
// this node's heartbeats found, or else as a ping finds now.
func (s *Server) storeDown(ctx context.Context) (time.Time, bool) {
	if since := s.cfg.Dispatcher.StoreDown(); !since.IsZero() {
		return since, true
	}
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if s.cfg.Store.Ping(ctx) != nil {
		return time.Now(), true
	}
	return time.Time{}, false
}

// authWhileDown is how long after the store last accepted a key that key
// may still read while the store does not answer.
const authWhileDown = 10 * time.Minute

// authed is a key the store accepted, and when.
type authed struct {
	user cronium.User
	key  store.KeyInfo
	at   time.Time
}

// fail writes err as JSON, mapping error kinds to statuses in one place.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	var e *Error
	var fe *cronium.FieldError
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &e):
	case errors.As(err, &mbe):
		e = &Error{Status: http.StatusRequestEntityTooLarge, Code: "too_large", Message: fmt.Sprintf("request body is larger than %d bytes", mbe.Limit)}
	case errors.As(err, &fe):
		e = &Error{Status: http.StatusBadRequest, Code: "invalid", Message: fe.Error(), Field: fe.Field}
	case errors.Is(err, cronium.ErrInvalid):
		e = &Error{Status: http.StatusBadRequest, Code: "invalid", Message: err.Error()}
	case errors.Is(err, cronium.ErrNotFound):
		e = &Error{Status: http.StatusNotFound, Code: "not_found", Message: err.Error()}
	case errors.Is(err, cronium.ErrConflict):
		e = &Error{Status: http.StatusConflict, Code: "conflict", Message: err.Error()}
	case errors.Is(err, cronium.ErrForbidden):
		e = &Error{Status: http.StatusForbidden, Code: "forbidden", Message: err.Error()}
	case errors.Is(err, cronium.ErrUnavailable):
		e = &Error{Status: http.StatusServiceUnavailable, Code: "unavailable", Message: err.Error()}
	default:
		if since, down := s.storeDown(r.Context()); down {
			s.log.Warn("request failed: the store does not answer", "method", r.Method, "path", r.URL.Path, "err", err)
			e = &Error{Status: http.StatusServiceUnavailable, Code: "unavailable", Message: fmt.Sprintf("the store has not answered since %s: try again shortly", since.UTC().Format(time.RFC3339))}
			break
		}
		s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		e = &Error{Status: http.StatusInternalServerError, Code: "internal", Message: "internal error; the server log has the details"}
	}
	writeJSON(w, e.Status, map[string]*Error{"error": e})
}

// writeJSON encodes v first, then writes the status: a value that cannot
// be encoded is a 500 with an error body, never a 200 with half a body.
func writeJSON(w http.ResponseWriter, status int, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		status = http.StatusInternalServerError
		b, _ = json.MarshalIndent(map[string]any{"error": Error{Code: "internal", Message: "the response could not be encoded: " + err.Error()}}, "", "  ")
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, err = w.Write(append(b, '\n'))
	return err
}

// bodies decodes request bodies; a memory given as a number is told the size form.
var bodies = strictjson.Decoder{Forms: map[string]string{"resources.memory": strings.TrimPrefix(cronium.SizeForm, "want ")}}

// decode reads a JSON body strictly (see package strictjson): one JSON
// value, no trailing data, no unknown field, no key given twice, no key in
// another case than its field's. Errors name the field by its path and say
// what it wants.
func decode(r *http.Request, v any) error {
	body, err := io.ReadAll(r.Body)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return &Error{Status: http.StatusRequestTimeout, Code: "timeout", Message: "the request body did not arrive within the server's request_timeout: send it at once"}
	}
	if err != nil {
		return err // too large: a MaxBytesError
	}
	err = bodies.Decode(body, v)
	var e *strictjson.Error
	if !errors.As(err, &e) {
		return err
	}
	if e.Field == "" {
		return &Error{Status: http.StatusBadRequest, Code: "invalid", Message: "request body " + e.Problem}
	}
	return &Error{Status: http.StatusBadRequest, Code: "invalid", Field: e.Field, Message: e.Error()}
}

// owner resolves whose resources a request touches: the caller, or for an
// admin the user named by ?user=.
func (s *Server) owner(r *http.Request, u *cronium.User) (cronium.User, error) {
	name := r.URL.Query().Get("user")
	if name == "" || name == u.Name {
		return *u, nil
	}
	if !u.Admin {
		return cronium.User{}, &Error{Status: http.StatusForbidden, Code: "forbidden", Message: "only admins may act for another user (?user=)"}
	}
	return s.cfg.Store.UserByName(r.Context(), name)
}

func (s *Server) tier(u cronium.User) cronium.Tier {
	if t, ok := s.cfg.Tiers[u.Tier]; ok {
		t.Name = u.Tier
		return t
	}
	return s.cfg.Tiers["free"]
}

// ---- handlers

func (s *Server) health(w http.ResponseWriter, r *http.Request, _ *cronium.User) error {
	return writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// metrics serves the Prometheus metrics, behind the metrics token when
// one is set.
func (s *Server) metrics(w http.ResponseWriter, r *http.Request, _ *cronium.User) error {
	if s.cfg.Metrics == nil {
		return &Error{Status: http.StatusNotFound, Code: "not_found", Message: "this server exports no metrics"}
	}
	if tok := s.cfg.MetricsToken; tok != "" {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(tok)) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="cronium metrics"`)
			return &Error{Status: http.StatusUnauthorized, Code: "unauthorized", Message: "GET /metrics needs the metrics token: Authorization: Bearer <metrics.token of the server's configuration>"}
		}
	}
	s.cfg.Metrics.ServeHTTP(w, r)
	return nil
}

// debugRuntime shows the server process's own use, for operators (admins):
// goroutines, heap, resident memory and open files. A leak shows here.
func (s *Server) debugRuntime(w http.ResponseWriter, r *http.Request, u *cronium.User) error {
	if !u.Admin {
		return &Error{Status: http.StatusForbidden, Code: "forbidden", Message: "only admins see the server's runtime"}
	}
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	fds, _ := os.ReadDir("/proc/self/fd")
	var rss int64
	if b, err := os.ReadFile("/proc/self/statm"); err == nil {
		var size, res int64
		fmt.Sscan(string(b), &size, &res)
		rss = res * int64(os.Getpagesize())
	}
	return writeJSON(w, http.StatusOK, map[string]any{
		"goroutines": runtime.NumGoroutine(), "heap_bytes": m.HeapAlloc, "rss_bytes": rss, "open_files": len(fds),
		"running_executions": s.cfg.Dispatcher.Running(),
	})
}

// nodeView is a node as GET /v1/nodes shows it.
type nodeView struct {
	store.Node
	// Self marks the node that answered.
	Self bool `json:"self"`
	// HeartbeatAge is how long ago its last heartbeat was.
	HeartbeatAge string `json:"heartbeat_age"`
}

// listNodes shows the nodes on the store, for operators (admins): their
// leases, capacity and running executions, and whether this node reaches
// the store. When it does not, it shows itself alone and says so.
func (s *Server) listNodes(w http.ResponseWriter, r *http.Request, u *cronium.User) error {
	if !u.Admin {
		return &Error{Status: http.StatusForbidden, Code: "forbidden", Message: "only admins see the nodes"}
	}
	self := s.cfg.Dispatcher.Self()
	st := map[string]any{"reachable": true}
	if since := s.cfg.Dispatcher.StoreDown(); !since.IsZero() {
		st = map[string]any{"reachable": false, "unreachable_since": since.UTC()}
	}
	nodes, err := s.cfg.Store.Nodes(r.Context())
	if err != nil {
		st["reachable"], st["error"] = false, err.Error()
		nodes = []store.Node{self}
	}
	now := time.Now()
	items := []nodeView{}
	for _, n := range nodes {
		v := nodeView{Node: n, Self: n.Name == self.Name}
		if v.Self {
			v.Running = self.Running // live, not as of the last heartbeat
		}
		if !n.HeartbeatAt.IsZero() {
			v.HeartbeatAge = now.Sub(n.HeartbeatAt).Round(time.Millisecond).String()
		}
		items = append(items, v)
	}
	return writeJSON(w, http.StatusOK, map[string]any{"items": items, "self": self.Name, "store": st})
}

func (s *Server) ready(w http.ResponseWriter, r *http.Request, _ *cronium.User) error {
	if err := s.cfg.Ready(r.Context()); err != nil {
		return fmt.Errorf("%w: not ready: %v", cronium.ErrUnavailable, err)
	}
	return writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

func (s *Server) openapi(w http.ResponseWriter, r *http.Request, _ *cronium.User) error {
	w.Header().Set("Content-Type", "application/json")
	_, err := w.Write(openapiDoc)
	return err
}

func (s *Server) listPools(w http.ResponseWriter, r *http.Request, u *cronium.User) error {
	items := []pool.Stats{}
	if s.cfg.Pools != nil {
		for _, st := range s.cfg.Pools.Stats() {
			// Reuse pools are per user: a user sees the shared ones and their own.
			own := strings.HasPrefix(st.Name, fmt.Sprintf("reuse/user%d/", u.ID)) || strings.HasPrefix(st.Name, fmt.Sprintf("user/user%d/", u.ID))
			if u.Admin || strings.HasPrefix(st.Name, "prewarmed/") || own {
				items = append(items, st)
			}
		}
	}
	return writeJSON(w, http.StatusOK, map[string]any{"items": items})
}

func (s *Server) me(w http.ResponseWriter, r *http.Request, u *cronium.User) error {
	return writeJSON(w, http.StatusOK, u)
}

type createUserBody struct {
	Name  string `json:"name"`
	Tier  string `json:"tier"`
	Admin bool   `json:"admin"`
}

var userNameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9._-]{0,62}[a-z0-9])?$`)

func (s *Server) createUser(w http.ResponseWriter, r *http.Request, u *cronium.User) error {
	if !u.Admin {
		return &Error{Status: http.StatusForbidden, Code: "forbidden", Message: "only admins create users"}
	}
	var b createUserBody
	if err := decode(r, &b); err != nil {
		return err
	}
	if err := ValidateUser(b.Name, b.Tier, s.cfg.Tiers); err != nil {
		return err
	}
	nu, err := s.cfg.Store.CreateUser(r.Context(), b.Name, b.Tier, b.Admin)
	if err != nil {
		return err
	}
	noteAudit(r, nu.Name, fmt.Sprintf("tier %s, admin %v", nu.Tier, nu.Admin))
	return writeJSON(w, http.StatusCreated, nu)
}

// ValidateUser checks a new user's name and tier.
func ValidateUser(name, tier string, tiers map[string]cronium.Tier) error {
	if !userNameRE.MatchString(name) {
		return cronium.Invalid("name", name, "is not a valid user name: 1-64 lowercase letters, digits, '.', '_' or '-'")
	}
	if _, ok := tiers[tier]; !ok {
		return cronium.Invalid("tier", tier, "is not a tier: want one of "+cronium.TierNames(tiers))
	}
	return nil
}

func (s *Server) listEvents(w http.ResponseWriter, r *http.Request, u *cronium.User) error {
	var id int64
	if !u.Admin || r.URL.Query().Get("user") != "" {
		o, err := s.owner(r, u)
		if err != nil {
			return err
		}
		id = o.ID
	}
	evs, err := s.cfg.Store.Events(r.Context(), id)
	if err != nil {
		return err
	}
	stats, err := s.cfg.Store.EventStats(r.Context(), id)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, map[string]any{"items": s.views(evs, stats)})
}

// validateEvent normalises ev for its owner and checks its schedule.
func (s *Server) validateEvent(ev *cronium.Event, owner cronium.User) error {
	tier := s.tier(owner)
	if err := ev.Normalize(tier); err != nil {
		return err
	}
	profile, err := cronium.LookupProfile("profile", ev.Profile)
	if err != nil {
		return err
	}
	if _, err := s.cfg.Network.Resolve("network", ev.Network, profile, tier); err != nil {
		return err
	}
	if ev.Schedule != "" {
		if _, err := schedule.Parse(ev.Schedule, ev.Timezone); err != nil {
			return err
		}
	} else if _, err := time.LoadLocation(ev.Timezone); err != nil || ev.Timezone == "Local" {
		return cronium.Invalid("timezone", ev.Timezone, `is not an IANA time zone: want a name like "Europe/Berlin" or "UTC"`)
	}
	ev.User = owner.Name
	return nil
}

func (s *Server) saveEvent(w http.ResponseWriter, r *http.Request, u *cronium.User, name string, mustCreate bool) error {
	owner, err := s.owner(r, u)
	if err != nil {
		return err
	}
	var ev cronium.Event
	if err := decode(r, &ev); err != nil {
		return err
	}
	if name != "" {
		if ev.Name == "" {
			ev.Name = name
		} else if ev.Name != name {
			return cronium.Invalid("name", ev.Name, "differs from the name in the path "+name)
		}
	}
	ev.ID, ev.CreatedAt, ev.UpdatedAt = 0, time.Time{}, time.Time{}
	if err := s.validateEvent(&ev, owner); err != nil {
		return err
	}
	if err := s.checkSecrets(r.Context(), owner, ev.Secrets); err != nil {
		return err
	}
	if err := s.checkActions(r.Context(), owner, ev); err != nil {
		return err
	}
	old, err := s.cfg.Store.Event(r.Context(), owner.ID, ev.Name)
	switch {
	case err == nil && mustCreate:
		return fmt.Errorf("%w: event %s already exists: use PUT /v1/events/%s to update it", cronium.ErrConflict, ev.Name, ev.Name)
	case err == nil && ev.Enabled == nil && !old.IsEnabled():
		// Applying a file again does not resume a paused event unless
		// the file says enabled: true.
		paused := false
		ev.Enabled = &paused
	case err != nil && !errors.Is(err, cronium.ErrNotFound):
		return err
	}
	if r.URL.Query().Get("dry_run") == "true" {
		// Checked as an apply would be, but neither built nor stored: the
		// answer is the event as it would be saved.
		ev.User = owner.Name
		if err == nil {
			ev.ID, ev.CreatedAt, ev.UpdatedAt, ev.PackageLock, ev.ImagePinned = old.ID, old.CreatedAt, old.UpdatedAt, old.PackageLock, old.ImagePinned
		}
		return writeJSON(w, http.StatusOK, ev)
	}
	if err := s.ensurePackages(r.Context(), &ev, io.Discard); err != nil {
		return err
	}
	if err := s.admitImage(r.Context(), &ev, io.Discard); err != nil {
		return err
	}
	if len(triggers(ev.On)) > 0 {
		s.triggers.Lock()
		defer s.triggers.Unlock()
		if err := s.checkActions(r.Context(), owner, ev); err != nil { // again, under the lock
			return err
		}
	}
	created, err := s.cfg.Store.PutEvent(r.Context(), owner.ID, &ev)
	if err != nil {
		return err
	}
	s.cfg.Scheduler.Notify()
	saved, err := s.cfg.Store.Event(r.Context(), owner.ID, ev.Name)
	if err != nil {
		return err
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	return writeJSON(w, status, saved)
}

// checkSecrets refuses an event naming a secret its owner does not have:
// at apply time, not as an engine error at its first run.
func (s *Server) checkSecrets(ctx context.Context, owner cronium.User, names []string) error {
	for _, name := range names {
		_, err := s.cfg.Store.Secret(ctx, owner.ID, name)
		if errors.Is(err, cronium.ErrNotFound) {
			return cronium.Invalid("secrets", name, fmt.Sprintf("is not a secret of %s: set it first with `cronium secret set %s` (the value is read from stdin)", owner.Name, name))
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (s *Server) createEvent(w http.ResponseWriter, r *http.Request, u *cronium.User) error {
	return s.saveEvent(w, r, u, "", true)
}

func (s *Server) putEvent(w http.ResponseWriter, r *http.Request, u *cronium.User) error {
	return s.saveEvent(w, r, u, r.PathValue("name"), false)
}

func (s *Server) event(r *http.Request, u *cronium.User) (cronium.Event, cronium.User, error) {
	owner, err := s.owner(r, u)
	if err != nil {
		return cronium.Event{}, owner, err
	}
	ev, err := s.cfg.Store.Event(r.Context(), owner.ID, r.PathValue("name"))
	return ev, owner, err
}

func (s *Server) getEvent(w http.ResponseWriter, r *http.Request, u *cronium.User) error {
	ev, owner, err := s.event(r, u)
	if err != nil {
		return err
	}
	stats, err := s.cfg.Store.EventStats(r.Context(), owner.ID)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, s.views([]cronium.Event{ev}, stats)[0])
}

func (s *Server) deleteEvent(w http.ResponseWriter, r *http.Request, u *cronium.User) error {
	owner, err := s.owner(r, u)
	if err != nil {
		return err
	}
	if refs, err := s.referrers(r.Context(), owner, func(ev cronium.Event) bool { return slices.Contains(triggers(ev.On), r.PathValue("name")) }); err != nil {
		return err
	} else if len(refs) > 0 {
		return fmt.Errorf("%w: event %s is triggered by %s (on:): remove those triggers first", cronium.ErrConflict, r.PathValue("name"), strings.Join(refs, ", "))
	}
	if _, err := s.cfg.Store.DeleteEvent(r.Context(), owner.ID, r.PathValue("name")); err != nil {
		return err
	}
	s.cfg.Scheduler.Notify()
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) setEnabled(w http.ResponseWriter, r *http.Request, u *cronium.User, on bool) error {
	owner, err := s.owner(r, u)
	if err != nil {
		return err
	}
	if err := s.cfg.Store.SetEnabled(r.Context(), owner.ID, r.PathValue("name"), on); err != nil {
		return err
	}
	s.cfg.Scheduler.Notify()
	ev, err := s.cfg.Store.Event(r.Context(), owner.ID, r.PathValue("name"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, ev)
}

func (s *Server) pauseEvent(w http.ResponseWriter, r *http.Request, u *cronium.User) error {
	return s.setEnabled(w, r, u, false)
}

func (s *Server) resumeEvent(w http.ResponseWriter, r *http.Request, u *cronium.User) error {
	return s.setEnabled(w, r, u, true)
}

type triggerBody struct {
	Input json.RawMessage `json:"input"`
}

func (s *Server) triggerEvent(w http.ResponseWriter, r *http.Request, u *cronium.User) error {
	ev, owner, err := s.event(r, u)
	if err != nil {
		return err
	}
	var b triggerBody
	if r.ContentLength != 0 {
		if err := decode(r, &b); err != nil {
			return err
		}
	}
	if len(b.Input) > 0 && !json.Valid(b.Input) {
		return cronium.Invalid("input", "", "is not JSON")
	}
	if len(b.Input) > cronium.MaxInputBytes {
		return cronium.Invalid("input", "", fmt.Sprintf("is %d bytes, above the %d byte limit: nothing was queued", len(b.Input), cronium.MaxInputBytes))
	}
	if err := s.refuseOverBudget(r.Context(), owner); err != nil {
		return err
	}
	trigger := cronium.TriggerAPI
	if c := r.Header.Get("X-Cronium-Client"); c == "cli" || c == "dashboard" {
		trigger = cronium.TriggerManual // a person asked
	}
	x := cronium.Execution{EventID: ev.ID, UserID: owner.ID, Trigger: trigger, Attempt: 1, Strategy: ev.Strategy, Priority: ev.Priority, Input: b.Input,
		Reason: "waiting: queued for admission"}
	if _, err := s.cfg.Store.Enqueue(r.Context(), &x, nil); err != nil {
		return err
	}
	s.cfg.Dispatcher.Wake()
	noteAudit(r, "", "execution "+x.ID)
	got, err := s.cfg.Store.Execution(r.Context(), owner.ID, x.ID)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusAccepted, got)
}

func (s *Server) listExecutions(w http.ResponseWriter, r *http.Request, u *cronium.User) error {
	q := r.URL.Query()
	f := store.ExecutionFilter{Event: q.Get("event"), Status: cronium.Status(q.Get("status")), Before: q.Get("before")}
	if !u.Admin || q.Get("user") != "" {
		o, err := s.owner(r, u)
		if err != nil {
			return err
		}
		f.UserID = o.ID
	}
	switch f.Status {
	case "", cronium.StatusQueued, cronium.StatusRunning, cronium.StatusFinished:
	default:
		// An outcome names finished executions that ended so.
		if !slices.Contains(cronium.Outcomes, cronium.Outcome(f.Status)) {
			return cronium.Invalid("status", string(f.Status), "is not a status or outcome: want queued, running, finished, or one of "+outcomeNames())
		}
		f.Status, f.Outcome = cronium.StatusFinished, cronium.Outcome(f.Status)
	}
	switch tr := cronium.Trigger(q.Get("trigger")); tr {
	case "", cronium.TriggerSchedule, cronium.TriggerManual, cronium.TriggerAPI, cronium.TriggerRetry, cronium.TriggerChain:
		f.Trigger = tr
	default:
		return cronium.Invalid("trigger", string(tr), "is not a trigger: want schedule, manual, api, retry or chain")
	}
	for _, b := range []struct {
		name string
		to   *time.Time
	}{{"since", &f.Since}, {"until", &f.Until}} {
		v := q.Get(b.name)
		if v == "" {
			continue
		}
		if t, err := time.Parse(time.RFC3339, v); err == nil {
			*b.to = t
		} else if d, err := cronium.ParseDuration(b.name, v); err == nil {
			*b.to = time.Now().Add(-d)
		} else {
			return cronium.Invalid(b.name, v, "is not a time: want a duration ago (24h) or a time (2026-12-01T00:00:00Z)")
		}
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && !f.Since.Before(f.Until) {
		return cronium.Invalid("until", q.Get("until"), "is not after since: since is the earlier bound (since 2h, until 1h: queued between two hours and one hour ago)")
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			return cronium.Invalid("limit", v, "is out of range: want 1 to 1000")
		}
		f.Limit = n
	}
	if f.Limit == 0 {
		f.Limit = 50
	}
	xs, err := s.cfg.Store.Executions(r.Context(), f)
	if err != nil {
		return err
	}
	page := map[string]any{"items": xs}
	if xs == nil {
		page["items"] = []cronium.Execution{}
	}
	if len(xs) == f.Limit {
		page["next"] = xs[len(xs)-1].ID
	}
	return writeJSON(w, http.StatusOK, page)
}

func outcomeNames() string {
	var names []string
	for _, o := range cronium.Outcomes {
		names = append(names, string(o))
	}
	return strings.Join(names, ", ")
}

func (s *Server) execution(r *http.Request, u *cronium.User) (cronium.Execution, error) {
	var uid int64
	if !u.Admin {
		uid = u.ID
	}
	return s.cfg.Store.Execution(r.Context(), uid, r.PathValue("id"))
}

// ExecutionView is an execution as GET /v1/executions/{id} shows it: with
// the notifications its end sent, and their state.
type ExecutionView struct {
	cronium.Execution
	Notifications []notify.Delivery `json:"notifications,omitempty"`
	// Live is the latest usage sample of a running execution (taken about
	// every second), when the node answering runs it.
	Live *cronium.UsageSample `json:"live,omitempty"`
	// DebugSessions are the debug sessions opened in its kept sandbox, newest first.
	DebugSessions []store.AuditEntry `json:"debug_sessions,omitempty"`
}

func (s *Server) getExecution(w http.ResponseWriter, r *http.Request, u *cronium.User) error {
	x, err := s.execution(r, u)
	if err != nil {
		return err
	}
	ns, err := s.cfg.Store.NotificationsFor(r.Context(), x.ID)
	if err != nil {
		return err
	}
	v := ExecutionView{Execution: x, Notifications: ns}
	if x.Result != nil && x.Result.Kept != nil {
		v.DebugSessions = s.debugSessions(r.Context(), x.ID)
	}
	if x.Status == cronium.StatusRunning {
		if u, ok := s.cfg.Dispatcher.Hub().LastUsage(x.ID); ok {
			v.Live = &u
		}
	}
	return writeJSON(w, http.StatusOK, v)
}

func (s *Server) cancelExecution(w http.ResponseWriter, r *http.Request, u *cronium.User) error {
	x, err := s.execution(r, u)
	if err != nil {
		return err
	}
	if x.Status != cronium.StatusFinished {
		cerr := s.cfg.Dispatcher.Cancel(r.Context(), x.ID, "cancelled by "+u.Name)
		if cerr != nil && !errors.Is(cerr, cronium.ErrConflict) {
			return cerr
		}
		if x, err = s.execution(r, u); err != nil {
			return err
		}
		if cerr == nil {
			return writeJSON(w, http.StatusAccepted, x)
		}
		if x.Status != cronium.StatusFinished {
			return cerr
		}
		// It finished meanwhile.
	}
	return &Error{Status: http.StatusConflict, Code: "conflict", Message: fmt.Sprintf("execution %s already finished (%s): there is nothing to cancel", x.ID, x.Outcome)}
}
