// Package pool keeps warm sandboxes so executions skip the ~300 ms it takes
// to create and start one.
//
// A Sandbox is a container whose agent is started and idle; a Factory makes
// one. A Pool holds the sandboxes of one spec (and, for reuse, one user) and
// works in one of two modes:
//
//   - Prewarmed: sandboxes are created and started ahead of need. Each one
//     serves exactly one execution and is then closed; the pool refills in
//     the background towards Min. Executions get per-execution isolation at
//     warm speed.
//   - Reuse: a sandbox serves many executions of the same user and spec.
//     After each run it is Reset (the agent kills every process and wipes
//     /tmp, the workspace and the secrets, and checks they are clean) and
//     only then returned to the pool. It is recycled (closed, never returned)
//     after MaxRuns runs, once older than MaxAge, when Reset fails, or after
//     any anomalous run: engine_error, oom_killed, timed_out, cancelled or
//     output_limit.
//
// Guarantees:
//
//   - A pool never holds more than Max sandboxes at once, counting those
//     being created and those being closed, whatever the number of
//     concurrent Run calls.
//   - A prewarmed sandbox is never used twice; a reuse sandbox is used again
//     only after Reset returned nil.
//   - Idle sandboxes above Min are closed after IdleTimeout; the pool never
//     reaps below Min.
//   - A failing Factory never hangs Run: the run gets an engine_error result,
//     and the background refill retries with backoff (1s doubling to 30s).
//   - Every background goroutine (refill, idle reaper, closing) belongs to
//     the pool and has ended when Stop returns.
//
// A Manager holds pools by key (for example "reuse/alice/bash-256Mi-0.5cpu"),
// creating each on first use from a per-mode template Config.
package pool
