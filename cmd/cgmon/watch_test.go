package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cgmon/cgmon/internal/workload"
)

// watchReport is the part of the JSON report the watch tests read.
type watchReport struct {
	report
	Command    []string `json:"command"`
	Reason     string   `json:"reason"`
	CPUUser    *float64 `json:"cpu_user_seconds"`
	CPUSystem  *float64 `json:"cpu_system_seconds"`
	CPUSamples *int     `json:"cpu_samples"`
}

func readWatchReport(t *testing.T, path string) (watchReport, map[string]any) {
	t.Helper()
	_, raw := readReport(t, path)
	b, _ := os.ReadFile(path)
	var r watchReport
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	return r, raw
}

func wl(t *testing.T, name string) string {
	t.Helper()
	p, err := workload.Path(name)
	if err != nil {
		t.Fatalf("building the C workloads: %v", err)
	}
	return p
}

// alive reports whether pid exists and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(b, ')')
	return i > 0 && len(b) > i+2 && b[i+2] != 'Z'
}

// startTarget starts a command for cgmon to watch and reaps it at the end.
func startTarget(t *testing.T, name string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(name, args...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return cmd
}

// TestWatchPIDEnds watches a known allocation by pid: on this hybrid host
// (no memory controller) its peak comes from procfs, and the status says
// it ended with its exit status unknown.
func TestWatchPIDEnds(t *testing.T) {
	const mib = 48
	target := startTarget(t, wl(t, "alloc"), strconv.Itoa(mib), "700")
	dir := t.TempDir()
	out, samples := filepath.Join(dir, "r.json"), filepath.Join(dir, "s.ndjson")
	r := cgmon(t, "", "watch", "--pid", strconv.Itoa(target.Process.Pid), "--id", "e2e-watch-pid", "--language", "c",
		"--interval", "50ms", "--format", "json", "-o", out, "--samples", samples)
	if r.code != 0 {
		t.Fatalf("exit %d, want 0; stderr %q", r.code, r.stderr)
	}
	rep, raw := readWatchReport(t, out)
	checkNullsExplained(t, raw)
	if rep.Status != "ended" || rep.ExitCode != -1 {
		t.Errorf("status %q exit_code %d, want ended and -1", rep.Status, rep.ExitCode)
	}
	if rep.ID != "e2e-watch-pid" || rep.Language != "c" {
		t.Errorf("id %q language %q", rep.ID, rep.Language)
	}
	if want := "pid:" + strconv.Itoa(target.Process.Pid); len(rep.Command) != 1 || rep.Command[0] != want {
		t.Errorf("command %q, want [%s]", rep.Command, want)
	}
	src := rep.Sources["memory_peak_bytes"]
	if !strings.HasPrefix(src, "procfs:") && !strings.HasPrefix(src, "sampled:procfs:") {
		t.Errorf("memory peak source %q, want a procfs one", src)
	}
	if rep.MemoryPeak == nil || *rep.MemoryPeak < mib<<20 || *rep.MemoryPeak > (mib+8)<<20 {
		t.Errorf("memory peak %v bytes for a %d MiB allocation", rep.MemoryPeak, mib)
	}
	if rep.ExecTime == nil || *rep.ExecTime > 3 {
		t.Errorf("execution time %v s for a 0.7 s target", rep.ExecTime)
	}
	// The timeline shows the allocation as it was held.
	f, err := os.Open(samples)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	rows, held := 0, 0
	for sc.Scan() {
		var row struct {
			Memory *uint64 `json:"memory_bytes"`
		}
		if err := json.Unmarshal(sc.Bytes(), &row); err != nil {
			t.Fatalf("sample %q: %v", sc.Text(), err)
		}
		rows++
		if row.Memory != nil && *row.Memory >= mib<<20 {
			held++
		}
	}
	if rows < 3 || held < 2 {
		t.Errorf("%d samples, %d of them showing the %d MiB held", rows, held, mib)
	}
}

// TestWatchPIDDuration stops watching a long sleep after 200ms: cgmon
// exits 0, the status is canceled, and the sleep still runs.
func TestWatchPIDDuration(t *testing.T) {
	target := startTarget(t, "sleep", "30")
	out := filepath.Join(t.TempDir(), "r.json")
	start := time.Now()
	r := cgmon(t, "", "watch", "--pid", strconv.Itoa(target.Process.Pid), "--duration", "200ms", "--format", "json", "-o", out)
	el := time.Since(start)
	if r.code != 0 {
		t.Fatalf("exit %d, want 0; stderr %q", r.code, r.stderr)
	}
	if el > 3*time.Second {
		t.Errorf("--duration 200ms took %v", el)
	}
	rep, raw := readWatchReport(t, out)
	checkNullsExplained(t, raw)
	if rep.Status != "canceled" || !strings.Contains(rep.Reason, "nothing was killed") {
		t.Errorf("status %q reason %q, want canceled, nothing killed", rep.Status, rep.Reason)
	}
	if rep.ExecTime == nil || *rep.ExecTime < 0.2 {
		t.Errorf("execution time %v s, want at least the 0.2 s watched", rep.ExecTime)
	}
	if !alive(target.Process.Pid) {
		t.Error("the watched sleep no longer runs: watch must never kill its target")
	}
}

// TestWatchInterrupted sends SIGINT and SIGTERM to cgmon while it watches:
// it stops watching, writes the report, exits 130 or 143, and the target
// still runs.
func TestWatchInterrupted(t *testing.T) {
	for _, c := range []struct {
		sig  syscall.Signal
		want int
	}{{syscall.SIGINT, 130}, {syscall.SIGTERM, 143}} {
		t.Run(c.sig.String(), func(t *testing.T) {
			target := startTarget(t, "sleep", "30")
			out := filepath.Join(t.TempDir(), "r.json")
			cmd := exec.Command(cgmonBin, "watch", "--pid", strconv.Itoa(target.Process.Pid), "--format", "json", "-o", out)
			cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			time.Sleep(400 * time.Millisecond)
			if err := cmd.Process.Signal(c.sig); err != nil {
				t.Fatal(err)
			}
			err := cmd.Wait()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != c.want {
				t.Fatalf("wait: %v (want exit %d); stderr %q", err, c.want, stderr.String())
			}
			rep, _ := readWatchReport(t, out)
			if rep.Status != "canceled" {
				t.Errorf("status %q, want canceled", rep.Status)
			}
			if !alive(target.Process.Pid) {
				t.Error("the watched sleep was killed with cgmon")
			}
		})
	}
}

// unifiedMount returns the cgroup v2 mount from doctor, or skips the test
// when this host has none (a kernel without cgroup v2).
func unifiedMount(t *testing.T) string {
	t.Helper()
	r := cgmon(t, "", "doctor", "--format", "json")
	if r.code != 0 {
		t.Fatalf("doctor: exit %d: %s", r.code, r.stderr)
	}
	var d struct {
		Mount string `json:"mount"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &d); err != nil {
		t.Fatal(err)
	}
	if d.Mount == "" {
		t.Skip("no cgroup v2 hierarchy is mounted on this host")
	}
	return d.Mount
}

// TestWatchCgroup starts a CPU-burning workload in a cgroup the test makes,
// by other means (clone into the cgroup through exec.Cmd), and watches the
// cgroup: its CPU time comes from cgroup2 cpu.stat and matches what the
// kernel charged the workload, and the cgroup's writable files are
// untouched.
func TestWatchCgroup(t *testing.T) {
	mount := unifiedMount(t)
	dir := filepath.Join(mount, "cgmon-e2e-watch-"+strconv.Itoa(os.Getpid()))
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatalf("making the workload's cgroup: %v", err)
	}
	t.Cleanup(func() {
		if err := syscall.Rmdir(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Errorf("removing %s: %v", dir, err)
		}
	})
	d, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	subtree := func() string {
		b, _ := os.ReadFile(filepath.Join(dir, "cgroup.subtree_control"))
		return string(b)
	}
	before := subtree()

	burn := exec.Command(wl(t, "burn"), "1", "600")
	burn.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(d.Fd())}
	if err := burn.Start(); err != nil {
		t.Fatalf("starting the workload in %s: %v", dir, err)
	}
	defer burn.Process.Kill()

	out := filepath.Join(t.TempDir(), "r.json")
	watch := exec.Command(cgmonBin, "watch", "--cgroup", dir, "--interval", "50ms", "--format", "json", "-o", out)
	var stderr bytes.Buffer
	watch.Stderr = &stderr
	if err := watch.Start(); err != nil {
		t.Fatal(err)
	}
	if err := burn.Wait(); err != nil {
		t.Fatalf("workload: %v", err)
	}
	charged := burn.ProcessState.UserTime() + burn.ProcessState.SystemTime()
	if err := watch.Wait(); err != nil {
		t.Fatalf("watch: %v; stderr %q", err, stderr.String())
	}
	rep, raw := readWatchReport(t, out)
	checkNullsExplained(t, raw)
	if rep.Status != "ended" {
		t.Errorf("status %q, want ended", rep.Status)
	}
	if got := rep.Sources["cpu_total_seconds"]; got != "cgroup2:cpu.stat" {
		t.Errorf("cpu_total source %q, want cgroup2:cpu.stat", got)
	}
	if rep.CPUTotal == nil {
		t.Fatalf("no CPU total: %v", rep.Unavailable["cpu_total_seconds"])
	}
	// The cgroup held only the workload since its creation, so cpu.stat
	// and the workload's rusage count the same CPU time.
	want := charged.Seconds()
	if want < 0.3 {
		t.Fatalf("the workload burnt only %.3f s of CPU", want)
	}
	t.Logf("cpu_total %.4f s from cpu.stat; the workload's rusage %.4f s", *rep.CPUTotal, want)
	if diff := *rep.CPUTotal - want; diff > 0.05*want+0.01 || diff < -0.05*want-0.01 {
		t.Errorf("cpu_total %.3f s, the workload was charged %.3f s (more than 5%% apart)", *rep.CPUTotal, want)
	}
	if want := "cgroup:" + dir; len(rep.Command) != 1 || rep.Command[0] != want {
		t.Errorf("command %q, want [%s]", rep.Command, want)
	}
	if after := subtree(); after != before {
		t.Errorf("cgroup.subtree_control changed from %q to %q", before, after)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if e.IsDir() {
			t.Errorf("watch made a cgroup %s under %s", e.Name(), dir)
		}
	}
}

// TestWatchRefuses checks that bad targets and flags exit 125 with one
// line on stderr, and change nothing: no report file, no cgroup.
func TestWatchRefuses(t *testing.T) {
	sleeper := startTarget(t, "sleep", "30")
	pid := strconv.Itoa(sleeper.Process.Pid)
	b, err := os.ReadFile("/proc/sys/kernel/pid_max")
	if err != nil {
		t.Fatal(err)
	}
	noPid := strings.TrimSpace(string(b)) // pids are below pid_max
	cases := []struct {
		name string
		args []string
		msg  string
	}{
		{"neither", nil, "nothing to watch"},
		{"both", []string{"--pid", pid, "--cgroup", "/"}, "not several"},
		{"no such pid", []string{"--pid", noPid}, "no such process"},
		{"zero pid", []string{"--pid", "0"}, "--pid 0"},
		{"negative pid", []string{"--pid", "-4"}, "--pid -4"},
		{"pid not a number", []string{"--pid", "one"}, "pid"},
		{"cgroup outside the mount", []string{"--cgroup", "../../../etc"}, "outside the cgroup v2 mount"},
		{"no such cgroup", []string{"--cgroup", "cgmon-e2e-no-such-cgroup"}, "cgmon-e2e-no-such-cgroup"},
		{"negative duration", []string{"--pid", pid, "--duration", "-1s"}, "--duration"},
		{"zero interval", []string{"--pid", pid, "--interval", "0s"}, "--interval"},
		{"bad format", []string{"--pid", pid, "--format", "xml"}, "--format"},
		{"bad samples name", []string{"--pid", pid, "--samples", "x.txt"}, "--samples"},
		{"bad plot name", []string{"--pid", pid, "--plot", "x.png"}, "--plot"},
		{"extra argument", []string{"--pid", pid, "sleep"}, "unexpected argument"},
		{"limits flag", []string{"--pid", pid, "--memory-max", "1G"}, "memory-max"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "r.json")
			args := append([]string{"watch", "-o", out}, c.args...)
			r := cgmon(t, "", args...)
			if r.code != 125 {
				t.Fatalf("exit %d, want 125; stderr %q", r.code, r.stderr)
			}
			if strings.Count(r.stderr, "\n") != 1 || !strings.HasPrefix(r.stderr, "cgmon: watch: ") {
				t.Errorf("stderr is not one line starting with \"cgmon: watch: \": %q", r.stderr)
			}
			if !strings.Contains(r.stderr, c.msg) {
				t.Errorf("stderr %q does not mention %q", r.stderr, c.msg)
			}
			if _, err := os.Stat(out); err == nil {
				t.Error("a report file was written although cgmon refused")
			}
		})
	}
	if !alive(sleeper.Process.Pid) {
		t.Error("the sleep named by --pid was killed")
	}
}

// TestWatchCgroupAsREADMEShowsIt runs the README's
// `cgmon watch --cgroup /system.slice/docker-3f2a.scope` as printed: a
// path as /proc/PID/cgroup prints it, relative to the cgroup v2 mount
// though it begins with a slash. The test makes that cgroup (and
// system.slice when this host has none, removing only what it made),
// starts a workload in it, and checks that the path the workload's
// /proc/PID/cgroup shows is the README's.
func TestWatchCgroupAsREADMEShowsIt(t *testing.T) {
	const asPrinted = "/system.slice/docker-3f2a.scope"
	mount := unifiedMount(t)
	slice := filepath.Join(mount, "system.slice")
	if err := os.Mkdir(slice, 0o755); err == nil {
		t.Cleanup(func() {
			if err := syscall.Rmdir(slice); err != nil {
				t.Errorf("removing %s: %v", slice, err)
			}
		})
	} else if !errors.Is(err, os.ErrExist) {
		t.Fatalf("making %s: %v", slice, err)
	}
	dir := filepath.Join(mount, asPrinted)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatalf("making %s (left by an earlier run?): %v", dir, err)
	}
	t.Cleanup(func() {
		if err := syscall.Rmdir(dir); err != nil {
			t.Errorf("removing %s: %v", dir, err)
		}
	})
	d, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	burn := exec.Command(wl(t, "burn"), "1", "300")
	burn.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(d.Fd())}
	if err := burn.Start(); err != nil {
		t.Fatalf("starting the workload in %s: %v", dir, err)
	}
	defer burn.Process.Kill()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(burn.Process.Pid) + "/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "0::"+asPrinted+"\n") {
		t.Fatalf("/proc/PID/cgroup of the workload is %q, not the README's path", b)
	}

	watch := exec.Command(cgmonBin, "watch", "--cgroup", asPrinted)
	r := cgmonCmd(t, watch, "")
	if err := burn.Wait(); err != nil {
		t.Fatalf("workload: %v", err)
	}
	if r.code != 0 {
		t.Fatalf("cgmon watch --cgroup %s: exit %d, stderr %q", asPrinted, r.code, r.stderr)
	}
	for label, want := range map[string]string{
		"Status":         "ended",
		"Command":        "cgroup:" + dir,
		"Total CPU time": "[cgroup2:cpu.stat]",
	} {
		var line string
		for _, l := range strings.Split(r.stderr, "\n") {
			if strings.HasPrefix(l, label+":") {
				line = l
			}
		}
		if !strings.HasSuffix(line, want) {
			t.Errorf("%s line %q, want it to end in %q; report:\n%s", label, line, want, r.stderr)
		}
	}
}
