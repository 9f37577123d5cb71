package web

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"strings"
	"time"

	cronium "github.com/cronium/executor"
)

// pageNames are the templates under templates/, each with layout.html.
var pageNames = []string{"login", "error", "events", "new", "event", "delete", "executions", "execution", "usage", "users"}

// pages holds the parsed templates.
type pages struct {
	t map[string]*template.Template
}

var funcs = template.FuncMap{
	"when": func(t any) string {
		switch v := t.(type) {
		case time.Time:
			if v.IsZero() {
				return ""
			}
			return v.UTC().Format("2006-01-02 15:04:05Z")
		case *time.Time:
			if v == nil || v.IsZero() {
				return ""
			}
			return v.UTC().Format("2006-01-02 15:04:05Z")
		}
		return ""
	},
	"iso": func(t any) string {
		switch v := t.(type) {
		case time.Time:
			return v.UTC().Format(time.RFC3339)
		case *time.Time:
			if v != nil {
				return v.UTC().Format(time.RFC3339)
			}
		}
		return ""
	},
	"dur": func(d time.Duration) string {
		switch {
		case d < time.Millisecond:
			return d.Round(time.Microsecond).String()
		case d < time.Second:
			return d.Round(time.Millisecond / 10).String()
		}
		return d.Round(time.Millisecond).String()
	},
	"took": func(x cronium.Execution) string {
		if x.StartedAt == nil || x.FinishedAt == nil {
			return ""
		}
		return x.FinishedAt.Sub(*x.StartedAt).Round(time.Millisecond).String()
	},
	"size": func(n int64) string {
		s := cronium.Size(n).String()
		if s[len(s)-1] >= '0' && s[len(s)-1] <= '9' {
			s += " bytes"
		}
		return s
	},
	"pct":   func(f float64) string { return fmt.Sprintf("%.1f", f) },
	"badge": badge,
	"deref": func(b *bool) string {
		if b == nil {
			return "not set"
		}
		return fmt.Sprint(*b)
	},
	"code": func(c *int) string {
		if c == nil {
			return ""
		}
		return fmt.Sprint(*c)
	},
	"short": func(id string) string {
		if len(id) > 12 {
			return id[:12]
		}
		return id
	},
	"join": strings.Join,
	"runs": func(xs []cronium.Execution, label string, withEvent bool) map[string]any {
		return map[string]any{"Runs": xs, "Label": label, "WithEvent": withEvent}
	},
	"add":      func(a, b int) int { return a + b },
	"outcomes": func() []cronium.Outcome { return cronium.Outcomes },
	"static":   staticURL,
}

// badge is the CSS class of an outcome or status.
func badge(v any) string {
	switch fmt.Sprint(v) {
	case "succeeded", "scheduled":
		return "ok"
	case "failed", "timed_out", "oom_killed", "output_limit", "engine_error", "never fires":
		return "bad"
	case "cancelled", "paused":
		return "muted"
	}
	return "info"
}

func parsePages() (*pages, error) {
	p := &pages{t: map[string]*template.Template{}}
	for _, n := range pageNames {
		t, err := template.New(n).Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/partials.html", "templates/"+n+".html")
		if err != nil {
			return nil, fmt.Errorf("web: parse template %s: %w", n, err)
		}
		p.t[n] = t
	}
	return p, nil
}

// view is what every page template gets.
type view struct {
	Title string
	Page  string
	S     *session
	CSRF  string
	Data  any
}

// render writes a page, with how long the server took as Server-Timing.
func (h *Handler) render(w http.ResponseWriter, r *http.Request, s *session, status int, page, title string, data any) {
	v := view{Title: title, Page: page, S: s, Data: data}
	start := time.Now()
	if s != nil {
		v.CSRF = s.csrf
		if !s.start.IsZero() {
			start = s.start
		}
	}
	var b bytes.Buffer
	if err := h.pages.t[page].ExecuteTemplate(&b, "layout", v); err != nil {
		h.log.Error("render a dashboard page", "page", page, "err", err)
		http.Error(w, "internal error; the server log has the details", http.StatusInternalServerError)
		return
	}
	hd := w.Header()
	hd.Set("Content-Type", "text/html; charset=utf-8")
	hd.Set("Cache-Control", "no-store")
	hd.Set("Server-Timing", fmt.Sprintf("app;dur=%.1f", float64(time.Since(start).Microseconds())/1000))
	w.WriteHeader(status)
	w.Write(b.Bytes())
}

// chart is a bar chart drawn as SVG on the server, with its numbers as a
// table for screen readers.
type chart struct {
	Title  string
	Bars   []chartBar
	Max    string
	Width  int
	Height int
}

type chartBar struct {
	Label, Value string
	X, Y, W, H   float64
}

func newChart(title string, days []string, value func(string) float64, format string) chart {
	c := chart{Title: title, Width: 28 * len(days), Height: 120}
	top := 0.0
	for _, d := range days {
		top = max(top, value(d))
	}
	c.Max = fmt.Sprintf(format, top)
	for i, d := range days {
		v := value(d)
		h := 0.0
		if top > 0 {
			h = 110 * v / top
		}
		c.Bars = append(c.Bars, chartBar{Label: d, Value: fmt.Sprintf(format, v), X: float64(i*28 + 4), W: 20, H: h, Y: 115 - h})
	}
	return c
}

// staticVersion is a hash of the embedded static files: their URLs carry
// it, so that a browser fetches them anew after an upgrade.
var staticVersion = func() string {
	h := sha256.New()
	fs.WalkDir(staticFS, "static", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			b, _ := staticFS.ReadFile(p)
			h.Write(b)
		}
		return nil
	})
	return hex.EncodeToString(h.Sum(nil))[:12]
}()

func staticURL(name string) string { return "/static/" + name + "?v=" + staticVersion }
