// Package runtimeapi answers scripts' runtime API calls on the host: the
// output value, the condition, and the user's persistent variables. The
// agent in each sandbox checks the execution's token and forwards calls over
// its own connection, so this works with networking off; here each call is
// bound to the one execution whose sandbox sent it, and to that execution's
// user, and is refused once the execution ended.
//
// Variable keys: 1-128 characters of letters, digits, '_', '.', ':' and '-',
// starting with a letter, digit or '_'. Values are JSON, at most 64 KiB.
// Variables belong to the user and are shared by all the user's events.
package runtimeapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"

	cronium "github.com/cronium/executor"
	"github.com/cronium/executor/redact"
	"github.com/cronium/executor/store"
)

// Handler implements cronium.RuntimeAPI over the store. It is safe for concurrent use.
type Handler struct {
	store store.Runtime

	mu   sync.Mutex // guards live
	live map[string]*execution
}

type execution struct {
	userID  int64
	secrets [][]byte
}

var _ cronium.RuntimeAPI = (*Handler)(nil)

// New returns a Handler.
func New(store store.Runtime) *Handler {
	return &Handler{store: store, live: map[string]*execution{}}
}

// Open makes an execution's calls answerable, bound to its user; secret
// values are redacted from its output value.
func (h *Handler) Open(id string, userID int64, secretValues [][]byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.live[id] = &execution{userID: userID, secrets: secretValues}
}

// Close refuses the execution's calls from now on.
func (h *Handler) Close(id string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.live, id)
}

// Redact removes the execution's secret values from b.
func (h *Handler) Redact(id string, b []byte) []byte {
	h.mu.Lock()
	x := h.live[id]
	h.mu.Unlock()
	if x == nil || len(x.secrets) == 0 {
		return b
	}
	return redact.Bytes(b, x.secrets)
}

// errorf is a refusal of the caller's request: it is a cronium.ErrInvalid
// (code invalid), with the message as written.
func errorf(format string, args ...any) error {
	return invalidError(fmt.Sprintf(format, args...))
}

type invalidError string

func (e invalidError) Error() string        { return string(e) }
func (e invalidError) Is(target error) bool { return target == cronium.ErrInvalid }

// Call implements cronium.RuntimeAPI.
func (h *Handler) Call(ctx context.Context, c cronium.RuntimeCall) (json.RawMessage, error) {
	h.mu.Lock()
	x := h.live[c.ExecutionID]
	h.mu.Unlock()
	if x == nil {
		return nil, errorf("execution %s has ended: its token is no longer valid", c.ExecutionID)
	}
	st := h.store
	switch c.Op {
	case "output":
		return nil, h.Output(ctx, c.ExecutionID, c.Value)
	case "setCondition":
		var b bool
		if err := json.Unmarshal(c.Value, &b); err != nil {
			return nil, errorf("setCondition needs true or false, got %s", abbreviate(c.Value))
		}
		return nil, st.SetCondition(ctx, c.ExecutionID, b)
	case "getCondition":
		ex, err := st.Execution(ctx, 0, c.ExecutionID)
		if err != nil {
			return nil, err
		}
		if ex.Condition != nil && *ex.Condition {
			return json.RawMessage("true"), nil
		}
		return json.RawMessage("false"), nil
	case "listVariables":
		vars, err := st.Variables(ctx, x.userID)
		if err != nil {
			return nil, err
		}
		return json.Marshal(vars)
	}
	if err := cronium.CheckVariable(c.Key, nil); err != nil {
		return nil, err
	}
	switch c.Op {
	case "getVariable":
		v, err := st.Variable(ctx, x.userID, c.Key)
		if v == nil && err == nil {
			v = json.RawMessage("null")
		}
		return v, err
	case "setVariable":
		if err := cronium.CheckVariable(c.Key, append([]byte{}, c.Value...)); err != nil {
			return nil, fmt.Errorf("setVariable: %w", err)
		}
		return nil, st.SetVariable(ctx, x.userID, c.Key, compact(c.Value))
	case "deleteVariable":
		_, err := st.DeleteVariable(ctx, x.userID, c.Key)
		return nil, err
	case "increment":
		delta := 1.0
		if len(c.Value) > 0 && string(c.Value) != "null" {
			if err := json.Unmarshal(c.Value, &delta); err != nil {
				s, _ := strconv.Unquote(string(c.Value))
				if delta, err = strconv.ParseFloat(s, 64); err != nil {
					return nil, errorf("increment %s: the amount must be a number, got %s", c.Key, abbreviate(c.Value))
				}
			}
		}
		n, err := st.Increment(ctx, x.userID, c.Key, delta)
		if err != nil {
			return nil, err
		}
		return json.Marshal(n)
	}
	return nil, errorf("unknown op %q", c.Op)
}

// Output checks and stores an execution's output value, with its secrets redacted.
func (h *Handler) Output(ctx context.Context, id string, v json.RawMessage) error {
	if len(v) == 0 {
		return errorf("output needs a JSON value")
	}
	if len(v) > cronium.MaxOutputBytes {
		return errorf("output is %d bytes, above the %d byte limit: nothing was stored", len(v), cronium.MaxOutputBytes)
	}
	if !json.Valid(v) {
		return errorf("output is not JSON: %s", abbreviate(v))
	}
	h.mu.Lock()
	x := h.live[id]
	h.mu.Unlock()
	out := compact(v)
	if x != nil && len(x.secrets) > 0 {
		// Matched in the strings as read, escapes undone: a secret with a
		// quote or a non-ASCII character is escaped in JSON text.
		out = redact.JSON(out, x.secrets)
	}
	return h.store.SetOutput(ctx, id, out)
}

func compact(v json.RawMessage) json.RawMessage {
	var b bytes.Buffer
	if json.Compact(&b, v) != nil {
		return v
	}
	return b.Bytes()
}

func abbreviate(v []byte) string {
	if len(v) > 60 {
		return string(v[:60]) + "..."
	}
	return string(v)
}
