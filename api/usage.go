package api

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"

	cronium "github.com/cronium/executor"
	"github.com/cronium/executor/store"
)

// UsageReport is GET /v1/usage's answer: usage and cost summed by day,
// event or user over whole UTC days.
type UsageReport struct {
	By string `json:"by"`
	// Since is the first day summed, Until the day after the last ("" : up to now).
	Since    string      `json:"since"`
	Until    string      `json:"until,omitempty"`
	Currency string      `json:"currency"`
	Items    []UsageItem `json:"items"`
	// Total sums the items.
	Total UsageItem `json:"total"`
}

// UsageItem is one row of a usage report: exact integer sums (cpu_us,
// reserved_mib_ms, bytes, cost_micros) and the same in readable units.
type UsageItem struct {
	store.UsageRow
	CPUSeconds       float64 `json:"cpu_seconds"`
	MemoryGiBSeconds float64 `json:"memory_gib_seconds"`
	// Cost is CostMicros as a decimal amount of the currency.
	Cost string `json:"cost"`
}

func usageItem(r store.UsageRow) UsageItem {
	return UsageItem{UsageRow: r, CPUSeconds: float64(r.CPUMicros) / 1e6, MemoryGiBSeconds: float64(r.ReservedMiBMs) / 1024 / 1000,
		Cost: cronium.FormatMicros(r.CostMicros)}
}

// ParseDay reads a report bound for field: a date (2026-12-01), a time
// (RFC 3339), or an age in days or hours back from now (30d, 12h).
func ParseDay(field, v string, now time.Time) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.DateOnly, v); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t.UTC(), nil
	}
	if n, err := strconv.Atoi(strings.TrimSuffix(v, "d")); err == nil && strings.HasSuffix(v, "d") && n >= 0 && n <= 36500 {
		return now.AddDate(0, 0, -n), nil
	}
	if d, err := time.ParseDuration(v); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, cronium.Invalid(field, v, "is not a day or an age: want a date like 2026-12-01, a time like 2026-12-01T00:00:00Z, or an age like 30d or 12h")
}

// usage reports usage and cost: a user's own; an admin's every user's,
// or one user's with ?user=NAME.
func (s *Server) usage(w http.ResponseWriter, r *http.Request, u *cronium.User) error {
	q := r.URL.Query()
	now := time.Now().UTC()
	f := store.UsageFilter{By: q.Get("by")}
	switch f.By {
	case store.ByDay, store.ByEvent, store.ByUser:
	case "":
		f.By = store.ByDay
	default:
		return cronium.Invalid("by", f.By, "is not day, event or user")
	}
	var err error
	if f.Since, err = ParseDay("since", q.Get("since"), now); err != nil {
		return err
	}
	if f.Since.IsZero() {
		f.Since = cronium.MonthStart(now) // this month
	}
	if f.Until, err = ParseDay("until", q.Get("until"), now); err != nil {
		return err
	}
	if !f.Until.IsZero() && store.Day(f.Until) <= store.Day(f.Since) {
		return cronium.Invalid("until", q.Get("until"), "is not after since: the report covers the days from since to the day before until")
	}
	if !u.Admin || q.Get("user") != "" {
		o, err := s.owner(r, u)
		if err != nil {
			return err
		}
		f.UserID = o.ID
	}
	rows, err := s.cfg.Store.Usage(r.Context(), f)
	if err != nil {
		return err
	}
	rep := UsageReport{By: f.By, Since: f.Since.Format(time.DateOnly), Currency: s.cfg.Prices.Unit(), Items: make([]UsageItem, 0, len(rows))}
	if !f.Until.IsZero() {
		rep.Until = f.Until.Format(time.DateOnly)
	}
	var total store.UsageRow
	for _, row := range rows {
		total.Add(row)
		rep.Items = append(rep.Items, usageItem(row))
	}
	rep.Total = usageItem(total)
	return writeJSON(w, http.StatusOK, rep)
}

// refuseOverBudget refuses new work of a user past a tier budget whose
// operator chose on_exceed: refuse.
func (s *Server) refuseOverBudget(ctx context.Context, owner cronium.User) error {
	t := s.tier(owner)
	if !t.Budget.Set() || t.Budget.OnExceed != cronium.BudgetRefuse {
		return nil
	}
	over, err := store.OverBudget(ctx, s.cfg.Store, owner.ID, t.Budget, s.cfg.Prices.Unit(), time.Now())
	if err != nil {
		return err
	}
	if over != "" {
		return &Error{Status: http.StatusForbidden, Code: "budget_exceeded", Message: "refused: " + over}
	}
	return nil
}
