package main

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	cronium "github.com/cronium/executor"
	"github.com/cronium/executor/internal/browsertest"
)

// BenchmarkDashboardPages loads two heavy pages in headless Chromium from a
// real server: the events page of a user with 1,000 events (its first 100,
// and 100 found by a filter), and the page
// of an execution with 10 MiB of logs. It reports medians of the server's
// own time (its Server-Timing header), the time to the first byte, to
// DOMContentLoaded and to load, the page's size, and how long the loaded
// page takes to answer a click (a frame after it: "stays responsive").
// Beside them, as the baseline, the API calls the pages are built from,
// timed from Go (request to decoded answer).
//
//	go test -run '^$' -bench DashboardPages -benchtime 20x ./cmd/cronium
func BenchmarkDashboardPages(b *testing.B) {
	s := newServer(b, 4)
	s.env = append(s.env, "CRONIUM_LOG_LIMIT=16Mi") // the default keeps 1 MiB of an execution's logs
	s.start()
	key := s.user("ada", "enterprise")
	for i := range 1000 {
		ev := map[string]any{"name": fmt.Sprintf("event-%04d", i), "language": "bash", "script": "echo hello from event " + fmt.Sprint(i)}
		if i%2 == 0 {
			ev["schedule"] = "0 0 1 1 *" // scheduled, but not to fire during the benchmark
			ev["timezone"] = "Europe/Berlin"
		}
		if st := s.api(key, "POST", "/v1/events", ev, nil); st != 201 {
			b.Fatalf("create event %d: %d", i, st)
		}
	}
	script := "head -c 9000000 /dev/urandom | base64 -w 120" // 12 MB of lines: 10 MiB kept (the output cap)
	if st := s.api(key, "POST", "/v1/events", map[string]any{"name": "loud", "language": "bash", "script": script, "timeout": "120s"}, nil); st != 201 {
		b.Fatalf("create loud: %d", st)
	}
	var x cronium.Execution
	if st := s.api(key, "POST", "/v1/events/loud/trigger", map[string]any{}, &x); st != 202 {
		b.Fatalf("trigger: %d", st)
	}
	for deadline := time.Now().Add(3 * time.Minute); ; time.Sleep(200 * time.Millisecond) {
		s.api(key, "GET", "/v1/executions/"+x.ID, nil, &x)
		if x.Status == cronium.StatusFinished {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("the loud run did not finish: %+v", x)
		}
	}
	if x.LogBytes < 10<<20 {
		b.Fatalf("the loud run kept %d bytes of logs, want 10 MiB", x.LogBytes)
	}
	// The baseline: the API calls the pages make, over HTTP from Go.
	for _, call := range []struct{ name, path string }{
		{"api-events-1000", "/v1/events"},
		{"api-logs-tail-256KiB", "/v1/executions/" + x.ID + "/logs?tail=262144"},
	} {
		b.Run(call.name, func(b *testing.B) {
			var ms []float64
			for b.Loop() {
				start := time.Now()
				var body json.RawMessage // read whole
				if st := s.api(key, "GET", call.path, nil, &body); st != 200 {
					b.Fatalf("%s: %d", call.path, st)
				}
				ms = append(ms, float64(time.Since(start).Microseconds())/1000)
			}
			b.ReportMetric(median(ms), "server-ms")
		})
	}
	br := browsertest.New(b)
	d := &dash{t: b, s: s, tab: br.Tab(b)}
	d.signIn(key)
	for _, page := range []struct{ name, path, ready string }{
		{"events-1000", "/events", `document.querySelectorAll("#events tbody tr").length === 100`},
		{"events-1000-filtered", "/events?q=event-09", `document.querySelectorAll("#events tbody tr").length === 100`},
		{"execution-10MiB-logs", "/executions/" + x.ID, `document.querySelector("#logs").innerText.length > 100000`},
	} {
		b.Run(page.name, func(b *testing.B) {
			var server, ttfb, dcl, load, answer, size []float64
			for b.Loop() {
				d.open(page.path)
				d.waitFor(page.name+" is complete", page.ready, 30*time.Second)
				nt, err := d.tab.Navigation()
				if err != nil {
					b.Fatal(err)
				}
				// A click on the page's heading, and the frame after it.
				ms, err := browsertest.RunValue(d.tab, chromedp.Evaluate[float64](`new Promise(r => { const t0 = performance.now(); document.querySelector("h1").click(); requestAnimationFrame(() => setTimeout(() => r(performance.now() - t0))); })`, chromedp.EvalAwaitPromise))
				if err != nil {
					b.Fatal(err)
				}
				server = append(server, nt.ServerTiming["app"])
				ttfb, dcl, load, answer = append(ttfb, nt.ResponseWait), append(dcl, nt.DOMContentLoaded), append(load, nt.Load), append(answer, ms)
				size = append(size, eval[float64](d, `document.documentElement.outerHTML.length / 1024`))
			}
			b.ReportMetric(median(server), "server-ms")
			b.ReportMetric(median(ttfb), "ttfb-ms")
			b.ReportMetric(median(dcl), "domcontentloaded-ms")
			b.ReportMetric(median(load), "load-ms")
			b.ReportMetric(median(answer), "click-to-frame-ms")
			b.ReportMetric(median(size), "html-KiB")
		})
	}
	d.tab.AssertClean(b)
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}
