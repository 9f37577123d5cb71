package browsertest

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// strictCSP is the policy that the dashboard sends.
const strictCSP = "default-src 'self'; script-src 'self'"

// htmlPage returns a complete, accessible HTML document with the body.
func htmlPage(title, body string) string {
	return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>` + title + `</title>
<link rel="icon" href="data:,">
</head>
<body>
<main>
<h1>` + title + `</h1>
` + body + `
</main>
</body>
</html>`
}

// cspPage is htmlPage for a page under strictCSP, which blocks the data: URL
// of the icon: the icon must come from the server itself.
func cspPage(title, body string) string {
	return strings.Replace(htmlPage(title, body), `href="data:,"`, `href="/x.png"`, 1)
}

// testServer serves the pages of the self-test on loopback and records the
// paths that the browser requests.
type testServer struct {
	*httptest.Server
	mu    sync.Mutex
	paths []string
}

func (s *testServer) requested(path string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Contains(s.paths, path)
}

func newServer(t *testing.T) *testServer {
	t.Helper()
	var pngBuf bytes.Buffer
	img := image.NewRGBA(image.Rect(0, 0, 4, 4))
	img.Set(1, 1, color.RGBA{R: 255, A: 255})
	if err := png.Encode(&pngBuf, img); err != nil {
		t.Fatal(err)
	}

	html := func(csp, body string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if csp != "" {
				w.Header().Set("Content-Security-Policy", csp)
			}
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			fmt.Fprint(w, body)
		}
	}
	mux := http.NewServeMux()
	mux.Handle("GET /alert", html("", htmlPage("Alert", `<p>before</p><script>alert(1)</script><p id="after">after</p>`)))
	mux.Handle("GET /console", html("", htmlPage("Console", `<script>console.error("boom", 42); console.log("just a log")</script>`)))
	mux.Handle("GET /exception", html("", htmlPage("Exception", `<script>setTimeout(() => { throw new Error("kaput") }, 0)</script>`)))
	mux.Handle("GET /missing-image", html("", htmlPage("Missing image", `<img src="/nothing-here.png" alt="missing">`)))
	mux.Handle("GET /clean", html("", htmlPage("Clean", `<p>Nothing to see.</p><script>console.log("fine")</script>`)))
	mux.Handle("GET /no-icon", html("", `<!doctype html><html lang="en"><title>No icon</title><main><h1>No icon</h1></main></html>`))
	mux.Handle("GET /a11y-good", html(strictCSP, cspPage("Good page", `<p>All fine.</p><img src="/x.png" alt="A red dot"><button type="button">Save</button>`)))
	mux.Handle("GET /a11y-bad", html(strictCSP, `<!doctype html><html><head><meta charset="utf-8"><link rel="icon" href="/x.png"></head><body>
<img src="/x.png">
<button type="button"></button>
</body></html>`))
	mux.Handle("GET /inline-script", html(strictCSP, cspPage("Inline script", `<script>document.body.dataset.inline = "ran"</script>`)))
	mux.Handle("GET /wide-no-meta", html("", `<!doctype html><html lang="en"><title>Wide</title><link rel="icon" href="data:,">
<div style="width: 900px; height: 1500px; background: linear-gradient(90deg, #f00, #00f)">wide</div></html>`))
	mux.Handle("GET /tall", html("", htmlPage("Tall", `<div style="height: 2000px; background: linear-gradient(#fff, #36c)">tall</div>`)))
	mux.HandleFunc("GET /x.png", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "image/png")
		w.Write(pngBuf.Bytes())
	})
	mux.HandleFunc("GET /timing", func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(60 * time.Millisecond)
		w.Header().Set("Server-Timing", `app;dur=12.3, db;dur=4.5;desc="query"`)
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, htmlPage("Timing", "<p>timed</p>"))
	})

	s := &testServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.paths = append(s.paths, r.URL.Path)
		s.mu.Unlock()
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

// recorder is a testing.TB that records Errorf, to check that the assertions
// of the package fail.
type recorder struct {
	testing.TB
	errors []string
}

func (r *recorder) Errorf(format string, args ...any) {
	r.errors = append(r.errors, fmt.Sprintf(format, args...))
}

func (r *recorder) Error(args ...any) {
	r.errors = append(r.errors, fmt.Sprint(args...))
}

// containsProblem reports whether one of the problems contains all the parts.
func containsProblem(problems []string, parts ...string) bool {
	for _, p := range problems {
		all := true
		for _, part := range parts {
			all = all && strings.Contains(p, part)
		}
		if all {
			return true
		}
	}
	return false
}

func TestFindChromiumMissing(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	_, err := FindChromium()
	if err == nil || !strings.Contains(err.Error(), "apt-get install chromium") {
		t.Fatalf("FindChromium with an empty PATH: got %v, want an error that says apt-get install chromium", err)
	}
}

func TestProblems(t *testing.T) {
	srv := newServer(t)
	b := New(t, WithTimeout(20*time.Second))

	t.Run("alert", func(t *testing.T) {
		tab := b.Tab(t)
		start := time.Now()
		if err := tab.Navigate(srv.URL + "/alert"); err != nil {
			t.Fatalf("the page with an alert did not load (dialog not dismissed?): %v", err)
		}
		t.Logf("loaded the page with an alert in %v", time.Since(start))
		if !containsProblem(tab.Problems(), "dialog alert", `"1"`) {
			t.Errorf("Problems() = %q, want the alert", tab.Problems())
		}
		// The tab is not stuck: the script after the alert ran, and a new
		// dialog is dismissed too (confirm gives false).
		after, err := RunValue(tab, chromedp.Evaluate[bool](`document.getElementById("after") !== null`))
		if err != nil || !after {
			t.Errorf("the page after the alert: got %v, %v; want true", after, err)
		}
		ok, err := RunValue(tab, chromedp.Evaluate[bool](`confirm("sure?")`))
		if err != nil || ok {
			t.Errorf("confirm(): got %v, %v; want false (dismissed)", ok, err)
		}
		if got := len(tab.Problems()); got != 2 {
			t.Errorf("got %d problems, want 2 (alert and confirm): %q", got, tab.Problems())
		}
		rec := &recorder{TB: t}
		tab.AssertClean(rec)
		if len(rec.errors) != 1 || !strings.Contains(rec.errors[0], "dialog confirm") {
			t.Errorf("AssertClean reported %q, want one error that lists the dialogs", rec.errors)
		}
	})

	t.Run("console.error", func(t *testing.T) {
		tab := b.Tab(t)
		if err := tab.Navigate(srv.URL + "/console"); err != nil {
			t.Fatal(err)
		}
		p := tab.Problems()
		if !containsProblem(p, "console.error: boom 42", "/console:") {
			t.Errorf("Problems() = %q, want the console.error with its place", p)
		}
		if containsProblem(p, "just a log") {
			t.Errorf("Problems() = %q, has console.log", p)
		}
		tab.ResetProblems()
		if p := tab.Problems(); len(p) != 0 {
			t.Errorf("after ResetProblems, Problems() = %q", p)
		}
	})

	t.Run("exception", func(t *testing.T) {
		tab := b.Tab(t)
		if err := tab.Navigate(srv.URL + "/exception"); err != nil {
			t.Fatal(err)
		}
		// The exception comes from a timer; a round trip after load makes
		// sure that it has been reported.
		if err := tab.Run(chromedp.Sleep(100 * time.Millisecond)); err != nil {
			t.Fatal(err)
		}
		if p := tab.Problems(); !containsProblem(p, "exception: Uncaught Error: kaput") {
			t.Errorf("Problems() = %q, want the uncaught exception", p)
		}
	})

	t.Run("log error", func(t *testing.T) {
		tab := b.Tab(t)
		if err := tab.Navigate(srv.URL + "/missing-image"); err != nil {
			t.Fatal(err)
		}
		if p := tab.Problems(); !containsProblem(p, "log error [network]", "404", "/nothing-here.png") {
			t.Errorf("Problems() = %q, want the failed load of the image", p)
		}
	})

	t.Run("clean", func(t *testing.T) {
		srv := newServer(t) // its own, to see the requests of this page only
		tab := b.Tab(t)
		if err := tab.Navigate(srv.URL + "/clean"); err != nil {
			t.Fatal(err)
		}
		if p := tab.Problems(); len(p) != 0 {
			t.Errorf("Problems() = %q, want none", p)
		}
		rec := &recorder{TB: t}
		tab.AssertClean(rec)
		if len(rec.errors) != 0 {
			t.Errorf("AssertClean reported %q on a clean page", rec.errors)
		}
		w, err := RunValue(tab, chromedp.Evaluate[int](`window.innerWidth`))
		if err != nil || w != DefaultWidth {
			t.Errorf("window.innerWidth = %d, %v; want %d", w, err, DefaultWidth)
		}
		if srv.requested("/favicon.ico") {
			t.Error(`the page with <link rel="icon" href="data:,"> made the browser request /favicon.ico`)
		}
	})

	t.Run("navigate error", func(t *testing.T) {
		tab := b.Tab(t)
		err := tab.Navigate(srv.URL + "/does-not-exist")
		if err == nil || !strings.Contains(err.Error(), "404") {
			t.Errorf("Navigate to a missing page: got %v, want an error with 404", err)
		}
	})

	// The reason for the advice of the package doc: without an icon link,
	// Chromium asks for /favicon.ico, and a 404 is a problem.
	t.Run("favicon", func(t *testing.T) {
		srv := newServer(t)
		tab := b.Tab(t)
		if err := tab.Navigate(srv.URL + "/no-icon"); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(5 * time.Second)
		for !containsProblem(tab.Problems(), "404", "/favicon.ico") && time.Now().Before(deadline) {
			if err := tab.Run(chromedp.Sleep(50 * time.Millisecond)); err != nil {
				t.Fatal(err)
			}
		}
		if !srv.requested("/favicon.ico") || !containsProblem(tab.Problems(), "404", "/favicon.ico") {
			t.Errorf("page without an icon link: requested /favicon.ico: %v, problems %q; want the request and its 404 as a problem "+
				"(if Chromium no longer asks for it, update the package doc)", srv.requested("/favicon.ico"), tab.Problems())
		}
	})
}

func TestAxe(t *testing.T) {
	srv := newServer(t)
	b := New(t)
	tab := b.Tab(t)

	// The policy of the test server is active: it blocks an inline script,
	// and the tab reports the violation.
	if err := tab.Navigate(srv.URL + "/inline-script"); err != nil {
		t.Fatal(err)
	}
	ran, err := RunValue(tab, chromedp.Evaluate[string](`document.body.dataset.inline || "blocked"`))
	if err != nil || ran != "blocked" {
		t.Errorf("inline script under %q: got %q, %v; want it blocked", strictCSP, ran, err)
	}
	if p := tab.Problems(); !containsProblem(p, "Content Security Policy") {
		t.Errorf("Problems() = %q, want the CSP violation", p)
	}
	tab.ResetProblems()

	if err := tab.Navigate(srv.URL + "/a11y-bad"); err != nil {
		t.Fatal(err)
	}
	vs := tab.Axe(t)
	byID := map[string]Violation{}
	for _, v := range vs {
		byID[v.ID] = v
	}
	for _, id := range []string{"image-alt", "button-name"} {
		v, ok := byID[id]
		if !ok {
			t.Errorf("axe on the bad page: no %s violation in %v", id, vs)
			continue
		}
		if !v.Serious() || v.Help == "" || len(v.Targets) == 0 {
			t.Errorf("violation %s = %+v, want a serious or critical impact, a help text and targets", id, v)
		}
	}
	if v := byID["image-alt"]; len(v.Targets) > 0 && !strings.Contains(v.Targets[0], "img") {
		t.Errorf("image-alt targets = %q, want the img", v.Targets)
	}
	rec := &recorder{TB: t}
	tab.AssertAccessible(rec, "bad page")
	if len(rec.errors) != 1 || !strings.Contains(rec.errors[0], "image-alt") || !strings.Contains(rec.errors[0], "button-name") {
		t.Errorf("AssertAccessible on the bad page reported %q, want one error that lists image-alt and button-name", rec.errors)
	}
	// A second run reuses the script that is in the page.
	if again := tab.Axe(t); len(again) != len(vs) {
		t.Errorf("second axe run: %d violations, want %d", len(again), len(vs))
	}

	if err := tab.Navigate(srv.URL + "/a11y-good"); err != nil {
		t.Fatal(err)
	}
	if vs := tab.Axe(t); len(vs) != 0 {
		t.Errorf("axe on the good page: %v, want none", vs)
	}
	rec = &recorder{TB: t}
	tab.AssertAccessible(rec, "good page")
	if len(rec.errors) != 0 {
		t.Errorf("AssertAccessible on the good page reported %q", rec.errors)
	}
	// Neither the injection nor the run of axe broke the policy.
	tab.AssertClean(t)
}

func TestScreenshot(t *testing.T) {
	srv := newServer(t)
	b := New(t)
	tab := b.Tab(t)
	if err := tab.Navigate(srv.URL + "/tall"); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir() + "/shots"
	for _, tc := range []struct {
		name          string
		width, height int
		mobile        bool
	}{
		{"desktop", 1280, 800, false},
		{"phone", 375, 667, true},
	} {
		path := tab.Screenshot(t, dir, tc.name, tc.width, tc.height)
		if want := dir + "/" + tc.name + ".png"; path != want {
			t.Errorf("Screenshot path = %q, want %q", path, want)
		}
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(f)
		f.Close()
		if err != nil {
			t.Fatalf("%s: decoding the PNG: %v", tc.name, err)
		}
		size := img.Bounds().Size()
		if size.X != tc.width || size.Y < 2000 {
			t.Errorf("%s: image is %dx%d, want %d wide and the whole page (at least 2000 high)", tc.name, size.X, size.Y, tc.width)
		}
		w, err := RunValue(tab, chromedp.Evaluate[int](`window.innerWidth`))
		if err != nil || w != tc.width {
			t.Errorf("%s: window.innerWidth = %d, %v; want %d", tc.name, w, err, tc.width)
		}
		coarse, err := RunValue(tab, chromedp.Evaluate[bool](`matchMedia("(pointer: coarse)").matches`))
		if err != nil || coarse != tc.mobile {
			t.Errorf("%s: pointer: coarse = %v, %v; want %v", tc.name, coarse, err, tc.mobile)
		}
	}
	// Without a viewport meta tag, a phone lays the page out 980 pixels wide
	// and zooms out: the image shows all of it, the blue right end too.
	if err := tab.Navigate(srv.URL + "/wide-no-meta"); err != nil {
		t.Fatal(err)
	}
	path := tab.Screenshot(t, dir, "zoomed", 375, 667)
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(f)
	f.Close()
	if err != nil {
		t.Fatalf("zoomed: decoding the PNG: %v", err)
	}
	if size := img.Bounds().Size(); size.X != 375 || size.Y < 667 {
		t.Errorf("zoomed: image is %dx%d, want 375 wide and at least 667 high", size.X, size.Y)
	}
	if r, _, b, _ := img.At(330, 100).RGBA(); b <= r {
		t.Errorf("zoomed: the pixel at (330, 100) is more red than blue: the image does not show the whole width of the page")
	}

	if err := tab.SetViewport(0, 10); err == nil {
		t.Error("SetViewport(0, 10) gave no error")
	}
	tab.AssertClean(t)
}

func TestNavigation(t *testing.T) {
	srv := newServer(t)
	b := New(t)
	tab := b.Tab(t)
	if err := tab.Navigate(srv.URL + "/timing"); err != nil {
		t.Fatal(err)
	}
	nt, err := tab.Navigation()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("navigation timing: %+v", nt)
	if got := nt.ServerTiming["app"]; got != 12.3 {
		t.Errorf("ServerTiming[app] = %v, want 12.3 (all: %v)", got, nt.ServerTiming)
	}
	if got := nt.ServerTiming["db"]; got != 4.5 {
		t.Errorf("ServerTiming[db] = %v, want 4.5 (all: %v)", got, nt.ServerTiming)
	}
	if nt.ResponseWait < 50 {
		t.Errorf("ResponseWait = %v ms, want at least the 60 ms that the server sleeps", nt.ResponseWait)
	}
	if nt.DOMContentLoaded <= 0 || nt.Load < nt.DOMContentLoaded {
		t.Errorf("DOMContentLoaded = %v, Load = %v; want 0 < DOMContentLoaded <= Load", nt.DOMContentLoaded, nt.Load)
	}
	tab.AssertClean(t)
}

// TestNoLeftovers checks that the cleanup of New and Tab leaves no goroutine
// and no browser process behind.
func TestNoLeftovers(t *testing.T) {
	before := runtime.NumGoroutine()
	var pid int
	t.Run("browser", func(t *testing.T) {
		b := New(t)
		tab := b.Tab(t)
		if err := tab.Navigate(`data:text/html,<title>x</title><script>alert("hi")</script>`); err != nil {
			t.Fatal(err)
		}
		pid = chromedp.FromContext(b.ctx).Browser.Process().Pid
	})
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		t.Errorf("%d goroutines before, %d after the cleanup:\n%s", before, n, buf)
	}
	if pid == 0 {
		t.Fatal("no browser process")
	}
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err == nil {
		t.Errorf("the browser process %d still runs after the cleanup", pid)
	}
}
