package api

import (
	"context"
	"fmt"
	"strings"

	cronium "github.com/cronium/executor"
)

// checkActions refuses on: actions that name a channel that does not exist,
// an event of the owner's that does not exist, or that close a cycle of
// triggers (which would run forever), with an error naming the field.
func (s *Server) checkActions(ctx context.Context, owner cronium.User, ev cronium.Event) error {
	if ev.On.IsZero() {
		return nil
	}
	evs, err := s.cfg.Store.Events(ctx, owner.ID)
	if err != nil {
		return err
	}
	graph := map[string][]string{} // event -> the events its actions trigger
	for _, e := range evs {
		graph[e.Name] = triggers(e.On)
	}
	graph[ev.Name] = triggers(ev.On)
	for _, k := range ev.On.Kinds() {
		for i, a := range k.Actions {
			field := fmt.Sprintf("on.%s[%d]", k.Reason, i)
			switch {
			case a.Notify != "" && (s.cfg.Channel == nil || !s.cfg.Channel(owner.Name, a.Notify)) && !s.ownChannel(ctx, owner, a.Notify):
				return cronium.Invalid(field+".notify", a.Notify, "is not a notification channel: yours are set with `cronium channel set`, the server's are in its configuration (notifications.channels)")
			case a.Trigger == ev.Name:
				return cronium.Invalid(field+".trigger", a.Trigger, "is this event itself: a chain that triggers itself would never end")
			case a.Trigger != "":
				if _, ok := graph[a.Trigger]; !ok {
					return cronium.Invalid(field+".trigger", a.Trigger, "is not one of "+owner.Name+"'s events: apply it first")
				}
				if path := cycle(graph, a.Trigger, ev.Name); path != nil {
					return cronium.Invalid(field+".trigger", a.Trigger, "closes a cycle of triggers ("+ev.Name+" -> "+strings.Join(path, " -> ")+"), which would never end: remove one of them")
				}
			}
		}
	}
	return nil
}

// referrers names the owner's events for which refers is true.
func (s *Server) referrers(ctx context.Context, owner cronium.User, refers func(cronium.Event) bool) ([]string, error) {
	evs, err := s.cfg.Store.Events(ctx, owner.ID)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, ev := range evs {
		if refers(ev) {
			out = append(out, ev.Name)
		}
	}
	return out, nil
}

func triggers(on cronium.Actions) []string {
	var out []string
	for _, k := range on.Kinds() {
		for _, a := range k.Actions {
			if a.Trigger != "" {
				out = append(out, a.Trigger)
			}
		}
	}
	return out
}

// cycle returns a path of triggers from from to target, or nil.
func cycle(graph map[string][]string, from, target string) []string {
	seen := map[string]bool{}
	var walk func(n string) []string
	walk = func(n string) []string {
		if n == target {
			return []string{n}
		}
		if seen[n] {
			return nil
		}
		seen[n] = true
		for _, next := range graph[n] {
			if p := walk(next); p != nil {
				return append([]string{n}, p...)
			}
		}
		return nil
	}
	return walk(from)
}
