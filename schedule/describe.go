package schedule

import (
	"fmt"
	"strconv"
	"strings"
)

// Describe says a cron expression in words, for people: "every 15 minutes",
// "at 03:30 every day", "at 09:00 on Monday to Friday". An expression it
// has no simple words for is described field by field; one that does not
// parse is returned as it is.
func Describe(expr string) string {
	e := strings.ToLower(strings.TrimSpace(expr))
	if d, ok := strings.CutPrefix(e, "@every "); ok {
		return "every " + strings.TrimSpace(d)
	}
	switch e {
	case "@hourly":
		return "every hour, on the hour"
	case "@daily", "@midnight":
		return "at 00:00 every day"
	case "@weekly":
		return "at 00:00 on Sunday"
	case "@monthly":
		return "at 00:00 on day 1 of every month"
	case "@yearly", "@annually":
		return "at 00:00 on 1 January"
	}
	f := strings.Fields(e)
	if len(f) == 6 {
		if f[0] != "0" {
			return expr // seconds: say it as it is
		}
		f = f[1:]
	}
	if len(f) != 5 {
		return expr
	}
	min, hour, dom, mon, dow := f[0], f[1], f[2], f[3], f[4]
	var when string
	switch {
	case min == "*" && hour == "*":
		when = "every minute"
	case strings.HasPrefix(min, "*/") && hour == "*":
		when = "every " + plural(min[2:], "minute")
	case isNum(min) && hour == "*":
		when = fmt.Sprintf("every hour at minute %s", min)
	case isNum(min) && strings.HasPrefix(hour, "*/"):
		when = fmt.Sprintf("every %s at minute %s", plural(hour[2:], "hour"), min)
	case isNum(min) && isNum(hour):
		when = fmt.Sprintf("at %02s:%02s", hour, min)
	case isNum(min) && isList(hour):
		var ts []string
		for _, h := range strings.Split(hour, ",") {
			ts = append(ts, fmt.Sprintf("%02s:%02s", h, min))
		}
		when = "at " + strings.Join(ts, ", ")
	default:
		when = fmt.Sprintf("at minute %s past hour %s", min, hour)
	}
	var days []string
	if dom != "*" {
		days = append(days, "on day "+dom+" of the month")
	}
	if dow != "*" {
		days = append(days, "on "+weekdays(dow))
	}
	day := strings.Join(days, " or ")
	if day == "" {
		if mon == "*" && (isNum(hour) || isList(hour)) {
			day = "every day"
		}
	}
	out := when
	if day != "" {
		out += " " + day
	}
	if mon != "*" {
		out += " in " + months(mon)
	}
	return out
}

func isNum(s string) bool {
	_, err := strconv.Atoi(s)
	return err == nil
}

func isList(s string) bool {
	for _, p := range strings.Split(s, ",") {
		if !isNum(p) {
			return false
		}
	}
	return strings.Contains(s, ",")
}

func plural(n, unit string) string {
	if n == "1" {
		return unit
	}
	return n + " " + unit + "s"
}

var dayNames = []string{"Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"}

var monthNames = []string{"", "January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"}

// named replaces numbers and three-letter names in a day-of-week or month
// field by full names; "-" reads "to", "," reads ", ".
func named(field string, names []string, short []string) string {
	var parts []string
	for _, p := range strings.Split(field, ",") {
		step := ""
		if i := strings.Index(p, "/"); i >= 0 {
			p, step = p[:i], " every "+p[i+1:]
		}
		var ends []string
		for _, e := range strings.SplitN(p, "-", 2) {
			if n, err := strconv.Atoi(e); err == nil && n >= 0 && n < len(names) {
				e = names[n]
			}
			for i, s := range short {
				if e == s {
					e = names[i]
				}
			}
			ends = append(ends, e)
		}
		parts = append(parts, strings.Join(ends, " to ")+step)
	}
	return strings.Join(parts, ", ")
}

func weekdays(f string) string {
	return named(f, dayNames, []string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"})
}

func months(f string) string {
	return named(f, monthNames, []string{"", "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"})
}
