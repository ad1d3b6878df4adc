package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestVersionMatchesBuildInfo runs `cgmon version` on the binary TestMain
// built and checks it against what `go version -m` reads from the same
// binary: the main module's version, the commit and whether the tree was
// modified, or "commit unknown" when the build stamped none (go build in a
// linked worktree, or with -buildvcs=false). A stamped commit must be the
// checkout's HEAD.
func TestVersionMatchesBuildInfo(t *testing.T) {
	r := cgmon(t, "", "version")
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("cgmon version: exit %d, stderr %q", r.code, r.stderr)
	}
	out, err := exec.Command("go", "version", "-m", cgmonBin).Output()
	if err != nil {
		t.Fatalf("go version -m: %v", err)
	}
	version, rev, modified := "(devel)", "", false
	for _, l := range strings.Split(string(out), "\n") {
		f := strings.Fields(l)
		switch {
		case len(f) >= 3 && f[0] == "mod" && f[1] == "github.com/cgmon/cgmon":
			version = f[2]
		case len(f) == 2 && f[0] == "build" && strings.HasPrefix(f[1], "vcs.revision="):
			rev = strings.TrimPrefix(f[1], "vcs.revision=")
		case len(f) == 2 && f[0] == "build" && f[1] == "vcs.modified=true":
			modified = true
		}
	}
	lines := strings.Split(r.stdout, "\n")
	if len(lines) != 4 || lines[3] != "" {
		t.Fatalf("cgmon version printed %q, want three lines", r.stdout)
	}
	if want := "cgmon " + version; lines[0] != want {
		t.Errorf("first line %q, want %q (go version -m:\n%s)", lines[0], want, out)
	}
	switch {
	case rev == "":
		if !strings.HasPrefix(lines[1], "commit unknown (") {
			t.Errorf("second line %q, want commit unknown: the build stamped none", lines[1])
		}
	case modified:
		if lines[1] != "commit "+rev+" (modified)" {
			t.Errorf("second line %q, want commit %s (modified)", lines[1], rev)
		}
	default:
		if lines[1] != "commit "+rev {
			t.Errorf("second line %q, want commit %s", lines[1], rev)
		}
	}
	if rev != "" {
		head, err := exec.Command("git", "rev-parse", "HEAD").Output()
		if err == nil && strings.TrimSpace(string(head)) != rev {
			t.Errorf("stamped commit %s is not the checkout's HEAD %s", rev, head)
		}
	}
	if !strings.HasPrefix(lines[2], "go1.") {
		t.Errorf("third line %q, want the Go release", lines[2])
	}
}

// TestVersionUnderGoRun runs the README's `go run ./cmd/cgmon version`:
// go run stamps no VCS information, and cgmon says so instead of making
// a version up.
func TestVersionUnderGoRun(t *testing.T) {
	cmd := exec.Command("go", "run", "./cmd/cgmon", "version")
	cmd.Dir = "../.."
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go run ./cmd/cgmon version: %v\n%s", err, out)
	}
	if !strings.HasPrefix(string(out), "cgmon (devel)\ncommit unknown (this build carries no VCS information: go run, ") {
		t.Errorf("go run ./cmd/cgmon version printed:\n%s", out)
	}
}
