package browsertest

import (
	_ "embed" // for the axe-core script
	"fmt"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// axeSource is axe-core 4.14.1 (MPL-2.0), see axe/README.md.
//
//go:embed axe/axe.min.js
var axeSource string

// Violation is a rule of axe-core that the page breaks.
type Violation struct {
	ID      string   `json:"id"`      // rule id, such as "image-alt"
	Impact  string   `json:"impact"`  // "minor", "moderate", "serious" or "critical"
	Help    string   `json:"help"`    // one-line description of the rule
	HelpURL string   `json:"helpUrl"` // page of Deque University about the rule
	Targets []string `json:"targets"` // CSS selectors of the elements that break it
}

// String returns the violation on one line.
func (v Violation) String() string {
	return fmt.Sprintf("[%s] %s: %s: %s (%s)", v.Impact, v.ID, v.Help, strings.Join(v.Targets, ", "), v.HelpURL)
}

// Serious reports whether the impact of the violation is "serious" or
// "critical".
func (v Violation) Serious() bool {
	return v.Impact == "serious" || v.Impact == "critical"
}

// axeRunJS runs axe on the document and keeps what Violation needs. A target
// is a selector, or a list of selectors for an element in a shadow DOM or in an
// iframe; the list is joined with " >>> ".
const axeRunJS = `axe.run(document, {resultTypes: ['violations']}).then(r => r.violations.map(v => ({
	id: v.id,
	impact: v.impact || '',
	help: v.help,
	helpUrl: v.helpUrl,
	targets: v.nodes.map(n => n.target.map(s => Array.isArray(s) ? s.join(' >>> ') : String(s)).join(' >>> ')),
})))`

// Axe runs the embedded axe-core on the page that is loaded in the tab and
// returns its violations. It fails the test with t.Fatal when axe does not
// run.
//
// The script goes in with Runtime.evaluate of the DevTools protocol, which the
// Content-Security-Policy of the page does not restrict, so it works with a
// strict policy such as "default-src 'self'; script-src 'self'". The script
// stays in the page until the next navigation.
func (tab *Tab) Axe(t testing.TB) []Violation {
	t.Helper()
	loaded, err := runValue(tab, chromedp.Evaluate[bool](`typeof window.axe === 'object' && typeof window.axe.run === 'function'`))
	if err != nil {
		t.Fatalf("browsertest: looking for axe-core in the page: %v", err)
	}
	if !loaded {
		// The trailing expression keeps the result of the script, which
		// is not JSON, from being sent back.
		if _, err := runValue(tab, chromedp.Evaluate[chromedp.Void](axeSource+"\n;void 0")); err != nil {
			t.Fatalf("browsertest: injecting axe-core: %v", err)
		}
	}
	vs, err := runValue(tab, chromedp.Evaluate[[]Violation](axeRunJS, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("browsertest: running axe-core: %v", err)
	}
	return vs
}

// AssertAccessible runs [Tab.Axe] and fails the test, with t.Error, for each
// violation with the impact "serious" or "critical". It logs the other
// violations. page names the page in the messages.
func (tab *Tab) AssertAccessible(t testing.TB, page string) {
	t.Helper()
	var serious []string
	for _, v := range tab.Axe(t) {
		if v.Serious() {
			serious = append(serious, v.String())
		} else {
			t.Logf("browsertest: %s: accessibility: %s", page, v)
		}
	}
	if len(serious) > 0 {
		t.Errorf("browsertest: %s: %d serious accessibility violation(s):\n\t%s", page, len(serious), strings.Join(serious, "\n\t"))
	}
}
