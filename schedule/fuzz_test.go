package schedule_test

import (
	"errors"
	"strings"
	"testing"
	"time"
	_ "time/tzdata" // the same zones on every machine

	cronium "github.com/cronium/executor"
	"github.com/cronium/executor/schedule"
)

// Instants the fuzz targets ask Next about: FuzzParse in 1970-2030,
// FuzzNextFarFutureRegression in 2030-2400, past the zone data's listed
// changes, where Go's ZoneBounds is wrong (golang/go#81583).
const (
	unix1970 = 0
	unix2030 = 1893456000  // 2030-01-01T00:00:00Z
	unix2400 = 13569465600 // 2400-01-01T00:00:00Z
)

// fuzzStepLimit bounds how long one input may take. Next is a loop over zone
// changes and a day-by-day search: a hang shows up as a failure here
// instead of a stalled fuzzer.
const fuzzStepLimit = 5 * time.Second

// withDeadline runs fn, failing the test if it does not return within
// fuzzStepLimit (the goroutine is leaked, but the input is recorded).
func withDeadline(t *testing.T, what string, fn func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn()
	}()
	select {
	case <-done:
	case <-time.After(fuzzStepLimit):
		t.Fatalf("%s did not return within %s (hang)", what, fuzzStepLimit)
	}
}

// fuzzInstant maps unix into [lo, hi), keeping it when it is already there.
func fuzzInstant(unix int64, nanos uint32, lo, hi int64) time.Time {
	sec := unix
	if sec < lo || sec >= hi {
		span := hi - lo
		sec = lo + ((unix%span)+span)%span
	}
	return time.Unix(sec, int64(nanos%1e9)).UTC()
}

func addScheduleSeeds(f *testing.F) {
	exprs := []string{
		"*/5 * * * *", "0 9 * * MON-FRI", "30 2 * * *", "0,30 2,3 * * *", "0 * * * *",
		"*/15 * * * * *", "0 0 29 2 *", "0 0 29 2 MON", "0 0 31 * *", "0 0 30 2 *",
		"0 0 31 4,6,9,11 *", "59 23 31 12 *", "0 0 1 1 *", "* * * * * *", "0 0 * * 7",
		"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly",
		"@DAILY", "@every 1s", "@every 1h30m", "@every 90s", "@every 1.5s", "@every 0s",
		"@every -1s", "@every 9223372036s", "@every 2562047h47m16s", "@reboot", "@",
		"", " ", "TZ=UTC 0 * * * *", "CRON_TZ=Europe/Berlin 0 9 * * *", "0 9 * * * * *",
		"0 9 * *", "60 * * * *", "* 24 * * *", "*/0 * * * *", "0-59/7 1-22/3 */2 */5 *",
		"0 0 L * *", "0 0 ? * *", "? ? ? ? ?", "0 12 * * SUN#2", "5 4 * * sun", "0 0 1-31/2 FEB-MAR *",
		"\t0\n9 * * *\t", "0 0 15W * *",
	}
	zones := []string{
		"", "UTC", "Local", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe",
		"Pacific/Chatham", "Pacific/Apia", "Pacific/Kiritimati", "America/Sao_Paulo",
		"Africa/Casablanca", "Antarctica/Troll", "Europe/Dublin", "Asia/Gaza", "America/Havana",
		"Asia/Kathmandu", "America/St_Johns", "Etc/GMT+12", "Etc/GMT-14", "EST5EDT",
		"Mars/Olympus", "../etc/passwd", "/etc/localtime", "europe/berlin",
	}
	instants := []int64{
		1774746000, // 2026-03-29 01:00 UTC: Berlin spring forward
		1792890000, // 2026-10-25 01:00 UTC: Berlin fall back
		1325152800, // 2011-12-29 10:00 UTC: Apia skips 30 December
		4070908800, // 2099-01-01: no leap day until 2104
		0, 1700000000, 13569465599,
	}
	i := 0
	for _, e := range exprs {
		for j, z := range []string{zones[i%len(zones)], zones[(i*7+3)%len(zones)]} {
			f.Add(e, z, instants[(i+j)%len(instants)], uint32(i*37), uint8(i*13))
		}
		i++
	}
	for _, z := range zones {
		f.Add("30 2 * * *", z, instants[i%len(instants)], uint32(0), uint8(i))
		f.Add("0 * * * *", z, instants[(i+1)%len(instants)], uint32(5e8), uint8(255-i))
		i++
	}
}

// FuzzParse checks schedule.Parse and Schedule.Next on arbitrary expressions
// and zones:
//   - Parse never panics or hangs;
//   - errors match cronium.ErrInvalid, are *cronium.FieldError for the field
//     "schedule" or "timezone", and their text starts with that field and ':';
//   - an accepted schedule fires at least once (Parse refuses never-firing
//     expressions), seen from the start of one of the two windows Parse checks;
//   - Next(t) is strictly after t or zero, in whole seconds, in the schedule's zone;
//   - Next is monotone: t1 <= t2 gives Next(t1) <= Next(t2) (when both fire),
//     and for cron expressions no fire time is skipped: every t2 in
//     [t, Next(t)) has Next(t2) == Next(t);
//   - @every schedules fire exactly every Interval from the truncated instant.
//
// Each input makes at most 7 Next calls.
func FuzzParse(f *testing.F) {
	addScheduleSeeds(f)
	f.Fuzz(func(t *testing.T, expr, tz string, unix int64, nanos uint32, frac uint8) {
		checkSchedule(t, expr, tz, fuzzInstant(unix, nanos, unix1970, unix2030), frac)
	})
}

// checkSchedule asserts the invariants listed on FuzzParse.
func checkSchedule(t *testing.T, expr, tz string, t0 time.Time, frac uint8) {
	t.Helper()
	{
		var s *schedule.Schedule
		var err error
		withDeadline(t, "Parse", func() { s, err = schedule.Parse(expr, tz) })
		if err != nil {
			if s != nil {
				t.Fatalf("Parse(%q, %q) returned both a schedule and error %v", expr, tz, err)
			}
			if !errors.Is(err, cronium.ErrInvalid) {
				t.Fatalf("Parse(%q, %q) error %v does not match cronium.ErrInvalid", expr, tz, err)
			}
			var fe *cronium.FieldError
			if !errors.As(err, &fe) || (fe.Field != "schedule" && fe.Field != "timezone") {
				t.Fatalf("Parse(%q, %q) error %v is not a FieldError for schedule or timezone", expr, tz, err)
			}
			if msg := err.Error(); !strings.HasPrefix(msg, "schedule:") && !strings.HasPrefix(msg, "timezone:") {
				t.Fatalf("Parse(%q, %q) error %q starts with neither schedule: nor timezone:", expr, tz, msg)
			}
			return
		}
		if s == nil {
			t.Fatalf("Parse(%q, %q) returned neither a schedule nor an error", expr, tz)
		}
		if tz == "Local" {
			t.Fatalf("Parse accepted the zone Local, which depends on the host")
		}
		loc := s.Location().String()
		every := s.Interval()
		if every < 0 || every%time.Second != 0 || (every > 0) != strings.HasPrefix(strings.ToLower(strings.TrimSpace(expr)), "@every ") {
			t.Fatalf("Parse(%q): Interval() = %v", expr, every)
		}
		if str := s.String(); !strings.Contains(str, strings.TrimSpace(expr)) {
			t.Fatalf("String() = %q does not show the expression %q", str, expr)
		}

		var calls int
		next := func(at time.Time) time.Time {
			t.Helper()
			calls++
			if calls > 7 {
				t.Fatal("the fuzz target makes more Next calls than it allows itself")
			}
			var n time.Time
			withDeadline(t, "Next", func() { n = s.Next(at) })
			if n.IsZero() {
				return n
			}
			if !n.After(at) {
				t.Fatalf("%s: Next(%v) = %v, not after it", s, at, n)
			}
			if n.Nanosecond() != 0 {
				t.Fatalf("%s: Next(%v) = %v, not a whole second", s, at, n)
			}
			if got := n.Location().String(); got != loc {
				t.Fatalf("%s: Next(%v) is in %s, want %s", s, at, got, loc)
			}
			return n
		}

		// Fires at least once: Parse refuses expressions that never fire,
		// and Next searches 401 years, longer than the calendar's cycle.
		z := s.Location()
		if next(time.Date(2024, 1, 1, 0, 0, 0, 0, z)).IsZero() {
			t.Fatalf("Parse accepted %q in %q, which does not fire in the 401 years from 2024", expr, tz)
		}

		n0 := next(t0)
		if n0.IsZero() {
			if every > 0 {
				t.Fatalf("%s: Next(%v) is zero for an @every schedule", s, t0)
			}
			return
		}
		if every > 0 {
			if want := t0.Truncate(time.Second).Add(every); !n0.Equal(want) {
				t.Fatalf("%s: Next(%v) = %v, want %v", s, t0, n0, want)
			}
		}
		// The fire after that one comes later.
		n1 := next(n0)
		if !n1.IsZero() && !n1.After(n0) {
			t.Fatalf("%s: Next(%v) = %v is not after it", s, n0, n1)
		}
		// A point t2 in [t0, n0): Next(t2) never goes back before n0; for
		// cron expressions nothing fires in between, so it is n0 itself.
		t2 := t0.Add(time.Duration(float64(n0.Sub(t0)) * float64(frac) / 256))
		if !t2.Before(n0) {
			t2 = n0.Add(-time.Nanosecond)
		}
		n2 := next(t2)
		switch {
		case n2.IsZero():
			t.Fatalf("%s: Next(%v) = %v but Next(%v) (later) is zero", s, t0, n0, t2)
		case n2.Before(n0):
			t.Fatalf("%s: not monotone: Next(%v) = %v, Next(%v) = %v", s, t0, n0, t2, n2)
		case every == 0 && !n2.Equal(n0):
			t.Fatalf("%s: Next(%v) = %v but Next(%v) = %v: a fire time in between was skipped or invented", s, t0, n0, t2, n2)
		}
		// The same holds between n0 and n1.
		if !n1.IsZero() {
			t3 := n0.Add(time.Duration(float64(n1.Sub(n0)) * float64(255-frac) / 256))
			switch n3 := next(t3); {
			case n3.IsZero():
				t.Fatalf("%s: Next(%v) = %v but Next(%v) (later) is zero", s, n0, n1, t3)
			case n3.Before(n1):
				t.Fatalf("%s: not monotone: Next(%v) = %v, Next(%v) = %v", s, n0, n1, t3, n3)
			case every == 0 && !n3.Equal(n1):
				t.Fatalf("%s: Next(%v) = %v but Next(%v) = %v: a fire time in between was skipped or invented", s, n0, n1, t3, n3)
			}
		}
	}
}

// FuzzNextFarFutureRegression is FuzzParse for instants in 2030-2400.
//
// A regression test of a bug the fuzzer found: in the last UTC day of a leap
// year served by a zone's POSIX TZ footer rule (2040, 2044, ... for most
// zones), time.Time.ZoneBounds returns an end that is not after the instant
// (golang/go#81583), and a Next that stepped from zone bound to zone bound
// looped forever ("@yearly" in Europe/Berlin from 2040-12-30T12:00Z) or went
// back in time ("*/5 * * * *" in Australia/Lord_Howe from 2040-12-31T00:00Z).
// Next no longer uses ZoneBounds: it samples the zone's offset itself.
// TestNextPastTheZoneData has the reproductions under both zone-data sources.
func FuzzNextFarFutureRegression(f *testing.F) {
	// The failing seeds: each hangs in Next today.
	f.Add("0 0 29 2 *", "Pacific/Chatham", int64(13569465599), uint32(222), uint8(78))
	f.Add("0 0 29 2 *", "Europe/Berlin", int64(2213913600), uint32(0), uint8(0))     // t0 2040-02-27
	f.Add("@yearly", "Europe/Berlin", int64(2240481600), uint32(0), uint8(128))      // t0 2040-12-30T12:00Z
	f.Add("0 9 * * *", "America/New_York", int64(2240542800), uint32(0), uint8(200)) // t0 2040-12-31T05:00Z
	// And seeds that pass (southern zones are in DST at the year's end, a
	// period ZoneBounds gets right).
	f.Add("*/5 * * * *", "Australia/Lord_Howe", int64(2240524800), uint32(0), uint8(1)) // t0 2040-12-31T00:00Z
	f.Add("@every 1h", "Europe/Berlin", int64(2240481600), uint32(0), uint8(9))
	f.Add("0 9 * * *", "UTC", int64(2240542800), uint32(0), uint8(200))
	f.Fuzz(func(t *testing.T, expr, tz string, unix int64, nanos uint32, frac uint8) {
		checkSchedule(t, expr, tz, fuzzInstant(unix, nanos, unix2030, unix2400), frac)
	})
}
