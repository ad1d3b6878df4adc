package vmtest

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
)

// TestResult is the outcome of one test (or subtest) in a test binary's
// `-test.v` output: Status is "PASS", "FAIL" or "SKIP", and Reason, for a
// skip, is the last message the test logged (its t.Skip message; empty
// after a bare SkipNow).
type TestResult struct {
	Pkg    string
	Test   string // the full name: "TestA", or "TestA/sub" for a subtest
	Status string
	Reason string
}

// StatusSkip is the status of a skipped test.
const StatusSkip = "SKIP"

var (
	// "=== RUN   TestA", "=== CONT  TestA", "=== NAME  TestA": the test
	// whose output follows (Go 1.20 and later name it whenever it changes).
	headRE = regexp.MustCompile(`^=== (?:RUN|CONT|NAME|PAUSE) +(\S+)`)
	// "--- SKIP: TestA/sub (0.00s)", indented by four spaces per level.
	resultRE = regexp.MustCompile(`^\s*--- (PASS|FAIL|SKIP): (\S+) \(`)
	// "    file_test.go:12: message": the start of one t.Log entry; its
	// further lines are indented deeper.
	logRE = regexp.MustCompile(`^(\s+)[\w.-]+\.go:\d+: ?(.*)$`)
)

// ParseTests returns the results of pkg's `-test.v` output lines in the
// order they were reported, with each skip's reason.
func ParseTests(pkg string, lines []string) []TestResult {
	var (
		res    []TestResult
		cur    string                // the test whose output is being read
		last   = map[string]string{} // a test's last log entry
		indent string                // the indentation of the entry being read
	)
	for _, l := range lines {
		if m := headRE.FindStringSubmatch(l); m != nil {
			cur, indent = m[1], ""
			continue
		}
		if m := resultRE.FindStringSubmatch(l); m != nil {
			res = append(res, TestResult{Pkg: pkg, Test: m[2], Status: m[1], Reason: last[m[2]]})
			indent = ""
			continue
		}
		if m := logRE.FindStringSubmatch(l); m != nil && cur != "" {
			last[cur], indent = m[2], m[1]
			continue
		}
		if indent != "" && strings.HasPrefix(l, indent+" ") {
			last[cur] += "\n" + strings.TrimSpace(l)
			continue
		}
		indent = ""
	}
	return res
}

// SkipVerdict is the skip accounting of one scenario.
type SkipVerdict struct {
	// Unexpected are the skips that no entry of the list allows: each
	// fails the scenario.
	Unexpected []TestResult
	// Warnings name entries of the list that no longer apply: the test
	// ran and did not skip, or (on a full run) did not run at all. They
	// do not fail the scenario.
	Warnings []string
}

// CheckSkips compares the results of one scenario with its allowed skips.
// full says that every test of the default packages was selected, so an
// allowed test that did not run at all is reported (renamed or deleted).
func CheckSkips(scenario string, allowed map[string]string, results []TestResult, full bool) SkipVerdict {
	var v SkipVerdict
	seen := map[string]string{} // test -> its status (a skip wins)
	for _, r := range results {
		if r.Status == StatusSkip {
			seen[r.Test] = StatusSkip
			if _, ok := allowed[r.Test]; !ok {
				v.Unexpected = append(v.Unexpected, r)
			}
		} else if seen[r.Test] != StatusSkip {
			seen[r.Test] = r.Status
		}
	}
	names := make([]string, 0, len(allowed))
	for t := range allowed {
		names = append(names, t)
	}
	sort.Strings(names)
	for _, t := range names {
		switch st, ran := seen[t]; {
		case ran && st != StatusSkip:
			v.Warnings = append(v.Warnings, fmt.Sprintf("%s may skip in %s but ran (%s): remove it from AllowedSkips if the skip is gone for good", t, scenario, st))
		case !ran && full:
			v.Warnings = append(v.Warnings, fmt.Sprintf("%s may skip in %s but did not run: renamed or removed? Update AllowedSkips", t, scenario))
		}
	}
	return v
}

// oneLine folds s onto one line.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// Describe returns one line naming an unexpected skip and its reason, with
// the entry that would allow it.
func (r TestResult) Describe(scenario string) string {
	reason := oneLine(r.Reason)
	if reason == "" {
		reason = "(no reason logged)"
	}
	return fmt.Sprintf(`unexpected skip: %s (%s) in %s: %q (if it is right there, add %q: "why" to AllowedSkips[%q])`,
		r.Test, r.Pkg, scenario, reason, r.Test, scenario)
}

// containsAll reports whether list holds every member of want.
func containsAll(list, want []string) bool {
	for _, w := range want {
		if !contains(list, w) {
			return false
		}
	}
	return true
}
