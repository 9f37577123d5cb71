package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	cronium "github.com/cronium/executor"
)

// The soak: many executions (CRONIUM_SOAK, default 1000; `make soak` runs
// 10,000) through `cronium serve`, a mix of cold, prewarmed and reuse runs,
// some failing, some timing out, some killed out of memory. Every one ends
// exactly once with its exact outcome; afterwards the server's goroutines,
// open files and memory are back near where they were, and once it stops
// nothing is left: no container, sandbox directory, socket, mount or loop
// device.
func TestSoak(t *testing.T) {
	n := 1000
	if v := os.Getenv("CRONIUM_SOAK"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 {
			t.Fatalf("CRONIUM_SOAK=%q: want a number of executions", v)
		}
	}
	s := newServer(t, 4)
	key := s.user("alice", "pro")
	admin, err := s.cli("user", "create", "ops", "--tier", "free", "--admin")
	if err != nil {
		t.Fatal(err)
	}
	admin = strings.TrimSpace(admin)
	s.env = append(s.env, "CRONIUM_TOKEN="+key)
	s.start()

	type kind struct {
		name, lang, strategy, script string
		extra                        map[string]any
		want                         cronium.Outcome
	}
	kinds := []kind{
		{"ok-cold", "bash", "cold", "echo ok", nil, cronium.Succeeded},
		{"ok-prewarmed", "bash", "prewarmed", "echo ok", nil, cronium.Succeeded},
		{"ok-reuse", "bash", "reuse", "echo ok; echo x > /tmp/x", nil, cronium.Succeeded},
		{"fail-reuse", "bash", "reuse", "echo failing >&2; exit 3", nil, cronium.Failed},
		{"timeout-prewarmed", "bash", "prewarmed", "sleep 30", map[string]any{"timeout": "1s"}, cronium.TimedOut},
		{"oom-cold", "python", "cold", "a = []\nwhile True:\n    a.append(bytearray(4 << 20))\n", map[string]any{"resources": map[string]any{"memory": "64Mi"}}, cronium.OOMKilled},
	}
	want := map[string]cronium.Outcome{}
	for _, k := range kinds {
		s.putEvent(key, k.name, k.lang, k.strategy, k.script, k.extra)
		want[k.name] = k.want
	}
	type stats struct {
		Goroutines int   `json:"goroutines"`
		OpenFiles  int   `json:"open_files"`
		RSS        int64 `json:"rss_bytes"`
		Running    int   `json:"running_executions"`
	}
	runtimeStats := func() stats {
		var st stats
		if code := s.api(admin, "GET", "/v1/debug/runtime", nil, &st); code != 200 {
			t.Fatalf("debug/runtime: %d", code)
		}
		return st
	}

	// A batch at a time, round robin over the kinds; every execution is
	// followed to its end.
	done, wrong := 0, 0
	var base stats
	begin := time.Now()
	for done < n {
		batch := min(40, n-done)
		ids := map[string]string{}
		for i := 0; i < batch; i++ {
			k := kinds[(done+i)%len(kinds)]
			var x cronium.Execution
			if st := s.api(key, "POST", "/v1/events/"+k.name+"/trigger", map[string]any{}, &x); st != 201 && st != 200 && st != 202 {
				t.Fatalf("trigger %s: %d", k.name, st)
			}
			ids[x.ID] = k.name
		}
		deadline := time.Now().Add(5 * time.Minute)
		for id, ev := range ids {
			var x cronium.Execution
			for {
				s.api(key, "GET", "/v1/executions/"+id, nil, &x)
				if x.Status == cronium.StatusFinished {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("execution %s (%s) did not finish: %+v\n%s", id, ev, x, s.log)
				}
				time.Sleep(50 * time.Millisecond)
			}
			if x.Outcome != want[ev] {
				if wrong++; wrong <= 10 {
					t.Errorf("%s (%s): %s %q, want %s", id, ev, x.Outcome, x.Error, want[ev])
				}
			}
		}
		done += batch
		if base.Goroutines == 0 && done >= 2*len(kinds) {
			time.Sleep(2 * time.Second) // pools refilled: the steady state
			base = runtimeStats()
		}
		if done%1000 == 0 || done == n {
			st := runtimeStats()
			t.Logf("%d executions in %s: %d goroutines, %d open files, RSS %d MiB", done, time.Since(begin).Round(time.Second), st.Goroutines, st.OpenFiles, st.RSS>>20)
		}
	}
	if wrong > 0 {
		t.Errorf("%d of %d executions had the wrong outcome", wrong, n)
	}
	// Steady state again: nothing grows with the number of executions.
	time.Sleep(3 * time.Second)
	end := runtimeStats()
	t.Logf("after warm-up: %+v; after %d executions: %+v", base, n, end)
	if end.Goroutines > base.Goroutines+25 {
		t.Errorf("goroutines grew from %d to %d", base.Goroutines, end.Goroutines)
	}
	if end.OpenFiles > base.OpenFiles+15 {
		t.Errorf("open files grew from %d to %d", base.OpenFiles, end.OpenFiles)
	}
	if end.RSS > base.RSS*3/2+(40<<20) {
		t.Errorf("RSS grew from %d MiB to %d MiB", base.RSS>>20, end.RSS>>20)
	}

	// Stopped, the server leaves nothing behind.
	s.stop()
	if out, _ := exec.Command("docker", "ps", "-aq", "--filter", "label=io.cronium.node="+s.node).Output(); len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("containers left: %s", out)
	}
	if dirs, _ := os.ReadDir(filepath.Join(s.dir, "s")); len(dirs) > 0 {
		t.Errorf("%d sandbox directories left, e.g. %s", len(dirs), dirs[0].Name())
	}
	sockets := 0
	filepath.WalkDir(s.dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type()&os.ModeSocket != 0 {
			sockets++
		}
		return nil
	})
	if sockets > 0 {
		t.Errorf("%d sockets left under the data directory", sockets)
	}
	if mounts, _ := os.ReadFile("/proc/mounts"); strings.Contains(string(mounts), s.dir) {
		t.Errorf("mounts left under %s", s.dir)
	}
	if loops, _ := exec.Command("losetup", "-a").Output(); strings.Contains(string(loops), s.dir) {
		t.Errorf("loop devices left: %s", loops)
	}
}
