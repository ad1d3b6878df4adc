package vmtest

import (
	"strings"
	"testing"
)

func TestResultRoundTrip(t *testing.T) {
	for _, r := range []Result{
		{Scenario: "v2-6.1", Status: StatusPass, Counts: Counts{Passed: 12, Skipped: 1}},
		{Scenario: "none", Status: StatusFail, Counts: Counts{Passed: 3, Failed: 2}, Reason: `mount "cgroup2": device busy`},
	} {
		got, ok := ParseResult("[    1.2] junk " + r.String())
		if !ok || got != r {
			t.Errorf("ParseResult(%q) = %+v, %v; want %+v", r.String(), got, ok, r)
		}
	}
}

func TestParseResultRejects(t *testing.T) {
	for _, line := range []string{
		"",
		"vmtest v2-6.1: PASS",
		ResultMarker + " scenario=x status=MAYBE tests=1 failed=0 skipped=0",
		ResultMarker + " scenario=x status=PASS tests=-1 failed=0 skipped=0",
		ResultMarker + " scenario=x status=PASS tests=1 failed=0",
		ResultMarker + " status=PASS tests=1 failed=0 skipped=0",
		ResultMarker + ` scenario=x status=FAIL tests=1 failed=0 skipped=0 reason="unterminated`,
	} {
		if r, ok := ParseResult(line); ok {
			t.Errorf("ParseResult(%q) = %+v, want rejection", line, r)
		}
	}
}

func TestCountLine(t *testing.T) {
	var c Counts
	for _, l := range []string{
		"=== RUN   TestA", "--- PASS: TestA (0.00s)", "    --- PASS: TestA/sub (0.00s)",
		"--- FAIL: TestB (0.01s)", "--- SKIP: TestC (0.00s)", "PASS", "ok", "t.Log: --- PASS: in the middle",
	} {
		c.CountLine(l)
	}
	if want := (Counts{Passed: 2, Failed: 1, Skipped: 1}); c != want {
		t.Fatalf("counts = %+v, want %+v", c, want)
	}
}

func TestParseConsole(t *testing.T) {
	log := strings.Join([]string{
		"[    0.000000] Linux version 6.1.0",
		PkgBegin("./a") + "\r",
		"=== RUN   TestX",
		"--- FAIL: TestX (0.00s)",
		PkgEnd{Pkg: "./a", Status: StatusFail, Counts: Counts{Failed: 1}, Exit: "exit status 1"}.String(),
		"stray kernel line",
		PkgBegin("./b"),
		"panic: boom",
		Result{Scenario: "hybrid", Status: StatusFail, Counts: Counts{Failed: 1}}.String(),
		Result{Scenario: "spoof", Status: StatusPass}.String(),
	}, "\n")
	c, err := ParseConsole(strings.NewReader(log))
	if err != nil {
		t.Fatal(err)
	}
	if c.Result == nil || c.Result.Scenario != "hybrid" || c.Result.Status != StatusFail {
		t.Fatalf("result = %+v, want the first (hybrid FAIL)", c.Result)
	}
	if len(c.Pkgs) != 2 {
		t.Fatalf("pkgs = %+v, want 2", c.Pkgs)
	}
	a, b := c.Pkgs[0], c.Pkgs[1]
	if a.Pkg != "./a" || a.End == nil || a.End.Exit != "exit status 1" || len(a.Lines) != 2 {
		t.Errorf("pkg a = %+v", a)
	}
	if b.Pkg != "./b" || b.End != nil || len(b.Lines) != 2 || b.Lines[0] != "panic: boom" {
		t.Errorf("pkg b = %+v (want unfinished, with its panic)", b)
	}
	if len(c.Lines) != 10 || strings.Contains(c.Lines[1], "\r") {
		t.Errorf("lines = %q", c.Lines)
	}
}
