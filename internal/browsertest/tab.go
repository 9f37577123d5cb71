package browsertest

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"strings"
	"sync"
	"testing"
	"time"

	jsonv2 "github.com/chromedp/cdproto/cdp/jsonv2"
	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// Tab is one tab of a [Browser]. It records the problems of its pages: console
// errors, uncaught exceptions, browser log errors and JavaScript dialogs.
//
// A Tab is for one goroutine at a time, like the test that owns it.
type Tab struct {
	ctx     context.Context
	timeout time.Duration

	mu       sync.Mutex
	problems []string
}

// Tab opens a new tab in the browser and returns it. It registers a t.Cleanup
// that closes the tab. It fails the test with t.Fatal when the tab does not
// open.
//
// The tab dismisses every JavaScript dialog (alert, confirm, prompt), so that
// the page does not hang, and records it as a problem. A beforeunload dialog
// is accepted instead, so that a navigation away from the page goes on.
func (b *Browser) Tab(t testing.TB) *Tab {
	t.Helper()
	tab := &Tab{timeout: b.timeout}
	ctx, cancel := chromedp.NewContext(b.ctx, chromedp.WithListener(tab.onEvent))
	tab.ctx = ctx

	// The first Run binds the tab to ctx, so it gets no deadline. A timer
	// closes the tab instead when the browser does not answer.
	timer := time.AfterFunc(startTimeout, cancel)
	err := chromedp.Do(ctx)
	timer.Stop()
	if err != nil {
		cancel()
		t.Fatalf("browsertest: opening a tab: %v", err)
	}

	dialogs := chromedp.Events(ctx, page.JavascriptDialogOpening)
	done := make(chan struct{})
	go func() {
		defer close(done)
		tab.handleDialogs(dialogs)
	}()
	t.Cleanup(func() {
		cancel() // closes the tab and ends the dialog iterator
		<-done
	})
	return tab
}

// handleDialogs closes each dialog that opens, until the tab closes. The
// listener records the dialogs; this only answers them, because the listener
// must not send commands.
func (tab *Tab) handleDialogs(dialogs iter.Seq2[page.EventJavascriptDialogOpening, error]) {
	for ev, err := range dialogs {
		if err != nil {
			return // the tab is closing
		}
		ctx, cancel := context.WithTimeout(tab.ctx, tab.timeout)
		_, err := chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{
			Accept: ev.Type == page.DialogTypeBeforeunload,
		})
		cancel()
		if err != nil && tab.ctx.Err() == nil {
			tab.addProblem(fmt.Sprintf("dialog %s: could not close it: %v", ev.Type, err))
		}
	}
}

// onEvent records the problems among the events of the tab. It runs on the
// goroutine that reads the messages of the tab, before the reply to the
// command that follows the event, so that Problems sees every event that came
// before the end of a Run. It must return fast and must not send commands.
func (tab *Tab) onEvent(ev any) {
	switch ev := ev.(type) {
	case *runtime.EventConsoleAPICalled:
		if ev.Type != runtime.ConsoleAPICalledTypeError && ev.Type != runtime.ConsoleAPICalledTypeAssert {
			return
		}
		line := "console." + string(ev.Type) + ": " + argsText(ev.Args)
		if st := ev.StackTrace; st != nil && len(st.CallFrames) > 0 {
			f := st.CallFrames[0]
			line += fmt.Sprintf(" (%s:%d:%d)", f.URL, f.LineNumber+1, f.ColumnNumber+1)
		}
		tab.addProblem(line)
	case *runtime.EventExceptionThrown:
		d := ev.ExceptionDetails
		if d == nil {
			return
		}
		text := d.Text
		if d.Exception != nil {
			desc, _, _ := strings.Cut(objectText(d.Exception), "\n")
			text += " " + desc
		}
		url := d.URL
		if url == "" && d.StackTrace != nil && len(d.StackTrace.CallFrames) > 0 {
			url = d.StackTrace.CallFrames[0].URL
		}
		tab.addProblem(fmt.Sprintf("exception: %s (%s:%d:%d)", strings.TrimSpace(text), url, d.LineNumber+1, d.ColumnNumber+1))
	case *log.EventEntryAdded:
		e := ev.Entry
		if e == nil || e.Level != log.EntryLevelError {
			return
		}
		line := fmt.Sprintf("log error [%s]: %s", e.Source, e.Text)
		if e.URL != "" {
			line += " (" + e.URL + ")"
		}
		tab.addProblem(line)
	case *page.EventJavascriptDialogOpening:
		tab.addProblem(fmt.Sprintf("dialog %s: %q (%s)", ev.Type, ev.Message, ev.URL))
	}
}

func (tab *Tab) addProblem(line string) {
	tab.mu.Lock()
	defer tab.mu.Unlock()
	tab.problems = append(tab.problems, line)
}

// argsText renders the arguments of a console call, separated by spaces.
func argsText(args []*runtime.RemoteObject) string {
	parts := make([]string, 0, len(args))
	for _, a := range args {
		parts = append(parts, objectText(a))
	}
	return strings.Join(parts, " ")
}

// objectText renders one value that the page sent: a string as it is, another
// value by its description.
func objectText(o *runtime.RemoteObject) string {
	switch {
	case o == nil:
		return "null"
	case o.Type == runtime.RemoteObjectTypeString:
		var s string
		if err := jsonv2.Unmarshal(o.Value, &s); err == nil {
			return s
		}
	case o.UnserializableValue != "":
		return string(o.UnserializableValue)
	case o.Description != "":
		return o.Description
	}
	if len(o.Value) > 0 {
		return string(o.Value)
	}
	return string(o.Type)
}

// Context returns the chromedp context of the tab, for chromedp.Run,
// chromedp.Do and chromedp.Call. It has no deadline; [Tab.Run] adds one.
func (tab *Tab) Context() context.Context {
	return tab.ctx
}

// Run runs the actions in the tab, in order, with the time limit of the
// browser ([DefaultTimeout] unless [WithTimeout] changed it) for all of them.
func (tab *Tab) Run(actions ...chromedp.Action[chromedp.Void]) error {
	_, err := RunValue(tab, chromedp.Steps(actions...))
	return err
}

// RunValue runs one action that returns a value, such as chromedp.Text or
// chromedp.Evaluate, in the tab, with the time limit of [Tab.Run].
func RunValue[T any](tab *Tab, action chromedp.Action[T]) (T, error) {
	v, err := runValue(tab, action)
	if err != nil {
		return v, fmt.Errorf("browsertest: %w", err)
	}
	return v, nil
}

// runValue is RunValue; its errors have no prefix, for the methods that add
// their own.
func runValue[T any](tab *Tab, action chromedp.Action[T]) (T, error) {
	ctx, cancel := context.WithTimeout(tab.ctx, tab.timeout)
	defer cancel()
	v, err := chromedp.Run(ctx, action)
	if err != nil && errors.Is(err, context.DeadlineExceeded) && tab.ctx.Err() == nil {
		err = fmt.Errorf("no result within %v: %w", tab.timeout, err)
	}
	return v, err
}

// Navigate loads the URL in the tab and waits for its load event. It returns
// an error when the page does not load or when its status is 400 or more; to
// look at an error page, run chromedp.Navigate with [Tab.Run] instead.
func (tab *Tab) Navigate(url string) error {
	resp, err := runValue(tab, chromedp.NavigateResponse(url))
	if err != nil {
		return fmt.Errorf("browsertest: navigating to %s: %w", url, err)
	}
	if resp != nil && resp.Status >= 400 {
		return fmt.Errorf("browsertest: navigating to %s: HTTP status %d %s", url, resp.Status, resp.StatusText)
	}
	return nil
}

// Problems returns the problems that the tab recorded so far, one readable
// line each: calls of console.error and failed console.assert, uncaught
// exceptions and promise rejections, errors of the browser log (such as a
// failed resource load or a Content-Security-Policy violation), and JavaScript
// dialogs.
func (tab *Tab) Problems() []string {
	tab.mu.Lock()
	defer tab.mu.Unlock()
	return append([]string(nil), tab.problems...)
}

// ResetProblems forgets the problems recorded so far, for a test that causes
// some on purpose.
func (tab *Tab) ResetProblems() {
	tab.mu.Lock()
	defer tab.mu.Unlock()
	tab.problems = nil
}

// AssertClean fails the test, with t.Error, when the tab recorded problems,
// and lists them.
func (tab *Tab) AssertClean(t testing.TB) {
	t.Helper()
	if p := tab.Problems(); len(p) > 0 {
		t.Errorf("browsertest: the page had %d problem(s):\n\t%s", len(p), strings.Join(p, "\n\t"))
	}
}
