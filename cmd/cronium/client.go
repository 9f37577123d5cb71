package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	cronium "github.com/cronium/executor"
	"github.com/cronium/executor/api"
	"github.com/cronium/executor/store"
)

// apiClient talks to a cronium server.
type apiClient struct {
	server, token, output string
	user                  string // --user: an admin acting for this user
	http                  *http.Client
}

func clientFlags(c *cobra.Command) *apiClient {
	cl := &apiClient{http: &http.Client{}}
	server := os.Getenv("CRONIUM_SERVER")
	if server == "" {
		server = "http://127.0.0.1:8080"
	}
	c.PersistentFlags().StringVar(&cl.server, "server", server, "server URL (env CRONIUM_SERVER)")
	// The key is read from the environment when a request is made, not
	// given as the flag's default: help output would print it.
	c.PersistentFlags().StringVar(&cl.token, "token", "", "API key (default: $CRONIUM_TOKEN)")
	c.PersistentFlags().StringVarP(&cl.output, "output", "o", "table", "output: table, wide (every column), json or yaml")
	c.PersistentFlags().StringVar(&cl.user, "user", "", "admins: act for this user (their events, executions, variables and secrets)")
	return cl
}

// forUser adds ?user= to path when an admin acts for a user.
func (cl *apiClient) forUser(path string) string {
	if cl.user == "" || strings.HasPrefix(path, "/v1/users") || strings.HasPrefix(path, "/v1/audit") {
		return path
	}
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	return path + sep + "user=" + url.QueryEscape(cl.user)
}

// key is the API key: --token, else $CRONIUM_TOKEN.
func (cl *apiClient) key() string {
	if cl.token != "" {
		return cl.token
	}
	return os.Getenv("CRONIUM_TOKEN")
}

// apiError is the server's error body.
type apiError struct {
	Err struct {
		Code    string `json:"code"`
		Message string `json:"message"`
		Field   string `json:"field"`
	} `json:"error"`
	status int
}

func (e *apiError) Error() string {
	if e.Err.Field != "" && !strings.Contains(e.Err.Message, e.Err.Field) {
		return fmt.Sprintf("%s (field %s)", e.Err.Message, e.Err.Field)
	}
	return e.Err.Message
}

// do sends a request and decodes the JSON answer into out (if not nil).
func (cl *apiClient) do(ctx context.Context, method, path string, body, out any) error {
	if err := checkOutput(cl.output); err != nil {
		return err
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(cl.server, "/")+cl.forUser(path), rd)
	if err != nil {
		return usage(cronium.Invalid("--server", cl.server, "is not a URL: "+err.Error()))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Cronium-Client", "cli")
	if key := cl.key(); key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := cl.http.Do(req)
	if err != nil {
		return &exitError{code: 1, err: fmt.Errorf("no cronium server answered at %s: %v (start one with `cronium serve`, or set --server / CRONIUM_SERVER)", cl.server, err)}
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 400 {
		var e apiError
		e.status = resp.StatusCode
		b, _ := io.ReadAll(resp.Body)
		if json.Unmarshal(b, &e) != nil || e.Err.Message == "" {
			e.Err.Message = fmt.Sprintf("server answered %s: %s", resp.Status, strings.TrimSpace(string(b)))
		}
		code := 1
		if resp.StatusCode == 400 || resp.StatusCode == 413 {
			code = 2
		}
		return &exitError{code: code, err: &e}
	}
	if read, ok := out.(func(io.Reader) error); ok {
		return read(resp.Body)
	}
	if out != nil && resp.StatusCode != http.StatusNoContent {
		return json.NewDecoder(resp.Body).Decode(out)
	}
	return nil
}

// buildPackages has the server build an event's packages, printing the
// build's progress to w as it streams. The event's PUT then finds them built.
func (cl *apiClient) buildPackages(ctx context.Context, ev map[string]any, w io.Writer) error {
	pk, ok := ev["packages"].(map[string]any)
	if !ok || len(pk) == 0 {
		return nil
	}
	body := map[string]any{"language": ev["language"], "packages": pk}
	return cl.do(ctx, "POST", "/v1/images/build", body, func(r io.Reader) error {
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			var line struct {
				Progress *string              `json:"progress"`
				Lock     *cronium.PackageLock `json:"lock"`
				Built    bool                 `json:"built"`
				Error    *struct {
					Message string `json:"message"`
				} `json:"error"`
			}
			if json.Unmarshal(sc.Bytes(), &line) != nil {
				continue
			}
			switch {
			case line.Progress != nil:
				fmt.Fprintln(w, *line.Progress)
			case line.Error != nil:
				return &exitError{code: 2, err: errors.New(line.Error.Message)}
			case line.Lock != nil:
				if line.Built {
					fmt.Fprintf(w, "packages built: %s\n", line.Lock.Image)
				} else {
					fmt.Fprintf(w, "packages up to date: %s\n", line.Lock.Image)
				}
				return nil
			}
		}
		if err := sc.Err(); err != nil {
			return fmt.Errorf("package build stream: %w", err)
		}
		return errors.New("the server ended the package build without a result")
	})
}

// checkOutput refuses an unknown -o value.
func checkOutput(o string) error {
	switch o {
	case "table", "wide", "json", "yaml":
		return nil
	}
	return usage(cronium.Invalid("--output", o, "is not an output format: want table, wide, json or yaml"))
}

// structured reports whether -o asks for data (json or yaml), not a table.
func (cl *apiClient) structured() bool { return cl.output == "json" || cl.output == "yaml" }

// printJSON prints v as -o asks: YAML for -o yaml, indented JSON otherwise.
func (cl *apiClient) printJSON(w io.Writer, v any) { printData(w, cl.output, v) }

// printData prints v as JSON, or as YAML (keys in JSON's names, sorted) for
// format "yaml".
func printData(w io.Writer, format string, v any) {
	if format == "yaml" {
		b, err := json.Marshal(v)
		var generic any
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.UseNumber()
		if err == nil && dec.Decode(&generic) == nil {
			enc := yaml.NewEncoder(w)
			enc.SetIndent(2)
			enc.Encode(wholeNumbers(generic))
			enc.Close()
			return
		}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// wholeNumbers turns JSON numbers into int64 where they are whole (YAML
// would print a float64 byte count as 6.5686454e+07) and float64 elsewhere.
func wholeNumbers(v any) any {
	switch t := v.(type) {
	case json.Number:
		if n, err := t.Int64(); err == nil {
			return n
		}
		f, _ := t.Float64()
		return f
	case map[string]any:
		for k, x := range t {
			t[k] = wholeNumbers(x)
		}
	case []any:
		for i, x := range t {
			t[i] = wholeNumbers(x)
		}
	}
	return v
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// inZone shows t in the IANA zone tz, for its abbreviation (CET), when
// this machine knows the zone; else as it came (an offset).
func inZone(t time.Time, tz string) time.Time {
	if loc, err := time.LoadLocation(tz); err == nil && tz != "" {
		return t.In(loc)
	}
	return t
}

func table(w io.Writer, header string, rows [][]string) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, header)
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	tw.Flush()
}

// ---- events

func newEventCmd() *cobra.Command {
	c := &cobra.Command{Use: "event", Short: "Manage events (scripts with a schedule)"}
	cl := clientFlags(c)
	var file string
	var dryRun bool
	apply := &cobra.Command{
		Use:   "apply -f FILE|DIR",
		Short: "Create or update events from YAML (idempotent): a file (several events separated by ---), a folder with an event.yaml, or a directory of such files and folders",
		Example: `  cronium event apply -f examples/heartbeat.yaml
  cat event.yaml | cronium event apply -f -
  cronium event apply -f events/ --dry-run     # checked by the server, nothing saved`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if file == "" {
				return usage(cronium.Invalid("-f", "", "is required: the event YAML file, or - for stdin"))
			}
			evs, err := readEvents(file)
			if err != nil {
				return usage(err)
			}
			for _, ev := range evs {
				name, _ := ev["name"].(string)
				if name == "" {
					return usage(cronium.Invalid(file+": name", "", "is required"))
				}
				stripServerFields(ev)
				var out cronium.Event
				var err error
				if dryRun {
					err = cl.do(c.Context(), "PUT", "/v1/events/"+url.PathEscape(name)+"?dry_run=true", ev, &out)
				} else if err = cl.buildPackages(c.Context(), ev, c.ErrOrStderr()); err == nil {
					err = cl.do(c.Context(), "PUT", "/v1/events/"+url.PathEscape(name), ev, &out)
				}
				if err != nil {
					var ee *exitError
					if errors.As(err, &ee) {
						ee.err = fmt.Errorf("%s: event %s: %w", file, name, ee.err)
					}
					return err
				}
				switch {
				case cl.structured():
					cl.printJSON(c.OutOrStdout(), out)
				case dryRun:
					fmt.Fprintf(c.OutOrStdout(), "event %s is valid (dry run: nothing saved; schedule %q, enabled %v)\n", out.Name, out.Schedule, out.IsEnabled())
				default:
					fmt.Fprintf(c.OutOrStdout(), "event %s applied (schedule %q, enabled %v)\n", out.Name, out.Schedule, out.IsEnabled())
				}
			}
			return nil
		},
	}
	apply.Flags().StringVarP(&file, "file", "f", "", "YAML file, folder or directory, or - for stdin")
	apply.Flags().BoolVar(&dryRun, "dry-run", false, "have the server check the events without saving them (packages are not built)")
	list := &cobra.Command{
		Use: "list", Short: "List events", Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			var page struct {
				Items []api.EventView `json:"items"`
			}
			if err := cl.do(c.Context(), "GET", "/v1/events", nil, &page); err != nil {
				return err
			}
			if cl.structured() {
				cl.printJSON(c.OutOrStdout(), page)
				return nil
			}
			var rows [][]string
			for _, e := range page.Items {
				st := e.Status
				next, nextUTC, last, outcome := "-", "-", "-", "-"
				if st.NextRun != nil {
					next, nextUTC = inZone(*st.NextRun, e.Timezone).Format("2006-01-02 15:04:05 MST"), st.NextRunUTC.Format("2006-01-02 15:04:05Z")
				}
				if l := st.Last; l != nil {
					last, outcome = l.QueuedAt.Local().Format("2006-01-02 15:04:05"), string(l.Status)
					if l.Outcome != "" {
						outcome = string(l.Outcome)
					}
				}
				row := []string{e.User, e.Name, string(e.Language), e.Schedule, e.Timezone, st.State,
					next, nextUTC, last, outcome, fmt.Sprintf("%d/%d", st.Succeeded, st.Runs)}
				if cl.output == "wide" {
					row = append(row, e.Profile, string(e.Network.Mode), e.Strategy, string(e.Concurrency), e.Resources.Memory, fmt.Sprint(e.Resources.CPUs), e.Timeout.D().String())
				}
				rows = append(rows, row)
			}
			header := "USER\tNAME\tLANGUAGE\tSCHEDULE\tTIMEZONE\tSTATE\tNEXT RUN\tNEXT RUN (UTC)\tLAST RUN\tLAST OUTCOME\tSUCCEEDED/RUNS"
			if cl.output == "wide" {
				header += "\tPROFILE\tNETWORK\tSTRATEGY\tCONCURRENCY\tMEMORY\tCPUS\tTIMEOUT"
			}
			table(c.OutOrStdout(), header, rows)
			return nil
		},
	}
	one := func(use, short, method, suffix string) *cobra.Command {
		return &cobra.Command{
			Use: use + " NAME", Short: short, Args: cobra.ExactArgs(1),
			RunE: func(c *cobra.Command, args []string) error {
				var out api.EventView
				path := "/v1/events/" + url.PathEscape(args[0]) + suffix
				if method == "DELETE" {
					if err := cl.do(c.Context(), method, path, nil, nil); err != nil {
						return err
					}
					fmt.Fprintf(c.OutOrStdout(), "event %s deleted\n", args[0])
					return nil
				}
				if err := cl.do(c.Context(), method, path, nil, &out); err != nil {
					return err
				}
				if cl.structured() {
					cl.printJSON(c.OutOrStdout(), out)
					return nil
				}
				if use == "get" {
					printEvent(c.OutOrStdout(), out)
					return nil
				}
				fmt.Fprintf(c.OutOrStdout(), "event %s: enabled %v\n", out.Name, out.IsEnabled())
				return nil
			},
		}
	}
	var count int
	next := &cobra.Command{
		Use: "next NAME", Short: "Print an event's next fire times, in its zone and in UTC", Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			var out api.NextRuns
			path := fmt.Sprintf("/v1/events/%s/next?n=%d", url.PathEscape(args[0]), count)
			if err := cl.do(c.Context(), "GET", path, nil, &out); err != nil {
				return err
			}
			if cl.structured() {
				cl.printJSON(c.OutOrStdout(), out)
				return nil
			}
			var rows [][]string
			for _, r := range out.Items {
				rows = append(rows, []string{inZone(r.At, out.Timezone).Format("2006-01-02 15:04:05 MST (-07:00) Mon"), r.UTC.Format(time.RFC3339)})
			}
			table(c.OutOrStdout(), "AT\tUTC", rows)
			return nil
		},
	}
	next.Flags().IntVarP(&count, "count", "n", 5, "how many fire times (1-100)")
	c.AddCommand(apply, list, next, newEventDiffCmd(cl), one("get", "Show an event (-o yaml: in the form apply takes)", "GET", ""), one("delete", "Delete an event", "DELETE", ""),
		one("pause", "Pause an event's schedule", "POST", "/pause"), one("resume", "Resume an event's schedule", "POST", "/resume"))
	return c
}

// readEvents reads one or more YAML documents as JSON-ready maps; script_file
// is read relative to the YAML file and inlined as script.
func readEvents(file string) ([]map[string]any, error) {
	var data []byte
	var err error
	dir := ""
	if fi, serr := os.Stat(file); serr == nil && fi.IsDir() {
		if _, err := os.Stat(filepath.Join(file, "event.yaml")); err != nil {
			return readDir(file) // a directory of event files and folders
		}
		// A folder: its event.yaml, its entry script and every other file.
		dir = file
		file = filepath.Join(dir, "event.yaml")
	}
	if file == "-" {
		data, err = io.ReadAll(os.Stdin)
	} else {
		data, err = os.ReadFile(file)
	}
	if err != nil {
		return nil, cronium.Invalid("-f", file, "cannot be read: "+err.Error())
	}
	var out []map[string]any
	if dir != "" {
		return readFolder(dir, data)
	}
	docs, err := yamlDocs(data)
	if err != nil {
		return nil, cronium.Invalid("-f", file, err.Error())
	}
	for i, j := range docs {
		var m map[string]any
		if err := json.Unmarshal(j, &m); err != nil || m == nil {
			return nil, cronium.Invalid("-f", file, fmt.Sprintf("document %d is not a YAML mapping of event fields", i+1))
		}
		if sf, ok := m["script_file"]; ok {
			p, _ := sf.(string)
			if !filepath.IsAbs(p) && file != "-" {
				p = filepath.Join(filepath.Dir(file), p)
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return nil, cronium.Invalid("script_file", fmt.Sprint(sf), "cannot be read: "+err.Error())
			}
			if _, both := m["script"]; both {
				return nil, cronium.Invalid("script_file", fmt.Sprint(sf), "and script are both given: keep one")
			}
			m["script"] = string(b)
			delete(m, "script_file")
		}
		out = append(out, m)
	}
	if len(out) == 0 {
		return nil, cronium.Invalid("-f", file, "holds no event")
	}
	return out, nil
}

// readFolder packs an event folder: event.yaml (one event, whose entry
// names the main script), the script, and every other regular file as
// files. Hidden files and folders are left out; a symbolic link is an error.
func readFolder(dir string, data []byte) ([]map[string]any, error) {
	docs, err := yamlDocs(data)
	if err != nil {
		return nil, cronium.Invalid("-f", dir, "event.yaml: "+err.Error())
	}
	if len(docs) != 1 {
		return nil, cronium.Invalid("-f", dir, "event.yaml of a folder must hold exactly one event")
	}
	j := docs[0]
	var m map[string]any
	if err := json.Unmarshal(j, &m); err != nil || m == nil {
		return nil, cronium.Invalid("-f", dir, "event.yaml is not a YAML mapping of event fields")
	}
	entry, _ := m["entry"].(string)
	if entry == "" {
		return nil, cronium.Invalid("entry", "", "is required in a folder's event.yaml: name the main script, like entry: main.py")
	}
	for _, k := range []string{"script", "script_file", "files"} {
		if _, ok := m[k]; ok {
			return nil, cronium.Invalid(k, "", "is not used in a folder's event.yaml: the folder's files are the script (entry) and its files")
		}
	}
	delete(m, "entry")
	files := map[string][]byte{}
	err = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == "." {
			return nil
		}
		if strings.HasPrefix(d.Name(), ".") {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.Type()&os.ModeSymlink != 0 {
			return cronium.Invalid("-f", p, "is a symbolic link: a folder's files must be regular files")
		}
		if d.IsDir() || rel == "event.yaml" {
			return nil
		}
		if !d.Type().IsRegular() {
			return cronium.Invalid("-f", p, "is not a regular file")
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		files[filepath.ToSlash(rel)] = b
		return nil
	})
	if err != nil {
		return nil, err
	}
	script, ok := files[filepath.ToSlash(filepath.Clean(entry))]
	if !ok {
		return nil, cronium.Invalid("entry", entry, "is not a file of the folder "+dir)
	}
	delete(files, filepath.ToSlash(filepath.Clean(entry)))
	m["script"] = string(script)
	if len(files) > 0 {
		m["files"] = files // []byte: base64 in JSON, as the API takes it
	}
	return []map[string]any{m}, nil
}

// ---- trigger

func newTriggerCmd() *cobra.Command {
	var input string
	var wait, follow bool
	c := &cobra.Command{
		Use:   "trigger NAME",
		Short: "Run an event now; --wait waits for its end, --follow also prints its output live",
		Long: `Run an event now.

With --wait or --follow the command ends when the execution does, retries
included (it waits for the last attempt), with the exit status of 'cronium
run': the script's own, or 124 timed_out, 137 oom_killed, 130 cancelled,
141 output_limit, 125 engine_error; 125 also when the server cannot be asked
(unreachable, a refused key, an unknown event), so that it never passes for
the script's own status.`,
		Args: cobra.ExactArgs(1),
	}
	cl := clientFlags(c)
	c.RunE = func(c *cobra.Command, args []string) error {
		body := map[string]any{}
		if input != "" {
			in := []byte(input)
			if name, ok := strings.CutPrefix(input, "@"); ok {
				var err error
				if in, err = os.ReadFile(name); err != nil {
					return usage(cronium.Invalid("--input", input, "cannot be read: "+err.Error()))
				}
			}
			if !json.Valid(in) {
				return usage(cronium.Invalid("--input", abbreviate(input), "is not JSON"))
			}
			body["input"] = json.RawMessage(in)
		}
		var x cronium.Execution
		if err := cl.do(c.Context(), "POST", "/v1/events/"+url.PathEscape(args[0])+"/trigger", body, &x); err != nil {
			if wait || follow {
				return clientFailure(err)
			}
			return err
		}
		if !wait && !follow {
			if cl.structured() {
				cl.printJSON(c.OutOrStdout(), x)
				return nil
			}
			fmt.Fprintf(c.OutOrStdout(), "execution %s queued\n", x.ID)
			return nil
		}
		if !cl.structured() {
			fmt.Fprintf(c.ErrOrStderr(), "execution %s queued\n", x.ID)
		}
		for {
			if follow {
				if err := cl.follow(c.Context(), x.ID, c.OutOrStdout(), c.ErrOrStderr()); err != nil {
					return clientFailure(err)
				}
			}
			var view api.ExecutionView
			for view.Status != cronium.StatusFinished || view.ID != x.ID {
				if err := cl.do(c.Context(), "GET", "/v1/executions/"+url.PathEscape(x.ID), nil, &view); err != nil {
					return clientFailure(err)
				}
				if view.Status == cronium.StatusFinished {
					break
				}
				select {
				case <-c.Context().Done():
					return c.Context().Err()
				case <-time.After(250 * time.Millisecond):
				}
			}
			x = view.Execution
			if x.RetriedBy == "" && x.Outcome != cronium.Succeeded && x.Outcome != cronium.Cancelled {
				// Its retry is queued in the transaction that finished it:
				// read once more to be sure none is.
				if err := cl.do(c.Context(), "GET", "/v1/executions/"+url.PathEscape(x.ID), nil, &view); err == nil {
					x = view.Execution
				}
			}
			if x.RetriedBy == "" {
				break
			}
			if !cl.structured() {
				fmt.Fprintf(c.ErrOrStderr(), "execution %s %s; its retry %s follows\n", x.ID, x.Outcome, x.RetriedBy)
			}
			x = cronium.Execution{ID: x.RetriedBy}
		}
		if cl.structured() {
			cl.printJSON(c.OutOrStdout(), x)
		} else {
			fmt.Fprintf(c.ErrOrStderr(), "execution %s %s%s\n", x.ID, x.Outcome, map[bool]string{true: ": " + x.Error, false: ""}[x.Error != ""])
		}
		res := cronium.Result{Outcome: x.Outcome}
		if x.ExitCode != nil {
			res.ExitCode = *x.ExitCode
		}
		if code := exitCode(res); code != 0 {
			return &exitError{code: code}
		}
		return nil
	}
	c.Flags().StringVar(&input, "input", "", "JSON input, or @file")
	c.Flags().BoolVar(&wait, "wait", false, "wait for the execution to end; exit with its status")
	c.Flags().BoolVarP(&follow, "follow", "f", false, "print its output live, then exit with its status")
	return c
}

// clientFailure marks an error of asking the server (not of the script)
// for trigger --wait: exit status 125, as docker run uses for its own.
func clientFailure(err error) error {
	var ee *exitError
	if errors.As(err, &ee) {
		return &exitError{code: 125, err: ee.err}
	}
	return &exitError{code: 125, err: err}
}

// ---- executions

func newExecCmd() *cobra.Command {
	c := &cobra.Command{Use: "exec", Short: "Inspect and cancel executions"}
	cl := clientFlags(c)
	var event, status, trigger, since, until string
	var limit int
	list := &cobra.Command{
		Use: "list", Short: "List executions, newest first", Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			q := url.Values{}
			if event != "" {
				q.Set("event", event)
			}
			for k, v := range map[string]string{"status": status, "trigger": trigger, "since": since, "until": until} {
				if v != "" {
					q.Set(k, v)
				}
			}
			q.Set("limit", fmt.Sprint(limit))
			var page struct {
				Items []cronium.Execution `json:"items"`
				Next  string              `json:"next"`
			}
			if err := cl.do(c.Context(), "GET", "/v1/executions?"+q.Encode(), nil, &page); err != nil {
				return err
			}
			if cl.structured() {
				cl.printJSON(c.OutOrStdout(), page)
				return nil
			}
			var rows [][]string
			for _, x := range page.Items {
				row := []string{x.ID, x.Event, string(x.Trigger), string(x.Status), string(x.Outcome), exitStr(x.ExitCode), ago(x.QueuedAt), durStr(x), x.Reason}
				if cl.output == "wide" {
					row = append(row, x.User, strconv.Itoa(x.Attempt), x.Strategy, x.Node, orDash(x.RetryOf), orDash(x.ChainedFrom))
				}
				rows = append(rows, row)
			}
			header := "ID\tEVENT\tTRIGGER\tSTATUS\tOUTCOME\tEXIT\tQUEUED\tDURATION\tREASON"
			if cl.output == "wide" {
				header += "\tUSER\tATTEMPT\tSTRATEGY\tNODE\tRETRY OF\tCHAINED FROM"
			}
			table(c.OutOrStdout(), header, rows)
			return nil
		},
	}
	list.Flags().StringVar(&event, "event", "", "only this event")
	list.Flags().StringVar(&status, "status", "", "queued, running, finished, or an outcome: succeeded, failed, timed_out, oom_killed, output_limit, cancelled, engine_error")
	list.Flags().StringVar(&trigger, "trigger", "", "schedule, manual, api, retry or chain")
	list.Flags().StringVar(&since, "since", "", "queued within the last DURATION (24h) or since a time (RFC 3339)")
	list.Flags().StringVar(&until, "until", "", "queued before DURATION ago or before a time (RFC 3339)")
	list.Flags().IntVar(&limit, "limit", 20, "how many")
	get := &cobra.Command{
		Use: "get ID", Short: "Show an execution: status, why it waits, outcome, usage", Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			var view api.ExecutionView
			if err := cl.do(c.Context(), "GET", "/v1/executions/"+url.PathEscape(args[0]), nil, &view); err != nil {
				return err
			}
			x := view.Execution
			if cl.structured() {
				cl.printJSON(c.OutOrStdout(), view)
				return nil
			}
			w := c.OutOrStdout()
			fmt.Fprintf(w, "execution %s of event %s (user %s)\n", x.ID, x.Event, x.User)
			fmt.Fprintf(w, "  trigger:   %s, attempt %d\n", x.Trigger, x.Attempt)
			if x.RetryOf != "" {
				fmt.Fprintf(w, "  retry of:  %s\n", x.RetryOf)
			}
			if x.RetriedBy != "" {
				fmt.Fprintf(w, "  retried by: %s\n", x.RetriedBy)
			}
			if x.ChainedFrom != "" {
				fmt.Fprintf(w, "  chained from: %s (link %d of the chain)\n", x.ChainedFrom, x.ChainDepth)
			}
			for _, n := range view.Notifications {
				state := string(n.Status)
				switch {
				case n.Status == "sent":
					state += " " + n.SentAt.Local().Format(time.DateTime)
				case n.LastError != "":
					state += fmt.Sprintf(" (attempt %d: %s)", n.Attempts, n.LastError)
				}
				fmt.Fprintf(w, "  notified:  %s on %s: %s\n", n.Channel, n.Reason, state)
			}
			if x.ScheduledAt != nil {
				fmt.Fprintf(w, "  scheduled: %s\n", x.ScheduledAt.Format(time.RFC3339))
			}
			fmt.Fprintf(w, "  status:    %s %s\n", x.Status, x.Outcome)
			if x.StrategyReason != "" {
				fmt.Fprintf(w, "  strategy:  %s (%s)\n", x.Strategy, x.StrategyReason)
			}
			if x.Reason != "" {
				fmt.Fprintf(w, "  reason:    %s\n", x.Reason)
			}
			if x.ExitCode != nil {
				fmt.Fprintf(w, "  exit code: %d\n", *x.ExitCode)
			}
			if x.Error != "" {
				fmt.Fprintf(w, "  error:     %s\n", x.Error)
			}
			if len(x.Output) > 0 {
				var compact bytes.Buffer
				json.Compact(&compact, x.Output)
				fmt.Fprintf(w, "  output:    %s\n", compact.String())
			}
			if x.Condition != nil {
				fmt.Fprintf(w, "  condition: %v\n", *x.Condition)
			}
			if x.Result != nil && x.Result.OutputError != "" {
				fmt.Fprintf(w, "  output error: %s\n", x.Result.OutputError)
			}
			if r := x.Result; r != nil {
				fmt.Fprintf(w, "  phases:    create %s, start %s, run %s, cleanup %s\n", ms(r.Phases.Create), ms(r.Phases.Start), ms(r.Phases.Run), ms(r.Phases.Cleanup))
				fmt.Fprintf(w, "  usage:     %s\n", usageLine(r.Usage))
				fmt.Fprintf(w, "  limits:    memory %s, cpus %v, pids %d, timeout %s\n", r.Limits.Memory, r.Limits.CPUs, r.Limits.Pids, r.Limits.Timeout)
				for _, e := range r.Enforcement {
					fmt.Fprintf(w, "  enforced:  %s\n", e)
				}
				if r.NetworkPolicy != nil {
					fmt.Fprintf(w, "  network:   %s\n", r.NetworkPolicy)
				}
				if n := r.Usage.Network; n != nil {
					fmt.Fprintf(w, "  traffic:   %s in, %s out, %d refused\n", human(n.BytesIn), human(n.BytesOut), n.Refused)
					for _, x := range n.Refusals {
						fmt.Fprintf(w, "  refused:   %s\n", x)
					}
				}
			}
			if u := view.Live; u != nil {
				fmt.Fprintf(w, "  live:      %s (at %s)\n", liveLine(*u), u.Time.Local().Format(time.TimeOnly))
			}
			if r := x.Result; r != nil {
				for _, h := range r.Hints {
					fmt.Fprintf(w, "  hint:      %s\n", h.Message)
				}
				if a := r.Audit; a != nil {
					if len(a.Findings) == 0 {
						fmt.Fprintf(w, "  audit:     %s would have stopped nothing this run observed\n", a.Profile)
					}
					for _, f := range a.Findings {
						fmt.Fprintf(w, "  audit:     %s would stop it: %s\n", a.Profile, f.Message)
					}
					for _, n := range a.NotObserved {
						fmt.Fprintf(w, "  not seen:  %s\n", n)
					}
				}
				if k := r.Kept; k != nil && time.Now().Before(k.Until) {
					fmt.Fprintf(w, "  kept:      until %s on node %s: `cronium exec debug %s` opens a shell in it\n", k.Until.Local().Format(time.DateTime), k.Node, x.ID)
				} else if k != nil {
					fmt.Fprintf(w, "  kept:      until %s (gone, or removed sooner)\n", k.Until.Local().Format(time.DateTime))
				}
			}
			for _, d := range view.DebugSessions {
				fmt.Fprintf(w, "  debugged:  %s by %s: %s\n", d.At.Local().Format(time.DateTime), d.Actor, d.Detail)
			}
			fmt.Fprintf(w, "  logs:      %d bytes stored", x.LogBytes)
			if x.LogTruncated {
				fmt.Fprint(w, " (truncated)")
			}
			fmt.Fprintln(w)
			return nil
		},
	}
	var follow, timestamps bool
	var tail int
	var logsSince string
	logs := &cobra.Command{
		Use: "logs ID", Short: "Print an execution's output; -f follows it live", Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if follow {
				if tail > 0 || cl.structured() {
					return usage(cronium.Invalid("--follow", "", "streams the output as it comes: it does not go with --tail or -o"))
				}
				return cl.follow(c.Context(), args[0], c.OutOrStdout(), c.ErrOrStderr())
			}
			if tail < 0 {
				return usage(cronium.Invalid("--tail", strconv.Itoa(tail), "must be a number of lines, at least 1"))
			}
			var from time.Time
			if logsSince != "" {
				d, err := cronium.ParseDuration("--since", logsSince)
				if err != nil {
					return usage(err)
				}
				from = time.Now().Add(-d)
			}
			type chunk struct {
				Seq    uint64    `json:"seq"`
				Stream string    `json:"stream"`
				Data   string    `json:"data"`
				Time   time.Time `json:"time,omitzero"`
			}
			var all []chunk
			var after uint64
			for {
				var page struct {
					Items     []chunk `json:"items"`
					NextAfter uint64  `json:"next_after"`
				}
				if err := cl.do(c.Context(), "GET", fmt.Sprintf("/v1/executions/%s/logs?after=%d", url.PathEscape(args[0]), after), nil, &page); err != nil {
					return err
				}
				for _, it := range page.Items {
					if it.Time.IsZero() || !it.Time.Before(from) {
						all = append(all, it)
					}
				}
				if len(page.Items) == 0 {
					break
				}
				after = page.NextAfter
			}
			if tail > 0 {
				all = lastLines(all, tail, func(c chunk) string { return c.Data }, func(c chunk, s string) chunk { c.Data = s; return c })
			}
			if cl.structured() {
				if all == nil {
					all = []chunk{}
				}
				cl.printJSON(c.OutOrStdout(), map[string]any{"items": all})
				return nil
			}
			lineStart := map[string]bool{"stdout": true, "stderr": true}
			for _, it := range all {
				w := c.OutOrStdout()
				if it.Stream == "stderr" {
					w = c.ErrOrStderr()
				}
				if !timestamps {
					io.WriteString(w, it.Data)
					continue
				}
				stamp := "(time unknown)"
				if !it.Time.IsZero() {
					stamp = it.Time.Local().Format("2006-01-02T15:04:05.000Z07:00")
				}
				for _, line := range strings.SplitAfter(it.Data, "\n") {
					if line == "" {
						continue
					}
					if lineStart[it.Stream] {
						io.WriteString(w, stamp+" ")
					}
					io.WriteString(w, line)
					lineStart[it.Stream] = strings.HasSuffix(line, "\n")
				}
			}
			return nil
		},
	}
	logs.Flags().BoolVarP(&follow, "follow", "f", false, "stream live until the execution ends")
	logs.Flags().IntVar(&tail, "tail", 0, "print only the last N lines (both streams together)")
	logs.Flags().StringVar(&logsSince, "since", "", "only output received in the last DURATION, like 10m")
	logs.Flags().BoolVar(&timestamps, "timestamps", false, "start each line with when the server received it")
	cancel := &cobra.Command{
		Use: "cancel ID", Short: "Cancel a queued or running execution", Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			var x cronium.Execution
			err := cl.do(c.Context(), "POST", "/v1/executions/"+url.PathEscape(args[0])+"/cancel", nil, &x)
			var ae *apiError
			if errors.As(err, &ae) && ae.status == http.StatusNotFound {
				ae.Err.Message = fmt.Sprintf("there is no execution %s that you can see: `cronium exec list` lists yours", args[0])
			}
			if err != nil {
				return err
			}
			if cl.structured() {
				cl.printJSON(c.OutOrStdout(), x)
				return nil
			}
			fmt.Fprintln(c.OutOrStdout(), cancelled(x))
			return nil
		},
	}
	c.AddCommand(list, get, logs, cancel, newExecTopCmd(cl), newExecDebugCmd(cl), newExecBundleCmd(cl))
	return c
}

// usageLine says what a finished execution used.
func usageLine(u cronium.Usage) string {
	line := fmt.Sprintf("cpu %.3fs, peak memory %s, output %d bytes", u.CPUSeconds, human(u.PeakMemory), u.OutputBytes)
	if u.IORead+u.IOWrite > 0 {
		line += fmt.Sprintf(", disk %s read %s written", human(u.IORead), human(u.IOWrite))
	}
	if u.PidsPeak > 0 {
		line += fmt.Sprintf(", %d processes and threads at most", u.PidsPeak)
	}
	if u.CPUThrottledSeconds > 0 {
		line += fmt.Sprintf(", held back by the CPU limit %.2fs", u.CPUThrottledSeconds)
	}
	if u.Currency != "" {
		line += fmt.Sprintf(", cost %s %s", cronium.FormatMicros(u.CostMicros), u.Currency)
	}
	return line
}

// liveLine says what a running execution uses now.
func liveLine(u cronium.UsageSample) string {
	line := fmt.Sprintf("ran %s, cpu %.2fs, memory %s (peak %s), %d pids", time.Duration(u.Elapsed).Round(time.Second), u.CPUSeconds,
		human(u.MemoryBytes), human(u.PeakMemory), u.Pids)
	if u.IORead+u.IOWrite > 0 {
		line += fmt.Sprintf(", disk %s/%s", human(u.IORead), human(u.IOWrite))
	}
	if n := u.Network; n != nil {
		line += fmt.Sprintf(", network %s in %s out", human(n.BytesIn), human(n.BytesOut))
	}
	return line
}

// cancelled says what a cancel did to x, as the server answered it.
func cancelled(x cronium.Execution) string {
	switch {
	case x.Status != cronium.StatusFinished:
		return fmt.Sprintf("execution %s: cancelling: its script is being stopped; `cronium exec get %s` shows when it has ended", x.ID, x.ID)
	case x.Outcome != cronium.Cancelled:
		return fmt.Sprintf("execution %s finished (%s) before the cancel reached it", x.ID, x.Outcome)
	case x.StartedAt == nil:
		return fmt.Sprintf("execution %s cancelled before it started", x.ID)
	}
	return fmt.Sprintf("execution %s cancelled: its script was stopped", x.ID)
}

// follow streams logs over Server-Sent Events, reconnecting with
// Last-Event-ID so nothing is missed or repeated.
func (cl *apiClient) follow(ctx context.Context, id string, stdout, stderr io.Writer) error {
	var last, refused string
	for attempt := 0; ; attempt++ {
		req, _ := http.NewRequestWithContext(ctx, "GET", strings.TrimRight(cl.server, "/")+"/v1/executions/"+url.PathEscape(id)+"/logs?follow=true", nil)
		req.Header.Set("Accept", "text/event-stream")
		req.Header.Set("Authorization", "Bearer "+cl.key())
		if last != "" {
			req.Header.Set("Last-Event-ID", last)
		}
		resp, err := cl.http.Do(req)
		if err != nil {
			if attempt < 30 && ctx.Err() == nil {
				time.Sleep(time.Second)
				continue
			}
			return fmt.Errorf("follow logs: %w", err)
		}
		if resp.StatusCode != http.StatusOK {
			var e apiError
			json.NewDecoder(resp.Body).Decode(&e)
			resp.Body.Close()
			return &exitError{code: 1, err: &e}
		}
		ended, err := readSSE(resp.Body, func(evID, event, data string) {
			if evID != "" {
				last = evID
			}
			var text string
			json.Unmarshal([]byte(data), &text)
			switch event {
			case "stdout":
				io.WriteString(stdout, text)
			case "stderr":
				io.WriteString(stderr, text)
			case "end":
				fmt.Fprintf(stderr, "[cronium] execution ended: %s\n", data)
			case "unauthorized":
				var e struct {
					Message string `json:"message"`
				}
				if json.Unmarshal([]byte(data), &e) != nil || e.Message == "" {
					e.Message = "this key no longer works"
				}
				refused = e.Message
			}
		})
		resp.Body.Close()
		if refused != "" {
			// The key was revoked or expired while following: reconnecting
			// would only be refused.
			return &exitError{code: 1, err: fmt.Errorf("follow logs: %s", refused)}
		}
		if ended || ctx.Err() != nil {
			return nil
		}
		_ = err // connection dropped: reconnect and resume after the last id
	}
}

// readSSE parses a Server-Sent Events stream; it reports whether an "end" event arrived.
func readSSE(r io.Reader, on func(id, event, data string)) (bool, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	var id, event, data string
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if event != "" || data != "" {
				on(id, event, data)
				if event == "end" {
					return true, nil
				}
			}
			id, event, data = "", "", ""
		case strings.HasPrefix(line, "id: "):
			id = line[4:]
		case strings.HasPrefix(line, "event: "):
			event = line[7:]
		case strings.HasPrefix(line, "data: "):
			data += line[6:]
		}
	}
	return false, sc.Err()
}

func exitStr(p *int) string {
	if p == nil {
		return "-"
	}
	return fmt.Sprint(*p)
}

func ago(t time.Time) string { return time.Since(t).Round(time.Second).String() + " ago" }

func durStr(x cronium.Execution) string {
	if x.StartedAt == nil {
		return "-"
	}
	end := time.Now()
	if x.FinishedAt != nil {
		end = *x.FinishedAt
	}
	return end.Sub(*x.StartedAt).Round(time.Millisecond).String()
}

// ---- bootstrap: users and keys, straight on the store (no key exists yet)

func newUserCmd() *cobra.Command {
	c := &cobra.Command{Use: "user", Short: "Manage users: create works on the data directory (bootstrap), the others through the API (admins)"}
	f := &serveFlags{}
	var tier string
	var admin bool
	create := &cobra.Command{
		Use: "create NAME", Short: "Create a user and print their first API key", Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			cfg, err := f.load(c)
			if err != nil {
				return usage(err)
			}
			if _, ok := cfg.Tiers[tier]; !ok {
				problem := "is not a tier: want one of " + cronium.TierNames(cfg.Tiers)
				if _, ok := cfg.Tiers[strings.ToLower(tier)]; ok {
					problem = fmt.Sprintf("is not a tier: did you mean %q? Tier names are lowercase", strings.ToLower(tier))
				}
				return usage(cronium.Invalid("--tier", tier, problem))
			}
			// The API's rule: a name the API refuses is refused here too.
			if err := api.ValidateUser(args[0], tier, cfg.Tiers); err != nil {
				return usage(err)
			}
			return withStore(c.Context(), cfg, func(st store.Store) error {
				u, err := st.CreateUser(c.Context(), args[0], tier, admin)
				if errors.Is(err, cronium.ErrConflict) && !strings.Contains(err.Error(), "was deleted") {
					return fmt.Errorf("user %s already exists, unchanged: to give them another API key, run `cronium key create %s`", args[0], args[0])
				}
				if err != nil {
					return err
				}
				key, err := st.CreateKey(c.Context(), u.ID)
				if err != nil {
					return err
				}
				localAudit(c.Context(), st, "user.create", u.Name, fmt.Sprintf("tier %s, admin %v", u.Tier, u.Admin))
				kind := "user"
				if u.Admin {
					kind = "admin user" // may see and act for every user
				}
				fmt.Fprintf(c.ErrOrStderr(), "created %s %s (tier %s). Their API key, shown only this once (set CRONIUM_TOKEN to it to act as %s):\n", kind, u.Name, u.Tier, u.Name)
				fmt.Fprintln(c.OutOrStdout(), key)
				return nil
			})
		},
	}
	f.register(create)
	create.Flags().StringVar(&tier, "tier", "free", "free, pro or enterprise")
	create.Flags().BoolVar(&admin, "admin", false, "may see and act for every user")
	c.AddCommand(create, userListCmd(), userGetCmd(), userDeleteCmd(), userSetTierCmd())
	return c
}

func newKeyCmd() *cobra.Command {
	c := &cobra.Command{Use: "key", Short: "Manage API keys: create works on the data directory (bootstrap), list and revoke through the API"}
	f := &serveFlags{}
	var name, expires string
	create := &cobra.Command{
		Use: "create USER", Short: "Create another API key for a user and print it", Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			cfg, err := f.load(c)
			if err != nil {
				return usage(err)
			}
			return withStore(c.Context(), cfg, func(st store.Store) error {
				u, err := st.UserByName(c.Context(), args[0])
				if errors.Is(err, cronium.ErrNotFound) {
					return fmt.Errorf("user %s does not exist: create them with `cronium user create %s` (which prints their first key)", args[0], args[0])
				}
				if err != nil {
					return err
				}
				var until *time.Time
				if expires != "" {
					d, err := cronium.ParseKeyLife("--expires", expires)
					if err != nil {
						return usage(err)
					}
					at := time.Now().Add(d).UTC()
					until = &at
				}
				key, info, err := st.NewKey(c.Context(), u.ID, name, until)
				if err != nil {
					return err
				}
				localAudit(c.Context(), st, "key.create", fmt.Sprintf("%s/key %d", u.Name, info.ID), "")
				if until != nil {
					fmt.Fprintf(c.ErrOrStderr(), "key %d of %s, valid until %s, shown only this once:\n", info.ID, u.Name, until.Format(time.RFC3339))
				}
				fmt.Fprintln(c.OutOrStdout(), key)
				return nil
			})
		},
	}
	f.register(create)
	create.Flags().StringVar(&name, "name", "", "a name to recognise the key by, like laptop or ci")
	create.Flags().StringVar(&expires, "expires", "", "how long the key works, like 720h or 30d (default: until revoked)")
	c.AddCommand(create, keyListCmd(), keyRevokeCmd())
	return c
}

func withStore(ctx context.Context, cfg serverConfig, fn func(store.Store) error) error {
	if err := privateDir(cfg.DataDir); err != nil {
		return err
	}
	st, err := openStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	return fn(st)
}
