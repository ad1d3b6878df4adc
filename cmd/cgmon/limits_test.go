package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRunLimitsAppliedOrRefused: `cgmon run --limits` with fields cgmon
// cannot apply here exits 125 with one line naming the field and runs
// nothing; the fields it applies are reported as read back. On main these
// limits were dropped: exit 0, "Limits: none", and the JSON echoed them.
func TestRunLimitsAppliedOrRefused(t *testing.T) {
	dir := t.TempDir()
	memWorks := memoryLimitWorks(t)
	refused := []struct {
		name, json, field string
	}{
		{"network", `{"network": {"classID": 1048577}}`, "network:"},
		{"rdma", `{"rdma": {"mlx4_0": {"hcaHandles": 2}}}`, `rdma["mlx4_0"]:`},
		{"core file", `{"unified": {"cgroup.procs": "1"}}`, `unified["cgroup.procs"]:`},
		{"kernel memory", `{"memory": {"kernel": -1}}`, "memory.kernel:"},
	}
	if !memWorks {
		refused = append(refused, struct{ name, json, field string }{"unified memory.max", `{"unified": {"memory.max": "1000000"}}`, `unified["memory.max"]:`})
	}
	for _, c := range refused {
		t.Run(c.name, func(t *testing.T) {
			file := filepath.Join(dir, c.name+".json")
			if err := os.WriteFile(file, []byte(c.json), 0o644); err != nil {
				t.Fatal(err)
			}
			marker := filepath.Join(t.TempDir(), "ran")
			r := cgmon(t, "", "run", "--limits", file, "--", "touch", marker)
			if r.code != 125 {
				t.Fatalf("exit %d, want 125; stderr %q", r.code, r.stderr)
			}
			if strings.Count(r.stderr, "\n") != 1 || !strings.HasPrefix(r.stderr, "cgmon: run: ") || !strings.Contains(r.stderr, c.field) {
				t.Errorf("stderr is not one line naming %s: %q", c.field, r.stderr)
			}
			if _, err := os.Stat(marker); err == nil {
				t.Error("the command ran although cgmon refused its limits")
			}
			if c.name == "unified memory.max" && strings.Contains(r.stderr, " /sys/fs/cgroup/unified/cgmon:") {
				// The README quotes this refusal on a hybrid host.
				readme, err := os.ReadFile("../../README.md")
				if err != nil {
					t.Fatal(err)
				}
				if !strings.Contains(string(readme), "`"+strings.TrimSuffix(r.stderr, "\n")+"`") {
					t.Errorf("README does not quote the refusal as printed: %q", r.stderr)
				}
			}
		})
	}
	if memWorks {
		t.Run("unified memory.max read back", func(t *testing.T) {
			file := filepath.Join(dir, "mem.json")
			if err := os.WriteFile(file, []byte(`{"unified": {"memory.max": "1000000"}}`), 0o644); err != nil {
				t.Fatal(err)
			}
			out := filepath.Join(dir, "mem-report.json")
			r := cgmon(t, "", "run", "--limits", file, "--format", "json", "-o", out, "--", "true")
			if r.code != 0 {
				t.Fatalf("exit %d: %s", r.code, r.stderr)
			}
			_, raw := readReport(t, out)
			got, _ := json.Marshal(raw["limits"])
			// memory.max in whole pages: 1000000 rounded down to 4 KiB.
			if string(got) != `{"unified":{"memory.max":"999424"}}` {
				t.Errorf("limits %s: want the value read back", got)
			}
		})
	}
}

// TestRunDeviceRules: device rules are applied where cgmon runs as root
// with a cgroup (the program inside cannot write a denied device, and the
// report lists the rules), and refused with exit 125 elsewhere.
func TestRunDeviceRules(t *testing.T) {
	file := filepath.Join(t.TempDir(), "devices.json")
	rules := `{"devices": [{"allow": true, "access": "rwm"}, {"allow": false, "type": "c", "major": 1, "minor": 3, "access": "rwm"}]}`
	if err := os.WriteFile(file, []byte(rules), 0o644); err != nil {
		t.Fatal(err)
	}
	r := cgmon(t, "", "run", "--limits", file, "--", "sh", "-c", "echo x > /dev/null")
	if os.Geteuid() != 0 || !cgroupRunsHere(t) {
		if r.code != 125 || !strings.Contains(r.stderr, "devices") {
			t.Fatalf("exit %d, want 125 naming devices: %q", r.code, r.stderr)
		}
		return
	}
	if r.code != 2 || !strings.Contains(r.stderr, "Operation not permitted") {
		t.Fatalf("writing a denied /dev/null: exit %d, want the shell's 2 and EPERM; stderr %q", r.code, r.stderr)
	}
	if !strings.Contains(r.stderr, "Limits:                     devices [allow a *:* rwm, deny c 1:3 rwm]") {
		t.Errorf("the human report does not list the rules in force:\n%s", r.stderr)
	}
}

// cgroupRunsHere asks doctor whether `cgmon run` gets a cgroup here.
func cgroupRunsHere(t *testing.T) bool {
	r := cgmon(t, "", "doctor", "--format", "json")
	if r.code != 0 {
		t.Fatalf("doctor: exit %d: %s", r.code, r.stderr)
	}
	var d struct {
		Root string `json:"root"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &d); err != nil {
		t.Fatal(err)
	}
	return d.Root != ""
}
