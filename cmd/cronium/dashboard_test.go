package main

import (
	"bufio"
	"bytes"
	"fmt"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	cronium "github.com/cronium/executor"
	"github.com/cronium/executor/internal/browsertest"
	"github.com/cronium/executor/store"
)

// screenshotDir is where the browser tests write their screenshots
// (.ci/run keeps them): $CRONIUM_SCREENSHOTS, or artifacts/screenshots at
// the top of the repository.
func screenshotDir() string {
	if d := os.Getenv("CRONIUM_SCREENSHOTS"); d != "" {
		return d
	}
	abs, _ := filepath.Abs(filepath.Join("..", "..", "artifacts", "screenshots"))
	return abs
}

// Screen sizes every main page is checked and photographed at.
var screens = []struct {
	name          string
	width, height int
}{{"desktop", 1280, 800}, {"phone", 390, 844}}

// dash drives one tab against one server.
type dash struct {
	t   testing.TB
	s   *server
	tab *browsertest.Tab
}

// eval runs JavaScript in the page and returns its value.
func eval[T any](d *dash, js string) T {
	d.t.Helper()
	v, err := browsertest.RunValue(d.tab, chromedp.Evaluate[T](js))
	if err != nil {
		d.t.Fatalf("evaluate %s: %v", js, err)
	}
	return v
}

// waitFor polls a JavaScript condition (across navigations) until it holds
// on a loaded page: an element may show before the rest of its page is
// parsed and its script has run.
func (d *dash) waitFor(what, js string, timeout time.Duration) {
	d.t.Helper()
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		ok, err := browsertest.RunValue(d.tab, chromedp.Evaluate[bool](`document.readyState === "complete" && (`+js+`)`))
		if err == nil && ok {
			return
		}
		last = err
		time.Sleep(100 * time.Millisecond)
	}
	html, _ := browsertest.RunValue(d.tab, chromedp.Evaluate[string](`document.location.href + "\n" + (document.querySelector("main") || document.body).innerText`))
	d.t.Fatalf("%s: not within %v (last error %v); the page:\n%s", what, timeout, last, html)
}

// open loads a path and waits for its main element.
func (d *dash) open(path string) {
	d.t.Helper()
	if err := d.tab.Run(chromedp.Navigate(d.s.url + path)); err != nil {
		d.t.Fatalf("open %s: %v", path, err)
	}
	d.waitFor("the page "+path+" loads", `!!document.querySelector("main")`, 20*time.Second)
}

// submit submits a form as a person would (its submit button).
func (d *dash) submit(form string) {
	d.t.Helper()
	eval[bool](d, `(() => { const f = document.querySelector(`+jsString(form)+`); f.requestSubmit(); return true })()`)
}

// setValue fills a field.
func (d *dash) setValue(sel, v string) {
	d.t.Helper()
	eval[bool](d, `(() => { const f = document.querySelector(`+jsString(sel)+`); f.value = `+jsString(v)+`; f.dispatchEvent(new Event("input")); return true })()`)
}

func (d *dash) text(sel string) string {
	d.t.Helper()
	return eval[string](d, `(document.querySelector(`+jsString(sel)+`) || {innerText: ""}).innerText`)
}

func jsString(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`, "\n", `\n`).Replace(s) + "'"
}

// check photographs the page at both sizes and runs the accessibility
// check on each.
func (d *dash) check(name string) {
	d.t.Helper()
	for _, sc := range screens {
		d.tab.Screenshot(d.t, screenshotDir(), name+"-"+sc.name, sc.width, sc.height)
		d.tab.AssertAccessible(d.t, name+" at "+sc.name)
		if sc.width < 600 {
			// Nothing may stick out sideways on a phone (tables scroll in their own box).
			if w := eval[float64](d, `document.documentElement.scrollWidth`); w > float64(sc.width)+1 {
				d.t.Errorf("%s on a phone is %v px wide, more than the %d px screen", name, w, sc.width)
			}
		}
	}
	if err := d.tab.SetViewport(1280, 800); err != nil {
		d.t.Fatal(err)
	}
}

// expectStatus accepts the browser's log line for an error page the test
// asked for (the page's own HTTP status), and only that: every other
// problem fails the test. The problems are then forgotten.
func (d *dash) expectStatus(status int, path string) {
	d.t.Helper()
	want := fmt.Sprintf("status of %d", status)
	for _, p := range d.tab.Problems() {
		if !strings.Contains(p, want) || !strings.Contains(p, path+")") {
			d.t.Errorf("a problem on the page (expected only its %d for %s): %s", status, path, p)
		}
	}
	d.tab.ResetProblems()
}

func (d *dash) signIn(key string) {
	d.t.Helper()
	d.open("/events")
	d.waitFor("the sign-in page", `location.pathname === "/login"`, 10*time.Second)
	d.setValue("#key", key)
	d.submit("main form")
	d.waitFor("signed in, the events page", `location.pathname === "/events" && document.querySelector("h1").innerText === "Events"`, 20*time.Second)
}

// TestDashboardInARealBrowser drives the dashboard in headless Chromium
// against a real server with real sandboxes: sign in, create an event from
// YAML (a bad one first), trigger it, watch its logs arrive live, see its
// outcome and usage, cancel a long run, another user's execution is not
// found, sign out. Pages are photographed at both screen sizes and checked
// with axe-core; no page may log an error or open a dialog.
func TestDashboardInARealBrowser(t *testing.T) {
	s := newServer(t, 4)
	s.start()
	ada := s.user("ada", "pro")
	bob := s.user("bob", "pro")
	b := browsertest.New(t)
	d := &dash{t: t, s: s, tab: b.Tab(t)}

	d.open("/events")
	d.waitFor("the sign-in page", `location.pathname === "/login"`, 10*time.Second)
	d.check("login")
	d.setValue("#key", "crn_not-a-key")
	d.submit("main form")
	d.waitFor("a wrong key is refused", `!!document.querySelector("#key-error")`, 10*time.Second)
	if msg := d.text("#key-error"); !strings.Contains(msg, "api key") {
		t.Errorf("the error for a wrong key: %q", msg)
	}
	d.expectStatus(401, "/login")
	d.signIn(ada)
	d.check("events-empty")
	d.tab.AssertClean(t)

	// A bad event: the API's field-named error, shown inline; nothing saved.
	d.open("/events/new")
	d.setValue("#yaml", "name: ticker\nlanguage: bash\nscript: echo hi\nresources:\n  memory: 12\n")
	d.submit("main form")
	d.waitFor("the field-named error", `!!document.querySelector("#yaml-error")`, 10*time.Second)
	if msg := d.text("#yaml-error"); !strings.Contains(msg, "resources.memory") || !strings.Contains(msg, "512Mi") {
		t.Errorf("the error of a bad memory size: %q, want it to name resources.memory and the form", msg)
	}
	if v := eval[string](d, `document.querySelector("#yaml").value`); !strings.Contains(v, "memory: 12") {
		t.Errorf("the form lost what was typed: %q", v)
	}
	if eval[string](d, `document.querySelector("#yaml").getAttribute("aria-invalid")`) != "true" {
		t.Error("the field with the error is not marked aria-invalid")
	}
	d.check("new-event-error")
	d.expectStatus(400, "/events/new")

	// A good one, whose output tries to inject markup.
	script := `echo '<script>alert("logs")</script><img src=x onerror=alert(2)>'
echo '</pre><b id="injected">bold</b>' >&2
for i in $(seq 1 12); do echo "tick $i"; sleep 0.5; done
echo '::cronium-output::{"html": "<script>alert(5)</script> & more"}'`
	d.setValue("#yaml", "name: ticker\nlanguage: bash\ndata_mode: stdio\nenv:\n  GREETING: '</textarea><img src=x onerror=alert(3)>'\nschedule: \"*/5 * * * *\"\ntimezone: Europe/Berlin\nscript: |\n"+indent(script)+"\nresources:\n  memory: 64Mi\n")
	d.submit("main form")
	d.waitFor("the new event's page", `location.pathname === "/events/ticker"`, 15*time.Second)
	if st := d.text("#event-state"); st != "scheduled" {
		t.Errorf("the new event's state: %q", st)
	}
	if v := eval[string](d, `document.querySelector("#yaml").value`); !strings.Contains(v, "</textarea><img src=x onerror=alert(3)>") {
		t.Errorf("the definition's YAML lost or changed the env value:\n%s", v)
	}
	d.check("event")

	// Trigger it with an input, and watch the logs arrive on the open page.
	d.setValue("#input", `{"who": "<b>ada</b>"}`)
	d.submit("#trigger")
	d.waitFor("the execution page", `location.pathname.startsWith("/executions/")`, 15*time.Second)
	id := strings.TrimPrefix(eval[string](d, `location.pathname`), "/executions/")
	eval[bool](d, `window.sameDocument = true`)
	d.waitFor("a first log line, live", `document.querySelector("#logs").innerText.includes("tick 2")`, 60*time.Second)
	first := d.text("#logs")
	if strings.Contains(first, "tick 12") {
		t.Fatalf("the run was over before the page showed it: %q", first)
	}
	d.waitFor("more log lines on the same page", `window.sameDocument === true && document.querySelector("#logs").innerText.includes("tick 6")`, 30*time.Second)
	if n := eval[int](d, `document.querySelectorAll("#logs script, #logs img, #injected").length`); n != 0 {
		t.Errorf("live log text became %d elements", n)
	}
	if live := d.text("#logs"); !strings.Contains(live, `<script>alert("logs")</script>`) {
		t.Errorf("the live logs lack the markup as text:\n%s", live)
	}
	d.waitFor("live usage while it runs", `!!document.querySelector('#usage li[data-key="memory"] .used')`, 20*time.Second)
	d.check("execution-running")
	// The end reloads the page with the result.
	d.waitFor("the outcome", `document.querySelector("#status").innerText === "succeeded"`, 60*time.Second)
	logs := d.text("#logs")
	for _, want := range []string{"tick 1\n", "tick 12\n", `<script>alert("logs")</script>`, `</pre><b id="injected">bold</b>`} {
		if !strings.Contains(logs, want) {
			t.Errorf("the logs lack %q:\n%s", want, logs)
		}
	}
	if n := eval[int](d, `document.querySelectorAll("#logs script, #logs img, #injected").length`); n != 0 {
		t.Errorf("log text became %d elements", n)
	}
	for _, key := range []string{"memory", "cpu", "pids", "output", "time"} {
		if d.text(`#usage li[data-key="`+key+`"] .used`) == "" {
			t.Errorf("no %s usage against its limit", key)
		}
	}
	if lim := d.text(`#usage li[data-key="memory"] .limit`); lim != "64.0 MiB" {
		t.Errorf("the memory limit shown: %q, want 64.0 MiB", lim)
	}
	if out := d.text("#output"); !strings.Contains(out, `"<script>alert(5)</script> & more"`) {
		t.Errorf("the output is not shown as the script set it: %q", out)
	}
	if n := eval[int](d, `document.querySelectorAll("#output *").length`); n != 0 {
		t.Errorf("the output became %d elements", n)
	}
	// The whole log, as a download.
	whole, err := browsertest.RunValue(d.tab, chromedp.Evaluate[string](`fetch("/executions/`+id+`/logs.txt").then(r => r.status + " " + r.headers.get("Content-Type"))`, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatal(err)
	}
	body, err := browsertest.RunValue(d.tab, chromedp.Evaluate[string](`fetch("/executions/`+id+`/logs.txt").then(r => r.text())`, chromedp.EvalAwaitPromise))
	if err != nil || !strings.HasPrefix(whole, "200 text/plain") || !strings.Contains(body, "tick 1\n") || !strings.Contains(body, "tick 12\n") || !strings.Contains(body, "</pre><b") {
		t.Errorf("the logs download: %q %v\n%s", whole, err, body)
	}
	if n := eval[int](d, `document.querySelectorAll(".timeline .phase").length`); n != 5 {
		t.Errorf("phases on the timeline: %d, want queued, create, start, run, cleanup", n)
	}
	if w := eval[string](d, `document.querySelector(".timeline .phase-run").style.width`); w == "" || w == "0%" {
		t.Errorf("the run phase has no width: %q", w)
	}
	d.check("execution")

	// The events list: schedule in words, next run, last outcome, success rate.
	d.open("/events")
	row := d.text("#events tbody tr")
	for _, want := range []string{"ticker", "every 5 minutes", "succeeded", "100% of 1", "scheduled"} {
		if !strings.Contains(row, want) {
			t.Errorf("the events row lacks %q: %q", want, row)
		}
	}
	if got := d.text("#events-summary"); got != "1 event." {
		t.Errorf("the events summary: %q, want %q", got, "1 event.")
	}
	d.check("events")
	// The filter, used as a person would: it keeps what was typed.
	d.setValue("#q", "TICK")
	d.submit("form.filter")
	d.waitFor("the filtered list", `location.search === "?q=TICK" && !!document.querySelector("#events-summary")`, 20*time.Second)
	if got, field := d.text("#events-summary"), eval[string](d, `document.querySelector("#q").value`); got != "1 of 1 event matches “TICK”." || field != "TICK" {
		t.Errorf("filtered by TICK: %q, the field holds %q", got, field)
	}
	// A long filter that matches nothing still fits a phone's screen.
	d.open("/events?q=sync_customer_invoices_from_billing_into_the_warehouse_nightly_v2")
	d.check("events-filtered")

	// A long run, cancelled from its page.
	if st := s.api(ada, "POST", "/v1/events", map[string]any{"name": "long", "language": "bash", "script": "echo started; sleep 300"}, nil); st != 201 {
		t.Fatalf("create long: %d", st)
	}
	d.open("/events/long")
	d.submit("#trigger")
	d.waitFor("the long run's page", `location.pathname.startsWith("/executions/")`, 15*time.Second)
	d.waitFor("the long run starts", `document.querySelector("#logs").innerText.includes("started")`, 60*time.Second)
	d.submit("#cancel")
	d.waitFor("the long run is cancelled", `document.querySelector("#status") && document.querySelector("#status").innerText === "cancelled"`, 60*time.Second)

	// Usage: charts and pools, variables and secret names.
	if st := s.api(ada, "PUT", "/v1/secrets/db-password", map[string]any{"value": "hunter2-secret-value"}, nil); st != 200 && st != 201 && st != 204 {
		t.Fatalf("put secret: %d", st)
	}
	d.open("/usage")
	page := eval[string](d, `document.body.innerHTML`)
	if !strings.Contains(page, "db-password") || strings.Contains(page, "hunter2") {
		t.Errorf("the usage page shows secret names, never values: name shown %v, value shown %v", strings.Contains(page, "db-password"), strings.Contains(page, "hunter2"))
	}
	if n := eval[int](d, `document.querySelectorAll(".chart").length`); n != 4 {
		t.Errorf("charts: %d, want executions, outcomes, CPU and cost", n)
	}
	d.check("usage")

	// Another user's execution is not found, exactly as a missing one.
	var bx cronium.Execution
	s.api(bob, "POST", "/v1/events", map[string]any{"name": "bobs", "language": "bash", "script": "echo bob"}, nil)
	if st := s.api(bob, "POST", "/v1/events/bobs/trigger", map[string]any{}, &bx); st != 202 {
		t.Fatalf("bob's trigger: %d", st)
	}
	for _, p := range []string{"/executions/" + bx.ID, "/executions/nonexistent", "/events/bobs"} {
		d.open(p)
		if h := d.text("h1"); h != "Not found" {
			t.Errorf("%s as ada: %q, want the not-found page", p, h)
		}
		d.check("not-found")
		d.expectStatus(404, p)
	}

	// Sign out: the session key is revoked, and pages ask to sign in again.
	d.submit("form.signout")
	d.waitFor("signed out", `location.pathname === "/login"`, 10*time.Second)
	d.open("/executions/" + id)
	d.waitFor("signed-out pages ask to sign in", `location.pathname === "/login"`, 10*time.Second)
	d.tab.AssertClean(t)
}

func indent(s string) string {
	return "  " + strings.ReplaceAll(s, "\n", "\n  ")
}

// TestDashboardRefusesForgedForms: a state-changing request without the
// session's CSRF token, or from another origin, is refused and changes
// nothing; the session cookie is HttpOnly and SameSite=Strict.
func TestDashboardRefusesForgedForms(t *testing.T) {
	s := newServer(t, 2)
	s.start()
	ada := s.user("ada", "pro")
	if st := s.api(ada, "POST", "/v1/events", map[string]any{"name": "e", "language": "bash", "script": "echo", "schedule": "0 * * * *"}, nil); st != 201 {
		t.Fatalf("create: %d", st)
	}
	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	// Sign in needs the sign-in form's own token too.
	resp, err := client.PostForm(s.url+"/login", url.Values{"key": {ada}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 403 {
		t.Errorf("sign-in without its form's token: %d, want 403", resp.StatusCode)
	}
	resp, _ = client.Get(s.url + "/login")
	body := readAll(resp)
	tok := between(body, `name="csrf" value="`, `"`)
	resp, _ = client.PostForm(s.url+"/login", url.Values{"key": {ada}, "csrf": {tok}})
	resp.Body.Close()
	if resp.StatusCode != 303 {
		t.Fatalf("sign in: %d", resp.StatusCode)
	}
	var sess *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == "cronium_session" {
			sess = c
		}
	}
	if sess == nil || !sess.HttpOnly || sess.SameSite != http.SameSiteStrictMode || sess.MaxAge <= 0 {
		t.Fatalf("the session cookie: %+v, want HttpOnly, SameSite=Strict, expiring", sess)
	}
	resp, _ = client.Get(s.url + "/events/e")
	page := readAll(resp)
	csrf := between(page, `name="csrf" value="`, `"`)
	if csrf == "" {
		t.Fatal("no CSRF token on the event page")
	}
	post := func(path string, form url.Values, origin string) int {
		req, _ := http.NewRequest("POST", s.url+path, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	_, bobCSRF := httpSignIn(t, s, s.user("bob", "pro"))
	for _, c := range []struct {
		name   string
		form   url.Values
		origin string
	}{
		{"no token", url.Values{}, ""},
		{"a wrong token", url.Values{"csrf": {strings.Repeat("0", len(csrf))}}, ""},
		{"another user's token", url.Values{"csrf": {bobCSRF}}, ""},
		{"the right token from another site", url.Values{"csrf": {csrf}}, "http://evil.example"},
		{"the right token from this host over https", url.Values{"csrf": {csrf}}, strings.Replace(s.url, "http:", "https:", 1)},
		{"the right token from a look-alike host", url.Values{"csrf": {csrf}}, s.url + ".evil.example"},
	} {
		if st := post("/events/e/pause", c.form, c.origin); st != 403 {
			t.Errorf("pause with %s: %d, want 403", c.name, st)
		}
		if st := post("/events/e/delete", url.Values{"csrf": c.form["csrf"], "confirm": {"e"}}, c.origin); st != 403 {
			t.Errorf("delete with %s: %d, want 403", c.name, st)
		}
	}
	// A form past 4 MiB is refused as too large (not as a bad token), and nothing is saved.
	if st := post("/events/new", url.Values{"csrf": {csrf}, "yaml": {"name: big\nlanguage: bash\nscript: |\n  " + strings.Repeat("x", 5<<20)}}, ""); st != 413 {
		t.Errorf("a 5 MiB form: %d, want 413", st)
	}
	// Two events in one form: refused with a reason, neither created.
	if st := post("/events/new", url.Values{"csrf": {csrf}, "yaml": {"name: m1\nlanguage: bash\nscript: echo\n---\nname: m2\nlanguage: bash\nscript: echo\n"}}, ""); st != 400 {
		t.Errorf("two events in one form: %d, want 400", st)
	}
	if st := s.api(ada, "GET", "/v1/events/m1", nil, nil); st != 404 {
		t.Errorf("the first of two events in one form was created: %d", st)
	}
	var ev struct {
		Enabled *bool `json:"enabled"`
	}
	if st := s.api(ada, "GET", "/v1/events/e", nil, &ev); st != 200 || (ev.Enabled != nil && !*ev.Enabled) {
		t.Errorf("after forged forms the event is %d, enabled %v: want there and not paused", st, ev.Enabled)
	}
	if st := post("/events/e/pause", url.Values{"csrf": {csrf}}, s.url); st != 303 {
		t.Errorf("pause with the token from this site: %d, want 303", st)
	}
	if st := s.api(ada, "GET", "/v1/events/e", nil, &ev); st != 200 || ev.Enabled == nil || *ev.Enabled {
		t.Errorf("a real pause did not pause: %d %v", st, ev.Enabled)
	}
	// The session's key works only through the dashboard, and sign-out revokes it.
	key := sess.Value[strings.Index(sess.Value, "~")+1:]
	if st := s.api(key, "GET", "/v1/me", nil, nil); st != 401 {
		t.Errorf("the session key used as an API key: %d, want 401", st)
	}
	if st := s.api(ada, "POST", "/v1/users/ada/keys", map[string]any{"name": "dashboard session"}, nil); st != 400 {
		t.Errorf("an API key named as the dashboard's: %d, want 400 (reserved)", st)
	}
	// A hand-made view cookie gives a user nothing.
	u, _ := url.Parse(s.url)
	jar.SetCookies(u, []*http.Cookie{{Name: "cronium_view", Value: "bob", Path: "/"}})
	if resp, _ := client.Get(s.url + "/events"); !strings.Contains(readAll(resp), "/events/e\"") {
		t.Error("with a hand-made view cookie, the user's own events are not shown")
	}
	if st := post("/logout", url.Values{"csrf": {csrf}}, ""); st != 303 {
		t.Errorf("sign out: %d", st)
	}
	var keys struct {
		Items []struct {
			Name      string     `json:"name"`
			RevokedAt *time.Time `json:"revoked_at"`
		} `json:"items"`
	}
	s.api(ada, "GET", "/v1/users/ada/keys", nil, &keys)
	revoked := 0
	for _, k := range keys.Items {
		if k.Name == "dashboard session" && k.RevokedAt != nil {
			revoked++
		}
	}
	if revoked != 1 {
		t.Errorf("after sign-out, %d revoked session keys, want 1: %+v", revoked, keys.Items)
	}
	jar.SetCookies(u, []*http.Cookie{sess})
	if resp, _ := client.Get(s.url + "/events"); resp.StatusCode != 303 || !strings.HasPrefix(resp.Header.Get("Location"), "/login") {
		t.Errorf("the old session cookie after sign-out: %d %s, want the sign-in page", resp.StatusCode, resp.Header.Get("Location"))
	}
	// A redirect after sign-in stays on this site.
	for _, next := range []string{"//evil.example/x", "https://evil.example", "/\\evil.example", "/\t/evil.example", "/\n/evil.example"} {
		jar, _ := cookiejar.New(nil) // signed out
		client := &http.Client{Jar: jar, CheckRedirect: client.CheckRedirect}
		resp, _ := client.Get(s.url + "/login?next=" + url.QueryEscape(next))
		page := readAll(resp)
		if strings.Contains(page, "evil.example") {
			t.Errorf("next=%q is kept on the sign-in form", next)
		}
		tok := between(page, `name="csrf" value="`, `"`)
		resp, _ = client.PostForm(s.url+"/login", url.Values{"key": {ada}, "csrf": {tok}, "next": {next}})
		resp.Body.Close()
		if loc := resp.Header.Get("Location"); resp.StatusCode != 303 || loc != "/events" {
			t.Errorf("signing in with next=%q goes to %d %q, want /events", next, resp.StatusCode, loc)
		}
	}
	// Behind a proxy that says https, cookies are Secure and __Host- prefixed.
	req, _ := http.NewRequest("GET", s.url+"/login", nil)
	req.Header.Set("X-Forwarded-Proto", "https")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if cs := resp.Cookies(); len(cs) != 1 || cs[0].Name != "__Host-cronium_login" || !cs[0].Secure {
		t.Errorf("the sign-in cookie over https: %+v, want __Host-cronium_login, Secure", cs)
	}
}

// httpSignIn signs in over plain HTTP and returns the client (with its
// cookies) and the session's CSRF token.
func httpSignIn(t *testing.T, s *server, key string) (*http.Client, string) {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Get(s.url + "/login")
	if err != nil {
		t.Fatal(err)
	}
	tok := between(readAll(resp), `name="csrf" value="`, `"`)
	resp, err = client.PostForm(s.url+"/login", url.Values{"key": {key}, "csrf": {tok}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 303 {
		t.Fatalf("sign in: %d", resp.StatusCode)
	}
	resp, _ = client.Get(s.url + "/events")
	csrf := between(readAll(resp), `name="csrf" value="`, `"`)
	if csrf == "" {
		t.Fatal("no CSRF token on the events page")
	}
	return client, csrf
}

// TestDashboardAdminViewsAsAUser: an admin switches to a user's view (the
// user's events, executions and usage, with a banner) and back; a user
// cannot.
func TestDashboardAdminViewsAsAUser(t *testing.T) {
	s := newServer(t, 2)
	s.start()
	ada := s.user("ada", "pro")
	root, err := s.cli("user", "create", "root", "--admin")
	if err != nil {
		t.Fatal(err)
	}
	root = strings.TrimSpace(root)
	if st := s.api(ada, "POST", "/v1/events", map[string]any{"name": "adas-event", "language": "bash", "script": "echo"}, nil); st != 201 {
		t.Fatalf("create: %d", st)
	}
	get := func(c *http.Client, path string) (int, string) {
		resp, err := c.Get(s.url + path)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, readAll(resp)
	}
	admin, csrf := httpSignIn(t, s, root)
	if _, page := get(admin, "/events"); strings.Contains(page, "adas-event") {
		t.Error("the admin's own view shows ada's event")
	}
	if st, page := get(admin, "/users"); st != 200 || !strings.Contains(page, "View as") || !strings.Contains(page, ">ada<") {
		t.Errorf("the users page: %d", st)
	}
	view := func(c *http.Client, csrf, user string) int {
		resp, err := c.PostForm(s.url+"/view", url.Values{"csrf": {csrf}, "user": {user}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if st := view(admin, csrf, "nobody"); st != 404 {
		t.Errorf("view as a user that does not exist: %d, want 404", st)
	}
	if st := view(admin, csrf, "ada"); st != 303 {
		t.Fatalf("view as ada: %d", st)
	}
	if _, page := get(admin, "/events"); !strings.Contains(page, "adas-event") || !strings.Contains(page, "Viewing as <strong>ada</strong>") {
		t.Errorf("viewing as ada: her event and the banner are not shown:\n%s", page)
	}
	if st, _ := get(admin, "/events/adas-event"); st != 200 {
		t.Errorf("ada's event page as the admin viewing as ada: %d", st)
	}
	if st := view(admin, csrf, ""); st != 303 {
		t.Fatalf("back to the admin's view: %d", st)
	}
	if _, page := get(admin, "/events"); strings.Contains(page, "adas-event") || strings.Contains(page, "Viewing as") {
		t.Error("back in the admin's own view, ada's event or the banner is still shown")
	}
	user, ucsrf := httpSignIn(t, s, ada)
	if st := view(user, ucsrf, "root"); st != 403 {
		t.Errorf("a user asking to view as another: %d, want 403", st)
	}
	if st, _ := get(user, "/users"); st != 404 {
		t.Errorf("the users page for a user: %d, want 404", st)
	}
}

func between(s, a, b string) string {
	i := strings.Index(s, a)
	if i < 0 {
		return ""
	}
	s = s[i+len(a):]
	if j := strings.Index(s, b); j >= 0 {
		return s[:j]
	}
	return ""
}

func readAll(resp *http.Response) string {
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 32<<10)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			return b.String()
		}
	}
}

// TestDashboardLogStreamResumes: the page's log stream resumes after the
// last event it saw (the browser's Last-Event-ID), without gaps or
// repeats, and ends with the outcome.
func TestDashboardLogStreamResumes(t *testing.T) {
	s := newServer(t, 2)
	s.start()
	ada := s.user("ada", "pro")
	if st := s.api(ada, "POST", "/v1/events", map[string]any{"name": "five", "language": "bash", "script": "for i in 1 2 3 4 5; do echo line $i; sleep 0.2; done"}, nil); st != 201 {
		t.Fatalf("create: %d", st)
	}
	var x cronium.Execution
	if st := s.api(ada, "POST", "/v1/events/five/trigger", map[string]any{}, &x); st != 202 {
		t.Fatalf("trigger: %d", st)
	}
	s.waitAll(ada, 60*time.Second)
	client, _ := httpSignIn(t, s, ada)
	stream := func(lastID string) string {
		req, _ := http.NewRequest("GET", s.url+"/executions/"+x.ID+"/stream", nil)
		if lastID != "" {
			req.Header.Set("Last-Event-ID", lastID)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if ct := resp.Header.Get("Content-Type"); resp.StatusCode != 200 || ct != "text/event-stream" {
			t.Fatalf("the stream: %d %s", resp.StatusCode, ct)
		}
		return readAll(resp)
	}
	all := stream("")
	var ids []string
	for _, l := range strings.Split(all, "\n") {
		if id, ok := strings.CutPrefix(l, "id: "); ok {
			ids = append(ids, id)
		}
	}
	if len(ids) < 2 || !strings.Contains(all, `"line 5\n"`) || !strings.Contains(all, "event: end") {
		t.Fatalf("the whole stream:\n%s", all)
	}
	rest := stream(ids[0])
	if strings.Contains(rest, "id: "+ids[0]+"\n") || !strings.Contains(rest, "id: "+ids[1]+"\n") || !strings.Contains(rest, "event: end") {
		t.Errorf("resumed after %s:\n%s", ids[0], rest)
	}
	if strings.Count(all, "line ") != 5 {
		t.Errorf("the stream repeats or loses lines:\n%s", all)
	}
	// Another user's stream is not found.
	bob := s.user("bob", "pro")
	other, _ := httpSignIn(t, s, bob)
	resp, err := other.Get(s.url + "/executions/" + x.ID + "/stream")
	if err != nil {
		t.Fatal(err)
	}
	if b := readAll(resp); resp.StatusCode != 404 || strings.Contains(b, "line 1") {
		t.Errorf("bob's view of ada's stream: %d %q", resp.StatusCode, b)
	}
	resp, err = other.Get(s.url + "/executions/" + x.ID + "/logs.txt")
	if err != nil {
		t.Fatal(err)
	}
	if b := readAll(resp); resp.StatusCode != 404 || strings.Contains(b, "line 1") {
		t.Errorf("bob's download of ada's logs: %d %q", resp.StatusCode, b)
	}
}

// TestDashboardEventsFilterAndPages: the events page shows 100 events a
// page, sorted by name, with links between pages that keep the filter; the
// filter matches name, language, schedule and state without regard to case;
// a bad page number is refused by name; what was typed is shown escaped.
func TestDashboardEventsFilterAndPages(t *testing.T) {
	s := newServer(t, 1)
	s.start()
	ada := s.user("ada", "pro")
	for i := range 205 {
		ev := map[string]any{"name": fmt.Sprintf("job-%03d", i), "language": "bash", "script": "echo"}
		switch {
		case i%10 == 0:
			ev["schedule"] = "0 3 * * *"
		case i >= 50:
			ev["schedule"] = "0 0 1 1 *" // not to fire during the test
		}
		if st := s.api(ada, "POST", "/v1/events", ev, nil); st != 201 {
			t.Fatalf("create event %d: %d", i, st)
		}
	}
	for _, name := range []string{"job-010", "job-020"} {
		if st := s.api(ada, "POST", "/v1/events/"+name+"/pause", nil, nil); st != 200 {
			t.Fatalf("pause %s: %d", name, st)
		}
	}
	client, _ := httpSignIn(t, s, ada)
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := client.Get(s.url + path)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, readAll(resp)
	}
	rows := regexp.MustCompile(`<td data-label="Event"><a href="/events/([^"]+)">`)
	names := func(page string) []string {
		var out []string
		for _, m := range rows.FindAllStringSubmatch(page, -1) {
			out = append(out, m[1])
		}
		return out
	}
	for _, c := range []struct {
		path        string
		first, last string
		n           int
		says        []string
		hasNot      []string
	}{
		{"/events", "job-000", "job-099", 100,
			[]string{"205 events: 1–100 shown.", `href="/events?page=2" rel="next"`, "Page 1 of 3"}, []string{`rel="prev"`}},
		{"/events?page=2", "job-100", "job-199", 100,
			[]string{`href="/events" rel="prev"`, `href="/events?page=3" rel="next"`, "101–200 shown"}, nil},
		{"/events?page=3", "job-200", "job-204", 5,
			[]string{`href="/events?page=2" rel="prev"`, "Page 3 of 3"}, []string{`rel="next"`}},
		{"/events?page=9", "job-200", "job-204", 5, []string{"Page 3 of 3"}, nil}, // past the end: the last page
		{"/events?q=JOB-01", "job-010", "job-019", 10,
			[]string{`10 of 205 events match “<bdi class="q">JOB-01</bdi>”`, `value="JOB-01"`, `href="/events">Show all`, "<title>Events matching “JOB-01” · Cronium</title>"}, []string{`class="pager"`}},
		{"/events?q=PAUSED", "job-010", "job-020", 2, []string{"2 of 205 events match"}, nil}, // by state
		{"/events?q=" + url.QueryEscape("0 0 1 1 *"), "job-051", "job-161", 100,
			[]string{"139 of 205 events match", `href="/events?page=2&amp;q=0&#43;0&#43;1&#43;1&#43;%2A" rel="next"`}, nil},
		{"/events?q=" + url.QueryEscape("  job-204 "), "job-204", "job-204", 1, []string{`value="job-204"`}, nil},
		{"/events?page=99999999999999999999", "job-200", "job-204", 5, []string{"Page 3 of 3"}, nil},
		{"/events?q=" + url.QueryEscape("0 3 * * *"), "job-000", "job-200", 21, []string{"21 of 205 events match"}, nil},
		{"/events?q=" + url.QueryEscape("At 03:00 every"), "job-000", "job-200", 21, []string{"21 of 205 events match"}, nil}, // in words
		{"/events?q=job-204", "job-204", "job-204", 1, []string{`1 of 205 events matches “<bdi class="q">job-204</bdi>”.`}, nil},
		{"/events?q=job&page=2", "job-100", "job-199", 100,
			[]string{`href="/events?q=job" rel="prev"`, `href="/events?page=3&amp;q=job" rel="next"`, "<title>Events matching “job”, page 2 of 3 · Cronium</title>"}, nil},
		{"/events?q=BASH", "job-000", "job-099", 100, []string{`205 of 205 events match “<bdi class="q">BASH</bdi>”: 1–100 shown`}, nil},
		{"/events?q=" + url.QueryEscape(`"><script>x</script>`), "", "", 0,
			[]string{`No event matches “<bdi class="q">&#34;&gt;&lt;script&gt;x&lt;/script&gt;</bdi>”, of 205 in all.`}, []string{"<script>x"}},
	} {
		st, page := get(c.path)
		got := names(page)
		if st != 200 || len(got) != c.n || (c.n > 0 && (got[0] != c.first || got[len(got)-1] != c.last)) {
			t.Errorf("%s: %d with %d events %v, want 200 with %d from %s to %s", c.path, st, len(got), got, c.n, c.first, c.last)
			continue
		}
		for _, want := range c.says {
			if !strings.Contains(page, want) {
				t.Errorf("%s does not say %q", c.path, want)
			}
		}
		for _, not := range c.hasNot {
			if strings.Contains(page, not) {
				t.Errorf("%s says %q", c.path, not)
			}
		}
	}
	// A user with no events is told how to make one, with no filter.
	bob, _ := httpSignIn(t, s, s.user("bob", "pro"))
	if resp, err := bob.Get(s.url + "/events"); err != nil {
		t.Fatal(err)
	} else if page := readAll(resp); !strings.Contains(page, "No events yet.") || strings.Contains(page, `id="q"`) || strings.Contains(page, "job-") {
		t.Errorf("the events page of a user with none:\n%s", page)
	}
	for _, p := range []string{"0", "-1", "two", "1e3", "-99999999999999999999"} {
		if st, page := get("/events?page=" + p); st != 400 || !strings.Contains(page, "page: &#34;"+p+"&#34; is not a page number: want 1 or more") {
			t.Errorf("page=%s: %d, want 400 naming the page", p, st)
		}
	}
}

// streamCheck is how often a log stream checks its key (api's streamAuthCheck).
const streamCheck = 5 * time.Second

// TestLogStreamsEndWithTheirKey: a live log stream checks its key again
// while it runs: revoking an API key ends the streams opened with it, and
// signing out of the dashboard ends the page's stream, each with an
// "unauthorized" event, while the execution runs on.
func TestLogStreamsEndWithTheirKey(t *testing.T) {
	s := newServer(t, 2)
	s.start()
	ada := s.user("ada", "pro")
	if st := s.api(ada, "POST", "/v1/events", map[string]any{"name": "long", "language": "bash", "script": "for i in $(seq 1 600); do echo tick $i; sleep 0.1; done", "timeout": "120s"}, nil); st != 201 {
		t.Fatalf("create: %d", st)
	}
	var x cronium.Execution
	if st := s.api(ada, "POST", "/v1/events/long/trigger", map[string]any{}, &x); st != 202 {
		t.Fatalf("trigger: %d", st)
	}
	var created struct {
		Key  string        `json:"key"`
		Info store.KeyInfo `json:"info"`
	}
	if st := s.api(ada, "POST", "/v1/users/ada/keys", map[string]any{"name": "follower"}, &created); st != 201 {
		t.Fatalf("create a key: %d", st)
	}
	dash, csrf := httpSignIn(t, s, ada)
	// open follows a stream until its first line of output.
	open := func(c *http.Client, path, key string) *bufio.Reader {
		req, _ := http.NewRequest("GET", s.url+path, nil)
		req.Header.Set("Accept", "text/event-stream")
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d %s", path, resp.StatusCode, readAll(resp))
		}
		body := bufio.NewReader(resp.Body)
		if evs := sseUntil(t, body, func(e sseEvent) bool { return e.event == "stdout" }); len(evs) == 0 || evs[len(evs)-1].event != "stdout" {
			t.Fatalf("%s: no output: %v", path, evs)
		}
		return body
	}
	// ends reads the rest of a stream: it must end with "unauthorized",
	// soon after the key stopped working, with no output after it.
	ends := func(what string, body *bufio.Reader, since time.Time) {
		evs := sseUntil(t, body, func(sseEvent) bool { return false })
		took := time.Since(since)
		if len(evs) == 0 || evs[len(evs)-1].event != "unauthorized" || !strings.Contains(evs[len(evs)-1].data, "revoked or expired") {
			t.Errorf("%s: the stream ended with %v, want an unauthorized event", what, evs[max(0, len(evs)-2):])
		}
		if took > 15*time.Second {
			t.Errorf("%s: the stream ended %s after its key stopped working, want within the 5 s check", what, took)
		}
		t.Logf("%s: the stream ended %s after its key stopped working", what, took.Round(time.Millisecond))
	}
	api := open(http.DefaultClient, "/v1/executions/"+x.ID+"/logs?follow=true", created.Key)
	page := open(dash, "/executions/"+x.ID+"/stream", "")
	kept := open(http.DefaultClient, "/v1/executions/"+x.ID+"/logs?follow=true", ada)
	// The CLI follows with the key that will be revoked: it stops with the
	// server's reason and fails, without reconnecting.
	cli := exec.Command(bin, "exec", "logs", "-f", x.ID)
	cli.Env = append(slices.Clone(s.env), "CRONIUM_TOKEN="+created.Key)
	var cliOut, cliErr bytes.Buffer
	cli.Stdout, cli.Stderr = &cliOut, &cliErr
	if err := cli.Start(); err != nil {
		t.Fatal(err)
	}
	cliDone := make(chan error, 1)
	go func() { cliDone <- cli.Wait() }()
	t.Cleanup(func() { cli.Process.Kill(); <-cliDone })
	time.Sleep(time.Second) // the CLI is following

	revoked := time.Now()
	if st := s.api(ada, "DELETE", fmt.Sprintf("/v1/users/ada/keys/%d", created.Info.ID), nil, nil); st != 200 && st != 204 {
		t.Fatalf("revoke: %d", st)
	}
	ends("revoked API key", api, revoked)
	resp, err := dash.PostForm(s.url+"/logout", url.Values{"csrf": {csrf}})
	if err != nil || resp.StatusCode != 303 {
		t.Fatalf("sign out: %v %v", err, resp)
	}
	resp.Body.Close()
	ends("signed-out dashboard", page, time.Now())
	select {
	case err := <-cliDone:
		cliDone <- err // for the cleanup
		if err == nil || !strings.Contains(cliErr.String(), "follow logs: the key this stream was opened with was revoked") || !strings.Contains(cliOut.String(), "tick 1\n") {
			t.Errorf("cronium exec logs -f with a revoked key: %v\n%s", err, cliErr.String())
		}
	case <-time.After(15 * time.Second):
		t.Errorf("cronium exec logs -f still follows 15 s after its key was revoked:\n%s", cliErr.String())
	}
	// The execution runs on, and a stream with a key that still works
	// follows it, live, for more than two checks after the others ended.
	var last sseEvent
	sseUntil(t, kept, func(e sseEvent) bool {
		last = e
		return e.event == "unauthorized" || e.event == "stdout" && time.Since(revoked) > 2*streamCheck+time.Second
	})
	if last.event != "stdout" || time.Since(revoked) < 2*streamCheck {
		t.Errorf("the stream of the key still valid ended %s after the revoke, with %v", time.Since(revoked), last)
	}
	if st := s.api(ada, "GET", "/v1/executions/"+x.ID, nil, &x); st != 200 || x.Status != cronium.StatusRunning {
		t.Errorf("the execution after its followers were cut off: %d %s", st, x.Status)
	}
	s.api(ada, "POST", "/v1/executions/"+x.ID+"/cancel", map[string]any{}, nil)
}
