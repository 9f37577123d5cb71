package cronium

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Duration is a time.Duration that reads from JSON and YAML as whole
// seconds (30) or a Go duration string ("30s", "2m"), and writes as whole
// seconds, so an API body never leaves the unit in doubt.
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// MarshalJSON writes whole seconds.
func (d Duration) MarshalJSON() ([]byte, error) {
	return []byte(strconv.FormatInt(int64(time.Duration(d)/time.Second), 10)), nil
}

// UnmarshalJSON reads seconds or a duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		s = string(b)
	}
	if s == "" || s == "null" || s == "0" {
		*d = 0
		return nil
	}
	v, err := ParseDuration("", s) // the decoder's caller names the field
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// Tier is a plan: what one user's executions may use.
type Tier struct {
	Name string `json:"name,omitempty"`
	// CPUGuaranteed is the CPU baseline per execution (shares).
	CPUGuaranteed float64 `json:"cpu_guaranteed"`
	// CPUBurst is the most CPUs an execution may ask for.
	CPUBurst float64 `json:"cpu_burst"`
	// Memory is the most memory an execution may ask for.
	Memory Size `json:"memory"`
	// Concurrency is how many of the user's executions may run at once.
	Concurrency int `json:"concurrency"`
	// MaxTimeout is the longest timeout an event may set.
	MaxTimeout Duration `json:"max_timeout"`
	// NetworkModes are the network modes its events may use. Default:
	// none, egress and internal (full needs the trusted profile or a tier listing it).
	NetworkModes []NetworkMode `json:"network_modes,omitempty"`
	// MaxFiles bounds the bytes of an event's files (its folder). Default:
	// free 256Ki, pro 2Mi, enterprise 8Mi.
	MaxFiles Size `json:"max_files,omitempty"`
	// MaxPids bounds the processes and threads an event may ask for.
	// Default: free 256, pro 1024, enterprise 4096.
	MaxPids int64 `json:"max_pids,omitempty"`
	// RetentionDays is how long finished executions and their logs are
	// kept, RetentionRuns how many of each event's newest finished
	// executions are kept at most. Default: free 7 days and 100 runs, pro
	// 30 and 1,000, enterprise 90 and 10,000.
	RetentionDays int `json:"retention_days,omitempty"`
	RetentionRuns int `json:"retention_runs,omitempty"`
	// IORead and IOWrite cap each execution's disk reads and writes per
	// second (events may ask for less). Default: no cap.
	IORead  Size `json:"io_read,omitempty"`
	IOWrite Size `json:"io_write,omitempty"`
	// MaxKeepFailed is the longest an event may keep a failed run's sandbox
	// for debugging (debug.keep_failed). Default: free 10m, pro 1h, enterprise 4h.
	MaxKeepFailed Duration `json:"max_keep_failed,omitempty"`
	// Budget bounds the CPU time or cost of each of its users' executions
	// in a calendar month. Default: none.
	Budget Budget `json:"budget,omitzero"`
}

// Retention bounds, for the configuration's checks.
const (
	MinRetentionDays, MaxRetentionDays = 1, 36500
	MinRetentionRuns, MaxRetentionRuns = 1, 10_000_000
)

// Retention is how many days and how many runs per event the tier keeps.
func (t Tier) Retention() (days, runs int) {
	days, runs = 7, 100
	switch t.Name {
	case "enterprise":
		days, runs = 90, 10_000
	case "pro":
		days, runs = 30, 1000
	}
	if t.RetentionDays > 0 {
		days = t.RetentionDays
	}
	if t.RetentionRuns > 0 {
		runs = t.RetentionRuns
	}
	return days, runs
}

// PidsCap is the tier's limit on resources.pids.
func (t Tier) PidsCap() int64 {
	if t.MaxPids > 0 {
		return t.MaxPids
	}
	switch t.Name {
	case "enterprise":
		return 4096
	case "pro":
		return 1024
	}
	return 256
}

// KeepFailedCap is MaxKeepFailed or the tier's default.
func (t Tier) KeepFailedCap() time.Duration {
	if t.MaxKeepFailed > 0 {
		return t.MaxKeepFailed.D()
	}
	switch t.Name {
	case "pro":
		return time.Hour
	case "enterprise":
		return 4 * time.Hour
	}
	return 10 * time.Minute
}

// AuditStrict is the audit that records what the strict profile would stop.
const AuditStrict = "strict"

// Audit is what the strict profile would have stopped in a run under
// another profile (an event's audit: strict).
type Audit struct {
	// Profile is the profile audited against: strict.
	Profile string `json:"profile"`
	// Findings are what it would have stopped; none means the event can move to it.
	Findings []Finding `json:"findings"`
	// NotObserved says what this engine or host could not observe.
	NotObserved []string `json:"not_observed,omitempty"`
}

// Finding is one thing the audited profile would have stopped.
type Finding struct {
	// Kind is memory, files, network or processes.
	Kind    string `json:"kind"`
	Message string `json:"message"`
}

// DebugPolicy is how an event's failed runs can be debugged.
type DebugPolicy struct {
	// KeepFailed keeps the sandbox of a run that failed or timed out this
	// long, frozen with its files (without secrets or network), for
	// `cronium exec debug`. It counts against its owner's concurrency
	// while kept. 0: removed at once.
	KeepFailed Duration `json:"keep_failed,omitempty"`
}

// DefaultTiers are the brainstorm's tiers.
func DefaultTiers() map[string]Tier {
	return map[string]Tier{
		"free": {Name: "free", CPUGuaranteed: 0.1, CPUBurst: 0.5, Memory: 512 << 20, Concurrency: 2, MaxTimeout: Duration(5 * time.Minute)},
		"pro":  {Name: "pro", CPUGuaranteed: 0.5, CPUBurst: 2, Memory: 2 << 30, Concurrency: 10, MaxTimeout: Duration(30 * time.Minute)},
		"enterprise": {Name: "enterprise", CPUGuaranteed: 2, CPUBurst: 8, Memory: 8 << 30, Concurrency: 50, MaxTimeout: Duration(2 * time.Hour),
			NetworkModes: []NetworkMode{NetworkNone, NetworkEgress, NetworkInternal, NetworkFull}},
	}
}

// User owns events and executions.
type User struct {
	ID        int64     `json:"id"`
	Name      string    `json:"name"`
	Tier      string    `json:"tier"`
	Admin     bool      `json:"admin"`
	CreatedAt time.Time `json:"created_at"`
}

// ConcurrencyPolicy says what a scheduled fire does while the event already has an execution queued or running.
type ConcurrencyPolicy string

// Concurrency policies.
const (
	ConcurrencyAllow   ConcurrencyPolicy = "allow"   // run alongside
	ConcurrencyForbid  ConcurrencyPolicy = "forbid"  // skip this fire
	ConcurrencyReplace ConcurrencyPolicy = "replace" // cancel the old, run the new
)

// RetryPolicy says whether and when a finished execution runs again.
type RetryPolicy struct {
	// MaxAttempts counts the first run: 1 means no retry. Default 1.
	MaxAttempts int `json:"max_attempts"`
	// Backoff is the wait before the first retry; it doubles each attempt, with ±20% jitter. Default 10s.
	Backoff Duration `json:"backoff"`
	// MaxBackoff caps the wait. Default 10m.
	MaxBackoff Duration `json:"max_backoff"`
	// On lists the outcomes that retry. Default failed, timed_out, engine_error.
	On []Outcome `json:"on"`
}

// Resources are what an event asks for; zero fields take the defaults of Limits.
type Resources struct {
	Memory string  `json:"memory,omitempty"`
	CPUs   float64 `json:"cpus,omitempty"`
	Pids   int64   `json:"pids,omitempty"`
	// IORead and IOWrite cap disk reads and writes per second, like "10Mi"
	// (within the tier's caps, which apply when they are left out).
	IORead  string `json:"io_read,omitempty"`
	IOWrite string `json:"io_write,omitempty"`
}

// Event is a script a user defined once and runs on a schedule or on demand.
type Event struct {
	ID       int64    `json:"id"`
	User     string   `json:"user"`
	Name     string   `json:"name"`
	Language Language `json:"language"`
	Script   string   `json:"script"`
	// Schedule is a cron expression, "@every 5s" or a descriptor; empty means on demand only.
	Schedule string `json:"schedule"`
	// Timezone is the IANA zone of Schedule. Default UTC.
	Timezone string `json:"timezone"`
	// Timeout in whole seconds. Default 30.
	Timeout   Duration      `json:"timeout"`
	Resources Resources     `json:"resources"`
	Profile   string        `json:"profile"`
	Network   NetworkPolicy `json:"network"`
	// Packages are built into a layer on the runtime image at apply time.
	Packages Packages `json:"packages,omitzero"`
	// Debug keeps failed runs' sandboxes for debugging.
	Debug DebugPolicy `json:"debug,omitzero"`
	// Audit, "strict", runs the event as its profile says and records
	// what the strict profile would have stopped (Result.Audit): the way
	// to move an event from compat to strict with confidence.
	Audit string `json:"audit,omitempty"`
	// PackageLock is what the server built for Packages: the image and the
	// exact versions. Set by the server; what a client sends is replaced.
	PackageLock *PackageLock `json:"package_lock,omitempty"`
	// Image is a custom image from a registry the operator allows
	// (registry.example/team/tool:1 or ...@sha256:...); empty: the runtime image.
	Image string `json:"image,omitempty"`
	// Files are more files of the script (modules, data), by relative path,
	// written next to it in /workspace. event apply -f FOLDER packs them.
	Files map[string][]byte `json:"files,omitempty"`
	// ImagePinned is Image resolved to its digest at apply time: what runs
	// use, whatever the tag does later. Set by the server.
	ImagePinned string            `json:"image_pinned,omitempty"`
	Env         map[string]string `json:"env,omitempty"`
	// Input is the default JSON input.
	Input json.RawMessage `json:"input,omitempty"`
	// Secrets names the owner's secrets delivered as files under /run/secrets.
	Secrets []string `json:"secrets,omitempty"`
	// DataMode is api (default: helpers), stdio or files.
	DataMode string `json:"data_mode"`
	// Strategy is auto (the hybrid rule decides), cold, prewarmed or reuse.
	Strategy string `json:"strategy"`
	// RequiresIsolation and Untrusted keep the event out of reused sandboxes.
	RequiresIsolation bool              `json:"requires_isolation,omitempty"`
	Untrusted         bool              `json:"untrusted,omitempty"`
	Enabled           *bool             `json:"enabled,omitempty"`
	Concurrency       ConcurrencyPolicy `json:"concurrency"`
	Retry             RetryPolicy       `json:"retry"`
	// On says what follows the end of a run: notifications and chained events.
	On Actions `json:"on,omitzero"`
	// MissedRuns is skip or run_once: what happens to fires missed while the server was down.
	MissedRuns string `json:"missed_runs"`
	// StartingDeadline bounds how late a missed run may still start under run_once; 0 means no bound.
	StartingDeadline Duration  `json:"starting_deadline"`
	Priority         int       `json:"priority"`
	CreatedAt        time.Time `json:"created_at"`
	UpdatedAt        time.Time `json:"updated_at"`
}

// IsEnabled reports whether the event's schedule is active (default true).
func (e *Event) IsEnabled() bool { return e.Enabled == nil || *e.Enabled }

var eventName = regexp.MustCompile(`^[a-z0-9]([a-z0-9._-]{0,62}[a-z0-9])?$`)

// MaxScriptBytes bounds an event's script.
const MaxScriptBytes = 1 << 20

// Normalize fills defaults and validates e against the owner's tier. It does
// not parse the schedule (the scheduler does); every error names the field.
func (e *Event) Normalize(tier Tier) error {
	if !eventName.MatchString(e.Name) {
		return Invalid("name", e.Name, "is not a valid name: use 1-64 lowercase letters, digits, '.', '_' or '-', starting and ending with a letter or digit")
	}
	lang, err := ParseLanguage("language", string(e.Language))
	if err != nil {
		return err
	}
	e.Language = lang
	if err := e.Packages.Normalize("packages", lang); err != nil {
		return err
	}
	maxFiles := tier.MaxFiles
	if maxFiles == 0 {
		maxFiles = DefaultMaxFiles(tier.Name)
	}
	if err := CheckFiles("files", e.Files, maxFiles); err != nil {
		return err
	}
	e.Image = strings.TrimSpace(e.Image)
	if e.Image != "" && !e.Packages.Empty() {
		return Invalid("packages", "", "and image are both given: packages are built on the runtime images; a custom image brings its own packages")
	}
	if strings.TrimSpace(e.Script) == "" {
		return Invalid("script", "", "is empty: give the script inline (script: |) or with script_file")
	}
	if len(e.Script) > MaxScriptBytes {
		return Invalid("script", "", fmt.Sprintf("is %d bytes, above the %d byte maximum", len(e.Script), MaxScriptBytes))
	}
	if e.Timezone == "" {
		e.Timezone = "UTC"
	}
	if e.Timeout == 0 {
		e.Timeout = Duration(30 * time.Second)
	}
	if e.Timeout.D()%time.Second != 0 || e.Timeout.D() < time.Second {
		return Invalid("timeout", e.Timeout.D().String(), "must be whole seconds, at least 1")
	}
	if e.Timeout.D() > tier.MaxTimeout.D() {
		return Invalid("timeout", e.Timeout.D().String(), fmt.Sprintf("is above the %s tier's maximum of %s", tier.Name, tier.MaxTimeout.D()))
	}
	if _, err := e.Limits(tier); err != nil {
		return err
	}
	switch e.Audit {
	case "", AuditStrict:
	default:
		return Invalid("audit", e.Audit, "is not an audit: want strict (record what the strict profile would stop), or leave it out")
	}
	if e.Strategy == StrategyUser {
		// The user strategy's persistent workspace cannot be kept, audited
		// or capped: say so now rather than run without it.
		for _, c := range []struct {
			set   bool
			field string
		}{{e.Debug.KeepFailed != 0, "debug.keep_failed"}, {e.Audit != "", "audit"}, {e.Resources.IORead != "" || e.Resources.IOWrite != "", "resources.io_read/io_write"}} {
			if c.set {
				return Invalid("strategy", e.Strategy, "keeps a persistent workspace, which "+c.field+" cannot go with (it needs a sandbox of the run's own): use strategy reuse or cold, or drop "+c.field)
			}
		}
	}
	if k := e.Debug.KeepFailed.D(); k != 0 {
		max := tier.KeepFailedCap()
		switch {
		case k < 0:
			return Invalid("debug.keep_failed", k.String(), "is negative: want a duration like 10m, or leave it out")
		case k < 10*time.Second:
			return Invalid("debug.keep_failed", k.String(), "is too short to open a shell: want at least 10s, like 10m")
		case k > max:
			return Invalid("debug.keep_failed", k.String(), fmt.Sprintf("is more than the %s tier allows (%s)", tier.Name, max))
		}
	}
	if _, err := LookupProfile("profile", e.Profile); err != nil {
		return err
	}
	if e.Profile == "" {
		e.Profile = DefaultProfile
	}
	if err := e.Network.Normalize("network"); err != nil {
		return err
	}
	for k, v := range e.Env {
		if err := CheckEnvName("env", k); err != nil {
			return err
		}
		if strings.ContainsRune(v, 0) {
			return Invalid("env."+k, "", "holds a NUL character, which no environment variable can: remove it")
		}
	}
	if len(e.Input) > 0 && !json.Valid(e.Input) {
		return Invalid("input", "", "is not JSON")
	}
	switch e.DataMode {
	case "":
		e.DataMode = DataAPI
	case DataAPI, DataStdio, DataFiles:
	default:
		return Invalid("data_mode", e.DataMode, "is not a data mode: want api, stdio or files")
	}
	if err := e.On.Validate(); err != nil {
		return err
	}
	seen := map[string]bool{}
	for _, n := range e.Secrets {
		if !ValidSecretName(n) {
			return Invalid("secrets", n, "is not a secret name: 1-128 letters, digits, '_', '-' or '.', not starting with '.'")
		}
		if seen[n] {
			return Invalid("secrets", n, "is listed twice")
		}
		seen[n] = true
	}
	if len(e.Input) > MaxInputBytes {
		return Invalid("input", "", fmt.Sprintf("is %d bytes, above the %d byte maximum", len(e.Input), MaxInputBytes))
	}
	switch e.Strategy {
	case "":
		e.Strategy = StrategyAuto
	case StrategyAuto, StrategyCold, StrategyPrewarmed, StrategyReuse, StrategyUser:
	default:
		return Invalid("strategy", e.Strategy, "is not a strategy: want auto, cold, prewarmed, reuse or user")
	}
	switch e.Concurrency {
	case "":
		e.Concurrency = ConcurrencyAllow
	case ConcurrencyAllow, ConcurrencyForbid, ConcurrencyReplace:
	default:
		return Invalid("concurrency", string(e.Concurrency), "is not a policy: want allow, forbid or replace")
	}
	r := &e.Retry
	if r.MaxAttempts == 0 {
		r.MaxAttempts = 1
	}
	if r.MaxAttempts < 1 || r.MaxAttempts > 20 {
		return Invalid("retry.max_attempts", strconv.Itoa(r.MaxAttempts), "is out of range: want 1 (no retry) to 20")
	}
	if r.Backoff == 0 {
		r.Backoff = Duration(10 * time.Second)
	}
	if r.MaxBackoff == 0 {
		r.MaxBackoff = Duration(10 * time.Minute)
	}
	for field, d := range map[string]Duration{"retry.backoff": r.Backoff, "retry.max_backoff": r.MaxBackoff, "starting_deadline": e.StartingDeadline} {
		// Stored in whole seconds: a fraction would be lost, silently.
		if d < 0 || d.D()%time.Second != 0 {
			return Invalid(field, d.D().String(), "is not a whole number of seconds: like 10s or 5m")
		}
	}
	if r.MaxBackoff < r.Backoff {
		return Invalid("retry.max_backoff", r.MaxBackoff.D().String(), "is below retry.backoff")
	}
	if len(r.On) == 0 {
		r.On = []Outcome{Failed, TimedOut, EngineError}
	}
	for _, o := range r.On {
		switch o {
		case Failed, TimedOut, OOMKilled, OutputLimit, EngineError:
		default:
			return Invalid("retry.on", string(o), "is not a retryable outcome: want failed, timed_out, oom_killed, output_limit or engine_error")
		}
	}
	switch e.MissedRuns {
	case "":
		e.MissedRuns = "skip"
	case "skip", "run_once":
	default:
		return Invalid("missed_runs", e.MissedRuns, "is not a policy: want skip or run_once")
	}
	if e.StartingDeadline < 0 {
		return Invalid("starting_deadline", e.StartingDeadline.D().String(), "is negative")
	}
	if e.Priority < -100 || e.Priority > 100 {
		return Invalid("priority", strconv.Itoa(e.Priority), "is out of range: want -100 to 100")
	}
	return nil
}

// Limits turns the event's resources into execution limits, checked against tier.
func (e *Event) Limits(tier Tier) (Limits, error) {
	var l Limits
	if e.Resources.Memory != "" {
		m, err := ParseSize("resources.memory", e.Resources.Memory)
		if err != nil {
			return l, err
		}
		l.Memory = m
	}
	l.CPUs = e.Resources.CPUs
	l.Pids = e.Resources.Pids
	l.Timeout = e.Timeout.D()
	if e.Profile == "compat" { // generous: as if the script ran directly, within the tier
		if l.Memory == 0 {
			l.Memory = tier.Memory
		}
		if l.Pids == 0 {
			l.Pids = tier.PidsCap()
		}
	}
	if l.CPUs == 0 {
		l.CPUs = tier.CPUBurst
	}
	l.CPUGuaranteed = tier.CPUGuaranteed
	if l.CPUGuaranteed > l.CPUs {
		l.CPUGuaranteed = l.CPUs
	}
	l = l.Defaults()
	if l.Memory > tier.Memory {
		return l, Invalid("resources.memory", e.Resources.Memory, fmt.Sprintf("is above the %s tier's maximum of %s", tier.Name, tier.Memory))
	}
	if l.CPUs > tier.CPUBurst {
		return l, Invalid("resources.cpus", strconv.FormatFloat(l.CPUs, 'f', -1, 64), fmt.Sprintf("is above the %s tier's maximum of %v CPUs", tier.Name, tier.CPUBurst))
	}
	if l.Pids > tier.PidsCap() {
		return l, Invalid("resources.pids", strconv.FormatInt(l.Pids, 10), fmt.Sprintf("is above the %s tier's maximum of %d processes", tier.Name, tier.PidsCap()))
	}
	for _, io := range []struct {
		field, v string
		cap      Size
		set      *Size
	}{{"resources.io_read", e.Resources.IORead, tier.IORead, &l.IOReadBPS}, {"resources.io_write", e.Resources.IOWrite, tier.IOWrite, &l.IOWriteBPS}} {
		*io.set = io.cap
		if io.v == "" {
			continue
		}
		v, err := ParseSize(io.field, strings.TrimSuffix(io.v, "/s"))
		if err != nil {
			return l, err
		}
		if io.cap > 0 && v > io.cap {
			return l, Invalid(io.field, io.v, fmt.Sprintf("is above the %s tier's cap of %s per second", tier.Name, io.cap))
		}
		if v <= 0 {
			return l, Invalid(io.field, io.v, "is not a rate: want bytes per second like 10Mi (leave it out for the tier's cap)")
		}
		*io.set = v
	}
	if err := l.Validate(); err != nil {
		var fe *FieldError
		if ok := asFieldError(err, &fe); ok {
			fe.Field = "resources." + fe.Field
		}
		return l, err
	}
	return l, nil
}

func asFieldError(err error, fe **FieldError) bool {
	f, ok := err.(*FieldError)
	if ok {
		*fe = f
	}
	return ok
}

// Trigger says why an execution exists.
type Trigger string

// Triggers.
const (
	TriggerSchedule Trigger = "schedule"
	TriggerManual   Trigger = "manual"
	TriggerAPI      Trigger = "api"
	TriggerRetry    Trigger = "retry"
	// TriggerChain: another event's outcome triggered it (an event's on: actions).
	TriggerChain Trigger = "chain"
)

// Status is where an execution is in its life.
type Status string

// Statuses.
const (
	StatusQueued   Status = "queued"
	StatusRunning  Status = "running"
	StatusFinished Status = "finished"
)

// Execution is one run of an event, from queue to result.
type Execution struct {
	ID          string     `json:"id"`
	EventID     int64      `json:"event_id"`
	Event       string     `json:"event"`
	User        string     `json:"user"`
	UserID      int64      `json:"-"`
	Trigger     Trigger    `json:"trigger"`
	ScheduledAt *time.Time `json:"scheduled_at,omitempty"`
	QueuedAt    time.Time  `json:"queued_at"`
	NotBefore   time.Time  `json:"not_before"`
	StartedAt   *time.Time `json:"started_at,omitempty"`
	FinishedAt  *time.Time `json:"finished_at,omitempty"`
	Status      Status     `json:"status"`
	Outcome     Outcome    `json:"outcome,omitempty"`
	ExitCode    *int       `json:"exit_code,omitempty"`
	Attempt     int        `json:"attempt"`
	Reason      string     `json:"reason,omitempty"`
	Strategy    string     `json:"strategy"`
	// StrategyReason says why the strategy was chosen.
	StrategyReason string `json:"strategy_reason,omitempty"`
	// Sandbox is the sandbox the execution was handed to: a warm sandbox,
	// or for a cold run its own (the execution id); empty until then.
	Sandbox  string          `json:"sandbox,omitempty"`
	Priority int             `json:"priority"`
	Node     string          `json:"node,omitempty"`
	Error    string          `json:"error,omitempty"`
	Input    json.RawMessage `json:"input,omitempty"`
	// Output is the JSON the script set with the output helper (or the stdio/files mode).
	Output json.RawMessage `json:"output,omitempty"`
	// Condition is what the script set with setCondition, for follow-up logic.
	Condition    *bool   `json:"condition,omitempty"`
	Result       *Result `json:"result,omitempty"`
	LogBytes     int64   `json:"log_bytes"`
	LogTruncated bool    `json:"log_truncated"`
	RetryOf      string  `json:"retry_of,omitempty"`
	// RetriedBy is the execution that retries this one (on single reads).
	RetriedBy string `json:"retried_by,omitempty"`
	// ChainedFrom is the execution whose end triggered this one (an event's
	// on: actions), ChainDepth how many such links lead to it.
	ChainedFrom string `json:"chained_from,omitempty"`
	ChainDepth  int    `json:"chain_depth,omitempty"`
	// ChainRoot is the execution the chain began with (empty for it).
	ChainRoot string `json:"chain_root,omitempty"`
}

// TierNames lists tier names, sorted.
func TierNames(tiers map[string]Tier) string {
	names := make([]string, 0, len(tiers))
	for n := range tiers {
		names = append(names, n)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// ValidSecretName reports whether n can name a secret (it becomes a file name).
func ValidSecretName(n string) bool {
	if n == "" || len(n) > 128 || n[0] == '.' {
		return false
	}
	for _, c := range n {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

var variableKey = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.:-]{0,127}$`)

// ValidVariableKey reports whether k is a variable key: 1-128 characters of
// letters, digits, '_', '.', ':' and '-', starting with a letter, digit or '_'.
func ValidVariableKey(k string) bool { return variableKey.MatchString(k) }

// MaxVariableBytes caps one variable's JSON value.
const MaxVariableBytes = 64 << 10

// CheckVariable is the one rule for a variable, wherever it is set (the
// API, the runtime socket, `cronium run`): a valid key and, unless value is
// nil (a read or delete), a JSON value of at most MaxVariableBytes.
func CheckVariable(key string, value []byte) error {
	if !ValidVariableKey(key) {
		return Invalid("key", key, "is not a variable key: 1-128 characters of letters, digits, '_', '.', ':' or '-', starting with a letter, digit or '_'")
	}
	switch {
	case value == nil:
	case len(value) == 0:
		return Invalid("value", "", "is required: any JSON value")
	case len(value) > MaxVariableBytes:
		return Invalid("value", "", fmt.Sprintf("of %s is %d bytes, above the %d byte limit: nothing was stored", key, len(value), MaxVariableBytes))
	case !json.Valid(value):
		return Invalid("value", "", "of "+key+" is not JSON: nothing was stored")
	case !finiteNumbers(value):
		return Invalid("value", "", "of "+key+" holds a number too large to keep (like 1e999): nothing was stored")
	}
	return nil
}

// finiteNumbers reports whether every number in the JSON value v fits a
// float64 (what every reader of a variable decodes it into).
func finiteNumbers(v []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(v))
	dec.UseNumber()
	for {
		tok, err := dec.Token()
		if err != nil {
			return true // the end, or not JSON (checked before)
		}
		if n, ok := tok.(json.Number); ok {
			if _, err := strconv.ParseFloat(string(n), 64); err != nil {
				return false
			}
		}
	}
}

// MaxExactInteger is the largest integer a variable's number holds exactly
// (2^53): increments past it are refused rather than rounded.
const MaxExactInteger = 1 << 53

// Increment is the one rule for adding delta to variable key's number n:
// both finite, the sum finite, and whole numbers kept exact (at most
// MaxExactInteger) rather than rounded.
func Increment(key string, n, delta float64) (float64, error) {
	by := strconv.FormatFloat(delta, 'g', -1, 64)
	if math.IsNaN(n) || math.IsInf(n, 0) {
		return 0, Invalid("key", key, "holds a value that is not a finite number: increment needs a number")
	}
	if math.IsNaN(delta) || math.IsInf(delta, 0) {
		return 0, Invalid("by", by, "is not a finite number: increment by a number like 1 or -0.5")
	}
	out := n + delta
	if math.IsInf(out, 0) {
		return 0, Invalid("by", by, "takes "+key+" past the largest number a variable can hold: nothing was stored")
	}
	whole := n == math.Trunc(n) && delta == math.Trunc(delta)
	if whole && (math.Abs(out) > MaxExactInteger || out-n != delta) {
		return 0, Invalid("by", by, fmt.Sprintf("takes %s past %d, beyond which whole numbers are not kept exactly: nothing was stored", key, int64(MaxExactInteger)))
	}
	return out, nil
}

// envName is what an environment variable's name may be: a shell name.
var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,127}$`)

// CheckEnvName is the one rule for the names of a script's environment
// variables, wherever they come from (event env, `run --env`, a Spec):
// shell names (letters, digits and _, not starting with a digit, at most
// 128 bytes), and not the reserved CRONIUM_ prefix.
func CheckEnvName(field, name string) error {
	if !envName.MatchString(name) {
		return Invalid(field, name, "is not a variable name: use letters, digits and _, not starting with a digit, like MODE or API_URL")
	}
	if strings.HasPrefix(name, "CRONIUM_") {
		return Invalid(field, name, "uses the reserved CRONIUM_ prefix: pick another name")
	}
	return nil
}
