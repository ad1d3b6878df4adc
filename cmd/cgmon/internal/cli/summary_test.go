package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cgmon/cgmon/metrics"
)

// result is a finished execution of the fixtures: wall and CPU in
// milliseconds, memory peak in MiB; a negative value is unmeasured.
func result(id, lang string, status metrics.Status, wallMS, cpuMS, memMiB int) metrics.Execution {
	ms := time.Millisecond
	ex := metrics.Execution{
		ID: id, Language: lang, Command: []string{"./prog", id},
		Status: status, StartedAt: t0, EndedAt: t0.Add(time.Duration(max(wallMS, 0)) * ms),
		Backend: metrics.BackendCgroup2,
	}
	switch status {
	case metrics.StatusTimeout:
		ex.TimedOut, ex.ExitCode, ex.Signal = true, -1, 9
	case metrics.StatusOOM:
		ex.OOMKilled, ex.ExitCode, ex.Signal = true, -1, 9
	case metrics.StatusError:
		ex.ExitCode = 1
	case metrics.StatusFailedToStart:
		ex.ExitCode = -1
	}
	u := &ex.Usage
	if wallMS >= 0 {
		u.WallTime = metrics.Measured(time.Duration(wallMS)*ms, metrics.SourceMonotonic)
	} else {
		u.WallTime = metrics.Unavailable[time.Duration]("the fixture says so")
	}
	if cpuMS >= 0 {
		u.CPUTotal = metrics.Measured(time.Duration(cpuMS)*ms, metrics.SourceCgroupCPUStat)
	} else {
		u.CPUTotal = metrics.Unavailable[time.Duration]("the fixture says so")
	}
	if memMiB >= 0 {
		u.MemoryPeak = metrics.Measured(uint64(memMiB)<<20, metrics.SourceCgroupMemoryPeak)
	} else {
		u.MemoryPeak = metrics.Unavailable[uint64]("the fixture says so")
	}
	return ex
}

// resultLineOf is the NDJSON line `cgmon batch` writes for ex, run repeat
// of its line (a negative repeat is 0, the only run of a line).
func resultLineOf(t testing.TB, ex metrics.Execution, inputLine, repeat int) string {
	t.Helper()
	rep := NewReport(&ex)
	rep.InputLine = inputLine
	b, err := json.Marshal(resultLine{Protocol: ProtocolVersion, Report: rep, RepeatIndex: max(repeat, 0)})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// rejectedLineOf is the line `cgmon batch` writes for an input line it did
// not run.
func rejectedLineOf(t testing.TB, inputLine int, id, msg string) string {
	t.Helper()
	l := rejectedLine{Protocol: ProtocolVersion, SchemaVersion: SchemaVersion, InputLine: inputLine, ID: id, Status: StatusRejected, Error: msg}
	if id != "" { // the line was read: its run is known
		l.RepeatIndex = new(int)
	}
	b, err := json.Marshal(l)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// writeShards writes the summary fixtures into dir: three shards of one
// batch as three machines left them. Shard 0 was preempted in the middle
// of a line; shard 1 was resumed and ran s2 again (its later result
// replaces the first), rejected an input line it could not read, and
// rejected s10, which shard 2 ran later; shard 2 ran r1 three times
// (repeat_index 0-2) and was resumed after repeat 1.
func writeShards(t *testing.T, dir string) []string {
	t.Helper()
	S, E, T, O, F := metrics.StatusSuccess, metrics.StatusError, metrics.StatusTimeout, metrics.StatusOOM, metrics.StatusFailedToStart
	r := func(ex metrics.Execution, n int) string { return resultLineOf(t, ex, n, -1) }
	rr := func(ex metrics.Execution, n, rep int) string { return resultLineOf(t, ex, n, rep) }
	noWall := result("s8", "c", S, -1, 3, 2)
	noWall.EndedAt = t0.Add(12 * time.Millisecond)
	shards := map[string][]string{
		"shard-0.ndjson": {
			r(result("s1", "python", S, 120, 100, 30), 1),
			r(result("s2", "python", E, 80, 60, 28), 2),
			r(result("s3", "c", S, 5, 3, 1), 3),
			r(result("s4", "c", O, 300, 250, 256), 4),
			`{"schema_version":1,"input_line":9,"id":"s9","language":"c","command":["./prog","s9"],"status":"succ`,
		},
		"shard-1.ndjson": {
			r(result("s5", "python", T, 5000, 4900, 40), 5),
			r(result("s6", "go", S, 900, 1500, 60), 6),
			r(result("s7", "go", F, 1, -1, -1), 7),
			"",
			r(result("s2", "python", S, 90, 70, 29), 2), // resumed: replaces the error above
			r(noWall, 8),
			`{"id": "x1", "command": ["true"]}`, // an input line, not a result
			rejectedLineOf(t, 13, "", "not a JSON execution object: unexpected end of JSON input"),
			rejectedLineOf(t, 14, "s10", `"limits": memory.max: the memory controller is not available`),
		},
		"shard-2.ndjson": {
			rr(result("r1", "c", S, 10, 9, 2), 10, 0),
			rr(result("r1", "c", S, 14, 9, 2), 10, 1),
			rr(result("r1", "c", S, 12, 9, 2), 10, 1), // resumed: replaces repeat 1
			rr(result("r1", "c", S, 11, 9, 2), 10, 2),
			r(result("", "sh", S, 2, 1, 1), 11), // no id: counted, never replaced
			r(result("", "sh", S, 3, 1, 1), 12),
			r(result("s10", "go", S, 40, 30, 8), 14), // replaces its rejection
		},
	}
	var names []string
	for _, name := range []string{"shard-0.ndjson", "shard-1.ndjson", "shard-2.ndjson"} {
		content := strings.Join(shards[name], "\n")
		if name != "shard-0.ndjson" { // shard 0 ends in the cut line
			content += "\n"
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		names = append(names, name)
	}
	return names
}

// fixtureDir writes fixtures with write into a temporary directory and
// checks them against the committed copies in testdata/cli/NAME (which
// -update rewrites), so that the README and the golden tests read files a
// user can look at. It returns the committed directory.
func fixtureDir(t *testing.T, name string, write func(t *testing.T, dir string)) string {
	t.Helper()
	tmp := t.TempDir()
	write(t, tmp)
	dir := filepath.Join(goldenAbs, name)
	ents, err := os.ReadDir(tmp)
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(tmp, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		golden(t, filepath.Join(name, e.Name()), b)
	}
	return dir
}

// runCLI runs Main in-process and returns its exit status, stdout and
// stderr.
func runCLI(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := Main(args, IO{In: strings.NewReader(""), Out: &out, Err: &errb})
	return code, out.String(), errb.String()
}

func TestSummaryGolden(t *testing.T) {
	var files []string
	t.Chdir(fixtureDir(t, "summary", func(t *testing.T, dir string) { files = writeShards(t, dir) }))
	for _, format := range []string{"human", "json", "markdown"} {
		t.Run(format, func(t *testing.T) {
			code, out, stderr := runCLI(append([]string{"summary", "--format", format}, files...)...)
			if code != 1 {
				t.Errorf("exit %d, want 1 (bad lines were skipped)", code)
			}
			wantErr := "cgmon: summary: shard-0.ndjson:5: the line ends in the middle of a string (cut short?)\n" +
				"cgmon: summary: shard-1.ndjson:7: no \"schema_version\": not a cgmon result\n"
			if stderr != wantErr {
				t.Errorf("stderr:\n%s\nwant:\n%s", stderr, wantErr)
			}
			ext := map[string]string{"human": "txt", "json": "json", "markdown": "md"}[format]
			golden(t, "summary-shards."+ext+".golden", []byte(out))
		})
	}
}

// TestSummaryCountsEachKeyOnce checks the counting of the fixtures
// against what they hold: 13 distinct keys, the later s2 and r1 repeat 1
// replacing the earlier.
func TestSummaryCountsEachKeyOnce(t *testing.T) {
	dir := t.TempDir()
	files := writeShards(t, dir)
	t.Chdir(dir)
	res, err := summarize(files, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	s := res.Summary
	// s1 s2 s3 s4 s5 s6 s7 s8 s10, r1 x3, two without id; the rejected
	// line without an id is no execution, s10's rejection was replaced.
	if s.TotalExecutions != 14 || res.Replaced != 3 || res.BadLineCount != 2 || res.RejectedCount != 1 {
		t.Fatalf("total %d, replaced %d, bad %d, rejected %d; want 14, 3, 2, 1", s.TotalExecutions, res.Replaced, res.BadLineCount, res.RejectedCount)
	}
	if r := res.Rejected; len(r) != 1 || r[0].File != "shard-1.ndjson" || r[0].Line != 8 || !strings.Contains(r[0].Error, "not a JSON execution") {
		t.Errorf("rejected %+v, want shard-1.ndjson:8 with its error", r)
	}
	if got := s.StatusCounts[metrics.StatusError]; got != 0 {
		t.Errorf("%d errors: the resumed s2 (success) must replace the error", got)
	}
	if got := res.Languages["c"].Count; got != 6 {
		t.Errorf("c: %d results, want 6 (s3, s4, s8 and r1 x3)", got)
	}
	// r1's repeat 1 is 12 ms (the later line), not 14 ms: the max of c is
	// s4's 300 ms, so look at the total instead.
	wantC := (5 + 300 + 12 + 10 + 12 + 11) * time.Millisecond
	if got := res.Languages["c"].TotalExecutionTime; got != wantC.Seconds() {
		t.Errorf("c: total time %v s, want %v s", got, wantC.Seconds())
	}
	if res.Files[1].Lines != 8 || res.Files[1].Results != 7 {
		t.Errorf("shard-1: %+v, want 8 lines of which 7 results", res.Files[1])
	}
}

// TestSummaryOfShardsEqualsWhole checks that however results are spread
// over files, the summary is that of the one file holding them all.
func TestSummaryOfShardsEqualsWhole(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	var lines []string
	langs := []string{"c", "go", "python", "sh"}
	statuses := []metrics.Status{metrics.StatusSuccess, metrics.StatusSuccess, metrics.StatusError, metrics.StatusTimeout, metrics.StatusOOM}
	for i := range 200 {
		ex := result(fmt.Sprintf("id-%03d", i), langs[i%4], statuses[i%5], 1+i*7%500, i*3%200, i%64)
		lines = append(lines, resultLineOf(t, ex, i+1, -1))
	}
	write := func(name string, ls []string) {
		if err := os.WriteFile(name, []byte(strings.Join(ls, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("whole.ndjson", lines)
	shards := make([][]string, 3)
	for i, l := range lines {
		shards[i*7%3] = append(shards[i*7%3], l)
	}
	// Shard 2 was resumed after an error: its first 10 results are
	// written twice, first with a different (wrong) time.
	var redo []string
	for _, l := range shards[2][:10] {
		redo = append(redo, strings.Replace(l, `"status":"`, `"status":"canceled","x":"`, 1))
	}
	write("s0.ndjson", shards[0])
	write("s1.ndjson", shards[1])
	write("s2.ndjson", append(redo, shards[2]...))

	whole, err := summarize([]string{"whole.ndjson"}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	parts, err := summarize([]string{"s2.ndjson", "s0.ndjson", "s1.ndjson"}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if parts.Replaced != 10 {
		t.Errorf("replaced %d, want 10", parts.Replaced)
	}
	a, _ := json.Marshal(whole.Summary)
	b, _ := json.Marshal(parts.Summary)
	if !bytes.Equal(a, b) {
		t.Errorf("summary of the shards:\n%s\nof the whole:\n%s", b, a)
	}
	a, _ = json.Marshal(whole.Languages)
	b, _ = json.Marshal(parts.Languages)
	if !bytes.Equal(a, b) {
		t.Errorf("languages of the shards:\n%s\nof the whole:\n%s", b, a)
	}
}

func TestSummaryBadUsage(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	if err := os.WriteFile("r.ndjson", []byte(resultLineOf(t, result("a", "c", metrics.StatusSuccess, 1, 1, 1), 1, -1)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		msg  string
	}{
		{[]string{"summary"}, "no result files"},
		{[]string{"summary", "-"}, "standard input"},
		{[]string{"summary", "--format", "yaml", "r.ndjson"}, "--format"},
		{[]string{"summary", "-o", "x.txt", "--append", "y.md", "r.ndjson"}, "not both"},
		{[]string{"summary", "r.ndjson", "absent.ndjson"}, "absent.ndjson"},
		{[]string{"summary", "."}, "not a regular file"},
	} {
		code, out, stderr := runCLI(c.args...)
		if code != ExitFailure || out != "" || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, c.msg) {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want 125, nothing, one line mentioning %q", c.args, code, out, stderr, c.msg)
		}
	}
	for _, name := range []string{"x.txt", "y.md"} {
		if _, err := os.Stat(name); err == nil {
			t.Errorf("%s was created by a failing command", name)
		}
	}
}

// TestSummaryAppend checks that --append adds to a file (a CI step summary
// that earlier steps wrote to) and -o replaces it.
func TestSummaryAppend(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	if err := os.WriteFile("r.ndjson", []byte(resultLineOf(t, result("a", "c", metrics.StatusSuccess, 1, 1, 1), 1, -1)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile("summary.md", []byte("earlier step\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if code, _, stderr := runCLI("summary", "--format", "markdown", "--append", "summary.md", "r.ndjson"); code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
	}
	b, err := os.ReadFile("summary.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(b), "earlier step\n") || strings.Count(string(b), "### ✅ cgmon summary: 1 executions") != 2 {
		t.Errorf("after two appends:\n%s", b)
	}
	if code, _, _ := runCLI("summary", "-o", "summary.md", "r.ndjson"); code != 0 {
		t.Fatal("summary -o failed")
	}
	b, _ = os.ReadFile("summary.md")
	if strings.Contains(string(b), "earlier step") || !strings.HasPrefix(string(b), "Read: 1 result in 1 file\nExecutions: 1 ") {
		t.Errorf("-o did not replace the file:\n%s", b)
	}
}

// TestKeyIndex fills the index past several doublings with keys that
// differ only in their repeat index or by one byte, and checks that each
// key keeps its own last line.
func TestKeyIndex(t *testing.T) {
	x := newKeyIndex(0)
	const ids, repeats = 3000, 3
	key := func(i int) []byte { return []byte(fmt.Sprintf("id-%d", i)) }
	ord := uint64(0)
	want := make(map[string]uint64)
	for pass := range 2 {
		for i := range ids {
			for r := range repeats {
				ord++
				if pass == 1 && (i+r)%2 == 0 {
					continue // only half the keys get a later line
				}
				if err := x.put(key(i), int64(r), ord); err != nil {
					t.Fatal(err)
				}
				want[fmt.Sprintf("%d/%d", i, r)] = ord
			}
		}
	}
	if len(x.ents) != ids*repeats {
		t.Fatalf("%d entries, want %d", len(x.ents), ids*repeats)
	}
	if 2*len(x.ents) > len(x.slots) {
		t.Errorf("table %d slots for %d entries: more than half full", len(x.slots), len(x.ents))
	}
	for i := range ids {
		for r := range repeats {
			got, ok := x.last(key(i), int64(r))
			if w := want[fmt.Sprintf("%d/%d", i, r)]; !ok || got != w {
				t.Fatalf("id-%d repeat %d: last %d (%v), want %d", i, r, got, ok, w)
			}
		}
	}
	if _, ok := x.last([]byte("id-"), 0); ok {
		t.Error("a key never put was found")
	}
	if _, ok := x.last(key(1), repeats); ok {
		t.Error("a repeat index never put was found")
	}
}
