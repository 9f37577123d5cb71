package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	cronium "github.com/cronium/executor"
	"github.com/cronium/executor/dispatch"
	"github.com/cronium/executor/scheduler"
	"github.com/cronium/executor/sqlite"
)

// instantEngine finishes every execution at once. The schedule benchmark
// uses it to measure the scheduler, the queue and the store, which are what
// it tests; container start-up is measured by `bench cold`.
type instantEngine struct{ cronium.ColdOnly }

func (instantEngine) Run(_ context.Context, s cronium.Spec) (cronium.Result, error) {
	now := time.Now()
	return cronium.Result{ID: s.ID, Outcome: cronium.Succeeded, StartedAt: now, EndedAt: now}, nil
}
func (instantEngine) GC(context.Context, time.Duration) (int, error) { return 0, nil }
func (instantEngine) Close() error                                   { return nil }

// Capabilities implements cronium.Engine: cold runs only.
func (instantEngine) Capabilities() cronium.Capabilities {
	return cronium.Capabilities{Name: "instant", Networks: []cronium.NetworkMode{cronium.NetworkNone}}
}

func newBenchScheduleCmd(g *globals) *cobra.Command {
	var events, users, capacity int
	var engine, cpuprofile string
	c := &cobra.Command{
		Use:   "schedule",
		Short: "Scheduler at scale: N events due in the same second of one minute",
		Long: `Defines --events events spread over --users users (enterprise tier), all
scheduled for the same second about 20 s ahead, runs the real scheduler,
dispatcher and SQLite store in this process, and reports: memory with the
events defined and idle, fire lateness (scheduled time to enqueue) and start
lateness (scheduled time to start) p50/p99, time until all have started, and
peak memory. --engine instant finishes each execution at once, so the numbers
are the control plane's; --engine docker starts real containers.`,
		RunE: func(c *cobra.Command, _ []string) error {
			if events < 1 || users < 1 || capacity < 1 {
				return usage(cronium.Invalid("--events", fmt.Sprint(events), "--events, --users and --capacity must be at least 1"))
			}
			if cpuprofile != "" {
				f, err := os.Create(cpuprofile)
				if err != nil {
					return err
				}
				defer f.Close()
				pprof.StartCPUProfile(f)
				defer pprof.StopCPUProfile()
			}
			return benchSchedule(c.Context(), c.OutOrStdout(), g, events, users, capacity, engine)
		},
	}
	c.Flags().IntVar(&events, "events", 10000, "events")
	c.Flags().IntVar(&users, "users", 100, "users the events are spread over")
	c.Flags().IntVar(&capacity, "capacity", 64, "executions run at once")
	c.Flags().StringVar(&engine, "engine", "instant", "instant or docker")
	c.Flags().StringVar(&cpuprofile, "cpuprofile", "", "write a CPU profile to this file")
	return c
}

func rssBytes() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb * 1024
		}
	}
	return 0
}

func heapBytes() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

func benchSchedule(ctx context.Context, w io.Writer, g *globals, events, users, capacity int, engineName string) error {
	if ctx == nil {
		ctx = context.Background()
	}
	dir, err := os.MkdirTemp("", "crbench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	store, err := sqlite.Open(ctx, dir+"/cronium.db")
	if err != nil {
		return err
	}
	defer store.Close()
	var eng cronium.Engine = instantEngine{}
	if engineName == "docker" {
		e, err := g.engine(ctx)
		if err != nil {
			return err
		}
		defer e.Close()
		eng = e
	} else if engineName != "instant" {
		return usage(cronium.Invalid("--engine", engineName, "is not an engine: want instant or docker"))
	}
	rssStart := rssBytes()
	at := time.Now().Add(20 * time.Second).Truncate(time.Second).UTC()
	expr := fmt.Sprintf("%d %d %d * * *", at.Second(), at.Minute(), at.Hour())
	fmt.Fprintf(os.Stderr, "defining %d events for %s (%q)...\n", events, at.Format(time.RFC3339), expr)
	tier := cronium.DefaultTiers()["enterprise"]
	var uids []int64
	for i := 0; i < users; i++ {
		u, err := store.CreateUser(ctx, fmt.Sprintf("user%03d", i), "enterprise", false)
		if err != nil {
			return err
		}
		uids = append(uids, u.ID)
	}
	for i := 0; i < events; i++ {
		ev := cronium.Event{Name: fmt.Sprintf("ev%05d", i), Language: cronium.Bash, Script: "echo hi", Schedule: expr, Resources: cronium.Resources{Memory: "32Mi", CPUs: 0.1}}
		if err := ev.Normalize(tier); err != nil {
			return err
		}
		if _, err := store.PutEvent(ctx, uids[i%users], &ev); err != nil {
			return err
		}
	}
	disp, err := dispatch.New(dispatch.Config{Store: store, Engine: eng, Node: "bench", Capacity: capacity, Poll: 50 * time.Millisecond})
	if err != nil {
		return err
	}
	sched, err := scheduler.New(scheduler.Config{Store: store, Dispatcher: disp})
	if err != nil {
		return err
	}
	if err := disp.Start(ctx); err != nil {
		return err
	}
	defer disp.Stop(context.Background())
	if err := sched.Start(ctx); err != nil {
		return err
	}
	defer sched.Stop(context.Background())
	time.Sleep(2 * time.Second)
	idleRSS, idleHeap := rssBytes(), heapBytes()
	fmt.Fprintf(os.Stderr, "%d events scheduled; idle RSS %s; waiting for %s...\n", sched.Events(), human(idleRSS), at.Format(time.TimeOnly))

	peak := idleRSS
	var allStarted time.Time
	for {
		time.Sleep(200 * time.Millisecond)
		if r := rssBytes(); r > peak {
			peak = r
		}
		counts, err := store.Counts(ctx)
		if err != nil {
			return err
		}
		if counts[cronium.StatusQueued] == 0 && counts[cronium.StatusRunning] == 0 && counts[cronium.StatusFinished] >= events {
			break
		}
		if time.Since(at) > 30*time.Minute {
			return fmt.Errorf("not all executions finished within 30 minutes: %v", counts)
		}
	}
	var fire, start []time.Duration
	before := ""
	for {
		xs, err := store.Executions(ctx, sqlite.ExecutionFilter{Limit: 1000, Before: before})
		if err != nil {
			return err
		}
		for _, x := range xs {
			fire = append(fire, x.QueuedAt.Sub(*x.ScheduledAt))
			start = append(start, x.StartedAt.Sub(*x.ScheduledAt))
			if x.StartedAt.After(allStarted) {
				allStarted = *x.StartedAt
			}
		}
		if len(xs) < 1000 {
			break
		}
		before = xs[len(xs)-1].ID
	}
	if len(fire) != events {
		return fmt.Errorf("got %d executions for %d events", len(fire), events)
	}
	q := func(ds []time.Duration, p float64) string {
		sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
		return fmt.Sprintf("%.1f ms", float64(ds[int(p*float64(len(ds)-1))].Microseconds())/1000)
	}
	host, _ := os.Hostname()
	fmt.Fprintf(w, "schedule: %d events over %d users due at one second, engine %s, capacity %d, %s, %d CPUs, host %s\n\n",
		events, users, engineName, capacity, time.Now().UTC().Format("2006-01-02 15:04 MST"), runtime.NumCPU(), host)
	fmt.Fprintf(w, "| measure | value |\n|---|---|\n")
	fmt.Fprintf(w, "| process RSS before defining events | %s |\n", human(rssStart))
	fmt.Fprintf(w, "| process RSS with %d idle events scheduled | %s (Go heap in use %s) |\n", events, human(idleRSS), human(int64(idleHeap)))
	fmt.Fprintf(w, "| fire lateness (scheduled -> queued) p50 / p99 | %s / %s |\n", q(fire, 0.5), q(fire, 0.99))
	fmt.Fprintf(w, "| start lateness (scheduled -> started) p50 / p99 | %s / %s |\n", q(start, 0.5), q(start, 0.99))
	fmt.Fprintf(w, "| time until all %d had started | %s |\n", events, allStarted.Sub(at).Round(time.Millisecond))
	fmt.Fprintf(w, "| peak process RSS | %s |\n", human(peak))
	return nil
}
