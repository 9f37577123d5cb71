package main

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	cronium "github.com/cronium/executor"
)

// A compat event with audit: strict runs as if the script ran directly,
// and reports everything strict would have stopped: a file written to
// /etc, 300 MiB of memory (strict's default is 256Mi), a connection to a
// host (strict has no network).
func TestAuditStrictReportsWhatStrictWouldStop(t *testing.T) {
	t.Parallel()
	s, key := startAs(t, "free")
	// The host end: a listener on every address, reached through the
	// sandbox network's gateway (the bridge this test's server made).
	ln, err := net.Listen("tcp", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan string, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		b := make([]byte, 16)
		n, _ := c.Read(b)
		got <- string(b[:n])
	}()
	port := ln.Addr().(*net.TCPAddr).Port
	script := fmt.Sprintf(`import socket, struct
open('/etc/cronium-audit', 'w').write('x')
b = bytearray(300 << 20)
for i in range(0, len(b), 4096): b[i] = 1
gw = None
for line in open('/proc/net/route').read().splitlines()[1:]:
    f = line.split()
    if f[1] == '00000000': gw = socket.inet_ntoa(struct.pack('<L', int(f[2], 16)))
s = socket.create_connection((gw, %d), timeout=5)
s.sendall(b'hello')
s.close()
print('done via', gw)
`, port)
	s.putEvent(key, "legacy", "python", "", script, map[string]any{"profile": "compat", "audit": "strict"})
	var x cronium.Execution
	if st := s.api(key, "POST", "/v1/events/legacy/trigger", map[string]any{}, &x); st != 202 {
		t.Fatalf("trigger: %d", st)
	}
	x = s.waitAll(key, 2*time.Minute)[0]
	if x.Outcome != cronium.Succeeded || x.Result == nil || x.Result.Audit == nil {
		out, serr, _ := s.run("exec", "logs", x.ID)
		out += serr
		t.Fatalf("the compat run: %s %q, result %+v\n%s", x.Outcome, x.Error, x.Result, out)
	}
	select {
	case b := <-got:
		if b != "hello" {
			t.Errorf("the host got %q", b)
		}
	case <-time.After(5 * time.Second):
		t.Error("the host end got no connection")
	}
	kinds := map[string]string{}
	for _, f := range x.Result.Audit.Findings {
		kinds[f.Kind] += f.Message + "\n"
	}
	for kind, want := range map[string]string{"files": "wrote /etc/cronium-audit", "memory": "above the 256Mi strict would allow", "network": fmt.Sprintf(":%d/tcp", port)} {
		if !strings.Contains(kinds[kind], want) {
			t.Errorf("the audit's %s findings %q do not say %q (all: %+v)", kind, kinds[kind], want, x.Result.Audit)
		}
	}
	if len(kinds) != 3 {
		t.Errorf("findings of kinds %v, want files, memory and network only", kinds)
	}
	if out, err := s.cli("exec", "get", x.ID); err != nil || strings.Count(out, "audit:     strict would stop it:") != 3 {
		t.Errorf("exec get: %v\n%s", err, out)
	}
}
