package main

import (
	"bufio"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	cronium "github.com/cronium/executor"
	"github.com/cronium/executor/api"
)

// While a script runs, exec get, exec top and the log stream carry its
// live usage; once it ends, an oversized event gets a memory hint with the
// saving and a well-sized one gets none.
func TestLiveUsageTopAndHints(t *testing.T) {
	t.Parallel()
	s, key := startAs(t, "pro")
	s.putEvent(key, "busy", "python", "cold", "import time\nb = bytearray(40 << 20)\nfor i in range(0, len(b), 4096): b[i] = 1\nend = time.time() + 5\nwhile time.time() < end: pass\n", nil)
	s.putEvent(key, "oversized", "bash", "cold", "echo hi", map[string]any{"resources": map[string]any{"memory": "512Mi"}})
	s.putEvent(key, "wellsized", "python", "cold", "b = bytearray(35 << 20)\nfor i in range(0, len(b), 4096): b[i] = 1\n", map[string]any{"resources": map[string]any{"memory": "64Mi"}})

	var x cronium.Execution
	if st := s.api(key, "POST", "/v1/events/busy/trigger", map[string]any{}, &x); st != 202 {
		t.Fatalf("trigger: %d", st)
	}
	// The log stream carries usage events while it runs.
	req, _ := http.NewRequest("GET", s.url+"/v1/executions/"+x.ID+"/logs?follow=true", nil)
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var sample cronium.UsageSample
	sc := bufio.NewScanner(resp.Body)
	for event := ""; sc.Scan(); {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, "event: "); ok {
			event = v
		}
		if v, ok := strings.CutPrefix(line, "data: "); ok && event == "usage" {
			if err := json.Unmarshal([]byte(v), &sample); err != nil {
				t.Fatalf("usage event %q: %v", v, err)
			}
			if sample.MemoryBytes >= 40<<20 && sample.CPUSeconds > 0.5 {
				break
			}
		}
		if event == "end" {
			t.Fatalf("the stream ended without a usage sample over 40Mi and 0.5 CPU-seconds (last %+v)", sample)
		}
	}
	// exec get shows the latest sample; exec top lists it.
	var view api.ExecutionView
	s.api(key, "GET", "/v1/executions/"+x.ID, nil, &view)
	if view.Status != cronium.StatusRunning || view.Live == nil || view.Live.MemoryBytes < 40<<20 || view.Live.Pids < 1 {
		t.Fatalf("exec get while running: %s, live %+v", view.Status, view.Live)
	}
	out, err := s.cli("exec", "get", x.ID)
	if err != nil || !strings.Contains(out, "live:      ran ") {
		t.Errorf("exec get: %v\n%s", err, out)
	}
	out, err = s.cli("exec", "top", "--once")
	if err != nil || !strings.Contains(out, x.ID) || !strings.Contains(out, "busy") || !strings.Contains(out, "running: 1,") {
		t.Errorf("exec top --once: %v\n%s", err, out)
	}
	if _, stderr, err := s.run("exec", "top", "--interval", "1ms"); err == nil || !strings.Contains(stderr, "--interval") {
		t.Errorf("exec top --interval 1ms: %v %s", err, stderr)
	}

	// Hints, once they ended.
	for _, name := range []string{"oversized", "wellsized"} {
		if st := s.api(key, "POST", "/v1/events/"+name+"/trigger", map[string]any{}, nil); st != 202 {
			t.Fatalf("trigger %s: %d", name, st)
		}
	}
	byEvent := map[string]cronium.Execution{}
	for _, x := range s.waitAll(key, 2*time.Minute) {
		byEvent[x.Event] = x
	}
	over, well := byEvent["oversized"], byEvent["wellsized"]
	if over.Result == nil || len(over.Result.Hints) != 1 || over.Result.Hints[0].Kind != cronium.HintMemory ||
		!strings.Contains(over.Result.Hints[0].Message, "of 512Mi over this run: 32Mi would do") || over.Result.Hints[0].Saving.MemoryBytes != 480<<20 {
		t.Errorf("the oversized event's hints: %+v", over.Result)
	}
	if well.Result == nil || well.Outcome != cronium.Succeeded || len(well.Result.Hints) != 0 || well.Result.Usage.PeakMemory < 35<<20 {
		t.Errorf("the well-sized event: %s, %+v", well.Outcome, well.Result)
	}
	if out, err := s.cli("exec", "get", over.ID); err != nil || !strings.Contains(out, "hint:      peak") {
		t.Errorf("exec get of the oversized run: %v\n%s", err, out)
	}
}
