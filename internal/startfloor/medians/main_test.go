package main

import (
	"bytes"
	"fmt"
	"math"
	"strings"
	"testing"
)

func exportJSON(cmds ...any) []byte {
	var parts []string
	for i := 0; i < len(cmds); i += 2 {
		parts = append(parts, fmt.Sprintf(`{"command": %q, "mean": 9, "median": %v}`, cmds[i], cmds[i+1]))
	}
	return []byte(`{"results": [` + strings.Join(parts, ",") + `]}`)
}

func mustParse(t *testing.T, name string, b []byte) run {
	t.Helper()
	r, err := parse(name, b)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestReportMedianOfRatios(t *testing.T) {
	// The floor moves between runs; the ratio within each run is what counts.
	runs := []run{
		mustParse(t, "1.json", exportJSON("/b/cgmon run -o /dev/null -- /bin/true", 0.0060, "/b/alldeps", 0.0050)),
		mustParse(t, "2.json", exportJSON("/b/cgmon run -o /dev/null -- /bin/true", 0.0088, "/b/alldeps", 0.0080)),
		mustParse(t, "3.json", exportJSON("/b/cgmon run -o /dev/null -- /bin/true", 0.0050, "/b/alldeps", 0.0040)),
	}
	var out bytes.Buffer
	m, err := report(&out, runs, "/b/cgmon run", "/b/alldeps", 1, 1.15)
	if err != nil {
		t.Fatal(err)
	}
	// Ratios 1.2, 1.1, 1.25: the median is 1.2, not the ratio of the medians.
	if math.Abs(m-1.2) > 1e-9 {
		t.Errorf("median ratio = %v, want 1.2", m)
	}
	for _, want := range []string{"1.200x, 1.100x, 1.250x; median 1.200x (target 1.15x: NOT met)", "| `/b/alldeps` | 5.000 ms | 1.00x |"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
}

func TestReportPerExecution(t *testing.T) {
	runs := []run{mustParse(t, "b.json", exportJSON("cgmon batch x", 1.1, "sh -c loop", 1.0))}
	var out bytes.Buffer
	m, err := report(&out, runs, "cgmon batch", "sh -c", 1000, 1.2)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(m-1.1) > 1e-9 || !strings.Contains(out.String(), "| `cgmon batch x` | 1.100 ms | 1.10x |") || !strings.Contains(out.String(), "(target 1.20x: met)") {
		t.Errorf("median %v, report:\n%s", m, out.String())
	}
}

func TestReportRejects(t *testing.T) {
	r := mustParse(t, "a.json", exportJSON("cgmon run a", 1.0, "cgmon run b", 1.0, "alldeps", 1.0))
	for _, tc := range []struct{ cmd, base, want string }{
		{"cgmon run", "alldeps", "more than one command"},
		{"cgmon run a", "mini", `no command starts with "mini"`},
	} {
		if _, err := report(&bytes.Buffer{}, []run{r}, tc.cmd, tc.base, 1, 0); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("report(%q, %q) error %v, want %q", tc.cmd, tc.base, err, tc.want)
		}
	}
	for _, bad := range []string{`{"results": []}`, `{"results": [{"command": "x", "median": 0}]}`, `not json`} {
		if _, err := parse("bad.json", []byte(bad)); err == nil {
			t.Errorf("parse(%s) accepted", bad)
		}
	}
}

func TestMedian(t *testing.T) {
	xs := []float64{3, 1, 2, 10}
	if m := median(xs); m != 2.5 {
		t.Errorf("median %v = %v, want 2.5", xs, m)
	}
	if xs[0] != 3 {
		t.Error("median sorted its argument")
	}
	if m := median([]float64{5, 1, 4}); m != 4 {
		t.Errorf("median = %v, want 4", m)
	}
}
