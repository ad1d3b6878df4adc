package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// quotedCommand matches a command a remedy gives to run, in backquotes,
// and what follows it (" fails" marks one given as what does not work).
var quotedCommand = regexp.MustCompile("`([^`]+)`( fails)?")

// remedyCommands returns the commands a remedy gives to run.
func remedyCommands(remedy string) []string {
	var out []string
	for _, m := range quotedCommand.FindAllStringSubmatch(remedy, -1) {
		if m[2] == "" {
			out = append(out, m[1])
		}
	}
	return out
}

// TestNobodyRemedyWorks follows, on this host, the remedy doctor gives an
// unprivileged user without a writable cgroup (as the README shows it for
// nobody): root runs the command it prints, with the pid of nobody's
// shell for SHELL_PID, and `cgmon run --cgroup-root ...` from that shell
// then runs in a cgroup (the hybrid or cgroup2 backend, CPU from
// cpu.stat), not in the procfs fallback. Everything made is removed.
func TestNobodyRemedyWorks(t *testing.T) {
	r := cgmonCmd(t, asNobody(t, "doctor", "--format", "json"), "")
	if r.code != 0 {
		t.Fatalf("doctor as nobody: exit %d, stderr %q", r.code, r.stderr)
	}
	var d struct {
		Path string                          `json:"path"`
		Gaps []struct{ What, Remedy string } `json:"gaps"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &d); err != nil {
		t.Fatal(err)
	}
	if d.Path != "procfs" {
		t.Skipf("nobody gets a cgroup on this host (%s): no remedy to follow", d.Path)
	}
	var cmds []string
	for _, g := range d.Gaps {
		if g.What == "no writable cgroup v2 directory" {
			cmds = remedyCommands(g.Remedy)
		}
	}
	// The systemd way (no systemd here), root's command, the run.
	if len(cmds) != 3 || !strings.Contains(cmds[1], "SHELL_PID") || !strings.HasPrefix(cmds[2], "cgmon run --cgroup-root ") || !strings.HasSuffix(cmds[2], " ...") {
		t.Fatalf("the remedy gives the commands %q; want the systemd one, root's with SHELL_PID and the run", cmds)
	}
	root := strings.TrimSuffix(strings.TrimPrefix(cmds[2], "cgmon run --cgroup-root "), " ...")
	for _, p := range []string{filepath.Join(root, "shell"), root} {
		_ = syscall.Rmdir(p) // left empty by an earlier run
	}
	if _, err := os.Stat(root); err == nil {
		t.Fatalf("%s exists and is not empty", root)
	}
	t.Cleanup(func() {
		for _, p := range []string{filepath.Join(root, "shell"), root} {
			if err := syscall.Rmdir(p); err != nil && !errors.Is(err, os.ErrNotExist) {
				t.Errorf("removing %s: %v", p, err)
			}
		}
	})

	// nobody's shell waits for root to move it, then runs cgmon as the
	// remedy prints it, with a command in place of "...".
	run := strings.Replace(cmds[2], "cgmon", cgmonBin, 1)
	run = strings.TrimSuffix(run, "...") + "--format json -- sh -c 'exit 7'"
	shell := asNobody(t)
	shell.Args = append(shell.Args[:len(shell.Args)-1], "/bin/sh", "-c", "read go && exec "+run)
	stdin, err := shell.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	shell.Stderr = &stderr
	if err := shell.Start(); err != nil {
		t.Fatal(err)
	}
	defer shell.Process.Kill()

	asRoot := strings.ReplaceAll(cmds[1], "SHELL_PID", strconv.Itoa(shell.Process.Pid))
	if out, err := exec.Command("/bin/sh", "-c", asRoot).CombinedOutput(); err != nil {
		t.Fatalf("root's command %q: %v: %s", asRoot, err, out)
	}
	b, _ := os.ReadFile("/proc/" + strconv.Itoa(shell.Process.Pid) + "/cgroup")
	if want := filepath.Join(root, "shell"); !strings.Contains(string(b), "0::"+strings.TrimPrefix(want, unifiedMount(t))+"\n") {
		t.Errorf("the shell is in %q, not in %s", b, want)
	}
	_, _ = io.WriteString(stdin, "go\n")
	stdin.Close()
	done := make(chan error, 1)
	go func() { done <- shell.Wait() }()
	var werr error
	select {
	case werr = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("cgmon run from the delegated shell did not end in 30 s")
	}
	var ee *exec.ExitError
	if !errors.As(werr, &ee) || ee.ExitCode() != 7 {
		t.Fatalf("cgmon run: %v (want exit 7, the command's); stderr %q", werr, stderr.String())
	}
	var rep report
	if err := json.Unmarshal(stderr.Bytes(), &rep); err != nil {
		t.Fatalf("report %q: %v", stderr.String(), err)
	}
	var raw struct {
		Backend string `json:"backend"`
	}
	_ = json.Unmarshal(stderr.Bytes(), &raw)
	if raw.Backend == "procfs" || rep.Sources["cpu_total_seconds"] != "cgroup2:cpu.stat" {
		t.Errorf("after the remedy, backend %q and CPU from %q: want a cgroup and cgroup2:cpu.stat", raw.Backend, rep.Sources["cpu_total_seconds"])
	}
}

// TestReadmeDoctorAsNobody: the doctor output the README shows for nobody
// is the golden that TestDoctorRootlessHost checks, on this host's mount.
func TestReadmeDoctorAsNobody(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	const intro = "setpriv --reuid=nobody --regid=nogroup --clear-groups cgmon doctor`"
	_, rest, ok := strings.Cut(string(readme), intro)
	if !ok {
		t.Fatal("the README no longer shows doctor as nobody")
	}
	_, block, _ := strings.Cut(rest, "```\n")
	block, _, _ = strings.Cut(block, "```\n")
	g, err := os.ReadFile(filepath.Join(goldenDir, "doctor-rootless-host-nobody.txt.golden"))
	if err != nil {
		t.Fatal(err)
	}
	want := strings.ReplaceAll(string(g), "$MOUNT", "/sys/fs/cgroup/unified")
	if block != want {
		t.Errorf("the README's doctor output differs from testdata/cli/doctor-rootless-host-nobody.txt.golden:\n--- README\n%s--- golden\n%s", block, want)
	}
}
