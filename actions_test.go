package cronium

import (
	"strings"
	"testing"
)

// Actions are exactly one of notify or trigger, within the bounds, and
// apply by outcome and condition.
func TestActions(t *testing.T) {
	yes, no := true, false
	for _, c := range []struct {
		on   Actions
		want string // "" = valid
	}{
		{Actions{Failure: []Action{{Notify: "ops"}}, Success: []Action{{Trigger: "next", InputFrom: "output"}}}, ""},
		{Actions{Failure: []Action{{}}}, "on.failure[0]: must have exactly one of notify"},
		{Actions{Failure: []Action{{Notify: "ops", Trigger: "x"}}}, "exactly one"},
		{Actions{Success: []Action{{Notify: "Ops!"}}}, "on.success[0].notify"},
		{Actions{Success: []Action{{Notify: "ops", InputFrom: "output"}}}, `on.success[0].input_from: "output" applies to trigger only`},
		{Actions{ConditionTrue: []Action{{Trigger: "x", InputFrom: "stdout"}}}, "on.condition_true[0].input_from"},
		{Actions{Success: []Action{{Trigger: "a"}, {Trigger: "b"}, {Trigger: "c"}, {Trigger: "d"}, {Trigger: "e"}, {Trigger: "f"}}}, "lists 6 triggers: at most 5"},
		{Actions{Failure: make([]Action, 11)}, "must have exactly one"},
	} {
		err := c.on.Validate()
		if (err == nil) != (c.want == "") || err != nil && !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.on, err, c.want)
		}
	}
	many := Actions{}
	for range 11 {
		many.Failure = append(many.Failure, Action{Notify: "ops"})
	}
	if err := many.Validate(); err == nil || !strings.Contains(err.Error(), "lists 11 actions") {
		t.Errorf("11 actions: %v", err)
	}
	on := Actions{Failure: []Action{{Notify: "f"}}, Success: []Action{{Notify: "s"}}, ConditionTrue: []Action{{Notify: "t"}}, ConditionFalse: []Action{{Notify: "n"}}}
	reasons := func(o Outcome, cond *bool) string {
		var out []string
		for _, k := range on.For(o, cond) {
			out = append(out, k.Reason)
		}
		return strings.Join(out, ",")
	}
	for _, c := range []struct {
		o    Outcome
		cond *bool
		want string
	}{
		{Succeeded, nil, "success"}, {Succeeded, &yes, "success,condition_true"}, {Succeeded, &no, "success,condition_false"},
		{Failed, &yes, "failure"}, {TimedOut, nil, "failure"}, {EngineError, nil, "failure"}, {Cancelled, nil, ""},
	} {
		if got := reasons(c.o, c.cond); got != c.want {
			t.Errorf("%s %v: %q, want %q", c.o, c.cond, got, c.want)
		}
	}
}
