package main

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// A mistyped or missing subcommand is an error (exit 2) with a suggestion,
// not help and exit 0; a group alone prints its help.
func TestUnknownSubcommandsAreRefused(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"event", "lst"}, `unknown command "lst" for "cronium event"; did you mean "list"?`},
		{[]string{"exec", "lsit"}, `did you mean "list"?`},
		{[]string{"evnt", "list"}, `unknown command "evnt" for "cronium"; did you mean "event"?`},
		{[]string{"images", "nope"}, `unknown command "nope" for "cronium images"`},
	} {
		_, stderr, code := cronium_(t, c.args...)
		if code != 2 || !strings.Contains(stderr, c.want) {
			t.Errorf("cronium %v: exit %d, stderr %q; want exit 2 saying %q", c.args, code, stderr, c.want)
		}
	}
	if stdout, _, code := cronium_(t, "event"); code != 0 || !strings.Contains(stdout, "Available Commands") {
		t.Errorf("cronium event: exit %d, %q; want its help", code, stdout)
	}
}

// The API key in CRONIUM_TOKEN never shows in help output.
func TestHelpDoesNotShowTheToken(t *testing.T) {
	t.Parallel()
	const secret = "crn_help_must_not_show_this_key"
	for _, args := range [][]string{{"event", "--help"}, {"exec", "list", "--help"}, {"var", "set", "--help"}, {"event", "lst"}} {
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), "CRONIUM_TOKEN="+secret)
		out, _ := cmd.CombinedOutput()
		if strings.Contains(string(out), secret) {
			t.Errorf("cronium %v shows the API key:\n%s", args, out)
		}
		if args[1] == "--help" && !strings.Contains(string(out), "$CRONIUM_TOKEN") {
			t.Errorf("cronium %v does not say where the key comes from:\n%s", args, out)
		}
	}
}
