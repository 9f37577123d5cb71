package cronium

import (
	"fmt"
	"regexp"
)

// Actions say what follows an execution's end: notifications and chained
// events, by outcome and by the condition the script set. They act once
// per execution, after its last attempt (a run that is retried acts when
// its retry ends).
type Actions struct {
	// Failure: any end but succeeded and cancelled (failed, timed_out,
	// oom_killed, output_limit, engine_error).
	Failure []Action `json:"failure,omitempty"`
	// Success: succeeded.
	Success []Action `json:"success,omitempty"`
	// ConditionTrue and ConditionFalse: the script set its condition
	// (cronium.setCondition) and the run succeeded.
	ConditionTrue  []Action `json:"condition_true,omitempty"`
	ConditionFalse []Action `json:"condition_false,omitempty"`
}

// Action is one thing to do: notify a channel, or trigger an event.
type Action struct {
	// Notify names a notification channel.
	Notify string `json:"notify,omitempty"`
	// Trigger names another event of the same user to run.
	Trigger string `json:"trigger,omitempty"`
	// InputFrom is the chained run's input: "output" (what the script set
	// with its output helper), "input" (this run's input), or empty (the
	// triggered event's default input).
	InputFrom string `json:"input_from,omitempty"`
}

// Bounds on actions, so that a chain can never fan out without limit.
const (
	// MaxActions is the most actions an event may list in all.
	MaxActions = 10
	// MaxTriggers is the most triggers an event may list, over all its
	// outcomes: the most events one execution's end may trigger.
	MaxTriggers = 5
	// MaxChainDepth is how long a chain of triggers may grow: a run at this
	// depth triggers nothing more (and says so).
	MaxChainDepth = 10
	// MaxChainRuns is the most runs one chain may start in all, however
	// it branches (5 triggers a link would otherwise allow 5^10).
	MaxChainRuns = 50
)

// Kinds returns each list of actions with its field name and reason.
func (a Actions) Kinds() []struct {
	Reason  string
	Actions []Action
} {
	return []struct {
		Reason  string
		Actions []Action
	}{{"failure", a.Failure}, {"success", a.Success}, {"condition_true", a.ConditionTrue}, {"condition_false", a.ConditionFalse}}
}

// IsZero reports whether no action is declared.
func (a Actions) IsZero() bool {
	return len(a.Failure)+len(a.Success)+len(a.ConditionTrue)+len(a.ConditionFalse) == 0
}

var channelName = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// Validate checks the actions' form (not that channels and events exist:
// the API does): each is exactly one of notify or trigger, within the
// bounds. Errors name the field, like "on.failure[0].notify".
func (a Actions) Validate() error {
	total, triggers := 0, 0
	for _, k := range a.Kinds() {
		for i, ac := range k.Actions {
			field := fmt.Sprintf("on.%s[%d]", k.Reason, i)
			total++
			switch {
			case (ac.Notify == "") == (ac.Trigger == ""):
				return Invalid(field, "", "must have exactly one of notify (a channel) or trigger (an event)")
			case ac.Notify != "" && !channelName.MatchString(ac.Notify):
				return Invalid(field+".notify", ac.Notify, "is not a channel name: lowercase letters, digits and '-'")
			case ac.Notify != "" && ac.InputFrom != "":
				return Invalid(field+".input_from", ac.InputFrom, "applies to trigger only")
			case ac.Trigger != "" && !eventName.MatchString(ac.Trigger):
				return Invalid(field+".trigger", ac.Trigger, "is not an event name")
			}
			switch ac.InputFrom {
			case "", "output", "input":
			default:
				return Invalid(field+".input_from", ac.InputFrom, `is not an input source: want "output" (the script's output), "input" (this run's input) or nothing (the event's own input)`)
			}
			if ac.Trigger != "" {
				triggers++
			}
		}
	}
	if total > MaxActions {
		return Invalid("on", "", fmt.Sprintf("lists %d actions: at most %d", total, MaxActions))
	}
	if triggers > MaxTriggers {
		return Invalid("on", "", fmt.Sprintf("lists %d triggers: at most %d over all outcomes (success and condition_true can apply to one run)", triggers, MaxTriggers))
	}
	return nil
}

// For returns the reasons and actions that apply to an execution that
// ended with outcome and condition (nil: the script set none).
func (a Actions) For(outcome Outcome, condition *bool) []struct {
	Reason  string
	Actions []Action
} {
	var out []struct {
		Reason  string
		Actions []Action
	}
	for _, k := range a.Kinds() {
		applies := false
		switch k.Reason {
		case "failure":
			applies = outcome != Succeeded && outcome != Cancelled
		case "success":
			applies = outcome == Succeeded
		case "condition_true":
			applies = outcome == Succeeded && condition != nil && *condition
		case "condition_false":
			applies = outcome == Succeeded && condition != nil && !*condition
		}
		if applies && len(k.Actions) > 0 {
			out = append(out, k)
		}
	}
	return out
}
