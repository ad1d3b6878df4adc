//go:build linux

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/cgmon/cgmon/internal/vmtest"
	"github.com/cgmon/cgmon/internal/workload"
	"github.com/cgmon/cgmon/metrics"
)

// The user's runtime directory and bus, as pam_systemd and
// dbus-user-session make them for a lingering user.
var (
	runtimeDir = "/run/user/" + strconv.Itoa(vmtest.RunnerUID)
	userBus    = runtimeDir + "/bus"
	runnerHome = "/home/" + vmtest.RunnerUser
)

// unitMain is cmd/vminit as the systemd scenario's oneshot unit (run by
// systemd as root, not as PID 1): it waits for the user's manager, runs
// every test binary and the CLI checks as the unprivileged user through
// runuser, prints the result line and returns the unit's exit status.
// The unit's SuccessAction and FailureAction power the machine off.
func unitMain() int {
	res := vmtest.Result{Scenario: "unknown", Status: vmtest.StatusFail}
	defer func() {
		if p := recover(); p != nil {
			res.Status, res.Reason = vmtest.StatusFail, fmt.Sprintf("vminit %s panic: %v", vmtest.UnitFlag, p)
		}
		fmt.Println(res.String())
	}()
	res = runUnit()
	if res.Status != vmtest.StatusPass {
		diagnostics()
		return 1
	}
	return 0
}

// runnerEnv is the environment the tests and the CLI get as the user.
func runnerEnv(scenario string) []string {
	return []string{
		"XDG_RUNTIME_DIR=" + runtimeDir,
		"DBUS_SESSION_BUS_ADDRESS=unix:path=" + userBus,
		vmtest.EnvVM + "=1",
		vmtest.EnvScenario + "=" + scenario,
		workload.DirEnv + "=" + vmtest.GuestWorkload,
		"HOME=" + runnerHome,
		"TMPDIR=/tmp",
		"PATH=/usr/local/bin:/usr/bin:/bin:/tests",
	}
}

// asRunner is the command prefix that runs a program as the user. runuser
// opens no logind session: the program stays in this unit's cgroup, which
// is not delegated, exactly as a CI job's process on a runner host.
func asRunner(scenario string) []string {
	return append([]string{"runuser", "-u", vmtest.RunnerUser, "--", "env"}, runnerEnv(scenario)...)
}

func runUnit() vmtest.Result {
	res := vmtest.Result{Scenario: "unknown", Status: vmtest.StatusFail}
	params, sc, testTimeout, err := bootParams(&res)
	if err != nil {
		return fail(res, "%v", err)
	}
	fmt.Printf("vminit: scenario %s on kernel %s, unit %s\n", sc.Name, kernelRelease(), vmtest.UnitName)
	if err := waitUserManager(sc.Name, 3*time.Minute); err != nil {
		return fail(res, "user manager of %s: %v", vmtest.RunnerUser, err)
	}

	f, err := os.Open(vmtest.GuestManifest)
	if err != nil {
		return fail(res, "%v", err)
	}
	entries, err := vmtest.ParseManifest(f)
	f.Close()
	if err != nil {
		return fail(res, "%v", err)
	}
	run := runSpec{wrap: asRunner(sc.Name), testArgs: testArgs(params), env: []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}}
	res.Status = vmtest.StatusPass
	for _, e := range entries {
		end := runTest(e, run, testTimeout)
		res.Add(end.Counts)
		if end.Status != vmtest.StatusPass {
			res.Status = vmtest.StatusFail
		}
	}
	end := cliChecks(sc.Name)
	res.Add(end.Counts)
	if end.Status != vmtest.StatusPass {
		res.Status = vmtest.StatusFail
	}
	if res.Status == vmtest.StatusPass && res.Passed == 0 {
		return fail(res, "no test passed")
	}
	return res
}

// waitUserManager waits until the user's bus exists and the user's
// manager has finished starting up.
func waitUserManager(scenario string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	start := time.Now()
	for {
		if _, err := os.Stat(userBus); err == nil {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not appear within %s (is user@%d.service running? does %s linger?)", userBus, timeout, vmtest.RunnerUID, vmtest.RunnerUser)
		}
		time.Sleep(200 * time.Millisecond)
	}
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	out, _, code, err := runAs(ctx, scenario, "systemctl", "--user", "is-system-running", "--wait")
	state := strings.TrimSpace(out)
	fmt.Printf("vminit: user manager of %s is %q after %.1fs\n", vmtest.RunnerUser, state, time.Since(start).Seconds())
	if err != nil {
		return err
	}
	// "degraded" means a user unit failed; the tests say whether it matters.
	if code != 0 && state != "degraded" {
		return fmt.Errorf("systemctl --user is-system-running: %q, exit status %d", state, code)
	}
	return nil
}

// runAs runs argv as the user with the tests' environment and returns its
// standard output and error and exit status; err is set only when it could
// not be run or did not end.
func runAs(ctx context.Context, scenario string, argv ...string) (stdout, stderr string, code int, err error) {
	full := append(asRunner(scenario), argv...)
	cmd := exec.CommandContext(ctx, full[0], full[1:]...)
	cmd.Dir = runnerHome
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	var exit *exec.ExitError
	if errors.As(err, &exit) && ctx.Err() == nil {
		return o.String(), e.String(), exit.ExitCode(), nil
	}
	if err != nil {
		return o.String(), e.String(), -1, fmt.Errorf("%s: %w (stderr: %s)", strings.Join(argv, " "), err, e.String())
	}
	return o.String(), e.String(), 0, nil
}

// cliCheck is one check of the cgmon CLI as the user, reported as a test.
type cliCheck struct {
	name string
	run  func(t *cliT) error
}

// cliT carries what a check needs: the scenario and a directory of the
// user's for files.
type cliT struct {
	scenario string
	dir      string
	log      func(format string, args ...any)
}

func (t *cliT) cgmon(args ...string) (stdout, stderr string, code int, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	argv := append([]string{vmtest.GuestCLI}, args...)
	t.log("$ %s", strings.Join(argv, " "))
	stdout, stderr, code, err = runAs(ctx, t.scenario, argv...)
	t.log("exit status %d; stderr: %s", code, strings.TrimSpace(stderr))
	return stdout, stderr, code, err
}

// report is the part of cgmon's JSON report the checks read.
type report struct {
	Status          metrics.Status    `json:"status"`
	Reason          string            `json:"reason"`
	ExitCode        int               `json:"exit_code"`
	OOMKilled       bool              `json:"oom_killed"`
	MemoryPeakBytes *uint64           `json:"memory_peak_bytes"`
	Backend         metrics.Backend   `json:"backend"`
	Sources         map[string]string `json:"sources"`
	Unavailable     map[string]string `json:"unavailable"`
}

func (t *cliT) readReport(name string) (report, error) {
	var r report
	b, err := os.ReadFile(filepath.Join(t.dir, name))
	if err != nil {
		return r, err
	}
	t.log("report: %s", bytes.TrimSpace(b))
	return r, json.Unmarshal(b, &r)
}

const mib = 1 << 20

var cliChecksList = []cliCheck{
	{"TestCLIMemoryPeakFromScope", func(t *cliT) error {
		_, _, code, err := t.cgmon("run", "--format", "json", "-o", filepath.Join(t.dir, "peak.json"), "--",
			vmtest.GuestWorkload+"/alloc", "64", "200")
		if err != nil {
			return err
		}
		if code != 0 {
			return fmt.Errorf("exit status %d, want 0", code)
		}
		r, err := t.readReport("peak.json")
		if err != nil {
			return err
		}
		if r.Status != metrics.StatusSuccess || r.Backend != metrics.BackendCgroup2 {
			return fmt.Errorf("status %q backend %q (%s), want success on cgroup2", r.Status, r.Backend, r.Reason)
		}
		if r.MemoryPeakBytes == nil {
			return fmt.Errorf("memory_peak_bytes is null: %s", r.Unavailable["memory_peak_bytes"])
		}
		if src := r.Sources["memory_peak_bytes"]; src != string(metrics.SourceCgroupMemoryPeak) {
			return fmt.Errorf("memory_peak_bytes from %q, want %s", src, metrics.SourceCgroupMemoryPeak)
		}
		if d := math.Abs(float64(*r.MemoryPeakBytes)-64*mib) / (64 * mib); d > 0.02 {
			return fmt.Errorf("memory_peak_bytes %d is %.1f%% off 64 MiB, want within 2%%", *r.MemoryPeakBytes, 100*d)
		}
		return nil
	}},
	{"TestCLIMemoryMaxOOM", func(t *cliT) error {
		_, _, code, err := t.cgmon("run", "--format", "json", "-o", filepath.Join(t.dir, "oom.json"), "--memory-max", "32M", "--",
			vmtest.GuestWorkload+"/alloc", "96", "100")
		if err != nil {
			return err
		}
		r, err := t.readReport("oom.json")
		if err != nil {
			return err
		}
		if code != 137 || r.Status != metrics.StatusOOM || !r.OOMKilled {
			return fmt.Errorf("exit status %d, status %q, oom_killed %v; want 137, oom, true", code, r.Status, r.OOMKilled)
		}
		return nil
	}},
	{"TestCLIIOLimitRefused", func(t *cliT) error {
		limits := filepath.Join(t.dir, "io.json")
		if err := os.WriteFile(limits, []byte(`{"blockIO": {"weight": 500}}`), 0o644); err != nil {
			return err
		}
		marker := filepath.Join(t.dir, "ran")
		_, stderr, code, err := t.cgmon("run", "--limits", limits, "--", "/bin/touch", marker)
		if err != nil {
			return err
		}
		if code != 125 {
			return fmt.Errorf("exit status %d, want 125 (the io limit refused)", code)
		}
		if !regexp.MustCompile(`\bio\b`).MatchString(stderr) {
			return fmt.Errorf("the reason does not name io: %q", stderr)
		}
		if _, err := os.Lstat(marker); err == nil {
			return fmt.Errorf("%s exists: the command ran although its limit was refused", marker)
		}
		return nil
	}},
	{"TestCLINothingLeft", func(t *cliT) error {
		// The scope of the last cgmon may take the user manager a moment
		// to collect after cgmon exits.
		deadline := time.Now().Add(10 * time.Second)
		for {
			err := nothingLeft(t.scenario)
			if err == nil || time.Now().After(deadline) {
				return err
			}
			time.Sleep(500 * time.Millisecond)
		}
	}},
}

// nothingLeft checks, as the user, that the user manager lists no cgmon-*
// unit and that no cgmon-* cgroup exists under user.slice.
func nothingLeft(scenario string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	units, stderr, code, err := runAs(ctx, scenario, "systemctl", "--user", "list-units", "--all", "--plain", "--no-legend", "cgmon-*")
	if err == nil && code != 0 {
		err = fmt.Errorf("systemctl --user list-units: exit status %d: %s", code, stderr)
	}
	if err != nil {
		return err
	}
	cgroups, stderr, code, err := runAs(ctx, scenario, "find", "/sys/fs/cgroup/user.slice", "-name", "cgmon-*")
	if err == nil && code != 0 {
		err = fmt.Errorf("find: exit status %d: %s", code, stderr)
	}
	if err != nil {
		return err
	}
	if u, c := strings.TrimSpace(units), strings.TrimSpace(cgroups); u != "" || c != "" {
		return fmt.Errorf("left after the runs: units %q, cgroups %q", u, c)
	}
	return nil
}

// cliChecks runs cliChecksList as the package vmtest.CLIPkg, printing
// `go test -v` style lines so that the host counts them as tests.
func cliChecks(scenario string) vmtest.PkgEnd {
	fmt.Println(vmtest.PkgBegin(vmtest.CLIPkg))
	end := vmtest.PkgEnd{Pkg: vmtest.CLIPkg, Status: vmtest.StatusFail}
	defer func() { fmt.Println(end.String()) }()
	dir, err := os.MkdirTemp(runnerHome, "cli-")
	if err == nil {
		err = os.Chown(dir, vmtest.RunnerUID, vmtest.RunnerUID)
	}
	if err != nil {
		end.Exit = err.Error()
		return end
	}
	defer os.RemoveAll(dir)
	for _, c := range cliChecksList {
		fmt.Printf("=== RUN   %s\n", c.name)
		t := &cliT{scenario: scenario, dir: dir, log: func(format string, args ...any) {
			fmt.Printf("    %s\n", strings.ReplaceAll(fmt.Sprintf(format, args...), "\n", "\n    "))
		}}
		t0 := time.Now()
		err := c.run(t)
		verdict := "PASS"
		if err != nil {
			t.log("%v", err)
			verdict = "FAIL"
		}
		line := fmt.Sprintf("--- %s: %s (%.2fs)", verdict, c.name, time.Since(t0).Seconds())
		end.CountLine(line)
		fmt.Println(line)
	}
	if end.Failed > 0 {
		end.Exit = "failed checks"
	} else {
		end.Exit, end.Status = "ok", vmtest.StatusPass
	}
	return end
}

// diagnostics prints, as the never-passing package vmtest.DiagPkg, what
// tells why cgmon could not get or use its scope: the user's units and
// journal, and the system journal.
func diagnostics() {
	fmt.Println(vmtest.PkgBegin(vmtest.DiagPkg))
	scenario := vmtest.SystemdRootless
	for _, c := range []struct {
		asUser bool
		argv   []string
	}{
		{true, []string{"systemctl", "--user", "list-units", "--all", "--no-pager"}},
		{true, []string{"journalctl", "--user", "--no-pager", "-n", "200"}},
		{false, []string{"systemctl", "status", "--no-pager", "user@" + strconv.Itoa(vmtest.RunnerUID) + ".service"}},
		{false, []string{"journalctl", "--no-pager", "-b", "-n", "300", "-o", "short-monotonic"}},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		var out, errOut string
		var code int
		var err error
		who := "root"
		if c.asUser {
			who = vmtest.RunnerUser
			out, errOut, code, err = runAs(ctx, scenario, c.argv...)
		} else {
			cmd := exec.CommandContext(ctx, c.argv[0], c.argv[1:]...)
			var o, e bytes.Buffer
			cmd.Stdout, cmd.Stderr = &o, &e
			err = cmd.Run()
			out, errOut, code = o.String(), e.String(), -1
			if cmd.ProcessState != nil {
				code = cmd.ProcessState.ExitCode()
			}
		}
		cancel()
		fmt.Printf("--- as %s: %s (exit status %d, %v)\n%s%s\n", who, strings.Join(c.argv, " "), code, err, out, errOut)
	}
	fmt.Println(vmtest.PkgEnd{Pkg: vmtest.DiagPkg, Status: vmtest.StatusFail, Exit: "diagnostics after a failure"}.String())
}
