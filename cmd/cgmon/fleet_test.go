package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestRunMarkdownAppend runs two steps that append their Markdown reports
// to one CI job summary, as `--append "$GITHUB_STEP_SUMMARY"` does.
func TestRunMarkdownAppend(t *testing.T) {
	summary := filepath.Join(t.TempDir(), "step-summary.md")
	if err := os.WriteFile(summary, []byte("# Build\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := cgmon(t, "", "run", "--id", "step-1", "--format", "markdown", "--append", summary, "--", "sh", "-c", "exit 3")
	if r.code != 3 || r.stderr != "" {
		t.Fatalf("exit %d, stderr %q; want 3 and the report in the file only", r.code, r.stderr)
	}
	r = cgmon(t, "", "run", "--id", "step-2", "--format", "markdown", "--append", summary, "--", "sh", "-c", "sleep 0.35")
	if r.code != 0 {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	b, err := os.ReadFile(summary)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	first := strings.Index(s, "### ❌ error: `sh -c 'exit 3'`")
	second := strings.Index(s, "### ✅ success: `sh -c 'sleep 0.35'`")
	if !strings.HasPrefix(s, "# Build\n") || first < 0 || second < first {
		t.Fatalf("the summary does not hold the earlier text and both reports in order:\n%s", s)
	}
	for _, want := range []string{"id `step-1`", "id `step-2`", "| Wall time | ", "**Reason:** exit status 3", "| CPU % | "} {
		if !strings.Contains(s, want) {
			t.Errorf("the summary lacks %q:\n%s", want, s)
		}
	}
	// The 0.35 s step lasted more than one 100 ms sample: its CPU line is
	// a sparkline.
	if !regexp.MustCompile(`\| CPU % \| [▁▂▃▄▅▆▇█]+ \|`).MatchString(s[second:]) {
		t.Errorf("the second report has no CPU sparkline:\n%s", s[second:])
	}
	if r := cgmon(t, "", "run", "--format", "markdown", "-o", summary, "--append", summary, "--", "true"); r.code != 125 {
		t.Errorf("-o with --append: exit %d, want 125", r.code)
	}
}

// scrapeTextfile returns the value of a series line of a textfile, e.g.
// `cgmon_executions_total{language="sh",status="success"}`.
func scrapeTextfile(t *testing.T, path, series string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, series+" "); ok {
			return v
		}
	}
	t.Fatalf("%s has no %s:\n%s", path, series, b)
	return ""
}

// TestPromTextfile adds two runs and a batch to one node_exporter textfile.
func TestPromTextfile(t *testing.T) {
	dir := t.TempDir()
	prom := filepath.Join(dir, "cgmon.prom")
	for range 2 {
		if r := cgmon(t, "", "run", "--language", "sh", "-o", os.DevNull, "--prom-textfile", prom, "--", "true"); r.code != 0 {
			t.Fatalf("run: exit %d, stderr %q", r.code, r.stderr)
		}
	}
	if v := scrapeTextfile(t, prom, `cgmon_executions_total{language="sh",status="success"}`); v != "2" {
		t.Errorf("after two runs: %s successes, want 2", v)
	}
	in := filepath.Join(dir, "in.ndjson")
	lines := `{"id": "t1", "language": "sh", "command": ["true"]}
{"id": "t2", "language": "sh", "command": ["sh", "-c", "exit 1"]}
`
	if err := os.WriteFile(in, []byte(lines), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := cgmon(t, "", "batch", "-o", os.DevNull, "--summary", os.DevNull, "--prom-textfile", prom, in); r.code != 0 {
		t.Fatalf("batch: exit %d, stderr %q", r.code, r.stderr)
	}
	if v := scrapeTextfile(t, prom, `cgmon_executions_total{language="sh",status="success"}`); v != "3" {
		t.Errorf("after the batch: %s successes, want 3", v)
	}
	if v := scrapeTextfile(t, prom, `cgmon_executions_total{language="sh",status="error"}`); v != "1" {
		t.Errorf("after the batch: %s errors, want 1", v)
	}
	if v := scrapeTextfile(t, prom, `cgmon_execution_duration_seconds_count{language="sh"}`); v != "4" {
		t.Errorf("after the batch: %s durations, want 4", v)
	}
	for _, args := range [][]string{
		{"run", "--prom-textfile", filepath.Join(dir, "cgmon.txt"), "--", "true"},
		{"run", "--prom-textfile", filepath.Join(dir, "absent", "cgmon.prom"), "--", "true"},
		{"batch", "--prom-textfile", filepath.Join(dir, "cgmon.txt"), in},
	} {
		if r := cgmon(t, "", args...); r.code != 125 || !strings.Contains(r.stderr, "--prom-textfile") {
			t.Errorf("%v: exit %d, stderr %q; want 125 naming --prom-textfile", args, r.code, r.stderr)
		}
	}
}

// metricsLine is what batch prints on standard error when it serves
// /metrics.
var metricsLine = regexp.MustCompile(`^cgmon: serving /metrics on (.+):([0-9]+)$`)

// TestBatchMetricsPortZero starts a co-process batch with --metrics-addr
// on port 0, reads the port it got from its standard error, and scrapes
// it while the batch waits for input.
func TestBatchMetricsPortZero(t *testing.T) {
	cmd := exec.Command(cgmonBin, "batch", "--metrics-addr", "127.0.0.1:0", "-o", os.DevNull, "--summary", os.DevNull, "-")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	line, err := bufio.NewReader(stderr).ReadString('\n')
	if err != nil {
		t.Fatalf("no line on standard error: %v", err)
	}
	m := metricsLine.FindStringSubmatch(strings.TrimSuffix(line, "\n"))
	if m == nil || m[2] == "0" {
		t.Fatalf("first line %q does not give the port", line)
	}
	url := fmt.Sprintf("http://127.0.0.1:%s/metrics", m[2])
	fmt.Fprintln(stdin, `{"id": "p1", "language": "sh", "command": ["true"]}`)
	want := `cgmon_executions_total{language="sh",status="success"} 1`
	var body string
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(body, want) && time.Now().Before(deadline) {
		resp, err := http.Get(url)
		if err != nil {
			t.Fatalf("scraping the printed port: %v", err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		body = string(b)
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(body, want) {
		t.Errorf("/metrics on the printed port lacks %s:\n%s", want, body)
	}
	stdin.Close()
	io.Copy(io.Discard, stderr)
	if err := cmd.Wait(); err != nil {
		t.Errorf("batch: %v", err)
	}
}

// TestSummaryEqualsBatch runs a real batch and checks that `cgmon summary`
// of its result file gives the batch's own summary, and that of the same
// results split over shard files too.
func TestSummaryEqualsBatch(t *testing.T) {
	dir := t.TempDir()
	var in strings.Builder
	for i := range 24 {
		cmd := []string{`["true"]`, `["sh", "-c", "exit 2"]`, `["sh", "-c", "sleep 0.1"]`}[i%3]
		fmt.Fprintf(&in, `{"id": "sum-%d", "language": %q, "command": %s}`+"\n", i, []string{"sh", "c", "go"}[i%3], cmd)
	}
	input, out, sum := filepath.Join(dir, "in.ndjson"), filepath.Join(dir, "out.ndjson"), filepath.Join(dir, "batch.json")
	if err := os.WriteFile(input, []byte(in.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := cgmon(t, "", "batch", "--parallel", "4", "-o", out, "--summary", sum, "--format", "json", input); r.code != 0 {
		t.Fatalf("batch: exit %d, stderr %q", r.code, r.stderr)
	}
	type stats struct {
		Summary   json.RawMessage `json:"summary"`
		Languages json.RawMessage `json:"languages"`
	}
	read := func(b []byte) stats {
		var s stats
		if err := json.Unmarshal(b, &s); err != nil {
			t.Fatalf("%s: %v", b, err)
		}
		return s
	}
	bb, err := os.ReadFile(sum)
	if err != nil {
		t.Fatal(err)
	}
	want := read(bb)

	results, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(strings.TrimSuffix(string(results), "\n"), "\n")
	shards := make([]string, 3)
	for i, l := range lines {
		shards[i%3] += l
	}
	var shardFiles []string
	for i, s := range shards {
		p := filepath.Join(dir, fmt.Sprintf("shard-%d.ndjson", i))
		if !strings.HasSuffix(s, "\n") {
			s += "\n"
		}
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		shardFiles = append(shardFiles, p)
	}
	for name, files := range map[string][]string{"one file": {out}, "three shards": shardFiles} {
		r := cgmon(t, "", append([]string{"summary", "--format", "json"}, files...)...)
		if r.code != 0 {
			t.Fatalf("%s: summary: exit %d, stderr %q", name, r.code, r.stderr)
		}
		got := read([]byte(r.stdout))
		if !bytes.Equal(compactJSON(t, got.Summary), compactJSON(t, want.Summary)) {
			t.Errorf("%s: summary\n%s\nbatch said\n%s", name, got.Summary, want.Summary)
		}
		if !bytes.Equal(compactJSON(t, got.Languages), compactJSON(t, want.Languages)) {
			t.Errorf("%s: languages\n%s\nbatch said\n%s", name, got.Languages, want.Languages)
		}
	}
}

func compactJSON(t *testing.T, b []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	if err := json.Compact(&out, b); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// TestSummaryOfRealShards runs one input as three shards (with repeats,
// and one shard resumed after its output lost its last line) and checks
// that `cgmon summary` of the three files counts what one unsharded batch
// of the same input counts: executions by language and status.
func TestSummaryOfRealShards(t *testing.T) {
	dir := t.TempDir()
	var in strings.Builder
	for i := range 12 {
		cmd := []string{`["true"]`, `["sh", "-c", "exit 2"]`}[i%2]
		repeat := ""
		if i%4 == 0 {
			repeat = `, "repeat": 3`
		}
		fmt.Fprintf(&in, `{"id": "rs-%d", "language": %q, "command": %s%s}`+"\n", i, []string{"sh", "c", "go"}[i%3], cmd, repeat)
	}
	input := filepath.Join(dir, "in.ndjson")
	if err := os.WriteFile(input, []byte(in.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	type counts struct {
		Summary struct {
			Total        int            `json:"total_executions"`
			StatusCounts map[string]int `json:"status_counts"`
		} `json:"summary"`
		Languages map[string]struct {
			Count   int `json:"count"`
			Success int `json:"success_count"`
		} `json:"languages"`
	}
	read := func(s string) counts {
		var c counts
		if err := json.Unmarshal([]byte(s), &c); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		return c
	}
	r := cgmon(t, "", "batch", "-o", filepath.Join(dir, "all.ndjson"), "--format", "json", input)
	if r.code != 0 {
		t.Fatalf("unsharded batch: exit %d, stderr %q", r.code, r.stderr)
	}
	want := read(r.stderr)
	var shards []string
	for k := range 3 {
		out := filepath.Join(dir, fmt.Sprintf("shard-%d.ndjson", k))
		args := []string{"batch", "--shard", fmt.Sprintf("%d/3", k), "--resume", "-o", out, "--summary", os.DevNull, input}
		if r := cgmon(t, "", args...); r.code != 0 {
			t.Fatalf("shard %d: exit %d, stderr %q", k, r.code, r.stderr)
		}
		if k == 1 {
			// A kill mid-write: the last result loses its end. --resume
			// cuts it off and runs it again.
			b, err := os.ReadFile(out)
			if err != nil || len(b) < 10 {
				t.Fatalf("shard 1 wrote %d bytes: %v", len(b), err)
			}
			if err := os.WriteFile(out, b[:len(b)-10], 0o644); err != nil {
				t.Fatal(err)
			}
			if r := cgmon(t, "", args...); r.code != 0 {
				t.Fatalf("shard 1 resumed: exit %d, stderr %q", r.code, r.stderr)
			}
		}
		shards = append(shards, out)
	}
	r = cgmon(t, "", append([]string{"summary", "--format", "json"}, shards...)...)
	if r.code != 0 {
		t.Fatalf("summary: exit %d, stderr %q", r.code, r.stderr)
	}
	got := read(r.stdout)
	if got.Summary.Total != want.Summary.Total || got.Summary.Total != 12+3*2 {
		t.Errorf("summary of the shards counts %d executions, the unsharded batch %d; want 18", got.Summary.Total, want.Summary.Total)
	}
	for s, n := range want.Summary.StatusCounts {
		if got.Summary.StatusCounts[s] != n {
			t.Errorf("status %s: %d in the shards, %d unsharded", s, got.Summary.StatusCounts[s], n)
		}
	}
	for l, c := range want.Languages {
		if g := got.Languages[l]; g.Count != c.Count || g.Success != c.Success {
			t.Errorf("language %s: %+v in the shards, %+v unsharded", l, g, c)
		}
	}
}
