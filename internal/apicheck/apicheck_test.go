package apicheck

import (
	"path/filepath"
	"testing"
)

// TestPublicPackagesAreDocumented holds the public packages to the rule,
// for Linux and for the stubs built elsewhere.
func TestPublicPackagesAreDocumented(t *testing.T) {
	for _, pkg := range []string{"cgroupmon", "procfallback", "metrics", "metrics/prom"} {
		for _, goos := range []string{"linux", "darwin"} {
			probs, err := Check(filepath.Join("..", "..", pkg), goos)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range probs {
				t.Errorf("%s (%s) %s", pkg, goos, p)
			}
		}
	}
}

// TestRule: the check tells a good comment from a missing or a wrong one.
func TestRule(t *testing.T) {
	probs, err := Check("testdata/sample", "linux")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, p := range probs {
		got[p.Name] = true
	}
	for _, want := range []string{"Undocumented", "Wrong", "T.Bare", "T.Colon", "Loose"} {
		if !got[want] {
			t.Errorf("%s not reported; got %v", want, probs)
		}
	}
	for _, fine := range []string{"Good", "T", "T.Field", "GroupA", "Method"} {
		if got[fine] {
			t.Errorf("%s reported but documented: %v", fine, probs)
		}
	}
}
