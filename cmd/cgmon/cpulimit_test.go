package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRunCPUTimeLimit runs a two-thread burner under `cgmon run
// --cpu-time-limit`: cgmon exits 152, the JSON status is cpu_timeout with
// timed_out false, and the human report says Time Limit Exceeded.
func TestRunCPUTimeLimit(t *testing.T) {
	burn := wl(t, "burn")
	out := filepath.Join(t.TempDir(), "report.json")
	r := cgmon(t, "", "run", "--id", "tle", "--cpu-time-limit", "100ms", "--format", "json", "-o", out, "--", burn, "2", "60000")
	if r.code != 152 {
		t.Fatalf("exit %d, want 152; stderr %q", r.code, r.stderr)
	}
	rep, raw := readReport(t, out)
	if rep.Status != "cpu_timeout" || rep.TimedOut {
		t.Errorf("status %q, timed_out %v: want cpu_timeout, false", rep.Status, rep.TimedOut)
	}
	if reason, _ := raw["reason"].(string); !strings.HasPrefix(reason, "CPU-time limit of 100ms reached (CPU time ") {
		t.Errorf("reason %q", reason)
	}
	if cpu, _ := raw["cpu_total_seconds"].(float64); cpu < 0.1 {
		t.Errorf("cpu_total_seconds %v: killed before its limit of 0.1 s", raw["cpu_total_seconds"])
	}
	checkNullsExplained(t, raw)

	r = cgmon(t, "", "run", "--cpu-time-limit", "50ms", "--", burn, "1", "60000")
	if r.code != 152 || !strings.Contains(r.stderr, "cpu_timeout (CPU-time limit: Time Limit Exceeded)") {
		t.Errorf("human report: exit %d, stderr %q", r.code, r.stderr)
	}
}

// TestRunCPUTimeLimitRefused refuses a negative or malformed
// --cpu-time-limit with exit status 125, and runs nothing.
func TestRunCPUTimeLimitRefused(t *testing.T) {
	for _, v := range []string{"-1s", "-1ms", "1 s", "ten"} {
		mark := filepath.Join(t.TempDir(), "ran")
		r := cgmon(t, "", "run", "--cpu-time-limit", v, "--", "touch", mark)
		if r.code != 125 || !strings.Contains(r.stderr, "cpu-time-limit") {
			t.Errorf("--cpu-time-limit %s: exit %d, stderr %q; want 125 naming the flag", v, r.code, r.stderr)
		}
		if _, err := os.Stat(mark); err == nil {
			t.Errorf("--cpu-time-limit %s: the command ran", v)
		}
	}
}

// TestBatchCPUTimeLimit runs batch lines with "cpu_time_limit" and
// "timeout": each ends with its own status, and a line with a negative
// limit is refused as a line error while the others run.
func TestBatchCPUTimeLimit(t *testing.T) {
	burn := wl(t, "burn")
	lines := []map[string]any{
		{"id": "tle", "command": []string{burn, "1", "60000"}, "cpu_time_limit": "50ms"},
		{"id": "tle-child", "command": []string{"sh", "-c", burn + " 2 60000 & wait"}, "cpu_time_limit": 0.05},
		{"id": "wall", "command": []string{"sleep", "10"}, "cpu_time_limit": "5s", "timeout": "200ms"},
		{"id": "under", "command": []string{burn, "1", "20"}, "cpu_time_limit": "5s"},
		{"id": "bad", "command": []string{"true"}, "cpu_time_limit": "-1s"},
	}
	var in strings.Builder
	for _, l := range lines {
		b, err := json.Marshal(l)
		if err != nil {
			t.Fatal(err)
		}
		in.Write(append(b, '\n'))
	}
	r := cgmon(t, in.String(), "batch", "-o", "-", "-")
	got := map[string]map[string]any{}
	for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		var v map[string]any
		if err := json.Unmarshal([]byte(line), &v); err != nil {
			t.Fatalf("result line %q: %v", line, err)
		}
		id, _ := v["id"].(string)
		got[id] = v
	}
	for id, want := range map[string]string{"tle": "cpu_timeout", "tle-child": "cpu_timeout", "wall": "timeout", "under": "success"} {
		if s := got[id]["status"]; s != want {
			t.Errorf("%s: status %v, want %s (%v)", id, s, want, got[id]["reason"])
		}
	}
	if got["tle"]["timed_out"] != false || got["wall"]["timed_out"] != true {
		t.Errorf("timed_out: tle %v, wall %v", got["tle"]["timed_out"], got["wall"]["timed_out"])
	}
	if bad := got["bad"]; bad == nil || !strings.Contains(bad["error"].(string), `"cpu_time_limit" "-1s" is negative`) {
		t.Errorf("bad line: %v; stderr %q", bad, r.stderr)
	}
}
