// Package metrics holds Cronium's Prometheus metrics: how long executions
// wait, start and run, how they end, what they use, the warm pools, the
// queue and the scheduler. Labels come from closed sets only (language,
// strategy, outcome, pool mode, tier, error kind): never a user, an event,
// an execution or a pool key, so the number of series stays bounded
// however many users and events there are.
//
// The execution metrics are fed from the very result the store records,
// once per execution (when the store says this node finished it), so their
// counts match the executions' records exactly.
package metrics

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	cronium "github.com/cronium/executor"
)

// Namespace prefixes every metric name.
const Namespace = "cronium"

// Execution is one finished execution, as the dispatcher saw it.
type Execution struct {
	// Language is the script's language ("" when the run failed before its
	// event was read: "unknown").
	Language cronium.Language
	// Strategy is how it ran ("" when it failed before one was chosen: "none").
	Strategy string
	// Result is the result the store recorded.
	Result cronium.Result
	// Queue is how long it waited from being due to being claimed (negative: unknown).
	Queue time.Duration
	// Start is how long it waited for its sandbox: create and start for a
	// cold run, the wait for a warm sandbox otherwise.
	Start time.Duration
	// PoolHit says a warm run found a ready sandbox; Pooled says it was a warm run.
	PoolHit, Pooled bool
	// Late is how long after its scheduled time a scheduled run was claimed
	// (negative: not a scheduled run).
	Late time.Duration
}

// PoolStats is what the pool collector reads at each scrape.
type PoolStats struct {
	Mode                                    string
	Idle, InUse, Creating, Closing, Created int64
}

// Sources are read at each scrape. Any may be nil.
type Sources struct {
	// Pools lists every warm pool's current sandboxes.
	Pools func() []PoolStats
	// Queue returns the executions queued and queued-and-due per tier. It
	// is called at most once per QueueEvery, the last answer is reused.
	Queue func(ctx context.Context) (queued, due map[string]int64, err error)
	// QueueEvery bounds how often Queue is called. Default 5s.
	QueueEvery time.Duration
	// Fires returns how many runs the scheduler fired, and skipped.
	Fires func() (fired, skipped int64)
	// Running returns how many executions this node runs, and its capacity.
	Running func() (running, capacity int)
}

// Metrics is Cronium's metrics on a private registry. It is safe for concurrent use.
type Metrics struct {
	reg *prometheus.Registry

	queue, start, run           *prometheus.HistogramVec
	outcomes                    *prometheus.CounterVec
	cpu, ioRead, ioWrite        *prometheus.CounterVec
	netBytes                    *prometheus.CounterVec
	peakMemory, reservedMemory  *prometheus.HistogramVec
	reservedGiBSeconds          *prometheus.CounterVec
	engineErrors                *prometheus.CounterVec
	poolRuns                    *prometheus.CounterVec
	cancelledQueued             prometheus.Counter
	startLateness, fireLateness prometheus.Histogram
}

// Label names.
var (
	execLabels    = []string{"language", "strategy", "outcome"}
	langLabels    = []string{"language"}
	langStratLbls = []string{"language", "strategy"}
)

// Bucket sets, in seconds and bytes.
var (
	queueBuckets  = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300}
	startBuckets  = []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}
	runBuckets    = []float64{.01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600}
	memoryBuckets = prometheus.ExponentialBuckets(4<<20, 4, 8) // 4Mi … 64Gi
	lateBuckets   = []float64{.001, .005, .01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}
)

// New returns the metrics, registered with Go runtime and process
// collectors and with collectors over src.
func New(src Sources) *Metrics {
	reg := prometheus.NewRegistry()
	hist := func(name, help string, buckets []float64, labels []string) *prometheus.HistogramVec {
		return prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: Namespace, Name: name, Help: help, Buckets: buckets}, labels)
	}
	counter := func(name, help string, labels []string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: name, Help: help}, labels)
	}
	m := &Metrics{
		reg:   reg,
		queue: hist("execution_queue_seconds", "Time from an execution being due to being claimed by a node.", queueBuckets, execLabels),
		start: hist("execution_start_seconds", "Time an execution waited for its sandbox: create and start (cold), the wait for a warm sandbox (warm).", startBuckets, execLabels),
		run:   hist("execution_run_seconds", "Time the script ran.", runBuckets, execLabels),
		outcomes: counter("executions_total", "Executions that reached a node and ended, by outcome "+
			"(queued executions cancelled before any node claimed them are cronium_executions_cancelled_queued_total).", execLabels),
		cpu:                counter("execution_cpu_seconds_total", "CPU time (user plus system) of scripts and their children.", execLabels),
		ioRead:             counter("execution_io_read_bytes_total", "Bytes scripts read from block devices.", langStratLbls),
		ioWrite:            counter("execution_io_write_bytes_total", "Bytes scripts wrote to block devices.", langStratLbls),
		netBytes:           counter("execution_network_bytes_total", "Network bytes of scripts, by direction (in: to the script, out: from it).", []string{"language", "direction"}),
		peakMemory:         hist("execution_peak_memory_bytes", "Peak memory of an execution's sandbox.", memoryBuckets, langLabels),
		reservedMemory:     hist("execution_reserved_memory_bytes", "Memory limit (reserved) of an execution.", memoryBuckets, langLabels),
		reservedGiBSeconds: counter("execution_reserved_memory_gib_seconds_total", "Reserved memory times run time, in GiB-seconds.", langStratLbls),
		engineErrors:       counter("engine_errors_total", "Executions that ended in engine_error, by kind.", []string{"kind"}),
		poolRuns:           counter("pool_runs_total", "Warm runs by pool mode and whether a ready sandbox served them (hit) or the run waited (miss).", []string{"mode", "result"}),
		cancelledQueued: prometheus.NewCounter(prometheus.CounterOpts{Namespace: Namespace, Name: "executions_cancelled_queued_total",
			Help: "Queued executions this node cancelled before any node claimed them."}),
		startLateness: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: Namespace, Name: "schedule_start_lateness_seconds",
			Help: "Time from a scheduled run's scheduled time to a node claiming it.", Buckets: lateBuckets}),
		fireLateness: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: Namespace, Name: "scheduler_fire_lateness_seconds",
			Help: "Time by which the scheduler wrote a fire after its scheduled time (0 when written ahead, as it normally is).", Buckets: lateBuckets}),
	}
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.queue, m.start, m.run, m.outcomes, m.cpu, m.ioRead, m.ioWrite, m.netBytes, m.peakMemory, m.reservedMemory,
		m.reservedGiBSeconds, m.engineErrors, m.poolRuns, m.cancelledQueued, m.startLateness, m.fireLateness,
		&sourceCollector{src: src})
	return m
}

// Registry is the registry the metrics are on (to add more, or to gather in tests).
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// Finished records one finished execution. Call it once per execution,
// with the result the store recorded. A nil Metrics records nothing (as
// do the other methods).
func (m *Metrics) Finished(x Execution) {
	if m == nil {
		return
	}
	lang, strategy := string(x.Language), x.Strategy
	if lang == "" {
		lang = "unknown"
	}
	if strategy == "" {
		strategy = "none"
	}
	res := x.Result
	outcome := string(res.Outcome)
	if !knownOutcome(res.Outcome) {
		outcome = "unknown"
	}
	if x.Queue >= 0 {
		m.queue.WithLabelValues(lang, strategy, outcome).Observe(x.Queue.Seconds())
	}
	if strategy != "none" {
		m.start.WithLabelValues(lang, strategy, outcome).Observe(x.Start.Seconds())
	}
	m.run.WithLabelValues(lang, strategy, outcome).Observe(res.Phases.Run.Seconds())
	m.outcomes.WithLabelValues(lang, strategy, outcome).Inc()
	m.cpu.WithLabelValues(lang, strategy, outcome).Add(max(0, res.Usage.CPUSeconds))
	m.ioRead.WithLabelValues(lang, strategy).Add(float64(max(0, res.Usage.IORead)))
	m.ioWrite.WithLabelValues(lang, strategy).Add(float64(max(0, res.Usage.IOWrite)))
	if n := res.Usage.Network; n != nil {
		m.netBytes.WithLabelValues(lang, "in").Add(float64(max(0, n.BytesIn)))
		m.netBytes.WithLabelValues(lang, "out").Add(float64(max(0, n.BytesOut)))
	}
	if res.Usage.PeakMemory > 0 {
		m.peakMemory.WithLabelValues(lang).Observe(float64(res.Usage.PeakMemory))
	}
	if res.Limits.Memory > 0 {
		m.reservedMemory.WithLabelValues(lang).Observe(float64(res.Limits.Memory))
		m.reservedGiBSeconds.WithLabelValues(lang, strategy).Add(float64(res.Limits.Memory) / (1 << 30) * res.Phases.Run.Seconds())
	}
	if res.Outcome == cronium.EngineError {
		m.engineErrors.WithLabelValues(ErrorKind(res.Error)).Inc()
	}
	if x.Pooled {
		hit := "miss"
		if x.PoolHit {
			hit = "hit"
		}
		m.poolRuns.WithLabelValues(poolMode(strategy), hit).Inc()
	}
	if x.Late >= 0 {
		m.startLateness.Observe(x.Late.Seconds())
	}
}

// CancelledQueued records a queued execution cancelled before it was claimed.
func (m *Metrics) CancelledQueued() {
	if m != nil {
		m.cancelledQueued.Inc()
	}
}

// FireLate records by how much the scheduler wrote a fire after its time.
func (m *Metrics) FireLate(d time.Duration) {
	if m != nil {
		m.fireLateness.Observe(max(0, d).Seconds())
	}
}

func knownOutcome(o cronium.Outcome) bool {
	for _, k := range cronium.Outcomes {
		if o == k {
			return true
		}
	}
	return false
}

// poolMode maps a warm strategy to its pool mode (they share names).
func poolMode(strategy string) string {
	switch strategy {
	case "prewarmed", "reuse", "user":
		return strategy
	}
	return "other"
}

// ErrorKinds are the kinds ErrorKind sorts engine errors into.
var ErrorKinds = []string{"lost", "image", "create", "start", "agent", "network", "secrets", "store", "timeout", "other"}

// ErrorKind sorts an engine_error's message into one of ErrorKinds, so
// that free text never becomes a label value.
func ErrorKind(msg string) string {
	m := strings.ToLower(msg)
	has := func(subs ...string) bool {
		for _, s := range subs {
			if strings.Contains(m, s) {
				return true
			}
		}
		return false
	}
	switch {
	case strings.HasPrefix(m, "lost") || has("sandbox is gone", "re-attach"):
		return "lost"
	case has("image"):
		return "image"
	case has("secret"):
		return "secrets"
	case has("network", "netguard", "firewall", "veth"):
		return "network"
	case has("agent", "hello", "protocol"):
		return "agent"
	case has("create"):
		return "create"
	case has("start"):
		return "start"
	case has("store", "database", "record the execution"):
		return "store"
	case has("deadline", "timeout", "timed out"):
		return "timeout"
	}
	return "other"
}

// sourceCollector reads the pools, the queue and the scheduler at scrape time.
type sourceCollector struct {
	src Sources

	mu        sync.Mutex // guards the cached queue
	queueAt   time.Time
	queued    map[string]int64
	due       map[string]int64
	queueErrs float64
}

var (
	poolSandboxesDesc = prometheus.NewDesc(Namespace+"_pool_sandboxes", "Warm sandboxes by pool mode and state.", []string{"mode", "state"}, nil)
	poolCreatedDesc   = prometheus.NewDesc(Namespace+"_pool_sandboxes_created", "Sandboxes the current pools created, by mode (pools retired since are not counted).", []string{"mode"}, nil)
	poolsDesc         = prometheus.NewDesc(Namespace+"_pools", "Warm pools by mode.", []string{"mode"}, nil)
	queueDesc         = prometheus.NewDesc(Namespace+"_queue_executions", "Executions in the queue by tier (every node's), and of them those already due (waiting).", []string{"tier", "state"}, nil)
	queueErrDesc      = prometheus.NewDesc(Namespace+"_queue_read_errors_total", "Failed reads of the queue depth.", nil, nil)
	firesDesc         = prometheus.NewDesc(Namespace+"_scheduler_fires_total", "Scheduled runs this node's scheduler fired.", nil, nil)
	skippedDesc       = prometheus.NewDesc(Namespace+"_scheduler_skipped_total", "Scheduled runs skipped (earlier runs still queued, or concurrency forbid).", nil, nil)
	runningDesc       = prometheus.NewDesc(Namespace+"_node_running_executions", "Executions this node runs now.", nil, nil)
	capacityDesc      = prometheus.NewDesc(Namespace+"_node_capacity", "Executions this node may run at once.", nil, nil)
)

// Describe implements prometheus.Collector.
func (c *sourceCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{poolSandboxesDesc, poolCreatedDesc, poolsDesc, queueDesc, queueErrDesc, firesDesc, skippedDesc, runningDesc, capacityDesc} {
		ch <- d
	}
}

// poolModes are the pool modes reported even when they have no pool.
var poolModes = []string{"prewarmed", "reuse", "user"}

// Collect implements prometheus.Collector.
func (c *sourceCollector) Collect(ch chan<- prometheus.Metric) {
	if c.src.Pools != nil {
		type agg struct{ pools, idle, inUse, creating, closing, created int64 }
		by := map[string]*agg{}
		for _, m := range poolModes {
			by[m] = &agg{}
		}
		for _, p := range c.src.Pools() {
			a := by[p.Mode]
			if a == nil {
				continue // not a mode we know: no unbounded label values
			}
			a.pools++
			a.idle += p.Idle
			a.inUse += p.InUse
			a.creating += p.Creating
			a.closing += p.Closing
			a.created += p.Created
		}
		for mode, a := range by {
			ch <- prometheus.MustNewConstMetric(poolsDesc, prometheus.GaugeValue, float64(a.pools), mode)
			ch <- prometheus.MustNewConstMetric(poolSandboxesDesc, prometheus.GaugeValue, float64(a.idle), mode, "idle")
			ch <- prometheus.MustNewConstMetric(poolSandboxesDesc, prometheus.GaugeValue, float64(a.inUse), mode, "in_use")
			ch <- prometheus.MustNewConstMetric(poolSandboxesDesc, prometheus.GaugeValue, float64(a.creating), mode, "creating")
			ch <- prometheus.MustNewConstMetric(poolSandboxesDesc, prometheus.GaugeValue, float64(a.closing), mode, "closing")
			ch <- prometheus.MustNewConstMetric(poolCreatedDesc, prometheus.GaugeValue, float64(a.created), mode)
		}
	}
	if c.src.Queue != nil {
		queued, due, errs := c.queue()
		for tier, n := range queued {
			ch <- prometheus.MustNewConstMetric(queueDesc, prometheus.GaugeValue, float64(n), tier, "queued")
			ch <- prometheus.MustNewConstMetric(queueDesc, prometheus.GaugeValue, float64(due[tier]), tier, "waiting")
		}
		ch <- prometheus.MustNewConstMetric(queueErrDesc, prometheus.CounterValue, errs)
	}
	if c.src.Fires != nil {
		fired, skipped := c.src.Fires()
		ch <- prometheus.MustNewConstMetric(firesDesc, prometheus.CounterValue, float64(fired))
		ch <- prometheus.MustNewConstMetric(skippedDesc, prometheus.CounterValue, float64(skipped))
	}
	if c.src.Running != nil {
		running, capacity := c.src.Running()
		ch <- prometheus.MustNewConstMetric(runningDesc, prometheus.GaugeValue, float64(running))
		ch <- prometheus.MustNewConstMetric(capacityDesc, prometheus.GaugeValue, float64(capacity))
	}
}

// queue returns the cached queue depth, read again when older than QueueEvery.
func (c *sourceCollector) queue() (queued, due map[string]int64, errs float64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	every := c.src.QueueEvery
	if every <= 0 {
		every = 5 * time.Second
	}
	if c.queued == nil || time.Since(c.queueAt) >= every {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		q, d, err := c.src.Queue(ctx)
		cancel()
		c.queueAt = time.Now()
		if err != nil {
			c.queueErrs++
			if c.queued == nil {
				c.queued, c.due = map[string]int64{}, map[string]int64{}
			}
		} else {
			c.queued, c.due = q, d
		}
	}
	return c.queued, c.due, c.queueErrs
}
