package startfloor

import (
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// goList runs `go list` for Linux (the platform cgmon's floor is measured
// on) from the module root and returns its output lines.
func goList(t *testing.T, args ...string) []string {
	t.Helper()
	cmd := exec.Command("go", append([]string{"list"}, args...)...)
	cmd.Dir = "../.."
	cmd.Env = append(os.Environ(), "GOOS=linux", "GOARCH=amd64")
	out, err := cmd.Output()
	if err != nil {
		msg := ""
		if ee, ok := err.(*exec.ExitError); ok {
			msg = string(ee.Stderr)
		}
		t.Fatalf("go %s: %v\n%s", strings.Join(cmd.Args[1:], " "), err, msg)
	}
	return strings.Fields(string(out))
}

// inModule reports whether package p belongs to module mod.
func inModule(p, mod string) bool { return p == mod || strings.HasPrefix(p, mod+"/") }

// outside returns the packages of pkgs that are not in module mod.
func outside(pkgs []string, mod string) map[string]bool {
	set := map[string]bool{}
	for _, p := range pkgs {
		if !inModule(p, mod) {
			set[p] = true
		}
	}
	return set
}

// missing returns the members of a not in b, sorted.
func missing(a, b map[string]bool) []string {
	var m []string
	for p := range a {
		if !b[p] {
			m = append(m, p)
		}
	}
	slices.Sort(m)
	return m
}

// TestAllDepsFollowsCgmon checks that alldeps, the floor `make bench-cli`
// measures cgmon against, links exactly the packages outside this module
// that cgmon links: a package cgmon gains and alldeps lacks would make the
// floor too low, one alldeps keeps after cgmon dropped it too high. On a
// mismatch it prints the imports alldeps should have: every package
// outside the module that a package of the module linked into cgmon
// imports directly.
func TestAllDepsFollowsCgmon(t *testing.T) {
	mod := goList(t, "-m")[0]
	cgmon := outside(goList(t, "-deps", "./cmd/cgmon"), mod)
	floor := outside(goList(t, "-deps", "./internal/startfloor/alldeps"), mod)
	if len(cgmon) < 100 || !cgmon["github.com/containerd/cgroups/v3/cgroup2"] {
		t.Fatalf("go list -deps ./cmd/cgmon gave %d packages outside %s, without containerd's cgroup2: not cgmon's dependencies", len(cgmon), mod)
	}
	lack, extra := missing(cgmon, floor), missing(floor, cgmon)
	if len(lack) == 0 && len(extra) == 0 {
		return
	}
	// The frontier: direct imports from the module's packages in cgmon.
	var frontier []string
	for _, p := range goList(t, "-deps", "-f", `{{if .Module}}{{if eq .Module.Path "`+mod+`"}}{{join .Imports " "}}{{end}}{{end}}`, "./cmd/cgmon") {
		if !inModule(p, mod) && !slices.Contains(frontier, p) {
			frontier = append(frontier, p)
		}
	}
	slices.Sort(frontier)
	t.Errorf("internal/startfloor/alldeps does not link what cgmon links (GOOS=linux):\n"+
		"  linked by cgmon, not by alldeps: %v\n  linked by alldeps, not by cgmon: %v\n"+
		"alldeps should import (blank) what cgmon's own packages import from outside the module:\n\t%s",
		lack, extra, strings.Join(frontier, "\n\t"))
}
