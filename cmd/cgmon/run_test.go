package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// report is the part of the JSON report the tests read.
type report struct {
	SchemaVersion int               `json:"schema_version"`
	ID            string            `json:"id"`
	Language      string            `json:"language"`
	Status        string            `json:"status"`
	ExitCode      int               `json:"exit_code"`
	Signal        int               `json:"signal"`
	TimedOut      bool              `json:"timed_out"`
	InputLine     int               `json:"input_line"`
	Sources       map[string]string `json:"sources"`
	Unavailable   map[string]string `json:"unavailable"`
	ExecTime      *float64          `json:"execution_time_seconds"`
	CPUTotal      *float64          `json:"cpu_total_seconds"`
	MemoryPeak    *uint64           `json:"memory_peak_bytes"`
}

func readReport(t *testing.T, path string) (report, map[string]any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var r report
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("report %q: %v", b, err)
	}
	var raw map[string]any
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatal(err)
	}
	return r, raw
}

// TestRunExitStatuses runs real commands on this host and checks cgmon's
// exit status and report, as `time`, `timeout` and shells would.
func TestRunExitStatuses(t *testing.T) {
	dir := t.TempDir()
	noexec := filepath.Join(dir, "noexec")
	if err := os.WriteFile(noexec, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		args   []string
		code   int
		status string
		exit   int
		signal int
	}{
		{"success", []string{"--", "true"}, 0, "success", 0, 0},
		{"exit 3", []string{"--", "sh", "-c", "exit 3"}, 3, "error", 3, 0},
		{"signal", []string{"--", "sh", "-c", "kill -KILL $$"}, 128 + 9, "signaled", -1, 9},
		{"sigterm", []string{"--", "sh", "-c", "kill -TERM $$"}, 128 + 15, "signaled", -1, 15},
		{"timeout", []string{"--timeout", "300ms", "--", "sleep", "10"}, 124, "timeout", -1, -1},
		{"missing", []string{"--", "no-such-command-cgmon-e2e"}, 127, "failed_to_start", -1, 0},
		{"missing path", []string{"--", filepath.Join(dir, "absent")}, 127, "failed_to_start", -1, 0},
		{"not executable", []string{"--", noexec}, 126, "failed_to_start", -1, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "report.json")
			start := time.Now()
			args := append([]string{"run", "--id", "e2e-" + strings.ReplaceAll(c.name, " ", "-"), "--format", "json", "-o", out}, c.args...)
			r := cgmon(t, "", args...)
			if r.code != c.code {
				t.Fatalf("exit %d, want %d; stderr %q", r.code, c.code, r.stderr)
			}
			rep, raw := readReport(t, out)
			if rep.Status != c.status {
				t.Errorf("status %q, want %q", rep.Status, c.status)
			}
			if rep.ExitCode != c.exit {
				t.Errorf("exit_code %d, want %d", rep.ExitCode, c.exit)
			}
			if c.signal >= 0 && rep.Signal != c.signal {
				t.Errorf("signal %d, want %d", rep.Signal, c.signal)
			}
			if c.status == "timeout" {
				if !rep.TimedOut {
					t.Error("timed_out is false")
				}
				if el := time.Since(start); el > 5*time.Second {
					t.Errorf("the timeout of 300ms took %v to end sleep 10", el)
				}
			}
			checkNullsExplained(t, raw)
		})
	}
}

// TestRunPassesStreamsThrough checks that stdin, stdout and stderr reach
// the command untouched and the report goes to standard error by default.
func TestRunPassesStreamsThrough(t *testing.T) {
	in := "line one\nline two\n\x00binary\xff\n"
	r := cgmon(t, in, "run", "--id", "e2e-streams", "--", "sh", "-c", "cat; echo to-stderr >&2")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	if r.stdout != in {
		t.Errorf("stdout %q, want %q", r.stdout, in)
	}
	if !strings.HasPrefix(r.stderr, "to-stderr\n") {
		t.Errorf("stderr does not start with the command's output: %q", r.stderr)
	}
	for _, want := range []string{"Status:", "success", "Elapsed (wall clock) time:", "Maximum memory (peak):"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("human report on stderr lacks %q:\n%s", want, r.stderr)
		}
	}
}

// memoryLimitWorks asks doctor whether --memory-max can work here.
func memoryLimitWorks(t *testing.T) bool {
	r := cgmon(t, "", "doctor", "--format", "json")
	if r.code != 0 {
		t.Fatalf("doctor: exit %d: %s", r.code, r.stderr)
	}
	var d struct {
		Limits []struct {
			Controller string `json:"controller"`
			Works      bool   `json:"works"`
		} `json:"limits"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &d); err != nil {
		t.Fatal(err)
	}
	for _, l := range d.Limits {
		if l.Controller == "memory" {
			return l.Works
		}
	}
	t.Fatal("doctor lists no memory limit")
	return false
}

// TestRunRefusesBeforeRunning checks that cgmon's own failures exit 125
// with one line on stderr and run nothing: the command would create a file.
func TestRunRefusesBeforeRunning(t *testing.T) {
	memWorks := memoryLimitWorks(t)
	cases := []struct {
		name string
		args []string
		msg  string
	}{
		{"bad size", []string{"--memory-max", "12Q"}, "--memory-max"},
		{"negative size", []string{"--memory-max", "-1G"}, "negative"},
		{"overflowing size", []string{"--memory-max", "9999999999999T"}, "larger than"},
		{"bad cpus", []string{"--cpus", "abc"}, "cpus"},
		{"zero cpus", []string{"--cpus", "0"}, "positive"},
		{"bad pids", []string{"--pids-max", "1.5"}, "pids-max"},
		{"bad format", []string{"--format", "xml"}, "--format"},
		{"bad backend", []string{"--backend", "v1"}, "--backend"},
		{"bad samples name", []string{"--samples", "x.txt"}, "--samples"},
		{"bad plot name", []string{"--plot", "x.png"}, "--plot"},
		{"unknown flag", []string{"--no-such-flag"}, "no-such-flag"},
		{"missing limits file", []string{"--limits", "/nonexistent/limits.json"}, "--limits"},
	}
	if !memWorks {
		cases = append(cases, struct {
			name string
			args []string
			msg  string
		}{"memory controller unavailable", []string{"--memory-max", "64M"}, "memory controller"})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			marker := filepath.Join(t.TempDir(), "ran")
			args := append(append([]string{"run"}, c.args...), "--", "touch", marker)
			r := cgmon(t, "", args...)
			if r.code != 125 {
				t.Fatalf("exit %d, want 125; stderr %q", r.code, r.stderr)
			}
			if strings.Count(r.stderr, "\n") != 1 || !strings.HasPrefix(r.stderr, "cgmon: run: ") {
				t.Errorf("stderr is not one line starting with \"cgmon: run: \": %q", r.stderr)
			}
			if !strings.Contains(r.stderr, c.msg) {
				t.Errorf("stderr %q does not mention %q", r.stderr, c.msg)
			}
			if _, err := os.Stat(marker); err == nil {
				t.Errorf("the command ran although cgmon refused")
			}
		})
	}
	if memWorks {
		t.Run("memory limit applies", func(t *testing.T) {
			marker := filepath.Join(t.TempDir(), "ran")
			r := cgmon(t, "", "run", "--memory-max", "64M", "--", "touch", marker)
			if r.code != 0 {
				t.Fatalf("exit %d: %s", r.code, r.stderr)
			}
		})
	}
}

// TestRunSamplesAndPlot runs a workload that burns CPU, then holds memory,
// and checks the timeline files.
func TestRunSamplesAndPlot(t *testing.T) {
	dir := t.TempDir()
	csv, nd, svg := filepath.Join(dir, "t.csv"), filepath.Join(dir, "t.ndjson"), filepath.Join(dir, "t.svg")
	script := `i=0; end=$(( $(date +%s%N) + 400000000 )); while [ "$(date +%s%N)" -lt $end ]; do i=$((i+1)); done; exec sleep 0.4`
	r := cgmon(t, "", "run", "--id", "e2e-plot", "--interval", "50ms", "--samples", csv, "--plot", svg, "-o", filepath.Join(dir, "r.txt"), "--", "sh", "-c", script)
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	f, err := os.Open(csv)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Scan()
	if got := sc.Text(); got != "elapsed_seconds,cpu_seconds,cpu_percent,memory_bytes" {
		t.Fatalf("CSV header %q", got)
	}
	rows, busy := 0, 0
	prev := -1.0
	var pcts []float64
	for sc.Scan() {
		cols := strings.Split(sc.Text(), ",")
		if len(cols) != 4 {
			t.Fatalf("CSV row %q", sc.Text())
		}
		el, err := strconv.ParseFloat(cols[0], 64)
		if err != nil || el <= prev {
			t.Errorf("elapsed %q not increasing after %v", cols[0], prev)
		}
		prev = el
		pct, err := strconv.ParseFloat(cols[2], 64)
		if err != nil || pct < 0 {
			t.Errorf("cpu_percent %q", cols[2])
		}
		if pct > 5 {
			busy++
		}
		pcts = append(pcts, pct)
		rows++
	}
	if rows < 8 {
		t.Errorf("%d samples at 50ms over about 0.8s", rows)
	}
	// The busy loop shows as CPU use (how much depends on the host's
	// load); the final sleep shows as none.
	if busy < 2 {
		t.Errorf("only %d samples show the busy loop above 5%% CPU: %v", busy, pcts)
	}
	if n := len(pcts); n >= 2 && (pcts[n-1] > 5 || pcts[n-2] > 5) {
		t.Errorf("the samples during the final sleep show CPU use: %v", pcts)
	}
	b, err := os.ReadFile(nd)
	if err == nil {
		t.Errorf("ndjson written although not asked: %q", b)
	}
	svgText, err := os.ReadFile(svg)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"<svg", "CPU (% of one CPU)", "Memory (MiB)", "Time since start (s)"} {
		if !strings.Contains(string(svgText), want) {
			t.Errorf("SVG lacks %q", want)
		}
	}
}

// TestBatch runs 200 lines in 4 languages, one malformed: 200 result
// lines in the file, 199 executions and the malformed line rejected, the
// summary's totals equal the file's, the bad line named.
func TestBatch(t *testing.T) {
	dir := t.TempDir()
	langs := []string{"python", "go", "c", "rust"}
	const bad = 57
	var in strings.Builder
	for i := 1; i <= 200; i++ {
		if i == bad {
			in.WriteString(`{"id": "broken", "command": ["true"` + "\n")
			continue
		}
		cmd := `["true"]`
		switch i % 5 {
		case 1:
			cmd = `["sh", "-c", "exit 2"]`
		case 2:
			cmd = `["sh", "-c", "echo hi"]`
		}
		fmt.Fprintf(&in, `{"id": "e2e-b%d", "language": %q, "code_length": %d, "command": %s, "timeout": "5s"}`+"\n", i, langs[i%4], i, cmd)
	}
	input := filepath.Join(dir, "in.ndjson")
	if err := os.WriteFile(input, []byte(in.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	out, sum := filepath.Join(dir, "out.ndjson"), filepath.Join(dir, "summary.json")
	r := cgmon(t, "", "batch", "--parallel", "4", "-o", out, "--summary", sum, "--format", "json", input)
	if r.code != 1 {
		t.Errorf("exit %d, want 1 (a bad line); stderr %q", r.code, r.stderr)
	}
	if !strings.Contains(r.stderr, fmt.Sprintf("line %d:", bad)) || strings.Count(r.stderr, "\n") != 1 {
		t.Errorf("stderr should name line %d once: %q", bad, r.stderr)
	}

	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	all := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if len(all) != 200 {
		t.Fatalf("%d result lines, want 200", len(all))
	}
	seen := map[int]bool{}
	perLang := map[string]int{}
	success := 0
	var lines []string
	for _, l := range all {
		var rep report
		if err := json.Unmarshal([]byte(l), &rep); err != nil {
			t.Fatalf("result line %q: %v", l, err)
		}
		if seen[rep.InputLine] || rep.InputLine < 1 || rep.InputLine > 200 {
			t.Errorf("input_line %d repeated or wrong", rep.InputLine)
		}
		seen[rep.InputLine] = true
		if rep.InputLine == bad {
			if rep.Status != "rejected" || rep.ID != "" {
				t.Errorf("line %d: status %q, id %q; want rejected without an id (not JSON)", bad, rep.Status, rep.ID)
			}
			continue
		}
		lines = append(lines, l)
		if rep.ID != fmt.Sprintf("e2e-b%d", rep.InputLine) {
			t.Errorf("line %d has id %q", rep.InputLine, rep.ID)
		}
		wantStatus := "success"
		if rep.InputLine%5 == 1 {
			wantStatus = "error"
		}
		if rep.Status != wantStatus {
			t.Errorf("line %d: status %q, want %q", rep.InputLine, rep.Status, wantStatus)
		}
		perLang[rep.Language]++
		if rep.Status == "success" {
			success++
		}
	}

	sb, err := os.ReadFile(sum)
	if err != nil {
		t.Fatal(err)
	}
	var s struct {
		Summary struct {
			Total   int `json:"total_executions"`
			Success int `json:"success_count"`
			Errors  int `json:"error_count"`
		} `json:"summary"`
		Languages map[string]struct {
			Count   int `json:"count"`
			Success int `json:"success_count"`
		} `json:"languages"`
		BadLines []struct {
			Line int `json:"line"`
		} `json:"bad_lines"`
	}
	if err := json.Unmarshal(sb, &s); err != nil {
		t.Fatalf("summary %s: %v", sb, err)
	}
	if s.Summary.Total != len(lines) || s.Summary.Success != success || s.Summary.Errors != len(lines)-success {
		t.Errorf("summary %+v; the file has %d results, %d successes", s.Summary, len(lines), success)
	}
	if len(s.Languages) != 4 {
		t.Errorf("%d languages in the summary, want 4", len(s.Languages))
	}
	for l, n := range perLang {
		if s.Languages[l].Count != n {
			t.Errorf("language %s: summary count %d, file %d", l, s.Languages[l].Count, n)
		}
	}
	if len(s.BadLines) != 1 || s.BadLines[0].Line != bad {
		t.Errorf("bad_lines %+v, want line %d", s.BadLines, bad)
	}
}
