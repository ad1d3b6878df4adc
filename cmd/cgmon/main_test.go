package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
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
