package api

import (
	"encoding/json"
	"math"
	"net/http"
	"net/http/httptest"
	"testing"
)

// A value that cannot be encoded is a 500 with an error body, never a 200
// with half a body (the status is written after encoding).
func TestWriteJSONEncodesBeforeTheStatus(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"bad": math.NaN()})
	}))
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]map[string]string
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || resp.StatusCode != http.StatusInternalServerError || body["error"]["code"] != "internal" {
		t.Errorf("status %d, body %v (%v): want 500 with an error body", resp.StatusCode, body, err)
	}
}
