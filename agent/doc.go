// Package agent is the in-container side of Cronium and the protocol it
// speaks with the host.
//
// The agent is a small static binary (cmd/cronium-agent) mounted read-only
// into every sandbox as PID 1. It dials the host over a unix socket in a
// per-sandbox directory, receives a Start message with the script, writes
// the script into the workspace itself, runs it as the script user, streams
// its output as sequence-numbered frames, enforces the timeout and the output
// cap, reads usage from its cgroup, and reports one Report per execution.
// The host acknowledges the report (FrameAck); a cancel frame, or SIGTERM to
// the agent, cancels the running script.
//
// Frames are [type:1][length:4, big endian][payload]. Start, Hello and
// Report carry JSON; Output carries [stream:1][seq:8][bytes].
//
// An idle agent may be asked to Prepare: it then starts the next run's
// interpreter (python, node) ahead of the run, with the helpers loaded, as
// the script user, and the next Start hands the run to it instead of
// starting one, whenever that changes nothing the script could see
// (prestart.go).
//
// # Surviving the host
//
// A run is outstanding from its Start until the host acknowledges its
// report. If the connection breaks while a run is outstanding (the host
// process died), the agent does not cancel: the script keeps running under
// the agent's own timeout and grace, and the agent
//
//   - keeps what it sends in memory: output up to 8 MiB, past which output
//     is dropped and counted, and the report, which is never dropped;
//   - redials the same socket (HostDir/SocketName) every 100 ms;
//   - on connecting, says a Hello with Resume set and the ExecutionID, then
//     writes again the last MiB of output it had already written (a host
//     killed mid-stream loses what sat unread in its socket), then what it
//     kept, in order, then carries on. A frame that failed to write, even
//     halfway, is written again whole. If output was dropped, a marker chunk
//     takes the place and sequence number of the first dropped chunk and says
//     how many bytes were lost. Hosts de-duplicate by sequence number
//     (Session.Resume hands every chunk on; the caller skips what it has);
//   - gives up when no host came back by the run's timeout + grace + 10
//     minutes after its Start: it kills the script if it still runs and exits.
//
// A script that ends while the host is away leaves its report waiting for
// the next host. With no run outstanding, a closed connection ends the agent
// as before: that is how every run ends once its report is acknowledged.
//
// The package imports only the standard library (and packages redact and
// strictjson, which do too) so the agent stays small; a test checks its
// dependencies.
package agent
