package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"

	cronium "github.com/cronium/executor"
	"github.com/cronium/executor/images"
	"github.com/cronium/executor/kube"
	"github.com/cronium/executor/pool"
)

func newBenchKubeCmd(g *globals) *cobra.Command {
	var runs, many int
	var langs []string
	c := &cobra.Command{
		Use:   "kubernetes",
		Short: "Kubernetes: cold execution against a bare Pod, prewarmed dispatch, many executions at once",
		Long: `Runs on the kubernetes engine (give its options with --engine-option, or
$KUBECONFIG). For each language, alternately:
  - a cold execution of a trivial script (cronium's Pod, created, run, reported), and
  - the same script as a bare Pod through the API (same image, user, read-only
    root, no capabilities, seccomp, limits), watched until it succeeded;
both timed from the client. Then the dispatch of a prewarmed sandbox (script
sent to script running), and --many cold executions against --many bare Pods
started at once.`,
		RunE: func(c *cobra.Command, _ []string) error {
			if runs < 3 {
				return usage(cronium.Invalid("--runs", fmt.Sprint(runs), "is too few: want at least 3"))
			}
			if many < 1 || many > 100 {
				return usage(cronium.Invalid("--many", fmt.Sprint(many), "is out of range: want 1 to 100"))
			}
			ls, err := parseLangs(langs)
			if err != nil {
				return usage(err)
			}
			g.engineFlag = "kubernetes"
			return benchKube(c.Context(), c.OutOrStdout(), g, ls, runs, many)
		},
	}
	c.Flags().IntVar(&runs, "runs", 20, "runs per language and side")
	c.Flags().IntVar(&many, "many", 20, "executions (and bare Pods) started at once")
	c.Flags().StringSliceVar(&langs, "lang", []string{"bash", "python", "node"}, "languages")
	return c
}

func benchKube(ctx context.Context, w io.Writer, g *globals, langs []cronium.Language, runs, many int) error {
	if ctx == nil {
		ctx = context.Background()
	}
	eng, err := g.engine(ctx)
	if err != nil {
		return err
	}
	defer eng.Close()
	ke, ok := eng.(*kube.Engine)
	if !ok {
		return fmt.Errorf("bench kubernetes needs the kubernetes engine, got %s", eng.Capabilities().Name)
	}
	limits := cronium.Limits{}.Defaults()
	strict, _ := cronium.LookupProfile("profile", "")
	bare := &barePods{e: ke, limits: limits}
	host, _ := os.Hostname()
	fmt.Fprintf(w, "kubernetes: %d runs per cell, %s, %s/%s, %d CPUs, host %s, Kubernetes %s; strict profile, network none, %s\n\n",
		runs, time.Now().UTC().Format("2006-01-02 15:04 MST"), runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), host, eng.Capabilities().Version, limits.Memory)
	fmt.Fprintln(w, "| language | bare Pod p50 | p95 | cronium cold p50 | p95 | ratio p50 (cronium / bare Pod) |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|")
	cold := func(l cronium.Language, script string) error {
		res, err := eng.Run(ctx, cronium.Spec{Language: l, Script: []byte(script), Limits: limits, Profile: strict})
		return outcomeErr(res, err)
	}
	for _, l := range langs {
		script := trivial[l].script
		// One warm-up each, not counted.
		if err := cold(l, script); err != nil {
			return fmt.Errorf("%s cold: %w", l, err)
		}
		if err := bare.run(ctx, l, script); err != nil {
			return fmt.Errorf("%s bare Pod: %w", l, err)
		}
		var b, c []time.Duration
		fmt.Fprintf(os.Stderr, "%s: %d runs each", l, runs)
		for i := 0; i < runs; i++ {
			order := []bool{i%2 == 0, i%2 != 0} // alternate who goes first
			for _, bareFirst := range order {
				begin := time.Now()
				if bareFirst {
					if err := bare.run(ctx, l, script); err != nil {
						return fmt.Errorf("%s bare Pod: %w", l, err)
					}
					b = append(b, time.Since(begin))
				} else {
					if err := cold(l, script); err != nil {
						return fmt.Errorf("%s cold: %w", l, err)
					}
					c = append(c, time.Since(begin))
				}
			}
			fmt.Fprint(os.Stderr, ".")
		}
		fmt.Fprintln(os.Stderr)
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %.2f |\n", l, msf(pct(b, 50)), msf(pct(b, 95)), msf(pct(c, 50)), msf(pct(c, 95)), pct(c, 50).Seconds()/pct(b, 50).Seconds())
	}

	// Prewarmed dispatch: from Run to the script's first line, in a Pod held ready.
	pools := pool.NewManager(map[pool.Mode]pool.Config{pool.Prewarmed: {Mode: pool.Prewarmed, Min: 2, Max: 4}})
	defer pools.Stop(context.Background())
	fmt.Fprintf(w, "\nprewarmed dispatch (Run to the script's first line), %d runs:\n\n| language | dispatch p50 | p95 | total p50 | p95 |\n|---|---|---|---|---|\n", runs)
	for _, l := range langs {
		template := cronium.Spec{Language: l, Limits: limits, Profile: strict, Network: cronium.Net(cronium.NetworkNone)}
		factory := func(ctx context.Context) (pool.Sandbox, error) { return eng.NewSandbox(ctx, template, time.Hour) }
		var dis, tot []time.Duration
		for i := 0; i <= runs; i++ {
			var out strings.Builder
			spec := cronium.Spec{ID: cronium.NewID(), Language: l, Script: []byte(stamp[l]), Limits: limits, Profile: strict,
				Output: func(c cronium.OutputChunk) { out.Write(c.Data) }}
			begin := time.Now()
			res, _ := pools.Run(ctx, pool.Prewarmed, "bench/"+string(l), factory, spec)
			total := time.Since(begin)
			if err := outcomeErr(res, nil); err != nil {
				return fmt.Errorf("%s prewarmed: %w", l, err)
			}
			if i == 0 {
				time.Sleep(3 * time.Second) // the first filled the pool: let it refill
				continue
			}
			dis, tot = append(dis, parseStamp(out.String(), begin)), append(tot, total)
			time.Sleep(time.Second) // the pool replaces what was used (a cold Pod takes ~0.6 s)
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s |\n", l, msf(pct(dis, 50)), msf(pct(dis, 95)), msf(pct(tot, 50)), msf(pct(tot, 95)))
	}
	pools.Stop(context.Background())

	// Many at once.
	l := langs[0]
	script := trivial[l].script
	atOnce := func(f func() error) (time.Duration, error) {
		begin := time.Now()
		var wg sync.WaitGroup
		errs := make(chan error, many)
		for i := 0; i < many; i++ {
			wg.Add(1)
			go func() { defer wg.Done(); errs <- f() }()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				return 0, err
			}
		}
		return time.Since(begin), nil
	}
	tb, err := atOnce(func() error { return bare.run(ctx, l, script) })
	if err != nil {
		return fmt.Errorf("%d bare Pods: %w", many, err)
	}
	tc, err := atOnce(func() error { return cold(l, script) })
	if err != nil {
		return fmt.Errorf("%d cold executions: %w", many, err)
	}
	fmt.Fprintf(w, "\n%d %s executions started at once, until all finished:\n\n| way | wall time | per execution |\n|---|---|---|\n", many, l)
	fmt.Fprintf(w, "| bare Pods | %s | %s |\n| cronium cold | %s | %s |\n", msf(tb), msf(tb/time.Duration(many)), msf(tc), msf(tc/time.Duration(many)))
	return nil
}

// barePods runs a script as a plain Pod, the baseline: the same image,
// user, read-only root, capabilities, seccomp and limits as cronium's, no
// agent.
type barePods struct {
	e      *kube.Engine
	limits cronium.Limits
}

func (b *barePods) run(ctx context.Context, l cronium.Language, script string) error {
	cs, ns := b.e.Client(), b.e.Namespace()
	interp := l.Command("")[:len(l.Command(""))-1]
	flag := "-c"
	if l == cronium.Node {
		flag = "-e"
	}
	mem := resource.NewQuantity(int64(b.limits.Memory), resource.BinarySI)
	cpu := resource.NewMilliQuantity(int64(b.limits.CPUs*1000), resource.DecimalSI)
	no, yes, uid := false, true, int64(65534)
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "bench-bare-", Namespace: ns, Labels: map[string]string{"cronium.io/bench": "bare"}},
		Spec: corev1.PodSpec{
			RestartPolicy: corev1.RestartPolicyNever, AutomountServiceAccountToken: &no, EnableServiceLinks: &no,
			DNSPolicy: corev1.DNSDefault, NodeSelector: map[string]string{corev1.LabelHostname: b.e.Node()},
			Containers: []corev1.Container{{
				Name: "main", Image: images.Recipes[l].Ref(), ImagePullPolicy: corev1.PullNever,
				Command: append(append([]string{}, interp...), flag, script),
				SecurityContext: &corev1.SecurityContext{RunAsUser: &uid, RunAsGroup: &uid, ReadOnlyRootFilesystem: &yes,
					AllowPrivilegeEscalation: &no, Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
					SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}},
				Resources: corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceMemory: *mem, corev1.ResourceCPU: *cpu}},
			}},
		},
	}
	created, err := cs.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		return err
	}
	defer func() {
		zero := int64(0)
		cs.CoreV1().Pods(ns).Delete(context.Background(), created.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero})
	}()
	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	wt, err := cs.CoreV1().Pods(ns).Watch(wctx, metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("metadata.name", created.Name).String(),
		ResourceVersion: created.ResourceVersion})
	if err != nil {
		return err
	}
	defer wt.Stop()
	for ev := range wt.ResultChan() {
		p, ok := ev.Object.(*corev1.Pod)
		if !ok {
			continue
		}
		switch p.Status.Phase {
		case corev1.PodSucceeded:
			return nil
		case corev1.PodFailed:
			return fmt.Errorf("bare Pod %s failed: %s %s", p.Name, p.Status.Reason, p.Status.Message)
		}
	}
	return fmt.Errorf("bare Pod %s did not finish within 2 minutes", created.Name)
}
