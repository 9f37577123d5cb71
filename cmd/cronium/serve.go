package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"os/signal"
	"reflect"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	cronium "github.com/cronium/executor"
	"github.com/cronium/executor/api"
	"github.com/cronium/executor/dispatch"
	"github.com/cronium/executor/imagepolicy"
	"github.com/cronium/executor/images"
	"github.com/cronium/executor/metrics"
	"github.com/cronium/executor/notify"
	"github.com/cronium/executor/packages"
	"github.com/cronium/executor/pool"
	"github.com/cronium/executor/runtimeapi"
	"github.com/cronium/executor/scheduler"
	"github.com/cronium/executor/web"
)

type serveFlags struct {
	config, listen, dataDir, store string
	capacity                       int
}

func (f *serveFlags) load(c *cobra.Command) (serverConfig, error) {
	cfg, err := loadServerConfig(f.config)
	if err != nil {
		return cfg, err
	}
	if c.Flags().Changed("listen") {
		cfg.Listen = f.listen
	}
	if c.Flags().Changed("data-dir") {
		cfg.DataDir = f.dataDir
	}
	if c.Flags().Changed("store") {
		cfg.Store = f.store
	}
	if c.Flags().Changed("capacity") {
		if f.capacity < 1 {
			return cfg, cronium.Invalid("--capacity", fmt.Sprint(f.capacity), "must be at least 1")
		}
		cfg.Capacity = f.capacity
	}
	return cfg, cfg.validate()
}

func (f *serveFlags) register(c *cobra.Command) {
	c.Flags().StringVar(&f.config, "config", os.Getenv("CRONIUM_CONFIG"), "YAML configuration file (env CRONIUM_CONFIG)")
	c.Flags().StringVar(&f.listen, "listen", "", "HTTP address (env CRONIUM_LISTEN; default 127.0.0.1:8080)")
	c.Flags().StringVar(&f.dataDir, "data-dir", "", "data directory: store and sandbox sockets (env CRONIUM_DATA_DIR)")
	c.Flags().StringVar(&f.store, "store", "", "the database: sqlite:PATH or postgres://user:password@host/db (env CRONIUM_STORE; default sqlite:DATA_DIR/cronium.db)")
	c.Flags().IntVar(&f.capacity, "capacity", 0, "executions run at once on this node (env CRONIUM_CAPACITY)")
}

func newServeCmd(g *globals) *cobra.Command {
	f := &serveFlags{}
	c := &cobra.Command{
		Use:   "serve",
		Short: "Run the API, the scheduler and the executors in one process (SQLite, local engine)",
		Long: `Run Cronium as a service: the HTTP API under /v1, the cron scheduler, the
durable queue and the executors, on the embedded defaults (SQLite in the data
directory, the local Docker engine).

Configuration comes from a YAML file (--config), overridden by CRONIUM_*
environment variables, overridden by flags; ` + "`cronium config check`" + ` prints the
result. On SIGTERM it stops admitting work, lets running executions finish for
shutdown_grace, and leaves the rest to be re-attached at the next start.`,
		RunE: func(c *cobra.Command, _ []string) error {
			cfg, err := f.load(c)
			if err != nil {
				return usage(err)
			}
			return serve(g, cfg)
		},
	}
	f.register(c)
	return c
}

func newConfigCmd() *cobra.Command {
	f := &serveFlags{}
	c := &cobra.Command{Use: "config", Short: "Inspect the server configuration"}
	var output string
	check := &cobra.Command{
		Use:   "check",
		Short: "Validate the configuration and print the effective values (secrets masked), sizes and durations as they are written",
		RunE: func(c *cobra.Command, _ []string) error {
			if output != "yaml" && output != "json" {
				return usage(cronium.Invalid("--output", output, "is not an output format for a configuration: want yaml or json"))
			}
			cfg, err := f.load(c)
			if err != nil {
				return usage(err)
			}
			if cfg.DockerHost != "" {
				cfg.DockerHost = maskURL(cfg.DockerHost)
			}
			cfg.Notifications = cfg.Notifications.masked()
			if cfg.Metrics.Token != "" {
				cfg.Metrics.Token = "***"
			}
			cfg.Store = cfg.storeTarget().String()
			printData(c.OutOrStdout(), output, humanize(reflect.ValueOf(cfg)))
			return nil
		},
	}
	f.register(check)
	check.Flags().StringVarP(&output, "output", "o", "yaml", "yaml or json")
	c.AddCommand(check)
	return c
}

// maskURL hides credentials in an address.
func maskURL(s string) string {
	if at := strings.LastIndex(s, "@"); at > 0 {
		if scheme := strings.Index(s, "://"); scheme >= 0 && scheme < at {
			return s[:scheme+3] + "***" + s[at:]
		}
	}
	return s
}

// layers builds events' packages on this node's runtime images.
type layers struct{ b *packages.Builder }

func (l layers) Ensure(ctx context.Context, lang cronium.Language, p cronium.Packages, progress io.Writer) (cronium.PackageLock, bool, error) {
	return l.b.Ensure(ctx, lang, images.Refs()[lang], p, progress)
}

func (l layers) List(ctx context.Context) ([]cronium.LayeredImage, error) { return l.b.List(ctx) }

func serve(g *globals, cfg serverConfig) error {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := privateDir(cfg.DataDir); err != nil {
		return err
	}
	lock, err := lockDataDir(cfg.DataDir)
	if err != nil {
		return err
	}
	defer lock.Close()
	store, err := openStore(ctx, cfg)
	if err != nil {
		return err
	}
	if cfg.NodeID == "" {
		used := func(host string) bool { ok, err := store.NodeSeen(ctx, host); return ok || err != nil }
		if cfg.NodeID, err = nodeID(cfg.DataDir, used); err != nil {
			store.Close()
			return err
		}
	}
	// Closed last, and only when no execution goroutine can still use it.
	closeStore := true
	defer func() {
		if closeStore {
			store.Close()
		}
	}()
	agentPath, err := g.findAgent()
	if err != nil {
		return err
	}
	host, engineName := cfg.DockerHost, cfg.Engine
	if g.dockerHost != "" {
		host = g.dockerHost
	}
	params := cfg.EngineOptions
	if g.engineFlag != "" && g.engineFlag != engineName {
		engineName, params = g.engineFlag, nil // the config's options are another engine's
	}
	flagParams, err := g.engineOptions()
	if err != nil {
		return err
	}
	if len(flagParams) > 0 {
		params = maps.Clone(params)
		if params == nil {
			params = map[string]string{}
		}
		maps.Copy(params, flagParams)
	}
	eng, err := cronium.OpenEngine(ctx, "engine", engineName, cronium.EngineOptions{Host: host, AgentPath: agentPath, StateDir: cfg.DataDir,
		NodeID: cfg.NodeID, Images: images.Refs(), Logger: log, Network: cfg.Network.engineConfig(), Params: params})
	if err != nil {
		return &exitError{code: 125, err: err}
	}
	defer eng.Close()
	caps := eng.Capabilities()
	imgs, err := imageStore(eng)
	if err != nil {
		return &exitError{code: 125, err: fmt.Errorf("%w: serve builds package layers and admits custom images on the engine", err)}
	}
	keyring, err := cfg.keyring(log)
	if err != nil {
		return err
	}
	rt := runtimeapi.New(store)
	pools := pool.NewManager(map[pool.Mode]pool.Config{
		pool.Prewarmed: cfg.Pools.Prewarmed.config(pool.Prewarmed, caps, log),
		pool.Reuse:     cfg.Pools.Reuse.config(pool.Reuse, caps, log),
		pool.User:      cfg.Pools.User.config(pool.User, caps, log),
	})
	pools.LimitTotal(cfg.Capacity) // warm sandboxes of all pools together never exceed the node's capacity
	// A pooled sandbox lives at most its pool's max age while idle, plus one
	// run; its deadline label (for GC) must cover the longest of them.
	var longestTimeout time.Duration
	for _, t := range cfg.Tiers {
		longestTimeout = max(longestTimeout, t.MaxTimeout.D())
	}
	// The exact runtime images: runs and pools follow `cronium images update`.
	bases := images.NewBases(imgs, images.Refs())
	if _, err := bases.Refresh(ctx); err != nil {
		log.Warn("look up the runtime images", "err", err)
	}
	layerBuilder := &packages.Builder{Engine: engineImages{eng, imgs}, BuilderImage: images.BuilderRecipe.Ref(), Indexes: cfg.Images.Indexes,
		Namespace: images.Repository + "/pkgs-"}
	lifetime := max(cfg.Pools.Prewarmed.MaxAge.D(), cfg.Pools.Reuse.MaxAge.D(), cfg.Pools.User.MaxAge.D()) + longestTimeout + time.Hour
	channels, err := cfg.Notifications.channels()
	if err != nil {
		return err
	}
	for name, ch := range channels { // the operator's channels may reach private addresses when allowed
		ch.Trusted = cfg.Notifications.AllowPrivate
		channels[name] = ch
	}
	notifier := &notify.Worker{Store: store, Sender: &notify.Sender{}, Logger: log,
		Backoff: cfg.Notifications.backoff(),
		Channels: func(user, name string) (notify.Channel, error) {
			// A user's own channel first (never trusted: public addresses
			// only), so an operator channel added later under the same
			// name does not silently take over their notifications.
			u, err := store.UserByName(ctx, user)
			if err != nil {
				return notify.Channel{}, err
			}
			ch, err := api.OpenChannel(ctx, store, keyring, u.ID, name)
			if errors.Is(err, cronium.ErrNotFound) {
				if op, ok := channels[name]; ok {
					return op, nil
				}
			}
			return ch, err
		}}
	metricsToken, err := cfg.Metrics.token()
	if err != nil {
		return err
	}
	var disp *dispatch.Dispatcher
	var sched *scheduler.Scheduler
	var mets *metrics.Metrics
	if !cfg.Metrics.Disabled {
		mets = metrics.New(metrics.Sources{
			Pools: func() []metrics.PoolStats {
				var out []metrics.PoolStats
				for _, p := range pools.Stats() {
					out = append(out, metrics.PoolStats{Mode: string(p.Mode), Idle: int64(p.Idle), InUse: int64(p.InUse),
						Creating: int64(p.Creating), Closing: int64(p.Closing), Created: p.Created})
				}
				return out
			},
			Queue: func(ctx context.Context) (map[string]int64, map[string]int64, error) {
				return store.QueueDepth(ctx, time.Now())
			},
			Fires:   func() (int64, int64) { return sched.Fired(), sched.Skipped() },
			Running: func() (int, int) { return disp.Running(), cfg.Capacity },
		})
	}
	disp, err = dispatch.New(dispatch.Config{Store: store, Engine: eng, Tiers: cfg.Tiers, Node: cfg.NodeID, Capacity: cfg.Capacity, Notified: notifier.Wake,
		Metrics: mets, Prices: cfg.Prices,
		LogLimit: int64(cfg.LogLimit), Logger: log, Runtime: rt, Keyring: keyring,
		Rules: cfg.StrategyRules, Pools: pools, UserWorkspace: cfg.Pools.UserWorkspace, Network: cfg.Network.rules(), Bases: bases,
		SandboxLifetime: lifetime, Lease: cfg.NodeLease.D(), Self: selfNode(cfg, eng.Capabilities())})
	if err != nil {
		return err
	}
	schedCfg := scheduler.Config{Store: store, Dispatcher: disp, Logger: log, Ahead: scheduleAhead, Late: mets.FireLate}
	if l, ok := store.(interface{ Leader(context.Context) bool }); ok {
		schedCfg.Leader = l.Leader // several nodes: one fires
	}
	sched, err = scheduler.New(schedCfg)
	if err != nil {
		return err
	}
	var metricsHandler http.Handler
	if mets != nil {
		metricsHandler = mets.Handler()
	}
	srv, err := api.New(api.Config{Store: store, Dispatcher: disp, Scheduler: sched, Tiers: cfg.Tiers, Logger: log, Keyring: keyring, Pools: pools,
		Metrics: metricsHandler, MetricsToken: metricsToken, Prices: cfg.Prices,
		Channel:  func(_, name string) bool { _, ok := channels[name]; return ok },
		Network:  cfg.Network.rules(),
		Packages: layers{layerBuilder},
		Images:   &imagepolicy.Policy{Config: cfg.Images.Config, Engine: imgs},
		Ready: func(ctx context.Context) error {
			if _, err := store.Counts(ctx); err != nil {
				return fmt.Errorf("store: %w", err)
			}
			_, err := imgs.ImageExists(ctx, images.Refs()[cronium.Bash])
			return err
		}})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w (set listen, CRONIUM_LISTEN or --listen)", cfg.Listen, err)
	}
	// Warm sandboxes a dead predecessor left idle are removed; those whose
	// execution was running are kept for re-attach.
	// Every node's: a sandbox of an execution another node adopted carries
	// this node's label but is no longer this node's to remove.
	if running, err := store.Running(ctx, ""); err == nil {
		keep := map[string]bool{}
		for _, x := range running {
			keep[x.Sandbox] = x.Sandbox != ""
		}
		// With them, the bridges and firewall rules a dead process left
		// (unless a sandbox still uses them: it is being re-attached).
		if n, err := eng.Recover(ctx, keep); err != nil {
			log.Warn("remove what the previous process left", "err", err)
		} else if n > 0 {
			log.Info("removed warm sandboxes left by the previous process", "count", n)
		}
	}
	// Recovery first: executions that were running are re-attached before anything new starts.
	if err := disp.Start(ctx); err != nil {
		return err
	}
	if err := sched.Start(ctx); err != nil {
		return err
	}
	// A client that sends its request slowly, or idles, is cut off. The
	// read deadline ends with the request's body: streams (logs, builds)
	// are not bound by it.
	// A client that reads its response slowly is cut off too: responses are
	// small (log pages are bounded), and streams set their own deadlines.
	var handler http.Handler = srv
	if !cfg.Dashboard.Disabled {
		dash, err := web.New(web.Config{API: srv, Logger: log.With("part", "dashboard"), SessionTTL: cfg.Dashboard.SessionTTL.D(), PublicURL: cfg.Dashboard.PublicURL})
		if err != nil {
			return err
		}
		// The API keeps /v1/ and /metrics; the dashboard has the rest.
		root := http.NewServeMux()
		root.Handle("/v1/", srv)
		root.Handle("/metrics", srv)
		root.Handle("/", dash)
		handler = root
	}
	httpSrv := &http.Server{Handler: handler, ReadHeaderTimeout: min(10*time.Second, cfg.RequestTimeout.D()),
		ReadTimeout: cfg.RequestTimeout.D(), WriteTimeout: 2 * cfg.RequestTimeout.D(), IdleTimeout: 2 * cfg.RequestTimeout.D()}
	httpDone := make(chan error, 1)
	go func() { httpDone <- httpSrv.Serve(ln) }()
	gcDone := make(chan struct{})
	pruner := &packages.Pruner{Builder: layerBuilder, Remove: imgs.RemoveImage,
		UnusedFor: cfg.Images.UnusedFor.D(), Budget: int64(cfg.Images.DiskBudget)}
	prune := func() {
		evs, err := store.Events(ctx, 0)
		if err != nil {
			log.Warn("prune package layers", "err", err)
			return
		}
		inUse := map[string]bool{}
		for _, ev := range evs {
			if ev.PackageLock != nil {
				inUse[ev.PackageLock.Image] = true
			}
		}
		if removed, err := pruner.Prune(ctx, inUse, time.Now()); err != nil {
			log.Warn("prune package layers", "err", err)
		} else if len(removed) > 0 {
			log.Info("removed unused package layers", "images", removed)
		}
	}
	prune() // remembers what exists now: nothing goes before unused_for
	retain := func() {
		if n, err := store.PruneAll(ctx, cfg.Tiers, time.Now()); err != nil {
			log.Warn("delete executions past their tier's retention", "err", err)
		} else if n > 0 {
			log.Info("deleted executions past their tier's retention, with their logs", "executions", n)
		}
	}
	go func() { // periodic orphan GC, layer pruning and retention, owned by serve
		defer close(gcDone)
		t := time.NewTicker(time.Minute)
		defer t.Stop()
		rt := time.NewTicker(cfg.RetentionInterval.D())
		defer rt.Stop()
		retain()
		for minutes := 0; ; {
			select {
			case <-ctx.Done():
				return
			case <-rt.C:
				retain()
			case <-t.C:
				if n, err := eng.GC(ctx, time.Minute); err != nil {
					log.Warn("gc", "err", err)
				} else if n > 0 {
					log.Info("gc removed orphan containers", "count", n)
				}
				if n := pools.RetireUnused(cfg.Pools.RetireAfter.D()); n > 0 {
					log.Info("retired warm pools that served no run lately", "pools", n, "unused_for", cfg.Pools.RetireAfter.D())
				}
				if minutes++; minutes%10 == 0 {
					prune()
				}
			}
		}
	}()
	notifyDone := make(chan struct{})
	go func() { // delivers on: notifications from the outbox, owned by serve
		defer close(notifyDone)
		if err := notifier.Run(ctx); err != nil {
			log.Error("notifications", "err", err)
		}
	}()
	watchDone := make(chan struct{})
	go func() { // events changed on other nodes reach this scheduler at once, owned by serve
		defer close(watchDone)
		if w, ok := store.(interface {
			WatchEvents(context.Context, func())
		}); ok {
			w.WatchEvents(ctx, sched.Notify)
		}
	}()
	followDone := make(chan struct{})
	go func() { // follows `cronium images update`, owned by serve
		defer close(followDone)
		(&follower{bases: bases, eng: imgs, pools: pools, store: store, layers: layerBuilder, log: log}).run(ctx)
	}()
	log.Info("cronium serving", "listen", ln.Addr().String(), "data_dir", cfg.DataDir, "store", cfg.storeTarget().String(), "node", cfg.NodeID, "capacity", cfg.Capacity, "engine", caps.Name, "engine_address", caps.Address, "engine_version", caps.Version)

	select {
	case <-ctx.Done():
	case err := <-httpDone:
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("http server: %w", err)
		}
	}
	log.Info("shutting down: no new executions; waiting for running ones", "grace", cfg.ShutdownGrace.D())
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownGrace.D())
	defer cancel()
	sched.Stop(sctx)
	if r, ok := store.(interface{ Resign() }); ok {
		r.Resign() // another node leads the scheduler at once
	}
	if err := disp.Stop(sctx); err != nil {
		// Warm sandboxes still running executions stay for the next start to
		// re-attach (the idle ones are removed then too). Their goroutines
		// may still write: the store stays open until the process ends.
		log.Warn("shutdown", "err", err)
		closeStore = false
	} else {
		pctx, pcancel := context.WithTimeout(context.Background(), 30*time.Second)
		if err := pools.Stop(pctx); err != nil {
			log.Warn("drain pools", "err", err)
		} else if n, err := eng.Release(); err != nil {
			log.Warn("unmount user workspaces", "err", err)
		} else if n > 0 {
			log.Info("unmounted user workspaces", "count", n)
		}
		pcancel()
	}
	hctx, hcancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer hcancel()
	srv.Close() // log streams end: Shutdown waits for handlers
	if err := httpSrv.Shutdown(hctx); err != nil {
		httpSrv.Close() // a handler stuck in a write does not outlive the server
	}
	<-gcDone
	<-followDone
	<-watchDone
	<-notifyDone // pending notifications stay in the outbox for the next start
	log.Info("stopped")
	return nil
}

func (p poolSize) config(mode pool.Mode, caps cronium.Capabilities, log *slog.Logger) pool.Config {
	if p.PauseIdle && !caps.Pause {
		log.Warn("pools.pause_idle is set, but the engine cannot pause sandboxes: idle sandboxes keep running", "pool", mode, "engine", caps.Name)
	}
	return pool.Config{Mode: mode, Min: p.Min, Max: p.Max, IdleTimeout: p.IdleTimeout.D(), MaxRuns: p.MaxRuns, MaxAge: p.MaxAge.D(), Logger: log, PauseIdle: p.PauseIdle && caps.Pause}
}
