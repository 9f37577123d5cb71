package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	cronium "github.com/cronium/executor"
)

type runFlags struct {
	lang, image, memory, cpus, pids, timeout, network, profile, input, output, tmp string
	ioRead, ioWrite                                                                string
	env                                                                            []string
	json                                                                           bool
	allowDomains, allowServices                                                    []string
	blockPorts                                                                     []string
	bandwidth, config                                                              string
	netRules                                                                       cronium.NetworkRules
}

func newRunCmd(g *globals) *cobra.Command {
	f := &runFlags{}
	c := &cobra.Command{
		Use:   "run FILE",
		Short: "Run one script in a fresh, locked-down container",
		Long: `Run one script in a fresh container and exit with the script's exit code.

The script runs as user 65534 with a read-only root, no capabilities, no
network and the limits below. Its output streams to your terminal; a summary
of what it used follows on stderr (or one JSON object with --json).

Exit status: the script's own, or 124 timed_out, 137 oom_killed,
130 cancelled, 125 engine_error, 2 bad flags.`,
		Example: `  cronium run examples/hello.py
  cronium run job.sh --memory 512Mi --cpus 1 --timeout 2m --env MODE=prod
  cronium run job.js --input '{"user": 42}' --json`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error { return runScript(c, g, f, args[0]) },
	}
	fl := c.Flags()
	fl.StringVar(&f.lang, "lang", "", "bash, python or node (default: from the extension or shebang)")
	fl.StringVar(&f.image, "image", "", "container image (default: the runtime image of the language)")
	fl.StringVar(&f.memory, "memory", "256Mi", "memory hard limit, no swap: like 512Mi, 1G, 100M")
	fl.StringVar(&f.cpus, "cpus", "0.5", "CPU burst: most CPU-seconds per wall second, like 0.5 or 2")
	fl.StringVar(&f.pids, "pids", "100", "most processes and threads")
	fl.StringVar(&f.timeout, "timeout", "30s", "wall-clock limit: like 30s, 2m, or plain seconds")
	fl.StringVar(&f.network, "network", "", "none, egress, internal or full (default: the profile's, none for strict; egress if other network flags are given)")
	fl.StringArrayVar(&f.allowDomains, "allow-domain", nil, "egress only to this name, through the filtering proxy; *.example.com for subdomains (repeatable)")
	fl.StringArrayVar(&f.allowServices, "allow-service", nil, "internal mode: a service named in the config's network.internal_services (repeatable)")
	fl.StringArrayVar(&f.blockPorts, "block-port", nil, "refuse this destination port too, on top of the operator's list (repeatable)")
	fl.StringVar(&f.bandwidth, "bandwidth", "", "cap traffic each way, like 10Mbps or 512kbps")
	fl.StringVar(&f.config, "config", os.Getenv("CRONIUM_CONFIG"), "server config file whose network section applies (internal services, upstream DNS, blocked ports)")
	fl.StringVar(&f.profile, "profile", "strict", "security profile: strict, standard or trusted")
	fl.StringArrayVar(&f.env, "env", nil, "environment variable K=V (repeatable)")
	fl.StringVar(&f.input, "input", "", "JSON input, or @file to read it from a file; delivered on stdin")
	fl.StringVar(&f.output, "output-limit", "10Mi", "cap on stdout plus stderr; output past it is dropped")
	fl.StringVar(&f.ioRead, "io-read", "", "cap on disk reads per second, like 10Mi (makes /workspace a disk file system)")
	fl.StringVar(&f.ioWrite, "io-write", "", "cap on disk writes per second, like 10Mi (makes /workspace a disk file system)")
	fl.StringVar(&f.tmp, "tmp-size", "", "size of the /tmp tmpfs, which counts against --memory (default 100Mi, less when memory is small)")
	fl.BoolVar(&f.json, "json", false, "print one JSON result object (with the output) instead of streaming")
	return c
}

// specFromFlags validates every flag; errors name the flag and the accepted form.
func specFromFlags(f *runFlags, file string) (cronium.Spec, error) {
	var spec cronium.Spec
	script, err := os.ReadFile(file)
	if err != nil {
		return spec, cronium.Invalid("FILE", file, "cannot be read: "+err.Error())
	}
	spec.Script = script
	if f.lang != "" {
		if spec.Language, err = cronium.ParseLanguage("--lang", f.lang); err != nil {
			return spec, err
		}
	} else if spec.Language = cronium.DetectLanguage(file, script); spec.Language == "" {
		return spec, cronium.Invalid("--lang", "", "is needed: the language cannot be told from the file name or a shebang; pass --lang bash|python|node")
	}
	spec.Image = f.image
	l := &spec.Limits
	if l.Memory, err = cronium.ParseSize("--memory", f.memory); err != nil {
		return spec, err
	}
	if l.Memory < cronium.MinMemory {
		return spec, cronium.Invalid("--memory", f.memory, "is too small: give at least "+cronium.MinMemory.String())
	}
	if l.CPUs, err = strconv.ParseFloat(f.cpus, 64); err != nil || l.CPUs < 0.01 || l.CPUs > 1024 {
		return spec, cronium.Invalid("--cpus", f.cpus, "is not a CPU count: want a number between 0.01 and 1024, like 0.5 or 2")
	}
	if l.Pids, err = strconv.ParseInt(f.pids, 10, 64); err != nil || l.Pids < 4 || l.Pids > cronium.MaxPids {
		return spec, cronium.Invalid("--pids", f.pids, fmt.Sprintf("is not a process cap: want a whole number from 4 to %d, like 100", cronium.MaxPids))
	}
	if l.Timeout, err = cronium.ParseDuration("--timeout", f.timeout); err != nil {
		return spec, err
	}
	if l.Timeout%time.Second != 0 {
		return spec, cronium.Invalid("--timeout", f.timeout, "is not whole seconds: timeouts are whole seconds end to end, like 30s or 2m")
	}
	if l.Output, err = cronium.ParseSize("--output-limit", f.output); err != nil {
		return spec, err
	}
	if f.tmp != "" {
		if l.TmpSize, err = cronium.ParseSize("--tmp-size", f.tmp); err != nil {
			return spec, err
		}
		if d := l.Defaults(); d.TmpSize+d.WorkspaceSize > d.TmpfsBudget() {
			return spec, cronium.Invalid("--tmp-size", f.tmp, fmt.Sprintf("does not fit in --memory %s: /tmp and /workspace are memory (tmpfs) and may hold %s together; lower it or raise --memory", l.Memory, d.TmpfsBudget()))
		}
	}
	for _, io := range []struct {
		flag, v string
		set     *cronium.Size
	}{{"--io-read", f.ioRead, &l.IOReadBPS}, {"--io-write", f.ioWrite, &l.IOWriteBPS}} {
		if io.v == "" {
			continue
		}
		if *io.set, err = cronium.ParseSize(io.flag, strings.TrimSuffix(io.v, "/s")); err != nil {
			return spec, err
		}
		if *io.set < cronium.MinIOBPS {
			return spec, cronium.Invalid(io.flag, io.v, "is too small: want at least "+cronium.MinIOBPS.String()+" per second, like 10Mi")
		}
	}
	if spec.Profile, err = cronium.LookupProfile("--profile", f.profile); err != nil {
		return spec, err
	}
	if spec.Network, err = networkFromFlags(f, spec.Profile); err != nil {
		return spec, err
	}
	spec.Env = map[string]string{}
	for _, kv := range f.env {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return spec, cronium.Invalid("--env", kv, "is not K=V: like --env MODE=prod")
		}
		if err := cronium.CheckEnvName("--env", k); err != nil {
			return spec, err
		}
		spec.Env[k] = v
	}
	if f.input != "" {
		in := []byte(f.input)
		if name, ok := strings.CutPrefix(f.input, "@"); ok {
			if in, err = os.ReadFile(name); err != nil {
				return spec, cronium.Invalid("--input", f.input, "cannot be read: "+err.Error())
			}
		}
		if !json.Valid(in) {
			return spec, cronium.Invalid("--input", abbreviate(f.input), "is not JSON: give a JSON value like '{\"n\": 1}' or @file.json")
		}
		spec.Input = in
	}
	spec.Limits = spec.Limits.Defaults()
	if err := spec.Limits.Validate(); err != nil {
		return spec, err
	}
	return spec, nil
}

// networkFromFlags builds and checks the run's network policy: the same
// rules as for an event, with the default tier's modes (full needs the
// trusted profile).
func networkFromFlags(f *runFlags, profile cronium.Profile) (cronium.NetworkPolicy, error) {
	p := cronium.NetworkPolicy{Mode: cronium.NetworkMode(f.network), AllowDomains: f.allowDomains, AllowServices: f.allowServices}
	if _, err := cronium.ParseNetworkMode("--network", f.network); err != nil {
		return p, err
	}
	for _, s := range f.blockPorts {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 65535 {
			return p, cronium.Invalid("--block-port", s, "is not a port: want a number from 1 to 65535, like 25")
		}
		p.BlockedPorts = append(p.BlockedPorts, n)
	}
	var err error
	if p.Bandwidth, err = cronium.ParseBandwidth("--bandwidth", f.bandwidth); err != nil {
		return p, err
	}
	return f.netRules.Resolve("--network", p, profile, cronium.Tier{Name: "local"})
}

func abbreviate(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

// jsonResult is what --json prints.
type jsonResult struct {
	cronium.Result
	Stdout    string `json:"stdout"`
	Stderr    string `json:"stderr"`
	Condition *bool  `json:"condition,omitempty"`
}

func runScript(c *cobra.Command, g *globals, f *runFlags, file string) error {
	netCfg, err := loadNetworkConfig(f.config)
	if err != nil {
		return usage(err)
	}
	f.netRules = netCfg.rules()
	spec, err := specFromFlags(f, file)
	if err != nil {
		return usage(err)
	}
	g.network = netCfg.engineConfig()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// `cronium run job.sh | head` must still clean up: a closed pipe makes
	// writes fail (EPIPE) instead of killing the process mid-run.
	signal.Ignore(syscall.SIGPIPE)
	eng, err := g.engine(ctx)
	if err != nil {
		return &exitError{code: 125, err: err}
	}
	defer eng.Close()
	// What crashed runs left is removed alongside this run, not before it:
	// it only touches sandboxes past their deadline.
	gcDone := make(chan struct{})
	go func() { // owned by runScript: waited for below
		defer close(gcDone)
		if _, err := eng.GC(ctx, time.Minute); err != nil {
			fmt.Fprintln(os.Stderr, "cronium: warning: gc:", err)
		}
	}()
	defer func() { <-gcDone }()

	var mu sync.Mutex
	var stdout, stderr strings.Builder
	stdoutW, stderrW := io.Writer(c.OutOrStdout()), io.Writer(c.ErrOrStderr())
	spec.Output = func(ch cronium.OutputChunk) {
		mu.Lock()
		defer mu.Unlock()
		switch {
		case f.json && ch.Stream == cronium.Stderr:
			stderr.Write(ch.Data)
		case f.json:
			stdout.Write(ch.Data)
		case ch.Stream == cronium.Stderr:
			stderrW.Write(ch.Data)
		default:
			stdoutW.Write(ch.Data)
		}
	}
	rt := &localRuntime{}
	spec.Runtime = rt
	spec.ID = cronium.NewID()
	spec.Context, _ = json.Marshal(map[string]any{"id": 0, "name": file, "type": map[cronium.Language]string{cronium.Bash: "BASH", cronium.Python: "PYTHON", cronium.Node: "NODEJS"}[spec.Language],
		"runLocation": "local", "successCount": 0, "failureCount": 0, "executionId": spec.ID, "trigger": "manual", "attempt": 1, "limits": spec.Limits})
	res, err := eng.Run(ctx, spec)
	if err != nil {
		return usage(err)
	}
	res.Hints = cronium.Hints(res, cronium.HintInput{Strategy: cronium.StrategyCold})
	if res.Output == nil {
		res.Output = rt.output
	}
	if f.json {
		enc := json.NewEncoder(c.OutOrStdout())
		enc.SetIndent("", "  ")
		if err := enc.Encode(jsonResult{Result: res, Stdout: stdout.String(), Stderr: stderr.String(), Condition: rt.condition}); err != nil {
			return err
		}
	} else {
		fmt.Fprintln(stderrW, summary(res))
	}
	if code := exitCode(res); code != 0 {
		return &exitError{code: code}
	}
	return nil
}

// exitCode maps a result to the process exit status.
func exitCode(r cronium.Result) int {
	switch r.Outcome {
	case cronium.Succeeded:
		return 0
	case cronium.Failed:
		if r.ExitCode > 0 && r.ExitCode < 256 {
			return r.ExitCode
		}
		return 1
	case cronium.TimedOut:
		return 124
	case cronium.OOMKilled:
		return 137
	case cronium.Cancelled:
		return 130
	case cronium.OutputLimit:
		return 141
	}
	return 125
}

func summary(r cronium.Result) string {
	var b strings.Builder
	fmt.Fprintf(&b, "cronium: %s", r.Outcome)
	if r.Outcome == cronium.Failed || r.Outcome == cronium.Succeeded {
		fmt.Fprintf(&b, " (exit %d)", r.ExitCode)
	}
	fmt.Fprintf(&b, " in %s", r.EndedAt.Sub(r.StartedAt).Round(time.Millisecond))
	if r.Error != "" {
		fmt.Fprintf(&b, ": %s", r.Error)
	}
	p := r.Phases
	fmt.Fprintf(&b, "\n  phases: create %s, start %s, run %s, cleanup %s",
		ms(p.Create), ms(p.Start), ms(p.Run), ms(p.Cleanup))
	u := r.Usage
	fmt.Fprintf(&b, "\n  usage:  cpu %.3fs, peak memory %s of %s, output %d bytes",
		u.CPUSeconds, human(u.PeakMemory), r.Limits.Memory, u.OutputBytes)
	if r.Truncated {
		fmt.Fprintf(&b, " (truncated at %s)", r.Limits.Output)
	}
	if u.IORead+u.IOWrite > 0 {
		fmt.Fprintf(&b, ", disk %s read %s written", human(u.IORead), human(u.IOWrite))
	}
	for _, h := range r.Hints {
		fmt.Fprintf(&b, "\n  hint:   %s", h.Message)
	}
	if r.NetworkPolicy != nil && r.NetworkPolicy.Networked() {
		fmt.Fprintf(&b, "\n  network: %s", r.NetworkPolicy)
	}
	for _, e := range r.Enforcement {
		fmt.Fprintf(&b, "\n  enforced: %s", e)
	}
	if n := u.Network; n != nil {
		fmt.Fprintf(&b, "\n  traffic: %s in, %s out, %d refused", human(n.BytesIn), human(n.BytesOut), n.Refused)
		for _, r := range n.Refusals {
			fmt.Fprintf(&b, "\n    refused: %s", r)
		}
	}
	return b.String()
}

func ms(d time.Duration) string { return d.Round(100 * time.Microsecond).String() }

func human(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1fGi", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1fMi", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1fKi", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%dB", n)
}
