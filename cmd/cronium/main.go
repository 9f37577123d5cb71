// Command cronium runs scripts in isolated, limited containers.
//
//	cronium run hello.py              run one script in a fresh sandbox
//	cronium images build              build the runtime images offline
//	cronium gc                        remove sandboxes left by crashed runs
//	cronium bench cold                cold-start benchmark against docker run
package main

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	cronium "github.com/cronium/executor"
	"github.com/cronium/executor/images"
	"github.com/cronium/executor/strictjson"
)

// exitError carries a process exit status up to main.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

// usage marks an error as bad input: exit status 2.
func usage(err error) error { return &exitError{code: 2, err: err} }

type globals struct {
	engineFlag string
	engineOpts []string // --engine-option key=value
	dockerHost string
	stateDir   string
	agentPath  string
	network    cronium.NetworkSetup // how network policies are enforced (from --config)
}

func newRoot() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:   "cronium",
		Short: "Run scripts safely: every execution in a locked-down container with enforced limits",
		Long: `Cronium Executor runs bash, python and node scripts in fresh containers with
enforced limits (memory, CPU, pids, disk, time, output), a strict security
profile by default (nobody user, read-only root, no capabilities, seccomp,
no new privileges) and no network unless asked for.

Start with:
  cronium images build        build the runtime images (offline, from the Debian mirror)
  cronium run examples/hello.py`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usage(fmt.Errorf("%w\nrun '%s --help' for usage", err, c.CommandPath()))
	})
	pf := root.PersistentFlags()
	pf.StringVar(&g.engineFlag, "engine", "", "container engine: docker, podman or kubernetes (default: $CRONIUM_ENGINE, then docker)")
	pf.StringArrayVar(&g.engineOpts, "engine-option", nil, "an option of the engine's own, key=value, repeatable (kubernetes: kubeconfig, namespace, node, node_selector, runtime_class); over engine_options in the config")
	pf.StringVar(&g.dockerHost, "docker-host", "", "container engine address: a Docker socket, or with --engine podman a Podman API socket (default: $DOCKER_HOST, then unix:///var/run/docker.sock; podman: a service cronium starts on demand)")
	pf.StringVar(&g.stateDir, "state-dir", "", "directory for sandbox sockets and the agent copy (default: /var/lib/cronium as root)")
	pf.StringVar(&g.agentPath, "agent", "", "path of the cronium-agent binary (default: $CRONIUM_AGENT, then next to cronium)")
	repo := pf.String("image-repo", "", "repository of the runtime images and package layers, for several installations on one engine (default: $CRONIUM_IMAGE_REPO, then cronium)")
	root.PersistentPreRunE = func(c *cobra.Command, _ []string) error {
		r := *repo
		if r == "" {
			r = os.Getenv("CRONIUM_IMAGE_REPO")
		}
		if r == "" {
			return nil
		}
		if !imageRepo.MatchString(r) || len(r) > 100 {
			return usage(cronium.Invalid("image-repo", r, "is not an image repository: use lowercase letters, digits, '.', '_', '-' and '/', like cronium or team/cronium"))
		}
		images.Repository = r
		return nil
	}
	root.AddCommand(newRunCmd(g), newImagesCmd(g), newGCCmd(g), newBenchCmd(g), newVersionCmd(),
		newServeCmd(g), newConfigCmd(), newEventCmd(), newTriggerCmd(), newExecCmd(), newUserCmd(), newKeyCmd(),
		newVarCmd(), newSecretCmd(), newPoolCmd(), newNodeCmd(), newUsageCmd(), newStoreCmd(), newAuditCmd(), newBackupCmd(), newChannelCmd())
	refuseUnknownSubcommands(root)
	return root
}

// refuseUnknownSubcommands makes every command that only groups others
// ("event", "user", ...) print its help when called alone, and refuse an
// unknown subcommand ("event lst") with exit status 2 and a suggestion,
// instead of cobra's default of printing help and exiting 0.
func refuseUnknownSubcommands(c *cobra.Command) {
	for _, sub := range c.Commands() {
		refuseUnknownSubcommands(sub)
	}
	if !c.HasSubCommands() || c.Run != nil || c.RunE != nil {
		return
	}
	c.Args = cobra.ArbitraryArgs
	c.RunE = func(c *cobra.Command, args []string) error {
		if len(args) == 0 {
			return c.Help()
		}
		msg := fmt.Sprintf("unknown command %q for %q", args[0], c.CommandPath())
		c.SuggestionsMinimumDistance = 2
		if s := c.SuggestionsFor(args[0]); len(s) > 0 {
			slices.SortStableFunc(s, func(a, b string) int { return strictjson.Distance(args[0], a) - strictjson.Distance(args[0], b) })
			msg += fmt.Sprintf("; did you mean %q?", s[0])
		}
		return usage(fmt.Errorf("%s\nrun '%s --help' for its commands", msg, c.CommandPath()))
	}
}

// imageRepo is what --image-repo takes: a repository path without a registry.
var imageRepo = regexp.MustCompile(`^[a-z0-9]+([._-][a-z0-9]+)*(/[a-z0-9]+([._-][a-z0-9]+)*)*$`)

func main() {
	err := newRoot().Execute()
	if err == nil {
		return
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil {
			fmt.Fprintln(os.Stderr, "cronium:", ee.err)
		}
		os.Exit(ee.code)
	}
	fmt.Fprintln(os.Stderr, "cronium:", err)
	if errors.Is(err, cronium.ErrInvalid) || isCobraUsage(err) {
		os.Exit(2)
	}
	os.Exit(1)
}

// isCobraUsage recognises cobra's own argument errors.
func isCobraUsage(err error) bool {
	s := err.Error()
	for _, p := range []string{"unknown command", "accepts ", "requires at least", "unknown flag", "unknown shorthand"} {
		if strings.Contains(s, p) {
			return true
		}
	}
	return false
}

func newVersionCmd() *cobra.Command {
	var output string
	c := &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		RunE: func(c *cobra.Command, _ []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			if output == "json" || output == "yaml" {
				printData(c.OutOrStdout(), output, map[string]string{"version": version})
				return nil
			}
			fmt.Fprintln(c.OutOrStdout(), "cronium", version)
			return nil
		},
	}
	c.Flags().StringVarP(&output, "output", "o", "table", "table, json or yaml")
	return c
}

// version is set by the linker: -ldflags "-X main.version=..."
var version = "dev"
