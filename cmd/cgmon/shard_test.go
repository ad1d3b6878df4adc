package main

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// batchRoot returns the flags that put a test batch's executions in a
// cgroup root of the test's own (ownedCgroupRoot) when the test runs as
// root, so that what a killed batch leaves can be seen and removed; as
// another user, executions are measured through procfs and leave no
// cgroup.
func batchRoot(t *testing.T) (root string, flags []string) {
	t.Helper()
	if os.Geteuid() != 0 {
		return "", nil
	}
	root = ownedCgroupRoot(t)
	return root, []string{"--cgroup-root", root}
}

// removeLeavesOf removes the cgroups that the cgmon of pid left in root
// when it was killed (their names hold "-PID-"), once their processes
// are gone, and fails the test for any cgroup left by another cgmon.
// Leaves of a monitor that died are expected: nothing removes them but
// the next monitor that knows it died.
func removeLeavesOf(t *testing.T, root string, pid int) {
	t.Helper()
	if root == "" {
		return
	}
	for _, name := range leftCgroups(t, root) {
		if !strings.Contains(name, fmt.Sprintf("-%d-", pid)) {
			t.Errorf("cgroup %s was left by a cgmon that was not killed", name)
			continue
		}
		dir := filepath.Join(root, name)
		_ = os.WriteFile(filepath.Join(dir, "cgroup.kill"), []byte("1"), 0)
		deadline := time.Now().Add(10 * time.Second)
		for syscall.Rmdir(dir) != nil {
			if time.Now().After(deadline) {
				t.Errorf("the cgroup %s of a killed cgmon could not be removed within 10 s", dir)
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// resultRecord is a parsed line of a batch's output.
type resultRecord = map[string]any

// runKeyOf returns the key of a result line: its id and repeat_index.
func runKeyOf(r resultRecord) string {
	ri, _ := r["repeat_index"].(float64)
	return fmt.Sprintf("%v/%d", r["id"], int(ri))
}

// readResultFile returns the lines of a batch's output file, failing the
// test on a line that is not JSON or a last line without its newline.
func readResultFile(t *testing.T, path string) []resultRecord {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > 0 && b[len(b)-1] != '\n' {
		t.Fatalf("%s ends without a newline: %q", path, b[max(0, len(b)-80):])
	}
	var out []resultRecord
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		var r resultRecord
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("%s: line %q: %v", path, sc.Text(), err)
		}
		out = append(out, r)
	}
	return out
}

// completeLines counts the newline-terminated lines of path (0 when it
// does not exist yet).
func completeLines(path string) int {
	b, _ := os.ReadFile(path)
	return bytes.Count(b, []byte("\n"))
}

// documentedShard is the shard of an id as the README gives it, computed
// here on its own: the first 8 bytes of SHA-256(id), big-endian, mod n.
func documentedShard(id string, n int) int {
	sum := sha256.Sum256([]byte(id))
	return int(binary.BigEndian.Uint64(sum[:8]) % uint64(n))
}

// writeLines writes NDJSON lines to a new file in dir and returns its path.
func writeLines(t *testing.T, dir, name string, lines []string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// stableFields are the fields of a result that do not depend on when or
// where it ran: a shard's result must have the unsharded run's.
var stableFields = []string{"id", "input_line", "repeat_index", "status", "exit_code", "timed_out", "language", "command", "error"}

// TestBatchShardUnion runs one input unsharded and as N = 1, 3 and 7
// shards: each result of the shards is in the shard the README's formula
// gives, no key is in two shards, and the union of the shards equals the
// unsharded run line for line by id (status, exit code, input line, error),
// including a repeated line, a timeout and a rejected line.
func TestBatchShardUnion(t *testing.T) {
	_, rootFlags := batchRoot(t)
	dir := t.TempDir()
	var lines []string
	for i := range 20 {
		lang := []string{"sh", "c", "python"}[i%3]
		lines = append(lines, fmt.Sprintf(`{"id": "u%02d", "language": %q, "command": ["sh", "-c", "exit %d"]}`, i, lang, i%4))
		if i == 9 {
			lines = append(lines, "")
		}
	}
	lines = append(lines,
		`{"id": "rep", "language": "sh", "command": ["true"], "repeat": 3}`,
		`{"id": "slow", "language": "sh", "command": ["sleep", "5"], "timeout": "200ms"}`,
		`{"id": "bad", "command": ["true"], "oops": 1}`)
	in := writeLines(t, dir, "in.ndjson", lines)

	batch := func(out string, extra ...string) int {
		t.Helper()
		args := append([]string{"batch", "--parallel", "2", "-o", out}, rootFlags...)
		r := cgmon(t, "", append(append(args, extra...), in)...)
		if r.code != 0 && r.code != 1 {
			t.Fatalf("cgmon batch %v: exit %d: %s", extra, r.code, r.stderr)
		}
		return r.code
	}
	all := filepath.Join(dir, "all.ndjson")
	if code := batch(all); code != 1 {
		t.Errorf("unsharded run: exit %d, want 1 (a rejected line)", code)
	}
	want := map[string]resultRecord{}
	for _, r := range readResultFile(t, all) {
		want[runKeyOf(r)] = r
	}
	if len(want) != 20+3+1+1 {
		t.Fatalf("the unsharded run has %d results, want 25", len(want))
	}

	for _, n := range []int{1, 3, 7} {
		t.Run(fmt.Sprintf("N=%d", n), func(t *testing.T) {
			got := map[string]resultRecord{}
			for k := range n {
				out := filepath.Join(dir, fmt.Sprintf("shard-%d-of-%d.ndjson", k, n))
				code := batch(out, "--shard", fmt.Sprintf("%d/%d", k, n))
				rejected := false
				for _, r := range readResultFile(t, out) {
					key := runKeyOf(r)
					if _, dup := got[key]; dup {
						t.Errorf("%s: a second result for %s", out, key)
					}
					got[key] = r
					if s := documentedShard(r["id"].(string), n); s != k {
						t.Errorf("%s holds %s, whose shard is %d", out, key, s)
					}
					rejected = rejected || r["status"] == "rejected"
				}
				if wantCode := map[bool]int{false: 0, true: 1}[rejected]; code != wantCode {
					t.Errorf("shard %d/%d: exit %d, want %d", k, n, code, wantCode)
				}
			}
			if len(got) != len(want) {
				t.Errorf("the shards have %d results, the unsharded run %d", len(got), len(want))
			}
			for key, w := range want {
				g, ok := got[key]
				if !ok {
					t.Errorf("%s is in no shard", key)
					continue
				}
				for _, f := range stableFields {
					if fmt.Sprint(g[f]) != fmt.Sprint(w[f]) {
						t.Errorf("%s: %s is %v in its shard, %v unsharded", key, f, g[f], w[f])
					}
				}
			}
		})
	}
}

// startBatch starts `cgmon batch` with args in its own process group.
func startBatch(t *testing.T, args ...string) (*exec.Cmd, *bytes.Buffer) {
	t.Helper()
	cmd := exec.Command(cgmonBin, append([]string{"batch"}, args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return cmd, &stderr
}

// waitLines waits until path has at least n complete lines, failing the
// test after 30 s.
func waitLines(t *testing.T, path string, n int, stderr *bytes.Buffer) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for completeLines(path) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%s has %d lines after 30 s, want %d; stderr %q", path, completeLines(path), n, stderr.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestBatchResumeAfterKill kills a batch with SIGKILL while it is writing
// results, tears its last result line in half as a kill in the middle of
// that write leaves it, and resumes: the torn line is removed and said,
// the results written before stay as they were, and every id has exactly
// one result.
func TestBatchResumeAfterKill(t *testing.T) {
	root, rootFlags := batchRoot(t)
	dir := t.TempDir()
	const ids = 24
	var lines []string
	for i := range ids {
		lines = append(lines, fmt.Sprintf(`{"id": "k%02d", "command": ["sleep", "0.15"]}`, i))
	}
	in := writeLines(t, dir, "in.ndjson", lines)
	out := filepath.Join(dir, "out.ndjson")
	args := append([]string{"--parallel", "2", "--resume", "-o", out}, rootFlags...)

	cmd, stderr := startBatch(t, append(args, in)...)
	waitLines(t, out, 6, stderr)
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	removeLeavesOf(t, root, cmd.Process.Pid)

	before, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	kept := bytes.Count(before, []byte("\n")) - 1
	if kept >= ids-1 {
		t.Fatalf("the batch had written %d of %d results when it was killed: not half-way", kept+1, ids)
	}
	// The last complete line, cut in the middle of its write.
	cut := bytes.LastIndexByte(before[:len(before)-1], '\n') + 1
	last := before[cut:]
	var tornID struct{ ID string }
	if err := json.Unmarshal(last, &tornID); err != nil {
		t.Fatal(err)
	}
	torn := append(append([]byte{}, before[:cut]...), last[:len(last)/2]...)
	if err := os.WriteFile(out, torn, 0o644); err != nil {
		t.Fatal(err)
	}

	r := cgmon(t, "", append([]string{"batch"}, append(args, in)...)...)
	if r.code != 0 {
		t.Fatalf("resume: exit %d: %s", r.code, r.stderr)
	}
	if !strings.Contains(r.stderr, fmt.Sprintf("removed the torn last line of %s (%d bytes", out, len(last)/2)) {
		t.Errorf("the resumed batch did not say it removed the torn line: %s", r.stderr)
	}
	if !strings.Contains(r.stderr, fmt.Sprintf("Resumed: %d runs already had a result", kept)) {
		t.Errorf("the summary does not count the %d runs already done: %s", kept, r.stderr)
	}
	after, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(after, before[:cut]) {
		t.Error("the results written before the kill were changed")
	}
	count := map[string]int{}
	for _, res := range readResultFile(t, out) {
		count[res["id"].(string)]++
		if res["status"] != "success" {
			t.Errorf("result %v: want success", res)
		}
	}
	for i := range ids {
		if id := fmt.Sprintf("k%02d", i); count[id] != 1 {
			t.Errorf("%s has %d results, want exactly 1", id, count[id])
		}
	}
	if len(count) != ids {
		t.Errorf("results for %d ids, want %d", len(count), ids)
	}
	if count[tornID.ID] != 1 {
		t.Errorf("the torn result's id %s has %d results", tornID.ID, count[tornID.ID])
	}
}

// TestBatchResumeAfterSIGTERM stops a batch with SIGTERM, as a preempted
// pod or a requeued Slurm task is stopped, and resumes: the runs that
// SIGTERM canceled run again, and every id ends with exactly one result
// that is not canceled, written after any canceled one.
func TestBatchResumeAfterSIGTERM(t *testing.T) {
	_, rootFlags := batchRoot(t)
	dir := t.TempDir()
	const ids = 16
	var lines []string
	for i := range ids {
		lines = append(lines, fmt.Sprintf(`{"id": "t%02d", "command": ["sleep", "0.3"]}`, i))
	}
	in := writeLines(t, dir, "in.ndjson", lines)
	out := filepath.Join(dir, "out.ndjson")
	args := append([]string{"--parallel", "2", "--resume", "-o", out}, rootFlags...)

	cmd, stderr := startBatch(t, append(args, in)...)
	waitLines(t, out, 4, stderr)
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := exitCode(t, cmd.Wait()); code != 143 {
		t.Fatalf("after SIGTERM: exit %d, want 143; stderr %s", code, stderr)
	}
	canceled := 0
	for _, res := range readResultFile(t, out) {
		if res["status"] == "canceled" {
			canceled++
		}
	}
	if canceled == 0 {
		t.Fatal("SIGTERM canceled no run: nothing for --resume to run again")
	}

	if r := cgmon(t, "", append([]string{"batch"}, append(args, in)...)...); r.code != 0 {
		t.Fatalf("resume: exit %d: %s", r.code, r.stderr)
	}
	final := map[string]int{}
	for i, res := range readResultFile(t, out) {
		id := res["id"].(string)
		switch {
		case res["status"] == "canceled" && final[id] > 0:
			t.Errorf("line %d: %s was canceled after its result", i+1, id)
		case res["status"] == "success":
			final[id]++
		case res["status"] != "canceled":
			t.Errorf("line %d: %v", i+1, res)
		}
	}
	for i := range ids {
		if id := fmt.Sprintf("t%02d", i); final[id] != 1 {
			t.Errorf("%s has %d results that are not canceled, want exactly 1", id, final[id])
		}
	}
}

// TestBatchRepeatResume runs lines with "repeat", kills the batch after
// a few runs and resumes: each (id, repeat_index) has exactly one result,
// and the runs done before the kill are not run again.
func TestBatchRepeatResume(t *testing.T) {
	root, rootFlags := batchRoot(t)
	dir := t.TempDir()
	in := writeLines(t, dir, "in.ndjson", []string{
		`{"id": "r", "command": ["sleep", "0.2"], "repeat": 6}`,
		`{"id": "q", "command": ["true"], "repeat": 2}`,
		`{"id": "once", "command": ["true"]}`,
	})
	out := filepath.Join(dir, "out.ndjson")
	args := append([]string{"--parallel", "1", "--resume", "-o", out}, rootFlags...)
	cmd, stderr := startBatch(t, append(args, in)...)
	waitLines(t, out, 2, stderr)
	_ = cmd.Process.Signal(syscall.SIGKILL)
	_ = cmd.Wait()
	removeLeavesOf(t, root, cmd.Process.Pid)
	done := readResultFile(t, out)

	r := cgmon(t, "", append([]string{"batch"}, append(args, in)...)...)
	if r.code != 0 {
		t.Fatalf("resume: exit %d: %s", r.code, r.stderr)
	}
	if !strings.Contains(r.stderr, fmt.Sprintf("Resumed: %d runs already had a result", len(done))) {
		t.Errorf("the summary does not count the %d runs done before the kill: %s", len(done), r.stderr)
	}
	count := map[string]int{}
	for _, res := range readResultFile(t, out) {
		count[runKeyOf(res)]++
	}
	want := []string{"r/0", "r/1", "r/2", "r/3", "r/4", "r/5", "q/0", "q/1", "once/0"}
	for _, k := range want {
		if count[k] != 1 {
			t.Errorf("%s has %d results, want exactly 1", k, count[k])
		}
	}
	if len(count) != len(want) {
		t.Errorf("results for %v, want %v", count, want)
	}
}

// TestBatchKeyedIDs checks that with --shard or --resume ids key the
// work: on standard input a line without an id or with a repeated one is
// rejected as it is read and the rest run; in a file the same lines are
// refused before anything runs, and the output file is not made.
func TestBatchKeyedIDs(t *testing.T) {
	_, rootFlags := batchRoot(t)
	input := strings.Join([]string{
		`{"id": "a", "command": ["true"]}`,
		`{"command": ["true"]}`,
		`{"id": "a", "command": ["false"]}`,
		`{"id": "b", "command": ["true"]}`,
	}, "\n") + "\n"

	r := cgmon(t, input, append(append([]string{"batch", "--shard", "0/1", "-o", "-"}, rootFlags...), "-")...)
	if r.code != 1 {
		t.Errorf("standard input: exit %d, want 1; stderr %s", r.code, r.stderr)
	}
	byLine := map[float64]resultRecord{}
	for _, l := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		var res resultRecord
		if err := json.Unmarshal([]byte(l), &res); err != nil {
			t.Fatalf("result %q: %v", l, err)
		}
		byLine[res["input_line"].(float64)] = res
	}
	for line, want := range map[float64]string{1: "success", 2: "rejected", 3: "rejected", 4: "success"} {
		if got := byLine[line]["status"]; got != want {
			t.Errorf("line %v: status %v, want %s", line, got, want)
		}
	}
	if e, _ := byLine[2]["error"].(string); !strings.Contains(e, `no "id"`) {
		t.Errorf("line 2's error %q does not say it has no id", e)
	}
	if e, _ := byLine[3]["error"].(string); !strings.Contains(e, `id "a" is also on line 1`) {
		t.Errorf("line 3's error %q does not name the first line of its id", e)
	}

	dir := t.TempDir()
	in := filepath.Join(dir, "in.ndjson")
	if err := os.WriteFile(in, []byte(input), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out.ndjson")
	for _, flag := range []string{"--shard=0/2", "--resume"} {
		r := cgmon(t, "", append(append([]string{"batch", flag, "-o", out}, rootFlags...), in)...)
		if r.code != 125 || !strings.Contains(r.stderr, "line 2 has no id") || !strings.Contains(r.stderr, `line 3 repeats the id "a" of line 1`) {
			t.Errorf("%s on a file: exit %d, stderr %q; want 125 naming lines 2 and 3", flag, r.code, r.stderr)
		}
		if _, err := os.Stat(out); !os.IsNotExist(err) {
			t.Errorf("%s: the output file was made for a refused input", flag)
		}
	}
	if r := cgmon(t, "", "batch", "--resume", in); r.code != 125 || !strings.Contains(r.stderr, "--resume needs --output FILE") {
		t.Errorf("--resume to standard output: exit %d, %q", r.code, r.stderr)
	}
}

// readmeSectionShell returns the sh blocks of the README section whose
// heading starts with heading.
func readmeSectionShell(t *testing.T, heading string) []string {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	i := strings.Index(text, "\n"+heading)
	if i < 0 {
		t.Fatalf("README has no section %q", heading)
	}
	text = text[i+1:]
	if j := strings.Index(text[len(heading):], "\n### "); j >= 0 {
		text = text[:len(heading)+j]
	}
	var blocks []string
	for {
		k := strings.Index(text, "```sh\n")
		if k < 0 {
			return blocks
		}
		text = text[k+len("```sh\n"):]
		end := strings.Index(text, "```\n")
		blocks = append(blocks, text[:end])
		text = text[end:]
	}
}

// TestReadmeShardCommand runs the README's shard command as printed, twice:
// the first run writes the results of shard 1 of 3, the second finds them
// all and runs nothing.
func TestReadmeShardCommand(t *testing.T) {
	blocks := readmeSectionShell(t, "### Spreading a batch over machines")
	if len(blocks) == 0 {
		t.Fatal("the README section has no sh block")
	}
	dir := t.TempDir()
	var lines []string
	for i := range 12 {
		lines = append(lines, fmt.Sprintf(`{"id": "s%d", "command": ["true"]}`, i))
	}
	writeLines(t, dir, "batch.ndjson", lines)
	run := func() string {
		sh := exec.Command("bash", "-e", "-c", blocks[0])
		sh.Dir = dir
		sh.Env = append(os.Environ(), "PATH="+filepath.Dir(cgmonBin)+":"+os.Getenv("PATH"))
		b, err := sh.CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", blocks[0], err, b)
		}
		return string(b)
	}
	run()
	out := filepath.Join(dir, "results", "shard-1.ndjson")
	first := readResultFile(t, out)
	for _, r := range first {
		if s := documentedShard(r["id"].(string), 3); s != 1 {
			t.Errorf("shard 1 ran %v, of shard %d", r["id"], s)
		}
	}
	wantN := 0
	for i := range 12 {
		if documentedShard(fmt.Sprintf("s%d", i), 3) == 1 {
			wantN++
		}
	}
	if len(first) != wantN || wantN == 0 {
		t.Errorf("shard 1 has %d results, want %d", len(first), wantN)
	}
	if msg := run(); !strings.Contains(msg, fmt.Sprintf("Resumed: %d runs already had a result", wantN)) {
		t.Errorf("the second run did not skip the %d results: %s", wantN, msg)
	}
	if again := readResultFile(t, out); len(again) != len(first) {
		t.Errorf("the second run added %d results", len(again)-len(first))
	}
}
