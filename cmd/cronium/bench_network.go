package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	cronium "github.com/cronium/executor"
	"github.com/cronium/executor/internal/fakenet"
)

func newBenchNetworkCmd(g *globals) *cobra.Command {
	var runs, mb int
	c := &cobra.Command{
		Use:   "network",
		Short: "Network modes side by side: cold and warm starts in none, egress and allowlist, and the proxy's throughput",
		Long: `Runs one engine in this process (as cronium serve does) against a fake
internet it builds in a network namespace, and measures, alternating the
modes run by run:

  cold:  a fresh sandbox running "echo hi" in network none, egress and
         egress with allow_domains (allowlist);
  warm:  the same in an idle sandbox of each mode (run, then reset);
  proxy: a download of --mb MB in egress (forwarded by the kernel) and in
         allowlist (through cronium's filtering proxy), with this process's
         CPU time while it runs.

Needs root (network namespace, iptables) and the runtime images.`,
		RunE: func(c *cobra.Command, _ []string) error {
			if runs < 3 {
				return usage(cronium.Invalid("--runs", fmt.Sprint(runs), "is too few: want at least 3"))
			}
			if mb < 1 {
				return usage(cronium.Invalid("--mb", fmt.Sprint(mb), "is too small: want at least 1"))
			}
			return benchNetwork(c.OutOrStdout(), g, runs, mb)
		},
	}
	c.Flags().IntVar(&runs, "runs", 20, "runs per mode")
	c.Flags().IntVar(&mb, "mb", 200, "megabytes downloaded per throughput run")
	return c
}

func benchNetwork(w io.Writer, g *globals, runs, mb int) error {
	ctx := context.Background()
	inet, err := fakenet.Start()
	if err != nil {
		return fmt.Errorf("fake internet (needs root): %w", err)
	}
	defer inet.Close()
	g.network = cronium.NetworkSetup{UpstreamDNS: []string{fakenet.DNS}}
	eng, err := g.engine(ctx)
	if err != nil {
		return err
	}
	defer eng.Close()
	modes := []struct {
		name   string
		policy cronium.NetworkPolicy
	}{
		{"none", cronium.Net(cronium.NetworkNone)},
		{"egress", cronium.Net(cronium.NetworkEgress)},
		{"allowlist", cronium.NetworkPolicy{Mode: cronium.NetworkEgress, AllowDomains: []string{"api.example.test"}}},
	}
	limits := cronium.Limits{CPUs: 2}
	spec := func(p cronium.NetworkPolicy) cronium.Spec {
		return cronium.Spec{ID: cronium.NewID(), Language: cronium.Bash, Script: []byte("echo hi"), Network: p, Limits: limits}
	}
	// One warm-up of each, not counted: it creates the sandbox network.
	for _, m := range modes {
		if res, err := eng.Run(ctx, spec(m.policy)); err != nil || res.Outcome != cronium.Succeeded {
			return fmt.Errorf("warm-up %s: %v %s %s", m.name, err, res.Outcome, res.Error)
		}
	}
	cold := make([][]time.Duration, len(modes))
	phases := make([][3][]time.Duration, len(modes)) // create, start, cleanup
	fmt.Fprintf(os.Stderr, "cold: %d runs per mode", runs)
	for i := 0; i < runs; i++ {
		for k := range modes {
			j := (k + i) % len(modes) // rotate the order against drift
			t := time.Now()
			res, err := eng.Run(ctx, spec(modes[j].policy))
			if err != nil || res.Outcome != cronium.Succeeded {
				return fmt.Errorf("cold %s: %v %s %s", modes[j].name, err, res.Outcome, res.Error)
			}
			cold[j] = append(cold[j], time.Since(t))
			for x, d := range []time.Duration{res.Phases.Create, res.Phases.Start, res.Phases.Cleanup} {
				phases[j][x] = append(phases[j][x], d)
			}
		}
		fmt.Fprint(os.Stderr, ".")
	}
	fmt.Fprintln(os.Stderr)

	warm := make([][]time.Duration, len(modes))
	sbs := make([]cronium.Sandbox, len(modes))
	for j, m := range modes {
		sb, err := eng.NewSandbox(ctx, cronium.Spec{Language: cronium.Bash, Network: m.policy, Limits: limits}, time.Hour)
		if err != nil {
			return err
		}
		defer sb.Close()
		sbs[j] = sb
	}
	fmt.Fprintf(os.Stderr, "warm: %d runs per mode", runs)
	for i := 0; i < runs+1; i++ {
		for k := range modes {
			j := (k + i) % len(modes)
			t := time.Now()
			res := sbs[j].Run(ctx, spec(modes[j].policy))
			d := time.Since(t)
			if res.Outcome != cronium.Succeeded {
				return fmt.Errorf("warm %s: %s %s", modes[j].name, res.Outcome, res.Error)
			}
			if err := sbs[j].Reset(ctx); err != nil {
				return err
			}
			if i > 0 { // the first is a warm-up
				warm[j] = append(warm[j], d)
			}
		}
		fmt.Fprint(os.Stderr, ".")
	}
	fmt.Fprintln(os.Stderr)

	type tput struct {
		mbits, cpuPer10 float64
	}
	throughput := map[string]tput{}
	n := mb << 20
	for _, m := range modes[1:] {
		script := fmt.Sprintf(`import time, urllib.request
t = time.monotonic()
with urllib.request.build_opener(urllib.request.ProxyHandler({})).open("http://api.example.test/bytes?n=%d", timeout=120) as r:
    k = 0
    while True:
        b = r.read(1 << 20)
        if not b:
            break
        k += len(b)
print("bytes", k, "secs", time.monotonic() - t)
`, n)
		var out strings.Builder
		s := cronium.Spec{ID: cronium.NewID(), Language: cronium.Python, Script: []byte(script), Network: m.policy, Limits: limits,
			Output: func(c cronium.OutputChunk) { out.Write(c.Data) }}
		s.Limits.Timeout = 5 * time.Minute
		cpu0 := cpuSeconds()
		res, err := eng.Run(ctx, s)
		cpu := cpuSeconds() - cpu0
		if err != nil || res.Outcome != cronium.Succeeded {
			return fmt.Errorf("throughput %s: %v %s %s\n%s", m.name, err, res.Outcome, res.Error, out.String())
		}
		var k int
		var secs float64
		if _, err := fmt.Sscanf(strings.TrimSpace(out.String()), "bytes %d secs %g", &k, &secs); err != nil || k != n {
			return fmt.Errorf("throughput %s: %q", m.name, out.String())
		}
		mbits := float64(n) * 8 / secs / 1e6
		// This process's CPU per wall second during the transfer, per 10 Mbit/s.
		throughput[m.name] = tput{mbits, cpu / res.Phases.Run.Seconds() * 100 / (mbits / 10)}
	}

	host, _ := os.Hostname()
	fmt.Fprintf(w, "network modes, %d runs per cell, %s, %s/%s, %d CPUs, host %s; bash \"echo hi\", strict profile, cpus 2\n\n",
		runs, time.Now().UTC().Format("2006-01-02 15:04 MST"), runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), host)
	tw := tabwriter.NewWriter(w, 0, 4, 1, ' ', tabwriter.Debug)
	fmt.Fprintln(tw, "| mode\t cold p50\t cold p95\t cold p50 - none\t create/start/cleanup p50\t warm p50\t warm p95\t warm p50 - none\t")
	fmt.Fprintln(tw, "|---\t---\t---\t---\t---\t---\t---\t---\t")
	for j, m := range modes {
		fmt.Fprintf(tw, "| %s\t %s\t %s\t %+.1f ms\t %.0f/%.0f/%.0f ms\t %.1f ms\t %.1f ms\t %+.1f ms\t\n", m.name, msf(pct(cold[j], 50)), msf(pct(cold[j], 95)),
			ms64(pct(cold[j], 50)-pct(cold[0], 50)), ms64(pct(phases[j][0], 50)), ms64(pct(phases[j][1], 50)), ms64(pct(phases[j][2], 50)),
			ms64(pct(warm[j], 50)), ms64(pct(warm[j], 95)), ms64(pct(warm[j], 50)-pct(warm[0], 50)))
	}
	tw.Flush()
	fmt.Fprintf(w, "\n| download of %d MB\t Mbit/s\t cronium CPU %% per 10 Mbit/s\t\n|---\t---\t---\t\n", mb)
	for _, m := range modes[1:] {
		t := throughput[m.name]
		fmt.Fprintf(w, "| %s\t %.0f\t %.2f\t\n", m.name, t.mbits, t.cpuPer10)
	}
	return nil
}

func ms64(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// cpuSeconds is this process's user plus system CPU time.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}
