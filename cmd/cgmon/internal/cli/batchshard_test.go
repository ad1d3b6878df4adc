package cli

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestShardOfStable holds shardOf to values computed outside cgmon (with
// Python's hashlib, as the doc comment shows): result files outlive
// versions, and a resumed shard must pick the lines it ran before.
func TestShardOfStable(t *testing.T) {
	for _, c := range []struct {
		id            string
		n3, n7, n1000 int
	}{
		{"a", 1, 4, 250},
		{"s1", 0, 3, 695},
		{"s2", 1, 2, 434},
		{"job-42", 0, 2, 6},
		{"π", 0, 3, 81},
		{"exec-1", 1, 0, 811},
	} {
		if got := [3]int{shardOf(c.id, 3), shardOf(c.id, 7), shardOf(c.id, 1000)}; got != [3]int{c.n3, c.n7, c.n1000} {
			t.Errorf("shardOf(%q, 3, 7, 1000) = %v, want %v", c.id, got, [3]int{c.n3, c.n7, c.n1000})
		}
	}
	if shardOf("anything", 1) != 0 {
		t.Error("with one shard, a line is not in shard 0")
	}
}

// TestShardOfSpread checks that ids of the usual shape spread evenly:
// each of N shards gets its share of 21000 ids within 5%.
func TestShardOfSpread(t *testing.T) {
	const ids = 21000
	for _, n := range []int{2, 3, 7} {
		count := make([]int, n)
		for i := range ids {
			count[shardOf(fmt.Sprintf("s%d", i), n)]++
		}
		for k, c := range count {
			if want := ids / n; c < want*95/100 || c > want*105/100 {
				t.Errorf("N=%d: shard %d has %d of %d ids, want about %d", n, k, c, ids, want)
			}
		}
	}
}

func TestParseShard(t *testing.T) {
	for in, want := range map[string]shard{"0/1": {0, 1}, "2/3": {2, 3}, "0/7": {0, 7}} {
		got, err := parseShard(in)
		if err != nil || got != want {
			t.Errorf("parseShard(%q) = %v, %v; want %v", in, got, err, want)
		}
		if got.String() != in {
			t.Errorf("shard %v prints as %q, want %q", got, got.String(), in)
		}
	}
	for in, msg := range map[string]string{
		"3/3": "the K of K/N must be from 0 to N-1 = 2", "-1/3": "the K of K/N must be", "1/0": "the N of K/N must be from 1",
		"1": "want K/N", "a/3": "want K/N", "1/3/4": "want K/N", "": "want K/N", "0/2000000": "N must be",
	} {
		if _, err := parseShard(in); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("parseShard(%q): error %v, want one saying %q", in, err, msg)
		}
	}
}

// TestBatchKeys checks how a keyed batch picks the lines and runs of its
// shard: lines of other shards are counted and left, a line without an id
// or with the id of an earlier line of the shard is rejected, and the
// runs with a result are skipped.
func TestBatchKeys(t *testing.T) {
	k := &batchKeys{shard: shard{k: 0, n: 3}, seen: map[string]int{}, done: map[runKey]struct{}{{"s1", 1}: {}, {"s1", 3}: {}}}
	// s1 and job-42 are in shard 0 of 3, a and s2 in shard 1.
	if mine, err := k.claim(1, "s1"); !mine || err != nil {
		t.Errorf("claim(s1) = %v, %v; want this shard's", mine, err)
	}
	if mine, err := k.claim(2, "a"); mine || err != nil {
		t.Errorf("claim(a) = %v, %v; want another shard's", mine, err)
	}
	if _, err := k.claim(3, ""); err != errNoID {
		t.Errorf("claim of a line without an id: %v, want errNoID", err)
	}
	if _, err := k.claim(4, "s1"); err == nil || !strings.Contains(err.Error(), `id "s1" is also on line 1`) {
		t.Errorf("claim of a duplicate: %v", err)
	}
	if mine, err := k.claim(5, "a"); mine || err != nil {
		t.Errorf("a duplicate of another shard's id: %v, %v; want it left to that shard", mine, err)
	}
	if got := k.todo("s1", 5); fmt.Sprint(got) != "[0 2 4]" {
		t.Errorf("todo(s1, 5) = %v, want [0 2 4]", got)
	}
	if got := k.todo("job-42", 1); fmt.Sprint(got) != "[0]" {
		t.Errorf("todo(job-42, 1) = %v, want [0]", got)
	}
	if o, d := k.counts(); o != 2 || d != 2 {
		t.Errorf("counts: %d lines of other shards, %d runs done; want 2 and 2", o, d)
	}
}

func TestCheckInputIDs(t *testing.T) {
	good := "{\"id\": \"a\", \"command\": [\"true\"]}\n\n{\"id\": \"b\", \"oops\": 1}\n"
	if err := checkInputIDs(strings.NewReader(good)); err != nil {
		t.Errorf("unique ids (one line otherwise bad): %v", err)
	}
	var in strings.Builder
	in.WriteString(`{"id": "a", "command": ["true"]}` + "\n")
	in.WriteString(`{"command": ["true"]}` + "\n")
	in.WriteString(`{"id": "a", "command": ["false"]}` + "\n")
	in.WriteString("not json\n")
	for range 5 {
		in.WriteString(`{"command": ["true"]}` + "\n")
	}
	err := checkInputIDs(strings.NewReader(in.String()))
	if err == nil {
		t.Fatal("no error for lines without ids and a duplicate")
	}
	for _, want := range []string{"line 2 has no id", `line 3 repeats the id "a" of line 1`, "line 4 has no id", "(and 3 more)", "nothing was run"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}

// TestReadDoneRuns reads an output file back: results keyed by id and
// repeat_index count, rejected and canceled lines do not, and a torn last
// line is not counted and is left out of the complete length.
func TestReadDoneRuns(t *testing.T) {
	lines := []string{
		`{"protocol":1,"schema_version":1,"input_line":1,"id":"a","status":"success","repeat_index":0}`,
		`{"protocol":1,"schema_version":1,"input_line":2,"id":"b","status":"timeout","repeat_index":2}`,
		`{"protocol":1,"schema_version":1,"input_line":3,"id":"c","status":"canceled","repeat_index":0}`,
		`{"protocol":1,"schema_version":1,"input_line":4,"id":"d","status":"rejected","error":"x"}`,
		`{"protocol":1,"schema_version":1,"input_line":5,"status":"rejected","error":"x"}`,
		``,
		`{"schema_version":1,"id":"e","status":"error"}`,
	}
	complete := strings.Join(lines, "\n") + "\n"
	torn := `{"protocol":1,"schema_version":1,"input_line":6,"id":"f","sta`
	for _, tail := range []string{"", torn, `{"id":"g","status":"success","repeat_index":0}`} {
		done, n, err := readDoneRuns(strings.NewReader(complete + tail))
		if err != nil {
			t.Fatal(err)
		}
		if n != int64(len(complete)) {
			t.Errorf("tail %q: complete length %d, want %d", tail, n, len(complete))
		}
		want := map[runKey]struct{}{{"a", 0}: {}, {"b", 2}: {}, {"e", 0}: {}}
		if len(done) != len(want) {
			t.Errorf("tail %q: done %v, want %v", tail, done, want)
		}
		for k := range want {
			if _, ok := done[k]; !ok {
				t.Errorf("tail %q: %v is not done", tail, k)
			}
		}
	}
	for in, msg := range map[string]string{
		complete + "{\"id\": \"x\", \"command\": [\"true\"]}\n": "line 8: not a result line",
		"garbage\n" + complete: "line 1: not a result line",
		`{"id":"a","status":"success","repeat_index":-1}` + "\n":  "negative",
		`{"id":"a","status":"success","repeat_index":1.5}` + "\n": "not a result line",
	} {
		if _, _, err := readDoneRuns(strings.NewReader(in)); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("error %v, want one saying %q", err, msg)
		}
	}
}

// TestOpenResume checks the output file of a resumed batch: its torn last
// line is cut off and said, the results are read, a second batch cannot
// take the file while the first holds it, and a file that is not a result
// file is refused unchanged.
func TestOpenResume(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "results.ndjson")
	good := `{"protocol":1,"schema_version":1,"input_line":1,"id":"a","status":"success","repeat_index":0}` + "\n"
	if err := os.WriteFile(path, []byte(good+`{"protocol":1,"id":"b`), 0o644); err != nil {
		t.Fatal(err)
	}
	var diag bytes.Buffer
	f, done, err := openResume(path, &diag)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, ok := done[runKey{"a", 0}]; !ok || len(done) != 1 {
		t.Errorf("done %v, want a/0 only", done)
	}
	if !strings.Contains(diag.String(), "removed the torn last line of "+path+" (21 bytes") {
		t.Errorf("diagnostics %q do not say the torn line was removed", diag.String())
	}
	if _, err := f.Write([]byte(`{"id":"b","status":"success"}` + "\n")); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	if want := good + `{"id":"b","status":"success"}` + "\n"; string(b) != want {
		t.Errorf("file after resuming and writing:\n%s\nwant\n%s", b, want)
	}

	if _, _, err := openResume(path, &diag); err == nil || !strings.Contains(err.Error(), "held by another cgmon batch") {
		t.Errorf("a second resume of a held file: %v", err)
	}

	other := filepath.Join(dir, "input.ndjson")
	in := `{"id": "a", "command": ["true"]}` + "\n" + `{"id": "b", "comm`
	if err := os.WriteFile(other, []byte(in), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := openResume(other, &diag); err == nil || !strings.Contains(err.Error(), "line 1: not a result line") {
		t.Errorf("resuming into an input file: %v", err)
	}
	if b, _ := os.ReadFile(other); string(b) != in {
		t.Errorf("a refused file was changed to %q", b)
	}
	// An input file without its last newline: not a torn result.
	single := filepath.Join(dir, "single.ndjson")
	in = `{"id": "a", "command": ["true"]}`
	if err := os.WriteFile(single, []byte(in), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := openResume(single, &diag); err == nil || !strings.Contains(err.Error(), "refusing to cut it off") {
		t.Errorf("resuming into a file whose only line lacks its newline: %v", err)
	}
	if b, _ := os.ReadFile(single); string(b) != in {
		t.Errorf("a refused file was changed to %q", b)
	}
	// A torn line shorter than the start of a result is one.
	short := filepath.Join(dir, "short.ndjson")
	if err := os.WriteFile(short, []byte(good+`{"pro`), 0o644); err != nil {
		t.Fatal(err)
	}
	g, _, err := openResume(short, &diag)
	if err != nil {
		t.Fatalf("a torn line of 5 bytes: %v", err)
	}
	g.Close()
	if b, _ := os.ReadFile(short); string(b) != good {
		t.Errorf("after cutting a 5-byte torn line: %q", b)
	}
	if _, _, err := openResume(dir, &diag); err == nil {
		t.Error("a directory was taken as an output file")
	}
}

// BenchmarkReadDoneRuns reads back an output file of 10000 results, each
// the size of a real result line (about 2 KB), as --resume does before a
// batch starts: the cost of resuming, per 10000 results written.
func BenchmarkReadDoneRuns(b *testing.B) {
	var file bytes.Buffer
	pad := strings.Repeat("x", 1800)
	for i := range 10000 {
		fmt.Fprintf(&file, `{"protocol":1,"schema_version":1,"input_line":%d,"id":"s%d","language":"python","status":"success","exit_code":0,"reason":%q,"repeat_index":0}`+"\n", i+1, i, pad)
	}
	b.SetBytes(int64(file.Len()))
	b.ReportAllocs()
	for b.Loop() {
		done, _, err := readDoneRuns(bytes.NewReader(file.Bytes()))
		if err != nil || len(done) != 10000 {
			b.Fatalf("%d runs, %v", len(done), err)
		}
	}
}
