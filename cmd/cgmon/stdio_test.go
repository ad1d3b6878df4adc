package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestReadmeStdioAndRlimits runs the README's judging example and its
// `--rlimit` examples as printed, in a fresh directory, and compares what
// they print with what the README shows.
func TestReadmeStdioAndRlimits(t *testing.T) {
	sections := readmeSections(t)
	for _, heading := range []string{
		"Resource limits of the process: `--rlimit`",
		"Judging: stdin, stdout, env, dir and rlimits per line",
	} {
		t.Run(heading, func(t *testing.T) {
			cmds, outputs := shellBlocks(t, sections, heading)
			if strings.Contains(strings.Join(cmds, ""), "jq ") {
				if _, err := exec.LookPath("jq"); err != nil {
					t.Fatal("the README's example needs jq (.ci/run installs it)")
				}
			}
			dir := t.TempDir()
			for i, c := range cmds {
				got := runBlock(t, dir, c)
				if outputs[i] == "" {
					continue // its exit status is what runBlock checked
				}
				if got != outputs[i] {
					t.Errorf("README block\n%s prints\n%s\nthe README shows\n%s", c, got, outputs[i])
				}
			}
		})
	}
}

// TestBatch100StdinStdoutBinary runs the acceptance line through the
// binary as a co-process (lines on its standard input, results on its
// standard output): 100 lines, each with its own stdin and stdout file,
// 4 at a time, give 100 correct outputs.
func TestBatch100StdinStdoutBinary(t *testing.T) {
	dir := t.TempDir()
	var in strings.Builder
	for i := range 100 {
		src := filepath.Join(dir, fmt.Sprintf("in%d", i))
		if err := os.WriteFile(src, []byte(fmt.Sprintf("%d\n%d\n", i, i*i)), 0o644); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&in, `{"id": "n%d", "command": ["sort", "-n", "-r"], "stdin": %q, "stdout": %q}`+"\n", i, src, filepath.Join(dir, fmt.Sprintf("out%d", i)))
	}
	r := cgmon(t, in.String(), "batch", "--parallel", "4", "--summary", filepath.Join(dir, "summary"), "-o", "-", "-")
	if r.code != 0 {
		t.Fatalf("exit status %d:\n%s", r.code, r.stderr)
	}
	ok := 0
	for _, l := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		var res struct{ ID, Status string }
		if err := json.Unmarshal([]byte(l), &res); err != nil {
			t.Fatal(err)
		}
		if res.Status != "success" {
			t.Errorf("%s: %s", res.ID, res.Status)
		}
		ok++
	}
	if ok != 100 {
		t.Fatalf("%d results, want 100", ok)
	}
	for i := range 100 {
		got, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("out%d", i)))
		if err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprintf("%d\n%d\n", max(i, i*i), min(i, i*i)); string(got) != want {
			t.Errorf("n%d wrote %q, want %q", i, got, want)
		}
	}
}

// TestRunRlimitBinary checks `cgmon run --rlimit` through the binary: the
// command sees the limit, a writer over RLIMIT_FSIZE ends with exit
// status 153 and a report naming the limit, and a bad limit is exit
// status 125 with nothing run.
func TestRunRlimitBinary(t *testing.T) {
	r := cgmon(t, "", "run", "--rlimit", "RLIMIT_NOFILE=50", "-o", os.DevNull, "--", "sh", "-c", "ulimit -n; ulimit -Hn")
	if r.code != 0 || r.stdout != "50\n50\n" {
		t.Errorf("exit %d, output %q:\n%s", r.code, r.stdout, r.stderr)
	}

	dir := t.TempDir()
	cmd := exec.Command(cgmonBin, "run", "--rlimit", "fsize=65536", "--format", "json", "-o", filepath.Join(dir, "report.json"), "--", "head", "-c", "1M", "/dev/zero")
	out, err := os.Create(filepath.Join(dir, "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	cmd.Stdout = out
	if err := cmd.Run(); cmd.ProcessState == nil || cmd.ProcessState.ExitCode() != 153 {
		t.Fatalf("exit status %v (%v), want 153", cmd.ProcessState, err)
	}
	var rep struct {
		Status string
		Signal int
		Reason string
	}
	b, err := os.ReadFile(filepath.Join(dir, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Status != "signaled" || rep.Signal != 25 || !strings.HasPrefix(rep.Reason, "the output file limit (RLIMIT_FSIZE 64 KiB) was reached") {
		t.Errorf("report %+v", rep)
	}
	if st, err := out.Stat(); err != nil || st.Size() != 65536 {
		t.Errorf("output %v %v, want 64 KiB", st, err)
	}

	marker := filepath.Join(dir, "ran")
	for _, flag := range []string{"nosuch=1", "nofile=9:3", "nofile=many", "core=1:2:3"} {
		r := cgmon(t, "", "run", "--rlimit", flag, "--", "touch", marker)
		if r.code != 125 || !strings.Contains(r.stderr, "--rlimit") || strings.Count(r.stderr, "\n") != 1 {
			t.Errorf("--rlimit %s: exit %d, stderr %q; want 125 and one line naming --rlimit", flag, r.code, r.stderr)
		}
		if _, err := os.Stat(marker); err == nil {
			t.Fatalf("--rlimit %s: the command ran", flag)
		}
	}
}
