// Package browsertest drives a real headless Chromium with chromedp, for
// browser tests of the web dashboard.
//
// A test starts one browser with [New] and opens one or more tabs with
// [Browser.Tab]. Everything is closed in t.Cleanup:
//
//	b := browsertest.New(t)
//	tab := b.Tab(t)
//	if err := tab.Navigate(srv.URL + "/"); err != nil {
//		t.Fatal(err)
//	}
//	tab.AssertClean(t)
//	tab.AssertAccessible(t, "overview")
//
// The browser is Debian's chromium package (apt-get install chromium). When it
// is missing, New fails the test; it never skips.
//
// Each tab records console errors, uncaught exceptions, browser log errors and
// JavaScript dialogs as problems (see [Tab.Problems]).
//
// A page under test should declare its icon. Without a <link rel="icon">,
// Chromium requests /favicon.ico on its own, and a 404 there is a problem.
// <link rel="icon" href="data:,"> is enough, unless the Content-Security-Policy
// of the page blocks data: images, as "default-src 'self'" without an img-src
// does: the blocked icon is a problem too, and the browser falls back to
// /favicon.ico. Such a page must link an icon that its server serves, such as
// <link rel="icon" href="/static/icon.svg">.
//
// The package only talks to the addresses that the test gives it; tests should
// serve pages on loopback, for example with net/http/httptest. Loopback
// origins (127.0.0.1, localhost) are secure contexts, which some page APIs
// need, for example the serverTiming entries that [Tab.Navigation] reads.
package browsertest

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// DefaultTimeout is the default time limit of one call of [Tab.Run] and of
// the other tab methods that talk to the browser. It is generous because CI
// machines are slow.
const DefaultTimeout = 30 * time.Second

// Default window size of the browser, in CSS pixels.
const (
	DefaultWidth  = 1280
	DefaultHeight = 800
)

// startTimeout bounds the start of the browser and the opening of a tab.
const startTimeout = 60 * time.Second

// closeTimeout bounds the graceful close of the browser in t.Cleanup.
const closeTimeout = 10 * time.Second

// Option changes how [New] starts the browser.
type Option func(*config)

type config struct {
	timeout       time.Duration
	width, height int
	flags         []chromedp.ExecAllocatorOption
}

// WithTimeout sets the time limit of one call of [Tab.Run] and of the other
// tab methods, instead of [DefaultTimeout].
func WithTimeout(d time.Duration) Option {
	return func(c *config) { c.timeout = d }
}

// WithWindowSize sets the window size of the browser, instead of
// [DefaultWidth] x [DefaultHeight].
func WithWindowSize(width, height int) Option {
	return func(c *config) { c.width, c.height = width, height }
}

// WithFlag passes one more command line flag to Chromium, for example
// WithFlag("lang", "en-US"). A value of true gives a flag without a value.
func WithFlag(name string, value any) Option {
	return func(c *config) { c.flags = append(c.flags, chromedp.Flag(name, value)) }
}

// Browser is a headless Chromium that [New] started for a test.
type Browser struct {
	ctx     context.Context // chromedp context of the browser
	timeout time.Duration
}

// FindChromium returns the path of the Chromium binary: the first of
// "chromium" and "chromium-browser" in PATH.
func FindChromium() (string, error) {
	var errs []error
	for _, name := range []string{"chromium", "chromium-browser"} {
		path, err := exec.LookPath(name)
		if err == nil {
			return path, nil
		}
		errs = append(errs, err)
	}
	return "", fmt.Errorf("browsertest: no Chromium in PATH (install it with `apt-get install chromium`): %w", errors.Join(errs...))
}

// New starts a headless Chromium for the test and returns it. It fails the
// test with t.Fatal when Chromium is not installed or does not start. It
// registers a t.Cleanup that closes the browser and waits for its process to
// exit.
//
// The browser runs headless with the flags no-sandbox (the tests run as root
// in a container), disable-gpu, disable-dev-shm-usage, a window size of
// 1280x800 and a fresh user data directory under t.TempDir().
func New(t testing.TB, opts ...Option) *Browser {
	t.Helper()
	cfg := config{timeout: DefaultTimeout, width: DefaultWidth, height: DefaultHeight}
	for _, o := range opts {
		o(&cfg)
	}
	execPath, err := FindChromium()
	if err != nil {
		t.Fatal(err)
	}
	// Registered before our cleanup, so it runs after it: the directory is
	// removed after the browser has exited.
	profile := filepath.Join(t.TempDir(), "profile")

	allocOpts := append(slices.Clone(chromedp.DefaultExecAllocatorOptions[:]),
		chromedp.ExecPath(execPath),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(cfg.width, cfg.height),
		chromedp.UserDataDir(profile),
	)
	allocOpts = append(allocOpts, cfg.flags...)

	// parent lets a timer abort a start that hangs: the first Run binds the
	// browser to its context, so that context must not have a deadline.
	parent, cancelParent := context.WithCancel(context.Background())
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(parent, allocOpts...)
	ctx, cancelCtx := chromedp.NewContext(allocCtx)
	b := &Browser{ctx: ctx, timeout: cfg.timeout}

	t.Cleanup(func() {
		// Close the browser gracefully, then make sure that the process is
		// gone: cancelAlloc waits for it to exit.
		cctx, cancel := context.WithTimeout(ctx, closeTimeout)
		err := chromedp.Cancel(cctx)
		cancel()
		cancelCtx()
		cancelAlloc()
		cancelParent()
		if err != nil && !errors.Is(err, context.Canceled) {
			t.Logf("browsertest: closing the browser: %v", err)
		}
	})

	timer := time.AfterFunc(startTimeout, cancelParent)
	err = chromedp.Do(ctx)
	timer.Stop()
	if err != nil {
		if parent.Err() != nil {
			err = fmt.Errorf("no answer within %v: %w", startTimeout, err)
		}
		t.Fatalf("browsertest: starting %s: %v", execPath, err)
	}
	return b
}
