package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"

	cronium "github.com/cronium/executor"
	"github.com/cronium/executor/dispatch"
	"github.com/cronium/executor/images"
	"github.com/cronium/executor/metrics"
	"github.com/cronium/executor/pool"
)

func newBenchObserveCmd(g *globals) *cobra.Command {
	var runs, blocks, workers int
	c := &cobra.Command{
		Use:   "observe",
		Short: "What metrics and usage sampling cost: reuse-pool throughput with them and without, side by side",
		Long: `Runs executions through a reuse pool, alternately with observation on (usage samples every second
relayed to a live hub and kept for the timeline, each result recorded in the Prometheus metrics, the
metrics gathered every second as a scraper would) and off (no samples, no metrics), in interleaved
blocks, for two scripts: hello world (dispatch-bound) and a 1.5 s CPU-bound loop (sampled while it runs).
Prints each block's executions/s and the medians' ratio.`,
		RunE: func(c *cobra.Command, _ []string) error {
			return benchObserve(c.Context(), c.OutOrStdout(), g, runs, blocks, workers)
		},
	}
	c.Flags().IntVar(&runs, "runs", 60, "executions per block")
	c.Flags().IntVar(&blocks, "blocks", 6, "blocks per setting (interleaved)")
	c.Flags().IntVar(&workers, "workers", 4, "executions at once")
	return c
}

func benchObserve(ctx context.Context, w io.Writer, g *globals, runs, blocks, workers int) error {
	if ctx == nil {
		ctx = context.Background()
	}
	eng, err := g.engine(ctx)
	if err != nil {
		return err
	}
	defer eng.Close()
	limits := cronium.Limits{CPUs: 1, Memory: 256 << 20}.Defaults()
	strict, _ := cronium.LookupProfile("profile", "")
	pools := pool.NewManager(map[pool.Mode]pool.Config{pool.Reuse: {Mode: pool.Reuse, Min: workers, Max: workers}})
	pools.LimitTotal(workers)
	defer pools.Stop(context.Background())
	template := cronium.Spec{Language: cronium.Bash, Image: images.Recipes[cronium.Bash].Ref(), Limits: limits, Profile: strict, Network: cronium.Net(cronium.NetworkNone)}
	factory := func(ctx context.Context) (pool.Sandbox, error) { return eng.NewSandbox(ctx, template, time.Hour) }
	hub := dispatch.NewHub()
	m := metrics.New(metrics.Sources{Pools: func() []metrics.PoolStats {
		var out []metrics.PoolStats
		for _, p := range pools.Stats() {
			out = append(out, metrics.PoolStats{Mode: string(p.Mode), Idle: int64(p.Idle), InUse: int64(p.InUse)})
		}
		return out
	}})
	var failed atomic.Int64
	var lastErr atomic.Value
	run := func(script string, observe bool) func() error {
		return func() (err error) {
			defer func() {
				if err != nil {
					failed.Add(1)
					lastErr.Store(err.Error())
				}
			}()
			s := cronium.Spec{ID: cronium.NewID(), Language: cronium.Bash, Script: []byte(script), Limits: limits, Profile: strict}
			var samples []cronium.UsageSample
			if observe {
				s.Sample = func(u cronium.UsageSample) { hub.PublishUsage(s.ID, u); samples = append(samples, u) }
			}
			start := time.Now()
			res, hit := pools.Run(ctx, pool.Reuse, "bench/observe", factory, s)
			if observe {
				hub.End(s.ID)
				m.Finished(metrics.Execution{Language: cronium.Bash, Strategy: "reuse", Result: res, Pooled: true, PoolHit: hit, Queue: time.Since(start) - res.Phases.Run, Late: -1})
			}
			return outcomeErr(res, nil)
		}
	}
	host, _ := os.Hostname()
	fmt.Fprintf(w, "observation cost: reuse pool, bash, %d at once, %d runs per block, %d blocks per setting, interleaved; %s, %d CPUs, host %s\n\n",
		workers, runs, blocks, time.Now().UTC().Format("2006-01-02 15:04 MST"), runtime.NumCPU(), host)
	fmt.Fprintln(w, "| script | observation | executions/s per block | median | ratio on/off |")
	fmt.Fprintln(w, "|---|---|---|---|---|")
	for _, sc := range []struct{ name, script string }{
		{"hello world", "echo hi"},
		{"1.5 s CPU loop", "i=0; while [ $i -lt 230000 ]; do i=$((i+1)); done; echo done"},
	} {
		for range workers { // warm up: every sandbox made and used once
			if err := run(sc.script, false)(); err != nil {
				return fmt.Errorf("%s: %w", sc.name, err)
			}
		}
		n := runs
		if sc.script != "echo hi" {
			n = max(workers*2, runs/6)
		}
		var on, off []float64
		stop := make(chan struct{})
		scraped := make(chan struct{})
		go func() { // a scraper, gathering every second (its cost is part of "on")
			defer close(scraped)
			t := time.NewTicker(time.Second)
			defer t.Stop()
			for {
				select {
				case <-stop:
					return
				case <-t.C:
					m.Registry().Gather()
				}
			}
		}()
		for b := range 2 * blocks {
			observe := b%2 == 0
			if b/2%2 == 1 {
				observe = !observe // ABBA: drift hits both alike
			}
			tp := throughput(n, workers, run(sc.script, observe))
			if observe {
				on = append(on, tp)
			} else {
				off = append(off, tp)
			}
			fmt.Fprint(os.Stderr, ".")
		}
		close(stop)
		<-scraped
		fmt.Fprintln(os.Stderr)
		if n := failed.Load(); n > 0 {
			return fmt.Errorf("%s: %d executions did not succeed (the last: %v): the measure would be wrong", sc.name, n, lastErr.Load())
		}
		med := func(v []float64) float64 {
			s := slices.Clone(v)
			slices.Sort(s)
			return s[len(s)/2]
		}
		list := func(v []float64) string {
			out := ""
			for i, x := range v {
				if i > 0 {
					out += ", "
				}
				out += fmt.Sprintf("%.2f", x)
			}
			return out
		}
		fmt.Fprintf(w, "| %s | on | %s | %.2f | %.3f |\n", sc.name, list(on), med(on), med(on)/med(off))
		fmt.Fprintf(w, "| %s | off | %s | %.2f | |\n", sc.name, list(off), med(off))
	}
	return nil
}
