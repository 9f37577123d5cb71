// Package cronium holds the domain of Cronium Executor: what an execution
// asks for (Spec, Limits, Profile, NetworkPolicy), what it produced (Result,
// Outcome, Phases, Usage), the Engine interface that container backends
// implement, and the error kinds shared by every package.
//
// The package imports only the standard library. Backends (docker/), the
// in-container agent (agent/) and the CLI (cmd/cronium) depend on it, never
// the other way round.
package cronium
