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
	"github.com/cronium/executor/internal/pgtest"
	"github.com/cronium/executor/postgres"
	"github.com/cronium/executor/scheduler"
	"github.com/cronium/executor/sqlite"
	"github.com/cronium/executor/store"
)

// benchNode describes bench node i to the others: its own engine key, so
// that none adopts another's (instant) executions.
func benchNode(i int) store.Node {
	return store.Node{Host: "bench", DataDir: os.TempDir(), Engine: "instant", EngineKey: fmt.Sprintf("instant %d", i)}
}

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
	var events, users, capacity, nodes int
	var engine, cpuprofile, storeURL string
	c := &cobra.Command{
		Use:   "schedule",
		Short: "Scheduler at scale: N events due in the same second of one minute",
		Long: `Defines --events events spread over --users users (enterprise tier), all
scheduled for the same second about 20 s ahead, runs the real scheduler,
dispatcher and store in this process, and reports: memory with the
events defined and idle, fire lateness (scheduled time to when the execution
is queued and due: fires are written up to 5 s ahead, due at their time) and start
lateness (scheduled time to start) p50/p99, time until all have started, and
peak memory. --engine instant finishes each execution at once, so the numbers
are the control plane's; --engine docker starts real containers.

--store picks the store: a temporary SQLite file (the default), a
PostgreSQL database (postgres://..., which must be empty), or postgres:temp,
a throwaway PostgreSQL server started for the run (Debian's postgresql, as
root). --nodes runs that many nodes in this process on the one store, each
with its own connections, dispatcher and scheduler (PostgreSQL only).`,
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
			return benchSchedule(c.Context(), c.OutOrStdout(), g, benchScheduleOpts{events, users, capacity, nodes, engine, storeURL})
		},
	}
	c.Flags().IntVar(&events, "events", 10000, "events")
	c.Flags().IntVar(&users, "users", 100, "users the events are spread over")
	c.Flags().IntVar(&capacity, "capacity", 64, "executions run at once")
	c.Flags().StringVar(&engine, "engine", "instant", "instant or docker")
	c.Flags().StringVar(&cpuprofile, "cpuprofile", "", "write a CPU profile to this file")
	c.Flags().StringVar(&storeURL, "store", "", "sqlite (a temporary file, the default), postgres://... (empty) or postgres:temp")
	c.Flags().IntVar(&nodes, "nodes", 1, "nodes on the store (more than one: PostgreSQL)")
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

// benchScheduleOpts are bench schedule's settings.
type benchScheduleOpts struct {
	events, users, capacity, nodes int
	engine, store                  string
}

// benchStores opens the bench's store once per node: the first is the one
// it reads from. done closes them and what they need.
func benchStores(ctx context.Context, url string, nodes int) (stores []store.Store, label string, done func(), err error) {
	var closers []func()
	done = func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	defer func() {
		if err != nil {
			done()
		}
	}()
	switch {
	case url == "" || url == "sqlite":
		if nodes != 1 {
			return nil, "", done, usage(cronium.Invalid("--nodes", fmt.Sprint(nodes), "is more than one on SQLite: several nodes need --store postgres://... or postgres:temp"))
		}
		dir, err := os.MkdirTemp("", "crbench")
		if err != nil {
			return nil, "", done, err
		}
		closers = append(closers, func() { os.RemoveAll(dir) })
		st, err := sqlite.Open(ctx, dir+"/cronium.db")
		if err != nil {
			return nil, "", done, err
		}
		closers = append(closers, func() { st.Close() })
		return []store.Store{st}, "SQLite (a temporary file)", done, nil
	case url == "postgres:temp":
		pg, err := pgtest.Start(ctx)
		if err != nil {
			return nil, "", done, err
		}
		closers = append(closers, pg.Stop)
		url, label = pg.URL, "PostgreSQL 15 (a throwaway server on a unix socket, fsync off)"
	case strings.HasPrefix(url, "postgres://"), strings.HasPrefix(url, "postgresql://"):
		label = "PostgreSQL at " + postgres.MaskURL(url)
	default:
		return nil, "", done, usage(cronium.Invalid("--store", url, "is not a bench store: want sqlite, postgres://... or postgres:temp"))
	}
	if nodes < 1 {
		return nil, "", done, usage(cronium.Invalid("--nodes", fmt.Sprint(nodes), "must be at least 1"))
	}
	for range nodes {
		st, err := postgres.Open(ctx, url)
		if err != nil {
			return nil, "", done, err
		}
		closers = append(closers, func() { st.Close() })
		stores = append(stores, st)
	}
	return stores, label, done, nil
}

func benchSchedule(ctx context.Context, w io.Writer, g *globals, o benchScheduleOpts) error {
	if ctx == nil {
		ctx = context.Background()
	}
	events, users, capacity, engineName := o.events, o.users, o.capacity, o.engine
	stores, storeLabel, closeStores, err := benchStores(ctx, o.store, o.nodes)
	if err != nil {
		return err
	}
	defer closeStores()
	st := stores[0]
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
		u, err := st.CreateUser(ctx, fmt.Sprintf("user%03d", i), "enterprise", false)
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
		if _, err := st.PutEvent(ctx, uids[i%users], &ev); err != nil {
			return err
		}
	}
	var sched *scheduler.Scheduler
	for i, st := range stores {
		disp, err := dispatch.New(dispatch.Config{Store: st, Engine: eng, Node: fmt.Sprintf("bench%d", i), Capacity: capacity, Poll: 50 * time.Millisecond,
			Self: benchNode(i)})
		if err != nil {
			return err
		}
		cfg := scheduler.Config{Store: st, Dispatcher: disp, Ahead: scheduleAhead}
		if l, ok := st.(interface{ Leader(context.Context) bool }); ok {
			cfg.Leader = l.Leader
		}
		s, err := scheduler.New(cfg)
		if err != nil {
			return err
		}
		if err := disp.Start(ctx); err != nil {
			return err
		}
		defer disp.Stop(context.Background())
		if err := s.Start(ctx); err != nil {
			return err
		}
		defer s.Stop(context.Background())
		if sched == nil {
			sched = s
		}
	}
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
		counts, err := st.Counts(ctx)
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
		xs, err := st.Executions(ctx, store.ExecutionFilter{Limit: 1000, Before: before})
		if err != nil {
			return err
		}
		for _, x := range xs {
			// Fire lateness: from the scheduled time to when the execution
			// could be started (queued and due). A fire written ahead is
			// queued before its time and due at it.
			ready := x.QueuedAt
			if x.NotBefore.After(ready) {
				ready = x.NotBefore
			}
			fire = append(fire, max(ready.Sub(*x.ScheduledAt), 0))
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
	fmt.Fprintf(w, "schedule: %d events over %d users due at one second, engine %s, %d node(s) of capacity %d, store %s, %s, %d CPUs, host %s\n\n",
		events, users, engineName, len(stores), capacity, storeLabel, time.Now().UTC().Format("2006-01-02 15:04 MST"), runtime.NumCPU(), host)
	fmt.Fprintf(w, "| measure | value |\n|---|---|\n")
	fmt.Fprintf(w, "| process RSS before defining events | %s |\n", human(rssStart))
	fmt.Fprintf(w, "| process RSS with %d idle events scheduled | %s (Go heap in use %s) |\n", events, human(idleRSS), human(int64(idleHeap)))
	fmt.Fprintf(w, "| fire lateness (scheduled -> queued and due) p50 / p99 | %s / %s |\n", q(fire, 0.5), q(fire, 0.99))
	fmt.Fprintf(w, "| start lateness (scheduled -> started) p50 / p99 | %s / %s |\n", q(start, 0.5), q(start, 0.99))
	fmt.Fprintf(w, "| time until all %d had started | %s |\n", events, allStarted.Sub(at).Round(time.Millisecond))
	fmt.Fprintf(w, "| peak process RSS | %s |\n", human(peak))
	return nil
}
