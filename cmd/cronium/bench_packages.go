package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/spf13/cobra"

	cronium "github.com/cronium/executor"
	"github.com/cronium/executor/images"
	"github.com/cronium/executor/packages"
	"github.com/cronium/executor/pool"
)

func newBenchPackagesCmd(g *globals) *cobra.Command {
	var runs int
	var apt []string
	c := &cobra.Command{
		Use:   "packages",
		Short: "Package layers: re-apply of a built set, and cold and warm starts on the layered image against the base runtime image",
		Long: `Builds (or finds) a bash package set (default: apt sqlite3), then measures
1. the re-apply of the same set: the lookup an event apply does when the set
   is built already (the issue's bar: under 100 ms), and
2. cold starts (a fresh sandbox per run) and warm starts (a prewarmed pool)
   on the base runtime image and on the layered image, alternating, so that
   the two can be compared (the bar: within 5%).`,
		RunE: func(c *cobra.Command, _ []string) error {
			if runs < 3 {
				return usage(cronium.Invalid("--runs", fmt.Sprint(runs), "is too few: want at least 3"))
			}
			p := cronium.Packages{Apt: apt}
			if err := p.Normalize("--apt", cronium.Bash); err != nil {
				return usage(err)
			}
			return benchPackages(c.Context(), c.OutOrStdout(), g, runs, p)
		},
	}
	c.Flags().IntVar(&runs, "runs", 20, "runs per cell")
	c.Flags().StringSliceVar(&apt, "apt", []string{"sqlite3"}, "Debian packages of the set")
	return c
}

func benchPackages(ctx context.Context, w io.Writer, g *globals, runs int, p cronium.Packages) error {
	if ctx == nil {
		ctx = context.Background()
	}
	eng, err := g.engineWithImages(ctx)
	if err != nil {
		return &exitError{code: 125, err: err}
	}
	defer eng.Close()
	b := &packages.Builder{Engine: eng, BuilderImage: images.BuilderRecipe.Ref()}
	base := images.Recipes[cronium.Bash].Ref()
	lock, built, err := b.Ensure(ctx, cronium.Bash, base, p, os.Stderr)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "layer %s (built now: %v)\n", lock.Image, built)

	var apply []time.Duration
	for i := 0; i < runs*5; i++ {
		begin := time.Now()
		if _, again, err := b.Ensure(ctx, cronium.Bash, base, p, nil); err != nil || again {
			return fmt.Errorf("re-apply: built %v, %v", again, err)
		}
		apply = append(apply, time.Since(begin))
	}

	limits := cronium.Limits{CPUs: 2, Memory: 256 << 20}.Defaults()
	strict, _ := cronium.LookupProfile("profile", "")
	pools := pool.NewManager(map[pool.Mode]pool.Config{pool.Prewarmed: {Mode: pool.Prewarmed, Min: 2, Max: 4}})
	defer pools.Stop(context.Background())
	imgs := []string{base, lock.Image}
	run := func(img string, warm bool) (time.Duration, error) {
		var out strings.Builder
		spec := cronium.Spec{ID: cronium.NewID(), Language: cronium.Bash, Image: img, Script: []byte("echo hi"), Limits: limits, Profile: strict,
			Output: func(c cronium.OutputChunk) { out.Write(c.Data) }}
		begin := time.Now()
		var res cronium.Result
		if warm {
			template := cronium.Spec{Language: cronium.Bash, Image: img, Limits: limits, Profile: strict, Network: cronium.Net(cronium.NetworkNone)}
			res, _ = pools.Run(ctx, pool.Prewarmed, "bench/"+img, func(ctx context.Context) (pool.Sandbox, error) {
				return eng.NewSandbox(ctx, template, time.Hour)
			}, spec)
		} else if res, err = eng.Run(ctx, spec); err != nil {
			return 0, err
		}
		d := time.Since(begin)
		if res.Outcome != cronium.Succeeded || !strings.Contains(out.String(), "hi") {
			return 0, fmt.Errorf("run on %s: %s %s", img, res.Outcome, res.Error)
		}
		return d, nil
	}
	samples := map[string][]time.Duration{}
	for _, warm := range []bool{false, true} {
		for _, img := range imgs { // warm-up, not counted
			if _, err := run(img, warm); err != nil {
				return err
			}
		}
		time.Sleep(2 * time.Second)
		fmt.Fprintf(os.Stderr, "warm=%v: %d runs per image", warm, runs)
		for i := 0; i < runs; i++ {
			for k := range imgs {
				img := imgs[(k+i)%2] // alternate the order: drift hits both alike
				if warm {
					// Let the pool refill: this measures a start from a warm
					// sandbox, not the refill racing the runs.
					time.Sleep(400 * time.Millisecond)
				}
				d, err := run(img, warm)
				if err != nil {
					return err
				}
				samples[fmt.Sprint(warm, img)] = append(samples[fmt.Sprint(warm, img)], d)
			}
			fmt.Fprint(os.Stderr, ".")
		}
		fmt.Fprintln(os.Stderr)
	}
	host, _ := os.Hostname()
	fmt.Fprintf(w, "package layers: %d runs per cell, %s, %s/%s, %d CPUs, host %s; set %v -> %s (%d Debian packages)\n\n",
		runs, time.Now().UTC().Format("2006-01-02 15:04 MST"), runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), host, p.Apt, lock.Image, len(lock.Apt))
	fmt.Fprintf(w, "re-apply of the built set (%d lookups): p50 %s, p95 %s, max %s\n\n", len(apply), usf(pct(apply, 50)), usf(pct(apply, 95)), usf(pct(apply, 100)))
	fmt.Fprintln(w, "| start | base image p50 | p95 | layered image p50 | p95 | ratio p50 (layered/base) |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|")
	for _, warm := range []bool{false, true} {
		name := "cold (fresh sandbox)"
		if warm {
			name = "warm (prewarmed pool)"
		}
		bs, ls := samples[fmt.Sprint(warm, base)], samples[fmt.Sprint(warm, lock.Image)]
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %.3f |\n", name, usf(pct(bs, 50)), usf(pct(bs, 95)), usf(pct(ls, 50)), usf(pct(ls, 95)), pct(ls, 50).Seconds()/pct(bs, 50).Seconds())
	}
	return nil
}

func usf(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d.Microseconds())/1000) }
