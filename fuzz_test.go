package cronium

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

// checkFieldError asserts that err is an ErrInvalid *FieldError naming field,
// whose text starts with the field's name.
func checkFieldError(t *testing.T, err error, field, input string) {
	t.Helper()
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("%q: error %v does not match ErrInvalid", input, err)
	}
	var fe *FieldError
	if !errors.As(err, &fe) {
		t.Fatalf("%q: error %v is not a *FieldError", input, err)
	}
	if fe.Field != field {
		t.Fatalf("%q: error names field %q, want %q", input, fe.Field, field)
	}
	// The field starts the message; without one (a value decoded in a
	// context that names it), the message starts with the problem.
	if field != "" && !strings.HasPrefix(err.Error(), field+": ") || field == "" && strings.HasPrefix(err.Error(), ":") {
		t.Fatalf("%q: error %q does not start with %q", input, err, field+": ")
	}
}

// FuzzParseSize: ParseSize never panics; errors name the field; a result is
// in [0, MaxInt64/2]; Size.String parses back to the same Size (and is
// stable); the JSON string form decodes to the same Size.
func FuzzParseSize(f *testing.F) {
	for _, s := range []string{
		"512Mi", "1Gi", "100M", "1G", "64Ki", "0", "1", " 2 Mi ", "1.5Gi", "0.5Ki", "1KiB", "1kB", "1KB",
		"1k", "1T", "1Ti", "3TiB", "1B", "B", "Mi", "", " ", "-1", "-0", "1e3", "1e300Ti", "NaN", "Inf",
		"-Inf", "0x10", "0x1p4Mi", "1_000", "4611686018427387903", "4611686018427387904", "9223372036854775807",
		"8388607Ti", "8388608Ti", "4194304Ti", "0.0000001", "1Mi1", "1 Gi B", "1iB", "１Mi",
	} {
		f.Add("--memory", s)
	}
	f.Add("", "1Mi")
	f.Add("resources.memory", "lots")
	f.Fuzz(func(t *testing.T, field, s string) {
		v, err := ParseSize(field, s)
		if err != nil {
			checkFieldError(t, err, field, s)
			return
		}
		// ParseSize refuses values above MaxInt64/2 so that two sizes add
		// without overflow.
		if v < 0 || v >= 1<<62 {
			t.Fatalf("ParseSize(%q) = %d, out of [0, 1<<62)", s, v)
		}
		str := v.String()
		back, err := ParseSize(field, str)
		if err != nil || back != v {
			t.Fatalf("ParseSize(%q) = %d, whose String %q parses as %d, %v", s, v, str, back, err)
		}
		if back.String() != str {
			t.Fatalf("Size(%d).String() is not stable: %q then %q", v, str, back.String())
		}
		var j Size
		q, _ := json.Marshal(s)
		if err := json.Unmarshal(q, &j); err != nil || j != v {
			t.Fatalf("JSON %s decodes to %d, %v; ParseSize gives %d", q, j, err, v)
		}
	})
}

// FuzzParseSizeCapRegression checks ParseSize's cap: results are at most
// MaxInt64/2, so that the sum of two sizes never overflows.
//
// A regression test of a bug the fuzzer found (fixed): ParseSize
// (size.go) tests v > math.MaxInt64/2 in float64, where MaxInt64/2 rounds up
// to 1<<62, so "4194304Ti" and "4611686018427387903" give 1<<62 =
// MaxInt64/2+1, and 1<<62 + 1<<62 overflows to MinInt64 (the sum
// Limits.Validate computes). Low severity: no caller adds two parsed sizes
// today (--tmp-size is the only mount flag). Suggested fix:
// if v >= 1<<62 { too large }.
func FuzzParseSizeCapRegression(f *testing.F) {
	f.Add("4194304Ti")
	f.Add("4611686018427387903")
	f.Add("4611686018427387904")
	f.Add("4194303Ti")
	f.Fuzz(func(t *testing.T, s string) {
		if v, err := ParseSize("size", s); err == nil && v > math.MaxInt64/2 {
			t.Fatalf("ParseSize(%q) = %d, above MaxInt64/2 = %d", s, v, int64(math.MaxInt64/2))
		}
	})
}

// FuzzSizeString: for any byte count ParseSize can return exactly (up to
// 1<<62, and exact in a float64: byte counts above 2^53 that are not are
// rounded, as ParseSize parses through float64), String parses back to it.
// Negative counts are refused.
func FuzzSizeString(f *testing.F) {
	for _, n := range []int64{0, 1, 1023, 1024, 1 << 20, 3 << 30, 5 << 40, 1 << 53, 1<<53 + 1, 1 << 62, math.MaxInt64 / 2, -1, -1 << 20, math.MinInt64, math.MaxInt64} {
		f.Add(n)
	}
	f.Fuzz(func(t *testing.T, n int64) {
		s := Size(n).String()
		v, err := ParseSize("size", s)
		switch {
		case n < 0:
			if err == nil {
				t.Fatalf("Size(%d).String() = %q parses as %d: negative sizes must be refused", n, s, v)
			}
		case n >= 1<<62 || int64(float64(n)) != n:
			if err == nil && v >= 1<<62 {
				t.Fatalf("Size(%d).String() = %q parses as %d, above the cap", n, s, v)
			}
		case err != nil || v != Size(n):
			t.Fatalf("Size(%d).String() = %q parses as %d, %v", n, s, v, err)
		}
	})
}

// FuzzParseDuration: no panics; errors name the field; a result is > 0 and
// its String parses back to it; the JSON Duration agrees with ParseDuration.
func FuzzParseDuration(f *testing.F) {
	for _, s := range []string{
		"30s", "2m", "1h30m", "45", "2.5", "0", "-1", "-1s", "0s", "1ns", "0.0000000001", "0.000000001",
		"1e9", "9223372036", "9223372036.854775807", "9223372037", "2562047h47m16.854775807s",
		"2562047h47m16.854775808s", "NaN", "Inf", "+Inf", "", " 5 ", "5 s", "1d", "0x10", "1_0", ".5", "5.",
		"1h-30m", "Infinity", "1e-300",
	} {
		f.Add("--timeout", s)
	}
	f.Fuzz(func(t *testing.T, field, s string) {
		d, err := ParseDuration(field, s)
		if err != nil {
			checkFieldError(t, err, field, s)
			return
		}
		if d <= 0 {
			t.Fatalf("ParseDuration(%q) = %v, not more than zero", s, d)
		}
		if back, err := ParseDuration(field, d.String()); err != nil || back != d {
			t.Fatalf("ParseDuration(%q) = %v, whose String parses as %v, %v", s, d, back, err)
		}
		var j Duration
		q, _ := json.Marshal(s)
		if err := json.Unmarshal(q, &j); err != nil || j.D() != d {
			t.Fatalf("JSON %s decodes to %v, %v; ParseDuration gives %v", q, j.D(), err, d)
		}
	})
}

// FuzzParseDurationRangeRegression: a plain number of seconds is either
// accepted as a positive duration, or refused as too small only when it is
// below one nanosecond.
//
// A regression test of a bug the fuzzer found (fixed): ParseDuration
// (size.go) refuses f > MaxInt64/1e9 but lets f == float64(MaxInt64)/1e9
// through (it rounds to 2^63/1e9), then converts f*1e9 = 2^63 to
// time.Duration, which overflows: implementation-defined in Go (MinInt64 on
// amd64, so "9223372036.854775807" is refused with "must be more than zero";
// MaxInt64 on arm64, so it is accepted there). Low severity. Suggested fix:
// refuse f*float64(time.Second) >= 1<<63 ("is too large").
func FuzzParseDurationRangeRegression(f *testing.F) {
	f.Add("9223372036.854775807") // overflowed on amd64
	f.Add("9223372036.8547758")   // overflowed on amd64
	f.Add("9223372036.8547")
	f.Add("0.0000000001")
	f.Fuzz(func(t *testing.T, s string) {
		fs, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
		if err != nil || math.IsNaN(fs) || math.IsInf(fs, 0) || fs*float64(time.Second) < 1 {
			return
		}
		d, err := ParseDuration("--timeout", s)
		if err != nil && strings.Contains(err.Error(), "more than zero") {
			t.Fatalf("ParseDuration(%q) = %v: a positive number of seconds refused as not more than zero", s, err)
		}
		if err == nil && d <= 0 {
			t.Fatalf("ParseDuration(%q) = %v", s, d)
		}
	})
}

// FuzzParseBandwidth: no panics; errors name the field; a result is 0 (for
// "" and "0") or within [64kbps, 10Gbps]; String parses back to the same
// rate; the JSON form round-trips.
func FuzzParseBandwidth(f *testing.F) {
	for _, s := range []string{
		"10Mbps", "512kbps", "1Gbps", "10mbit", "64kbit", "64000bps", "63999bps", "10Gbps", "10.000000001Gbps",
		"0", "", " ", "10", "0.5Mbps", "1.5kbps", "0.064Mbps", ".", "..5Mbps", "1.2.3Mbps", "-1Mbps", "1e3kbps",
		"1 Mbps", "  2Gbit ", "1Tbps", "99999999999999999999999Mbps", "64000.9bps", "0Mbps",
	} {
		f.Add("--bandwidth", s)
	}
	f.Fuzz(func(t *testing.T, field, s string) {
		b, err := ParseBandwidth(field, s)
		if err != nil {
			checkFieldError(t, err, field, s)
			return
		}
		if b == 0 {
			if ts := strings.TrimSpace(s); ts != "" && ts != "0" {
				t.Fatalf("ParseBandwidth(%q) = 0 without an error", s)
			}
			return
		}
		if b < minBandwidth || b > maxBandwidth {
			t.Fatalf("ParseBandwidth(%q) = %d, out of [%d, %d]", s, b, minBandwidth, maxBandwidth)
		}
		if back, err := ParseBandwidth(field, b.String()); err != nil || back != b {
			t.Fatalf("ParseBandwidth(%q) = %d, whose String %q parses as %d, %v", s, b, b.String(), back, err)
		}
		j, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		var back Bandwidth
		if err := json.Unmarshal(j, &back); err != nil || back != b {
			t.Fatalf("Bandwidth %d as JSON %s decodes to %d, %v", b, j, back, err)
		}
	})
}

// FuzzParseNames covers ParseLanguage and ParseNetworkMode: errors name the
// field; results are supported values; parsing a result gives it back.
func FuzzParseNames(f *testing.F) {
	for _, s := range []string{"bash", "sh", "python", "python3", "py", "node", "nodejs", "js", "javascript",
		"BASH", "Python3", "ruby", "", " bash", "none", "egress", "internal", "full", "Full", "host", "İ", "ſh"} {
		f.Add("language", s)
	}
	f.Fuzz(func(t *testing.T, field, s string) {
		if l, err := ParseLanguage(field, s); err != nil {
			checkFieldError(t, err, field, s)
		} else {
			known := false
			for _, k := range Languages {
				known = known || k == l
			}
			if !known {
				t.Fatalf("ParseLanguage(%q) = %q, not in Languages", s, l)
			}
			if back, err := ParseLanguage(field, string(l)); err != nil || back != l {
				t.Fatalf("ParseLanguage(%q) = %q, which parses as %q, %v", s, l, back, err)
			}
		}
		if m, err := ParseNetworkMode(field, s); err != nil {
			checkFieldError(t, err, field, s)
		} else {
			known := m == ""
			for _, k := range NetworkModes {
				known = known || k == m
			}
			if !known || string(m) != s {
				t.Fatalf("ParseNetworkMode(%q) = %q", s, m)
			}
		}
	})
}

// addLimitsSeeds seeds memory, tmp and workspace sizes in bytes.
func addLimitsSeeds(f *testing.F) {
	const mi = 1 << 20
	for _, c := range [][3]int64{
		{0, 0, 0}, {256 * mi, 0, 0}, {32 * mi, 0, 0}, {32*mi - 1, 0, 0}, {33 * mi, 0, 0}, {64 * mi, 0, 0},
		{512 * mi, 300 * mi, 0}, {512 * mi, 0, 300 * mi}, {512 * mi, 200 * mi, 200 * mi}, {128 * mi, 100 * mi, 100 * mi},
		{1 << 40, 0, 0}, {math.MaxInt64 / 2, 0, 0}, {32 * mi, 12 * mi, 0}, {32 * mi, 11 * mi, 0}, {32 * mi, 0, 11 * mi},
		{48 * mi, 1, 1}, {-1, 0, 0}, {1023 * mi, 0, 0}, {1024*mi + 1, 0, 0},
	} {
		f.Add(c[0], c[1], c[2])
	}
}

// checkLimits asserts: Defaults() then Validate(): if Validate passes,
// TmpSize+WorkspaceSize <= TmpfsBudget() (checked without overflow) and
// TmpfsBudget()+Reserve()+ShmSize() <= Memory; the defaults alone are valid
// (with Memory >= MinMemory and no mount size given, Validate passes; with
// one mount size given that leaves 1Mi for the other, it passes too);
// failures name a limits field.
func checkLimits(t *testing.T, mem, tmp, ws int64) {
	t.Helper()
	in := Limits{Memory: Size(mem), TmpSize: Size(tmp), WorkspaceSize: Size(ws)}
	l := in.Defaults()
	err := l.Validate()
	if err != nil {
		var fe *FieldError
		if !errors.As(err, &fe) || !errors.Is(err, ErrInvalid) {
			t.Fatalf("%+v: Validate error %v is not an ErrInvalid FieldError", l, err)
		}
		switch fe.Field {
		case "memory", "memory_reservation", "tmp_size", "workspace_size":
		default:
			t.Fatalf("%+v: Validate names field %q, but only memory and the mounts were given", l, fe.Field)
		}
		budget := Limits{Memory: Size(mem)}.Defaults().TmpfsBudget()
		switch {
		case mem >= int64(MinMemory) && tmp == 0 && ws == 0:
			t.Fatalf("memory %d with default mounts does not validate: %v (defaults %+v)", mem, err, l)
		case mem >= int64(MinMemory) && ws == 0 && tmp >= 1<<20 && tmp <= int64(budget)-1<<20:
			t.Fatalf("memory %d, tmp %d leaves room for a 1Mi workspace, but the defaults do not validate: %v (%+v)", mem, tmp, err, l)
		case mem >= int64(MinMemory) && tmp == 0 && ws >= 1<<20 && ws <= int64(budget)-1<<20:
			t.Fatalf("memory %d, workspace %d leaves room for a 1Mi /tmp, but the defaults do not validate: %v (%+v)", mem, ws, err, l)
		}
		return
	}
	budget := l.TmpfsBudget()
	if l.TmpSize < 1<<20 || l.WorkspaceSize < 1<<20 || l.TmpSize > budget || l.WorkspaceSize > budget-l.TmpSize {
		t.Fatalf("Validate passed but tmp %d + workspace %d > budget %d (memory %d)", l.TmpSize, l.WorkspaceSize, budget, l.Memory)
	}
	if budget < 0 || budget+l.Reserve()+l.ShmSize() > l.Memory {
		t.Fatalf("budget %d + reserve %d + shm %d > memory %d", budget, l.Reserve(), l.ShmSize(), l.Memory)
	}
	if l.MemoryReservation > l.Memory || l.Memory < MinMemory {
		t.Fatalf("Validate passed %+v", l)
	}
	if (tmp != 0 && l.TmpSize != Size(tmp)) || (ws != 0 && l.WorkspaceSize != Size(ws)) || (mem != 0 && l.Memory != Size(mem)) {
		t.Fatalf("Defaults changed a given value: %+v from %+v", l, in)
	}
	if again := l.Defaults(); again != l {
		t.Fatalf("Defaults is not idempotent: %+v then %+v", l, again)
	}
}

// clampSize maps n into what ParseSize can return, [0, MaxInt64/2]: the
// only way sizes reach Limits from users (flags, event resources).
func clampSize(n int64) int64 {
	if n < 0 {
		n = -(n + 1)
	}
	return n % (math.MaxInt64/2 + 1)
}

// FuzzLimitsBudget checks checkLimits for sizes ParseSize can produce.
func FuzzLimitsBudget(f *testing.F) {
	addLimitsSeeds(f)
	f.Fuzz(func(t *testing.T, mem, tmp, ws int64) {
		// Mostly realistic memory sizes (up to 64Gi), sometimes any.
		m := clampSize(mem)
		if mem >= 0 {
			m %= 64 << 30
		}
		checkLimits(t, m, clampSize(tmp), clampSize(ws))
	})
}

// FuzzLimitsBudgetAnyInt64Regression is FuzzLimitsBudget for any int64 sizes.
//
// A regression test of a bug the fuzzer found (fixed): Limits.Validate
// (limits.go) checks l.TmpSize+l.WorkspaceSize > l.TmpfsBudget(), a sum that
// overflows: TmpSize = WorkspaceSize = 1<<62 (4Ei each) pass with Memory 256Mi.
// ParseSize caps sizes at MaxInt64/2, so flags and event resources cannot
// reach it, but Limits decoded from JSON (limits.go UnmarshalJSON, used for
// docker/engine.go labels) can. Suggested fix: compare without overflow,
//
//	case l.TmpSize > l.TmpfsBudget() || l.WorkspaceSize > l.TmpfsBudget()-l.TmpSize:
func FuzzLimitsBudgetAnyInt64Regression(f *testing.F) {
	f.Add(int64(256<<20), int64(1<<62), int64(1<<62)) // Validate passed: the sum overflowed
	f.Add(int64(256<<20), int64(math.MaxInt64), int64(2))
	addLimitsSeeds(f)
	f.Fuzz(func(t *testing.T, mem, tmp, ws int64) {
		checkLimits(t, mem, tmp, ws)
	})
}

// eventFields are the JSON names of Event: every Normalize error must name
// one of them (possibly with a sub-field: "retry.on", "packages.apt[0]").
var eventFields = func() map[string]bool {
	m := map[string]bool{}
	b, _ := json.Marshal(Event{Packages: Packages{Apt: []string{"x"}}, PackageLock: &PackageLock{}, Image: "x",
		Files: map[string][]byte{"x": nil}, ImagePinned: "x", Env: map[string]string{"x": ""}, Input: json.RawMessage("1"),
		Secrets: []string{"x"}, RequiresIsolation: true, Untrusted: true, Enabled: new(bool)})
	var obj map[string]any
	_ = json.Unmarshal(b, &obj)
	for k := range obj {
		m[k] = true
	}
	return m
}()

// decodeEvent decodes data as the API does (api.decode): one JSON value,
// unknown fields refused.
func decodeEvent(data []byte) (Event, error) {
	var ev Event
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	err := dec.Decode(&ev)
	return ev, err
}

func addEventSeeds(f *testing.F) {
	for _, s := range []string{
		`{"name":"hello","language":"bash","script":"echo hi"}`,
		`{"name":"py-job","language":"python3","script":"print(1)","schedule":"*/5 * * * *","timezone":"Europe/Berlin",
		  "timeout":"2m","resources":{"memory":"256Mi","cpus":0.25,"pids":50},"profile":"standard",
		  "network":{"mode":"egress","allow_domains":["API.Example.com","*.example.org","api.example.com."],"blocked_ports":[25,25,22],"bandwidth":"10Mbps"},
		  "packages":{"apt":["jq","curl","jq"],"python":["requests==2.*"]},"env":{"A":"1"},"input":{"x":[1,2]},
		  "secrets":["db_pass"],"data_mode":"stdio","strategy":"reuse","concurrency":"forbid",
		  "retry":{"max_attempts":3,"backoff":"5s","max_backoff":60,"on":["failed","oom_killed"]},
		  "missed_runs":"run_once","starting_deadline":"10m","priority":-5,"enabled":false}`,
		`{"name":"n","language":"node","script":"1","network":"none","files":{"lib/a.js":"YQ==","b.json":""}}`,
		`{"name":"n","language":"js","script":"1","network":{"allow_services":["db","db"]},"input":null}`,
		`{"name":"x","language":"sh","script":"x","timeout":30,"retry":{"backoff":"1.5s"}}`,
		`{"name":"x","language":"sh","script":"x","retry":{"backoff":"500ms","max_backoff":"800ms"},"starting_deadline":"250ms"}`,
		`{"name":"x","language":"sh","script":"x","timeout":"1.5s"}`,
		`{"name":"x","language":"sh","script":"x","timeout":"1h"}`,
		`{"name":"x","language":"sh","script":"x","resources":{"memory":"600Mi"}}`,
		`{"name":"x","language":"sh","script":"x","resources":{"memory":"31Mi"}}`,
		`{"name":"x","language":"sh","script":"x","resources":{"cpus":0.001}}`,
		`{"name":"x","language":"sh","script":"x","image":"  registry.example/t:1 ","packages":{"apt":["jq"]}}`,
		`{"name":"x","language":"sh","script":"x","env":{"CRONIUM_X":"1"}}`,
		`{"name":"x","language":"sh","script":"x","env":{"A B":"1"}}`,
		`{"name":"x","language":"sh","script":"x","secrets":["a","a"]}`,
		`{"name":"x","language":"sh","script":"x","priority":101}`,
		`{"name":"x","language":"sh","script":"x","files":{"../etc/passwd":"eA=="}}`,
		`{"name":"x","language":"sh","script":"x","files":{"a":"eA==","a/b":"eA=="}}`,
		`{"name":"x","language":"sh","script":"x","network":{"mode":"none","bandwidth":"1Mbps"}}`,
		`{"name":"x","language":"sh","script":"x","network":{"allow_domains":["*.com"]}}`,
		`{"name":"x","language":"sh","script":"x","network":{"allow_domains":["10.0.0.1"]}}`,
		`{"name":"x","language":"sh","script":"x","unknown":1}`,
		`{"name":"x","language":"sh","script":"x","created_at":"2026-01-02T03:04:05.123+02:00","id":7,"user":"u"}`,
		`{"name":"x","language":"sh","script":"x","package_lock":{"image":"i","base":"b","key":"k","built_at":"2026-01-01T00:00:00Z"}}`,
		`{"name":"Bad","language":"sh","script":"x"}`,
		`{"name":"x","language":"sh","script":"  "}`,
		`{"name":"x","language":"cobol","script":"x"}`,
		`{"name":"x","language":"sh","script":"x","input":"\u0000"}`,
		`{"name":"x","language":"sh","script":"x","retry":{"max_attempts":21}}`,
		`{"name":"x","language":"sh","script":"x","retry":{"on":["succeeded"]}}`,
		`{"name":"x","language":"sh","script":"x","starting_deadline":"-1s"}`,
		`{"name":"x","language":"sh","script":"x","timeout":"9223372036.854775807"}`,
		`{"name":"x","language":"sh","script":"x","profile":"trusted","network":"full"}`,
		`{"name":"x","language":"bash","script":"x","data_mode":"files","strategy":"user","concurrency":"replace","missed_runs":"skip"}`,
		`null`, `[]`, `{}`, ``, `{"name":`, `{"name":"x"} trailing`,
	} {
		f.Add([]byte(s))
	}
}

// subSecond reports whether an event's durations have fractions of a second,
// which the JSON form (whole seconds) cannot carry: see
// FuzzEventRoundTripRegression.
func subSecond(e *Event) bool {
	for _, d := range []Duration{e.Timeout, e.Retry.Backoff, e.Retry.MaxBackoff, e.StartingDeadline} {
		if d.D()%time.Second != 0 {
			return true
		}
	}
	return false
}

// checkEvent decodes data like the API, normalizes it against the free tier
// and asserts: no panic; errors are FieldErrors naming an Event field; a
// normalized event re-marshals and re-decodes to the same JSON, and
// normalizing it again changes nothing (Normalize is idempotent). With
// strictDurations false, events with sub-second durations skip the
// round-trip check (a known bug, see FuzzEventRoundTripRegression).
func checkEvent(t *testing.T, data []byte, strictDurations bool) {
	t.Helper()
	ev, err := decodeEvent(data)
	if err != nil {
		return
	}
	tier := DefaultTiers()["free"]
	if err := ev.Normalize(tier); err != nil {
		var fe *FieldError
		if !errors.As(err, &fe) || !errors.Is(err, ErrInvalid) {
			t.Fatalf("Normalize(%s): error %v is not an ErrInvalid FieldError", data, err)
		}
		top := fe.Field
		if i := strings.IndexAny(top, ".["); i >= 0 {
			top = top[:i]
		}
		if !eventFields[top] {
			t.Fatalf("Normalize(%s): error %q names %q, not an Event field", data, err, fe.Field)
		}
		return
	}
	if !strictDurations && subSecond(&ev) {
		return
	}
	j1, err := json.Marshal(ev)
	if err != nil {
		t.Fatalf("a normalized event does not marshal: %v (%+v)", err, ev)
	}
	ev2, err := decodeEvent(j1)
	if err != nil {
		t.Fatalf("a normalized event's JSON %s does not decode: %v", j1, err)
	}
	j2, _ := json.Marshal(ev2)
	if !bytes.Equal(j1, j2) {
		t.Fatalf("a normalized event does not survive JSON:\nfirst  %s\nsecond %s", j1, j2)
	}
	if a, b := canonicalEvent(ev), canonicalEvent(ev2); !reflect.DeepEqual(a, b) {
		t.Fatalf("a normalized event decodes from its JSON %s to a different value:\nnormalized %+v\ndecoded    %+v", j1, a, b)
	}
	if err := ev2.Normalize(tier); err != nil {
		t.Fatalf("a normalized event (%s), decoded again, fails Normalize: %v", j1, err)
	}
	if j3, _ := json.Marshal(ev2); !bytes.Equal(j1, j3) {
		t.Fatalf("Normalize is not idempotent:\nonce  %s\ntwice %s", j1, j3)
	}
}

// canonicalEvent clears what JSON does not keep apart and Normalize does not
// canonicalize: empty versus nil maps and lists, the Input's spacing.
func canonicalEvent(e Event) Event {
	if len(e.Files) == 0 {
		e.Files = nil
	}
	if len(e.Env) == 0 {
		e.Env = nil
	}
	if len(e.Secrets) == 0 {
		e.Secrets = nil
	}
	if len(e.Input) > 0 {
		var b bytes.Buffer
		if json.Compact(&b, e.Input) == nil {
			e.Input = b.Bytes()
		}
	}
	return e
}

// FuzzEventNormalize feeds arbitrary bytes to the API's event decoding and
// Event.Normalize (free tier): see checkEvent.
func FuzzEventNormalize(f *testing.F) {
	addEventSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		checkEvent(t, data, false)
	})
}

// FuzzEventRoundTripRegression is FuzzEventNormalize with sub-second durations.
//
// A regression test of a bug the fuzzer found (fixed): Event.Normalize
// (controlplane.go) requires timeout to be whole seconds, but accepts
// retry.backoff, retry.max_backoff and starting_deadline with fractions of a
// second ("500ms", "1.5s"), while Duration.MarshalJSON writes whole seconds
// (truncating). The store keeps events as JSON (sqlite/store.go PutEvent), so
// the stored event differs from the accepted one: backoff "1.5s" becomes 1s;
// backoff "500ms" becomes 0, which Normalize would default to 10s but the
// dispatcher (dispatch.go, retry delay) reads as no backoff at all;
// starting_deadline "250ms" becomes 0 = no deadline.
// Suggested fix: in Normalize, refuse durations that are not whole seconds for
// retry.backoff, retry.max_backoff and starting_deadline, as for timeout (or
// make Duration.MarshalJSON keep fractions, e.g. as "1.5").
func FuzzEventRoundTripRegression(f *testing.F) {
	f.Add([]byte(`{"name":"x","language":"sh","script":"x","retry":{"backoff":"1.5s"}}`))
	f.Add([]byte(`{"name":"x","language":"sh","script":"x","retry":{"backoff":"500ms","max_backoff":"800ms"},"starting_deadline":"250ms"}`))
	addEventSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		checkEvent(t, data, true)
	})
}
