package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	cronium "github.com/cronium/executor"
	"github.com/cronium/executor/agent"
	"github.com/cronium/executor/api"
)

func newExecDebugCmd(cl *apiClient) *cobra.Command {
	var remove bool
	c := &cobra.Command{Use: "debug ID", Short: "Open a shell in a failed execution's kept sandbox (its event's debug.keep_failed); --remove removes it", Args: cobra.ExactArgs(1),
		Long: "Open an interactive shell in the sandbox a failed or timed-out run left when its event sets debug.keep_failed:\n" +
			"its files (/workspace, /tmp) as the script left them, as the script's user, with its limits, without network\n" +
			"or secrets. Only the execution's owner may; each session is recorded on the execution. Exit the shell (or\n" +
			"Ctrl-D) to leave: the sandbox stays frozen until its time is up, or until `cronium exec debug ID --remove`.",
		RunE: func(c *cobra.Command, args []string) error {
			id := args[0]
			if remove {
				var x cronium.Execution
				if err := cl.do(c.Context(), "DELETE", "/v1/executions/"+url.PathEscape(id)+"/kept", nil, &x); err != nil {
					return err
				}
				fmt.Fprintf(c.OutOrStdout(), "the kept sandbox of execution %s is removed\n", id)
				return nil
			}
			code, err := cl.debug(c.Context(), id, os.Stdin, c.OutOrStdout())
			if err != nil {
				return err
			}
			if code != 0 {
				return &exitError{code: code}
			}
			return nil
		}}
	c.Flags().BoolVar(&remove, "remove", false, "remove the kept sandbox now instead of opening a shell")
	return c
}

// debug runs a debug session of execution id on in and out (raw mode when
// in is a terminal) and returns the shell's exit code.
func (cl *apiClient) debug(ctx context.Context, id string, in *os.File, out io.Writer) (int, error) {
	base, err := url.Parse(strings.TrimRight(cl.server, "/"))
	if err != nil || base.Host == "" {
		return -1, usage(cronium.Invalid("--server", cl.server, "is not a server URL like http://127.0.0.1:8080"))
	}
	fd := int(in.Fd())
	tty := term.IsTerminal(fd)
	size := cronium.TermSize{Rows: 24, Cols: 80}
	if tty {
		if w, h, err := term.GetSize(fd); err == nil && w > 0 && h > 0 {
			size = cronium.TermSize{Rows: uint16(h), Cols: uint16(w)}
		}
	}
	q := url.Values{"rows": {fmt.Sprint(size.Rows)}, "cols": {fmt.Sprint(size.Cols)}}
	if t := os.Getenv("TERM"); t != "" {
		q.Set("term", t)
	}
	var d net.Dialer
	var conn net.Conn
	host := base.Host
	switch base.Scheme {
	case "https":
		if !strings.Contains(host, ":") {
			host += ":443"
		}
		conn, err = (&tls.Dialer{NetDialer: &d, Config: &tls.Config{ServerName: base.Hostname()}}).DialContext(ctx, "tcp", host)
	default:
		if !strings.Contains(host, ":") {
			host += ":80"
		}
		conn, err = d.DialContext(ctx, "tcp", host)
	}
	if err != nil {
		return -1, fmt.Errorf("reach the server: %w", err)
	}
	defer conn.Close()
	req, _ := http.NewRequestWithContext(ctx, "POST", base.String()+"/v1/executions/"+url.PathEscape(id)+"/debug?"+q.Encode(), nil)
	req.Header.Set("Authorization", "Bearer "+cl.key())
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", api.DebugProtocol)
	if err := req.Write(conn); err != nil {
		return -1, fmt.Errorf("send the debug request: %w", err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		return -1, fmt.Errorf("read the server's answer: %w", err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		defer resp.Body.Close()
		e := &apiError{status: resp.StatusCode}
		if json.NewDecoder(resp.Body).Decode(e) != nil || e.Err.Message == "" {
			e.Err.Message = "the server answered " + resp.Status
		}
		return -1, &exitError{code: 1, err: e}
	}
	if tty {
		old, err := term.MakeRaw(fd)
		if err != nil {
			return -1, fmt.Errorf("put the terminal in raw mode: %w", err)
		}
		defer term.Restore(fd, old)
	}
	var wmu sync.Mutex
	send := func(t agent.FrameType, p []byte) error {
		wmu.Lock()
		defer wmu.Unlock()
		return agent.WriteFrame(conn, t, p)
	}
	winch := make(chan os.Signal, 1)
	if tty {
		signal.Notify(winch, syscall.SIGWINCH)
		defer signal.Stop(winch)
	}
	done := make(chan struct{})
	defer close(done)
	go func() { // window size changes, until the session ends
		for {
			select {
			case <-winch:
				if w, h, err := term.GetSize(fd); err == nil {
					b, _ := json.Marshal(cronium.TermSize{Rows: uint16(h), Cols: uint16(w)})
					send(api.DebugResize, b)
				}
			case <-done:
				return
			}
		}
	}()
	go func() { // the keys, until stdin ends (the shell then sees the end too)
		buf := make([]byte, 4096)
		for {
			n, err := in.Read(buf)
			if n > 0 && send(api.DebugData, append([]byte(nil), buf[:n]...)) != nil {
				return
			}
			if err != nil {
				send(api.DebugData, []byte{4}) // Ctrl-D: the shell reads the end of its input
				return
			}
		}
	}()
	for {
		t, p, err := agent.ReadFrame(br)
		if err != nil {
			return -1, fmt.Errorf("the debug session ended without its exit: %w", err)
		}
		switch t {
		case api.DebugData:
			out.Write(p)
		case api.DebugExit:
			var end api.DebugEnd
			json.Unmarshal(p, &end)
			if end.Error != "" {
				if tty {
					fmt.Fprint(out, "\r\n")
				}
				return end.Exit, &exitError{code: 1, err: fmt.Errorf("debug session: %s", end.Error)}
			}
			return end.Exit, nil
		}
	}
}

func newExecBundleCmd(cl *apiClient) *cobra.Command {
	return &cobra.Command{Use: "bundle ID [-o FILE.tar.gz]", Short: "Download an execution's trace bundle (tar.gz): result, limits, logs, usage timeline, agent trail, OOM report, the engine's view", Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			id := args[0]
			file := cl.output // -o names the file here
			switch file {
			case "table", "":
				file = id + "-bundle.tar.gz"
			case "wide", "json", "yaml":
				return usage(cronium.Invalid("-o", file, "names the bundle's file here, like -o trace.tar.gz"))
			}
			req, err := http.NewRequestWithContext(c.Context(), "GET", strings.TrimRight(cl.server, "/")+"/v1/executions/"+url.PathEscape(id)+"/bundle", nil)
			if err != nil {
				return err
			}
			req.Header.Set("Authorization", "Bearer "+cl.key())
			resp, err := cl.http.Do(req)
			if err != nil {
				return fmt.Errorf("reach the server: %w", err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				e := &apiError{status: resp.StatusCode}
				if json.NewDecoder(resp.Body).Decode(e) != nil || e.Err.Message == "" {
					e.Err.Message = "the server answered " + resp.Status
				}
				return &exitError{code: 1, err: e}
			}
			f, err := os.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
			if err != nil {
				return fmt.Errorf("write the bundle: %w (an existing file is never overwritten)", err)
			}
			n, err := io.Copy(f, resp.Body)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				os.Remove(file)
				return fmt.Errorf("write the bundle: %w", err)
			}
			fmt.Fprintf(c.OutOrStdout(), "wrote %s (%s): tar -xzf %s\n", file, human(n), file)
			return nil
		}}
}
