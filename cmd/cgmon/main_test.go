package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"github.com/cgmon/cgmon/cgroupmon"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/cli")

// goldenDir holds the CLI's golden files and fixture roots.
const goldenDir = "../../testdata/cli"

// cgmonBin is the binary built once by TestMain.
var cgmonBin string

func TestMain(m *testing.M) {
	flag.Parse()
	dir, err := os.MkdirTemp("", "cgmon-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// Readable by all, so that the rootless tests can run it as nobody.
	if err := os.Chmod(dir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	cgmonBin = filepath.Join(dir, "cgmon")
	build := exec.Command("go", "build", "-race", "-o", cgmonBin, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		// -race needs cgo; try without it.
		build = exec.Command("go", "build", "-o", cgmonBin, ".")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "building cgmon:", err)
			os.RemoveAll(dir)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// result is one run of the binary.
type result struct {
	code           int
	stdout, stderr string
}

func cgmon(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	return cgmonCmd(t, exec.Command(cgmonBin, args...), stdin)
}

// cleanEnv is the environment of the doctor goldens: no user bus, so that
// the output does not depend on the session the tests run in.
func cleanEnv(extra ...string) []string {
	return append([]string{"PATH=/usr/bin:/bin:/usr/sbin:/sbin", "HOME=/nonexistent", "LANG=C"}, extra...)
}

// cgmonCmd runs cmd (cgmon, possibly wrapped) and returns its result.
func cgmonCmd(t *testing.T, cmd *exec.Cmd, stdin string) result {
	t.Helper()
	args := cmd.Args
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatalf("running cgmon %v: %v", args, err)
	}
	return result{code: code, stdout: out.String(), stderr: errb.String()}
}

// golden compares got with testdata/cli/name, or rewrites it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join(goldenDir, name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if string(want) != got {
		t.Errorf("%s differs (run with -update after checking the change):\n--- want\n%s\n--- got\n%s", path, want, got)
	}
}

// TestDoctorGolden runs `cgmon doctor` against fixture hosts: a unified
// host with every controller delegated, an old unified kernel, a hybrid host
// like the CI machines, a host without cgroups and a rootless delegated one.
func TestDoctorGolden(t *testing.T) {
	hosts := []struct {
		name     string
		hasMount bool
	}{
		{"unified-full", true},
		{"unified-5.10", true},
		{"hybrid", true},
		{"none", false},
		// A rootless runner inside a delegated scope (systemd-run --user
		// -p Delegate=yes --scope) with Debian's delegation: cpu, memory
		// and pids, not io. Its cgroup.procs is empty here, as the
		// fixture cannot know the pid of the cgmon under test.
		{"rootless-delegated", true},
	}
	for _, h := range hosts {
		for _, format := range []string{"human", "json"} {
			t.Run(h.name+"/"+format, func(t *testing.T) {
				// Absolute, as real mounts are (the probe tells a systemd
				// scope from a directory by the path being absolute).
				root, err := filepath.Abs(filepath.Join(goldenDir, "doctor", h.name))
				if err != nil {
					t.Fatal(err)
				}
				args := []string{"doctor", "--format", format, "--proc-root", filepath.Join(root, "proc")}
				if h.hasMount {
					args = append(args, "--cgroup-mount", filepath.Join(root, "cgroup"))
				}
				cmd := exec.Command(cgmonBin, args...)
				cmd.Env = cleanEnv()
				r := cgmonCmd(t, cmd, "")
				if r.code != 0 {
					t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
				}
				if r.stderr != "" {
					t.Errorf("stderr: %q", r.stderr)
				}
				out := strings.ReplaceAll(r.stdout, root, "$FIXTURE")
				if format == "json" {
					var v map[string]any
					if err := json.Unmarshal([]byte(out), &v); err != nil {
						t.Fatalf("doctor --format json is not JSON: %v", err)
					}
					for _, k := range []string{"schema_version", "mode", "backend", "sources", "limits", "features"} {
						if _, ok := v[k]; !ok {
							t.Errorf("doctor JSON lacks %q", k)
						}
					}
				}
				ext := ".txt.golden"
				if format == "json" {
					ext = ".json.golden"
				}
				golden(t, "doctor-"+h.name+ext, out)
			})
		}
	}
}

func TestDoctorBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"doctor", "--format", "yaml"},
		{"doctor", "--backend", "v1"},
		{"doctor", "extra"},
		{"doctor", "--proc-root", "/nonexistent-proc"},
	} {
		r := cgmon(t, "", args...)
		if r.code != 125 {
			t.Errorf("%v: exit %d, want 125", args, r.code)
		}
		if lines := strings.Count(r.stderr, "\n"); lines != 1 || !strings.HasPrefix(r.stderr, "cgmon: doctor: ") {
			t.Errorf("%v: stderr %q, want one line starting with \"cgmon: doctor: \"", args, r.stderr)
		}
	}
}

// asNobody wraps cgmon args to run as the unprivileged user nobody, with
// setpriv or runuser, whichever this host has; it skips the test when
// neither exists or this process cannot change user (not root).
func asNobody(t *testing.T, args ...string) *exec.Cmd {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("running as another user needs root")
	}
	var cmd *exec.Cmd
	if p, err := exec.LookPath("setpriv"); err == nil {
		cmd = exec.Command(p, append([]string{"--reuid=nobody", "--regid=nogroup", "--clear-groups", "--", cgmonBin}, args...)...)
	} else if p, err := exec.LookPath("runuser"); err == nil {
		cmd = exec.Command(p, append([]string{"-u", "nobody", "--", cgmonBin}, args...)...)
	} else {
		t.Skip("neither setpriv nor runuser is installed")
	}
	cmd.Env = cleanEnv()
	cmd.Dir = "/"
	return cmd
}

// tmpPath matches a path under the temporary directory.
var tmpPath = regexp.MustCompile(regexp.QuoteMeta(os.TempDir()) + `/[^\s"]*`)

// TestDoctorRootlessHost runs `cgmon doctor` as nobody against this host:
// no cgroup is writable and no user manager is reachable, so run would use
// the procfs fallback, and doctor says why and what would fix each gap.
// What varies between runs and hosts (the cgroup v2 mount, the own cgroup,
// paths under the temporary directory) is replaced before the comparison.
func TestDoctorRootlessHost(t *testing.T) {
	var own string
	if b, err := os.ReadFile("/proc/self/cgroup"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if rest, ok := strings.CutPrefix(l, "0::"); ok {
				own = rest
			}
		}
	}
	for _, format := range []string{"human", "json"} {
		t.Run(format, func(t *testing.T) {
			r := cgmonCmd(t, asNobody(t, "doctor", "--format", format), "")
			if r.code != 0 {
				t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
			}
			var d struct {
				Mount       string `json:"mount"`
				Path        string `json:"path"`
				UserManager struct {
					Reachable bool   `json:"reachable"`
					Reason    string `json:"reason"`
				} `json:"user_manager"`
				RunPath []struct {
					Step, State string
				} `json:"run_path"`
				Gaps []struct{ What, Remedy string } `json:"gaps"`
			}
			jr := r
			if format != "json" {
				jr = cgmonCmd(t, asNobody(t, "doctor", "--format", "json"), "")
			}
			if err := json.Unmarshal([]byte(jr.stdout), &d); err != nil {
				t.Fatalf("doctor JSON: %v", err)
			}
			if d.Path != "procfs" || d.UserManager.Reachable || d.UserManager.Reason == "" {
				t.Errorf("as nobody: path %q, user manager %+v; want procfs and an unreachable manager with a reason", d.Path, d.UserManager)
			}
			for _, s := range d.RunPath {
				if want := map[string]string{"a": "no", "b": "no", "c": "used"}[s.Step]; s.Step != "" && s.State != want {
					t.Errorf("run path step %s is %q, want %q", s.Step, s.State, want)
				}
			}
			if len(d.Gaps) == 0 {
				t.Error("no gaps listed for an unprivileged user")
			}
			for _, g := range d.Gaps {
				if g.Remedy == "" {
					t.Errorf("gap %q has no remedy", g.What)
				}
			}
			out := r.stdout
			if d.Mount != "" {
				out = strings.ReplaceAll(out, d.Mount, "$MOUNT")
			}
			if own != "" && own != "/" {
				out = strings.ReplaceAll(out, own, "$OWN_CGROUP")
			}
			out = tmpPath.ReplaceAllString(out, "$$TMP")
			ext := ".txt.golden"
			if format == "json" {
				ext = ".json.golden"
			}
			golden(t, "doctor-rootless-host-nobody"+ext, out)
		})
	}
}

// TestDoctorThisHost is doctor on the development/CI host itself, as root:
// hybrid, the v2 tree without controllers, the shared root, the sources of
// a hybrid host and a remedy for every gap.
func TestDoctorThisHost(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("describes the development host as root")
	}
	p, err := cgroupmon.ProbeHost(cgroupmon.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if p.Mode != cgroupmon.ModeHybrid || p.Mount != "/sys/fs/cgroup/unified" {
		t.Skipf("this host is %s with v2 at %q, not the hybrid development host the golden describes", p.Mode, p.Mount)
	}
	cmd := exec.Command(cgmonBin, "doctor")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")} // no user bus from the caller's session
	r := cgmonCmd(t, cmd, "")
	if r.code != 0 {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	// Other test packages make and remove the shared root concurrently.
	out := strings.ReplaceAll(r.stdout, "/sys/fs/cgroup/unified/cgmon will be created (the mount is writable)", "/sys/fs/cgroup/unified/cgmon is writable")
	golden(t, "doctor-this-host.txt.golden", out)
}
