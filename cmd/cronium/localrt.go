package main

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"

	cronium "github.com/cronium/executor"
)

// localRuntime answers the runtime API for `cronium run`: variables live in
// memory for the one run; output and condition go into the result.
type localRuntime struct {
	mu        sync.Mutex // guards the fields below
	vars      map[string]json.RawMessage
	output    json.RawMessage
	condition *bool
}

func (l *localRuntime) Call(_ context.Context, c cronium.RuntimeCall) (json.RawMessage, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.vars == nil {
		l.vars = map[string]json.RawMessage{}
	}
	switch c.Op {
	case "output":
		if len(c.Value) > cronium.MaxOutputBytes {
			return nil, fmt.Errorf("output is %d bytes, above the %d byte limit: nothing was stored", len(c.Value), cronium.MaxOutputBytes)
		}
		l.output = c.Value
		return nil, nil
	case "setCondition":
		var b bool
		if err := json.Unmarshal(c.Value, &b); err != nil {
			return nil, fmt.Errorf("setCondition needs true or false")
		}
		l.condition = &b
		return nil, nil
	case "getCondition":
		return json.Marshal(l.condition != nil && *l.condition)
	case "listVariables":
		return json.Marshal(l.vars)
	}
	if !cronium.ValidVariableKey(c.Key) {
		return nil, fmt.Errorf("variable key %q is not valid", c.Key)
	}
	switch c.Op {
	case "getVariable":
		if v, ok := l.vars[c.Key]; ok {
			return v, nil
		}
		return json.RawMessage("null"), nil
	case "setVariable":
		if len(c.Value) > cronium.MaxVariableBytes {
			return nil, fmt.Errorf("variable %s: the value is above the %d byte limit", c.Key, cronium.MaxVariableBytes)
		}
		l.vars[c.Key] = c.Value
		return nil, nil
	case "deleteVariable":
		delete(l.vars, c.Key)
		return nil, nil
	case "increment":
		var n, d float64 = 0, 1
		json.Unmarshal(l.vars[c.Key], &n)
		if len(c.Value) > 0 {
			json.Unmarshal(c.Value, &d)
		}
		b, _ := json.Marshal(n + d)
		l.vars[c.Key] = b
		return b, nil
	}
	return nil, fmt.Errorf("unknown op %q", c.Op)
}
