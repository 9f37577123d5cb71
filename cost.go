package cronium

import (
	"fmt"
	"math"
	"strings"
	"time"
)

// Prices is the operator's price table: what a CPU-second, a GiB-second of
// reserved memory (the memory limit, for as long as the script ran), a GiB
// of network traffic and an execution cost, in Currency. Every execution
// that ran records its cost (Usage.CostMicros) when it ends.
type Prices struct {
	// Currency names the unit, like "EUR" or "credits". Default "credits".
	Currency string `json:"currency,omitempty"`
	// CPUSecond is the price of one second of CPU time (user plus system).
	CPUSecond float64 `json:"cpu_second,omitempty"`
	// GiBSecond is the price of one GiB of reserved memory for one second.
	GiBSecond float64 `json:"gib_second,omitempty"`
	// NetworkGiB is the price of one GiB of network traffic, in and out.
	NetworkGiB float64 `json:"network_gib,omitempty"`
	// Execution is the price of each execution that ran.
	Execution float64 `json:"execution,omitempty"`
}

// MaxPrice bounds each price, so that costs fit their integer micro-units.
const MaxPrice = 1e6

// Validate checks every price, naming the field (prices.cpu_second, ...) in errors.
func (p Prices) Validate(field string) error {
	for _, f := range []struct {
		name string
		v    float64
	}{{"cpu_second", p.CPUSecond}, {"gib_second", p.GiBSecond}, {"network_gib", p.NetworkGiB}, {"execution", p.Execution}} {
		if math.IsNaN(f.v) || f.v < 0 || f.v > MaxPrice {
			return Invalid(field+"."+f.name, fmt.Sprint(f.v), fmt.Sprintf("is not a price: want a number from 0 to %g, like 0.00002", float64(MaxPrice)))
		}
	}
	if c := p.Currency; len(c) > 16 || strings.ContainsFunc(c, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return Invalid(field+".currency", c, "is not a currency name: want up to 16 printable characters without spaces, like EUR")
	}
	return nil
}

// Zero reports whether no price is set (executions then cost nothing).
func (p Prices) Zero() bool {
	return p.CPUSecond == 0 && p.GiBSecond == 0 && p.NetworkGiB == 0 && p.Execution == 0
}

// Unit is the currency's name, "credits" when unset.
func (p Prices) Unit() string {
	if p.Currency == "" {
		return "credits"
	}
	return p.Currency
}

// Metered is an execution's usage in the integer units usage reports sum
// (so that their totals are exact): CPU in microseconds, reserved memory
// in MiB-milliseconds, bytes.
type Metered struct {
	CPUMicros     int64 `json:"cpu_us"`
	ReservedMiBMs int64 `json:"reserved_mib_ms"`
	PeakMemory    int64 `json:"peak_memory_bytes"`
	IORead        int64 `json:"io_read_bytes"`
	IOWrite       int64 `json:"io_write_bytes"`
	NetworkBytes  int64 `json:"network_bytes"`
}

// Meter returns res's usage in integer units.
func Meter(res Result) Metered {
	m := Metered{CPUMicros: int64(math.Round(max(0, res.Usage.CPUSeconds) * 1e6)), PeakMemory: max(0, res.Usage.PeakMemory),
		IORead: max(0, res.Usage.IORead), IOWrite: max(0, res.Usage.IOWrite)}
	if res.Limits.Memory > 0 && res.Phases.Run > 0 {
		m.ReservedMiBMs = int64(res.Limits.Memory) / 1024 * res.Phases.Run.Milliseconds() / 1024
	}
	if n := res.Usage.Network; n != nil {
		m.NetworkBytes = max(0, n.BytesIn) + max(0, n.BytesOut)
	}
	return m
}

// Cost is what an execution with usage m costs, in millionths of the
// currency, rounded once here: reports only ever add these up.
// Executions that never ran (engine errors) are not charged: pass ran false.
func (p Prices) Cost(m Metered, ran bool) int64 {
	if !ran || p.Zero() {
		return 0
	}
	const gib = 1 << 30
	c := float64(m.CPUMicros)*p.CPUSecond + // µs × price/s = micro-units
		float64(m.ReservedMiBMs)/1024*p.GiBSecond*1000 + // MiB·ms → GiB·s ×1e6
		float64(m.NetworkBytes)/gib*p.NetworkGiB*1e6 +
		p.Execution*1e6
	return int64(math.Round(c))
}

// FormatMicros formats micro-units as a decimal amount ("0.001234").
func FormatMicros(micros int64) string {
	sign := ""
	if micros < 0 {
		sign, micros = "-", -micros
	}
	return fmt.Sprintf("%s%d.%06d", sign, micros/1e6, micros%1e6)
}

// Budget bounds what a tier's users may use in a calendar month (UTC).
type Budget struct {
	// CPUSeconds is the most CPU time a user's executions may use in a month; 0: no bound.
	CPUSeconds float64 `json:"cpu_seconds,omitempty"`
	// Cost is the most a user's executions may cost in a month, in the
	// price table's currency; 0: no bound.
	Cost float64 `json:"cost,omitempty"`
	// OnExceed is what happens to a user past the budget: "queue" (their
	// executions wait, saying why, until the month ends or the budget is
	// raised) or "refuse" (new triggers are refused, and queued executions
	// fail with the reason). Default queue.
	OnExceed string `json:"on_exceed,omitempty"`
}

// Budget actions.
const (
	BudgetQueue  = "queue"
	BudgetRefuse = "refuse"
)

// Set reports whether the budget bounds anything.
func (b Budget) Set() bool { return b.CPUSeconds > 0 || b.Cost > 0 }

// Validate checks the budget, naming field in errors.
func (b Budget) Validate(field string) error {
	if math.IsNaN(b.CPUSeconds) || b.CPUSeconds < 0 {
		return Invalid(field+".cpu_seconds", fmt.Sprint(b.CPUSeconds), "is negative: want 0 (no bound) or more CPU-seconds a month, like 36000")
	}
	if math.IsNaN(b.Cost) || b.Cost < 0 {
		return Invalid(field+".cost", fmt.Sprint(b.Cost), "is negative: want 0 (no bound) or the most a month may cost, like 25")
	}
	if b.Cost > 1e12 || b.CPUSeconds > 1e12 {
		return Invalid(field, "", "is too large: want at most 1e12")
	}
	switch b.OnExceed {
	case "", BudgetQueue, BudgetRefuse:
	default:
		return Invalid(field+".on_exceed", b.OnExceed, "is not queue or refuse")
	}
	return nil
}

// Exceeded says how a user's month so far passes the budget ("" when it
// does not), with when it resets.
func (b Budget) Exceeded(cpuMicros, costMicros int64, currency string, now time.Time) string {
	var what, used string
	switch {
	case b.CPUSeconds > 0 && float64(cpuMicros) >= b.CPUSeconds*1e6:
		what, used = fmt.Sprintf("%g CPU-seconds", b.CPUSeconds), fmt.Sprintf("%.4g", float64(cpuMicros)/1e6)
	case b.Cost > 0 && float64(costMicros) >= b.Cost*1e6:
		what, used = fmt.Sprintf("%g %s", b.Cost, currency), FormatMicros(costMicros)
	default:
		return ""
	}
	reset := MonthStart(now).AddDate(0, 1, 0)
	return fmt.Sprintf("the tier's monthly budget of %s is used up (%s used); it resets on %s UTC, or an operator can raise it or move the user to another tier",
		what, used, reset.Format("2006-01-02"))
}

// MonthStart is the first instant of t's calendar month, in UTC.
func MonthStart(t time.Time) time.Time {
	t = t.UTC()
	return time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
}
