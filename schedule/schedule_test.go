package schedule_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
	_ "time/tzdata" // tests must not depend on the host's zoneinfo

	cronium "github.com/cronium/executor"
	"github.com/cronium/executor/schedule"
)

func utc(y int, mo time.Month, d, h, mi, s int) time.Time {
	return time.Date(y, mo, d, h, mi, s, 0, time.UTC)
}

func mustParse(t *testing.T, expr, tz string) *schedule.Schedule {
	t.Helper()
	s, err := schedule.Parse(expr, tz)
	if err != nil {
		t.Fatalf("Parse(%q, %q): %v", expr, tz, err)
	}
	return s
}

func TestBetween(t *testing.T) {
	tests := []struct {
		name, expr, tz string
		from, to       time.Time
		want           []time.Time
	}{
		{"berlin spring forward: 02:30 fires once at 03:00 CEST", "30 2 * * *", "Europe/Berlin",
			utc(2026, 3, 27, 0, 0, 0), utc(2026, 3, 31, 0, 0, 0),
			[]time.Time{utc(2026, 3, 27, 1, 30, 0), utc(2026, 3, 28, 1, 30, 0), utc(2026, 3, 29, 1, 0, 0), utc(2026, 3, 30, 0, 30, 0)}},
		{"berlin fall back: 02:30 fires once, first occurrence (CEST)", "30 2 * * *", "Europe/Berlin",
			utc(2026, 10, 24, 0, 0, 0), utc(2026, 10, 27, 0, 0, 0),
			[]time.Time{utc(2026, 10, 24, 0, 30, 0), utc(2026, 10, 25, 0, 30, 0), utc(2026, 10, 26, 1, 30, 0)}},
		{"new york spring forward: 02:30 fires once at 03:00 EDT", "30 2 * * *", "America/New_York",
			utc(2026, 3, 7, 0, 0, 0), utc(2026, 3, 10, 0, 0, 0),
			[]time.Time{utc(2026, 3, 7, 7, 30, 0), utc(2026, 3, 8, 7, 0, 0), utc(2026, 3, 9, 6, 30, 0)}},
		{"new york fall back: 01:30 fires once, first occurrence (EDT)", "30 1 * * *", "America/New_York",
			utc(2026, 10, 31, 0, 0, 0), utc(2026, 11, 3, 0, 0, 0),
			[]time.Time{utc(2026, 10, 31, 5, 30, 0), utc(2026, 11, 1, 5, 30, 0), utc(2026, 11, 2, 6, 30, 0)}},
		{"several matches in the gap fire once", "0,30 2,3 * * *", "Europe/Berlin",
			utc(2026, 3, 28, 23, 0, 0), utc(2026, 3, 29, 22, 0, 0),
			[]time.Time{utc(2026, 3, 29, 1, 0, 0), utc(2026, 3, 29, 1, 30, 0)}},
		{"existing 03:00 on spring forward day", "0 3 * * *", "Europe/Berlin",
			utc(2026, 3, 28, 12, 0, 0), utc(2026, 3, 29, 12, 0, 0),
			[]time.Time{utc(2026, 3, 29, 1, 0, 0)}},
		{"hourly across fall back fires in both 02:00", "0 * * * *", "Europe/Berlin",
			utc(2026, 10, 24, 23, 30, 0), utc(2026, 10, 25, 2, 0, 0),
			[]time.Time{utc(2026, 10, 25, 0, 0, 0), utc(2026, 10, 25, 1, 0, 0), utc(2026, 10, 25, 2, 0, 0)}},
		{"hourly across spring forward skips 02:00", "0 * * * *", "Europe/Berlin",
			utc(2026, 3, 28, 23, 30, 0), utc(2026, 3, 29, 2, 0, 0),
			[]time.Time{utc(2026, 3, 29, 0, 0, 0), utc(2026, 3, 29, 1, 0, 0), utc(2026, 3, 29, 2, 0, 0)}},
		{"seconds field", "*/15 * * * * *", "",
			utc(2026, 5, 1, 12, 0, 0), utc(2026, 5, 1, 12, 1, 0),
			[]time.Time{utc(2026, 5, 1, 12, 0, 15), utc(2026, 5, 1, 12, 0, 30), utc(2026, 5, 1, 12, 0, 45), utc(2026, 5, 1, 12, 1, 0)}},
		{"excludes from, includes to", "*/5 * * * *", "UTC",
			utc(2026, 5, 1, 12, 0, 0), utc(2026, 5, 1, 12, 10, 0),
			[]time.Time{utc(2026, 5, 1, 12, 5, 0), utc(2026, 5, 1, 12, 10, 0)}},
		{"at most max", "* * * * * *", "UTC",
			utc(2026, 5, 1, 12, 0, 0), utc(2026, 5, 2, 0, 0, 0),
			[]time.Time{utc(2026, 5, 1, 12, 0, 1), utc(2026, 5, 1, 12, 0, 2), utc(2026, 5, 1, 12, 0, 3), utc(2026, 5, 1, 12, 0, 4), utc(2026, 5, 1, 12, 0, 5)}},
		{"names", "0 9 * JAN MON", "UTC",
			utc(2026, 1, 1, 0, 0, 0), utc(2026, 1, 20, 0, 0, 0),
			[]time.Time{utc(2026, 1, 5, 9, 0, 0), utc(2026, 1, 12, 9, 0, 0), utc(2026, 1, 19, 9, 0, 0)}},
		{"every is a pure duration across fall back", "@every 1h30m", "Europe/Berlin",
			utc(2026, 10, 24, 23, 0, 0), utc(2026, 10, 25, 3, 0, 0),
			[]time.Time{utc(2026, 10, 25, 0, 30, 0), utc(2026, 10, 25, 2, 0, 0)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := mustParse(t, tt.expr, tt.tz)
			got := s.Between(tt.from, tt.to, 5)
			if len(got) != len(tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
			for i := range got {
				if !got[i].Equal(tt.want[i]) || got[i].Location() != s.Location() {
					t.Errorf("[%d] got %v, want %v in %v", i, got[i], tt.want[i], s.Location())
				}
			}
		})
	}
}

// TestDayCounts counts fire times over one local calendar day.
func TestDayCounts(t *testing.T) {
	tests := []struct {
		expr, tz string
		y        int
		mo       time.Month
		d        int
		want     int
	}{
		{"0 * * * *", "Europe/Berlin", 2026, 3, 28, 24},
		{"0 * * * *", "Europe/Berlin", 2026, 3, 29, 23},
		{"0 * * * *", "Europe/Berlin", 2026, 10, 25, 25},
		{"0 * * * *", "America/New_York", 2026, 3, 8, 23},
		{"0 * * * *", "America/New_York", 2026, 11, 1, 25},
		{"@hourly", "America/New_York", 2026, 11, 1, 25},
		{"*/15 * * * *", "Europe/Berlin", 2026, 10, 25, 100},
		{"*/15 * * * *", "Europe/Berlin", 2026, 3, 29, 92},
		// cronie: a minute field starting with "*" makes a wildcard job, which
		// follows real time: both 02:xx hours on the fall-back day, none on
		// the spring-forward day.
		{"*/15 2 * * *", "Europe/Berlin", 2026, 10, 25, 8},
		{"*/15 2 * * *", "Europe/Berlin", 2026, 3, 29, 0},
		// Fixed-time (no field starting with "*"), though it lists every hour:
		// 02:00 is skipped and fires at 03:00 with 03:00 itself, once; the
		// repeated 02:00 does not fire again.
		{"0 0-23 * * *", "Europe/Berlin", 2026, 3, 29, 23},
		{"0 0-23 * * *", "Europe/Berlin", 2026, 10, 25, 24},
		{"0,30 2 * * *", "Europe/Berlin", 2026, 3, 29, 1},
		{"0,30 2 * * *", "Europe/Berlin", 2026, 10, 25, 2},
		{"30 2 * * *", "Europe/Berlin", 2026, 3, 29, 1},
		{"30 2 * * *", "Europe/Berlin", 2026, 10, 25, 1},
		{"30 2 * * *", "America/New_York", 2026, 3, 8, 1},
		{"30 1 * * *", "America/New_York", 2026, 11, 1, 1},
		{"@daily", "Europe/Berlin", 2026, 10, 25, 1},
	}
	for _, tt := range tests {
		s := mustParse(t, tt.expr, tt.tz)
		start := time.Date(tt.y, tt.mo, tt.d, 0, 0, 0, 0, s.Location())
		end := time.Date(tt.y, tt.mo, tt.d+1, 0, 0, 0, 0, s.Location())
		got := s.Between(start.Add(-time.Second), end.Add(-time.Second), 1000)
		if len(got) != tt.want {
			t.Errorf("%q in %s on %s: %d fire times, want %d: %v", tt.expr, tt.tz, start.Format(time.DateOnly), len(got), tt.want, got)
		}
	}
}

func TestNext(t *testing.T) {
	tests := []struct {
		expr, tz string
		after    time.Time
		want     time.Time
	}{
		{"*/5 * * * *", "", utc(2026, 5, 1, 12, 0, 0), utc(2026, 5, 1, 12, 5, 0)},
		{"*/5 * * * *", "", utc(2026, 5, 1, 12, 4, 59).Add(999 * time.Millisecond), utc(2026, 5, 1, 12, 5, 0)},
		{"*/10 * * * * *", "", utc(2026, 5, 1, 12, 0, 5), utc(2026, 5, 1, 12, 0, 10)},
		{"0 9 * * *", "Europe/Berlin", utc(2026, 7, 1, 12, 0, 0), utc(2026, 7, 2, 7, 0, 0)},
		{"0 9 * * *", "Europe/Berlin", utc(2026, 1, 1, 12, 0, 0), utc(2026, 1, 2, 8, 0, 0)},
		// One second before the spring-forward jump: the skipped 02:30 fires at 03:00 CEST.
		{"30 2 * * *", "Europe/Berlin", utc(2026, 3, 29, 0, 59, 59), utc(2026, 3, 29, 1, 0, 0)},
		{"30 2 * * *", "Europe/Berlin", utc(2026, 3, 29, 1, 0, 0), utc(2026, 3, 30, 0, 30, 0)},
		// From inside the second 02:xx hour (CET) the repeated 02:30 does not fire again.
		{"30 2 * * *", "Europe/Berlin", utc(2026, 10, 25, 1, 10, 0), utc(2026, 10, 26, 1, 30, 0)},
		{"30 2 * * *", "Europe/Berlin", utc(2026, 10, 25, 0, 30, 0), utc(2026, 10, 26, 1, 30, 0)},
		{"*/15 * * * *", "Europe/Berlin", utc(2026, 10, 25, 0, 50, 0), utc(2026, 10, 25, 1, 0, 0)},
		{"*/15 * * * *", "Europe/Berlin", utc(2026, 10, 25, 1, 10, 0), utc(2026, 10, 25, 1, 15, 0)},
		{"0 * * * *", "America/New_York", utc(2026, 11, 1, 5, 0, 0), utc(2026, 11, 1, 6, 0, 0)},
		{"@yearly", "Europe/Berlin", utc(2026, 3, 1, 0, 0, 0), utc(2026, 12, 31, 23, 0, 0)},
		{"@annually", "", utc(2026, 3, 1, 0, 0, 0), utc(2027, 1, 1, 0, 0, 0)},
		{"@monthly", "", utc(2026, 3, 1, 0, 0, 0), utc(2026, 4, 1, 0, 0, 0)},
		{"@weekly", "", utc(2026, 3, 1, 0, 0, 0), utc(2026, 3, 8, 0, 0, 0)}, // Sundays
		{"@daily", "America/New_York", utc(2026, 3, 1, 0, 0, 0), utc(2026, 3, 1, 5, 0, 0)},
		{"@midnight", "", utc(2026, 3, 1, 0, 0, 0), utc(2026, 3, 2, 0, 0, 0)},
		{"@hourly", "", utc(2026, 3, 1, 0, 59, 59), utc(2026, 3, 1, 1, 0, 0)},
		{"@every 5s", "", utc(2026, 3, 1, 0, 0, 0), utc(2026, 3, 1, 0, 0, 5)},
		{"@every 1h30m", "America/New_York", utc(2026, 3, 8, 6, 30, 0), utc(2026, 3, 8, 8, 0, 0)},
		{"0 0 29 2 *", "", utc(2026, 1, 1, 0, 0, 0), utc(2028, 2, 29, 0, 0, 0)},
		// 2100 is no leap year: the next leap day is in 2104.
		{"0 0 29 2 *", "", utc(2097, 1, 1, 0, 0, 0), utc(2104, 2, 29, 0, 0, 0)},
	}
	for _, tt := range tests {
		s := mustParse(t, tt.expr, tt.tz)
		if got := s.Next(tt.after); !got.Equal(tt.want) {
			t.Errorf("%s: Next(%v) = %v, want %v", s, tt.after, got, tt.want.In(s.Location()))
		}
	}
}

func TestAccessors(t *testing.T) {
	tests := []struct {
		expr, tz, str string
		interval      time.Duration
	}{
		{"0 9 * * *", "Europe/Berlin", "0 9 * * * (Europe/Berlin)", 0},
		{"*/10 * * * * *", "", "*/10 * * * * * (UTC)", 0},
		{"@every 1h30m", "UTC", "@every 1h30m (UTC)", 90 * time.Minute},
		{"@hourly", "America/New_York", "@hourly (America/New_York)", 0},
	}
	for _, tt := range tests {
		s := mustParse(t, tt.expr, tt.tz)
		if s.String() != tt.str || s.Interval() != tt.interval {
			t.Errorf("Parse(%q, %q): String %q Interval %v, want %q %v", tt.expr, tt.tz, s, s.Interval(), tt.str, tt.interval)
		}
		want := tt.tz
		if want == "" {
			want = "UTC"
		}
		if s.Location().String() != want {
			t.Errorf("Parse(%q, %q).Location() = %v", tt.expr, tt.tz, s.Location())
		}
	}
}

func TestParseErrors(t *testing.T) {
	fields := "want 5 (minute hour day-of-month month day-of-week"
	tests := []struct{ expr, tz, field, want string }{
		{"", "", "schedule", "has 0 fields: " + fields},
		{"* * * *", "", "schedule", "has 4 fields: " + fields},
		{"* * * * * * *", "", "schedule", "has 7 fields: " + fields},
		{"banana", "", "schedule", "has 1 fields: " + fields},
		{"61 * * * *", "", "schedule", `minute field "61": must be 0-59`},
		{"0 24 * * *", "", "schedule", `hour field "24": must be 0-23`},
		{"0 0 32 * *", "", "schedule", `day-of-month field "32": must be 1-31`},
		{"0 0 * 13 *", "", "schedule", `month field "13": must be 1-12 or a name JAN-DEC`},
		{"0 0 * * FOO", "", "schedule", `day-of-week field "FOO": is not a value: want a number 0-7 or a name SUN-SAT`},
		{"a b c d e", "", "schedule", `minute field "a": is not a value`},
		{"CRON_TZ=UTC 0 9 * * *", "", "schedule", "put the zone in the timezone field"},
		{"@every 0s", "", "schedule", "want a whole number of seconds"},
		{"@every -5s", "", "schedule", "want a whole number of seconds"},
		{"@every 1.5s", "", "schedule", "want a whole number of seconds"},
		{"@every 500ms", "", "schedule", "want a whole number of seconds"},
		{"@every banana", "", "schedule", "want a whole number of seconds"},
		{"@every", "", "schedule", "want a whole number of seconds"},
		{"@fortnightly", "", "schedule", "is not a descriptor: want @yearly"},
		{"@daily 5", "", "schedule", "is not a descriptor"},
		{"@reboot", "", "schedule", "leave schedule empty"},
		{"0 9 * * *", "Mars/Olympus", "timezone", `want a name like "Europe/Berlin"`},
		{"0 9 * * *", "Local", "timezone", `want a name like "Europe/Berlin"`},
	}
	for _, tt := range tests {
		s, err := schedule.Parse(tt.expr, tt.tz)
		if !errors.Is(err, cronium.ErrInvalid) || !strings.HasPrefix(err.Error(), tt.field+":") {
			t.Errorf("Parse(%q, %q) = %v, %v; want ErrInvalid naming %s", tt.expr, tt.tz, s, err, tt.field)
			continue
		}
		if !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Parse(%q, %q) error %q does not say %q", tt.expr, tt.tz, err, tt.want)
		}
	}
}

func TestParseMissedPolicy(t *testing.T) {
	for in, want := range map[string]schedule.MissedPolicy{"": schedule.MissedSkip, "skip": schedule.MissedSkip, "run_once": schedule.MissedRunOnce} {
		if got, err := schedule.ParseMissedPolicy(in); err != nil || got != want {
			t.Errorf("ParseMissedPolicy(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"run_all", "Skip", "once"} {
		if _, err := schedule.ParseMissedPolicy(in); !errors.Is(err, cronium.ErrInvalid) || !strings.HasPrefix(err.Error(), "missed_runs:") {
			t.Errorf("ParseMissedPolicy(%q) error %v, want ErrInvalid naming missed_runs", in, err)
		}
	}
}

func TestCatchUp(t *testing.T) {
	hourly := "0 * * * *"
	tests := []struct {
		name, expr string
		last, now  time.Time
		policy     schedule.MissedPolicy
		deadline   time.Duration
		wantRun    []time.Time
		wantNext   time.Time
	}{
		{"skip drops missed", hourly, utc(2026, 5, 1, 10, 0, 0), utc(2026, 5, 1, 13, 30, 0), schedule.MissedSkip, 0,
			nil, utc(2026, 5, 1, 14, 0, 0)},
		{"run_once runs the latest", hourly, utc(2026, 5, 1, 10, 0, 0), utc(2026, 5, 1, 13, 30, 0), schedule.MissedRunOnce, 0,
			[]time.Time{utc(2026, 5, 1, 13, 0, 0)}, utc(2026, 5, 1, 14, 0, 0)},
		{"run_once within deadline", hourly, utc(2026, 5, 1, 10, 0, 0), utc(2026, 5, 1, 13, 30, 0), schedule.MissedRunOnce, 30 * time.Minute,
			[]time.Time{utc(2026, 5, 1, 13, 0, 0)}, utc(2026, 5, 1, 14, 0, 0)},
		{"run_once past deadline", hourly, utc(2026, 5, 1, 10, 0, 0), utc(2026, 5, 1, 13, 30, 0), schedule.MissedRunOnce, 20 * time.Minute,
			nil, utc(2026, 5, 1, 14, 0, 0)},
		{"run_once includes now", hourly, utc(2026, 5, 1, 10, 0, 0), utc(2026, 5, 1, 13, 0, 0), schedule.MissedRunOnce, 0,
			[]time.Time{utc(2026, 5, 1, 13, 0, 0)}, utc(2026, 5, 1, 14, 0, 0)},
		{"nothing missed", hourly, utc(2026, 5, 1, 13, 0, 0), utc(2026, 5, 1, 13, 30, 0), schedule.MissedRunOnce, 0,
			nil, utc(2026, 5, 1, 14, 0, 0)},
		{"never ran", hourly, time.Time{}, utc(2026, 5, 1, 13, 30, 0), schedule.MissedRunOnce, 0,
			nil, utc(2026, 5, 1, 14, 0, 0)},
		{"long downtime, dense schedule", "* * * * * *", utc(2025, 5, 1, 0, 0, 0), utc(2026, 5, 1, 13, 30, 0), schedule.MissedRunOnce, 0,
			[]time.Time{utc(2026, 5, 1, 13, 30, 0)}, utc(2026, 5, 1, 13, 30, 1)},
		{"long downtime, sparse schedule", "@yearly", utc(2020, 1, 1, 0, 0, 0), utc(2026, 5, 1, 13, 30, 0), schedule.MissedRunOnce, 0,
			[]time.Time{utc(2026, 1, 1, 0, 0, 0)}, utc(2027, 1, 1, 0, 0, 0)},
		{"every continues its grid", "@every 1h", utc(2026, 5, 1, 10, 0, 0), utc(2026, 5, 1, 12, 30, 0), schedule.MissedRunOnce, 0,
			[]time.Time{utc(2026, 5, 1, 12, 0, 0)}, utc(2026, 5, 1, 13, 0, 0)},
		{"every skip", "@every 1h", utc(2026, 5, 1, 10, 0, 0), utc(2026, 5, 1, 12, 30, 0), schedule.MissedSkip, 0,
			nil, utc(2026, 5, 1, 13, 0, 0)},
		{"every not yet due", "@every 1h", utc(2026, 5, 1, 12, 0, 0), utc(2026, 5, 1, 12, 30, 0), schedule.MissedRunOnce, 0,
			nil, utc(2026, 5, 1, 13, 0, 0)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := mustParse(t, tt.expr, "")
			run, next := s.CatchUp(tt.last, tt.now, tt.policy, tt.deadline)
			if len(run) != len(tt.wantRun) || (len(run) == 1 && !run[0].Equal(tt.wantRun[0])) || !next.Equal(tt.wantNext) {
				t.Errorf("CatchUp = %v, %v; want %v, %v", run, next, tt.wantRun, tt.wantNext)
			}
		})
	}
}

func ExampleParse() {
	s, err := schedule.Parse("30 2 * * *", "Europe/Berlin")
	if err != nil {
		panic(err)
	}
	// 02:30 does not exist on 2026-03-29 (02:00 jumps to 03:00): it fires once, at 03:00.
	for _, t := range s.Between(time.Date(2026, 3, 27, 0, 0, 0, 0, time.UTC), time.Date(2026, 3, 31, 0, 0, 0, 0, time.UTC), 10) {
		fmt.Println(t)
	}
	fmt.Println(s)
	// Output:
	// 2026-03-27 02:30:00 +0100 CET
	// 2026-03-28 02:30:00 +0100 CET
	// 2026-03-29 03:00:00 +0200 CEST
	// 2026-03-30 02:30:00 +0200 CEST
	// 30 2 * * * (Europe/Berlin)
}

// Expressions that match no date at all are refused, naming the field;
// those that match rarely (leap days) or only through the day of week are
// accepted.
func TestNeverFiresIsRefused(t *testing.T) {
	for _, expr := range []string{
		"0 0 30 2 *", "0 0 31 2 *", "0 0 30-31 2 *", "0 0 30,31 FEB *", "*/5 * 30 2 *",
		"0 0 31 4 *", "0 0 31 6 *", "0 0 31 9 *", "0 0 31 11 *", "0 0 31 4,6,9,11 *",
		"0 0 30 2 */7",       // day of week starts with "*": both must match
		"0 0 0 30 2 *",       // with seconds
		"*/10 0 12 31 APR *", // with seconds and names
		"0 0 31 2-12/12 *",   // a step that lands on February only
	} {
		_, err := schedule.Parse(expr, "Europe/Berlin")
		if !errors.Is(err, cronium.ErrInvalid) || !strings.HasPrefix(err.Error(), "schedule:") || !strings.Contains(err.Error(), "never fires") {
			t.Errorf("Parse(%q) = %v, want a refusal that says it never fires", expr, err)
		}
	}
	for _, expr := range []string{
		"0 0 29 2 *",     // leap days only
		"0 0 30 2 MON",   // day of month OR day of week (Vixie cron): Mondays in February
		"0 0 31 4-5 *",   // May 31st
		"0 0 0 29 2 SUN", // seconds, leap day or Sunday
	} {
		s, err := schedule.Parse(expr, "UTC")
		if err != nil {
			t.Errorf("Parse(%q): %v", expr, err)
			continue
		}
		if s.Next(utc(2026, 1, 1, 0, 0, 0)).IsZero() {
			t.Errorf("%q has no next time", expr)
		}
	}
}

// BenchmarkNext times Next for common schedules in a zone with daylight
// saving (run with the previous implementation for comparison: see
// BENCHMARKS.md).
func BenchmarkNext(b *testing.B) {
	for _, expr := range []string{"* * * * *", "*/5 * * * *", "30 2 * * *", "0 9 * * MON-FRI", "@monthly", "0 0 29 2 *"} {
		b.Run(expr, func(b *testing.B) {
			s, err := schedule.Parse(expr, "Europe/Berlin")
			if err != nil {
				b.Fatal(err)
			}
			at := utc(2026, 3, 1, 0, 0, 0)
			for b.Loop() {
				if at = s.Next(at); at.Year() > 2400 {
					at = utc(2026, 3, 1, 0, 0, 0)
				}
			}
		})
	}
}
