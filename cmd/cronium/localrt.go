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
	if err := cronium.CheckVariable(c.Key, nil); err != nil {
		return nil, err
	}
	switch c.Op {
	case "getVariable":
		if v, ok := l.vars[c.Key]; ok {
			return v, nil
		}
		return json.RawMessage("null"), nil
	case "setVariable":
		if err := cronium.CheckVariable(c.Key, append([]byte{}, c.Value...)); err != nil {
			return nil, err
		}
		l.vars[c.Key] = c.Value
		return nil, nil
	case "deleteVariable":
		delete(l.vars, c.Key)
		return nil, nil
	case "increment":
		var n, d float64 = 0, 1
		if cur, ok := l.vars[c.Key]; ok && json.Unmarshal(cur, &n) != nil {
			return nil, fmt.Errorf("variable %s holds a value that is not a number: increment needs a number", c.Key)
		}
		if len(c.Value) > 0 && string(c.Value) != "null" && json.Unmarshal(c.Value, &d) != nil {
			return nil, fmt.Errorf("increment %s: by is not a number", c.Key)
		}
		out, err := cronium.Increment(c.Key, n, d)
		if err != nil {
			return nil, err
		}
		b, err := json.Marshal(out)
		if err != nil {
			return nil, err
		}
		l.vars[c.Key] = b
		return b, nil
	}
	return nil, fmt.Errorf("unknown op %q", c.Op)
}
