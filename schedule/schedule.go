// Package schedule parses cron expressions and computes their fire times in
// an IANA time zone, the way cronie (the cron of Fedora, RHEL and Arch) does.
//
// Expressions have 5 fields (minute hour day-of-month month day-of-week), or 6
// with a leading second field, with cronie's syntax: lists (1,15), ranges
// (1-5), steps (*/15, 0-30/10), month and weekday names in any case (JAN,
// mon), and Sunday as 0 or 7 (SAT-SUN is 6-7). Also accepted, in any case:
// the descriptors @yearly, @annually, @monthly, @weekly, @daily, @midnight and
// @hourly, and "@every <duration>".
//
// Day of month and day of week (crontab(5), cronie's entry.c and cron.c): a
// field "starts with a star" when its text begins with "*" ("*", "*/2",
// "*,5"). If the day-of-month or the day-of-week field starts with a star, a
// day must match both fields; otherwise a day matching either one will do.
// So "0 0 1,15 * MON" fires on the 1st, the 15th and every Monday, while
// "0 0 */2 * MON" fires only on Mondays with an odd day of month.
//
// Daylight saving (cronie's cron.c) depends on whether the minute or the
// hour field starts with a star ("wildcard" schedules such as "*/15 2 * * *"
// or "0 * * * *") or neither does ("fixed-time" schedules such as
// "30 2 * * *"):
//
//   - Clock moved forward by 5 minutes to 3 hours (spring forward): the
//     skipped wall times of a fixed-time schedule fire once, at the first
//     instant after the gap ("30 2 * * *" in Europe/Berlin fires at 03:00 on
//     2026-03-29); a wildcard schedule does not fire for them.
//   - Clock moved back by up to 3 hours (fall back): a fixed-time schedule
//     fires at the first occurrence of a repeated wall time only; a wildcard
//     schedule fires at both ("*/15 2 * * *" fires 8 times on 2026-10-25).
//   - A move forward of less than 5 minutes fires the skipped wall times of
//     every schedule once, after it (cronie treats it as a late wake-up); a
//     move of 3 hours or more, either way, is a clock jump: skipped wall
//     times do not fire and repeated ones fire again.
//
// Where cronie would start several runs at the same instant (two skipped
// matches in one gap), Cronium starts one. The zone is the schedule's own,
// as if cronie ran with TZ set to it.
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
)

const (
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

// Schedule is a parsed cron expression bound to a time zone.
type Schedule struct {
	expr  string
	loc   *time.Location
	every time.Duration // > 0 for @every schedules
	spec  *spec
}

// Parse parses expr in time zone tz ("" means UTC). Accepted:
//   - 5-field cron: "*/5 * * * *" (minute hour day-of-month month day-of-week)
//   - 6-field cron with a leading second field: "*/10 * * * * *"
//   - descriptors: @yearly @annually @monthly @weekly @daily @midnight @hourly
//   - @every <Go duration>, e.g. "@every 5s", "@every 1h30m" (minimum 1s; must be whole seconds)
//
// An expression that matches no date at all ("0 0 30 2 *") is refused.
// Errors match cronium.ErrInvalid, name the field "schedule" or "timezone",
// and say which cron field is wrong and how to fix it.
func Parse(expr, tz string) (*Schedule, error) {
	loc, err := time.LoadLocation(tz)
	if err != nil || tz == "Local" {
		return nil, cronium.Invalid("timezone", tz, zoneProblem)
	}
	return ParseIn(expr, loc)
}

// ParseIn is Parse in an already loaded location, for zone data that does
// not come from time.LoadLocation (time.LoadLocationFromTZData).
func ParseIn(expr string, loc *time.Location) (*Schedule, error) {
	expr = strings.TrimSpace(expr)
	s := &Schedule{expr: expr, loc: loc}
	fields := expr
	if strings.HasPrefix(expr, "@") {
		name, rest, _ := strings.Cut(expr, " ")
		name = strings.ToLower(name)
		switch {
		case name == "@every":
			d, err := time.ParseDuration(strings.TrimSpace(rest))
			if err != nil || d < time.Second || d%time.Second != 0 {
				return nil, cronium.Invalid("schedule", expr, everyProblem)
			}
			s.every = d
			return s, nil
		case name == "@reboot":
			return nil, cronium.Invalid("schedule", expr, "is not supported: there is no boot to run at; leave schedule empty for an event that runs on demand")
		case descriptors[name] == "" || strings.TrimSpace(rest) != "":
			return nil, cronium.Invalid("schedule", expr, "is not a descriptor: want @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly or \"@every 30s\"")
		}
		fields = descriptors[name]
	}
	if strings.Contains(fields, "=") {
		return nil, cronium.Invalid("schedule", expr, "has a variable assignment (TZ= or CRON_TZ=): put the zone in the timezone field instead")
	}
	sp, err := parseSpec(fields)
	if err != nil {
		return nil, cronium.Invalid("schedule", "", err.Error())
	}
	s.spec = sp
	if !sp.fires() {
		return nil, cronium.Invalid("schedule", expr, neverProblem)
	}
	return s, nil
}

const neverProblem = `never fires: no month in it has that day of month (February has 29 days at most; April, June, September and November have 30): fix the day of month or the month`

// The search bounds of Next. A parsed expression matches some date in every
// 400 years (the Gregorian calendar repeats, weekdays included, every 400
// years), so a search of 401 years finds the next fire time if there is
// one. zoneStep is the distance at which the offset of the zone is sampled:
// no zone has changed its offset twice within 12 hours since 1970 (the
// closest are 7 days apart), so two samples 12 hours apart that agree mean
// no change between them.
const (
	horizon  = 401 * 366 * 86400
	zoneStep = 12 * 3600
	// Offset changes of at least dstMin and under dstMax forward, or up to
	// dstMax back, are daylight-saving changes (cronie's "time changed by 5
	// to 180 minutes"); shorter forward ones are late wake-ups, longer ones
	// clock jumps.
	dstMin = 5 * 60
	dstMax = 3 * 3600
	// Instants past this (about year 100,000) have no next fire time.
	lastInstant = 3_000_000_000_000
)

// Next returns the first fire time strictly after t (in the schedule's
// location), or the zero time ("never") when there is none before about year
// 100,000. It always returns promptly: the search is bounded, and it reads
// the zone's offsets itself rather than trusting time.Time.ZoneBounds (which
// is wrong past the zone data's last listed change; golang/go#81583).
func (s *Schedule) Next(t time.Time) time.Time {
	if s.every > 0 {
		return t.Truncate(time.Second).Add(s.every).In(s.loc)
	}
	u := t.Unix() + 1 // whole seconds (Unix rounds down): the first candidate
	if t.Unix() < -lastInstant || u > lastInstant {
		return time.Time{}
	}
	limit := u + horizon

	// u may be the first instant after a change, or inside a repeated hour.
	if b, ok := s.changeWithin(u-dstMax, u); ok {
		before, after := s.offset(b-1), s.offset(b)
		if b == u && s.firesForSkipped(before, after) && s.skippedMatch(b, before, after) {
			return s.instant(u)
		}
		if d := after - before; d < 0 && -d <= dstMax && !s.spec.wild && u < b-d {
			u = b - d
		}
	}
	var from, match int64 = 0, -1 // cache: the first match at or after from is match
	for u <= limit {
		off := s.offset(u)
		c := u + off
		if match < 0 || c < from || c > match {
			m, ok := s.spec.nextCivil(c, c+(limit-u))
			if !ok {
				return time.Time{}
			}
			from, match = c, m
		}
		v := u + (match - c)
		b, changed := s.changeWithin(u, v)
		if !changed {
			return s.instant(v)
		}
		// Nothing matches in [u, b): the wall clock there reads [c, c+b-u).
		after := s.offset(b)
		switch d := after - off; {
		case d > 0:
			if s.firesForSkipped(off, after) && s.skippedMatch(b, off, after) {
				return s.instant(b)
			}
			u = b
		case -d <= dstMax && !s.spec.wild:
			u = b - d // the repeated wall times already fired
		default:
			u = b
		}
	}
	return time.Time{}
}

// firesForSkipped reports whether wall times skipped by a change from offset
// before to offset after fire at the change (cronie's late wake-up and
// daylight-saving cases).
func (s *Schedule) firesForSkipped(before, after int64) bool {
	d := after - before
	return d > 0 && (d < dstMin || d < dstMax && !s.spec.wild)
}

// skippedMatch reports whether a wall time skipped by the change at b matches.
func (s *Schedule) skippedMatch(b, before, after int64) bool {
	_, ok := s.spec.nextCivil(b+before, b+after-1)
	return ok
}

// offset is the zone's UTC offset in seconds at instant u.
func (s *Schedule) offset(u int64) int64 {
	_, off := time.Unix(u, 0).In(s.loc).Zone()
	return int64(off)
}

// changeWithin returns the first instant b in (from, to] whose offset
// differs from the one before it, sampling every zoneStep and bisecting.
func (s *Schedule) changeWithin(from, to int64) (int64, bool) {
	off := s.offset(from)
	for lo := from; lo < to; {
		hi := min(lo+zoneStep, to)
		if s.offset(hi) == off {
			lo = hi
			continue
		}
		for hi-lo > 1 { // offset(lo) == off, offset(hi) != off
			mid := lo + (hi-lo)/2
			if s.offset(mid) == off {
				lo = mid
			} else {
				hi = mid
			}
		}
		return hi, true
	}
	return 0, false
}

func (s *Schedule) instant(u int64) time.Time { return time.Unix(u, 0).In(s.loc) }

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

// PerMinute is how often the schedule fires, on average over the hour after from.
func (s *Schedule) PerMinute(from time.Time) float64 {
	return float64(len(s.Between(from, from.Add(time.Hour), 3600))) / 60
}
