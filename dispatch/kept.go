package dispatch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	cronium "github.com/cronium/executor"
	"github.com/cronium/executor/store"
)

// keptBox is a failed run's sandbox this node keeps for debugging.
type keptBox struct {
	userID  int64
	eventID int64
	until   time.Time
	timer   *time.Timer // discards it at until
}

// keep tracks a kept sandbox until its time is up, then discards it. A
// sandbox whose time is up already is discarded at once. An event keeps
// its latest failed run's sandbox: an earlier one of the event is
// discarded (it would hold one more of its owner's slots).
func (d *Dispatcher) keep(id string, userID, eventID int64, until time.Time) {
	d.mu.Lock()
	if old := d.kept[id]; old != nil {
		old.timer.Stop()
	}
	var replaced []string
	for other, k := range d.kept {
		if other != id && eventID != 0 && k.eventID == eventID {
			replaced = append(replaced, other)
		}
	}
	k := &keptBox{userID: userID, eventID: eventID, until: until}
	k.timer = time.AfterFunc(max(0, time.Until(until)), func() { d.discard(id, "its time was up") })
	d.kept[id] = k
	d.mu.Unlock()
	for _, other := range replaced {
		d.work.Go(func() { d.discard(other, "a later failed run of its event is kept instead") })
	}
}

// discard removes a kept sandbox and records that it is gone.
func (d *Dispatcher) discard(id, why string) error {
	d.mu.Lock()
	k := d.kept[id]
	delete(d.kept, id)
	d.mu.Unlock()
	if k != nil {
		k.timer.Stop()
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var err error
	if dbg, ok := d.cfg.Engine.(cronium.Debugger); ok {
		err = dbg.Discard(ctx, id)
	}
	if err != nil {
		d.log.Warn("remove a kept sandbox; its deadline removes it", "execution_id", id, "err", err)
	}
	if uerr := d.cfg.Store.Unkeep(ctx, id); uerr != nil {
		d.log.Warn("record a kept sandbox gone", "execution_id", id, "err", uerr)
		err = errors.Join(err, uerr)
	}
	d.log.Info("kept sandbox removed", "execution_id", id, "why", why)
	d.Wake() // its slot is free
	return err
}

// reloadKept takes back the sandboxes this node kept before it restarted.
func (d *Dispatcher) reloadKept(ctx context.Context) error {
	kept, err := d.cfg.Store.KeptOn(ctx, d.cfg.Node)
	if err != nil {
		return fmt.Errorf("read the kept sandboxes: %w", err)
	}
	for id, k := range kept {
		d.keep(id, k.UserID, 0, k.Until)
	}
	return nil
}

// stopKept stops the kept sandboxes' timers (they stay; the next start
// takes them back, or their deadlines remove them).
func (d *Dispatcher) stopKept() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, k := range d.kept {
		k.timer.Stop()
	}
	d.kept = map[string]*keptBox{}
}

// checkKept returns the execution whose kept sandbox user may debug on this
// node, or an error that says why not: another user's execution is not
// found, as everywhere in the API.
func (d *Dispatcher) checkKept(ctx context.Context, userID int64, id string) (cronium.Execution, error) {
	x, err := d.cfg.Store.Execution(ctx, userID, id)
	if err != nil {
		return x, err
	}
	if x.Result == nil || x.Result.Kept == nil {
		why := "its event has no debug.keep_failed"
		switch {
		case x.Status != cronium.StatusFinished:
			why = "it has not ended"
		case !cronium.Keeps(x.Outcome):
			why = fmt.Sprintf("it ended %s: only failed and timed-out runs are kept", x.Outcome)
		case x.Result != nil && len(x.Result.Enforcement) > 0:
			for _, e := range x.Result.Enforcement {
				if len(e) > 12 && e[:12] == "keep_failed:" {
					why = e
				}
			}
		}
		return x, fmt.Errorf("%w: execution %s was not kept (%s)", cronium.ErrConflict, id, why)
	}
	if n := x.Result.Kept.Node; n != "" && n != d.cfg.Node {
		return x, fmt.Errorf("%w: execution %s is kept on node %s: open its debug session on that node's server", cronium.ErrConflict, id, n)
	}
	d.mu.Lock()
	k := d.kept[id]
	d.mu.Unlock()
	if k == nil || time.Now().After(k.until) {
		return x, fmt.Errorf("%w: execution %s was kept until %s and is gone", cronium.ErrConflict, id, x.Result.Kept.Until.UTC().Format(time.RFC3339))
	}
	return x, nil
}

// CheckDebug is checkKept, and the owner not past their budget (a shell
// is compute too).
func (d *Dispatcher) CheckDebug(ctx context.Context, userID int64, id string) (cronium.Execution, error) {
	x, err := d.checkKept(ctx, userID, id)
	if err != nil {
		return x, err
	}
	over, err := store.OverBudget(ctx, d.cfg.Store, x.UserID, d.tierOf(ctx, x).Budget, d.cfg.Prices.Unit(), time.Now())
	if err != nil {
		return x, err
	}
	if over != "" {
		return x, fmt.Errorf("%w: no debug shell: %s", cronium.ErrForbidden, over)
	}
	return x, nil
}

// Debug opens a shell in the kept sandbox of userID's execution id on t,
// and returns its exit code. The caller records the session.
func (d *Dispatcher) Debug(ctx context.Context, userID int64, id string, t cronium.Terminal) (int, error) {
	if _, err := d.CheckDebug(ctx, userID, id); err != nil {
		return -1, err
	}
	dbg, ok := d.cfg.Engine.(cronium.Debugger)
	if !ok || !d.cfg.Engine.Capabilities().Debug {
		return -1, fmt.Errorf("%w: the %s engine opens no debug shells", cronium.ErrUnsupported, d.cfg.Engine.Capabilities().Name)
	}
	x, _ := d.cfg.Store.Execution(ctx, userID, id)
	tier := d.tierOf(ctx, x) // a shell lasts no longer than the longest run the tier allows
	d.mu.Lock()
	until := d.kept[id].until
	d.mu.Unlock()
	if limit := time.Now().Add(tier.MaxTimeout.D()); tier.MaxTimeout > 0 && limit.Before(until) {
		until = limit
	}
	ctx, cancel := context.WithDeadline(ctx, until) // the shell ends with the sandbox's time, or the tier's longest run
	defer cancel()
	code, err := dbg.Debug(ctx, id, t)
	if errors.Is(err, context.DeadlineExceeded) {
		err = fmt.Errorf("the session reached its end at %s (the sandbox's kept time, or the tier's longest run)", until.UTC().Format(time.RFC3339))
	}
	return code, err
}

// Release removes userID's kept sandbox of execution id before its time.
func (d *Dispatcher) Release(ctx context.Context, userID int64, id string) error {
	if _, err := d.checkKept(ctx, userID, id); err != nil {
		return err
	}
	return d.discard(id, "released by its owner")
}

// KeptCount is how many sandboxes this node keeps for debugging.
func (d *Dispatcher) KeptCount() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.kept)
}

// Inspect is the engine's own view of userID's execution id's sandbox
// while it exists (running, or kept), where the engine can give it.
func (d *Dispatcher) Inspect(ctx context.Context, userID int64, id string) (json.RawMessage, error) {
	if _, err := d.cfg.Store.Execution(ctx, userID, id); err != nil {
		return nil, err
	}
	in, ok := d.cfg.Engine.(interface {
		Inspect(ctx context.Context, id string) (json.RawMessage, error)
	})
	if !ok {
		return nil, fmt.Errorf("%w: the %s engine shows no view of its sandboxes", cronium.ErrUnsupported, d.cfg.Engine.Capabilities().Name)
	}
	return in.Inspect(ctx, id)
}
