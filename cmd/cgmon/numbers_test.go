package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// alwaysKnown are the report's numbers that are never unmeasured, so have
// neither a source nor a reason: counts and codes cgmon itself decides.
var alwaysKnown = map[string]bool{
	"schema_version": true, "input_line": true, "code_length": true, "exit_code": true,
	"signal": true, "leftover_processes_killed": true, "escaped_processes_killed": true,
	"protocol": true, "repeat_index": true,
}

// neverZero are the numbers that cannot be 0 when measured: a program that
// ran had a process and took time; a 0 there is a counter never read.
var neverZero = []string{"execution_time_seconds", "pids_peak", "memory_peak_bytes", "memory_process_peak_bytes"}

// checkNullsExplained walks every field of a JSON report: each number is
// present with a source or null with a reason (never both, never neither,
// never a reason that gives none), every key of sources and unavailable is
// a number of the report, and no reason says no sample was taken when
// samples were.
func checkNullsExplained(t *testing.T, raw map[string]any) {
	t.Helper()
	if raw["schema_version"] != float64(2) {
		t.Errorf("schema_version %v", raw["schema_version"])
	}
	sources, _ := raw["sources"].(map[string]any)
	unavail, _ := raw["unavailable"].(map[string]any)
	numbers := 0
	for k, v := range raw {
		if alwaysKnown[k] {
			continue
		}
		if _, isNum := v.(float64); !isNum && v != nil {
			continue // strings, booleans, objects
		}
		if k == "limits" || k == "reason" || k == "signal_name" {
			continue // null when absent, not numbers
		}
		numbers++
		src, hasSrc := sources[k]
		why, hasWhy := unavail[k]
		switch {
		case v == nil && (!hasWhy || hasSrc):
			t.Errorf("%s is null: unavailable[%s] present=%v, sources present=%v", k, k, hasWhy, hasSrc)
		case v != nil && (!hasSrc || hasWhy):
			t.Errorf("%s = %v: sources present=%v (%v), unavailable present=%v (%v)", k, v, hasSrc, src, hasWhy, why)
		}
		if s, _ := why.(string); hasWhy && (s == "" || strings.Contains(s, "no reason given")) {
			t.Errorf("%s is null without a reason: %q", k, s)
		}
	}
	if numbers < 20 {
		t.Errorf("only %d numbers in the report", numbers)
	}
	for _, m := range []map[string]any{sources, unavail} {
		for k := range m {
			if _, ok := raw[k]; !ok {
				t.Errorf("sources or unavailable name %q, which the report does not have", k)
			}
		}
	}
	for _, k := range neverZero {
		if v, ok := raw[k].(float64); ok && v == 0 {
			t.Errorf("%s = 0 with source %v: a counter that was never read", k, sources[k])
		}
	}
	if n, _ := raw["cpu_samples"].(float64); n > 0 {
		for k, why := range unavail {
			if s, _ := why.(string); strings.Contains(s, "before the first sample") {
				t.Errorf("unavailable[%s] = %q after %v samples", k, s, n)
			}
		}
	}
}

// TestReportNumbersHaveSourceOrReason runs commands on every backend this
// host has (auto, cgroup2 where a cgroup v2 tree is mounted, procfs) and
// watches a cgroup and a pid, and walks every field of each JSON report
// (checkNullsExplained): too short for a sample, sampled, and ended by a
// timeout with leftovers.
func TestReportNumbersHaveSourceOrReason(t *testing.T) {
	backends := []string{"auto", "procfs"}
	mount := unifiedMount(t)
	backends = append(backends, "cgroup2")
	cmds := map[string][]string{
		"instant": {"true"},
		"sampled": {"sh", "-c", "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; sleep 0.2"},
		"timeout": {"--timeout", "300ms", "--", "sh", "-c", "sleep 5 & sleep 6 & wait"},
	}
	for _, b := range backends {
		for name, c := range cmds {
			t.Run(b+"/"+name, func(t *testing.T) {
				out := filepath.Join(t.TempDir(), "r.json")
				args := []string{"run", "--backend", b, "--interval", "20ms", "--format", "json", "-o", out}
				if c[0] != "--timeout" {
					args = append(args, "--")
				}
				r := cgmon(t, "", append(args, c...)...)
				if r.code != 0 && r.code != 124 {
					t.Fatalf("exit %d: %s", r.code, r.stderr)
				}
				_, raw := readReport(t, out)
				checkNullsExplained(t, raw)
				if name == "timeout" {
					// sh and its two sleeps: the kill ended two beside sh.
					if n := raw["leftover_processes_killed"]; n != float64(2) {
						t.Errorf("leftover_processes_killed = %v, want 2; reason %v", n, raw["reason"])
					}
					if reason, _ := raw["reason"].(string); !strings.Contains(reason, "2 beside the main process") {
						t.Errorf("reason %q does not count the leftovers", reason)
					}
				}
			})
		}
	}
	t.Run("watch-cgroup", func(t *testing.T) {
		dir := filepath.Join(mount, "cgmon-numbers-"+strconv.Itoa(os.Getpid()))
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatalf("making the workload's cgroup: %v", err)
		}
		defer os.Remove(dir)
		fd, err := syscall.Open(dir, syscall.O_RDONLY|syscall.O_DIRECTORY, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer syscall.Close(fd)
		w := exec.Command("sh", "-c", "sleep 1")
		w.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: fd}
		if err := w.Start(); err != nil {
			t.Fatal(err)
		}
		defer w.Wait()
		out := filepath.Join(t.TempDir(), "r.json")
		r := cgmon(t, "", "watch", "--cgroup", dir, "--interval", "50ms", "--format", "json", "-o", out)
		if r.code != 0 {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
		_, raw := readReport(t, out)
		checkNullsExplained(t, raw)
		if n, _ := raw["cpu_samples"].(float64); n < 5 {
			t.Errorf("%v samples over a 1 s watch at 50 ms", n)
		}
	})
	t.Run("watch-pid", func(t *testing.T) {
		w := exec.Command("sleep", "0.6")
		if err := w.Start(); err != nil {
			t.Fatal(err)
		}
		go w.Wait()
		out := filepath.Join(t.TempDir(), "r.json")
		r := cgmon(t, "", "watch", "--pid", strconv.Itoa(w.Process.Pid), "--interval", "50ms", "--format", "json", "-o", out)
		if r.code != 0 {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
		_, raw := readReport(t, out)
		checkNullsExplained(t, raw)
	})
}
