package cronium

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Size is a number of bytes. It parses from and prints as Kubernetes-style
// quantities: 512Mi, 1G, 100M, 64Ki, or plain bytes.
type Size int64

var sizeUnits = []struct {
	suffix string
	factor int64
}{
	{"Ki", 1 << 10}, {"Mi", 1 << 20}, {"Gi", 1 << 30}, {"Ti", 1 << 40},
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
	{"K", 1000}, {"M", 1000 * 1000}, {"G", 1000 * 1000 * 1000}, {"T", 1000 * 1000 * 1000 * 1000},
	{"k", 1000}, {"KB", 1000}, {"MB", 1000 * 1000}, {"GB", 1000 * 1000 * 1000},
	{"B", 1},
}

// SizeForm describes the accepted size syntax, for error messages.
const SizeForm = "want a size like 512Mi, 1Gi, 100M or 1G (Ki/Mi/Gi are powers of 1024, K/M/G of 1000)"

// ParseSize parses s as a Size. field names the input in the error.
func ParseSize(field, s string) (Size, error) {
	t := strings.TrimSpace(s)
	if t == "" {
		return 0, Invalid(field, s, "is empty: "+SizeForm)
	}
	num, factor := t, int64(1)
	// Longest suffix first so "Mi" wins over "M" and "MiB" over "Mi".
	best := ""
	for _, u := range sizeUnits {
		if strings.HasSuffix(t, u.suffix) && len(u.suffix) > len(best) {
			best, factor = u.suffix, u.factor
		}
	}
	num = strings.TrimSpace(strings.TrimSuffix(t, best))
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, Invalid(field, s, "is not a size: "+SizeForm)
	}
	if f < 0 {
		return 0, Invalid(field, s, "is negative: "+SizeForm)
	}
	v := f * float64(factor)
	if v >= 1<<62 { // in float64: 1<<62 is exact, MaxInt64/2 rounds up to it
		return 0, Invalid(field, s, "is too large")
	}
	return Size(math.Round(v)), nil
}

// String prints s in the largest binary unit that divides it exactly.
func (s Size) String() string {
	for _, u := range []struct {
		suffix string
		factor int64
	}{{"Ti", 1 << 40}, {"Gi", 1 << 30}, {"Mi", 1 << 20}, {"Ki", 1 << 10}} {
		if s != 0 && int64(s)%u.factor == 0 {
			return fmt.Sprintf("%d%s", int64(s)/u.factor, u.suffix)
		}
	}
	return strconv.FormatInt(int64(s), 10)
}

// DurationForm describes the accepted duration syntax, for error messages.
const DurationForm = "want a duration like 30s, 2m, 1h30m or plain seconds like 45"

// ParseDuration parses Go duration syntax ("1m30s") or plain seconds ("90",
// "2.5"). field names the input in the error. Zero and negative durations
// are rejected.
func ParseDuration(field, s string) (time.Duration, error) {
	t := strings.TrimSpace(s)
	var d time.Duration
	if f, err := strconv.ParseFloat(t, 64); err == nil {
		if math.IsNaN(f) || math.IsInf(f, 0) || f*float64(time.Second) >= 1<<63 {
			return 0, Invalid(field, s, "is not a duration: "+DurationForm)
		}
		d = time.Duration(f * float64(time.Second))
	} else {
		d, err = time.ParseDuration(t)
		if err != nil {
			return 0, Invalid(field, s, "is not a duration: "+DurationForm)
		}
	}
	if d <= 0 {
		return 0, Invalid(field, s, "must be more than zero: "+DurationForm)
	}
	return d, nil
}

// UnmarshalJSON reads a byte count (536870912) or a size string ("512Mi").
func (s *Size) UnmarshalJSON(b []byte) error {
	var str string
	if err := json.Unmarshal(b, &str); err != nil {
		var n int64
		if err := json.Unmarshal(b, &n); err != nil {
			return fmt.Errorf("%s is not a size: %s", b, SizeForm)
		}
		*s = Size(n)
		return nil
	}
	v, err := ParseSize("", str) // the decoder's caller names the field
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// MaxKeyLife bounds how long an API key may be made to work.
const MaxKeyLife = 10 * 365 * 24 * time.Hour

// ParseKeyLife reads how long an API key works: a duration ("720h") or
// whole days ("30d"), more than 0 and at most 10 years. field names the
// flag or JSON field in errors.
func ParseKeyLife(field, v string) (time.Duration, error) {
	if days, ok := strings.CutSuffix(v, "d"); ok {
		if n, err := strconv.Atoi(days); err == nil && n > 0 && n <= 3650 {
			return time.Duration(n) * 24 * time.Hour, nil
		}
	}
	d, err := ParseDuration(field, v)
	if err == nil && d > MaxKeyLife {
		err = Invalid(field, v, "is more than 10 years: want a duration like 720h or days like 30d")
	}
	return d, err
}
