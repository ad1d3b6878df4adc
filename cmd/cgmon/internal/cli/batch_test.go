package cli

import (
	"bytes"
	"errors"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cgmon/cgmon/metrics"
)

func TestParseBatchLine(t *testing.T) {
	s, repeat, err := parseBatchLine([]byte(`{"id": "a1", "language": "go", "code_length": 10, "command": ["go", "run", "."], "timeout": "5s", "limits": {"pids": {"limit": 5}}, "wait_all": true, "repeat": 3}`))
	if err != nil {
		t.Fatal(err)
	}
	if s.ID != "a1" || s.Language != "go" || s.CodeLength != 10 || len(s.Command) != 3 || s.Timeout != 5*time.Second || !s.WaitAll || *s.Limits.Pids.Limit != 5 || repeat != 3 {
		t.Errorf("spec %+v, repeat %d", s, repeat)
	}
	s, repeat, err = parseBatchLine([]byte(`{"command": ["true"], "timeout": 1.5}`))
	if err != nil || s.Timeout != 1500*time.Millisecond || s.Language != "unknown" || repeat != 1 {
		t.Errorf("numeric timeout: %+v, repeat %d, %v", s, repeat, err)
	}
	s, _, err = parseBatchLine([]byte(`{"command": ["true"], "timeout": "2s", "cpu_time_limit": "1.5s"}`))
	if err != nil || s.CPUTimeLimit != 1500*time.Millisecond || s.Timeout != 2*time.Second {
		t.Errorf("cpu_time_limit: %+v, %v", s, err)
	}
	s, _, err = parseBatchLine([]byte(`{"command": ["true"], "cpu_time_limit": 0.005}`))
	if err != nil || s.CPUTimeLimit != 5*time.Millisecond {
		t.Errorf("numeric cpu_time_limit: %+v, %v", s, err)
	}
	for line, msg := range map[string]string{
		`{"command": ["true"], "cpu_time_limit": "-1s"}`: `"cpu_time_limit" "-1s" is negative`,
		`{"command": ["true"], "cpu_time_limit": "1 s"}`: `"cpu_time_limit" "1 s": not a duration`,
		`{"command": ["true"], "cpu_time_limit": -0.5}`:  `"cpu_time_limit" -0.5 is out of range`,
		`{"command": ["true"], "cpu_time_limit": true}`:  `"cpu_time_limit" true: want a duration`,
		`{"command": ["true"], "cpu_time_limits": "1s"}`: "cpu_time_limits",
		`{"command": ["true"]`:                           "not a JSON",
		`{"command": []}`:                                "command",
		`{"id": "x"}`:                                    "command",
		`{"command": ["true"], "timout": "5s"}`:          "timout",
		`{"command": ["true"], "timeout": "5 parsecs"}`:  "timeout",
		`{"command": ["true"], "timeout": "-1s"}`:        "negative",
		`{"command": ["true"], "timeout": -3}`:           "out of range",
		`{"command": ["true"], "limits": {"cpu": 1}}`:    "limits",
		`{"command": ["true"], "code_length": -1}`:       "negative",
		`{"command": ["true"]} {"command": ["true"]}`:    "more than one",
		`["true"]`: "not a JSON",
		`{"id": "r", "command": ["true"], "repeat": 0}`:     `"repeat" 0: want a whole number from 1 to 10000`,
		`{"id": "r", "command": ["true"], "repeat": 2.5}`:   "whole number",
		`{"id": "r", "command": ["true"], "repeat": "3"}`:   "whole number",
		`{"id": "r", "command": ["true"], "repeat": 10001}`: "whole number",
		`{"id": "r", "command": ["true"], "repeat": 1e300}`: "whole number",
		`{"command": ["true"], "repeat": 2}`:                `"repeat" needs an "id"`,
	} {
		_, _, err := parseBatchLine([]byte(line))
		if err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("%s: error %v, want one mentioning %q", line, err, msg)
		}
	}
}

func TestReadLines(t *testing.T) {
	long := strings.Repeat("x", maxBatchLine+10)
	in := "a\r\n\nb\n" + long + "\nc"
	type got struct {
		n       int
		line    string
		tooLong bool
	}
	var lines []got
	err := readLines(strings.NewReader(in), func(n int, line []byte, tooLong bool) bool {
		lines = append(lines, got{n, string(line), tooLong})
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []got{{1, "a", false}, {2, "", false}, {3, "b", false}, {4, "", true}, {5, "c", false}}
	if len(lines) != len(want) {
		t.Fatalf("lines %v, want %v", lines, want)
	}
	for i := range want {
		if lines[i] != want[i] {
			t.Errorf("line %d: %+v, want %+v", i, lines[i], want[i])
		}
	}
}

// endless is an input whose one line never ends; it counts what was read.
type endless struct{ read int }

func (e *endless) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 'x'
	}
	e.read += len(p)
	return len(p), nil
}

// TestReadLinesEndless checks that a line without an end stops reading
// with an error naming it, after at most maxSkippedLine bytes and a few
// buffers more, not never.
func TestReadLinesEndless(t *testing.T) {
	in := &endless{}
	calls := 0
	err := readLines(io.MultiReader(strings.NewReader("{}\n"), in), func(int, []byte, bool) bool {
		calls++
		return true
	})
	if !errors.Is(err, errEndlessLine) || !strings.Contains(err.Error(), "line 2: ") {
		t.Errorf("error %v, want line 2 named and errEndlessLine", err)
	}
	if calls != 1 {
		t.Errorf("%d lines passed, want 1 (the endless one is not a line)", calls)
	}
	if in.read > maxSkippedLine+maxBatchLine+2*readChunk {
		t.Errorf("read %d bytes of an endless line, want at most %d", in.read, maxSkippedLine+maxBatchLine+2*readChunk)
	}
}

// TestReadLinesLongAtEnd skips a too-long last line without a newline,
// and stops when fn says so.
func TestReadLinesLongAtEnd(t *testing.T) {
	var got []bool
	err := readLines(strings.NewReader("a\n"+strings.Repeat("y", 3*maxBatchLine)), func(n int, line []byte, tooLong bool) bool {
		got = append(got, tooLong)
		return true
	})
	if err != nil || len(got) != 2 || got[0] || !got[1] {
		t.Errorf("lines %v, error %v; want a line then a too-long one", got, err)
	}
	got = nil
	err = readLines(strings.NewReader("a\nb\nc\n"), func(n int, line []byte, tooLong bool) bool {
		got = append(got, tooLong)
		return n < 2
	})
	if err != nil || len(got) != 2 {
		t.Errorf("read %d lines after fn returned false at line 2 (error %v)", len(got), err)
	}
}

// TestLineID gives back the id of a line that is not a valid execution
// when it can be read, and nothing otherwise.
func TestLineID(t *testing.T) {
	for line, want := range map[string]string{
		`{"id": "x1", "command": []}`:      "x1",
		`{"id": "x2", "timout": "5s"}`:     "x2",
		`{"id": 7, "command": ["true"]}`:   "",
		`{"id": "x3", "command": ["true"]`: "",
		`not json`:                         "",
	} {
		if got := lineID([]byte(line)); got != want {
			t.Errorf("lineID(%s) = %q, want %q", line, got, want)
		}
	}
}

func TestBatchSummaryHuman(t *testing.T) {
	var b bytes.Buffer
	r := &BatchResult{BadLines: []BadLine{{Line: 3, Error: "x"}}}
	if err := r.WriteHuman(&b); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "Executions: 0") || !strings.Contains(b.String(), "line 3") {
		t.Errorf("summary:\n%s", b.String())
	}
}

// TestPollableStdin checks that a pipe on standard input is read through
// a description of its own that a deadline can interrupt, leaving the
// original blocking, and that a regular file is left as it is.
func TestPollableStdin(t *testing.T) {
	// A blocking pipe, as a shell or Python gives a child (os.Pipe's
	// ends are non-blocking).
	var fds [2]int
	if err := unix.Pipe2(fds[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	r, w := os.NewFile(uintptr(fds[0]), "r"), os.NewFile(uintptr(fds[1]), "w")
	defer r.Close()
	defer w.Close()
	if _, err := os.Stat("/proc/self/fd"); err != nil {
		t.Skip("no /proc/self/fd to reopen standard input through")
	}
	in := pollableStdin(r)
	p, ok := in.(*os.File)
	if !ok || p == r {
		t.Fatalf("a pipe was not reopened: got %T", in)
	}
	defer p.Close()
	if _, err := w.Write([]byte("line\n")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 16)
	if n, err := p.Read(buf); err != nil || string(buf[:n]) != "line\n" {
		t.Fatalf("read %q, %v through the new description", buf[:n], err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := p.Read(buf)
		done <- err
	}()
	time.Sleep(50 * time.Millisecond)
	if !interruptRead(p) {
		t.Fatal("interruptRead: a deadline cannot be set")
	}
	select {
	case err := <-done:
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("interrupted read: %v, want a deadline error", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a waiting read was not interrupted")
	}
	var flags int
	rc, _ := r.SyscallConn()
	_ = rc.Control(func(fd uintptr) { flags, _ = unix.FcntlInt(fd, unix.F_GETFL, 0) })
	if flags&unix.O_NONBLOCK != 0 {
		t.Error("the original description of the pipe was made non-blocking")
	}

	f, err := os.CreateTemp(t.TempDir(), "in")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if pollableStdin(f) != io.Reader(f) {
		t.Error("a regular file was reopened")
	}
}

// TestBatchSummaryHumanTimes checks the execution-time line: the
// percentiles of the statistics, and a note when executions that failed to
// start are left out of the times.
func TestBatchSummaryHumanTimes(t *testing.T) {
	c := metrics.NewCollector()
	for _, e := range []struct {
		st metrics.Status
		d  time.Duration
	}{{metrics.StatusSuccess, 2 * time.Millisecond}, {metrics.StatusSuccess, 300 * time.Millisecond}, {metrics.StatusFailedToStart, 0}} {
		c.RecordExecution(metrics.Execution{Language: "sh", Status: e.st, EndedAt: time.Unix(0, 0).Add(e.d), StartedAt: time.Unix(0, 0)})
	}
	var b bytes.Buffer
	r := &BatchResult{Summary: c.Summary(), Languages: c.LanguageStats()}
	if err := r.WriteHuman(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"Executions: 3 (success 2, errors 1, success rate 66.7%)",
		"By status: success 2, failed_to_start 1",
		"Execution time: total 0.302 s, average 0.151 s, p50 0.151 s, p95 0.285 s, max 0.300 s (2 timed; 1 failed to start)",
		"0.151 s   0.285 s   0.300 s",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, b.String())
		}
	}
	b.Reset()
	r = &BatchResult{Summary: metrics.NewCollector().Summary()}
	if err := r.WriteHuman(&b); err != nil {
		t.Fatal(err)
	}
	if want := "Execution time: total 0.000 s, average -, p50 -, p95 -, max -\n"; !strings.Contains(b.String(), want) {
		t.Errorf("empty summary lacks %q:\n%s", want, b.String())
	}
}
