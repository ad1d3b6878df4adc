package vmtest

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// verbose is real `-test.v` output of Go 1.26: a skip with a log line
// before its reason, a skipped subtest with a two-line reason, parallel
// tests whose output is interleaved, a bare SkipNow, and a kernel message
// on the console between them.
var verbose = []string{
	"=== RUN   TestA",
	"    x_test.go:3: hello",
	"    x_test.go:3: needs memory.peak: absent",
	"--- SKIP: TestA (0.00s)",
	"=== RUN   TestB",
	"=== RUN   TestB/sub",
	"    x_test.go:4: sub reason",
	"        second line",
	"=== RUN   TestB/ok",
	"--- PASS: TestB (0.00s)",
	"    --- SKIP: TestB/sub (0.00s)",
	"    --- PASS: TestB/ok (0.00s)",
	"=== RUN   TestP1",
	"=== PAUSE TestP1",
	"=== RUN   TestP2",
	"=== PAUSE TestP2",
	"=== RUN   TestC",
	"--- SKIP: TestC (0.00s)",
	"=== CONT  TestP1",
	"    x_test.go:5: p1 log",
	"=== CONT  TestP2",
	"    x_test.go:6: p2 log",
	"[   12.345678] random: crng init done",
	"=== NAME  TestP1",
	"    x_test.go:5: p1 skip",
	"--- SKIP: TestP1 (0.00s)",
	"--- FAIL: TestP2 (0.00s)",
	"FAIL",
}

func TestParseTests(t *testing.T) {
	got := ParseTests("./x", verbose)
	want := []TestResult{
		{"./x", "TestA", "SKIP", "needs memory.peak: absent"},
		{"./x", "TestB", "PASS", ""},
		{"./x", "TestB/sub", "SKIP", "sub reason\nsecond line"},
		{"./x", "TestB/ok", "PASS", ""},
		{"./x", "TestC", "SKIP", ""},
		{"./x", "TestP1", "SKIP", "p1 skip"},
		{"./x", "TestP2", "FAIL", "p2 log"},
	}
	if len(got) != len(want) {
		t.Fatalf("ParseTests = %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("result %d = %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestCheckSkips(t *testing.T) {
	results := ParseTests("./x", verbose)
	allowed := map[string]string{
		"TestA":     "memory.peak arrived in 5.19",
		"TestB/sub": "sub needs something absent here",
		"TestP2":    "listed, but it ran (and failed)",
		"TestB/ok":  "listed, but it passed",
		"TestGone":  "listed, but no such test ran",
	}
	v := CheckSkips("hybrid", allowed, results, true)
	if len(v.Unexpected) != 2 || v.Unexpected[0].Test != "TestC" || v.Unexpected[1].Test != "TestP1" {
		t.Errorf("unexpected = %+v, want TestC and TestP1", v.Unexpected)
	}
	wantWarn := []string{"TestB/ok may skip in hybrid but ran (PASS)", "TestGone may skip in hybrid but did not run", "TestP2 may skip in hybrid but ran (FAIL)"}
	if len(v.Warnings) != len(wantWarn) {
		t.Fatalf("warnings = %q, want %d", v.Warnings, len(wantWarn))
	}
	for i, w := range wantWarn {
		if !strings.HasPrefix(v.Warnings[i], w) {
			t.Errorf("warning %d = %q, want %q...", i, v.Warnings[i], w)
		}
	}
	// A partial run (-run, or fewer packages) does not warn about tests it
	// did not select.
	if v := CheckSkips("hybrid", allowed, results, false); len(v.Warnings) != 2 {
		t.Errorf("partial run: warnings %q, want only the two that ran", v.Warnings)
	}
	// Every skip listed: nothing unexpected.
	all := map[string]string{"TestA": "a", "TestB/sub": "b", "TestC": "c", "TestP1": "p"}
	if v := CheckSkips("hybrid", all, results, true); len(v.Unexpected) != 0 || len(v.Warnings) != 0 {
		t.Errorf("all skips allowed: %+v", v)
	}
	// A skip allowed in another scenario is not allowed here.
	if v := CheckSkips("v2-6.1", nil, results, true); len(v.Unexpected) != 4 {
		t.Errorf("no list: %d unexpected, want all 4 skips", len(v.Unexpected))
	}
}

// skipOutcome is a passing boot of Scenarios[0], with allowed skips, whose
// package ./a printed out; the guest's own verdict is PASS.
func skipOutcome(allowed map[string]string, out ...string) Outcome {
	var c Counts
	for _, l := range out {
		c.CountLine(l)
	}
	log := append(append([]string{PkgBegin("./a")}, out...),
		PkgEnd{Pkg: "./a", Status: StatusPass, Counts: c, Exit: "ok"}.String(),
		Result{Scenario: Scenarios[0].Name, Status: StatusPass, Counts: c}.String())
	cons, _ := ParseConsole(strings.NewReader(strings.Join(log, "\n")))
	return Outcome{Scenario: Scenarios[0], Console: cons, Want: []ManifestEntry{{Pkg: "./a"}}, Allowed: allowed, Full: true}
}

func TestOutcomeFailsOnUnexpectedSkip(t *testing.T) {
	name := Scenarios[0].Name
	allowed := map[string]string{"TestMaySkip": "needs something this scenario lacks"}
	o := skipOutcome(allowed, "=== RUN   TestOK", "--- PASS: TestOK (0.00s)",
		"=== RUN   TestMaySkip", "    a_test.go:5: absent here", "--- SKIP: TestMaySkip (0.00s)",
		"=== RUN   TestNeverSkipsHere", "    a_test.go:9: no memory.peak on this kernel", "--- SKIP: TestNeverSkipsHere (0.00s)")
	var buf bytes.Buffer
	o.Report(&buf)
	want := "vmtest " + name + `: FAIL: unexpected skip: TestNeverSkipsHere (./a) in ` + name + `: "no memory.peak on this kernel"`
	if o.Passed() || !strings.HasPrefix(buf.String(), want) {
		t.Errorf("report %q, want a FAIL starting %q", buf.String(), want)
	}

	two := skipOutcome(allowed, "--- SKIP: TestX (0.00s)", "--- SKIP: TestY (0.00s)", "--- PASS: TestOK (0.00s)")
	buf.Reset()
	two.Report(&buf)
	if two.Passed() || !strings.Contains(buf.String(), ": FAIL: 2 unexpected skips, first unexpected skip: TestX") ||
		!strings.Contains(buf.String(), "\nvmtest "+name+": unexpected skip: TestY (./a)") {
		t.Errorf("two skips: report %q", buf.String())
	}

	// The allowed skip alone passes.
	ok := skipOutcome(allowed, "--- SKIP: TestMaySkip (0.00s)", "--- PASS: TestOK (0.00s)")
	buf.Reset()
	ok.Report(&buf)
	if !ok.Passed() || buf.String() != "vmtest "+name+": PASS (1 tests, 1 skipped as allowed) in 0.0s\n" {
		t.Errorf("allowed skip: report %q, want PASS", buf.String())
	}
}

func TestOutcomeWarnsOnStaleEntry(t *testing.T) {
	name := Scenarios[0].Name
	allowed := map[string]string{"TestFixed": "needed memory.peak", "TestRenamed": "needed cgroup.kill"}
	o := skipOutcome(allowed, "--- PASS: TestFixed (0.00s)")
	var buf bytes.Buffer
	o.Report(&buf)
	for _, want := range []string{
		"\nvmtest " + name + ": warning: TestFixed may skip in " + name + " but ran (PASS)",
		"\nvmtest " + name + ": warning: TestRenamed may skip in " + name + " but did not run",
	} {
		if !o.Passed() || !strings.Contains(buf.String(), want) {
			t.Errorf("report %q, want PASS with %q", buf.String(), want)
		}
	}
	// A failing run says nothing about stale entries: its failure is the news.
	o.Console.Result.Status = StatusFail
	buf.Reset()
	o.Report(&buf)
	if o.Passed() || strings.Contains(buf.String(), "warning") {
		t.Errorf("failed run: report %q", buf.String())
	}
}

// TestOutcomeNamesSkipsOfFailedRun checks that a run failing for another
// reason (a failed test) still names its unexpected skips.
func TestOutcomeNamesSkipsOfFailedRun(t *testing.T) {
	name := Scenarios[0].Name
	o := skipOutcome(nil, "--- FAIL: TestBroken (0.00s)", "    a_test.go:1: flaky", "--- SKIP: TestHidden (0.00s)", "--- PASS: TestOK (0.00s)")
	o.Console.Result.Status = StatusFail
	var buf bytes.Buffer
	o.Report(&buf)
	first, _, _ := strings.Cut(buf.String(), "\n")
	if o.Passed() || !strings.Contains(first, ": FAIL: 1 passed, 1 failed") ||
		!strings.HasSuffix(buf.String(), "\nvmtest "+name+": unexpected skip: TestHidden (./a) in "+name+`: "(no reason logged)" (if it is right there, add "TestHidden": "why" to AllowedSkips["`+name+`"])`+"\n") {
		t.Errorf("report %q, want the failure, then the unexpected skip", buf.String())
	}
}

// TestAllowedSkipsTable checks the table itself: each scenario exists,
// each entry names a test and says why.
func TestAllowedSkipsTable(t *testing.T) {
	testName := regexp.MustCompile(`^(Test|Fuzz|Example)\w*(/\S+)?$`)
	for scenario, tests := range AllowedSkips {
		if _, err := LookupScenario(scenario); err != nil {
			t.Errorf("AllowedSkips: %v", err)
		}
		for test, why := range tests {
			if !testName.MatchString(test) {
				t.Errorf("AllowedSkips[%q]: %q is not a test name", scenario, test)
			}
			if len(strings.Fields(why)) < 3 {
				t.Errorf("AllowedSkips[%q][%q]: %q does not say why", scenario, test, why)
			}
		}
	}
}

// TestDefaultPkgs checks that each default package is a directory of the
// module with tests, as vmtest will name it to go test -c.
func TestDefaultPkgs(t *testing.T) {
	for _, p := range DefaultPkgs {
		if _, err := CleanPkg(p); err != nil {
			t.Errorf("DefaultPkgs: %v", err)
			continue
		}
		tests, _ := filepath.Glob(filepath.Join("../..", p, "*_test.go"))
		if len(tests) == 0 {
			t.Errorf("DefaultPkgs: %s has no _test.go files (moved or renamed?)", p)
		}
	}
	if _, err := os.Stat("../../go.mod"); err != nil {
		t.Fatalf("not at the module's internal/vmtest: %v", err)
	}
}
