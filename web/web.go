// Package web is Cronium's dashboard: server-rendered pages at / in
// `cronium serve`, embedded in the binary (templates, one stylesheet, one
// small script; no build step, no CDN).
//
// The dashboard is an API client that runs in-process: every page reads
// and every form writes through the API's own handler with the signed-in
// user's session key, so the API's validation, ownership rules (another
// user's event or execution is not found), audit log and errors apply
// unchanged.
//
// Sign-in exchanges an API key for a session: a new API key of the user's
// own, named "dashboard session" and expiring after SessionTTL, kept in an
// HttpOnly, SameSite=Strict cookie (Secure over TLS). Sign-out revokes it.
// Every state-changing request carries a CSRF token derived from the
// session key, and a cross-origin Origin header is refused.
package web

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	cronium "github.com/cronium/executor"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Config configures a Handler.
type Config struct {
	// API is the /v1 API handler (required): the dashboard reads and
	// writes through it.
	API http.Handler
	// Logger defaults to discard.
	Logger *slog.Logger
	// SessionTTL is how long a sign-in lasts. Default 12h.
	SessionTTL time.Duration
}

// Handler serves the dashboard. It is safe for concurrent use.
type Handler struct {
	cfg   Config
	mux   *http.ServeMux
	log   *slog.Logger
	pages *pages
}

// Cookie names.
const (
	sessionCookie = "cronium_session"
	viewCookie    = "cronium_view"
	loginCookie   = "cronium_login"
)

// New returns a Handler.
func New(cfg Config) (*Handler, error) {
	if cfg.API == nil {
		return nil, errors.New("web: API is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.SessionTTL <= 0 {
		cfg.SessionTTL = 12 * time.Hour
	}
	p, err := parsePages()
	if err != nil {
		return nil, err
	}
	h := &Handler{cfg: cfg, mux: http.NewServeMux(), log: cfg.Logger, pages: p}
	static, _ := fs.Sub(staticFS, "static")
	files := http.FileServerFS(static)
	h.mux.Handle("GET /static/", http.StripPrefix("/static/", cacheFor(time.Hour, files)))
	h.mux.HandleFunc("GET /login", h.loginPage)
	h.mux.HandleFunc("POST /login", h.login)
	h.handle("POST /logout", (*Handler).logout)
	h.handle("GET /{$}", func(h *Handler, w http.ResponseWriter, r *http.Request, s *session) error {
		http.Redirect(w, r, "/events", http.StatusSeeOther)
		return nil
	})
	h.handle("GET /events", (*Handler).eventsPage)
	h.handle("GET /events/new", (*Handler).newEventPage)
	h.handle("POST /events/new", (*Handler).createEvent)
	h.handle("GET /events/{name}", (*Handler).eventPage)
	h.handle("POST /events/{name}", (*Handler).saveEvent)
	h.handle("POST /events/{name}/trigger", (*Handler).triggerEvent)
	h.handle("POST /events/{name}/pause", (*Handler).pauseEvent)
	h.handle("POST /events/{name}/resume", (*Handler).resumeEvent)
	h.handle("GET /events/{name}/delete", (*Handler).deleteEventPage)
	h.handle("POST /events/{name}/delete", (*Handler).deleteEvent)
	h.handle("GET /executions", (*Handler).executionsPage)
	h.handle("GET /executions/{id}", (*Handler).executionPage)
	h.handle("POST /executions/{id}/cancel", (*Handler).cancelExecution)
	h.handle("GET /executions/{id}/stream", (*Handler).streamLogs)
	h.handle("GET /executions/{id}/logs.txt", (*Handler).logsText)
	h.handle("GET /usage", (*Handler).usagePage)
	h.handle("GET /users", (*Handler).usersPage)
	h.handle("POST /view", (*Handler).viewAs)
	h.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s, _ := h.session(r)
		h.notFound(w, r, s)
	})
	return h, nil
}

// ServeHTTP implements http.Handler: security headers on every answer.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("X-Frame-Options", "DENY")
	hd.Set("Referrer-Policy", "same-origin")
	h.mux.ServeHTTP(w, r)
}

func cacheFor(d time.Duration, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", fmt.Sprintf("private, max-age=%d", int(d.Seconds())))
		next.ServeHTTP(w, r)
	})
}

// handle routes a page that needs a session: without one, GETs go to the
// sign-in page and other methods answer 401; state-changing requests must
// pass the CSRF check.
func (h *Handler) handle(pattern string, fn func(h *Handler, w http.ResponseWriter, r *http.Request, s *session) error) {
	h.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		s, err := h.session(r)
		if err != nil {
			if r.Method == http.MethodGet {
				http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
				return
			}
			h.render(w, r, nil, http.StatusUnauthorized, "error", "Signed out", errorData{Message: "Your session ended: sign in again."})
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			if err := checkCSRF(r, s.csrf); err != nil {
				h.render(w, r, s, http.StatusForbidden, "error", "Refused", errorData{Message: err.Error()})
				return
			}
		}
		s.start = start
		if err := fn(h, w, r, s); err != nil {
			h.fail(w, r, s, err)
		}
	})
}

// session is a signed-in user.
type session struct {
	key   string
	keyID int64
	User  cronium.User // who signed in
	// viewAs is the user an admin looks at (empty: their own view).
	ViewAs string
	csrf   string
	start  time.Time
}

// Name is whose view this is.
func (s *session) Name() string {
	if s.ViewAs != "" {
		return s.ViewAs
	}
	return s.User.Name
}

func csrfToken(key string) string {
	sum := sha256.Sum256([]byte("cronium-dashboard-csrf\x00" + key))
	return hex.EncodeToString(sum[:16])
}

// session reads the session cookie and checks its key with the API.
func (h *Handler) session(r *http.Request) (*session, error) {
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return nil, err
	}
	idText, key, ok := strings.Cut(c.Value, "~")
	id, err := strconv.ParseInt(idText, 10, 64)
	if !ok || err != nil || key == "" {
		return nil, errors.New("malformed session cookie")
	}
	s := &session{key: key, keyID: id, csrf: csrfToken(key)}
	if err := h.call(r, s, "GET", "/v1/me", nil, &s.User); err != nil {
		return nil, err
	}
	if v, err := r.Cookie(viewCookie); err == nil && s.User.Admin && v.Value != "" && v.Value != s.User.Name {
		s.ViewAs = v.Value
	}
	return s, nil
}

// checkCSRF refuses a state-changing request without the session's token
// (a form field "csrf" or an X-CSRF-Token header) or from another origin.
func checkCSRF(r *http.Request, want string) error {
	if o := r.Header.Get("Origin"); o != "" && o != "null" {
		u, err := url.Parse(o)
		if err != nil || u.Host != r.Host {
			return fmt.Errorf("this request came from another site (%s): refused", o)
		}
	}
	got := r.Header.Get("X-CSRF-Token")
	if got == "" {
		got = r.PostFormValue("csrf")
	}
	if got == "" || subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1 {
		return errors.New("this form has no valid CSRF token (it may be from an old page or another site): reload the page and try again")
	}
	return nil
}

// apiError is an error answer of the API.
type apiError struct {
	Status  int
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field"`
}

func (e *apiError) Error() string {
	if e.Field != "" && !strings.Contains(e.Message, e.Field) {
		return e.Field + ": " + e.Message
	}
	return e.Message
}

// recorder is the response of an in-process API call.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (rc *recorder) Header() http.Header { return rc.header }
func (rc *recorder) WriteHeader(code int) {
	if rc.status == 0 {
		rc.status = code
	}
}
func (rc *recorder) Write(b []byte) (int, error) {
	rc.WriteHeader(http.StatusOK)
	return rc.body.Write(b)
}

// call makes an API request in-process as the session's user (for an
// admin, with ?user= naming whose view it is), decoding a JSON answer into
// out; an error answer is an *apiError.
func (h *Handler) call(r *http.Request, s *session, method, path string, body, out any) error {
	if s.User.Admin {
		// An admin's view is one user's: their own, or the one they view as
		// (without ?user= an admin's lists hold everyone's).
		sep := "?"
		if strings.Contains(path, "?") {
			sep = "&"
		}
		path += sep + "user=" + url.QueryEscape(s.Name())
	}
	return h.callKey(r, s.key, method, path, body, out)
}

func (h *Handler) callKey(r *http.Request, key, method, path string, body, out any) error {
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case json.RawMessage:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			return fmt.Errorf("encode the request to %s: %w", path, err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequestWithContext(r.Context(), method, path, rd)
	if err != nil {
		return fmt.Errorf("request %s: %w", path, err)
	}
	req.RemoteAddr = r.RemoteAddr
	req.Host = r.Host
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("User-Agent", "cronium-dashboard ("+r.UserAgent()+")")
	req.Header.Set("X-Cronium-Client", "dashboard") // a trigger from here is a person's (manual)
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	rec := &recorder{header: http.Header{}}
	h.cfg.API.ServeHTTP(rec, req)
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	if rec.status >= 300 {
		var e struct {
			Error apiError `json:"error"`
		}
		if err := json.Unmarshal(rec.body.Bytes(), &e); err != nil || e.Error.Message == "" {
			e.Error = apiError{Code: "internal", Message: fmt.Sprintf("%s %s answered %d", method, path, rec.status)}
		}
		e.Error.Status = rec.status
		return &e.Error
	}
	if out != nil && rec.body.Len() > 0 {
		if err := json.Unmarshal(rec.body.Bytes(), out); err != nil {
			return fmt.Errorf("decode the answer of %s %s: %w", method, path, err)
		}
	}
	return nil
}

// fail renders an error page: the API's status and message (a 404 is the
// not-found page, whoever owns the thing).
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, s *session, err error) {
	var ae *apiError
	switch {
	case errors.As(err, &ae) && ae.Status == http.StatusNotFound:
		h.notFound(w, r, s)
	case errors.As(err, &ae) && ae.Status < 500:
		h.render(w, r, s, ae.Status, "error", "Refused", errorData{Message: ae.Error()})
	case errors.As(err, &ae):
		h.render(w, r, s, ae.Status, "error", "Unavailable", errorData{Message: ae.Error()})
	default:
		h.log.Error("dashboard page failed", "method", r.Method, "path", r.URL.Path, "err", err)
		h.render(w, r, s, http.StatusInternalServerError, "error", "Error", errorData{Message: "internal error; the server log has the details"})
	}
}

func (h *Handler) notFound(w http.ResponseWriter, r *http.Request, s *session) {
	h.render(w, r, s, http.StatusNotFound, "error", "Not found", errorData{Message: "There is nothing here, or it is not yours to see.", NotFound: true})
}

// errorData is the error page's.
type errorData struct {
	Message  string
	NotFound bool
}

// ---- sign-in

func randomToken() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func secure(r *http.Request) bool { return r.TLS != nil }

func setCookie(w http.ResponseWriter, r *http.Request, name, value string, maxAge time.Duration) {
	c := &http.Cookie{Name: name, Value: value, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: secure(r)}
	switch {
	case maxAge < 0:
		c.MaxAge = -1
	case maxAge > 0:
		c.MaxAge = int(maxAge.Seconds())
		c.Expires = time.Now().Add(maxAge)
	}
	http.SetCookie(w, c)
}

// loginData is the sign-in page's.
type loginData struct {
	Token, Next, Error string
}

func (h *Handler) loginPage(w http.ResponseWriter, r *http.Request) {
	if _, err := h.session(r); err == nil {
		http.Redirect(w, r, safeNext(r.URL.Query().Get("next")), http.StatusSeeOther)
		return
	}
	tok := randomToken()
	setCookie(w, r, loginCookie, tok, 30*time.Minute)
	h.render(w, r, nil, http.StatusOK, "login", "Sign in", loginData{Token: tok, Next: safeNext(r.URL.Query().Get("next"))})
}

// safeNext keeps a redirect after sign-in on this site.
func safeNext(n string) string {
	if !strings.HasPrefix(n, "/") || strings.HasPrefix(n, "//") || strings.HasPrefix(n, "/\\") || strings.ContainsAny(n, "\r\n") {
		return "/events"
	}
	return n
}

// login exchanges an API key for a session key of the same user.
func (h *Handler) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	next := safeNext(r.PostFormValue("next"))
	c, err := r.Cookie(loginCookie)
	if err != nil || c.Value == "" || subtle.ConstantTimeCompare([]byte(c.Value), []byte(r.PostFormValue("csrf"))) != 1 {
		h.render(w, r, nil, http.StatusForbidden, "error", "Refused", errorData{Message: "this sign-in form has no valid CSRF token (it may be old or from another site): open the sign-in page again"})
		return
	}
	again := func(status int, msg string) {
		tok := randomToken()
		setCookie(w, r, loginCookie, tok, 30*time.Minute)
		h.render(w, r, nil, status, "login", "Sign in", loginData{Token: tok, Next: next, Error: msg})
	}
	key := strings.TrimSpace(r.PostFormValue("key"))
	if key == "" {
		again(http.StatusBadRequest, "api key: is required: paste a key from `cronium key create USER`")
		return
	}
	var u cronium.User
	if err := h.callKey(r, key, "GET", "/v1/me", nil, &u); err != nil {
		var ae *apiError
		if errors.As(err, &ae) && ae.Status == http.StatusUnauthorized {
			again(http.StatusUnauthorized, "api key: unknown, revoked or expired: check it, or create one with `cronium key create "+"USER`")
			return
		}
		again(http.StatusServiceUnavailable, "signing in failed: "+err.Error())
		return
	}
	var created struct {
		Key  string `json:"key"`
		Info struct {
			ID int64 `json:"id"`
		} `json:"info"`
	}
	life := strconv.Itoa(int(h.cfg.SessionTTL.Seconds())) + "s"
	if err := h.callKey(r, key, "POST", "/v1/users/"+url.PathEscape(u.Name)+"/keys", map[string]string{"name": "dashboard session", "expires_in": life}, &created); err != nil {
		again(http.StatusServiceUnavailable, "signing in failed: "+err.Error())
		return
	}
	setCookie(w, r, loginCookie, "", -1)
	setCookie(w, r, viewCookie, "", -1)
	setCookie(w, r, sessionCookie, strconv.FormatInt(created.Info.ID, 10)+"~"+created.Key, h.cfg.SessionTTL)
	http.Redirect(w, r, next, http.StatusSeeOther)
}

// logout revokes the session's key and drops the cookies.
func (h *Handler) logout(w http.ResponseWriter, r *http.Request, s *session) error {
	if err := h.callKey(r, s.key, "DELETE", "/v1/users/"+url.PathEscape(s.User.Name)+"/keys/"+strconv.FormatInt(s.keyID, 10), nil, nil); err != nil {
		return err
	}
	setCookie(w, r, sessionCookie, "", -1)
	setCookie(w, r, viewCookie, "", -1)
	http.Redirect(w, r, "/login", http.StatusSeeOther)
	return nil
}

// viewAs lets an admin look at the dashboard as another user (empty: their own).
func (h *Handler) viewAs(w http.ResponseWriter, r *http.Request, s *session) error {
	name := r.PostFormValue("user")
	if !s.User.Admin {
		return &apiError{Status: http.StatusForbidden, Message: "only admins view the dashboard as another user"}
	}
	if name == "" || name == s.User.Name {
		setCookie(w, r, viewCookie, "", -1)
		http.Redirect(w, r, "/events", http.StatusSeeOther)
		return nil
	}
	var u cronium.User
	if err := h.callKey(r, s.key, "GET", "/v1/users/"+url.PathEscape(name), nil, &u); err != nil {
		return err
	}
	setCookie(w, r, viewCookie, u.Name, 0)
	http.Redirect(w, r, "/events", http.StatusSeeOther)
	return nil
}
