package netguard

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"time"
)

// run runs a command and returns its standard output. iptables commands
// are given -w, so concurrent cronium processes and dockerd do not collide.
func run(ctx context.Context, stdin []byte, name string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.Bytes(), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return out.Bytes(), nil
}

// iptMu serialises this process's firewall changes: the nf_tables backend
// resolves a rule position when it parses a change, so two concurrent
// changes to one chain can fail.
var iptMu sync.Mutex

// restore applies rules atomically per table, keeping every other rule. A
// change that lost a race with another process's (a rule it referred to
// moved) is tried again.
func restore(ctx context.Context, v6 bool, rules string) error {
	bin := "iptables-restore"
	if v6 {
		bin = "ip6tables-restore"
	}
	iptMu.Lock()
	defer iptMu.Unlock()
	var err error
	for try := 0; try < 3; try++ {
		if _, err = run(ctx, []byte(rules), bin, "--noflush", "-w", "5"); err == nil {
			return nil
		}
		if !strings.Contains(err.Error(), "RULE_INSERT failed") && !strings.Contains(err.Error(), "RULE_APPEND failed") {
			break
		}
		time.Sleep(time.Duration(20*(try+1)) * time.Millisecond)
	}
	return fmt.Errorf("apply firewall rules: %w\nrules:\n%s", err, rules)
}

// save returns the rules of table, with counters.
func save(ctx context.Context, v6 bool, table string) (string, error) {
	bin := "iptables-save"
	if v6 {
		bin = "ip6tables-save"
	}
	out, err := run(ctx, nil, bin, "-c", "-t", table)
	return string(out), err
}

// removePrefix deletes every chain whose name starts with prefix, and every
// rule in other chains that jumps to one, from table (v4 or v6). It is how
// a guard's rules are removed at close and how leftovers of a dead process
// are swept.
func removePrefix(ctx context.Context, v6 bool, table, prefix string) error {
	dump, err := save(ctx, v6, table)
	if err != nil {
		return err
	}
	var jumps, chains []string
	sc := bufio.NewScanner(strings.NewReader(dump))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, ":"+prefix) {
			chains = append(chains, strings.Fields(line[1:])[0])
			continue
		}
		if strings.HasPrefix(line, "[") {
			if i := strings.Index(line, "] "); i > 0 {
				line = line[i+2:]
			}
		}
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "-A" && !strings.HasPrefix(f[1], prefix) && strings.Contains(line, "-j "+prefix) {
			jumps = append(jumps, "-D"+line[2:])
		}
	}
	if len(jumps) == 0 && len(chains) == 0 {
		return nil
	}
	var b strings.Builder
	fmt.Fprintf(&b, "*%s\n", table)
	for _, j := range jumps {
		b.WriteString(j + "\n")
	}
	for _, c := range chains {
		fmt.Fprintf(&b, "-F %s\n", c)
	}
	for _, c := range chains {
		fmt.Fprintf(&b, "-X %s\n", c)
	}
	b.WriteString("COMMIT\n")
	return restore(ctx, v6, b.String())
}

// chainPrefixes lists the distinct guard ids that own chains in dump ("CRN-<id>-...").
func chainIDs(dump string) []string {
	seen := map[string]bool{}
	var ids []string
	for _, line := range strings.Split(dump, "\n") {
		if !strings.HasPrefix(line, ":CRN-") {
			continue
		}
		rest := strings.TrimPrefix(line, ":CRN-")
		id, _, _ := strings.Cut(rest, "-")
		id, _, _ = strings.Cut(id, " ")
		if id != "" && !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	return ids
}
