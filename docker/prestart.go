package docker

import (
	"context"
	"fmt"
	"strings"

	cronium "github.com/cronium/executor"
	"github.com/cronium/executor/agent"
)

// prepare asks the agent of an idle warm sandbox to start the interpreter
// of its next run now, with the helpers loaded, as the script user: the
// run then skips the interpreter's start-up (agent.Prepare; the agent
// starts the run afresh whenever it does not fit). It is called once the
// agent said hello (NewSandbox) and after each Reset, which kills every
// process first: a prepared interpreter never saw a run.
//
// Only python and node are prepared, only in the engine's own runtime image
// for the language (whose start-up code is known: the interpreter, its
// standard library and the helpers; a custom image or a package layer may
// run code at start-up that reads any variable), and only with a workspace
// of the sandbox's own: the interpreter starts before the run and must see
// the sandbox as the run's would, which a shared persistent workspace does
// not promise.
//
// It does not wait for the interpreter: the agent starts it while the
// sandbox waits, and tells in the run's report (agent.Report.Prestart,
// Session.Prestart) whether the run used it. An error means the session
// is unusable.
func (s *sandbox) prepare(ctx context.Context) error {
	spec := s.spec
	if spec.Language != cronium.Python && spec.Language != cronium.Node ||
		spec.Image == "" || spec.Image != s.e.cfg.Images[spec.Language] || spec.Workspace != nil {
		return nil
	}
	// The next run's start message, as far as it is known now: without the
	// user's environment (the last run's, after a Reset) and the per-run values.
	userEnv := s.spec.Env
	s.spec.Env = nil
	st := s.startMessage()
	s.spec.Env = userEnv
	p := agent.Prepare{Command: st.Command, UID: st.UID, GID: st.GID, AmbientCaps: st.AmbientCaps}
	for _, kv := range st.Env {
		switch k, _, _ := strings.Cut(kv, "="); k {
		case "CRONIUM_RUNTIME_TOKEN", "CRONIUM_EXECUTION_ID", "CRONIUM_TIMEOUT_SECONDS":
		default:
			p.Env = append(p.Env, kv)
		}
	}
	if err := s.sess.Prepare(ctx, p); err != nil {
		return fmt.Errorf("prepare the interpreter of container %.12s: %w", s.id, err)
	}
	return nil
}
