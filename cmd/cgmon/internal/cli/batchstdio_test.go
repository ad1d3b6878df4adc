package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/cgmon/cgmon/cgroupmon"
)

// batchResult is the part of a result line these tests read.
type batchResult struct {
	ID        string `json:"id"`
	InputLine int    `json:"input_line"`
	Status    string `json:"status"`
	Reason    string `json:"reason"`
	Error     string `json:"error"`
	Signal    int    `json:"signal"`
	ExitCode  int    `json:"exit_code"`
}

// runBatchLines runs lines as `cgmon batch -o results` in dir, in this
// process, and returns the exit status, the results by id and standard
// error.
func runBatchLines(t *testing.T, dir string, lines []string, flags ...string) (int, map[string]batchResult, string) {
	t.Helper()
	in := filepath.Join(dir, "batch.ndjson")
	if err := os.WriteFile(in, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "results.ndjson")
	var errb bytes.Buffer
	args := append([]string{"batch", "-o", out, "--summary", filepath.Join(dir, "summary.txt")}, flags...)
	code := Main(append(args, in), IO{In: strings.NewReader(""), Out: &errb, Err: &errb})
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatalf("no results (exit %d): %v\n%s", code, err, errb.String())
	}
	res := map[string]batchResult{}
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var r batchResult
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("result line %q: %v", l, err)
		}
		if _, dup := res[r.ID]; dup {
			t.Fatalf("two results for %q", r.ID)
		}
		res[r.ID] = r
	}
	return code, res, errb.String()
}

// TestBatch100StdinStdout is the acceptance line: 100 lines, each reading
// its own stdin file and writing its own stdout file, run 8 at a time,
// give 100 correct outputs (each line's input, transformed, and nothing
// of another line's).
func TestBatch100StdinStdout(t *testing.T) {
	dir := t.TempDir()
	var lines []string
	for i := range 100 {
		in := filepath.Join(dir, fmt.Sprintf("in%03d.txt", i))
		if err := os.WriteFile(in, []byte(strings.Repeat(fmt.Sprintf("input of line %d\n", i), i+1)), 0o644); err != nil {
			t.Fatal(err)
		}
		lines = append(lines, fmt.Sprintf(`{"id": "s%03d", "command": ["tr", "a-z", "A-Z"], "stdin": %q, "stdout": %q}`, i, in, filepath.Join(dir, fmt.Sprintf("out%03d.txt", i))))
	}
	code, res, diag := runBatchLines(t, dir, lines, "--parallel", "8")
	if code != 0 {
		t.Fatalf("exit status %d:\n%s", code, diag)
	}
	if len(res) != 100 {
		t.Fatalf("%d results, want 100", len(res))
	}
	for i := range 100 {
		id := fmt.Sprintf("s%03d", i)
		if r := res[id]; r.Status != "success" {
			t.Errorf("%s: %+v", id, r)
		}
		got, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("out%03d.txt", i)))
		if err != nil {
			t.Fatal(err)
		}
		if want := strings.Repeat(fmt.Sprintf("INPUT OF LINE %d\n", i), i+1); string(got) != want {
			t.Errorf("%s wrote %q, want %q", id, got, want)
		}
	}
}

// TestBatchFsizeStopsAWriter is the acceptance line's second half: an
// RLIMIT_FSIZE of 1 MiB stops `head -c 5242880 /dev/zero` (5 MiB), whose output file
// holds 1 MiB, and the result says which limit it was.
func TestBatchFsizeStopsAWriter(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "big.out")
	code, res, diag := runBatchLines(t, dir, []string{
		fmt.Sprintf(`{"id": "w", "command": ["head", "-c", "5242880", "/dev/zero"], "stdout": %q, "rlimits": [{"type": "RLIMIT_FSIZE", "soft": 1048576, "hard": 1048576}]}`, out),
	})
	if code != 0 {
		t.Fatalf("exit status %d:\n%s", code, diag)
	}
	r := res["w"]
	if r.Status != "signaled" || r.Signal != 25 || !strings.Contains(r.Reason, "the output file limit (RLIMIT_FSIZE 1 MiB) was reached") {
		t.Errorf("result %+v", r)
	}
	if st, err := os.Stat(out); err != nil || st.Size() != 1<<20 {
		t.Errorf("output: %v, %v; want 1 MiB", st, err)
	}
}

// TestBatchEnvDirRlimits checks that a line's env (the whole
// environment), dir and rlimits are what its command sees, and that
// stdout and stderr naming one file share it (neither overwrites the
// other).
func TestBatchEnvDirRlimits(t *testing.T) {
	dir := t.TempDir()
	work := t.TempDir()
	out := filepath.Join(dir, "out")
	// An existing output is emptied first.
	if err := os.WriteFile(out, []byte(strings.Repeat("old content\n", 100)), 0o600); err != nil {
		t.Fatal(err)
	}
	code, res, diag := runBatchLines(t, dir, []string{
		fmt.Sprintf(`{"id": "e", "command": ["/bin/sh", "-c", "echo \"$GREETING\" \"${HOME-no home}\"; pwd; echo to stderr >&2; ulimit -n; ulimit -Hn"], "env": ["GREETING=hi there"], "dir": %q, "stdout": %q, "stderr": %q, "rlimits": [{"type": "nofile", "soft": 64, "hard": "128"}]}`, work, out, out),
	})
	if code != 0 || res["e"].Status != "success" {
		t.Fatalf("exit status %d, %+v:\n%s", code, res["e"], diag)
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if want := "hi there no home\n" + work + "\nto stderr\n64\n128\n"; string(got) != want {
		t.Errorf("the command wrote %q, want %q", got, want)
	}
}

// TestBatchBadStdioRejected checks that each bad field rejects its line
// with an error naming it, that nothing runs, and that no output file is
// left created.
func TestBatchBadStdioRejected(t *testing.T) {
	dir := t.TempDir()
	marker := filepath.Join(dir, "ran")
	in := filepath.Join(dir, "in.txt")
	if err := os.WriteFile(in, []byte("x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "a-file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	newOut := filepath.Join(dir, "new.out")
	touch := fmt.Sprintf(`"command": ["touch", %q]`, marker)
	cases := map[string]struct{ line, want string }{
		"bad-name":   {fmt.Sprintf(`{"id": "bad-name", %s, "stdout": %q, "rlimits": [{"type": "RLIMIT_BOGUS", "soft": 1, "hard": 1}]}`, touch, newOut), `rlimits[0]: unknown type "RLIMIT_BOGUS"`},
		"soft>hard":  {fmt.Sprintf(`{"id": "soft>hard", %s, "stdout": %q, "rlimits": [{"type": "RLIMIT_CORE", "soft": 10, "hard": 1}]}`, touch, newOut), "rlimits[0] RLIMIT_CORE: soft limit 10 is above the hard limit 1"},
		"negative":   {fmt.Sprintf(`{"id": "negative", %s, "rlimits": [{"type": "RLIMIT_CORE", "soft": -1, "hard": 1}]}`, touch), `"rlimits"[0] RLIMIT_CORE: "soft" -1: want a whole number or "unlimited"`},
		"no-hard":    {fmt.Sprintf(`{"id": "no-hard", %s, "rlimits": [{"type": "RLIMIT_CORE", "soft": 1}]}`, touch), `"rlimits"[0] RLIMIT_CORE: "hard" is missing`},
		"extra-key":  {fmt.Sprintf(`{"id": "extra-key", %s, "rlimits": [{"type": "RLIMIT_CORE", "soft": 1, "hard": 1, "max": 2}]}`, touch), `"rlimits"`},
		"no-stdin":   {fmt.Sprintf(`{"id": "no-stdin", %s, "stdout": %q, "stdin": %q}`, touch, newOut, filepath.Join(dir, "missing")), `"stdin" ` + filepath.Join(dir, "missing") + ": no such file or directory"},
		"dir-stdin":  {fmt.Sprintf(`{"id": "dir-stdin", %s, "stdin": %q}`, touch, dir), `"stdin" ` + dir + ": a directory"},
		"out-nodir":  {fmt.Sprintf(`{"id": "out-nodir", %s, "stdout": %q}`, touch, filepath.Join(dir, "no", "such", "dir", "out")), `"stdout" ` + filepath.Join(dir, "no", "such", "dir", "out") + ": no such file or directory"},
		"out-infile": {fmt.Sprintf(`{"id": "out-infile", %s, "stdout": %q, "stderr": %q}`, touch, newOut, filepath.Join(file, "err")), `"stderr" ` + filepath.Join(file, "err") + ": not a directory"},
		"out-is-in":  {fmt.Sprintf(`{"id": "out-is-in", %s, "stdin": %q, "stdout": %q}`, touch, in, in), `"stdout" ` + in + ` is the file "stdin" reads`},
		"no-dir":     {fmt.Sprintf(`{"id": "no-dir", %s, "stdout": %q, "dir": %q}`, touch, newOut, filepath.Join(dir, "missing")), `"dir" ` + filepath.Join(dir, "missing") + ": no such file or directory"},
		"dir-file":   {fmt.Sprintf(`{"id": "dir-file", %s, "dir": %q}`, touch, file), `"dir" ` + file + ": not a directory"},
		"env-no-eq":  {fmt.Sprintf(`{"id": "env-no-eq", %s, "env": ["PATH=/bin", "JUSTAKEY"]}`, touch), `"env"[1] JUSTAKEY: want "KEY=VALUE"`},
		"env-no-key": {fmt.Sprintf(`{"id": "env-no-key", %s, "env": ["=x"]}`, touch), `"env"[0] =x: want "KEY=VALUE"`},
		"repeat-out": {fmt.Sprintf(`{"id": "repeat-out", %s, "repeat": 2, "stdout": %q}`, touch, newOut), `"repeat" 2 with "stdout" or "stderr"`},
	}
	var lines []string
	for _, c := range cases {
		lines = append(lines, c.line)
	}
	code, res, diag := runBatchLines(t, dir, lines)
	if code != 1 {
		t.Errorf("exit status %d, want 1 (lines were rejected):\n%s", code, diag)
	}
	for id, c := range cases {
		r, ok := res[id]
		if !ok {
			t.Errorf("%s: no result", id)
			continue
		}
		if r.Status != StatusRejected || !strings.Contains(r.Error, c.want) {
			t.Errorf("%s: %s %q, want rejected with %q", id, r.Status, r.Error, c.want)
		}
	}
	if _, err := os.Stat(marker); err == nil {
		t.Error("a rejected line ran")
	}
	if _, err := os.Stat(newOut); err == nil {
		t.Error("a rejected line left its output file created")
	}
	if b, _ := os.ReadFile(in); string(b) != "x\n" {
		t.Errorf("a rejected line changed its stdin file: %q", b)
	}
}

// TestOpenLineFilesUndo checks that a file the run created is removed
// when the monitor refuses the run after the files were opened.
func TestOpenLineFilesUndo(t *testing.T) {
	dir := t.TempDir()
	made, kept := filepath.Join(dir, "made"), filepath.Join(dir, "kept")
	if err := os.WriteFile(kept, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	o, err := openLineFiles(lineFiles{Stdout: made, Stderr: kept})
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(kept); len(b) != 0 {
		t.Errorf("an existing output was not emptied: %q", b)
	}
	var s cgroupmon.Spec
	o.use(&s)
	if s.Stdin != nil || s.Stdout == nil || s.Stderr == nil {
		t.Errorf("streams %v %v %v", s.Stdin, s.Stdout, s.Stderr)
	}
	o.undo()
	if _, err := os.Stat(made); err == nil {
		t.Error("undo left the output it created")
	}
	if _, err := os.Stat(kept); err != nil {
		t.Errorf("undo removed an output that existed before: %v", err)
	}
}

func TestParseRlimitFlag(t *testing.T) {
	for in, want := range map[string]specs.POSIXRlimit{
		"nofile=64":                     {Type: "RLIMIT_NOFILE", Soft: 64, Hard: 64},
		"RLIMIT_NOFILE=64:128":          {Type: "RLIMIT_NOFILE", Soft: 64, Hard: 128},
		"fsize=1048576:unlimited":       {Type: "RLIMIT_FSIZE", Soft: 1 << 20, Hard: cgroupmon.RlimitInfinity},
		"core=0":                        {Type: "RLIMIT_CORE"},
		"Stack=unlimited:infinity":      {Type: "RLIMIT_STACK", Soft: cgroupmon.RlimitInfinity, Hard: cgroupmon.RlimitInfinity},
		"rlimit_cpu=1:2":                {Type: "RLIMIT_CPU", Soft: 1, Hard: 2},
		"bogus=1":                       {Type: "RLIMIT_BOGUS", Soft: 1, Hard: 1}, // the monitor refuses it
		"nofile=18446744073709551615:1": {Type: "RLIMIT_NOFILE", Soft: cgroupmon.RlimitInfinity, Hard: 1},
	} {
		got, err := parseRlimitFlag(in)
		if err != nil || got != want {
			t.Errorf("%s: %+v, %v; want %+v", in, got, err, want)
		}
	}
	for in, msg := range map[string]string{
		"nofile":      "want NAME=SOFT[:HARD]",
		"=5":          "want NAME=SOFT[:HARD]",
		"nofile=":     "want NAME=SOFT[:HARD]",
		"nofile=-1":   `RLIMIT_NOFILE soft limit -1: want a whole number or "unlimited"`,
		"nofile=1:x":  `RLIMIT_NOFILE hard limit x: want a whole number`,
		"nofile=1.5":  "whole number",
		"fsize=1M":    "whole number",
		"nofile=1:2:": "hard limit 2:",
	} {
		if _, err := parseRlimitFlag(in); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("%s: error %v, want one with %q", in, err, msg)
		}
	}
}

// TestRunRlimit checks `cgmon run --rlimit`: the command sees the limits,
// and a bad one is exit status 125 with nothing run.
func TestRunRlimit(t *testing.T) {
	var out, errb bytes.Buffer
	code := Main([]string{"run", "--rlimit", "nofile=64:128", "--rlimit", "RLIMIT_CORE=0", "--", "/bin/sh", "-c", "ulimit -n; ulimit -Hn; ulimit -c"}, IO{In: strings.NewReader(""), Out: &out, Err: &errb})
	if code != 0 || out.String() != "64\n128\n0\n" {
		t.Errorf("exit %d, output %q:\n%s", code, out.String(), errb.String())
	}

	marker := filepath.Join(t.TempDir(), "ran")
	for _, c := range []struct{ flag, want string }{
		{"bogus=1", `cgmon: run: --rlimit: invalid spec: rlimits[0]: unknown type "RLIMIT_BOGUS"`},
		{"nofile=10:5", "soft limit 10 is above the hard limit 5"},
		{"nofile=ten", `cgmon: run: --rlimit "nofile=ten": RLIMIT_NOFILE soft limit ten: want a whole number`},
		{"nofile", "want NAME=SOFT[:HARD]"},
	} {
		out.Reset()
		errb.Reset()
		code := Main([]string{"run", "--rlimit", c.flag, "--", "touch", marker}, IO{In: strings.NewReader(""), Out: &out, Err: &errb})
		if code != ExitFailure || !strings.Contains(errb.String(), c.want) {
			t.Errorf("--rlimit %s: exit %d, stderr %q; want %d and %q", c.flag, code, errb.String(), ExitFailure, c.want)
		}
		if _, err := os.Stat(marker); err == nil {
			t.Fatalf("--rlimit %s: the command ran", c.flag)
		}
	}
}
