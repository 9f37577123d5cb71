package dispatch

import (
	"context"
	"errors"
	"time"

	cronium "github.com/cronium/executor"
	"github.com/cronium/executor/store"
)

// This node among others on one store: it holds a lease by heartbeats,
// takes over what dead nodes left, and cancels its executions that any
// node was asked to cancel.

// register records this node on the store as a new instance.
func (d *Dispatcher) register(ctx context.Context) error {
	d.mu.Lock()
	n := d.self
	d.mu.Unlock()
	n.Instance = cronium.NewID()
	if err := d.cfg.Store.RegisterNode(ctx, n, d.cfg.Lease); err != nil {
		return err
	}
	d.mu.Lock()
	d.self.Instance = n.Instance
	d.mu.Unlock()
	return nil
}

// Self is this node as the store knows it.
func (d *Dispatcher) Self() store.Node {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := d.self
	n.Running = len(d.running)
	return n
}

// StoreDown says since when the store has not answered this node's
// heartbeats (zero: it answers).
func (d *Dispatcher) StoreDown() time.Time {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.storeDownSince
}

// leaseLoop renews the lease and reaps dead nodes until Stop.
func (d *Dispatcher) leaseLoop(stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(d.cfg.Lease / 3)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			d.heartbeat()
		}
	}
}

// heartbeat renews this node's lease (registering again if it was lost),
// then takes over what dead nodes left: claims they never started go back
// to the queue; their running executions are re-attached here when this
// node reaches their sandboxes, or recorded as lost when no live node does.
func (d *Dispatcher) heartbeat() {
	ctx, cancel := context.WithTimeout(context.Background(), d.cfg.Lease/3)
	defer cancel()
	self := d.Self()
	ok, err := d.cfg.Store.Heartbeat(ctx, self, d.cfg.Lease)
	d.mu.Lock()
	wasDown := d.storeDownSince
	switch {
	case err != nil && wasDown.IsZero():
		d.storeDownSince = time.Now()
	case err == nil:
		d.storeDownSince = time.Time{}
	}
	d.mu.Unlock()
	if err != nil {
		if wasDown.IsZero() {
			d.log.Error("the store does not answer: this node cannot renew its lease, and admits nothing until it answers", "err", err)
		}
		return
	}
	if !wasDown.IsZero() {
		d.log.Info("the store answers again", "down_for", time.Since(wasDown).Round(time.Millisecond))
		// Every node's lease ran out meanwhile: give the others a lease's
		// time to renew theirs before any of them is taken for dead.
		d.mu.Lock()
		d.reapAfter = time.Now().Add(d.cfg.Lease)
		d.mu.Unlock()
	}
	if !ok {
		// Other nodes found this one dead: its claims and running
		// executions are theirs now (what it still finishes is refused).
		d.log.Error("this node's lease ran out and other nodes took over its executions; registering again", "node", self.Name)
		if err := d.register(ctx); err != nil {
			d.log.Error("register this node again", "err", err)
			return
		}
		d.stopLost(ctx)
	}
	d.mu.Lock()
	wait := time.Until(d.reapAfter)
	d.mu.Unlock()
	if wait > 0 {
		return
	}
	reaped, err := d.cfg.Store.ReapNodes(ctx, self)
	if err != nil {
		d.log.Error("look for dead nodes", "err", err)
		return
	}
	for _, n := range reaped.Down {
		d.log.Warn("node is down: its lease ran out", "node", n.Name, "last_heartbeat", n.HeartbeatAt, "requeued", reaped.Requeued)
	}
	if reaped.Requeued > 0 {
		d.Wake()
	}
	caps := d.cfg.Engine.Capabilities()
	for _, a := range reaped.Adopted {
		x := a.Execution
		if a.Lost == "" && !caps.Reattach {
			a.Lost = "lost: node " + a.From.Name + " stopped, and the " + caps.Name + " engine cannot re-attach to a running execution"
		}
		if a.Lost != "" {
			now := time.Now()
			d.log.Warn("a dead node's execution is lost", "execution_id", x.ID, "node", a.From.Name, "why", a.Lost)
			d.mu.Lock()
			d.running[x.ID] = &running{userID: x.UserID, cancel: func(error) {}}
			d.mu.Unlock()
			d.work.Add(1)
			go func() { // owned by the dispatcher's work group: the lease loop goes on
				defer d.work.Done()
				d.finish(x, cronium.Result{ID: x.ID, Outcome: cronium.EngineError, ExitCode: -1, Error: a.Lost, StartedAt: now, EndedAt: now}, unknownRun)
			}()
			continue
		}
		d.log.Info("adopting a dead node's execution", "execution_id", x.ID, "event", x.Event, "from", a.From.Name)
		d.launch(x, &cronium.Reattach{Node: a.From.Name, StateDir: a.From.DataDir})
	}
}

// stopLost stops this node's runs that other nodes recorded as lost while
// it was taken for dead (a retry may run elsewhere: the original must not
// go on beside it). Runs another node adopted are left to their sandbox,
// which the adopter drives.
func (d *Dispatcher) stopLost(ctx context.Context) {
	d.mu.Lock()
	local := map[string]*running{}
	for id, r := range d.running {
		local[id] = r
	}
	d.mu.Unlock()
	for id, r := range local {
		x, err := d.cfg.Store.Execution(ctx, 0, id)
		if err != nil || x.Status != cronium.StatusFinished {
			continue
		}
		d.log.Warn("stopping a run another node recorded as lost while this node was taken for dead", "execution_id", id, "recorded", x.Error)
		r.cancel(errors.New("stopped: another node recorded this execution as lost while this node was taken for dead"))
	}
}

// pollCancels cancels this node's executions that a node was asked to
// cancel (Cancel on another node goes through the store).
func (d *Dispatcher) pollCancels() {
	d.mu.Lock()
	n, down := len(d.running), !d.storeDownSince.IsZero()
	d.mu.Unlock()
	if n == 0 || down {
		return // nothing to cancel, or no store to ask (said by the heartbeat)
	}
	ctx, cancel := context.WithTimeout(context.Background(), admitTimeout)
	defer cancel()
	reqs, err := d.cfg.Store.CancelRequests(ctx, d.cfg.Node)
	if err != nil {
		// Said once per failing streak: until the heartbeat notices the
		// store is down, every poll would fail the same way.
		if !d.cancelErrSaid {
			d.cancelErrSaid = true
			d.log.Warn("read cancel requests: retrying every poll", "err", err)
		}
		return
	}
	d.cancelErrSaid = false
	d.mu.Lock()
	defer d.mu.Unlock()
	for id, why := range reqs {
		if r := d.running[id]; r != nil && !r.asked {
			r.asked = true
			r.cancel(errors.New(why))
		}
	}
}
