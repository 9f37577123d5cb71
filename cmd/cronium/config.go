package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cronium/executor/secrets"
	"github.com/cronium/executor/strictjson"
	"github.com/cronium/executor/yamljson"

	cronium "github.com/cronium/executor"
	"github.com/cronium/executor/imagepolicy"
	"github.com/cronium/executor/packages"
	"github.com/cronium/executor/pool"
)

// serverConfig is `cronium serve`'s configuration: YAML file, then
// CRONIUM_* environment variables, then flags.
type serverConfig struct {
	// Listen is the HTTP address. Default 127.0.0.1:8080.
	Listen string `json:"listen"`
	// DataDir holds the SQLite store and the sandbox sockets. Default /var/lib/cronium as root.
	DataDir string `json:"data_dir"`
	// Store is the database: sqlite:PATH, or postgres://… for several
	// nodes on one database. Default sqlite:DataDir/cronium.db.
	Store string `json:"store"`
	// NodeID names this node on containers and executions. Default: the
	// data directory's own, kept in its node-id file (the host name and a
	// random suffix), so that servers with their own data directories on
	// one host never touch each other's sandboxes.
	NodeID string `json:"node_id"`
	// NodeLease is how long this node's lease lasts without a heartbeat
	// (one every third of it): past it, the other nodes on the store
	// requeue its claims and adopt its running executions. Default 15s.
	NodeLease cronium.Duration `json:"node_lease"`
	// Capacity is how many executions run at once on this node. Default 2 per CPU.
	Capacity int `json:"capacity"`
	// ShutdownGrace is how long SIGTERM waits for running executions. Default 30s.
	ShutdownGrace cronium.Duration `json:"shutdown_grace"`
	// LogLimit caps the stored logs of one execution. Default 1Mi.
	LogLimit cronium.Size `json:"log_limit"`
	// RequestTimeout is how long a client may take to send a request,
	// headers and body; an idle keep-alive connection is closed after twice
	// that. Streams (logs, builds) are not bound by it. Default 1m.
	RequestTimeout cronium.Duration `json:"request_timeout"`
	// Engine is the container engine: docker (default) or podman.
	Engine string `json:"engine"`
	// EngineOptions are settings of the engine's own (see its documentation).
	EngineOptions map[string]string `json:"engine_options"`
	// DockerHost is the engine address. Default: $DOCKER_HOST, then the
	// default socket; with engine podman, a service cronium starts on demand.
	DockerHost string `json:"docker_host"`
	// Tiers override or add tiers; the defaults are free, pro and enterprise.
	// A default tier named in the file keeps the fields the file leaves out.
	Tiers map[string]cronium.Tier `json:"tiers"`
	// Notifications are the channels events notify (on: actions).
	Notifications notificationsConfig `json:"notifications"`
	// RetentionInterval is how often finished executions past their
	// tier's retention (retention_days, retention_runs) are deleted. Default 1h.
	RetentionInterval cronium.Duration `json:"retention_interval"`
	// MasterKeyFile holds the secrets' master keys ("ID:BASE64" lines, first is primary, mode 0600).
	// Default: $CRONIUM_MASTER_KEYS, else DataDir/master.keys, created on first use.
	MasterKeyFile string `json:"master_key_file"`
	// StrategyRules is the hybrid rule: which executions get warm sandboxes.
	StrategyRules cronium.StrategyRules `json:"strategy_rules"`
	// Pools size the warm pools, per strategy; each distinct spec (and, for
	// reuse, user) gets its own pool of this size.
	Pools poolsConfig `json:"pools"`
	// Network is how network policies are enforced on this node.
	Network networkConfig `json:"network"`
	// Images configures package builds.
	Images imagesConfig `json:"images"`
	// Metrics configures GET /metrics.
	Metrics metricsConfig `json:"metrics"`
	// Dashboard configures the web dashboard at /.
	Dashboard dashboardConfig `json:"dashboard"`
	// Prices is the price table executions' costs are computed with
	// (cronium usage, tier budgets). Default: none, executions cost nothing.
	Prices cronium.Prices `json:"prices"`
}

// dashboardConfig is the web dashboard's settings.
type dashboardConfig struct {
	// Disabled turns the dashboard off (/ answers the API's 404). Default: on.
	Disabled bool `json:"disabled,omitempty"`
	// SessionTTL is how long a sign-in lasts (5m to 30d). Default 12h.
	SessionTTL cronium.Duration `json:"session_ttl,omitempty"`
	// PublicURL is the dashboard's address as browsers reach it, like
	// https://cron.example.com (behind a proxy): forms from it pass the
	// Origin check, and https makes the cookies Secure.
	PublicURL string `json:"public_url,omitempty"`
}

// metricsConfig is the Prometheus endpoint's settings.
type metricsConfig struct {
	// Disabled turns GET /metrics off (it answers 404). Default: on.
	Disabled bool `json:"disabled,omitempty"`
	// Token, when set, is the bearer token scrapers must send
	// (Authorization: Bearer TOKEN). Also $CRONIUM_METRICS_TOKEN.
	Token string `json:"token,omitempty"`
	// TokenFile holds the token instead (its first line), so that it need
	// not be in the configuration file.
	TokenFile string `json:"token_file,omitempty"`
}

// token returns the metrics token, reading TokenFile if set.
func (m metricsConfig) token() (string, error) {
	if m.TokenFile == "" {
		return m.Token, nil
	}
	b, err := os.ReadFile(m.TokenFile)
	if err != nil {
		return "", cronium.Invalid("metrics.token_file", m.TokenFile, "cannot be read: "+err.Error())
	}
	tok, _, _ := strings.Cut(string(b), "\n")
	if tok = strings.TrimSpace(tok); tok == "" {
		return "", cronium.Invalid("metrics.token_file", m.TokenFile, "is empty: put the token on its first line")
	}
	return tok, nil
}

// imagesConfig is the operator's image settings.
type imagesConfig struct {
	// Indexes are the package indexes builds reach (apt sources lines, the
	// pip index URL, the npm registry URL). Default: this host's apt
	// sources, PyPI and the npm registry.
	Indexes packages.Indexes `json:"indexes"`
	// UnusedFor is how long a package layer no event uses is kept. Default 168h.
	UnusedFor cronium.Duration `json:"unused_for,omitempty"`
	// DiskBudget bounds the package layers' own sizes together: past it,
	// layers no event uses are removed first, whatever unused_for says. Default 20Gi; 0 after defaults means none.
	DiskBudget cronium.Size `json:"disk_budget,omitempty"`
	// Registries, Signature and Scanner are the custom image policy.
	imagepolicy.Config
}

// networkConfig is the operator's network settings.
type networkConfig struct {
	// UpstreamDNS are the name servers cronium's resolver asks ("IP" or "IP:port"). Default: the host's /etc/resolv.conf.
	UpstreamDNS []string `json:"upstream_dns,omitempty"`
	// Pool is the range each cronium process takes a /24 from for its sandbox network. Default 10.213.0.0/16.
	Pool string `json:"pool,omitempty"`
	// BlockedPorts are refused in every networked mode; events can only add to them. Default [25, 465, 587].
	BlockedPorts []int `json:"blocked_ports,omitempty"`
	// AllowMetadata lets full mode reach the link-local metadata range. Default false.
	AllowMetadata bool `json:"allow_metadata,omitempty"`
	// InternalServices are what internal mode may reach, by name.
	InternalServices map[string]cronium.InternalService `json:"internal_services,omitempty"`
	// DefaultModes is the mode per profile for events that name none (strict stays none unless set here).
	DefaultModes map[string]cronium.NetworkMode `json:"default_modes,omitempty"`
}

// rules is the part of the network settings the control plane checks events against.
func (n networkConfig) rules() cronium.NetworkRules {
	return cronium.NetworkRules{Services: n.InternalServices, DefaultModes: n.DefaultModes}
}

// engineConfig is the part the engine enforces.
func (n networkConfig) engineConfig() cronium.NetworkSetup {
	c := cronium.NetworkSetup{UpstreamDNS: n.UpstreamDNS, BlockedPorts: n.BlockedPorts, AllowMetadata: n.AllowMetadata, Services: n.InternalServices}
	c.Pool, _ = netip.ParsePrefix(n.Pool)
	return c
}

// validate checks every field, naming it in errors.
func (n networkConfig) validate() error {
	if err := n.rules().Validate("network"); err != nil {
		return err
	}
	for _, s := range n.UpstreamDNS {
		if _, err := netip.ParseAddrPort(s); err != nil {
			if _, err := netip.ParseAddr(s); err != nil {
				return cronium.Invalid("network.upstream_dns", s, "is not an IP address or IP:port, like 192.0.2.53 or 192.0.2.53:53")
			}
		}
	}
	if n.Pool != "" {
		p, err := netip.ParsePrefix(n.Pool)
		if err != nil || !p.Addr().Is4() || p.Bits() > 24 {
			return cronium.Invalid("network.pool", n.Pool, "is not an IPv4 range of /24 or larger, like 10.213.0.0/16")
		}
	}
	for _, p := range n.BlockedPorts {
		if p < 1 || p > 65535 {
			return cronium.Invalid("network.blocked_ports", strconv.Itoa(p), "is not a port: want 1 to 65535")
		}
	}
	return nil
}

// loadNetworkConfig reads only the network section of a server config file
// (for `cronium run --config`).
func loadNetworkConfig(path string) (networkConfig, error) {
	if path == "" {
		return networkConfig{}, nil
	}
	c, err := loadServerConfig(path)
	return c.Network, err
}

// poolsConfig sizes warm pools.
type poolsConfig struct {
	Prewarmed poolSize `json:"prewarmed"`
	Reuse     poolSize `json:"reuse"`
	// User is the per-user dedicated sandbox pool (one pool per user and spec).
	User poolSize `json:"user"`
	// UserWorkspace is the size quota of a user's persistent workspace (its
	// own ext4 file system, so the kernel enforces it). Default 1Gi.
	UserWorkspace cronium.Size `json:"user_workspace"`
	// RetireAfter retires a pool (one per mode, user and spec) that served
	// no run for this long, with its warm sandboxes: pools of deleted or
	// rare events do not hold sandboxes forever. Default 1h.
	RetireAfter cronium.Duration `json:"retire_after"`
}

// poolSize is one strategy's pool size; zero fields take the defaults.
type poolSize struct {
	// Min sandboxes kept ready. Default pool.DefaultMin, 1 (the brainstorm's 5 is too many for 2 cores).
	Min int `json:"min"`
	// Max sandboxes of one pool at once. Default 4, or the capacity if smaller.
	Max int `json:"max"`
	// IdleTimeout closes idle sandboxes above Min. Default 300s.
	IdleTimeout cronium.Duration `json:"idle_timeout"`
	// MaxRuns (reuse) recycles a sandbox after this many runs. Default 100.
	MaxRuns int `json:"max_runs"`
	// MaxAge (reuse) recycles a sandbox after this long. Default 10m.
	MaxAge cronium.Duration `json:"max_age"`
	// PauseIdle freezes idle sandboxes so they hold no CPU (a resume costs ~10 ms). Default false.
	PauseIdle bool `json:"pause_idle"`
}

func defaultServerConfig() serverConfig {
	dir := "/var/lib/cronium"
	if os.Geteuid() != 0 {
		if d, err := os.UserConfigDir(); err == nil {
			dir = filepath.Join(d, "cronium")
		}
	}
	return serverConfig{
		Listen: "127.0.0.1:8080", DataDir: dir, Capacity: 2 * runtime.NumCPU(), Engine: "docker", NodeLease: cronium.Duration(15 * time.Second),
		ShutdownGrace: cronium.Duration(30 * time.Second), LogLimit: 1 << 20, RequestTimeout: cronium.Duration(time.Minute), Tiers: cronium.DefaultTiers(),
		RetentionInterval: cronium.Duration(time.Hour),
	}
}

// yamlToJSON, normalizeYAML and yamlDocs are package yamljson's, by their old names.
var (
	yamlToJSON    = yamljson.ToJSON
	normalizeYAML = yamljson.Normalize
	yamlDocs      = yamljson.Docs
)

// strictJSON decodes b (a file, as JSON) into v strictly (see package
// strictjson): an error names the setting by its path, after the file.
func strictJSON(b []byte, v any, where string) error {
	var e *strictjson.Error
	if err := strictjson.Decode(b, v); errors.As(err, &e) {
		if e.Field == "" {
			return cronium.Invalid(where, "", e.Problem)
		}
		return fmt.Errorf("%s: %w", where, cronium.Invalid(e.Field, "", e.Problem))
	} else if err != nil {
		return err
	}
	return nil
}

// loadServerConfig reads the file (if any), then the environment.
func loadServerConfig(path string) (serverConfig, error) {
	c := defaultServerConfig()
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return c, cronium.Invalid("--config", path, "cannot be read: "+err.Error())
		}
		j, err := yamlToJSON(data)
		if err != nil {
			return c, cronium.Invalid("--config", path, "is not valid YAML: "+err.Error())
		}
		var file serverConfig
		if err := strictJSON(j, &file, path); err != nil {
			return c, err
		}
		if err := mergeDefaultTiers(j, &file, path); err != nil {
			return c, err
		}
		c.merge(file)
	}
	env := map[string]func(string) error{
		"CRONIUM_LISTEN":   func(v string) error { c.Listen = v; return nil },
		"CRONIUM_DATA_DIR": func(v string) error { c.DataDir = v; return nil },
		"CRONIUM_STORE":    func(v string) error { c.Store = v; return nil },
		"CRONIUM_ENGINE":   func(v string) error { c.Engine = v; return nil },
		"CRONIUM_NODE_ID":  func(v string) error { c.NodeID = v; return nil },
		"CRONIUM_METRICS_TOKEN": func(v string) error {
			c.Metrics.Token, c.Metrics.TokenFile = v, ""
			return nil
		},
		"CRONIUM_CAPACITY": func(v string) error {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				return cronium.Invalid("CRONIUM_CAPACITY", v, "is not a positive whole number")
			}
			c.Capacity = n
			return nil
		},
		"CRONIUM_NODE_LEASE": func(v string) error {
			d, err := cronium.ParseDuration("CRONIUM_NODE_LEASE", v)
			c.NodeLease = cronium.Duration(d)
			return err
		},
		"CRONIUM_SHUTDOWN_GRACE": func(v string) error {
			d, err := cronium.ParseDuration("CRONIUM_SHUTDOWN_GRACE", v)
			c.ShutdownGrace = cronium.Duration(d)
			return err
		},
		"CRONIUM_REQUEST_TIMEOUT": func(v string) error {
			d, err := cronium.ParseDuration("CRONIUM_REQUEST_TIMEOUT", v)
			c.RequestTimeout = cronium.Duration(d)
			return err
		},
		"CRONIUM_RETENTION_INTERVAL": func(v string) error {
			d, err := cronium.ParseDuration("CRONIUM_RETENTION_INTERVAL", v)
			c.RetentionInterval = cronium.Duration(d)
			return err
		},
		"CRONIUM_LOG_LIMIT": func(v string) error {
			s, err := cronium.ParseSize("CRONIUM_LOG_LIMIT", v)
			c.LogLimit = s
			return err
		},
	}
	for k, set := range env {
		if v, ok := os.LookupEnv(k); ok {
			if err := set(v); err != nil {
				return c, err
			}
		}
	}
	return c, c.validate()
}

// mergeDefaultTiers decodes each default tier the file names (free, pro,
// enterprise) onto that default, so that "free: {memory: 1Gi}" changes the
// memory and keeps the rest.
func mergeDefaultTiers(j []byte, file *serverConfig, path string) error {
	var raw struct {
		Tiers map[string]json.RawMessage `json:"tiers"`
	}
	if err := json.Unmarshal(j, &raw); err != nil {
		return nil // strictJSON has accepted the file: not reached
	}
	for name, b := range raw.Tiers {
		t, ok := cronium.DefaultTiers()[name]
		if !ok {
			continue
		}
		var probe any
		if json.Unmarshal(b, &probe) != nil || probe == nil {
			continue // null: left to validate
		}
		if err := strictJSON(b, &t, path+": tiers."+name); err != nil {
			return err
		}
		file.Tiers[name] = t
	}
	return nil
}

func (c *serverConfig) merge(f serverConfig) {
	if f.Listen != "" {
		c.Listen = f.Listen
	}
	if f.DataDir != "" {
		c.DataDir = f.DataDir
	}
	if f.Store != "" {
		c.Store = f.Store
	}
	if f.NodeID != "" {
		c.NodeID = f.NodeID
	}
	if f.Capacity != 0 {
		c.Capacity = f.Capacity
	}
	if f.NodeLease != 0 {
		c.NodeLease = f.NodeLease
	}
	if f.RequestTimeout != 0 {
		c.RequestTimeout = f.RequestTimeout
	}
	if f.ShutdownGrace != 0 {
		c.ShutdownGrace = f.ShutdownGrace
	}
	if f.LogLimit != 0 {
		c.LogLimit = f.LogLimit
	}
	if f.RetentionInterval != 0 {
		c.RetentionInterval = f.RetentionInterval
	}
	if !reflect.DeepEqual(f.Notifications, notificationsConfig{}) {
		c.Notifications = f.Notifications
	}
	if f.DockerHost != "" {
		c.DockerHost = f.DockerHost
	}
	if f.Engine != "" {
		c.Engine = f.Engine
	}
	if f.EngineOptions != nil {
		c.EngineOptions = f.EngineOptions
	}
	if f.MasterKeyFile != "" {
		c.MasterKeyFile = f.MasterKeyFile
	}
	if !reflect.DeepEqual(f.StrategyRules, cronium.StrategyRules{}) {
		c.StrategyRules = f.StrategyRules
	}
	if f.Pools != (poolsConfig{}) {
		c.Pools = f.Pools
	}
	if !reflect.DeepEqual(f.Network, networkConfig{}) {
		c.Network = f.Network
	}
	if !reflect.DeepEqual(f.Images, imagesConfig{}) {
		c.Images = f.Images
	}
	if f.Metrics != (metricsConfig{}) {
		c.Metrics = f.Metrics
	}
	if f.Dashboard != (dashboardConfig{}) {
		c.Dashboard = f.Dashboard
	}
	if f.Prices != (cronium.Prices{}) {
		c.Prices = f.Prices
	}
	for name, t := range f.Tiers {
		c.Tiers[name] = t
	}
}

func (c *serverConfig) validate() error {
	if c.Capacity < 1 {
		return cronium.Invalid("capacity", strconv.Itoa(c.Capacity), "must be at least 1")
	}
	if _, err := c.Notifications.channels(); err != nil {
		return err
	}
	if c.NodeID != "" && !nodeIDPattern.MatchString(c.NodeID) {
		return cronium.Invalid("node_id", c.NodeID, "is not a node ID: use 1-63 letters, digits, '.', '_' and '-', starting with a letter or digit")
	}
	if c.RetentionInterval.D() < time.Second {
		return cronium.Invalid("retention_interval", c.RetentionInterval.D().String(), "must be at least 1s, like 1h")
	}
	if d := c.NodeLease.D(); d < time.Second || d > 10*time.Minute {
		return cronium.Invalid("node_lease", d.String(), "is out of range: want 1s to 10m, like 15s")
	}
	if c.LogLimit < 1024 {
		return cronium.Invalid("log_limit", c.LogLimit.String(), "is too small: want at least 1Ki")
	}
	if d := c.RequestTimeout.D(); d < time.Second || d > time.Hour {
		return cronium.Invalid("request_timeout", d.String(), "is out of range: want 1s to 1h, like 1m")
	}
	if c.DataDir == "" {
		return cronium.Invalid("data_dir", "", "is empty")
	}
	if _, err := parseStore("store", c.Store, c.DataDir); err != nil {
		return err
	}
	if err := cronium.CheckEngine("engine", c.Engine, c.EngineOptions); err != nil {
		return err
	}
	if err := c.Network.validate(); err != nil {
		return err
	}
	if err := c.Prices.Validate("prices"); err != nil {
		return err
	}
	if t := c.Dashboard.SessionTTL.D(); t != 0 && (t < 5*time.Minute || t > 30*24*time.Hour) {
		return cronium.Invalid("dashboard.session_ttl", c.Dashboard.SessionTTL.D().String(), "is out of range: want 5m to 720h (30 days)")
	}
	if p := c.Dashboard.PublicURL; p != "" {
		if u, err := url.Parse(p); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") {
			return cronium.Invalid("dashboard.public_url", p, "is not an address like https://cron.example.com (scheme and host, no path)")
		}
	}
	if c.Metrics.Token != "" && c.Metrics.TokenFile != "" {
		return cronium.Invalid("metrics.token", "(hidden)", "is set with metrics.token_file: keep one of them")
	}
	if _, err := c.Metrics.token(); err != nil {
		return err
	}
	if t := c.Metrics.Token; t != "" && len(t) < 16 {
		return cronium.Invalid("metrics.token", "(hidden)", "is too short: use at least 16 characters, e.g. the output of `openssl rand -hex 16`")
	}
	if err := c.Images.Indexes.Validate("images.indexes"); err != nil {
		return err
	}
	if err := c.Images.Config.Validate(); err != nil {
		return err
	}
	if c.Images.UnusedFor == 0 {
		c.Images.UnusedFor = cronium.Duration(7 * 24 * time.Hour)
	}
	if c.Images.UnusedFor.D() < time.Minute {
		return cronium.Invalid("images.unused_for", c.Images.UnusedFor.D().String(), "is too short: want at least 1m, like 168h")
	}
	if c.Images.DiskBudget == 0 {
		c.Images.DiskBudget = 20 << 30
	}
	if c.Images.DiskBudget < 0 {
		return cronium.Invalid("images.disk_budget", c.Images.DiskBudget.String(), "is negative: give a size like 20Gi")
	}
	c.StrategyRules = c.StrategyRules.WithDefaults()
	if err := c.StrategyRules.Validate(); err != nil {
		return err
	}
	if c.Pools.User == (poolSize{}) {
		// A dedicated sandbox: at most one per user and spec, none while idle for 10 minutes.
		c.Pools.User = poolSize{Min: -1, Max: 1, IdleTimeout: cronium.Duration(10 * time.Minute), MaxRuns: 10000, MaxAge: cronium.Duration(24 * time.Hour)}
	}
	if c.Pools.RetireAfter == 0 {
		c.Pools.RetireAfter = cronium.Duration(time.Hour)
	}
	if c.Pools.RetireAfter.D() < time.Minute {
		return cronium.Invalid("pools.retire_after", c.Pools.RetireAfter.D().String(), "is too short: want at least 1m, like 1h")
	}
	if c.Pools.UserWorkspace == 0 {
		c.Pools.UserWorkspace = 1 << 30
	}
	for name, p := range map[string]*poolSize{"pools.prewarmed": &c.Pools.Prewarmed, "pools.reuse": &c.Pools.Reuse, "pools.user": &c.Pools.User} {
		// The pool package's defaults: one rule, shown here as they apply.
		if p.Min == 0 {
			p.Min = pool.DefaultMin
		}
		if p.Max == 0 {
			p.Max = min(pool.DefaultMax, c.Capacity)
		}
		if p.Min > p.Max && p.Min == pool.DefaultMin {
			p.Min = p.Max
		}
		if p.IdleTimeout == 0 {
			p.IdleTimeout = cronium.Duration(pool.DefaultIdleTimeout)
		}
		if p.MaxRuns == 0 {
			p.MaxRuns = pool.DefaultMaxRuns
		}
		if p.MaxAge == 0 {
			p.MaxAge = cronium.Duration(pool.DefaultMaxAge)
		}
		if p.Min < -1 || p.Max < 1 || p.Min > p.Max {
			return cronium.Invalid(name+".min", strconv.Itoa(p.Min), fmt.Sprintf("must be between 0 and max (%d)", p.Max))
		}
		if p.Max > c.Capacity {
			return cronium.Invalid(name+".max", strconv.Itoa(p.Max), fmt.Sprintf("is above the node's capacity (%d)", c.Capacity))
		}
	}
	if _, ok := c.Tiers["free"]; !ok {
		return cronium.Invalid("tiers", "", "must keep a free tier: it applies to users whose tier is unknown")
	}
	for _, name := range slices.Sorted(maps.Keys(c.Tiers)) { // the same error first every time
		t := c.Tiers[name]
		t.Name = name
		c.Tiers[name] = t
		field := "tiers." + name + "."
		// A field left out of a new tier is zero, which the checks below
		// would call a wrong value (a default tier keeps its own).
		missing := "is missing or 0: a new tier needs each of cpu_guaranteed, cpu_burst, memory, concurrency and max_timeout"
		for _, f := range []struct {
			name string
			zero bool
		}{{"cpu_guaranteed", t.CPUGuaranteed == 0}, {"cpu_burst", t.CPUBurst == 0}, {"memory", t.Memory == 0}, {"concurrency", t.Concurrency == 0}, {"max_timeout", t.MaxTimeout == 0}} {
			if f.zero {
				return cronium.Invalid(field+f.name, "", missing)
			}
		}
		switch {
		case t.Concurrency < 1:
			return cronium.Invalid(field+"concurrency", strconv.Itoa(t.Concurrency), "must be at least 1")
		case t.CPUBurst < 0:
			return cronium.Invalid(field+"cpu_burst", fmt.Sprint(t.CPUBurst), "must be more than 0, like 0.5")
		case t.CPUGuaranteed < 0 || t.CPUGuaranteed > t.CPUBurst:
			return cronium.Invalid(field+"cpu_guaranteed", fmt.Sprint(t.CPUGuaranteed), fmt.Sprintf("must be more than 0 and at most cpu_burst (%v)", t.CPUBurst))
		case t.Memory < cronium.MinMemory:
			return cronium.Invalid(field+"memory", t.Memory.String(), "must be at least "+cronium.MinMemory.String())
		case t.MaxTimeout.D() < time.Second:
			return cronium.Invalid(field+"max_timeout", t.MaxTimeout.D().String(), "must be at least 1s")
		}
		switch {
		case t.RetentionDays < 0 || t.RetentionDays > cronium.MaxRetentionDays: // 0: the default
			return cronium.Invalid(field+"retention_days", strconv.Itoa(t.RetentionDays), fmt.Sprintf("must be %d-%d days (0 or left out: the default)", cronium.MinRetentionDays, cronium.MaxRetentionDays))
		case t.RetentionRuns < 0 || t.RetentionRuns > cronium.MaxRetentionRuns:
			return cronium.Invalid(field+"retention_runs", strconv.Itoa(t.RetentionRuns), fmt.Sprintf("must be %d-%d runs per event (0 or left out: the default)", cronium.MinRetentionRuns, cronium.MaxRetentionRuns))
		}
		for _, m := range t.NetworkModes {
			if _, err := cronium.ParseNetworkMode(field+"network_modes", string(m)); err != nil || m == "" {
				return cronium.Invalid(field+"network_modes", string(m), "is not a network mode: want none, egress, internal or full")
			}
		}
		for _, io := range []struct {
			name string
			v    cronium.Size
		}{{"io_read", t.IORead}, {"io_write", t.IOWrite}} {
			if io.v < 0 || (io.v > 0 && io.v < cronium.MinIOBPS) {
				return cronium.Invalid(field+io.name, io.v.String(), "is too small: want at least "+cronium.MinIOBPS.String()+" per second, or 0 for no cap")
			}
		}
		if t.MaxKeepFailed < 0 || t.MaxKeepFailed.D() > 7*24*time.Hour {
			return cronium.Invalid(field+"max_keep_failed", t.MaxKeepFailed.D().String(), "is out of range: want 0 (the default) to 168h, like 30m")
		}
		if err := t.Budget.Validate(field + "budget"); err != nil {
			return err
		}
		if t.Budget.Cost > 0 && c.Prices.Zero() {
			return cronium.Invalid(field+"budget.cost", fmt.Sprint(t.Budget.Cost), "needs a price table: set prices (cpu_second, gib_second, network_gib, execution), or bound cpu_seconds instead")
		}
	}
	return nil
}

// keyring loads the secrets' master keys: master_key_file, else
// CRONIUM_MASTER_KEYS, else DataDir/master.keys, generated (0600) on first use.
func (c serverConfig) keyring(log *slog.Logger) (*secrets.Keyring, error) {
	if c.MasterKeyFile != "" {
		return secrets.LoadKeyring(c.MasterKeyFile)
	}
	if os.Getenv("CRONIUM_MASTER_KEYS") != "" {
		return secrets.LoadKeyring("")
	}
	path := filepath.Join(c.DataDir, "master.keys")
	if _, err := os.Lstat(path); os.IsNotExist(err) {
		line, err := secrets.GenerateKey("k" + time.Now().UTC().Format("20060102"))
		if err != nil {
			return nil, err
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, fmt.Errorf("create master key file: %w", err)
		}
		_, err = f.WriteString(line + "\n")
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return nil, fmt.Errorf("write master key file: %w", err)
		}
		if log != nil {
			log.Warn("generated a master key for secrets; back it up: without it stored secrets cannot be decrypted", "path", path)
		}
	}
	return secrets.LoadKeyring(path)
}
