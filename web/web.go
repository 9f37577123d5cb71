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
	"github.com/cronium/executor/api"
	"github.com/cronium/executor/store"
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
	// PublicURL is the dashboard's address as browsers reach it (behind a
	// proxy that rewrites Host, say): forms posted from it pass the Origin
	// check, and an https address makes cookies Secure. Empty: the
	// request's own Host (and X-Forwarded-Host and -Proto) are trusted.
	PublicURL string
}

// Handler serves the dashboard. It is safe for concurrent use.
type Handler struct {
	cfg   Config
	mux   *http.ServeMux
	log   *slog.Logger
	pages *pages
}

// Cookie names; over https they take the __Host- prefix (Secure, this
// host only, path /), so that no sibling domain can set them.
const (
	sessionCookie = "cronium_session"
	viewCookie    = "cronium_view"
	loginCookie   = "cronium_login"
)

// maxForm caps a form's body.
const maxForm = 4 << 20

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
// pass the CSRF check. A store that does not answer is a 503 page, not a
// sign-out.
func (h *Handler) handle(pattern string, fn func(h *Handler, w http.ResponseWriter, r *http.Request, s *session) error) {
	h.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		for _, name := range []string{"name", "id"} {
			if v := r.PathValue(name); v == "." || v == ".." || strings.ContainsAny(v, "/\\") {
				s, _ := h.session(r)
				h.notFound(w, r, s)
				return
			}
		}
		s, err := h.session(r)
		if err != nil {
			var ae *apiError
			switch {
			case errors.As(err, &ae) && ae.Status >= 500:
				h.render(w, r, nil, ae.Status, "error", "Unavailable", errorData{Message: ae.Error()})
			case strings.HasSuffix(r.URL.Path, "/stream") || strings.HasSuffix(r.URL.Path, ".txt"):
				http.Error(w, "signed out: sign in to the dashboard again", http.StatusUnauthorized)
			case r.Method == http.MethodGet:
				http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
			default:
				h.render(w, r, nil, http.StatusUnauthorized, "error", "Signed out", errorData{Message: "Your session ended: sign in again.", SignIn: true})
			}
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			r.Body = http.MaxBytesReader(w, r.Body, maxForm)
			if err := r.ParseForm(); err != nil {
				msg := "the form could not be read: " + err.Error()
				status := http.StatusBadRequest
				var mbe *http.MaxBytesError
				if errors.As(err, &mbe) {
					msg, status = fmt.Sprintf("the form is larger than %d MiB: nothing was saved", maxForm>>20), http.StatusRequestEntityTooLarge
				}
				h.render(w, r, s, status, "error", "Refused", errorData{Message: msg})
				return
			}
			if err := h.checkCSRF(r, s.csrf); err != nil {
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

// errNoSession is a request without a (readable) session cookie.
var errNoSession = &apiError{Status: http.StatusUnauthorized, Message: "not signed in"}

// session reads the session cookie and checks its key with the API (an
// *apiError: 401 when the key is no good, 5xx when the store does not answer).
func (h *Handler) session(r *http.Request) (*session, error) {
	c, err := r.Cookie(h.cookieName(r, sessionCookie))
	if err != nil {
		return nil, errNoSession
	}
	idText, key, ok := strings.Cut(c.Value, "~")
	id, err := strconv.ParseInt(idText, 10, 64)
	if !ok || err != nil || key == "" {
		return nil, errNoSession
	}
	s := &session{key: key, keyID: id, csrf: csrfToken(key)}
	if err := h.call(r, s, "GET", "/v1/me", nil, &s.User); err != nil {
		return nil, err
	}
	if v, err := r.Cookie(h.cookieName(r, viewCookie)); err == nil && s.User.Admin && v.Value != "" && v.Value != s.User.Name {
		s.ViewAs = v.Value
	}
	return s, nil
}

// public is the scheme and host browsers reach the dashboard at.
func (h *Handler) public(r *http.Request) (scheme, host string) {
	if h.cfg.PublicURL != "" {
		if u, err := url.Parse(h.cfg.PublicURL); err == nil && u.Host != "" {
			return u.Scheme, u.Host
		}
	}
	scheme, host = "http", r.Host
	if r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https") {
		scheme = "https"
	}
	if fh := r.Header.Get("X-Forwarded-Host"); fh != "" {
		host = strings.TrimSpace(strings.Split(fh, ",")[0])
	}
	return scheme, host
}

// secure says whether cookies are Secure: over TLS, behind a proxy that
// says https, or with an https PublicURL.
func (h *Handler) secure(r *http.Request) bool {
	scheme, _ := h.public(r)
	return scheme == "https"
}

func (h *Handler) cookieName(r *http.Request, base string) string {
	if h.secure(r) {
		return "__Host-" + base
	}
	return base
}

// checkCSRF refuses a state-changing request without the session's token
// (a form field "csrf" or an X-CSRF-Token header) or from another origin
// than the dashboard's own.
func (h *Handler) checkCSRF(r *http.Request, want string) error {
	if o := r.Header.Get("Origin"); o != "" {
		scheme, host := h.public(r)
		u, err := url.Parse(o)
		if err != nil || o == "null" || u.Host != host || u.Scheme != scheme {
			return fmt.Errorf("this request came from another site (%s, not %s://%s): refused (behind a proxy, set dashboard.public_url)", o, scheme, host)
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
	req, err := http.NewRequestWithContext(api.WithDashboard(r.Context()), method, path, rd)
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
	if rec.status >= 300 && rec.status < 400 {
		// The API redirects only paths it does not serve (like "..").
		return &apiError{Status: http.StatusNotFound, Message: "not found"}
	}
	if rec.status >= 400 {
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
	SignIn   bool // offer to sign in again
}

// ---- sign-in

func randomToken() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func (h *Handler) setCookie(w http.ResponseWriter, r *http.Request, base, value string, maxAge time.Duration) {
	c := &http.Cookie{Name: h.cookieName(r, base), Value: value, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: h.secure(r)}
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
	h.render(w, r, nil, http.StatusOK, "login", "Sign in", loginData{Token: h.loginToken(w, r), Next: safeNext(r.URL.Query().Get("next"))})
}

// loginToken is the sign-in form's CSRF token: the one in its cookie if
// there is one (two sign-in tabs share it), else a new one.
func (h *Handler) loginToken(w http.ResponseWriter, r *http.Request) string {
	if c, err := r.Cookie(h.cookieName(r, loginCookie)); err == nil && len(c.Value) == 32 {
		if _, err := hex.DecodeString(c.Value); err == nil {
			return c.Value
		}
	}
	tok := randomToken()
	h.setCookie(w, r, loginCookie, tok, time.Hour)
	return tok
}

// safeNext keeps a redirect after sign-in on this site: a path, with no
// host, no control characters (browsers drop tabs and newlines, turning
// "/\t/evil" into "//evil") and no backslash.
func safeNext(n string) string {
	for _, c := range n {
		if c < 0x20 || c == 0x7f || c == '\\' {
			return "/events"
		}
	}
	u, err := url.Parse(n)
	if err != nil || !strings.HasPrefix(n, "/") || strings.HasPrefix(n, "//") || u.Scheme != "" || u.Host != "" {
		return "/events"
	}
	return n
}

// login exchanges an API key for a session key of the same user, which
// expires no later than the key signed in with.
func (h *Handler) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	next := safeNext(r.PostFormValue("next"))
	c, err := r.Cookie(h.cookieName(r, loginCookie))
	if err != nil || c.Value == "" || subtle.ConstantTimeCompare([]byte(c.Value), []byte(r.PostFormValue("csrf"))) != 1 {
		h.render(w, r, nil, http.StatusForbidden, "error", "Refused", errorData{Message: "this sign-in form has no valid CSRF token (it may be old or from another site): open the sign-in page again", SignIn: true})
		return
	}
	again := func(status int, msg string) {
		h.render(w, r, nil, status, "login", "Sign in", loginData{Token: h.loginToken(w, r), Next: next, Error: msg})
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
			again(http.StatusUnauthorized, "api key: unknown, revoked or expired: check it, or ask an admin for one (`cronium key create USER`)")
			return
		}
		again(http.StatusServiceUnavailable, "signing in failed: "+err.Error())
		return
	}
	ttl := h.cfg.SessionTTL
	var keys []store.KeyInfo
	var page struct {
		Items []store.KeyInfo `json:"items"`
	}
	if err := h.callKey(r, key, "GET", "/v1/users/"+url.PathEscape(u.Name)+"/keys", nil, &page); err == nil {
		keys = page.Items
	}
	for _, k := range keys {
		// The key signed in with (by its prefix; the earliest expiry of
		// any that share it): the session does not outlive it.
		if k.Prefix != "" && strings.HasPrefix(key, k.Prefix) && k.ExpiresAt != nil {
			ttl = min(ttl, time.Until(*k.ExpiresAt))
		}
	}
	if ttl < time.Minute {
		again(http.StatusUnauthorized, "api key: expires within a minute: use a key that lasts longer")
		return
	}
	var created struct {
		Key  string `json:"key"`
		Info struct {
			ID int64 `json:"id"`
		} `json:"info"`
	}
	life := strconv.Itoa(int(ttl.Seconds())) + "s"
	if err := h.callKey(r, key, "POST", "/v1/users/"+url.PathEscape(u.Name)+"/keys", map[string]string{"name": api.DashboardKeyName, "expires_in": life}, &created); err != nil {
		again(http.StatusServiceUnavailable, "signing in failed: "+err.Error())
		return
	}
	h.setCookie(w, r, loginCookie, "", -1)
	h.setCookie(w, r, viewCookie, "", -1)
	h.setCookie(w, r, sessionCookie, strconv.FormatInt(created.Info.ID, 10)+"~"+created.Key, ttl)
	http.Redirect(w, r, next, http.StatusSeeOther)
}

// logout revokes the session's key (the one the cookie names, if it is
// this session's) and drops the cookies, whatever the store says.
func (h *Handler) logout(w http.ResponseWriter, r *http.Request, s *session) error {
	h.setCookie(w, r, sessionCookie, "", -1)
	h.setCookie(w, r, viewCookie, "", -1)
	var page struct {
		Items []store.KeyInfo `json:"items"`
	}
	path := "/v1/users/" + url.PathEscape(s.User.Name) + "/keys"
	err := h.callKey(r, s.key, "GET", path, nil, &page)
	if err == nil {
		err = errors.New("the session's key was not found")
		for _, k := range page.Items {
			if k.ID == s.keyID && k.Name == api.DashboardKeyName && k.Prefix != "" && strings.HasPrefix(s.key, k.Prefix) {
				err = h.callKey(r, s.key, "DELETE", path+"/"+strconv.FormatInt(k.ID, 10), nil, nil)
				break
			}
		}
	}
	if err != nil {
		h.log.Warn("sign-out: the session key was not revoked", "user", s.User.Name, "key_id", s.keyID, "err", err)
		h.render(w, r, nil, http.StatusOK, "error", "Signed out here", errorData{SignIn: true,
			Message: fmt.Sprintf("This browser is signed out, but the session's key (id %d) could not be revoked (%v): revoke it with `cronium key revoke %s %d`.", s.keyID, err, s.User.Name, s.keyID)})
		return nil
	}
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
		h.setCookie(w, r, viewCookie, "", -1)
		http.Redirect(w, r, "/events", http.StatusSeeOther)
		return nil
	}
	var u cronium.User
	if err := h.callKey(r, s.key, "GET", "/v1/users/"+url.PathEscape(name), nil, &u); err != nil {
		return err
	}
	h.setCookie(w, r, viewCookie, u.Name, 0)
	http.Redirect(w, r, "/events", http.StatusSeeOther)
	return nil
}
