// Package schedule parses cron expressions and computes their fire times in
// an IANA time zone.
//
// Expressions use the field syntax of github.com/robfig/cron/v3 (5 fields, or
// 6 with a leading seconds field; names such as MON and JAN; ranges, lists and
// steps), the descriptors @yearly, @annually, @monthly, @weekly, @daily,
// @midnight and @hourly, and "@every <duration>".
//
// Fire times are whole seconds whose wall-clock reading in the schedule's zone
// matches the expression. Daylight-saving changes are handled like Vixie cron:
//
//   - Spring forward: a wall time that does not exist that day (e.g. "30 2 * * *"
//     in Europe/Berlin on 2026-03-29, when 02:00 jumps to 03:00) fires once, at
//     the first instant after the gap (03:00 local). Several skipped matches in
//     one gap still fire only once.
//   - Fall back: a wall time that occurs twice (02:30 in Europe/Berlin on
//     2026-10-25) fires once, at its first occurrence.
//   - Both rules apply only to schedules restricted to some hours. A schedule
//     whose hour field covers every hour ("0 * * * *", "*/5 * * * *") follows
//     real time instead: the skipped hour has no fire times (23 hourly fires on
//     the spring-forward day) and the repeated hour fires again (25 on the
//     fall-back day).
//
// "@every" schedules are plain durations: the next fire time is the previous
// one (truncated to the second) plus the interval, whatever the wall clock or
// zone says.
package schedule

import (
	"fmt"
	"strings"
	"time"

	cronium "github.com/cronium/executor"
	"github.com/robfig/cron/v3"
)

const (
	exprProblem  = `is not a cron expression: want 5 fields like "*/5 * * * *", 6 with seconds, @hourly-style descriptors or "@every 30s"`
	everyProblem = `is not a valid @every interval: want a whole number of seconds, at least 1s, like "@every 30s" or "@every 1h30m"`
	zoneProblem  = `is not an IANA time zone: want a name like "Europe/Berlin" or "UTC"`
)

var descriptors = map[string]string{
	"@yearly":   "0 0 1 1 *",
	"@annually": "0 0 1 1 *",
	"@monthly":  "0 0 1 * *",
	"@weekly":   "0 0 * * 0",
	"@daily":    "0 0 * * *",
	"@midnight": "0 0 * * *",
	"@hourly":   "0 * * * *",
}

var parser = cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow)

// Schedule is a parsed cron expression bound to a time zone.
type Schedule struct {
	expr     string
	loc      *time.Location
	every    time.Duration      // > 0 for @every schedules
	spec     *cron.SpecSchedule // wall-clock fields, matched in UTC (no DST)
	hourFull bool               // the hour field matches all 24 hours
}

// Parse parses expr in time zone tz ("" means UTC). Accepted:
//   - standard 5-field cron: "*/5 * * * *" (minute hour dom month dow), names like MON, JAN allowed
//   - 6-field cron with a leading seconds field: "*/10 * * * * *"
//   - descriptors: @yearly @annually @monthly @weekly @daily @midnight @hourly
//   - @every <Go duration>, e.g. "@every 5s", "@every 1h30m" (minimum 1s; must be whole seconds)
//
// An expression that matches no date at all ("0 0 30 2 *") is refused.
// Errors match cronium.ErrInvalid and name the field "schedule" or "timezone".
func Parse(expr, tz string) (*Schedule, error) {
	loc, err := time.LoadLocation(tz)
	if err != nil || tz == "Local" {
		return nil, cronium.Invalid("timezone", tz, zoneProblem)
	}
	expr = strings.TrimSpace(expr)
	s := &Schedule{expr: expr, loc: loc}

	if rest, ok := strings.CutPrefix(expr, "@every "); ok {
		d, err := time.ParseDuration(strings.TrimSpace(rest))
		if err != nil || d < time.Second || d%time.Second != 0 {
			return nil, cronium.Invalid("schedule", expr, everyProblem)
		}
		s.every = d
		return s, nil
	}
	fields := expr
	if strings.HasPrefix(expr, "@") {
		if fields = descriptors[strings.ToLower(expr)]; fields == "" {
			return nil, cronium.Invalid("schedule", expr, exprProblem)
		}
	}
	// robfig would read a "TZ=" prefix; the zone must come from tz instead.
	if n := len(strings.Fields(fields)); n < 5 || n > 6 || strings.Contains(fields, "=") {
		return nil, cronium.Invalid("schedule", expr, exprProblem)
	}
	parsed, err := parser.Parse(fields)
	if err != nil {
		return nil, cronium.Invalid("schedule", expr, fmt.Sprintf("%s (%v)", exprProblem, err))
	}
	s.spec = parsed.(*cron.SpecSchedule)
	s.spec.Location = time.UTC
	const allHours = 1<<24 - 1
	s.hourFull = s.spec.Hour&allHours == allHours
	if !s.fires() {
		return nil, cronium.Invalid("schedule", expr, neverProblem)
	}
	return s, nil
}

const neverProblem = `never fires: no date matches it (February has no 30th or 31st; April, June, September and November have no 31st): fix the day of month or the month`

// fires reports whether the expression matches any date at all. It looks
// over eight years from a leap year, which covers every (month, day of
// month, weekday) combination a calendar can have: the Gregorian gaps
// between leap years are at most eight years.
func (s *Schedule) fires() bool {
	from := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	for t := from; t.Before(from.AddDate(8, 0, 0)); {
		m := s.spec.Next(t.Add(-time.Second))
		if !m.IsZero() {
			return true
		}
		t = t.AddDate(5, 0, 0) // robfig looks five years ahead
	}
	return false
}

// Next returns the first fire time strictly after t (result in the schedule's location).
// It returns the zero time if the expression matches no date within five
// years (Parse refuses those that never match; a leap-day schedule has no
// next time between 2097 and 2103, as 2100 is no leap year).
func (s *Schedule) Next(t time.Time) time.Time {
	if s.every > 0 {
		return t.Truncate(time.Second).Add(s.every).In(s.loc)
	}
	u := t.Truncate(time.Second).Add(time.Second).In(s.loc)
	for {
		c := wallClock(u)
		start, end := u.ZoneBounds()
		if !end.IsZero() && !end.After(u) {
			// Go's zone bounds end a leap year's last day one day early
			// (golang/go#81583): the next zone change is at least a day away.
			end = u.Truncate(24 * time.Hour).Add(24 * time.Hour)
		}
		offPrev, offNow := offsets(u, start)
		// u is the first instant after a spring-forward gap: fire here once if
		// the schedule matched any of the skipped wall times.
		if !s.hourFull && start.Equal(u) && offPrev < offNow {
			gapStart := c.Add(-time.Duration(offNow-offPrev) * time.Second)
			if m := s.spec.Next(gapStart.Add(-time.Second)); !m.IsZero() && m.Before(c) {
				return u
			}
		}
		m := s.spec.Next(c.Add(-time.Second)) // first matching wall time >= c
		if m.IsZero() {
			return time.Time{}
		}
		if m.Equal(c) {
			// Skip the second occurrence of a repeated wall time.
			if repeatEnd := start.Add(time.Duration(offPrev-offNow) * time.Second); !s.hourFull && offPrev > offNow && u.Before(repeatEnd) {
				u = repeatEnd
				continue
			}
			return u
		}
		// Move forward by the wall-clock distance, stopping at the next zone
		// change, after which the wall clock has to be read again.
		v := u.Add(m.Sub(c))
		if !end.IsZero() && !v.Before(end) {
			v = end
		}
		u = v
	}
}

// Between returns the fire times in (from, to], in order, at most max of them (the earliest ones).
func (s *Schedule) Between(from, to time.Time, max int) []time.Time {
	var out []time.Time
	for t := s.Next(from); len(out) < max && !t.IsZero() && !t.After(to); t = s.Next(t) {
		out = append(out, t)
	}
	return out
}

// Interval reports the nominal period for @every schedules (0 for cron expressions).
func (s *Schedule) Interval() time.Duration { return s.every }

// String returns the expression and zone as given, e.g. "0 9 * * * (Europe/Berlin)".
func (s *Schedule) String() string { return fmt.Sprintf("%s (%s)", s.expr, s.loc) }

// Location returns the time zone.
func (s *Schedule) Location() *time.Location { return s.loc }

// MissedPolicy says what to do with fire times that passed while the scheduler was down.
type MissedPolicy string

const (
	// MissedSkip drops all missed fire times; the schedule continues with the next future fire time.
	MissedSkip MissedPolicy = "skip"
	// MissedRunOnce runs the latest missed fire time once, if it is not older than the starting deadline.
	MissedRunOnce MissedPolicy = "run_once"
)

// ParseMissedPolicy validates a policy name (field "missed_runs"); "" means skip.
func ParseMissedPolicy(s string) (MissedPolicy, error) {
	switch MissedPolicy(s) {
	case "", MissedSkip:
		return MissedSkip, nil
	case MissedRunOnce:
		return MissedRunOnce, nil
	}
	return "", cronium.Invalid("missed_runs", s, `is not a missed-runs policy: want "skip" or "run_once"`)
}

// CatchUp decides what to run after downtime. last is the last fire time that was handled
// (zero means never: then nothing is missed and CatchUp returns (nil, s.Next(now))).
// It returns the missed fire times to run now (for run_once at most one: the latest missed time in (last, now],
// and only if now - that time <= deadline, where deadline 0 means no limit) and the next future fire time after now.
// Any policy other than MissedRunOnce behaves as MissedSkip. For @every schedules the fire times
// continue the grid last+k*interval, so next is the first grid point after now.
func (s *Schedule) CatchUp(last, now time.Time, policy MissedPolicy, deadline time.Duration) (run []time.Time, next time.Time) {
	if last.IsZero() {
		return nil, s.Next(now)
	}
	var latest time.Time
	if s.every > 0 {
		base := last.Truncate(time.Second)
		k := now.Sub(base) / s.every
		if k < 0 {
			k = 0
		}
		if k > 0 {
			latest = base.Add(k * s.every).In(s.loc)
		}
		next = base.Add((k + 1) * s.every).In(s.loc)
	} else {
		latest = s.latest(last, now)
		next = s.Next(now)
	}
	if policy == MissedRunOnce && !latest.IsZero() && (deadline <= 0 || now.Sub(latest) <= deadline) {
		run = []time.Time{latest}
	}
	return run, next
}

// latest returns the last fire time in (last, now], or the zero time. It looks
// back from now in doubling windows so long downtimes stay cheap.
func (s *Schedule) latest(last, now time.Time) time.Time {
	const maxWindow = 200 * 365 * 24 * time.Hour
	for w := time.Minute; ; w *= 2 {
		from := now.Add(-w)
		if !from.After(last) || w > maxWindow {
			from = last
		}
		var found time.Time
		for t := s.Next(from); !t.IsZero() && !t.After(now); t = s.Next(t) {
			found = t
		}
		if !found.IsZero() || from.Equal(last) {
			return found
		}
	}
}

// wallClock returns the wall-clock reading of u as a UTC time, a calendar
// without daylight saving in which every reading exists exactly once.
func wallClock(u time.Time) time.Time {
	_, off := u.Zone()
	return time.Unix(u.Unix()+int64(off), 0).UTC()
}

// offsets returns the UTC offsets (seconds) before zoneStart and at u.
func offsets(u, zoneStart time.Time) (prev, now int) {
	_, now = u.Zone()
	prev = now
	if !zoneStart.IsZero() {
		_, prev = zoneStart.Add(-time.Second).Zone()
	}
	return prev, now
}

// PerMinute is how often the schedule fires, on average over the hour after from.
func (s *Schedule) PerMinute(from time.Time) float64 {
	return float64(len(s.Between(from, from.Add(time.Hour), 3600))) / 60
}
