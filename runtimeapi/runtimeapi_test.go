package runtimeapi

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	cronium "github.com/cronium/executor"
	"github.com/cronium/executor/sqlite"
)

func TestCallsAreBoundToALiveExecutionAndItsUser(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	alice, _ := st.CreateUser(ctx, "alice", "free", false)
	bob, _ := st.CreateUser(ctx, "bob", "free", false)
	h := New(st)
	h.Open("xa", alice.ID, nil)
	h.Open("xb", bob.ID, nil)
	call := func(id, op, key, value string) (string, error) {
		v, err := h.Call(ctx, cronium.RuntimeCall{ExecutionID: id, Op: op, Key: key, Value: json.RawMessage(value)})
		return string(v), err
	}
	if _, err := call("xa", "setVariable", "k", `"alice's"`); err != nil {
		t.Fatal(err)
	}
	if v, _ := call("xb", "getVariable", "k", ""); v != "null" {
		t.Errorf("bob's execution read alice's variable: %s", v)
	}
	if v, _ := call("xa", "increment", "n", "5"); v != "5" {
		t.Errorf("increment: %s", v)
	}
	if _, err := call("xa", "increment", "k", "1"); err == nil || !strings.Contains(err.Error(), "not a number") {
		t.Errorf("increment of a string: %v", err)
	}
	if _, err := call("xa", "setVariable", "bad key!", `1`); err == nil || !strings.Contains(err.Error(), "not a variable key") {
		t.Errorf("bad key: %v", err)
	}
	if _, err := call("xa", "setVariable", "big", `"`+strings.Repeat("x", 70<<10)+`"`); err == nil || !strings.Contains(err.Error(), "65536 byte limit") {
		t.Errorf("oversized variable: %v", err)
	}
	if _, err := call("xa", "setCondition", "", `"yes"`); err == nil {
		t.Error("a non-boolean condition was accepted")
	}
	h.Close("xa")
	if _, err := call("xa", "getVariable", "k", ""); err == nil || !strings.Contains(err.Error(), "ended") {
		t.Errorf("call after the execution ended: %v, want refused", err)
	}
}
