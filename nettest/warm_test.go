package nettest

import (
	"context"
	"strings"
	"testing"
	"time"

	cronium "github.com/cronium/executor"
)

// A warm sandbox keeps its policy for every run, and each run sees only its own traffic and refusals.
func TestWarmSandboxKeepsPolicyPerRun(t *testing.T) {
	ctx := context.Background()
	policy := cronium.NetworkPolicy{Mode: cronium.NetworkEgress, AllowDomains: []string{"api.example.test"}}
	sb, err := engine.NewSandbox(ctx, cronium.Spec{Language: cronium.Python, Network: policy}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Close()
	runIn := func(script string) (string, cronium.Result) {
		var out strings.Builder
		spec := cronium.Spec{ID: "warm-" + strings.ReplaceAll(time.Now().Format("150405.000000"), ".", ""), Language: cronium.Python,
			Script: []byte(probe + script + "\nprint(json.dumps(R))\n"), Env: map[string]string{"TEST_CA": string(inet.CA)},
			Output: func(c cronium.OutputChunk) { out.Write(c.Data) }}
		spec.Limits.Timeout = 30 * time.Second
		res := sb.Run(ctx, spec)
		if res.Outcome != cronium.Succeeded {
			t.Fatalf("%s %s\n%s", res.Outcome, res.Error, out.String())
		}
		return out.String(), res
	}
	out, res := runIn(`R["a"] = http("http://api.example.test/one"); R["b"] = http("http://evil.example.test/")`)
	if !strings.Contains(out, "host=api.example.test path=/one") {
		t.Errorf("first run: %s", out)
	}
	refused(t, res, "dns evil.example.test (not in allow_domains)")
	if err := sb.Reset(ctx); err != nil {
		t.Fatal(err)
	}
	out, res = runIn(`R["a"] = http("http://api.example.test/two"); R["c"] = tcp("203.0.113.10", 80, b"GET / HTTP/1.0\r\nHost: other.example.test\r\n\r\n")`)
	if !strings.Contains(out, "host=api.example.test path=/two") || !strings.Contains(out, `"c": "ok:HTTP/1.1 403`) {
		t.Errorf("second run: %s", out)
	}
	n := res.Usage.Network
	for _, r := range n.Refusals {
		if strings.Contains(r, "evil") {
			t.Errorf("the second run shows the first run's refusal %q", r)
		}
	}
	refused(t, res, "other.example.test:80/tcp (not in allow_domains)")
	if n.Refused != 1 {
		t.Errorf("second run counted %d refusals, want 1: %q", n.Refused, n.Refusals)
	}
	// A refusal the sandbox saw in an earlier run is listed again when it happens again.
	if err := sb.Reset(ctx); err != nil {
		t.Fatal(err)
	}
	_, res = runIn(`R["b"] = http("http://evil.example.test/")`)
	refused(t, res, "dns evil.example.test (not in allow_domains)")
	if n := res.Usage.Network; n.Refused != 1 || len(n.Refusals) != 1 {
		t.Errorf("third run: %d refused, %q; want exactly the repeated refusal", n.Refused, n.Refusals)
	}
}
