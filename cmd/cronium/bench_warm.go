package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	cronium "github.com/cronium/executor"
	"github.com/cronium/executor/images"
	"github.com/cronium/executor/pool"
)

func newBenchWarmCmd(g *globals) *cobra.Command {
	var runs, throughputRuns, workers int
	var langs []string
	var skipCPU bool
	c := &cobra.Command{
		Use:   "warm",
		Short: "Every way to run a script, side by side: bare process, docker run, docker exec, cronium cold, prewarmed, reuse",
		Long: `For bash, python and node hello-world scripts, in one run and interleaved:
a bare process on the host, docker run --rm, docker exec into a running
container (same image), and cronium's cold, prewarmed and reuse strategies
(in-process engine calls). Reports p50/p95/p99 of request-to-exit and of
dispatch overhead (request to the script's first instruction, which prints a
wall-clock timestamp), the overhead on a 1-second CPU-bound script against
docker run, and throughput (executions per second over --throughput runs with
--workers at once) per strategy.`,
		RunE: func(c *cobra.Command, _ []string) error {
			ls, err := parseLangs(langs)
			if err != nil {
				return usage(err)
			}
			return benchWarm(c.Context(), c.OutOrStdout(), g, ls, runs, throughputRuns, workers, skipCPU)
		},
	}
	c.Flags().IntVar(&runs, "runs", 30, "runs per language and way")
	c.Flags().IntVar(&throughputRuns, "throughput", 200, "runs per strategy for the throughput measure")
	c.Flags().IntVar(&workers, "workers", 4, "concurrent executions for the throughput measure")
	c.Flags().StringSliceVar(&langs, "lang", []string{"bash", "python", "node"}, "languages")
	c.Flags().BoolVar(&skipCPU, "skip-cpu", false, "skip the 1-second CPU-bound comparison")
	return c
}

// stamp scripts print the wall clock in microseconds as their first
// instruction. Node's is Date.now(), rounded up to the end of its
// millisecond (never early): its microsecond clock, performance, is a
// module node 18 loads on first use, which took 6-7 ms in every way of
// running the script, longer than everything else a warm start does.
var stamp = map[cronium.Language]string{
	cronium.Bash:   `echo "T ${EPOCHREALTIME/./}"`,
	cronium.Python: "import time; print('T', time.time_ns() // 1000)",
	cronium.Node:   "console.log('T', Date.now() * 1000 + 999)",
}

// busy loops for about one second of CPU on this machine (calibrated per language below).
var busy = map[cronium.Language]string{
	cronium.Bash:   `i=0; while [ $i -lt N ]; do i=$((i+1)); done`,
	cronium.Python: "i = 0\nwhile i < N:\n    i += 1",
	cronium.Node:   "let i = 0; while (i < N) { i++ }",
}

type sample struct{ total, dispatch time.Duration }

func parseStamp(out string, begin time.Time) time.Duration {
	for _, l := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "T "); ok {
			us, err := strconv.ParseInt(v, 10, 64)
			if err == nil {
				return time.UnixMicro(us).Sub(begin)
			}
		}
	}
	return -1
}

func benchWarm(ctx context.Context, w io.Writer, g *globals, langs []cronium.Language, runs, tput, workers int, skipCPU bool) error {
	if ctx == nil {
		ctx = context.Background()
	}
	eng, err := g.engine(ctx)
	if err != nil {
		return err
	}
	defer eng.Close()
	dockerCLI, err := exec.LookPath("docker")
	if err != nil {
		return fmt.Errorf("the baselines need the docker CLI: %w", err)
	}
	limits := cronium.Limits{CPUs: 2, Memory: 256 << 20}.Defaults() // no CPU throttling: compare dispatch, not quotas
	strict, _ := cronium.LookupProfile("profile", "")
	pools := pool.NewManager(map[pool.Mode]pool.Config{
		pool.Prewarmed: {Mode: pool.Prewarmed, Min: 2, Max: workers},
		pool.Reuse:     {Mode: pool.Reuse, Min: 1, Max: workers},
	})
	defer pools.Stop(context.Background())
	host, _ := os.Hostname()
	fmt.Fprintf(w, "warm starts: %d runs per cell, %s, %s/%s, %d CPUs, host %s; cronium sandboxes: strict profile, network none, cpus 2, 256Mi\n\n",
		runs, time.Now().UTC().Format("2006-01-02 15:04 MST"), runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), host)
	fmt.Fprintln(w, "| language | way | total p50 | p95 | p99 | dispatch p50 | p95 | p99 |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|")
	tputRows := map[string]float64{}
	for _, l := range langs {
		img := images.Recipes[l].Ref()
		interp := l.Command("")[:len(l.Command(""))-1]
		flag := "-c"
		if l == cronium.Node {
			flag = "-e"
		}
		hostInterp := map[cronium.Language][]string{cronium.Bash: {"bash", "-c"}, cronium.Python: {"python3", "-c"}, cronium.Node: {"node", "-e"}}[l]
		// A long-lived container for docker exec.
		out, err := exec.Command(dockerCLI, "run", "-d", "--rm", "--network", "none", "--label", "io.cronium.bench=1", img, "sleep", "3600").Output()
		if err != nil {
			return fmt.Errorf("start the docker exec container: %w", err)
		}
		execID := strings.TrimSpace(string(out))
		template := cronium.Spec{Language: l, Limits: limits, Profile: strict, Network: cronium.Net(cronium.NetworkNone)}
		factory := func(ctx context.Context) (pool.Sandbox, error) { return eng.NewSandbox(ctx, template, time.Hour) }
		spec := func(script string) cronium.Spec {
			return cronium.Spec{ID: cronium.NewID(), Language: l, Script: []byte(script), Limits: limits, Profile: strict}
		}
		capture := func(s cronium.Spec) (*strings.Builder, cronium.Spec) {
			var buf strings.Builder
			s.Output = func(c cronium.OutputChunk) { buf.Write(c.Data) }
			return &buf, s
		}
		ways := []struct {
			name string
			run  func(script string) (string, error)
		}{
			{"bare process", func(sc string) (string, error) {
				o, err := exec.Command(hostInterp[0], hostInterp[1], sc).Output()
				return string(o), err
			}},
			{"docker run --rm", func(sc string) (string, error) {
				o, err := exec.Command(dockerCLI, append(append([]string{"run", "--rm", "--network", "none", img}, interp...), flag, sc)...).Output()
				return string(o), err
			}},
			{"docker exec", func(sc string) (string, error) {
				o, err := exec.Command(dockerCLI, append(append([]string{"exec", execID}, interp...), flag, sc)...).Output()
				return string(o), err
			}},
			{"cronium cold", func(sc string) (string, error) {
				buf, s := capture(spec(sc))
				res, err := eng.Run(ctx, s)
				return buf.String(), outcomeErr(res, err)
			}},
			{"cronium prewarmed", func(sc string) (string, error) {
				buf, s := capture(spec(sc))
				res, _ := pools.Run(ctx, pool.Prewarmed, "bench/"+string(l), factory, s)
				return buf.String(), outcomeErr(res, nil)
			}},
			{"cronium reuse", func(sc string) (string, error) {
				buf, s := capture(spec(sc))
				res, _ := pools.Run(ctx, pool.Reuse, "bench/reuse/"+string(l), factory, s)
				return buf.String(), outcomeErr(res, nil)
			}},
		}
		// Warm up every way once (image cache, pools filling).
		for _, way := range ways {
			if _, err := way.run(stamp[l]); err != nil {
				exec.Command(dockerCLI, "rm", "-f", execID).Run()
				return fmt.Errorf("%s %s: %w", l, way.name, err)
			}
		}
		time.Sleep(2 * time.Second) // let the prewarmed pool refill
		samples := make([][]sample, len(ways))
		fmt.Fprintf(os.Stderr, "%s: %d runs per way", l, runs)
		for i := 0; i < runs; i++ {
			for k := range ways {
				j := (k + i) % len(ways) // rotate the order: drift hits every way alike
				begin := time.Now()
				out, err := ways[j].run(stamp[l])
				total := time.Since(begin)
				if err != nil {
					exec.Command(dockerCLI, "rm", "-f", execID).Run()
					return fmt.Errorf("%s %s: %w", l, ways[j].name, err)
				}
				samples[j] = append(samples[j], sample{total, parseStamp(out, begin)})
			}
			fmt.Fprint(os.Stderr, ".")
		}
		fmt.Fprintln(os.Stderr)
		for j, way := range ways {
			var tot, dis []time.Duration
			for _, s := range samples[j] {
				tot = append(tot, s.total)
				dis = append(dis, s.dispatch)
			}
			fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %s |\n", l, way.name,
				msf(pct(tot, 50)), msf(pct(tot, 95)), msf(pct(tot, 99)), msf(pct(dis, 50)), msf(pct(dis, 95)), msf(pct(dis, 99)))
		}
		exec.Command(dockerCLI, "rm", "-f", execID).Run()
		// Throughput per cronium strategy, bash only is enough to compare dispatch.
		if l == langs[0] {
			for _, j := range []int{3, 4, 5} {
				tputRows[ways[j].name] = throughput(tput, workers, func() error { _, err := ways[j].run(`echo hi`); return err })
			}
		}
	}
	fmt.Fprintf(w, "\nthroughput, %s hello-world, %d runs, %d at once:\n\n| strategy | executions/s |\n|---|---|\n", langs[0], tput, workers)
	names := make([]string, 0, len(tputRows))
	for n := range tputRows {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "| %s | %.1f |\n", n, tputRows[n])
	}
	if !skipCPU {
		return benchCPU(ctx, w, eng, dockerCLI, pools, limits, strict)
	}
	return nil
}

func outcomeErr(res cronium.Result, err error) error {
	if err != nil {
		return err
	}
	if res.Outcome != cronium.Succeeded {
		return fmt.Errorf("outcome %s: %s", res.Outcome, res.Error)
	}
	return nil
}

func throughput(n, workers int, run func() error) float64 {
	var wg sync.WaitGroup
	jobs := make(chan struct{})
	begin := time.Now()
	for i := 0; i < workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range jobs {
				run()
			}
		}()
	}
	for i := 0; i < n; i++ {
		jobs <- struct{}{}
	}
	close(jobs)
	wg.Wait()
	return float64(n) / time.Since(begin).Seconds()
}

// benchCPU compares a ~1 s CPU-bound python script in docker run and in cronium (reuse), 5 runs each, interleaved.
func benchCPU(ctx context.Context, w io.Writer, eng cronium.Engine, dockerCLI string, pools *pool.Manager, limits cronium.Limits, p cronium.Profile) error {
	l := cronium.Python
	img := images.Recipes[l].Ref()
	// Calibrate N so the loop takes about a second here.
	n := 1_000_000
	for {
		begin := time.Now()
		if err := exec.Command("python3", "-c", strings.Replace(busy[l], "N", strconv.Itoa(n), 1)).Run(); err != nil {
			return err
		}
		if d := time.Since(begin); d > 800*time.Millisecond {
			n = int(float64(n) * float64(time.Second) / float64(d))
			break
		}
		n *= 2
	}
	script := strings.Replace(busy[l], "N", strconv.Itoa(n), 1)
	template := cronium.Spec{Language: l, Limits: limits, Profile: p, Network: cronium.Net(cronium.NetworkNone)}
	factory := func(ctx context.Context) (pool.Sandbox, error) { return eng.NewSandbox(ctx, template, time.Hour) }
	var dock, cron, cold []time.Duration
	for i := 0; i < 5; i++ {
		begin := time.Now()
		if err := exec.Command(dockerCLI, "run", "--rm", "--network", "none", img, "python3", "-c", script).Run(); err != nil {
			return err
		}
		dock = append(dock, time.Since(begin))
		begin = time.Now()
		res, _ := pools.Run(ctx, pool.Reuse, "bench/cpu", factory, cronium.Spec{ID: cronium.NewID(), Language: l, Script: []byte(script), Limits: limits, Profile: p})
		if err := outcomeErr(res, nil); err != nil {
			return err
		}
		cron = append(cron, time.Since(begin))
		begin = time.Now()
		res, err := eng.Run(ctx, cronium.Spec{ID: cronium.NewID(), Language: l, Script: []byte(script), Limits: limits, Profile: p})
		if err := outcomeErr(res, err); err != nil {
			return err
		}
		cold = append(cold, time.Since(begin))
	}
	d, r, c := pct(dock, 50), pct(cron, 50), pct(cold, 50)
	fmt.Fprintf(w, "\n1-second CPU-bound python script (%d iterations), median of 5, interleaved:\n\n| way | p50 | vs docker run |\n|---|---|---|\n", n)
	fmt.Fprintf(w, "| docker run --rm | %s | 1.000 |\n| cronium cold | %s | %.3f |\n| cronium reuse | %s | %.3f |\n", msf(d), msf(c), c.Seconds()/d.Seconds(), msf(r), r.Seconds()/d.Seconds())
	return nil
}
