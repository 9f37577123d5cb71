package netguard

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
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

// restore applies rules atomically per table, keeping every other rule.
func restore(ctx context.Context, v6 bool, rules string) error {
	bin := "iptables-restore"
	if v6 {
		bin = "ip6tables-restore"
	}
	_, err := run(ctx, []byte(rules), bin, "--noflush", "-w", "5")
	if err != nil {
		return fmt.Errorf("apply firewall rules: %w\nrules:\n%s", err, rules)
	}
	return nil
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

// counters sums, per chain in chains, the bytes and packets of rules whose
// target is ACCEPT (traffic let through) and the packets of rules that jump
// to a refuse chain (refusals).
type chainCounters struct {
	acceptBytes int64
	refusedPkts int64
}

func readCounters(dump string, chains map[string]*chainCounters) {
	for _, line := range strings.Split(dump, "\n") {
		if !strings.HasPrefix(line, "[") {
			continue
		}
		i := strings.Index(line, "] -A ")
		if i < 0 {
			continue
		}
		pk, by, _ := strings.Cut(line[1:i], ":")
		rest := line[i+5:]
		chain, rule, _ := strings.Cut(rest, " ")
		c := chains[chain]
		if c == nil {
			continue
		}
		pkts, _ := strconv.ParseInt(pk, 10, 64)
		bytes, _ := strconv.ParseInt(by, 10, 64)
		switch {
		case strings.HasSuffix(rule, "-j ACCEPT"):
			c.acceptBytes += bytes
		case strings.Contains(rule, "-j CRN-") && strings.Contains(rule, "-R-"):
			c.refusedPkts += pkts
		}
	}
}
