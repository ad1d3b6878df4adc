package fleettest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestShard holds the harness's own reading of the README's formula to
// the values cgmon's tests pin (cmd/cgmon/internal/cli), computed with
// Python's hashlib.
func TestShard(t *testing.T) {
	for id, want := range map[string][3]int{"a": {1, 4, 250}, "s1": {0, 3, 695}, "job-42": {0, 2, 6}, "π": {0, 3, 81}} {
		if got := [3]int{Shard(id, 3), Shard(id, 7), Shard(id, 1000)}; got != want {
			t.Errorf("Shard(%q, 3, 7, 1000) = %v, want %v", id, got, want)
		}
	}
}

func TestParseResults(t *testing.T) {
	good := `{"id":"a","repeat_index":1,"input_line":3,"status":"error","exit_code":2,"command":["sh"]}` + "\n"
	rs, err := parseResults("f", []byte(good))
	if err != nil || len(rs) != 1 || rs[0].Key() != (Key{"a", 1}) || rs[0].ExitCode != 2 || rs[0].InputLine != 3 {
		t.Fatalf("parseResults: %+v, %v", rs, err)
	}
	for in, msg := range map[string]string{
		good + `{"id":"b","sta`:               "without its newline",
		"not json\n":                          "f:1:",
		good + `{"id":"b"}` + "\n":            "f:2: no status",
		good + `{"id":"b","status":1}` + "\n": "f:2:",
	} {
		if _, err := parseResults("f", []byte(in)); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("%q: error %v, want one saying %q", in, err, msg)
		}
	}
}

// TestDiff checks that the comparison of the shards with the unsharded
// run finds a missing result, an extra one and each field that differs,
// that a later line replaces an earlier one, and that equal sides give
// nothing.
func TestDiff(t *testing.T) {
	base := []Result{
		{ID: "a", Status: "success", InputLine: 1, Language: "c", Command: []string{"true"}},
		{ID: "b", Status: "error", ExitCode: 2, InputLine: 2, Command: []string{"false"}},
		{ID: "r", RepeatIndex: 1, Status: "success", InputLine: 3},
	}
	if d := Diff(Merge(base), Merge(base[:1], base[1:])); len(d) != 0 {
		t.Errorf("equal sides: %v", d)
	}
	canceled := Result{ID: "b", Status: "canceled", InputLine: 2, Command: []string{"false"}}
	if d := Diff(Merge(base), Merge([]Result{canceled}, base)); len(d) != 0 {
		t.Errorf("a canceled line replaced by its later run: %v", d)
	}
	changed := []Result{
		{ID: "a", Status: "timeout", InputLine: 1, Language: "go", TimedOut: true, Command: []string{"true", "x"}},
		{ID: "b", Status: "error", ExitCode: 3, InputLine: 5, Command: []string{"false"}, Error: "boom"},
		{ID: "extra", Status: "success"},
	}
	d := strings.Join(Diff(Merge(base), Merge(changed)), "\n")
	for _, want := range []string{
		"a/0: status is timeout in its shard, success unsharded", "a/0: language is go", "a/0: timed_out is true",
		`a/0: command is ["true" "x"]`, "b/0: exit_code is 3", "b/0: input_line is 5", "b/0: error is boom",
		"r/1: in the unsharded run, in no shard", "extra/0: in a shard, not in the unsharded run",
	} {
		if !strings.Contains(d, want) {
			t.Errorf("the differences do not say %q:\n%s", want, d)
		}
	}
}

// TestCheckShardFile finds a result in the wrong shard and a run with
// two results, and lets a canceled or rejected line come before its run.
func TestCheckShardFile(t *testing.T) {
	// s1 is in shard 0 of 3, a in shard 1.
	ok := []Result{
		{ID: "s1", Status: "canceled"}, {ID: "s1", Status: "success"},
		{ID: "job-42", Status: "rejected"}, {ID: "job-42", Status: "rejected"},
		{Status: "rejected"},
	}
	if p := CheckShardFile("f", ok, 0, 3); len(p) != 0 {
		t.Errorf("a good shard file: %v", p)
	}
	bad := []Result{{ID: "s1", Status: "success"}, {ID: "s1", Status: "error"}, {ID: "a", Status: "success"}}
	p := strings.Join(CheckShardFile("f", bad, 0, 3), "\n")
	for _, want := range []string{"f:3: a/0 is in shard 1, not 0", "f: s1/0 has 2 results"} {
		if !strings.Contains(p, want) {
			t.Errorf("the problems do not say %q:\n%s", want, p)
		}
	}
}

// TestCheckStates expects the task with the rejected line to fail with
// exit code 1, the others to complete, and the killed task to have been
// requeued.
func TestCheckStates(t *testing.T) {
	good := map[int]taskState{
		0: {state: "COMPLETED", exitCode: "0:0"},
		1: {state: "COMPLETED", exitCode: "0:0", restarts: 1},
		2: {state: "FAILED", exitCode: "1:0"},
	}
	if p := checkStates(good, 2); len(p) != 0 {
		t.Errorf("good states: %v", p)
	}
	bad := map[int]taskState{0: {state: "FAILED", exitCode: "0:9"}, 1: {state: "COMPLETED", exitCode: "0:0"}}
	p := strings.Join(checkStates(bad, 2), "\n")
	for _, want := range []string{"shows 2 tasks", "task 0: FAILED with exit code 0:9", "task 1 was not requeued", "task 2: not in"} {
		if !strings.Contains(p, want) {
			t.Errorf("the problems do not say %q:\n%s", want, p)
		}
	}
}

// TestReadmeSbatch checks that the README shows the command the harness
// runs, and that it submits the example.
func TestReadmeSbatch(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	m := sbatchBlock.FindSubmatch(b)
	if m == nil {
		t.Fatal("the README has no sh block that starts with sbatch")
	}
	if got := strings.TrimSpace(string(m[1])); got != "sbatch examples/slurm/cgmon-batch.sbatch" {
		t.Errorf("the README submits %q", got)
	}
	if _, err := os.Stat(filepath.Join("../../examples/slurm/cgmon-batch.sbatch")); err != nil {
		t.Error(err)
	}
}

// TestSlurmConf checks that every placeholder of the configuration is
// filled in.
func TestSlurmConf(t *testing.T) {
	conf := renderConf("node1", "/w", 16817, 16818, 2)
	if strings.Contains(conf, "{{") {
		t.Errorf("a placeholder is left:\n%s", conf)
	}
	for _, want := range []string{"SlurmctldHost=node1(127.0.0.1)", "SlurmctldPort=16817", "SlurmdPort=16818",
		"AuthInfo=socket=/w/munge/munge.socket,cred_expire=10", "NodeName=node1 NodeAddr=127.0.0.1 CPUs=2"} {
		if !strings.Contains(conf, want) {
			t.Errorf("the configuration has no %q", want)
		}
	}
}

// TestWriteInput checks the harness's input: the killed shard has enough
// runs to be killed half-way, and the rejected line is in a shard.
func TestWriteInput(t *testing.T) {
	path, runs, err := writeInput(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for k := range shards {
		total += runsOf(path, k)
	}
	if total != runs {
		t.Errorf("the shards have %d runs, the input %d", total, runs)
	}
	if n := runsOf(path, killedTask); n < 6 {
		t.Errorf("shard %d has %d runs: too few to kill it half-way", killedTask, n)
	}
}
