package schedule

import "testing"

func TestDescribe(t *testing.T) {
	for expr, want := range map[string]string{
		"* * * * *":        "every minute",
		"*/15 * * * *":     "every 15 minutes",
		"5 * * * *":        "every hour at minute 5",
		"0 */2 * * *":      "every 2 hours at minute 0",
		"30 3 * * *":       "at 03:30 every day",
		"0 9 * * MON-FRI":  "at 09:00 on Monday to Friday",
		"0 9 * * 1-5":      "at 09:00 on Monday to Friday",
		"0 8,20 * * *":     "at 08:00, 20:00 every day",
		"0 0 1,15 * mon":   "at 00:00 on day 1,15 of the month or on Monday",
		"0 12 1 jan *":     "at 12:00 on day 1 of the month in January",
		"@every 30s":       "every 30s",
		"@hourly":          "every hour, on the hour",
		"@DAILY":           "at 00:00 every day",
		"0 30 3 * * *":     "at 03:30 every day",
		"15 30 3 * * *":    "15 30 3 * * *",
		"1-10/2 3 * * *":   "at minute 1-10/2 past hour 3 every day",
		"0 0 * * 0":        "at 00:00 on Sunday",
		"0 0 * * 7":        "at 00:00 on Sunday",
		"not a schedule":   "not a schedule",
		"0 0 * 1-6/2 *":    "at 00:00 in January to June every 2",
		"<b>0</b> * * * *": "at minute <b>0</b> past hour *",
	} {
		if got := Describe(expr); got != want {
			t.Errorf("Describe(%q) = %q, want %q", expr, got, want)
		}
	}
}
