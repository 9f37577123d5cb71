package main

import (
	"strings"
	"testing"
	"time"

	cronium "github.com/cronium/executor"
)

// Executions dispatched by serve with a warm strategy get the interpreter
// their sandbox prepared (docker/prestart.go), although the dispatcher sets
// TZ for every run, and the script sees the run's world. A script can tell
// only by the environment the process was started with, in
// /proc/self/environ (README: what still shows).
func TestServePrestartsWarmPythonAndNode(t *testing.T) {
	t.Parallel()
	s := newServer(t, 4)
	key := s.user("prestart", "pro")
	s.start()
	scripts := map[string]string{
		"python": `import os, time
print("prestarted", b"CRONIUM_PRESTART_FD" in open("/proc/self/environ", "rb").read(), "CRONIUM_PRESTART_FD" in os.environ, time.tzname[0], os.environ["TZ"])`,
		"node": `const fs = require('fs');
console.log('prestarted', fs.readFileSync('/proc/self/environ', 'latin1').includes('CRONIUM_PRESTART_FD') ? 'True' : 'False',
  'CRONIUM_PRESTART_FD' in process.env ? 'True' : 'False', new Date(0).getTimezoneOffset() === -60 ? 'CET' : 'not-CET', process.env.TZ);`,
	}
	for _, lang := range []string{"python", "node"} {
		for _, strategy := range []string{"prewarmed", "reuse"} {
			name := lang + "-" + strategy
			if st := s.api(key, "PUT", "/v1/events/"+name, map[string]any{"language": lang, "script": scripts[lang], "strategy": strategy, "timezone": "Europe/Berlin"}, nil); st != 201 {
				t.Fatalf("%s: create: %d\n%s", name, st, s.log)
			}
			for run := 1; run <= 2; run++ { // a reused sandbox's second run gets the interpreter prepared after its reset
				var x cronium.Execution
				if st := s.api(key, "POST", "/v1/events/"+name+"/trigger", nil, &x); st != 202 && st != 201 {
					t.Fatalf("%s: trigger: %d", name, st)
				}
				var got cronium.Execution
				for _, e := range s.waitAll(key, 2*time.Minute) {
					if e.ID == x.ID {
						got = e
					}
				}
				var logs struct {
					Items []struct{ Data string } `json:"items"`
				}
				s.api(key, "GET", "/v1/executions/"+x.ID+"/logs", nil, &logs)
				var out strings.Builder
				for _, it := range logs.Items {
					out.WriteString(it.Data)
				}
				if got.Outcome != cronium.Succeeded || got.Strategy != strategy || !strings.Contains(out.String(), "prestarted True False CET Europe/Berlin") {
					t.Errorf("%s run %d: %s (strategy %s) %s, want a prestarted run:\n%s", name, run, got.Outcome, got.Strategy, got.Error, out.String())
				}
			}
		}
	}
}
