package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// ownedCgroupRoot makes a cgroup directory for the test's executions under
// the cgroup v2 mount, so that what they leave behind can be seen, and at
// the end fails the test if any cgroup is left in it, then removes it. It
// skips where no cgroup v2 directory can be made (no mount, not root).
func ownedCgroupRoot(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("making a cgroup under the cgroup v2 mount needs root")
	}
	mount := unifiedMount(t)
	root := filepath.Join(mount, "cgmon-e2e-"+strings.ReplaceAll(t.Name(), "/", "-")+"-"+strconv.Itoa(os.Getpid()))
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatalf("making the executions' cgroup root: %v", err)
	}
	t.Cleanup(func() {
		if left := leftCgroups(t, root); len(left) > 0 {
			t.Errorf("cgroups left behind in %s: %v", root, left)
			for _, l := range left {
				_ = syscall.Rmdir(filepath.Join(root, l))
			}
		}
		if err := syscall.Rmdir(root); err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Errorf("removing %s: %v", root, err)
		}
	})
	return root
}

// leftCgroups lists the cgroups under root.
func leftCgroups(t *testing.T, root string) []string {
	t.Helper()
	ents, err := os.ReadDir(root)
	if err != nil {
		t.Fatal(err)
	}
	var dirs []string
	for _, e := range ents {
		if e.IsDir() {
			dirs = append(dirs, e.Name())
		}
	}
	return dirs
}

// closedPipe returns the write end of a pipe whose read end is closed: a
// write to it fails with EPIPE (and SIGPIPE), as to `cmd | true` once true
// has exited.
func closedPipe(t *testing.T) *os.File {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	t.Cleanup(func() { w.Close() })
	return w
}

// exitCode returns the exit status of a finished command, 128+N when a
// signal N killed it.
func exitCode(t *testing.T, err error) int {
	t.Helper()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		return ee.ExitCode()
	}
	t.Fatalf("running cgmon: %v", err)
	return -1
}

// TestRunReportToClosedPipe is `cgmon run -- sh -c 'exit 3' 2>&1 | true`:
// the report goes to a pipe nobody reads. cgmon must not die of SIGPIPE
// (exit 141) or claim that nothing ran (125): it exits with the command's
// status, 3, and the execution's cgroup is gone.
func TestRunReportToClosedPipe(t *testing.T) {
	root := ownedCgroupRoot(t)
	for _, format := range []string{"human", "json"} {
		t.Run(format, func(t *testing.T) {
			w := closedPipe(t)
			cmd := exec.Command(cgmonBin, "run", "--cgroup-root", root, "--format", format, "--", "sh", "-c", "exit 3")
			cmd.Stdout, cmd.Stderr = w, w
			if code := exitCode(t, cmd.Run()); code != 3 {
				t.Errorf("exit status %d, want the command's 3", code)
			}
			if left := leftCgroups(t, root); len(left) > 0 {
				t.Errorf("cgroups left after the report failed: %v", left)
			}
		})
	}
}

// TestRunReportToFullDisk writes the report to /dev/full: the command's
// status is kept, stderr says the report is lost and why, and nothing is
// left behind.
func TestRunReportToFullDisk(t *testing.T) {
	if _, err := os.Stat("/dev/full"); err != nil {
		t.Skip("this host has no /dev/full")
	}
	root := ownedCgroupRoot(t)
	for _, format := range []string{"human", "json"} {
		t.Run(format, func(t *testing.T) {
			r := cgmon(t, "", "run", "--cgroup-root", root, "--format", format, "-o", "/dev/full", "--", "sh", "-c", "exit 3")
			if r.code != 3 {
				t.Errorf("exit status %d, want the command's 3", r.code)
			}
			want := "cgmon: run: writing the report: write /dev/full: no space left on device; the report is lost, and the exit status (3) is the command's own\n"
			if r.stderr != want {
				t.Errorf("stderr %q, want %q", r.stderr, want)
			}
			if left := leftCgroups(t, root); len(left) > 0 {
				t.Errorf("cgroups left after the report failed: %v", left)
			}
		})
	}
}

// TestRunCommandKeepsSIGPIPE checks that catching SIGPIPE in cgmon does
// not leak into the command: it starts with SIGPIPE neither ignored nor
// blocked, so `yes | head` in it ends as in a shell.
func TestRunCommandKeepsSIGPIPE(t *testing.T) {
	cmd := exec.Command(cgmonBin, "run", "-o", "/dev/null", "--", "sh", "-c", "grep -E '^Sig(Ign|Blk):' /proc/self/status")
	var out bytes.Buffer
	cmd.Stdout = &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("%v: %s", err, out.String())
	}
	const sigpipeBit = 1 << (13 - 1)
	fields := strings.Fields(out.String())
	if len(fields) != 4 {
		t.Fatalf("unexpected /proc/self/status lines: %q", out.String())
	}
	for _, mask := range []string{fields[1], fields[3]} {
		v, err := strconv.ParseUint(mask, 16, 64)
		if err != nil {
			t.Fatal(err)
		}
		if v&sigpipeBit != 0 {
			t.Errorf("the command starts with SIGPIPE ignored or blocked: %q", out.String())
		}
	}
}
