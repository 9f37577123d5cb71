package main

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	cronium "github.com/cronium/executor"
	"github.com/cronium/executor/images"
)

func newBenchCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "bench", Short: "Benchmarks run side by side with their baselines"}
	var runs int
	var langs, engines []string
	cold := &cobra.Command{
		Use:   "cold",
		Short: "Cold start: `cronium run` of a trivial script against `docker run --rm` (and `podman run --rm`) of the same image",
		Long: `For each language and engine, alternately runs a trivial script with
` + "`cronium run`" + ` (a fresh locked-down sandbox, created and destroyed) and with
the engine's own ` + "`run --rm --network none`" + ` of the same image, and prints
p50/p95 of the wall time of each command and the ratio of the p50s. Both are
whole CLI invocations, timed from outside. With --engine podman, cronium runs
on Podman (its API service started on demand) and the baseline is ` + "`podman run`" + `
with the ulimits cronium sets (without them rootful Podman asks for limits a
host without CAP_SYS_RESOURCE refuses).`,
		RunE: func(c *cobra.Command, _ []string) error {
			if runs < 3 {
				return usage(cronium.Invalid("--runs", fmt.Sprint(runs), "is too few: want at least 3"))
			}
			ls, err := parseLangs(langs)
			if err != nil {
				return usage(err)
			}
			for _, e := range engines {
				if e != "docker" && e != "podman" {
					return usage(cronium.Invalid("--engines", e, "is not an engine to compare: want docker, podman or both"))
				}
			}
			return benchCold(c.OutOrStdout(), g, runs, ls, engines)
		},
	}
	cold.Flags().IntVar(&runs, "runs", 20, "runs per language, engine and side")
	cold.Flags().StringSliceVar(&langs, "lang", []string{"bash", "python", "node"}, "languages")
	cold.Flags().StringSliceVar(&engines, "engines", []string{"docker", "podman"}, "engines to compare on: docker, podman")
	c.AddCommand(cold, newBenchScheduleCmd(g), newBenchWarmCmd(g), newBenchNetworkCmd(g), newBenchPackagesCmd(g), newBenchKubeCmd(g), newBenchObserveCmd(g))
	return c
}

// parseLangs reads --lang values.
func parseLangs(langs []string) ([]cronium.Language, error) {
	var ls []cronium.Language
	for _, s := range langs {
		l, err := cronium.ParseLanguage("--lang", s)
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
	}
	return ls, nil
}

var trivial = map[cronium.Language]struct{ script, ext string }{
	cronium.Bash:   {"echo hi", ".sh"},
	cronium.Python: {"print('hi')", ".py"},
	cronium.Node:   {"console.log('hi')", ".js"},
}

func benchCold(w io.Writer, g *globals, runs int, langs []cronium.Language, engines []string) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "cronium-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	var global []string
	if g.dockerHost != "" {
		global = append(global, "--docker-host", g.dockerHost)
	}
	if g.agentPath != "" {
		global = append(global, "--agent", g.agentPath)
	}
	if g.stateDir != "" {
		global = append(global, "--state-dir", g.stateDir)
	}
	type row struct {
		lang, engine string
		base, cron   []time.Duration
	}
	var rows []row
	lim := cronium.Limits{}.Defaults()
	for _, engine := range engines {
		cli, err := exec.LookPath(engine)
		if err != nil {
			return fmt.Errorf("the %s baseline needs the %s CLI (or leave %s out of --engines): %w", engine, engine, engine, err)
		}
		for _, l := range langs {
			tr := trivial[l]
			file := filepath.Join(dir, "hello"+tr.ext)
			if err := os.WriteFile(file, []byte(tr.script), 0o644); err != nil {
				return err
			}
			img := images.Recipes[l].Ref()
			cmd := l.Command("")[:len(l.Command(""))-1]
			baseArgs := []string{"run", "--rm", "--network", "none"}
			if engine == "podman" {
				baseArgs = append(baseArgs, "--ulimit", fmt.Sprintf("nofile=%d:%d", lim.NoFile, lim.NoFile), "--ulimit", fmt.Sprintf("nproc=%d:%d", lim.NProc, lim.NProc))
			}
			baseArgs = append(append(baseArgs, img), cmd...)
			switch l {
			case cronium.Bash, cronium.Python:
				baseArgs = append(baseArgs, "-c", tr.script)
			case cronium.Node:
				baseArgs = append(baseArgs, "-e", tr.script)
			}
			cronArgs := append(append([]string{}, global...), "--engine", engine, "run", file)
			r := row{lang: string(l), engine: engine}
			fmt.Fprintf(os.Stderr, "%s on %s: %d runs each", l, engine, runs)
			// One warm-up each, not counted: page cache, image layers, Podman's service.
			timeCmd(cli, baseArgs)
			timeCmd(self, cronArgs)
			for i := 0; i < runs; i++ {
				// Alternate the order so drift on a noisy machine hits both sides.
				if i%2 == 0 {
					d, err := timeCmd(cli, baseArgs)
					if err != nil {
						return err
					}
					r.base = append(r.base, d)
				}
				c, err := timeCmd(self, cronArgs)
				if err != nil {
					return err
				}
				r.cron = append(r.cron, c)
				if i%2 == 1 {
					d, err := timeCmd(cli, baseArgs)
					if err != nil {
						return err
					}
					r.base = append(r.base, d)
				}
				fmt.Fprint(os.Stderr, ".")
			}
			fmt.Fprintln(os.Stderr)
			rows = append(rows, r)
		}
	}
	host, _ := os.Hostname()
	fmt.Fprintf(w, "cold start, %d runs per cell, %s, %s/%s, %d CPUs, host %s\n\n", runs, time.Now().UTC().Format("2006-01-02 15:04 MST"), runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), host)
	tw := tabwriter.NewWriter(w, 0, 4, 1, ' ', tabwriter.Debug)
	fmt.Fprintln(tw, "| language\t engine\t `run --rm` p50\t p95\t cronium run p50\t p95\t ratio p50 (cronium / run --rm)\t")
	fmt.Fprintln(tw, "|---\t---\t---\t---\t---\t---\t---\t")
	for _, r := range rows {
		dp50, dp95 := pct(r.base, 50), pct(r.base, 95)
		cp50, cp95 := pct(r.cron, 50), pct(r.cron, 95)
		fmt.Fprintf(tw, "| %s\t %s\t %s\t %s\t %s\t %s\t %.2f\t\n", r.lang, r.engine, msf(dp50), msf(dp95), msf(cp50), msf(cp95), cp50.Seconds()/dp50.Seconds())
	}
	tw.Flush()
	return nil
}

func timeCmd(name string, args []string) (time.Duration, error) {
	begin := time.Now()
	out, err := exec.Command(name, args...).CombinedOutput()
	d := time.Since(begin)
	if err != nil || !strings.Contains(string(out), "hi") {
		return 0, fmt.Errorf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, out)
	}
	return d, nil
}

func pct(ds []time.Duration, p int) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := (len(s)*p + 99) / 100
	if i < 1 {
		i = 1
	}
	return s[i-1]
}

func msf(d time.Duration) string { return fmt.Sprintf("%.0f ms", float64(d.Microseconds())/1000) }
