package filegraph

import (
	"os/exec"
	"strings"
	"testing"
)

// TestPackagesCallOneWay holds cgmon's packages to their layout: no two
// files of one package use each other, directly or around a loop. It
// prints each package's files from the top (the story an execution follows
// first) to the bottom (what everything uses).
func TestPackagesCallOneWay(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("needs the go command for the export data of dependencies (not in the VM guests)")
	}
	for _, pkg := range []string{"./cgroupmon", "./internal/proctree", "./procfallback", "./metrics"} {
		t.Run(strings.TrimPrefix(pkg, "./"), func(t *testing.T) {
			g, err := Load("../..", pkg)
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range g.Cycles() {
				var uses []string
				for _, f := range c {
					uses = append(uses, f+" -> "+strings.Join(g.Uses[f], ", "))
				}
				t.Errorf("files that use each other: %s\n  %s", strings.Join(c, ", "), strings.Join(uses, "\n  "))
			}
			for i, l := range g.Layers() {
				t.Logf("layer %d: %s", i+1, strings.Join(l, " "))
			}
		})
	}
}

// TestCyclesAreFound: the check itself finds a loop of files.
func TestCyclesAreFound(t *testing.T) {
	g := &Graph{
		Files: []string{"a.go", "b.go", "c.go", "d.go"},
		Uses:  map[string][]string{"a.go": {"b.go"}, "b.go": {"c.go"}, "c.go": {"a.go"}, "d.go": {"a.go"}},
	}
	c := g.Cycles()
	if len(c) != 1 || strings.Join(c[0], " ") != "a.go b.go c.go" {
		t.Fatalf("cycles %v, want [[a.go b.go c.go]]", c)
	}
	if g.Layers() != nil {
		t.Fatal("layers of a graph with a cycle")
	}
	g.Uses["c.go"] = nil
	if got := g.Layers(); len(got) != 4 || got[0][0] != "d.go" || got[3][0] != "c.go" {
		t.Fatalf("layers %v", got)
	}
}
