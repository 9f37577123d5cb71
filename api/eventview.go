package api

import (
	"net/http"
	"strconv"
	"time"

	cronium "github.com/cronium/executor"
	"github.com/cronium/executor/schedule"
	"github.com/cronium/executor/store"
)

// EventView is an event as the API shows it: the event and its status.
type EventView struct {
	cronium.Event
	Status EventStatus `json:"status"`
}

// EventStatus says when an event runs next and how it has run so far.
type EventStatus struct {
	// State is "scheduled", "paused", "on demand" or "never fires" (its
	// schedule has no next time, or no longer parses: Problem says why).
	State   string `json:"state"`
	Problem string `json:"problem,omitempty"`
	// NextRun is the next scheduled time in the event's zone, NextRunUTC
	// the same instant in UTC. Absent unless State is "scheduled".
	NextRun    *time.Time `json:"next_run,omitempty"`
	NextRunUTC *time.Time `json:"next_run_utc,omitempty"`
	store.EventStats
}

// NextRuns is the answer of GET /v1/events/{name}/next.
type NextRuns struct {
	Timezone string    `json:"timezone"`
	Items    []NextRun `json:"items"`
}

// NextRun is one future fire time, in the event's zone and in UTC.
type NextRun struct {
	At  time.Time `json:"at"`
	UTC time.Time `json:"utc"`
}

// views adds each event's status; stats come from EventStats for the same user.
func (s *Server) views(evs []cronium.Event, stats map[int64]store.EventStats) []EventView {
	out := make([]EventView, 0, len(evs))
	for _, ev := range evs {
		v := EventView{Event: ev, Status: EventStatus{EventStats: stats[ev.ID]}}
		sched, next, err := s.next(ev)
		switch {
		case ev.Schedule == "":
			v.Status.State = "on demand"
		case ev.Enabled != nil && !*ev.Enabled:
			v.Status.State = "paused"
		case err != nil:
			v.Status.State, v.Status.Problem = "never fires", err.Error()
		case next.IsZero():
			v.Status.State, v.Status.Problem = "never fires", "its schedule has no next time"
		default:
			local, utc := next.In(sched.Location()), next.UTC()
			v.Status.State, v.Status.NextRun, v.Status.NextRunUTC = "scheduled", &local, &utc
		}
		out = append(out, v)
	}
	return out
}

// next returns an event's schedule and next fire time: the scheduler's
// own when it has the event queued, else computed from now.
func (s *Server) next(ev cronium.Event) (*schedule.Schedule, time.Time, error) {
	if ev.Schedule == "" {
		return nil, time.Time{}, nil
	}
	sched, err := schedule.Parse(ev.Schedule, ev.Timezone)
	if err != nil {
		return nil, time.Time{}, err
	}
	if at, ok := s.cfg.Scheduler.NextFire(ev.ID); ok {
		return sched, at, nil
	}
	return sched, sched.Next(time.Now()), nil
}

// nextRuns answers GET /v1/events/{name}/next?n=5: the next n fire times
// (1-100, default 5) as the scheduler will fire them.
func (s *Server) nextRuns(w http.ResponseWriter, r *http.Request, u *cronium.User) error {
	n := 5
	if v := r.URL.Query().Get("n"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 || n > 100 {
			return cronium.Invalid("n", v, "is not a count of fire times: want a whole number 1-100")
		}
	}
	ev, _, err := s.event(r, u)
	if err != nil {
		return err
	}
	if ev.Schedule == "" {
		return cronium.Invalid("schedule", "", "is empty: event "+ev.Name+" runs on demand only and has no fire times")
	}
	sched, at, err := s.next(ev)
	if err != nil {
		return err
	}
	out := NextRuns{Timezone: sched.Location().String(), Items: []NextRun{}}
	for ; !at.IsZero() && len(out.Items) < n; at = sched.Next(at) {
		out.Items = append(out.Items, NextRun{At: at.In(sched.Location()), UTC: at.UTC()})
	}
	return writeJSON(w, http.StatusOK, out)
}
