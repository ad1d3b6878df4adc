package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cgmon/cgmon/cgroupmon"
)

// TestRunUserAsPrinted runs the README's `cgmon run --user 65534:65534 --
// id` as printed: id says uid and gid 65534 and no other group (root's
// groups are dropped), and the README quotes its output.
func TestRunUserAsPrinted(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("running as another user needs root: TestRunUserRefusedWithoutRoot covers the refusal")
	}
	r := cgmon(t, "", "run", "--user", "65534:65534", "--", "id")
	if r.code != 0 {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	out := strings.TrimSpace(r.stdout)
	fields := strings.Fields(out)
	if len(fields) != 3 || !strings.HasPrefix(fields[0], "uid=65534(") || !strings.HasPrefix(fields[1], "gid=65534(") ||
		!strings.HasPrefix(fields[2], "groups=65534(") || strings.Contains(fields[2], ",") {
		t.Fatalf("id printed %q, want uid and gid 65534 and the one group 65534", out)
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(readme), "$ cgmon run --user 65534:65534 -- id\n"+out+"\n") {
		t.Errorf("the README does not quote `cgmon run --user 65534:65534 -- id` with its output %q", out)
	}
}

// TestRunUserCannotEscape: the hostile workload's escape, through the
// CLI: as uid 65534 the write of its pid into the root cgroup's
// cgroup.procs fails with EACCES, and the report counts nothing escaped.
func TestRunUserCannotEscape(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("running as another user needs root: TestRunUserRefusedWithoutRoot covers the refusal")
	}
	p, err := cgroupmon.ProbeHost(cgroupmon.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if p.Mount == "" || p.Root == "" {
		t.Skipf("needs a writable cgroup v2 hierarchy: %s", p.RootReason)
	}
	procs := filepath.Join(p.Mount, "cgroup.procs")
	r := cgmon(t, "", "run", "--user", "65534:65534", "--format", "json", "--", "sh", "-c", "echo $$ > "+procs)
	if r.code == 0 || !strings.Contains(r.stderr, "Permission denied") {
		t.Fatalf("writing %s as uid 65534: exit %d, stderr %q; want it refused with EACCES", procs, r.code, r.stderr)
	}
	var rep struct {
		Escaped *int `json:"escaped_processes_killed"`
	}
	if err := json.Unmarshal([]byte(r.stderr[strings.Index(r.stderr, "{"):]), &rep); err != nil || rep.Escaped == nil || *rep.Escaped != 0 {
		t.Errorf("report: %v, escaped %v; want 0 escaped: %s", err, rep.Escaped, r.stderr)
	}
}

// TestRunUserRefusedWithoutRoot: as nobody, `--user` is refused with exit
// 125 and one line that says why, and the command does not run.
func TestRunUserRefusedWithoutRoot(t *testing.T) {
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	mark := filepath.Join(dir, "ran")
	var r result
	if os.Geteuid() == 0 {
		r = cgmonCmd(t, asNobody(t, "run", "--user", "65534:65534", "--", "touch", mark), "")
	} else {
		r = cgmon(t, "", "run", "--user", "65534:65534", "--", "touch", mark)
	}
	if r.code != 125 {
		t.Errorf("exit %d, want 125", r.code)
	}
	want := "cgmon: run: cannot switch to another user here: uid 65534 needs root (CAP_SETUID and CAP_SETGID)"
	if !strings.HasPrefix(r.stderr, want) || strings.Count(r.stderr, "\n") != 1 {
		t.Errorf("stderr %q, want one line starting %q", r.stderr, want)
	}
	if _, err := os.Stat(mark); err == nil {
		t.Error("the command ran")
	}
}
