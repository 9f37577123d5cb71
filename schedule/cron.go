package schedule

import (
	"fmt"
	"math/bits"
	"strconv"
	"strings"
)

// field describes one cron field: its name in messages, its bounds and the
// names it accepts (index i names the value low+i).
type field struct {
	name      string
	low, high int
	names     []string
}

var (
	secondField = field{name: "second", low: 0, high: 59}
	minuteField = field{name: "minute", low: 0, high: 59}
	hourField   = field{name: "hour", low: 0, high: 23}
	domField    = field{name: "day-of-month", low: 1, high: 31}
	monthField  = field{name: "month", low: 1, high: 12,
		names: []string{"JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"}}
	// dowField accepts 0-7: 0 and 7 are both Sunday, as in cronie.
	dowField = field{name: "day-of-week", low: 0, high: 7,
		names: []string{"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"}}
)

// spec is a parsed cron expression: one bit per matching value.
type spec struct {
	second, minute uint64
	hour           uint32
	dom            uint32 // bits 1-31
	month          uint16 // bits 1-12
	dow            uint8  // bits 0-6 (Sunday is 0; a 7 in the expression sets bit 0)
	// domStar and dowStar are cronie's DOM_STAR and DOW_STAR: the field's
	// text starts with "*". If either is set, a day must match both fields;
	// otherwise either field is enough.
	domStar, dowStar bool
	// wild is cronie's MIN_STAR|HR_STAR: the minute or the hour field starts
	// with "*". Wildcard schedules follow real time through daylight-saving
	// changes; the others follow the wall clock (see Schedule).
	wild bool
}

// fieldError is a problem with one field of an expression.
func fieldError(f field, text, problem string) error {
	return &exprError{fmt.Sprintf("%s field %q: %s", f.name, text, problem)}
}

// exprError is a problem with a cron expression, worded for the user.
type exprError struct{ problem string }

func (e *exprError) Error() string { return e.problem }

// parseSpec parses 5 fields (minute hour day-of-month month day-of-week) or 6
// with a leading second field, with cronie's syntax: lists, ranges a-b,
// steps */n and a-b/n, names (JAN-DEC, SUN-SAT, any case) and Sunday as 0 or 7.
func parseSpec(expr string) (*spec, error) {
	fs := strings.Fields(expr)
	switch {
	case len(fs) == 6 && looksLikeYear(fs[5]):
		return nil, &exprError{fmt.Sprintf("the 6th field %q looks like a year, and cron has no year field "+
			"(6 fields are second minute hour day-of-month month day-of-week): remove it", fs[5])}
	case len(fs) != 5 && len(fs) != 6:
		return nil, &exprError{fmt.Sprintf(`has %d fields: want 5 (minute hour day-of-month month day-of-week, like "*/5 * * * *"), `+
			`6 with a leading second field, a descriptor such as @daily, or "@every 30s"`, len(fs))}
	}
	s := &spec{second: 1}
	if len(fs) == 6 {
		v, err := parseField(secondField, fs[0])
		if err != nil {
			return nil, err
		}
		s.second = v
		fs = fs[1:]
	}
	all := []struct {
		f   field
		set func(uint64)
	}{
		{minuteField, func(v uint64) { s.minute = v }},
		{hourField, func(v uint64) { s.hour = uint32(v) }},
		{domField, func(v uint64) { s.dom = uint32(v) }},
		{monthField, func(v uint64) { s.month = uint16(v) }},
		{dowField, func(v uint64) {
			if v&(1<<7) != 0 {
				v |= 1 // Sunday as 7
			}
			s.dow = uint8(v & 0x7f)
		}},
	}
	for i, p := range all {
		v, err := parseField(p.f, fs[i])
		if err != nil {
			return nil, err
		}
		p.set(v)
	}
	s.wild = strings.HasPrefix(fs[0], "*") || strings.HasPrefix(fs[1], "*")
	s.domStar = strings.HasPrefix(fs[2], "*")
	s.dowStar = strings.HasPrefix(fs[4], "*")
	return s, nil
}

// looksLikeYear reports whether a sixth field is a year rather than a day of week.
func looksLikeYear(text string) bool {
	n, err := strconv.Atoi(text)
	return err == nil && n >= 1000
}

// parseField parses one field: item{,item}, where item is "*", a value, or a
// range a-b, the last two optionally followed by /step.
func parseField(f field, text string) (uint64, error) {
	var set uint64
	for _, item := range strings.Split(text, ",") {
		if item == "" {
			return 0, fieldError(f, text, "has an empty list item (two commas in a row, or one at an end): remove the extra comma")
		}
		v, err := parseItem(f, item)
		if err != nil {
			if item != text {
				err = fieldError(f, text, fmt.Sprintf("%q %s", item, err.(*exprError).problem))
			} else {
				err = fieldError(f, text, err.(*exprError).problem)
			}
			return 0, err
		}
		set |= v
	}
	return set, nil
}

func problem(format string, args ...any) error { return &exprError{fmt.Sprintf(format, args...)} }

func parseItem(f field, item string) (uint64, error) {
	base, stepText, hasStep := strings.Cut(item, "/")
	lo, hi := f.low, f.high
	if base != "*" {
		a, b, isRange := strings.Cut(base, "-")
		var err error
		if lo, err = value(f, a, false); err != nil {
			return 0, err
		}
		hi = lo
		if isRange {
			if hi, err = value(f, b, true); err != nil {
				return 0, err
			}
			if lo > hi {
				return 0, problem("runs backwards: ranges do not wrap around; write it as two, like %s,%s", span(lo, f.high), span(f.low, hi))
			}
		} else if hasStep {
			return 0, problem(`has a step but no range: write "%d-%d/%s" (from %d on) or "*/%s"`, lo, f.high, stepText, lo, stepText)
		}
	}
	step := 1
	if hasStep {
		maxStep := f.high - f.low + 1
		n, err := strconv.Atoi(stepText)
		switch {
		case err != nil || !allDigits(stepText):
			return 0, problem("has step %q: want a whole number 1-%d after the /", stepText, maxStep)
		case n < 1 || n > maxStep:
			return 0, problem("has step %d: must be 1-%d (the field's range)", n, maxStep)
		case n > hi-f.low+1:
			// cronie's rule: the step may not be longer than the range
			// from the field's lowest value to the range's end.
			return 0, problem("has step %d, longer than the range it steps through: it would match only %d; write %d", n, lo, lo)
		}
		step = n
	}
	var set uint64
	for v := lo; v <= hi; v += step {
		set |= 1 << v
	}
	return set, nil
}

// value reads one number or name of field f. rangeEnd says it ends a range,
// where SUN means 7 (so that SAT-SUN is 6-7).
func value(f field, text string, rangeEnd bool) (int, error) {
	bounds := fmt.Sprintf("%d-%d", f.low, f.high)
	if f.names != nil {
		bounds += fmt.Sprintf(" or a name %s-%s", f.names[0], f.names[len(f.names)-1])
	}
	switch {
	case text == "" && rangeEnd:
		return 0, problem("has a range without an end: want a value %s after the -", bounds)
	case text == "":
		return 0, problem("has a range without a start: want a value %s before the - (cron has no negative numbers)", bounds)
	case allDigits(text):
		n, err := strconv.Atoi(text)
		if err != nil || n < f.low || n > f.high {
			return 0, problem("must be %s", bounds)
		}
		return n, nil
	}
	for i, name := range f.names {
		if strings.EqualFold(text, name) {
			if rangeEnd && f.name == dowField.name && i == 0 {
				return 7, nil
			}
			return f.low + i, nil
		}
	}
	switch {
	case text == "?":
		return 0, problem(`uses "?", which is Quartz syntax, not cron: write "*"`)
	case strings.ContainsAny(text, "LW#"):
		return 0, problem("uses L, W or #, which are Quartz syntax, not cron: list the days instead")
	case strings.Contains(text, "~"):
		return 0, problem("uses ~ (a random value), which Cronium does not support: pick a value")
	}
	return 0, problem("is not a value: want a number %s", bounds)
}

// span writes the range a-b, or a alone when b is a.
func span(a, b int) string {
	if a == b {
		return strconv.Itoa(a)
	}
	return strconv.Itoa(a) + "-" + strconv.Itoa(b)
}

func allDigits(s string) bool {
	if s == "" || len(s) > 9 {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// daysIn is the number of days of month m (1-12) in year y.
func daysIn(y int64, m int) int {
	switch m {
	case 2:
		if y%4 == 0 && (y%100 != 0 || y%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// fires reports whether any date matches: some month of the expression has
// one of its days of month. (With cronie's OR rule any weekday will do;
// with the AND rule every valid date falls on every weekday in some year of
// the 400-year Gregorian cycle.)
func (s *spec) fires() bool {
	if !s.domStar && !s.dowStar {
		return true // any matching weekday of any month matches
	}
	for m := 1; m <= 12; m++ {
		if s.month&(1<<m) == 0 {
			continue
		}
		max := daysIn(2024, m) // a leap year: February 29 counts
		if s.dom&(1<<(max+1)-2) != 0 {
			return true
		}
	}
	return false
}

// dayMatches applies cronie's rule for day of month and day of week.
func (s *spec) dayMatches(d, wd int) bool {
	dom, dow := s.dom&(1<<d) != 0, s.dow&(1<<wd) != 0
	if s.domStar || s.dowStar {
		return dom && dow
	}
	return dom || dow
}

// nextTime returns the first time of day (seconds since midnight) at or
// after tod that matches, or false.
func (s *spec) nextTime(tod int64) (int64, bool) {
	h, m, sec := int(tod/3600), int(tod/60%60), int(tod%60)
	for h < 24 {
		nh, ok := nextBit(uint64(s.hour), h, 23)
		if !ok {
			return 0, false
		}
		if nh != h {
			h, m, sec = nh, 0, 0
		}
		for m < 60 {
			nm, ok := nextBit(s.minute, m, 59)
			if !ok {
				break
			}
			if nm != m {
				m, sec = nm, 0
			}
			if ns, ok := nextBit(s.second, sec, 59); ok {
				return int64(h)*3600 + int64(m)*60 + int64(ns), true
			}
			m, sec = m+1, 0
		}
		h, m, sec = h+1, 0, 0
	}
	return 0, false
}

// nextBit returns the lowest set bit of set in [from, max].
func nextBit(set uint64, from, max int) (int, bool) {
	if from > max {
		return 0, false
	}
	rest := set >> from << from
	if rest == 0 {
		return 0, false
	}
	b := bits.TrailingZeros64(rest)
	return b, b <= max
}

// nextCivil returns the first wall-clock time in [from, to] (seconds on a
// calendar without zones, see civil) that matches, or false. It walks day
// by day, skipping months that do not match; the caller bounds the span.
func (s *spec) nextCivil(from, to int64) (int64, bool) {
	day, tod := floorDiv(from, 86400), floorMod(from, 86400)
	for day*86400 <= to {
		y, m, d := civilFromDays(day)
		if s.month&(1<<m) == 0 {
			// jump to the first day of the next month
			y, m = y+int64(m/12), m%12+1
			day, tod = daysFromCivil(y, m, 1), 0
			continue
		}
		if s.dayMatches(d, weekday(day)) {
			if t, ok := s.nextTime(tod); ok {
				if c := day*86400 + t; c <= to {
					return c, true
				}
				return 0, false
			}
		}
		day, tod = day+1, 0
	}
	return 0, false
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

func floorMod(a, b int64) int64 { return a - floorDiv(a, b)*b }

// weekday of a day number (days since 1970-01-01, a Thursday): 0 is Sunday.
func weekday(day int64) int { return int(floorMod(day+4, 7)) }

// daysFromCivil returns the day number of y-m-d in the proleptic Gregorian
// calendar (Howard Hinnant's algorithm), exact for any int64 year in range.
func daysFromCivil(y int64, m, d int) int64 {
	if m <= 2 {
		y--
	}
	era := floorDiv(y, 400)
	yoe := y - era*400
	mp := int64((m + 9) % 12)
	doy := (153*mp+2)/5 + int64(d) - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return era*146097 + doe - 719468
}

// civilFromDays is the inverse of daysFromCivil.
func civilFromDays(z int64) (y int64, m, d int) {
	z += 719468
	era := floorDiv(z, 146097)
	doe := z - era*146097
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365
	y = yoe + era*400
	doy := doe - (365*yoe + yoe/4 - yoe/100)
	mp := (5*doy + 2) / 153
	d = int(doy - (153*mp+2)/5 + 1)
	m = int(mp)
	if m < 10 {
		m += 3
	} else {
		m -= 9
	}
	if m <= 2 {
		y++
	}
	return y, m, d
}
