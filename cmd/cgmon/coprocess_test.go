package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// coprocess is `cgmon batch ... -` driven line by line, as a sandbox in
// another language drives it.
type coprocess struct {
	t       *testing.T
	cmd     *exec.Cmd
	in      *os.File // the write end of cgmon's standard input
	outR    *os.File // the read end of its standard output
	out     *bufio.Reader
	stderr  bytes.Buffer
	done    chan struct{}
	waitErr error
}

func startCoprocess(t *testing.T, args ...string) *coprocess {
	t.Helper()
	c := &coprocess{t: t, done: make(chan struct{})}
	c.cmd = exec.Command(cgmonBin, append(append([]string{"batch"}, args...), "-")...)
	// Its own process group: a signal the test sends reaches cgmon only.
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	c.cmd.Stderr = &c.stderr
	inR, inW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	c.cmd.Stdin, c.cmd.Stdout = inR, outW
	c.in, c.outR, c.out = inW, outR, bufio.NewReader(outR)
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	inR.Close()
	outW.Close()
	go func() {
		c.waitErr = c.cmd.Wait()
		close(c.done)
	}()
	t.Cleanup(func() {
		_ = c.cmd.Process.Kill()
		<-c.done
		c.in.Close()
		c.outR.Close()
	})
	return c
}

func (c *coprocess) send(line string) {
	c.t.Helper()
	if _, err := io.WriteString(c.in, line+"\n"); err != nil {
		c.t.Fatalf("writing %q: %v", line, err)
	}
}

// result reads the next result line, failing after 20 s.
func (c *coprocess) result() map[string]any {
	c.t.Helper()
	type read struct {
		line string
		err  error
	}
	ch := make(chan read, 1)
	go func() {
		l, err := c.out.ReadString('\n')
		ch <- read{l, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			c.t.Fatalf("reading a result line: %v (read %q); stderr %q", r.err, r.line, c.stderr.String())
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(r.line), &m); err != nil {
			c.t.Fatalf("result line %q: %v", r.line, err)
		}
		return m
	case <-time.After(20 * time.Second):
		c.t.Fatalf("no result line within 20 s; stderr %q", c.stderr.String())
	}
	return nil
}

// exit waits for cgmon to exit, at most 20 s, and returns its status.
func (c *coprocess) exit() int {
	c.t.Helper()
	select {
	case <-c.done:
		return exitCode(c.t, c.waitErr)
	case <-time.After(20 * time.Second):
		c.t.Fatalf("cgmon did not exit within 20 s; stderr %q", c.stderr.String())
	}
	return -1
}

// TestBatchProtocol drives the co-process as the README's protocol section
// describes it: a result per line as soon as its execution ends, in
// completion order, matched by id; a result line for every line that
// cannot run, with its id when it could be read; blank lines skipped;
// at the end of the input, the summary and exit status 1 for the rejected
// lines.
func TestBatchProtocol(t *testing.T) {
	c := startCoprocess(t, "--parallel", "2", "-o", "-")
	check := func(m map[string]any, key string, want any) {
		t.Helper()
		if got := m[key]; got != want {
			t.Errorf("result %v: %s = %v, want %v", m, key, got, want)
		}
	}

	// Streaming: the result comes back before the next line is written.
	c.send(`{"id": "p1", "language": "sh", "command": ["sh", "-c", "exit 3"]}`)
	r := c.result()
	check(r, "protocol", 1.0)
	check(r, "schema_version", 2.0)
	check(r, "id", "p1")
	check(r, "input_line", 1.0)
	check(r, "status", "error")
	check(r, "exit_code", 3.0)
	check(r, "language", "sh")

	// Completion order: the fast line's result comes first.
	c.send(`{"id": "slow", "command": ["sleep", "2"]}`)
	c.send(`{"id": "fast", "command": ["true"]}`)
	check(c.result(), "id", "fast")
	r = c.result()
	check(r, "id", "slow")
	check(r, "input_line", 2.0)

	// Lines that cannot run: each answered, with the id when readable.
	c.send(`{"id": "typo", "command": ["true"], "timout": "5s"}`)
	r = c.result()
	check(r, "status", "rejected")
	check(r, "id", "typo")
	check(r, "input_line", 4.0)
	if e, _ := r["error"].(string); !strings.Contains(e, "timout") {
		t.Errorf("rejected line's error %q does not name the unknown field", e)
	}
	c.send(`not json`)
	r = c.result()
	check(r, "status", "rejected")
	check(r, "input_line", 5.0)
	if _, ok := r["id"]; ok {
		t.Errorf("a line that is not JSON has no id to give back: %v", r)
	}
	c.send(`{"id": "a/b", "command": ["true"]}`)
	r = c.result()
	check(r, "status", "rejected")
	check(r, "id", "a/b")

	// A blank line has no result, and counts as a line.
	c.send("")
	c.send(`{"id": "p8", "command": ["true"]}`)
	r = c.result()
	check(r, "id", "p8")
	check(r, "input_line", 8.0)

	if err := c.in.Close(); err != nil {
		t.Fatal(err)
	}
	if code := c.exit(); code != 1 {
		t.Errorf("exit status %d, want 1 (rejected lines); stderr %q", code, c.stderr.String())
	}
	if rest, _ := io.ReadAll(c.out); len(rest) > 0 {
		t.Errorf("output after the last result: %q", rest)
	}
	for _, want := range []string{"Executions: 4 ", "Rejected input lines (not run): 3 (line 4, 5, 6)"} {
		if !strings.Contains(c.stderr.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, c.stderr.String())
		}
	}
}

// TestBatchSignals sends SIGTERM and SIGINT to a co-process, idle while it
// waits for input and while an execution runs: it exits at once (128+N),
// the running execution killed and reported as canceled.
func TestBatchSignals(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String()+"/waiting", func(t *testing.T) {
			c := startCoprocess(t, "-o", "-")
			// A first result proves cgmon is past its start-up, its
			// signal handlers in place; then it waits for the next line.
			c.send(`{"id": "first", "command": ["true"]}`)
			c.result()
			time.Sleep(100 * time.Millisecond)
			if err := c.cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			if code := c.exit(); code != 128+int(sig) {
				t.Errorf("exit status %d, want %d; stderr %q", code, 128+int(sig), c.stderr.String())
			}
			if want := "Interrupted by " + map[syscall.Signal]string{syscall.SIGTERM: "SIGTERM", syscall.SIGINT: "SIGINT"}[sig]; !strings.Contains(c.stderr.String(), want) {
				t.Errorf("summary does not say %q:\n%s", want, c.stderr.String())
			}
		})
		t.Run(sig.String()+"/running", func(t *testing.T) {
			c := startCoprocess(t, "-o", "-")
			c.send(`{"id": "quick", "command": ["true"]}`)
			c.result()
			c.send(`{"id": "long", "command": ["sleep", "30"]}`)
			waitForChild(t, c.cmd.Process.Pid, "sleep")
			start := time.Now()
			if err := c.cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			r := c.result()
			if r["id"] != "long" || r["status"] != "canceled" {
				t.Errorf("result %v, want long canceled", r)
			}
			if code := c.exit(); code != 128+int(sig) {
				t.Errorf("exit status %d, want %d; stderr %q", code, 128+int(sig), c.stderr.String())
			}
			if el := time.Since(start); el > 10*time.Second {
				t.Errorf("cgmon took %v to end after %v", el, sig)
			}
		})
	}
}

// waitForChild waits, at most 20 s, until process pid has a child named
// comm: the execution has started.
func waitForChild(t *testing.T, pid int, comm string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
		for _, f := range tasks {
			b, _ := os.ReadFile(f)
			for _, child := range strings.Fields(string(b)) {
				name, _ := os.ReadFile("/proc/" + child + "/comm")
				if strings.TrimSpace(string(name)) == comm {
					return
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("process %d has no child %q after 20 s", pid, comm)
}

// batchSummary is the part of `--format json` summaries the tests read.
type batchSummary struct {
	Summary struct {
		Total int `json:"total_executions"`
	} `json:"summary"`
	OutputError string `json:"output_error"`
	InputError  string `json:"input_error"`
	ResultsLost int    `json:"results_lost"`
}

func readSummary(t *testing.T, path string) batchSummary {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var s batchSummary
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatalf("summary %q: %v", b, err)
	}
	return s
}

// TestBatchOutputFull runs 20 lines into /dev/full: the first failed write
// stops the batch, so one execution runs (not 20), and the exit status is
// 74 with the reason.
func TestBatchOutputFull(t *testing.T) {
	if _, err := os.Stat("/dev/full"); err != nil {
		t.Skip("this host has no /dev/full")
	}
	dir := t.TempDir()
	in, sum := filepath.Join(dir, "in.ndjson"), filepath.Join(dir, "sum.json")
	var lines strings.Builder
	for range 20 {
		lines.WriteString(`{"command": ["true"]}` + "\n")
	}
	if err := os.WriteFile(in, []byte(lines.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	r := cgmon(t, "", "batch", "--parallel", "1", "-o", "/dev/full", "--summary", sum, "--format", "json", in)
	if r.code != 74 {
		t.Errorf("exit status %d, want 74", r.code)
	}
	if !strings.Contains(r.stderr, "cgmon: batch: writing results: write /dev/full: no space left on device; 1 results were lost") {
		t.Errorf("stderr %q does not say that the results were lost", r.stderr)
	}
	s := readSummary(t, sum)
	if s.Summary.Total != 1 || s.ResultsLost != 1 || !strings.Contains(s.OutputError, "no space left") {
		t.Errorf("summary %+v: want 1 execution, 1 result lost and the output error", s)
	}
}

// TestBatchReaderGone closes the co-process's output after the first
// result, as a client that died does: the next result's write fails, and
// cgmon stops on its own (its input still open) with status 74 instead of
// dying of SIGPIPE or waiting for more lines.
func TestBatchReaderGone(t *testing.T) {
	dir := t.TempDir()
	sum := filepath.Join(dir, "sum.json")
	c := startCoprocess(t, "-o", "-", "--summary", sum, "--format", "json")
	c.send(`{"id": "one", "command": ["true"]}`)
	c.result()
	c.outR.Close() // the pipe's reader is gone
	c.send(`{"id": "two", "command": ["true"]}`)
	if code := c.exit(); code != 74 {
		t.Errorf("exit status %d, want 74; stderr %q", code, c.stderr.String())
	}
	s := readSummary(t, sum)
	if !strings.Contains(s.OutputError, "broken pipe") || s.ResultsLost != 1 {
		t.Errorf("summary %+v: want the broken pipe and 1 result lost", s)
	}
}

// TestBatchEndlessLine feeds /dev/zero: no line ever ends. cgmon reads at
// most 64 MiB of it, in bounded memory, and stops with a clear error.
func TestBatchEndlessLine(t *testing.T) {
	if _, err := os.Stat("/dev/zero"); err != nil {
		t.Skip("this host has no /dev/zero")
	}
	empty, emptyRSS := batchFrom(t, "/dev/null")
	if empty.code != 0 {
		t.Fatalf("batch of no lines: exit %d, stderr %q", empty.code, empty.stderr)
	}
	r, rss := batchFrom(t, "/dev/zero")
	if r.code != 74 {
		t.Errorf("exit status %d, want 74", r.code)
	}
	if want := "cgmon: batch: reading standard input: line 1: no end of line within 64 MiB: the input is not NDJSON"; !strings.Contains(r.stderr, want) {
		t.Errorf("stderr %q lacks %q", r.stderr, want)
	}
	// Bounded memory: a few MiB above a batch of nothing, far below the
	// 64 MiB read (a reader that kept the line would hold all of it).
	if rss-emptyRSS > 24<<10 {
		t.Errorf("cgmon's peak RSS was %d KiB reading an endless line, %d KiB reading nothing", rss, emptyRSS)
	}
}

// batchFrom runs `cgmon batch -` with its standard input from path,
// failing after 60 s, and returns the result and cgmon's peak RSS in KiB.
func batchFrom(t *testing.T, path string) (result, int64) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd := exec.Command(cgmonBin, "batch", "-o", "-", "-")
	cmd.Stdin = f
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err = <-done:
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("cgmon batch < %s did not end within 60 s", path)
	}
	r := result{code: exitCode(t, err), stdout: stdout.String(), stderr: stderr.String()}
	return r, cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss
}

// TestBatchLongLine skips a 2 MiB line, answering it as rejected, and runs
// the next one.
func TestBatchLongLine(t *testing.T) {
	in := strings.Repeat("x", 2<<20) + "\n" + `{"id": "after", "command": ["true"]}` + "\n"
	r := cgmon(t, in, "batch", "-o", "-", "-")
	if r.code != 1 {
		t.Errorf("exit status %d, want 1 (a rejected line)", r.code)
	}
	lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d result lines, want 2: %q", len(lines), r.stdout)
	}
	var first, second map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &first); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(lines[1]), &second); err != nil {
		t.Fatal(err)
	}
	if first["status"] != "rejected" || first["input_line"] != 1.0 || !strings.Contains(first["error"].(string), "longer than 1048576 bytes") {
		t.Errorf("first result %v: want line 1 rejected as too long", first)
	}
	if second["id"] != "after" || second["status"] != "success" || second["input_line"] != 2.0 {
		t.Errorf("second result %v: want line 2 run", second)
	}
}

// TestReadmeProtocolSession runs the protocol session the README shows, as
// printed, and compares its output with the README's: whole lines, or up
// to "..." where the README shortens a record.
func TestReadmeProtocolSession(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	i := strings.Index(text, "### The batch protocol")
	if i < 0 {
		t.Fatal("README has no protocol section")
	}
	text = text[i:]
	const cmdFence, outFence = "```sh\n", "```\n\n```\n"
	c := strings.Index(text, cmdFence)
	o := strings.Index(text, outFence)
	if c < 0 || o < c {
		t.Fatal("the protocol section has no command followed by its output")
	}
	command := strings.TrimSuffix(text[c+len(cmdFence):o], "\n")
	out := text[o+len(outFence):]
	want := strings.Split(strings.TrimSuffix(out[:strings.Index(out, "```")], "\n"), "\n")

	sh := exec.Command("sh", "-c", command)
	sh.Env = append(os.Environ(), "PATH="+filepath.Dir(cgmonBin)+":"+os.Getenv("PATH"))
	got, err := sh.Output()
	if code := exitCode(t, err); code != 1 {
		t.Errorf("%s: exit status %d, want 1 (a rejected line)", command, code)
	}
	lines := strings.Split(strings.TrimSuffix(string(got), "\n"), "\n")
	if len(lines) != len(want) {
		t.Fatalf("%d output lines, the README shows %d:\n%s", len(lines), len(want), got)
	}
	for k, w := range want {
		if prefix, short := strings.CutSuffix(w, " ...}"); short {
			if !strings.HasPrefix(lines[k], prefix) {
				t.Errorf("line %d:\n got %s\nwant %s...", k+1, lines[k], prefix)
			}
		} else if lines[k] != w {
			t.Errorf("line %d:\n got %s\nwant %s", k+1, lines[k], w)
		}
	}
}
