package vmtest

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
)

func outcome(log string, bootErr error) Outcome {
	c, _ := ParseConsole(strings.NewReader(log))
	return Outcome{Scenario: Scenarios[0], Console: c, BootErr: bootErr, LogPath: "x.log",
		Want: []ManifestEntry{{Pkg: "./a"}}}
}

func lines(l ...string) string { return strings.Join(l, "\n") }

func TestOutcomeVerdicts(t *testing.T) {
	name := Scenarios[0].Name
	okPkg := []string{PkgBegin("./a"), "--- PASS: TestA (0.00s)",
		PkgEnd{Pkg: "./a", Status: StatusPass, Counts: Counts{Passed: 1}, Exit: "ok"}.String()}
	cases := []struct {
		desc    string
		log     string
		bootErr error
		want    string // "" for PASS, else a substring of the FAIL line
		output  string // a substring of the report
	}{
		{"pass", lines(append(okPkg, Result{Scenario: name, Status: StatusPass, Counts: Counts{Passed: 1}}.String())...), nil,
			"", "vmtest " + name + ": PASS (1 tests, 0 skipped as allowed)"},
		{"no result line, timeout", lines("Booting", "Kernel panic - not syncing"), errors.New("boot timed out after 5m0s"),
			"timed out", "Kernel panic"},
		{"no result line, clean exit", "Booting", nil, "without one", "last 1 console lines"},
		{"wrong scenario", lines(append(okPkg, Result{Scenario: "none", Status: StatusPass, Counts: Counts{Passed: 1}}.String())...), nil,
			`scenario "none"`, ""},
		{"failing test", lines(PkgBegin("./a"), "--- FAIL: TestA (0.00s)", "    a_test.go:3: boom",
			PkgEnd{Pkg: "./a", Status: StatusFail, Counts: Counts{Failed: 1}, Exit: "exit status 1"}.String(),
			Result{Scenario: name, Status: StatusFail, Counts: Counts{Failed: 1}}.String()), nil,
			"0 passed, 1 failed", "a_test.go:3: boom"},
		{"setup failure", Result{Scenario: name, Status: StatusFail, Reason: "mount cgroup2: EBUSY"}.String(), nil,
			"mount cgroup2: EBUSY", ""},
		{"zero tests", lines(PkgBegin("./a"), PkgEnd{Pkg: "./a", Status: StatusPass, Exit: "ok"}.String(),
			Result{Scenario: name, Status: StatusPass}.String()), nil, "no test passed", ""},
		{"package missing", Result{Scenario: name, Status: StatusPass, Counts: Counts{Passed: 1}}.String(), nil,
			"./a did not report PASS", ""},
	}
	for _, tc := range cases {
		o := outcome(tc.log, tc.bootErr)
		var buf bytes.Buffer
		o.Report(&buf)
		first, _, _ := strings.Cut(buf.String(), "\n")
		if tc.want == "" {
			if !o.Passed() || !strings.HasPrefix(first, tc.output) {
				t.Errorf("%s: report %q, want PASS", tc.desc, buf.String())
			}
			continue
		}
		if o.Passed() || !strings.HasPrefix(first, "vmtest "+name+": FAIL") || !strings.Contains(first, tc.want) {
			t.Errorf("%s: first line %q, want FAIL with %q", tc.desc, first, tc.want)
		}
		if !strings.Contains(buf.String(), tc.output) {
			t.Errorf("%s: report %q lacks %q", tc.desc, buf.String(), tc.output)
		}
	}
}

func TestCmdline(t *testing.T) {
	s, _ := LookupScenario("v2-5.10")
	got := Cmdline(s, 0, "")
	for _, w := range []string{"console=ttyS0", "panic=-1", "cgmon.scenario=v2-5.10", "cgroup_no_v1=all"} {
		if !strings.Contains(" "+got+" ", " "+w+" ") {
			t.Errorf("cmdline %q lacks %s", got, w)
		}
	}
	h, _ := LookupScenario("hybrid")
	if strings.Contains(Cmdline(h, 0, ""), "cgroup_no_v1") {
		t.Error("hybrid must keep the v1 controllers")
	}
	if _, err := LookupScenario("v3"); err == nil {
		t.Error("unknown scenario accepted")
	}
}

func TestCleanPkg(t *testing.T) {
	for _, ok := range []string{"./cgroupmon", "./internal/vmtest/guest"} {
		if _, err := CleanPkg(ok); err != nil {
			t.Errorf("CleanPkg(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"cgroupmon", "./", "./../x", "./a/../b", "./...", "/abs", "./a/"} {
		if _, err := CleanPkg(bad); err == nil {
			t.Errorf("CleanPkg(%q) accepted", bad)
		}
	}
}

func TestParseManifest(t *testing.T) {
	m, err := ParseManifest(strings.NewReader("./a\t/tests/a.test\t/src/a\n\n"))
	if err != nil || len(m) != 1 || m[0] != (ManifestEntry{"./a", "/tests/a.test", "/src/a"}) {
		t.Fatalf("= %+v, %v", m, err)
	}
	if _, err := ParseManifest(strings.NewReader("./a\ttests/a.test\t/src/a\n")); err == nil {
		t.Fatal("relative binary path accepted")
	}
}

func TestSystemdScenario(t *testing.T) {
	s, err := LookupScenario(SystemdRootless)
	if err != nil {
		t.Fatal(err)
	}
	if !s.Systemd || s.Memory() < 1024 || s.BootTimeout < 5*time.Minute {
		t.Errorf("%s: systemd %v, %d MiB, boot timeout %s; want a systemd image, at least 1 GiB and 5 minutes", s.Name, s.Systemd, s.Memory(), s.BootTimeout)
	}
	if cl := Cmdline(s, time.Minute, "TestA|TestB"); !strings.Contains(cl, " "+ParamTestRun+"=TestA|TestB ") {
		t.Errorf("cmdline %q does not pass -test.run", cl)
	}
	cl := Cmdline(s, time.Minute, "")
	if strings.Contains(cl, ParamTestRun) {
		t.Errorf("cmdline %q passes an empty -test.run", cl)
	}
	for _, p := range []string{"rdinit=/lib/systemd/systemd", "systemd.unified_cgroup_hierarchy=1", ParamScenario + "=" + SystemdRootless} {
		if !strings.Contains(" "+cl+" ", " "+p+" ") {
			t.Errorf("cmdline %q lacks %s", cl, p)
		}
	}
	if strings.Contains(cl, "cgroup_no_v1") {
		t.Errorf("cmdline %q: systemd mounts the unified hierarchy itself", cl)
	}
	if m := Scenarios[0].Memory(); m != DefaultMemoryMiB {
		t.Errorf("%s: %d MiB, want the default %d", Scenarios[0].Name, m, DefaultMemoryMiB)
	}

	manifest := []ManifestEntry{{Pkg: "./a"}}
	if w := Want(s, manifest); len(w) != 2 || w[1].Pkg != CLIPkg {
		t.Errorf("systemd scenario wants %v, want ./a and %s", w, CLIPkg)
	}
	if w := Want(Scenarios[0], manifest); len(w) != 1 {
		t.Errorf("%s wants %v, want ./a only", Scenarios[0].Name, w)
	}
	// The CLI checks not reporting PASS fail the scenario.
	c, _ := ParseConsole(strings.NewReader(lines(PkgBegin("./a"), "--- PASS: TestA (0.00s)",
		PkgEnd{Pkg: "./a", Status: StatusPass, Counts: Counts{Passed: 1}, Exit: "ok"}.String(),
		Result{Scenario: s.Name, Status: StatusPass, Counts: Counts{Passed: 1}}.String())))
	o := Outcome{Scenario: s, Console: c, Want: Want(s, manifest)}
	if o.Passed() || !strings.Contains(o.failure(), CLIPkg) {
		t.Errorf("outcome without the CLI checks: passed %v, failure %q", o.Passed(), o.failure())
	}
}

func TestUnitFile(t *testing.T) {
	for _, want := range []string{
		"\nAfter=user@1000.service ", "\nWants=user@1000.service\n", "\nType=oneshot\n",
		"\nExecStart=" + GuestRunner + " " + UnitFlag + "\n", "\nTTYPath=/dev/ttyS0\n",
		"\nSuccessAction=poweroff\n", "\nFailureAction=poweroff\n",
	} {
		if !strings.Contains(unitFile, want) {
			t.Errorf("unit file lacks %q:\n%s", want, unitFile)
		}
	}
	if strings.Contains(unitFile, "multi-user.target") {
		t.Errorf("the unit is wanted by multi-user.target and must not be ordered after it (a cycle):\n%s", unitFile)
	}
}
