package web

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	cronium "github.com/cronium/executor"
	"github.com/cronium/executor/api"
	"github.com/cronium/executor/schedule"
	"github.com/cronium/executor/yamljson"
)

// ---- events

// eventRow is one line of the events page.
type eventRow struct {
	api.EventView
	Words   string // the schedule in words
	NextUTC string // RFC 3339, for the browser to show in the viewer's zone
	Next    string // in the event's zone
	Rate    string // success rate of its stored runs
	Error   string // a form's problem (the delete page)
}

func rowOf(v api.EventView) eventRow {
	row := eventRow{EventView: v}
	if v.Schedule != "" {
		row.Words = schedule.Describe(v.Schedule)
	}
	if v.Status.NextRunUTC != nil {
		row.NextUTC = v.Status.NextRunUTC.Format(time.RFC3339)
		row.Next = v.Status.NextRun.Format("2006-01-02 15:04 MST")
	}
	if n := v.Status.Runs; n > 0 {
		row.Rate = fmt.Sprintf("%.0f%% of %d", 100*float64(v.Status.Succeeded)/float64(n), n)
	}
	return row
}

// items reads the items of an API list.
func items[T any](h *Handler, r *http.Request, s *session, path string) ([]T, error) {
	var page struct {
		Items []T `json:"items"`
	}
	err := h.call(r, s, "GET", path, nil, &page)
	return page.Items, err
}

// eventsPerPage is how many events one page of the list shows.
const eventsPerPage = 100

// eventsData is the events page's: one page of the events that match the
// filter, sorted by name.
type eventsData struct {
	Rows     []eventRow
	Q        string // the filter, as typed
	Total    int    // the user's events
	Matched  int    // of them, those the filter matches
	From, To int    // the rows shown, counted from 1
	Page     int
	Pages    int
	Prev     string // the previous page's URL; "" on the first
	Next     string // the next page's URL; "" on the last
}

func (h *Handler) eventsPage(w http.ResponseWriter, r *http.Request, s *session) error {
	q := r.URL.Query()
	filter := strings.TrimSpace(q.Get("q"))
	page := 1
	if p := q.Get("page"); p != "" {
		n, err := strconv.Atoi(p)
		if errors.Is(err, strconv.ErrRange) && n > 0 {
			err = nil // a page past any list: the last
		}
		if err != nil || n < 1 {
			return &apiError{Status: http.StatusBadRequest, Field: "page", Message: fmt.Sprintf("page: %q is not a page number: want 1 or more", p)}
		}
		page = n
	}
	evs, err := items[api.EventView](h, r, s, "/v1/events")
	if err != nil {
		return err
	}
	d := eventsData{Q: filter, Total: len(evs)}
	if want := strings.ToLower(filter); want != "" {
		evs = slices.DeleteFunc(evs, func(v api.EventView) bool { return !matches(v, want) })
	}
	slices.SortFunc(evs, func(a, b api.EventView) int { return strings.Compare(a.Name, b.Name) })
	d.Matched = len(evs)
	d.Pages = max(1, (d.Matched+eventsPerPage-1)/eventsPerPage)
	d.Page = min(page, d.Pages) // past the end: the last page
	from := (d.Page - 1) * eventsPerPage
	for _, v := range evs[from:min(from+eventsPerPage, d.Matched)] {
		d.Rows = append(d.Rows, rowOf(v)) // only the rows shown: their next run and schedule in words
	}
	d.From, d.To = from+1, from+len(d.Rows)
	link := func(p int) string {
		v := url.Values{}
		if filter != "" {
			v.Set("q", filter)
		}
		if p > 1 {
			v.Set("page", strconv.Itoa(p))
		}
		if len(v) == 0 {
			return "/events"
		}
		return "/events?" + v.Encode()
	}
	if d.Page > 1 {
		d.Prev = link(d.Page - 1)
	}
	if d.Page < d.Pages {
		d.Next = link(d.Page + 1)
	}
	title := "Events"
	if filter != "" {
		title += " matching “" + filter + "”"
	}
	if d.Pages > 1 {
		title += fmt.Sprintf(", page %d of %d", d.Page, d.Pages)
	}
	h.render(w, r, s, http.StatusOK, "events", title, d)
	return nil
}

// matches reports whether the event's row shows want (lower case) in its
// name, language, schedule (as written or in words) or state.
func matches(v api.EventView, want string) bool {
	for _, f := range []string{v.Name, string(v.Language), v.Schedule, v.Status.State} {
		if strings.Contains(strings.ToLower(f), want) {
			return true
		}
	}
	return v.Schedule != "" && strings.Contains(strings.ToLower(schedule.Describe(v.Schedule)), want)
}

// newEventTemplate is what the new-event form starts with.
const newEventTemplate = `name: hello
language: bash
# Runs when triggered; to run on a schedule too, uncomment:
# schedule: "*/15 * * * *"
# timezone: Europe/Berlin
script: |
  echo "hello from $(hostname)"
resources:
  memory: 128Mi
timeout: 30s
`

// editData is the new-event page's and the event page's form.
type editData struct {
	YAML  string
	Error string // the API's message, which names the field
}

func (h *Handler) newEventPage(w http.ResponseWriter, r *http.Request, s *session) error {
	h.render(w, r, s, http.StatusOK, "new", "New event", editData{YAML: newEventTemplate})
	return nil
}

// eventJSON reads the YAML of a form into the JSON the API takes; a
// problem is an *apiError naming the field "yaml".
func eventJSON(text string) (json.RawMessage, error) {
	if strings.TrimSpace(text) == "" {
		return nil, &apiError{Status: http.StatusBadRequest, Field: "yaml", Message: "yaml: is empty: write the event's definition"}
	}
	docs, err := yamljson.Docs([]byte(text))
	if err != nil {
		return nil, &apiError{Status: http.StatusBadRequest, Field: "yaml", Message: "yaml: is not valid YAML: " + err.Error()}
	}
	if len(docs) != 1 {
		return nil, &apiError{Status: http.StatusBadRequest, Field: "yaml", Message: fmt.Sprintf("yaml: holds %d documents: the form takes one event (apply several with `cronium event apply -f FILE`)", len(docs))}
	}
	j := docs[0]
	if !strings.HasPrefix(string(j), "{") {
		return nil, &apiError{Status: http.StatusBadRequest, Field: "yaml", Message: "yaml: is not a mapping of fields: want name:, language:, script: and the rest"}
	}
	return j, nil
}

// formError returns the error a form shows inline (the API's field-named
// 4xx errors), or nil when err is something else.
func formError(err error) *apiError {
	var ae *apiError
	if ok := errors.As(err, &ae); ok && ae.Status < 500 && ae.Status != http.StatusNotFound {
		return ae
	}
	return nil
}

func (h *Handler) createEvent(w http.ResponseWriter, r *http.Request, s *session) error {
	text := r.PostFormValue("yaml")
	body, err := eventJSON(text)
	var created cronium.Event
	if err == nil {
		err = h.call(r, s, "POST", "/v1/events", body, &created)
	}
	if fe := formError(err); fe != nil {
		msg := fe.Error()
		if fe.Status == http.StatusConflict {
			var ev struct{ Name string }
			json.Unmarshal(body, &ev)
			msg = "name: an event named " + ev.Name + " exists already: open it from the events page to change it, or choose another name"
		}
		h.render(w, r, s, fe.Status, "new", "New event", editData{YAML: text, Error: msg})
		return nil
	}
	if err != nil {
		return err
	}
	http.Redirect(w, r, "/events/"+url.PathEscape(created.Name), http.StatusSeeOther)
	return nil
}

// eventData is the event page's.
type eventData struct {
	Event   eventRow
	Edit    editData
	Input   string
	InputEr string
	History []cronium.Execution
	Saved   bool
}

// serverFields are what the server sets on an event: not part of what the
// user edits.
var serverFields = []string{"id", "user", "created_at", "updated_at", "package_lock", "image_pinned", "status"}

func eventYAML(ev cronium.Event) (string, error) {
	j, err := json.Marshal(ev)
	if err != nil {
		return "", err
	}
	var m map[string]any
	if err := json.Unmarshal(j, &m); err != nil {
		return "", err
	}
	for _, k := range serverFields {
		delete(m, k)
	}
	j, _ = json.Marshal(m)
	y, err := yamljson.FromJSON(j)
	return string(y), err
}

func (h *Handler) loadEvent(r *http.Request, s *session, d *eventData) error {
	name := r.PathValue("name")
	var v api.EventView
	if err := h.call(r, s, "GET", "/v1/events/"+url.PathEscape(name), nil, &v); err != nil {
		return err
	}
	d.Event = rowOf(v)
	if d.Edit.YAML == "" {
		y, err := eventYAML(v.Event)
		if err != nil {
			return fmt.Errorf("show event %s as YAML: %w", name, err)
		}
		d.Edit.YAML = y
	}
	var err error
	d.History, err = items[cronium.Execution](h, r, s, "/v1/executions?limit=50&event="+url.QueryEscape(name))
	return err
}

func (h *Handler) eventPage(w http.ResponseWriter, r *http.Request, s *session) error {
	d := eventData{Saved: r.URL.Query().Get("saved") == "1"}
	if err := h.loadEvent(r, s, &d); err != nil {
		return err
	}
	h.render(w, r, s, http.StatusOK, "event", d.Event.Name, d)
	return nil
}

// saveEvent replaces an event with the form's YAML.
func (h *Handler) saveEvent(w http.ResponseWriter, r *http.Request, s *session) error {
	name := r.PathValue("name")
	text := r.PostFormValue("yaml")
	body, err := eventJSON(text)
	if err == nil {
		err = h.call(r, s, "PUT", "/v1/events/"+url.PathEscape(name), body, nil)
	}
	if fe := formError(err); fe != nil {
		d := eventData{Edit: editData{YAML: text, Error: fe.Error()}}
		if err := h.loadEvent(r, s, &d); err != nil {
			return err
		}
		h.render(w, r, s, fe.Status, "event", d.Event.Name, d)
		return nil
	}
	if err != nil {
		return err
	}
	http.Redirect(w, r, "/events/"+url.PathEscape(name)+"?saved=1", http.StatusSeeOther)
	return nil
}

func (h *Handler) triggerEvent(w http.ResponseWriter, r *http.Request, s *session) error {
	name := r.PathValue("name")
	input := strings.TrimSpace(r.PostFormValue("input"))
	body := map[string]any{}
	var err error
	if input != "" {
		if !json.Valid([]byte(input)) {
			err = &apiError{Status: http.StatusBadRequest, Field: "input", Message: "input: is not JSON: want a JSON value like {\"name\": \"Ada\"}, or leave it empty"}
		}
		body["input"] = json.RawMessage(input)
	}
	var x cronium.Execution
	if err == nil {
		err = h.call(r, s, "POST", "/v1/events/"+url.PathEscape(name)+"/trigger", body, &x) // manual: callKey says the dashboard asks
	}
	if fe := formError(err); fe != nil {
		d := eventData{Input: input, InputEr: fe.Error()}
		if err := h.loadEvent(r, s, &d); err != nil {
			return err
		}
		h.render(w, r, s, fe.Status, "event", d.Event.Name, d)
		return nil
	}
	if err != nil {
		return err
	}
	http.Redirect(w, r, "/executions/"+url.PathEscape(x.ID), http.StatusSeeOther)
	return nil
}

func (h *Handler) setPaused(w http.ResponseWriter, r *http.Request, s *session, action string) error {
	name := r.PathValue("name")
	if err := h.call(r, s, "POST", "/v1/events/"+url.PathEscape(name)+"/"+action, nil, nil); err != nil {
		return err
	}
	http.Redirect(w, r, "/events/"+url.PathEscape(name), http.StatusSeeOther)
	return nil
}

func (h *Handler) pauseEvent(w http.ResponseWriter, r *http.Request, s *session) error {
	return h.setPaused(w, r, s, "pause")
}

func (h *Handler) resumeEvent(w http.ResponseWriter, r *http.Request, s *session) error {
	return h.setPaused(w, r, s, "resume")
}

func (h *Handler) deleteEventPage(w http.ResponseWriter, r *http.Request, s *session) error {
	var v api.EventView
	if err := h.call(r, s, "GET", "/v1/events/"+url.PathEscape(r.PathValue("name")), nil, &v); err != nil {
		return err
	}
	h.render(w, r, s, http.StatusOK, "delete", "Delete "+v.Name, rowOf(v))
	return nil
}

func (h *Handler) deleteEvent(w http.ResponseWriter, r *http.Request, s *session) error {
	name := r.PathValue("name")
	if r.PostFormValue("confirm") != name {
		var v api.EventView
		if err := h.call(r, s, "GET", "/v1/events/"+url.PathEscape(name), nil, &v); err != nil {
			return err
		}
		row := rowOf(v)
		row.Error = "confirm: type the event's name, " + name + ", to delete it"
		h.render(w, r, s, http.StatusBadRequest, "delete", "Delete "+v.Name, row)
		return nil
	}
	if err := h.call(r, s, "DELETE", "/v1/events/"+url.PathEscape(name), nil, nil); err != nil {
		if fe := formError(err); fe != nil {
			h.render(w, r, s, fe.Status, "error", "Not deleted", errorData{Message: fe.Error()})
			return nil
		}
		return err
	}
	http.Redirect(w, r, "/events", http.StatusSeeOther)
	return nil
}

// ---- executions

func (h *Handler) executionsPage(w http.ResponseWriter, r *http.Request, s *session) error {
	xs, err := items[cronium.Execution](h, r, s, "/v1/executions?limit=100")
	if err != nil {
		return err
	}
	h.render(w, r, s, http.StatusOK, "executions", "Executions", xs)
	return nil
}

// logTail is how many bytes of the newest logs the execution page shows;
// the rest is a download.
const logTail = 256 << 10

// executionData is the execution page's.
type executionData struct {
	X       api.ExecutionView
	Logs    []logLine
	Earlier bool
	After   uint64
	Phases  []phaseBar
	Bars    []usageBar
	Output  string
	Cost    string
	Live    bool
}

// logLine is one log chunk.
type logLine struct {
	Stream string `json:"stream"`
	Data   string `json:"data"`
	Seq    uint64 `json:"seq"`
}

// phaseBar is one phase of the timeline, as a share of the whole.
type phaseBar struct {
	Name  string
	Dur   time.Duration
	Share float64 // percent
}

// usageBar is a use against its limit.
type usageBar struct {
	Name, Used, Limit, Key string
	Share                  float64 // percent, at most 100
	LimitValue             float64 // for live updates
	Unit                   string  // "bytes", "cpu", "count"
}

// execution reads an execution of this view's user: an admin sees any
// execution by id through the API, but the dashboard shows one user's.
func (h *Handler) execution(r *http.Request, s *session, id string) (api.ExecutionView, error) {
	var x api.ExecutionView
	if err := h.call(r, s, "GET", "/v1/executions/"+url.PathEscape(id), nil, &x); err != nil {
		return x, err
	}
	if s.User.Admin && x.User != s.Name() {
		return x, &apiError{Status: http.StatusNotFound, Message: "not found"}
	}
	return x, nil
}

func (h *Handler) executionPage(w http.ResponseWriter, r *http.Request, s *session) error {
	id := r.PathValue("id")
	var d executionData
	var err error
	if d.X, err = h.execution(r, s, id); err != nil {
		return err
	}
	var logs struct {
		Items     []logLine `json:"items"`
		NextAfter uint64    `json:"next_after"`
		Earlier   bool      `json:"earlier"`
	}
	if err := h.call(r, s, "GET", fmt.Sprintf("/v1/executions/%s/logs?tail=%d", url.PathEscape(id), logTail), nil, &logs); err != nil {
		return err
	}
	d.Logs, d.After, d.Earlier = logs.Items, logs.NextAfter, logs.Earlier
	d.Live = d.X.Status != cronium.StatusFinished
	if len(d.X.Output) > 0 {
		d.Output = indentJSON(d.X.Output)
	}
	if res := d.X.Result; res != nil {
		d.Phases = phases(d.X.Execution)
		d.Bars = bars(res.Limits, res.Usage, res.Phases.Run)
		if res.Usage.CostMicros > 0 {
			d.Cost = cronium.FormatMicros(res.Usage.CostMicros) + " " + res.Usage.Currency
		}
	} else if d.X.Live != nil {
		d.Bars = liveBars(d.X.Live)
	}
	h.render(w, r, s, http.StatusOK, "execution", "Execution "+d.X.ID, d)
	return nil
}

// indentJSON shows a JSON value indented, with <, > and & as they are
// (the template escapes them for the page).
func indentJSON(b []byte) string {
	var v any
	if json.Unmarshal(b, &v) != nil {
		return string(b)
	}
	return plainJSON(v, "  ")
}

func plainJSON(v any, indent string) string {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", indent)
	enc.Encode(v)
	return strings.TrimSuffix(buf.String(), "\n")
}

// cut shortens s to at most n bytes, at a character boundary.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "…" // a character cut in two is dropped
}

// phases is the timeline: waiting in the queue, then the engine's phases.
func phases(x cronium.Execution) []phaseBar {
	res := x.Result
	var out []phaseBar
	if x.StartedAt != nil {
		q := x.StartedAt.Sub(x.QueuedAt)
		if x.ScheduledAt != nil && x.ScheduledAt.After(x.QueuedAt) {
			q = x.StartedAt.Sub(*x.ScheduledAt)
		}
		out = append(out, phaseBar{Name: "queued", Dur: max(q, 0)})
	}
	p := res.Phases
	out = append(out, phaseBar{Name: "create", Dur: p.Create}, phaseBar{Name: "start", Dur: p.Start}, phaseBar{Name: "run", Dur: p.Run}, phaseBar{Name: "cleanup", Dur: p.Cleanup})
	var total time.Duration
	for _, b := range out {
		total += b.Dur
	}
	for i := range out {
		if total > 0 {
			out[i].Share = 100 * float64(out[i].Dur) / float64(total)
		}
	}
	return out
}

// human says a byte count in the unit that suits it, like 17.4 MiB.
func human(n int64) string {
	units := []string{"bytes", "KiB", "MiB", "GiB", "TiB"}
	f, i := float64(n), 0
	for f >= 1024 && i < len(units)-1 {
		f, i = f/1024, i+1
	}
	if i == 0 {
		return fmt.Sprintf("%d bytes", n)
	}
	return fmt.Sprintf("%.1f %s", f, units[i])
}

func pct(used, limit float64) float64 {
	if limit <= 0 {
		return 0
	}
	return min(100, 100*used/limit)
}

// bars are a finished run's usage against its limits.
func bars(l cronium.Limits, u cronium.Usage, run time.Duration) []usageBar {
	var out []usageBar
	if l.Memory > 0 {
		out = append(out, usageBar{Name: "Memory (peak)", Key: "memory", Used: human(u.PeakMemory), Limit: human(int64(l.Memory)),
			Share: pct(float64(u.PeakMemory), float64(l.Memory)), LimitValue: float64(l.Memory), Unit: "bytes"})
	}
	if l.CPUs > 0 && run > 0 {
		most := l.CPUs * run.Seconds()
		out = append(out, usageBar{Name: "CPU", Key: "cpu", Used: fmt.Sprintf("%.2f s", u.CPUSeconds), Limit: fmt.Sprintf("%.2f s (%g CPUs × %s)", most, l.CPUs, run.Round(time.Millisecond)),
			Share: pct(u.CPUSeconds, most), Unit: "cpu"})
	}
	if l.Pids > 0 && u.PidsPeak > 0 {
		out = append(out, usageBar{Name: "Processes (peak)", Key: "pids", Used: fmt.Sprint(u.PidsPeak), Limit: fmt.Sprint(l.Pids),
			Share: pct(float64(u.PidsPeak), float64(l.Pids)), LimitValue: float64(l.Pids), Unit: "count"})
	}
	if l.Output > 0 {
		out = append(out, usageBar{Name: "Output", Key: "output", Used: human(u.OutputBytes), Limit: human(int64(l.Output)),
			Share: pct(float64(u.OutputBytes), float64(l.Output)), LimitValue: float64(l.Output), Unit: "bytes"})
	}
	if l.Timeout > 0 && run > 0 {
		out = append(out, usageBar{Name: "Time", Key: "time", Used: run.Round(time.Millisecond).String(), Limit: l.Timeout.String(),
			Share: pct(run.Seconds(), l.Timeout.Seconds()), LimitValue: l.Timeout.Seconds(), Unit: "seconds"})
	}
	return out
}

// liveBars are a running execution's latest sample (limits unknown until
// it ends: the bars fill as shares of the peak so far).
func liveBars(u *cronium.UsageSample) []usageBar {
	return []usageBar{
		{Name: "Memory", Key: "memory", Used: human(u.MemoryBytes), Limit: "peak " + human(u.PeakMemory), Share: pct(float64(u.MemoryBytes), float64(u.PeakMemory)), Unit: "bytes"},
		{Name: "CPU", Key: "cpu", Used: fmt.Sprintf("%.2f s", u.CPUSeconds), Limit: "in " + u.Elapsed.D().String(), Unit: "cpu"},
		{Name: "Processes", Key: "pids", Used: fmt.Sprint(u.Pids), Unit: "count"},
	}
}

func (h *Handler) cancelExecution(w http.ResponseWriter, r *http.Request, s *session) error {
	id := r.PathValue("id")
	if _, err := h.execution(r, s, id); err != nil {
		return err
	}
	if err := h.call(r, s, "POST", "/v1/executions/"+url.PathEscape(id)+"/cancel", map[string]string{"reason": "cancelled from the dashboard by " + s.User.Name}, nil); err != nil {
		if fe := formError(err); fe != nil && fe.Status == http.StatusConflict {
			http.Redirect(w, r, "/executions/"+url.PathEscape(id), http.StatusSeeOther)
			return nil // it ended meanwhile
		}
		return err
	}
	http.Redirect(w, r, "/executions/"+url.PathEscape(id), http.StatusSeeOther)
	return nil
}

// streamLogs passes the API's log stream (Server-Sent Events, resumable
// with Last-Event-ID) through to the page.
func (h *Handler) streamLogs(w http.ResponseWriter, r *http.Request, s *session) error {
	if _, err := h.execution(r, s, r.PathValue("id")); err != nil {
		var ae *apiError
		if errors.As(err, &ae) && ae.Status == http.StatusNotFound {
			http.Error(w, "not found", http.StatusNotFound)
			return nil
		}
		return err
	}
	q := url.Values{"follow": {"true"}}
	if a := r.URL.Query().Get("after"); a != "" {
		q.Set("after", a)
	}
	if s.ViewAs != "" {
		q.Set("user", s.ViewAs)
	}
	req, err := http.NewRequestWithContext(api.WithDashboard(r.Context()), "GET", "/v1/executions/"+url.PathEscape(r.PathValue("id"))+"/logs?"+q.Encode(), nil)
	if err != nil {
		return err
	}
	req.RemoteAddr, req.Host = r.RemoteAddr, r.Host
	req.Header.Set("Authorization", "Bearer "+s.key)
	req.Header.Set("Accept", "text/event-stream")
	if id := r.Header.Get("Last-Event-ID"); id != "" {
		req.Header.Set("Last-Event-ID", id)
	}
	h.cfg.API.ServeHTTP(w, req)
	return nil
}

// logsText is an execution's whole log as plain text (a download).
func (h *Handler) logsText(w http.ResponseWriter, r *http.Request, s *session) error {
	id := r.PathValue("id")
	if _, err := h.execution(r, s, id); err != nil {
		return err
	}
	var after uint64
	first := true
	for {
		var page struct {
			Items     []logLine `json:"items"`
			NextAfter uint64    `json:"next_after"`
			Done      bool      `json:"done"`
		}
		if err := h.call(r, s, "GET", fmt.Sprintf("/v1/executions/%s/logs?after=%d", url.PathEscape(id), after), nil, &page); err != nil {
			if first {
				return err
			}
			return nil // mid-download: nothing more can be said
		}
		if first {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.Header().Set("Cache-Control", "no-store")
			w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", id+".log"))
			first = false
		}
		for _, c := range page.Items {
			if _, err := w.Write([]byte(c.Data)); err != nil {
				return nil
			}
		}
		if len(page.Items) == 0 || page.NextAfter == after {
			return nil
		}
		after = page.NextAfter
	}
}

// ---- usage

// usageData is the usage page's.
type usageData struct {
	Days       []string
	Executions chart
	CPU        chart
	Cost       chart
	Outcomes   []outcomeDay
	OutcomeMax int64
	Sampled    bool
	Currency   string
	Total      api.UsageItem
	PoolRows   []map[string]any
	Variables  []variableRow
	Secrets    []string
}

// outcomeDay counts one day's executions by outcome.
type outcomeDay struct {
	Day    string
	Counts []outcomeCount
	Total  int64
}

type outcomeCount struct {
	Outcome cronium.Outcome
	N       int64
	Share   float64
}

type variableRow struct {
	Key, Value string
}

// usageDays is how many days the usage page charts.
const usageDays = 14

func (h *Handler) usagePage(w http.ResponseWriter, r *http.Request, s *session) error {
	var d usageData
	now := time.Now().UTC()
	for i := usageDays - 1; i >= 0; i-- {
		d.Days = append(d.Days, now.AddDate(0, 0, -i).Format(time.DateOnly))
	}
	var rep api.UsageReport
	path := "/v1/usage?by=day&since=" + d.Days[0]
	if err := h.call(r, s, "GET", path, nil, &rep); err != nil {
		return err
	}
	d.Currency, d.Total = rep.Currency, rep.Total
	byDay := map[string]api.UsageItem{}
	for _, it := range rep.Items {
		byDay[it.Day] = it
	}
	d.Executions = newChart("Executions per day", d.Days, func(day string) float64 { return float64(byDay[day].Executions) }, "%.0f")
	d.CPU = newChart("CPU-seconds per day", d.Days, func(day string) float64 { return byDay[day].CPUSeconds }, "%.2f")
	d.Cost = newChart("Cost per day ("+rep.Currency+")", d.Days, func(day string) float64 { return float64(byDay[day].CostMicros) / 1e6 }, "%.4f")
	if err := h.outcomes(r, s, &d); err != nil {
		return err
	}
	var err error
	if d.PoolRows, err = items[map[string]any](h, r, s, "/v1/pools"); err != nil {
		return err
	}
	var vars map[string]any
	if err := h.call(r, s, "GET", "/v1/variables", nil, &vars); err != nil {
		return err
	}
	if items, ok := vars["items"].(map[string]any); ok {
		vars = items
	}
	for k, v := range vars {
		d.Variables = append(d.Variables, variableRow{k, cut(plainJSON(v, ""), 200)})
	}
	slices.SortFunc(d.Variables, func(a, b variableRow) int { return strings.Compare(a.Key, b.Key) })
	var secs struct {
		Items []struct {
			Name string `json:"name"`
		} `json:"items"`
	}
	if err := h.call(r, s, "GET", "/v1/secrets", nil, &secs); err != nil {
		var ae *apiError
		if !errors.As(err, &ae) || ae.Status != http.StatusServiceUnavailable {
			return err
		}
	}
	for _, sec := range secs.Items {
		d.Secrets = append(d.Secrets, sec.Name)
	}
	h.render(w, r, s, http.StatusOK, "usage", "Usage", d)
	return nil
}

// outcomes counts the executions of the charted days by outcome (the
// newest 1,000: Sampled says when there were more).
func (h *Handler) outcomes(r *http.Request, s *session, d *usageData) error {
	var page struct {
		Items []cronium.Execution `json:"items"`
		Next  string              `json:"next"`
	}
	path := "/v1/executions?status=finished&limit=1000&since=" + d.Days[0] + "T00:00:00Z"
	if err := h.call(r, s, "GET", path, nil, &page); err != nil {
		return err
	}
	d.Sampled = page.Next != ""
	counts := map[string]map[cronium.Outcome]int64{}
	for _, x := range page.Items {
		day := x.QueuedAt.UTC().Format(time.DateOnly)
		if x.FinishedAt != nil {
			day = x.FinishedAt.UTC().Format(time.DateOnly)
		}
		if counts[day] == nil {
			counts[day] = map[cronium.Outcome]int64{}
		}
		counts[day][x.Outcome]++
	}
	for _, day := range d.Days {
		od := outcomeDay{Day: day}
		for _, o := range cronium.Outcomes {
			if n := counts[day][o]; n > 0 {
				od.Counts = append(od.Counts, outcomeCount{Outcome: o, N: n})
				od.Total += n
			}
		}
		d.OutcomeMax = max(d.OutcomeMax, od.Total)
		d.Outcomes = append(d.Outcomes, od)
	}
	for i := range d.Outcomes {
		for j := range d.Outcomes[i].Counts {
			if d.OutcomeMax > 0 {
				d.Outcomes[i].Counts[j].Share = 100 * float64(d.Outcomes[i].Counts[j].N) / float64(d.OutcomeMax)
			}
		}
	}
	return nil
}

// ---- users (admins)

func (h *Handler) usersPage(w http.ResponseWriter, r *http.Request, s *session) error {
	if !s.User.Admin {
		return &apiError{Status: http.StatusNotFound}
	}
	users, err := items[cronium.User](h, r, &session{key: s.key}, "/v1/users") // no ?user=: every user
	if err != nil {
		return err
	}
	h.render(w, r, s, http.StatusOK, "users", "Users", users)
	return nil
}
