package main

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestRunCanceledBySignal sends SIGINT and SIGTERM to cgmon while the
// command sleeps: the command is killed, the report written, and cgmon
// exits 130 or 143.
func TestRunCanceledBySignal(t *testing.T) {
	for _, c := range []struct {
		sig  syscall.Signal
		want int
	}{{syscall.SIGINT, 130}, {syscall.SIGTERM, 143}} {
		t.Run(c.sig.String(), func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "r.json")
			cmd := exec.Command(cgmonBin, "run", "--id", "e2e-cancel", "--format", "json", "-o", out, "--", "sleep", "30")
			// Its own process group, so the signal reaches cgmon only,
			// as from `kill`, not from a terminal's Ctrl-C.
			cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			// The command runs: cgmon catches signals by then.
			waitForChild(t, cmd.Process.Pid, "sleep")
			start := time.Now()
			if err := cmd.Process.Signal(c.sig); err != nil {
				t.Fatal(err)
			}
			err := cmd.Wait()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != c.want {
				t.Fatalf("wait: %v (want exit %d); stderr %q", err, c.want, stderr.String())
			}
			if el := time.Since(start); el > 5*time.Second {
				t.Errorf("cgmon took %v to cancel", el)
			}
			rep, _ := readReport(t, out)
			if rep.Status != "canceled" {
				t.Errorf("status %q, want canceled", rep.Status)
			}
		})
	}
}

// freePort returns a loopback address that was free a moment ago.
func freePort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// TestBatchMetricsAddr scrapes /metrics while a batch runs: the finished
// executions are counted by language and status.
func TestBatchMetricsAddr(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "in.ndjson")
	lines := `{"id": "e2e-m1", "language": "python", "command": ["true"]}
{"id": "e2e-m2", "language": "python", "command": ["sh", "-c", "exit 1"]}
{"id": "e2e-m3", "language": "go", "command": ["true"]}
{"id": "e2e-m4", "language": "go", "command": ["sleep", "3"]}
`
	if err := os.WriteFile(in, []byte(lines), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := freePort(t)
	cmd := exec.Command(cgmonBin, "batch", "--parallel", "4", "--metrics-addr", addr, "-o", filepath.Join(dir, "out.ndjson"), in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	want := []string{
		`cgmon_executions_total{language="python",status="success"} 1`,
		`cgmon_executions_total{language="python",status="error"} 1`,
		`cgmon_executions_total{language="go",status="success"} 1`,
	}
	var body string
	deadline := time.Now().Add(2500 * time.Millisecond)
	for time.Now().Before(deadline) {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			body = string(b)
			ok := true
			for _, w := range want {
				ok = ok && strings.Contains(body, w)
			}
			if ok {
				break
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, w := range want {
		if !strings.Contains(body, w) {
			t.Errorf("/metrics lacks %s while the batch runs:\n%s", w, body)
		}
	}
	if strings.Contains(body, "e2e-m") {
		t.Error("/metrics exposes execution ids")
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("batch: %v; stderr %s", err, stderr.String())
	}
	if _, err := http.Get("http://" + addr + "/metrics"); err == nil {
		t.Error("/metrics still served after the batch ended")
	}
}
