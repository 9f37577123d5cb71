package cronium

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestParseSize(t *testing.T) {
	for _, c := range []struct {
		in   string
		want Size
	}{
		{"512Mi", 512 << 20}, {"1G", 1_000_000_000}, {"1Gi", 1 << 30}, {"100M", 100_000_000},
		{"64Ki", 64 << 10}, {"1024", 1024}, {"1.5Gi", 3 << 29}, {"10MiB", 10 << 20}, {" 2k ", 2000},
	} {
		got, err := ParseSize("--memory", c.in)
		if err != nil || got != c.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", c.in, got, err, c.want)
		}
	}
	for _, in := range []string{"", "lots", "-1Mi", "12Qi", "Mi", "NaN", "1e400"} {
		_, err := ParseSize("--memory", in)
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "--memory") {
			t.Errorf("ParseSize(%q) error %v, want ErrInvalid naming --memory", in, err)
		}
	}
}

func TestSizeString(t *testing.T) {
	for s, want := range map[Size]string{512 << 20: "512Mi", 1 << 30: "1Gi", 1000: "1000", 0: "0", 3 << 10: "3Ki"} {
		if got := s.String(); got != want {
			t.Errorf("Size(%d).String() = %q, want %q", int64(s), got, want)
		}
	}
}

func TestParseDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{"30s": 30 * time.Second, "2m": 2 * time.Minute, "45": 45 * time.Second, "1.5": 1500 * time.Millisecond, "1h30m": 90 * time.Minute} {
		got, err := ParseDuration("--timeout", in)
		if err != nil || got != want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "soon", "0", "-5s", "0s", "1e300"} {
		if _, err := ParseDuration("--timeout", in); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "--timeout") {
			t.Errorf("ParseDuration(%q) error %v, want ErrInvalid naming --timeout", in, err)
		}
	}
}

func TestLimitsDefaultsAndValidate(t *testing.T) {
	l := Limits{Memory: 512 << 20}.Defaults()
	if l.MemoryReservation != 429496729 || l.CPUs != 0.5 || l.Pids != 100 || l.Timeout != 30*time.Second || l.Output != 10<<20 {
		t.Errorf("defaults %+v", l)
	}
	if err := l.Validate(); err != nil {
		t.Errorf("defaults do not validate: %v", err)
	}
	for name, bad := range map[string]Limits{
		"timeout": {Timeout: 1500 * time.Millisecond},
		"cpus":    {CPUs: 2000},
		"pids":    {Pids: 1},
		"output":  {Output: 10},
		"memory":  {Memory: 1 << 20},
	} {
		err := bad.Defaults().Validate()
		if !errors.Is(err, ErrInvalid) || !strings.HasPrefix(err.Error(), name) {
			t.Errorf("%s: error %v, want ErrInvalid naming %s", name, err, name)
		}
	}
}

func TestDetectLanguage(t *testing.T) {
	for _, c := range []struct {
		name, script string
		want         Language
	}{
		{"a.py", "", Python}, {"a.sh", "", Bash}, {"a.js", "", Node}, {"a.mjs", "", Node},
		{"job", "#!/usr/bin/env python3\nprint(1)", Python}, {"job", "#!/bin/bash\n", Bash},
		{"job", "#!/usr/bin/env node\n", Node}, {"job", "#!/bin/sh\n", Bash}, {"job", "echo", ""},
	} {
		if got := DetectLanguage(c.name, []byte(c.script)); got != c.want {
			t.Errorf("DetectLanguage(%q, %q) = %q, want %q", c.name, c.script, got, c.want)
		}
	}
}

func TestProfiles(t *testing.T) {
	p, err := LookupProfile("--profile", "")
	if err != nil || p.Name != "strict" || p.UID != 65534 || !p.ReadOnlyRoot || p.Network != NetworkNone || !p.NoNewPrivileges {
		t.Errorf("default profile %+v, %v; want strict", p, err)
	}
	if _, err := LookupProfile("--profile", "yolo"); err == nil || !strings.Contains(err.Error(), "standard, strict, trusted") {
		t.Errorf("unknown profile error %v, want the list of profiles", err)
	}
}

// One rule for environment variable names, wherever they come from.
func TestCheckEnvName(t *testing.T) {
	for _, ok := range []string{"MODE", "_x", "API_URL2", "a"} {
		if err := CheckEnvName("env", ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "1A", "A B", "A=B", "A-B", "MÖDE", "A\x00", "CRONIUM_X", strings.Repeat("A", 129)} {
		err := CheckEnvName("env", bad)
		if !errors.Is(err, ErrInvalid) || !strings.HasPrefix(err.Error(), "env:") {
			t.Errorf("%q: %v, want invalid naming env", bad, err)
		}
	}
}

// One rule for variables: numbers too large to keep are refused like
// non-JSON; increments keep whole numbers exact.
func TestCheckVariableAndIncrement(t *testing.T) {
	for _, bad := range []string{`1e999`, `{"a": [1, -1e400]}`, `{not json`, ``} {
		if err := CheckVariable("k", []byte(bad)); !errors.Is(err, ErrInvalid) {
			t.Errorf("value %q: %v, want invalid", bad, err)
		}
	}
	if err := CheckVariable("k", []byte(`{"a": 1.5e300, "b": "1e999"}`)); err != nil {
		t.Errorf("a large but finite number (and a string): %v", err)
	}
	if _, err := Increment("k", 1<<53, 1); !errors.Is(err, ErrInvalid) {
		t.Errorf("2^53 + 1: %v, want invalid (it would round)", err)
	}
	if v, err := Increment("k", 0.1, 0.2); err != nil || v < 0.3 || v > 0.31 {
		t.Errorf("0.1 + 0.2 = %v %v", v, err)
	}
}
