package browsertest

import (
	"fmt"

	"github.com/chromedp/chromedp"
)

// NavTiming holds the navigation timing of the page in a tab, from
// performance.getEntriesByType('navigation')[0]. The times are in
// milliseconds; the events are measured from the start of the navigation.
type NavTiming struct {
	// ServerTiming maps the name of each entry of the Server-Timing response
	// header to its duration (dur), for example "app" for
	// "Server-Timing: app;dur=12.3". When a name appears more than once, the
	// last entry wins.
	ServerTiming map[string]float64

	// ResponseWait is responseStart - requestStart: the time from the
	// request to the first byte of the response.
	ResponseWait float64

	// DOMContentLoaded is domContentLoadedEventEnd.
	DOMContentLoaded float64

	// Load is loadEventEnd.
	Load float64
}

// navTimingJS waits (up to 5 s) until the load event of the page has ended,
// because loadEventEnd is 0 before, and returns the timing, or null when the
// page has no navigation entry (about:blank).
const navTimingJS = `(async () => {
	const entry = () => performance.getEntriesByType('navigation')[0];
	for (let i = 0; i < 100 && entry() && !(entry().loadEventEnd > 0); i++) {
		await new Promise(resolve => setTimeout(resolve, 50));
	}
	const e = entry();
	if (!e) return null;
	const st = {};
	for (const s of e.serverTiming || []) st[s.name] = s.duration;
	return {
		serverTiming: st,
		responseWait: e.responseStart - e.requestStart,
		domContentLoaded: e.domContentLoadedEventEnd,
		load: e.loadEventEnd,
	};
})()`

// Navigation returns the navigation timing of the page that is loaded in the
// tab. It waits for the end of the load event for up to 5 seconds.
//
// The browser only shows the Server-Timing header to a secure context, such
// as a page on 127.0.0.1, localhost or https.
func (tab *Tab) Navigation() (NavTiming, error) {
	type result struct {
		ServerTiming     map[string]float64 `json:"serverTiming"`
		ResponseWait     float64            `json:"responseWait"`
		DOMContentLoaded float64            `json:"domContentLoaded"`
		Load             float64            `json:"load"`
	}
	r, err := runValue(tab, chromedp.Evaluate[*result](navTimingJS, chromedp.EvalAwaitPromise))
	if err != nil {
		return NavTiming{}, fmt.Errorf("browsertest: reading the navigation timing: %w", err)
	}
	if r == nil {
		return NavTiming{}, fmt.Errorf("browsertest: reading the navigation timing: the page has no navigation entry")
	}
	return NavTiming{
		ServerTiming:     r.ServerTiming,
		ResponseWait:     r.ResponseWait,
		DOMContentLoaded: r.DOMContentLoaded,
		Load:             r.Load,
	}, nil
}
