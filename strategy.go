package cronium

import "fmt"

// Strategies: how an execution gets its sandbox.
const (
	StrategyAuto      = "auto"      // let the hybrid rule decide (default)
	StrategyCold      = "cold"      // create, run once, destroy
	StrategyPrewarmed = "prewarmed" // a sandbox started ahead of need, used once
	StrategyReuse     = "reuse"     // a sandbox of the same user and spec, reset between runs
	StrategyUser      = "user"      // the user's dedicated sandbox, with a persistent workspace
)

// StrategyRules is the hybrid rule from the brainstorm, as data: frequent
// events get warm sandboxes, events that need isolation are never reused,
// and everything else gets the default.
type StrategyRules struct {
	// WarmAbovePerMinute: events that fire more often than this get a warm strategy. Default 1.
	WarmAbovePerMinute float64 `json:"warm_above_per_minute"`
	// Frequent is the strategy of frequent events. Default reuse.
	Frequent string `json:"frequent"`
	// Isolated is the strategy of frequent events that require isolation or
	// are untrusted: never reuse. Default prewarmed.
	Isolated string `json:"isolated"`
	// Tiers maps a tier to the strategy all its users' events get (unless they
	// require isolation). Default: enterprise -> user.
	Tiers map[string]string `json:"tiers"`
	// Default is everyone else's strategy. Default cold: no idle sandbox is
	// kept for events that rarely run.
	Default string `json:"default"`
}

// WithDefaults fills zero fields.
func (r StrategyRules) WithDefaults() StrategyRules {
	if r.WarmAbovePerMinute == 0 {
		r.WarmAbovePerMinute = 1
	}
	if r.Frequent == "" {
		r.Frequent = StrategyReuse
	}
	if r.Isolated == "" {
		r.Isolated = StrategyPrewarmed
	}
	if r.Default == "" {
		r.Default = StrategyCold
	}
	if r.Tiers == nil {
		r.Tiers = map[string]string{"enterprise": StrategyUser}
	}
	return r
}

// Validate checks the rule's strategies; isolation must never mean reuse.
func (r StrategyRules) Validate() error {
	for field, s := range map[string]string{"strategy_rules.frequent": r.Frequent, "strategy_rules.isolated": r.Isolated, "strategy_rules.default": r.Default} {
		if s != StrategyCold && s != StrategyPrewarmed && s != StrategyReuse {
			return Invalid(field, s, "is not a strategy: want cold, prewarmed or reuse")
		}
	}
	for tier, st := range r.Tiers {
		if st != StrategyCold && st != StrategyPrewarmed && st != StrategyReuse && st != StrategyUser {
			return Invalid("strategy_rules.tiers."+tier, st, "is not a strategy: want cold, prewarmed, reuse or user")
		}
	}
	if r.Isolated == StrategyReuse || r.Isolated == StrategyUser {
		return Invalid("strategy_rules.isolated", r.Isolated, "would reuse sandboxes for events that require isolation: want cold or prewarmed")
	}
	return nil
}

// Choose picks the strategy of an execution of ev, whose owner is on tier
// and which fires perMinute times a minute (0 for on-demand events), and
// says why.
func (r StrategyRules) Choose(ev Event, tier string, perMinute float64) (strategy, reason string) {
	r = r.WithDefaults()
	isolated := ev.RequiresIsolation || ev.Untrusted
	tierStrategy := r.Tiers[tier]
	switch {
	case ev.Strategy == StrategyUser && tierStrategy != StrategyUser:
		return r.Default, "the event asks for a user sandbox, which the " + tier + " tier does not have: the default instead"
	case ev.Strategy != "" && ev.Strategy != StrategyAuto:
		if isolated && (ev.Strategy == StrategyReuse || ev.Strategy == StrategyUser) {
			return StrategyPrewarmed, "the event asks for a reused sandbox but requires isolation: prewarmed instead (never reused)"
		}
		return ev.Strategy, "set by the event"
	case isolated && perMinute > r.WarmAbovePerMinute:
		return r.Isolated, fmt.Sprintf("fires %s a minute (above %g) and requires isolation: warm but never reused", rate(perMinute), r.WarmAbovePerMinute)
	case isolated:
		s := r.Default
		if s == StrategyReuse || s == StrategyUser {
			s = StrategyPrewarmed
		}
		return s, "requires isolation: a fresh sandbox per execution"
	case tierStrategy == StrategyUser:
		return StrategyUser, "the " + tier + " tier: the user's dedicated sandbox, with a persistent workspace"
	case tierStrategy != "":
		return tierStrategy, "the strategy of the " + tier + " tier"
	case perMinute > r.WarmAbovePerMinute:
		return r.Frequent, fmt.Sprintf("fires %s a minute (above %g): warm sandboxes reused for this user and spec", rate(perMinute), r.WarmAbovePerMinute)
	}
	return r.Default, "the default for events that fire at most " + fmt.Sprintf("%g", r.WarmAbovePerMinute) + " times a minute"
}

func rate(perMinute float64) string {
	if perMinute == float64(int64(perMinute)) {
		return fmt.Sprintf("%d times", int64(perMinute))
	}
	return fmt.Sprintf("%.2f times", perMinute)
}
