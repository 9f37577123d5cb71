package schedule_test

import (
	"archive/zip"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	cronium "github.com/cronium/executor"
	"github.com/cronium/executor/schedule"
)

// TestCronieDays checks cronie's day-of-month/day-of-week rule and Sunday as
// 7 against dates worked out by hand from the sources:
//   - crontab(5): "If both fields are restricted (i.e., do not start with *),
//     the command will be run when either field matches the current time."
//   - entry.c, load_entry: DOM_STAR and DOW_STAR are set when the field's
//     first character is '*'; "make sundays equivalent" sets bit 0 and bit 7
//     together; DowNames lists "Sun" again as 7.
//   - cron.c, find_jobs: with DOM_STAR or DOW_STAR both fields must match,
//     otherwise either.
func TestCronieDays(t *testing.T) {
	tests := []struct {
		expr, source string
		want         []string // the first fire dates after 2026-01-01T00:00Z
	}{
		// 2026-01-01 is a Thursday.
		{"0 0 */2 * 1", "entry.c DOM_STAR", []string{"2026-01-05", "2026-01-19", "2026-02-09", "2026-02-23"}},
		{"0 0 15 * */2", "entry.c DOW_STAR", []string{"2026-01-15", "2026-02-15", "2026-03-15", "2026-08-15"}},
		{"0 0 */10 * 0", "entry.c DOM_STAR", []string{"2026-01-11", "2026-02-01", "2026-03-01", "2026-05-31"}},
		{"0 0 1,15 * MON", "crontab(5) either", []string{"2026-01-05", "2026-01-12", "2026-01-15", "2026-01-19", "2026-01-26", "2026-02-01"}},
		{"0 0 * * MON", "crontab(5)", []string{"2026-01-05", "2026-01-12", "2026-01-19"}},
		{"0 0 13 * *", "crontab(5)", []string{"2026-01-13", "2026-02-13"}},
		{"0 0 */13 * FRI", "entry.c: starts with *", []string{"2026-02-27", "2026-03-27", "2026-05-01"}},
		{"0 0 *,13 * FRI", "entry.c: a list starting with *", []string{"2026-01-02", "2026-01-09", "2026-01-16"}},
		{"0 0 13 * FRI", "crontab(5) either", []string{"2026-01-02", "2026-01-09", "2026-01-13", "2026-01-16"}},
		{"0 0 * * 7", "entry.c Sunday as 7", []string{"2026-01-04", "2026-01-11"}},
		{"0 0 * * 0,7", "entry.c Sunday as 7", []string{"2026-01-04", "2026-01-11"}},
		{"0 0 * * 5-7", "entry.c Sunday as 7", []string{"2026-01-02", "2026-01-03", "2026-01-04", "2026-01-09"}},
		{"0 0 * * 1-7", "entry.c Sunday as 7", []string{"2026-01-02", "2026-01-03", "2026-01-04", "2026-01-05", "2026-01-06"}},
		{"0 0 * * SAT-SUN", "Sunday as 7 in a range", []string{"2026-01-03", "2026-01-04", "2026-01-10", "2026-01-11"}},
		{"0 0 * * sat,sun", "entry.c strcasecmp", []string{"2026-01-03", "2026-01-04", "2026-01-10"}},
		{"0 0 1 jan-feb *", "entry.c MonthNames", []string{"2026-02-01", "2027-01-01", "2027-02-01"}},
		{"@weekly", "entry.c: 0 0 * * 0", []string{"2026-01-04", "2026-01-11"}},
		{"@MONTHLY", "descriptors in any case", []string{"2026-02-01", "2026-03-01"}},
	}
	for _, tt := range tests {
		s := mustParse(t, tt.expr, "UTC")
		var got []string
		at := utc(2026, 1, 1, 0, 0, 0)
		for range tt.want {
			at = s.Next(at)
			got = append(got, at.Format(time.DateOnly))
		}
		if strings.Join(got, " ") != strings.Join(tt.want, " ") {
			t.Errorf("%q (%s): fires on %v, want %v", tt.expr, tt.source, got, tt.want)
		}
	}
}

// TestCronieSyntax: what cronie's entry.c (get_range, get_number,
// set_range) refuses is refused, with a message that names the field, says
// what is expected and, where there is one, the fix.
func TestCronieSyntax(t *testing.T) {
	refused := []struct{ expr, want string }{
		{"+5 * * * *", `minute field "+5": is not a value: want a number 0-59`},
		{"0 +9 * * *", `hour field "+9": is not a value: want a number 0-23`},
		{"1,,2 * * * *", `minute field "1,,2": has an empty list item`},
		{"1, * * * *", `minute field "1,": has an empty list item`},
		{"? * * * *", `minute field "?": uses "?", which is Quartz syntax, not cron: write "*"`},
		{"0 0 ? * *", `day-of-month field "?": uses "?"`},
		{"*/100 * * * *", `minute field "*/100": has step 100: must be 1-60`},
		{"*/0 * * * *", `minute field "*/0": has step 0: must be 1-60`},
		{"*/x * * * *", `minute field "*/x": has step "x": want a whole number 1-60`},
		{"0-10/59 * * * *", `minute field "0-10/59": has step 59, longer than the range it steps through: it would match only 0; write 0`},
		{"5/10 * * * *", `minute field "5/10": has a step but no range: write "5-59/10" (from 5 on) or "*/10"`},
		{"60 0 0 * * *", `second field "60": must be 0-59`},
		{"0 60 0 * * *", `minute field "60": must be 0-59`},
		{"-5 * * * *", `minute field "-5": has a range without a start`},
		{"5- * * * *", `minute field "5-": has a range without an end`},
		{"1,60 * * * *", `minute field "1,60": "60" must be 0-59`},
		{"0 0 * * 8", `day-of-week field "8": must be 0-7 or a name SUN-SAT`},
		{"0 0 * * 5-1", `day-of-week field "5-1": runs backwards: ranges do not wrap around; write it as two, like 5-7,0-1`},
		{"0 0 * * 7-0", `write it as two, like 7,0`},
		{"0 0 * * SUN-SAT-MON", `day-of-week field "SUN-SAT-MON": is not a value`},
		{"0 0 * * MONDAY", `day-of-week field "MONDAY": is not a value`},
		{"0 0 L * *", `day-of-month field "L": uses L, W or #, which are Quartz syntax`},
		{"0 0 15W * *", `day-of-month field "15W": uses L, W or #`},
		{"0 12 * * SUN#2", `day-of-week field "SUN#2": uses L, W or #`},
		{"0~30 * * * *", `minute field "0~30": uses ~`},
		{"0 0 * JAN *-1", `day-of-week field "*-1": is not a value`},
		{"0 0 31 2 * 2027", `the 6th field "2027" looks like a year, and cron has no year field`},
		{"0 0 31 2 *", `"0 0 31 2 *" never fires: no month in it has that day of month`},
		{"0 0 * * * * *", "has 7 fields"},
		{"@reboot", "leave schedule empty for an event that runs on demand"},
	}
	for _, tt := range refused {
		_, err := schedule.Parse(tt.expr, "UTC")
		if !errors.Is(err, cronium.ErrInvalid) || !strings.HasPrefix(err.Error(), "schedule: ") || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Parse(%q) = %v, want a schedule error saying %q", tt.expr, err, tt.want)
		}
	}
	// The exact form of the simplest case.
	if _, err := schedule.Parse("60 * * * *", ""); err == nil || err.Error() != `schedule: minute field "60": must be 0-59` {
		t.Errorf("Parse(60 * * * *) = %v", err)
	}
	for _, expr := range []string{
		"*/60 * * * *", "0-59/60 * * * *", "*/24 */24 */31 */12 */8", "0 0 * * 7", "0 0 * * 0,7",
		"0 0 * * 1-7", "0 0 * * 5-7", "0 0 * * SAT-SUN", "0 0 * * sun", "@DAILY", "@Hourly",
		"@EVERY 30s", "@Every 1m", "  0  9\t* * *  ", "00 09 * * *", "*/15 2 * * *", "20-30/25 * * * *",
	} {
		if _, err := schedule.Parse(expr, "UTC"); err != nil {
			t.Errorf("Parse(%q): %v", expr, err)
		}
	}
}

// zoneSources loads a zone from the host's zone files (Debian's tzdata)
// and from Go's own compact copy ($GOROOT/lib/time/zoneinfo.zip). Both must
// be there: a test that cannot load them fails.
func zoneSources(t testing.TB) map[string]func(name string) *time.Location {
	t.Helper()
	goroot, err := exec.Command("go", "env", "GOROOT").Output()
	if err != nil {
		t.Fatalf("go env GOROOT: %v", err)
	}
	zr, err := zip.OpenReader(filepath.Join(strings.TrimSpace(string(goroot)), "lib", "time", "zoneinfo.zip"))
	if err != nil {
		t.Fatalf("Go's zone data: %v", err)
	}
	t.Cleanup(func() { zr.Close() })
	load := func(name string, data []byte, err error) *time.Location {
		t.Helper()
		if err != nil {
			t.Fatalf("zone %s: %v", name, err)
		}
		loc, err := time.LoadLocationFromTZData(name, data)
		if err != nil {
			t.Fatalf("zone %s: %v", name, err)
		}
		return loc
	}
	return map[string]func(string) *time.Location{
		"host zoneinfo": func(name string) *time.Location {
			data, err := os.ReadFile(filepath.Join("/usr/share/zoneinfo", name))
			return load(name, data, err)
		},
		"Go zoneinfo.zip": func(name string) *time.Location {
			f, err := zr.Open(name)
			if err != nil {
				return load(name, nil, err)
			}
			defer f.Close()
			data, err := io.ReadAll(f)
			return load(name, data, err)
		},
	}
}

// TestNextPastTheZoneData: the reproductions of golang/go#81583 (ZoneBounds
// wrong past a zone's last listed change) return the right times promptly
// under both zone-data sources.
func TestNextPastTheZoneData(t *testing.T) {
	z := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	tests := []struct {
		expr, zone, from string
		want             []string
	}{
		{"0 0 29 2 *", "Europe/Berlin", "2026-03-29T00:59:59Z", []string{
			"2028-02-28T23:00:00Z", "2032-02-28T23:00:00Z", "2036-02-28T23:00:00Z", "2040-02-28T23:00:00Z", "2044-02-28T23:00:00Z"}},
		{"0 0 * * *", "Europe/Berlin", "2028-12-30T12:00:00Z", []string{
			"2028-12-30T23:00:00Z", "2028-12-31T23:00:00Z", "2029-01-01T23:00:00Z"}},
		{"* * * * *", "America/New_York", "2028-12-31T06:00:00Z", []string{
			"2028-12-31T06:01:00Z", "2028-12-31T06:02:00Z"}},
		{"0 * * * *", "Europe/Berlin", "2040-12-31T00:00:00Z", []string{
			"2040-12-31T01:00:00Z", "2040-12-31T02:00:00Z"}},
		{"@yearly", "Europe/Berlin", "2040-12-30T12:00:00Z", []string{"2040-12-31T23:00:00Z", "2041-12-31T23:00:00Z"}},
		{"*/5 * * * *", "Australia/Lord_Howe", "2040-12-31T00:00:00Z", []string{"2040-12-31T00:05:00Z"}},
		{"0 0 29 2 *", "UTC", "2096-03-01T00:00:00Z", []string{"2104-02-29T00:00:00Z"}},
		// 2199-03-31 is the last Sunday of March: the skipped 02:30 fires at 03:00 CEST.
		{"30 2 * * *", "Europe/Berlin", "2199-03-31T00:00:00Z", []string{"2199-03-31T01:00:00Z", "2199-04-01T00:30:00Z"}},
	}
	for source, load := range zoneSources(t) {
		for _, tt := range tests {
			s, err := schedule.ParseIn(tt.expr, load(tt.zone))
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			withDeadline(t, "Next", func() {
				at := z(tt.from)
				for range tt.want {
					at = s.Next(at)
					got = append(got, at.UTC().Format(time.RFC3339))
				}
			})
			if strings.Join(got, " ") != strings.Join(tt.want, " ") {
				t.Errorf("%s, %q in %s from %s: %v, want %v", source, tt.expr, tt.zone, tt.from, got, tt.want)
			}
		}
	}
}

// propertyZones are zones with unusual changes: 30-minute DST (Lord Howe),
// 45-minute offsets (Chatham), changes at midnight (São Paulo until 2019,
// Havana, Gaza, Santiago), negative DST (Dublin, Casablanca around
// Ramadan), two hours (Troll), a skipped day (Apia, 2011), and fixed zones.
var propertyZones = []string{
	"Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Pacific/Chatham",
	"America/Sao_Paulo", "America/Havana", "Asia/Gaza", "America/Santiago", "Europe/Dublin",
	"Africa/Casablanca", "Antarctica/Troll", "Pacific/Apia", "Asia/Tehran", "America/St_Johns",
	"Asia/Kathmandu", "UTC", "Asia/Tokyo", "Europe/London", "Australia/Sydney", "America/Los_Angeles",
}

// TestNextMatchesCronie is the property test: random 5-field expressions,
// zones and instants from 1980 to 2200 (half of them within hours of a
// zone change), under both zone-data sources. For each, the fire times of
// Next over the next two days must be exactly those of a simulation of
// cronie's main loop (cron.c: virtual time, the four kinds of wake-up, and
// find_jobs), which runs minute by minute on the real clock.
func TestNextMatchesCronie(t *testing.T) {
	cases := 10000
	if v := os.Getenv("CRONIUM_CRON_CASES"); v != "" {
		var err error
		if cases, err = strconv.Atoi(v); err != nil {
			t.Fatalf("CRONIUM_CRON_CASES=%q: want a number", v)
		}
	}
	for source, load := range zoneSources(t) {
		rng := rand.New(rand.NewPCG(1, uint64(len(source))))
		zones := map[string]*time.Location{}
		for _, z := range propertyZones {
			zones[z] = load(z)
		}
		failures := 0
		for i := 0; i < cases && failures < 10; i++ {
			expr := randomExpr(rng)
			zone := propertyZones[rng.IntN(len(propertyZones))]
			loc := zones[zone]
			s, err := schedule.ParseIn(expr, loc)
			if err != nil {
				continue // a random expression that never fires
			}
			u0 := randomInstant(rng, loc)
			const window = 2 * 24 * 3600
			want := simulateCronie(expr, loc, u0, u0+window)
			if got := firesIn(t, s, u0, u0+window); !equalInts(got, want) {
				failures++
				t.Errorf("%s: %q in %s from %s: Next gives %v, cronie %v", source, expr, zone,
					time.Unix(u0, 0).In(loc), fmtTimes(got, loc), fmtTimes(want, loc))
			}
		}
	}
}

// firesIn returns the fire times of s in [from, to), by Next.
func firesIn(t *testing.T, s *schedule.Schedule, from, to int64) []int64 {
	t.Helper()
	var got []int64
	withDeadline(t, "Next", func() {
		for at := time.Unix(from-1, 0); ; {
			at = s.Next(at)
			if at.IsZero() || at.Unix() >= to {
				return
			}
			got = append(got, at.Unix())
		}
	})
	return got
}

func equalInts(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func fmtTimes(us []int64, loc *time.Location) []string {
	var out []string
	for i, u := range us {
		if i == 8 {
			out = append(out, "...")
			break
		}
		out = append(out, time.Unix(u, 0).In(loc).Format("2006-01-02T15:04:05-07:00"))
	}
	return out
}

// randomInstant is a whole minute between 1980 and 2200; half the time one
// within six hours of a change of the zone's offset, found by sampling.
func randomInstant(rng *rand.Rand, loc *time.Location) int64 {
	lo, hi := time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC).Unix(), time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC).Unix()
	u := lo + rng.Int64N(hi-lo)
	if rng.IntN(2) == 0 {
		_, off := time.Unix(u, 0).In(loc).Zone()
		for v := u; v < u+366*86400; v += 1800 {
			if _, o := time.Unix(v, 0).In(loc).Zone(); o != off {
				u = v - 6*3600 + rng.Int64N(12*3600)
				break
			}
		}
	}
	return u / 60 * 60
}

// randomExpr builds a 5-field expression, mostly of fields that fire often
// around the hours zones change in, with stars, steps, ranges and lists.
func randomExpr(rng *rand.Rand) string {
	f := func(low, high int, starBias int) string {
		switch r := rng.IntN(10); {
		case r < starBias:
			return "*"
		case r < starBias+2:
			return "*/" + strconv.Itoa(1+rng.IntN(min(high-low+1, 20)))
		case r < starBias+3:
			a := low + rng.IntN(high-low+1)
			b := a + rng.IntN(high-a+1)
			return strconv.Itoa(a) + "-" + strconv.Itoa(b) + "/" + strconv.Itoa(1+rng.IntN(4))
		case r < starBias+5:
			n := 1 + rng.IntN(3)
			var items []string
			for range n {
				items = append(items, strconv.Itoa(low+rng.IntN(high-low+1)))
			}
			return strings.Join(items, ",")
		default:
			a := low + rng.IntN(high-low+1)
			b := a + rng.IntN(min(high-a+1, 4))
			if a == b {
				return strconv.Itoa(a)
			}
			return strconv.Itoa(a) + "-" + strconv.Itoa(b)
		}
	}
	minute := f(0, 59, 2)
	hour := f(0, 4, 3) // the hours most changes happen in
	if rng.IntN(3) == 0 {
		hour = f(0, 23, 3)
	}
	return strings.Join([]string{minute, hour, f(1, 31, 6), f(1, 12, 7), f(0, 7, 6)}, " ")
}

// simulateCronie returns the instants in [from, to) at which cronie, with
// TZ set to loc and started four hours before from, runs a job with this
// expression. It follows cron.c's main loop: each real minute it reads the
// wall clock (clockTime), compares it with its virtual time and, by the
// difference, runs wildcard and/or fixed-time jobs for the current and
// skipped minutes. The fields are matched here independently of the
// package: with the time package's calendar and cronie's DOM/DOW rule.
func simulateCronie(expr string, loc *time.Location, from, to int64) []int64 {
	m := newMatcher(expr)
	clock := func(r int64) int64 {
		_, off := time.Unix(r, 0).In(loc).Zone()
		return floorDiv(r+int64(off), 60)
	}
	var fires []int64
	run := func(r int64) {
		if r >= from && (len(fires) == 0 || fires[len(fires)-1] != r) {
			fires = append(fires, r)
		}
	}
	// find_jobs(vtime, doWild, doNonWild)
	find := func(r, vtime int64, doWild, doNonWild bool) {
		if m.matches(vtime) && (doNonWild && !m.wild || doWild && m.wild) {
			run(r)
		}
	}
	start := from - 4*3600
	virtualTime := clock(start)
	timeRunning := virtualTime
	for r := start + 60; r < to; r += 60 {
		clockTime := clock(r)
		if clockTime == timeRunning {
			continue // cronie sleeps until the minute changes
		}
		timeRunning = clockTime
		timeDiff := timeRunning - virtualTime
		if timeDiff == 1 {
			virtualTime = timeRunning
			find(r, virtualTime, true, true)
			continue
		}
		kind := -1
		if timeDiff > -180 {
			kind = 0
		}
		if timeDiff > 0 {
			kind = 1
		}
		if timeDiff > 5 {
			kind = 2
		}
		if timeDiff > 180 {
			kind = 3
		}
		switch kind {
		case 1: // woke up late: every virtual minute, all jobs
			for virtualTime < timeRunning {
				virtualTime++
				find(r, virtualTime, true, true)
			}
		case 2: // daylight saving began: wildcard now, fixed-time for each skipped minute
			find(r, timeRunning, true, false)
			for virtualTime < timeRunning {
				virtualTime++
				find(r, virtualTime, false, true)
			}
		case 0: // daylight saving ended: wildcard jobs only; virtual time waits
			find(r, timeRunning, true, false)
		default: // the clock jumped: start over from now
			virtualTime = timeRunning
			find(r, timeRunning, true, true)
		}
	}
	return fires
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// matcher is cronie's entry: bit sets per field and the star flags.
type matcher struct {
	min, hour, dom, month, dow map[int]bool
	domStar, dowStar, wild     bool
}

// newMatcher parses the simple forms randomExpr makes (numbers only).
func newMatcher(expr string) *matcher {
	fs := strings.Fields(expr)
	set := func(text string, low, high int) map[int]bool {
		out := map[int]bool{}
		for _, item := range strings.Split(text, ",") {
			rng, step, _ := strings.Cut(item, "/")
			a, b := low, high
			if rng != "*" {
				x, y, isRange := strings.Cut(rng, "-")
				a, _ = strconv.Atoi(x)
				b = a
				if isRange {
					b, _ = strconv.Atoi(y)
				}
			}
			n := 1
			if step != "" {
				n, _ = strconv.Atoi(step)
			}
			for v := a; v <= b; v += n {
				out[v] = true
			}
		}
		return out
	}
	m := &matcher{
		min: set(fs[0], 0, 59), hour: set(fs[1], 0, 23), dom: set(fs[2], 1, 31),
		month: set(fs[3], 1, 12), dow: set(fs[4], 0, 7),
		domStar: fs[2][0] == '*', dowStar: fs[4][0] == '*',
		wild: fs[0][0] == '*' || fs[1][0] == '*',
	}
	if m.dow[7] {
		m.dow[0] = true
	}
	return m
}

// matches reports whether the wall-clock minute vtime (minutes since
// 1970-01-01 00:00 on the wall clock) matches.
func (m *matcher) matches(vtime int64) bool {
	tm := time.Unix(vtime*60, 0).UTC()
	if !m.min[tm.Minute()] || !m.hour[tm.Hour()] || !m.month[int(tm.Month())] {
		return false
	}
	dom, dow := m.dom[tm.Day()], m.dow[int(tm.Weekday())]
	if m.domStar || m.dowStar {
		return dom && dow
	}
	return dom || dow
}

// FuzzNextLikeCronie compares Next with the simulation of cronie's main loop
// (see TestNextMatchesCronie) for fuzzed numeric 5-field expressions, zones,
// instants from 1970 to 2400 and both zone-data sources, over one day.
func FuzzNextLikeCronie(f *testing.F) {
	sources := zoneSources(f)
	locs := map[bool]map[string]*time.Location{}
	for _, host := range []bool{false, true} {
		load := sources["Go zoneinfo.zip"]
		if host {
			load = sources["host zoneinfo"]
		}
		locs[host] = map[string]*time.Location{}
		for _, z := range propertyZones {
			locs[host][z] = load(z)
		}
	}
	f.Add("*/15 2 * * *", uint8(0), int64(1792890000), true)   // Berlin fall back
	f.Add("30 2 * * *", uint8(0), int64(1774746000), false)    // Berlin spring forward
	f.Add("0 0 * * *", uint8(0), int64(1861704000), false)     // 2028-12-30T12:00Z
	f.Add("* * * * *", uint8(1), int64(1861768800), false)     // 2028-12-31T06:00Z New York
	f.Add("0,30 1-3 * * 0", uint8(2), int64(2240524800), true) // Lord Howe, 2040
	f.Add("0 0 */2 * 1", uint8(3), int64(1767225600), true)
	simple := regexp.MustCompile(`^[0-9*,/-]+$`)
	f.Fuzz(func(t *testing.T, expr string, zone uint8, unix int64, host bool) {
		fs := strings.Fields(expr)
		if len(fs) != 5 {
			return
		}
		for _, x := range fs {
			if !simple.MatchString(x) {
				return // the simulation's own parser reads numbers only
			}
		}
		name := propertyZones[int(zone)%len(propertyZones)]
		loc := locs[host][name]
		s, err := schedule.ParseIn(strings.Join(fs, " "), loc)
		if err != nil {
			return
		}
		lo, hi := int64(0), time.Date(2400, 1, 1, 0, 0, 0, 0, time.UTC).Unix()
		u0 := lo + ((unix%hi)+hi)%hi/60*60
		const window = 24 * 3600
		want := simulateCronie(strings.Join(fs, " "), loc, u0, u0+window)
		if got := firesIn(t, s, u0, u0+window); !equalInts(got, want) {
			t.Fatalf("%q in %s (host zone files %v) from %s: Next gives %v, cronie %v", expr, name, host,
				time.Unix(u0, 0).In(loc), fmtTimes(got, loc), fmtTimes(want, loc))
		}
	})
}
