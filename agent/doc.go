// Package agent is the in-container side of Cronium and the protocol it
// speaks with the host.
//
// The agent is a small static binary (cmd/cronium-agent) mounted read-only
// into every sandbox as PID 1. It dials the host over a unix socket in a
// per-sandbox directory, receives a Start message with the script, writes
// the script into the workspace itself, runs it as the script user, streams
// its output as sequence-numbered frames, enforces the timeout and the output
// cap, reads usage from its cgroup, and reports one Report per execution.
//
// Frames are [type:1][length:4, big endian][payload]. Start, Hello and
// Report carry JSON; Output carries [stream:1][seq:8][bytes].
//
// The package imports only the standard library so the agent stays small.
package agent
