package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// dockerFixtureID is the container of the fixture tree
// testdata/cgroups/containers/docker-systemd (a Docker host's cgroups with
// the systemd driver).
const dockerFixtureID = "6de102c1cecc011032305908295668eedad74d736c6d216e4c42f416ae84988f"

// TestWatchContainerAsREADME runs the README's `cgmon watch --container`
// command, as printed, from the repository's root: the container is found
// by the 12-digit prefix `docker ps` shows in a host tree mounted
// elsewhere, and the report names it and reads its cgroup's files (the
// fixture's memory.peak is 34140160 bytes).
func TestWatchContainerAsREADME(t *testing.T) {
	cmd := exec.Command(cgmonBin, "watch", "--cgroup-mount", "testdata/cgroups/containers/docker-systemd", "--container", "6de102c1cecc")
	cmd.Dir = filepath.Join("..", "..")
	r := cgmonCmd(t, cmd, "")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	scope := "testdata/cgroups/containers/docker-systemd/system.slice/docker-" + dockerFixtureID + ".scope"
	for _, want := range []string{
		"Status:                     ended",
		"Command:                    container:" + dockerFixtureID + " cgroup:" + scope,
		"ID:                         container-6de102c1cecc",
		"32.559 MiB (34140160 bytes)  [cgroup2:memory.peak]",
	} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("the report lacks %q:\n%s", want, r.stderr)
		}
	}
}

// TestWatchContainerRefuses: a container id that is ambiguous, missing or
// not an id is cgmon's failure (exit 125, one line naming the problem),
// and nothing is written.
func TestWatchContainerRefuses(t *testing.T) {
	mount := t.TempDir()
	a, b := "abcd1"+strings.Repeat("0", 59), "abcd2"+strings.Repeat("0", 59)
	for _, d := range []string{"system.slice/docker-" + a + ".scope", "system.slice/docker-" + b + ".scope"} {
		if err := os.MkdirAll(filepath.Join(mount, d), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(mount, d, "cgroup.procs"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		name string
		args []string
		msg  []string
	}{
		{"ambiguous", []string{"--container", "abcd"}, []string{"abcd is the prefix of 2 container cgroups", "abcd10000000 (/system.slice/docker-" + a + ".scope)", "abcd20000000"}},
		{"missing", []string{"--container", "ffff"}, []string{"no container with id ffff (as a prefix) under " + mount}},
		{"not an id", []string{"--container", "my-app"}, []string{`container id "my-app" is not an id`}},
		{"with a pid", []string{"--container", "abcd1", "--pid", "1"}, []string{"not several"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "r.json")
			r := cgmon(t, "", append([]string{"watch", "--cgroup-mount", mount, "-o", out}, c.args...)...)
			if r.code != 125 || strings.Count(r.stderr, "\n") != 1 || !strings.HasPrefix(r.stderr, "cgmon: watch: ") {
				t.Fatalf("exit %d, stderr %q; want 125 and one line", r.code, r.stderr)
			}
			for _, m := range c.msg {
				if !strings.Contains(r.stderr, m) {
					t.Errorf("stderr %q does not say %q", r.stderr, m)
				}
			}
			if _, err := os.Stat(out); err == nil {
				t.Error("a report was written although cgmon refused")
			}
		})
	}
}

// TestDoctorContainerGolden runs `cgmon doctor` against fixture containers:
// Docker's default (a read-only cgroup2 at the namespace's root, and
// /.dockerenv) and a writable Podman one whose namespace root holds three
// processes, with and without --move-others. The same layouts run for real
// in the VM's container scenarios (testdata/cli/doctor-vm-container-*).
func TestDoctorContainerGolden(t *testing.T) {
	for _, c := range []struct {
		host, name string
		flags      []string
	}{
		{"container-docker", "container-docker", nil},
		{"container-podman", "container-podman", nil},
		{"container-podman", "container-podman-move-others", []string{"--move-others"}},
	} {
		for _, format := range []string{"human", "json"} {
			t.Run(c.name+"/"+format, func(t *testing.T) {
				root, err := filepath.Abs(filepath.Join(goldenDir, "doctor", c.host))
				if err != nil {
					t.Fatal(err)
				}
				args := append([]string{"doctor", "--format", format, "--proc-root", filepath.Join(root, "proc"), "--cgroup-mount", filepath.Join(root, "cgroup")}, c.flags...)
				cmd := exec.Command(cgmonBin, args...)
				cmd.Env = cleanEnv()
				r := cgmonCmd(t, cmd, "")
				if r.code != 0 || r.stderr != "" {
					t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
				}
				if _, err := os.Stat(filepath.Join(root, "cgroup", "init")); err == nil {
					t.Fatal("doctor made init: it must only describe")
				}
				ext := ".txt.golden"
				if format == "json" {
					ext = ".json.golden"
				}
				golden(t, "doctor-"+c.name+ext, strings.ReplaceAll(r.stdout, root, "$FIXTURE"))
			})
		}
	}
}
