package vmtest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Config is what one run of the VM stage does.
type Config struct {
	ModRoot     string        // the module's root directory
	CacheDir    string        // kernels, build output and console logs
	Scenarios   []Scenario    // what to boot
	Pkgs        []string      // packages whose tests run in each guest ("./cgroupmon")
	BootTimeout time.Duration // per boot, from qemu start to power-off
	TestTimeout time.Duration // -test.timeout of each test binary
	TestRun     string        // -test.run of each test binary; "" runs all
	Parallel    int           // boots at a time
	Go          string        // the go command
	Out         io.Writer     // the verdicts
	Log         io.Writer     // progress and provisioning output
}

// Outcome is the verdict on one scenario.
type Outcome struct {
	Scenario Scenario
	Console  Console
	BootErr  error // qemu failed to run or timed out
	Duration time.Duration
	LogPath  string
	Want     []ManifestEntry
	// Allowed are the tests that may skip in this scenario, with why
	// (AllowedSkips[Scenario.Name]); any other skip fails it.
	Allowed map[string]string
	// Full says that every test of the default packages was selected (no
	// -run, -pkgs holds DefaultPkgs), so that an allowed skip of a test
	// that did not run is worth a warning.
	Full bool
}

// Passed reports whether the scenario passed: a PASS result line for this
// scenario, every package finished and passed, at least one test ran, and
// every skip is allowed in the scenario (o.Allowed).
func (o Outcome) Passed() bool { return o.failure() == "" }

// Skips returns the skip accounting of the scenario against o.Allowed.
func (o Outcome) Skips() SkipVerdict {
	var results []TestResult
	for _, p := range o.Console.Pkgs {
		results = append(results, ParseTests(p.Pkg, p.Lines)...)
	}
	return CheckSkips(o.Scenario.Name, o.Allowed, results, o.Full)
}

func (o Outcome) failure() string {
	if f := o.runFailure(); f != "" {
		return f
	}
	switch u := o.Skips().Unexpected; len(u) {
	case 0:
		return ""
	case 1:
		return u[0].Describe(o.Scenario.Name)
	default:
		return fmt.Sprintf("%d unexpected skips, first %s", len(u), u[0].Describe(o.Scenario.Name))
	}
}

// runFailure says why the scenario failed before skips are counted.
func (o Outcome) runFailure() string {
	r := o.Console.Result
	switch {
	case r == nil && o.BootErr != nil:
		return "no result line: " + o.BootErr.Error()
	case r == nil:
		return "no result line: the guest powered off or crashed without one"
	case r.Scenario != o.Scenario.Name:
		return fmt.Sprintf("result line is for scenario %q", r.Scenario)
	case r.Status != StatusPass:
		if r.Reason != "" {
			return r.Reason
		}
		return fmt.Sprintf("%d passed, %d failed", r.Passed, r.Failed)
	case r.Passed == 0:
		return "no test passed"
	}
	done := map[string]bool{}
	for _, p := range o.Console.Pkgs {
		if p.End != nil && p.End.Status == StatusPass {
			done[p.Pkg] = true
		}
	}
	for _, w := range o.Want {
		if !done[w.Pkg] {
			return "package " + w.Pkg + " did not report PASS"
		}
	}
	return ""
}

// Report writes the verdict: `vmtest NAME: PASS (N tests)`, or FAIL with
// each unexpected skip, or with the failing packages' output (or the
// console's tail when there is none); then a warning per allowed skip that
// no longer applies.
func (o Outcome) Report(w io.Writer) {
	f := o.failure()
	if f == "" {
		fmt.Fprintf(w, "vmtest %s: PASS (%d tests, %d skipped as allowed) in %.1fs\n",
			o.Scenario.Name, o.Console.Result.Passed, o.Console.Result.Skipped, o.Duration.Seconds())
	} else {
		fmt.Fprintf(w, "vmtest %s: FAIL: %s (after %.1fs; console log %s)\n", o.Scenario.Name, f, o.Duration.Seconds(), o.LogPath)
	}
	sv := o.Skips()
	if o.runFailure() == "" {
		if len(sv.Unexpected) > 1 {
			for _, u := range sv.Unexpected {
				fmt.Fprintf(w, "vmtest %s: %s\n", o.Scenario.Name, u.Describe(o.Scenario.Name))
			}
		}
		for _, warn := range sv.Warnings {
			fmt.Fprintf(w, "vmtest %s: warning: %s\n", o.Scenario.Name, warn)
		}
		return
	}
	// The run failed for another reason; its unexpected skips would fail it
	// too, so they are named after its output.
	defer func() {
		for _, u := range sv.Unexpected {
			fmt.Fprintf(w, "vmtest %s: %s\n", o.Scenario.Name, u.Describe(o.Scenario.Name))
		}
	}()
	shown := false
	for _, p := range o.Console.Pkgs {
		if p.End != nil && p.End.Status == StatusPass {
			continue
		}
		status := "did not finish"
		if p.End != nil {
			status = p.End.Exit
		}
		fmt.Fprintf(w, "--- %s (%s) ---\n", p.Pkg, status)
		for _, l := range p.Lines {
			fmt.Fprintln(w, l)
		}
		shown = true
	}
	if !shown {
		lines := o.Console.Lines
		if len(lines) > 60 {
			lines = lines[len(lines)-60:]
		}
		fmt.Fprintf(w, "--- last %d console lines ---\n", len(lines))
		for _, l := range lines {
			fmt.Fprintln(w, l)
		}
	}
}

// Want returns the packages that must report PASS in scenario s: every
// test binary of the manifest, and in the systemd scenario also the CLI
// checks (CLIPkg).
func Want(s Scenario, manifest []ManifestEntry) []ManifestEntry {
	want := append([]ManifestEntry(nil), manifest...)
	if s.Systemd {
		want = append(want, ManifestEntry{Pkg: CLIPkg})
	}
	return want
}

// Cmdline returns the kernel command line for s; testRun, when not empty,
// is passed to each test binary as -test.run (it must hold no space).
func Cmdline(s Scenario, testTimeout time.Duration, testRun string) string {
	args := []string{"console=ttyS0", "quiet", "panic=-1", "random.trust_cpu=on",
		ParamScenario + "=" + s.Name, ParamTestTimeout + "=" + testTimeout.String()}
	if testRun != "" {
		args = append(args, ParamTestRun+"="+testRun)
	}
	return strings.Join(append(args, s.Cmdline...), " ")
}

// Boot runs one scenario under qemu's TCG emulation with s.Memory() MiB,
// streaming the serial console into logPath and parsing it. qemu is killed
// at timeout.
func Boot(ctx context.Context, qemu, kernel, initrd string, s Scenario, timeout time.Duration, cmdline, logPath string) (Console, error) {
	var c Console
	logf, err := os.Create(logPath)
	if err != nil {
		return c, err
	}
	defer logf.Close()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, qemu,
		"-accel", "tcg,thread=multi", "-cpu", "max", "-m", strconv.Itoa(s.Memory()), "-smp", "2",
		"-nographic", "-no-reboot", "-nic", "none",
		"-kernel", kernel, "-initrd", initrd, "-append", cmdline)
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.StdoutPipe()
	if err != nil {
		return c, err
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		return c, fmt.Errorf("start qemu: %w", err)
	}
	sc := bufio.NewScanner(io.TeeReader(out, logf))
	sc.Buffer(make([]byte, 64*1024), 4*1024*1024)
	for sc.Scan() {
		c.Feed(sc.Text())
	}
	c.Finish()
	err = cmd.Wait()
	if ctx.Err() == context.DeadlineExceeded {
		return c, fmt.Errorf("boot timed out after %s", timeout)
	}
	if err != nil {
		return c, fmt.Errorf("qemu: %w", err)
	}
	return c, nil
}

// Run provisions, builds and boots every scenario, writes the verdicts to
// cfg.Out and returns the outcomes. An error wrapping ErrCannotProvision
// means the stage could not run at all on this host.
func Run(ctx context.Context, cfg Config) ([]Outcome, error) {
	start := time.Now()
	p := &Provisioner{CacheDir: cfg.CacheDir, AptEtc: "/etc/apt", OSRelease: "/etc/os-release", Log: cfg.Log}
	if err := os.MkdirAll(cfg.CacheDir, 0o755); err != nil {
		return nil, err
	}
	qemu, err := p.QEMU(ctx)
	if err != nil {
		return nil, err
	}
	kernels := map[Kernel]string{}
	var initramfsScenarios, systemdSuites []string
	for _, s := range cfg.Scenarios {
		if s.Systemd {
			if !contains(systemdSuites, s.Kernel.Suite) {
				systemdSuites = append(systemdSuites, s.Kernel.Suite)
			}
		} else {
			initramfsScenarios = append(initramfsScenarios, s.Name)
		}
		if _, ok := kernels[s.Kernel]; ok {
			continue
		}
		k, err := p.Kernel(ctx, s.Kernel)
		if err != nil {
			return nil, err
		}
		kernels[s.Kernel] = k
	}
	if len(systemdSuites) > 1 {
		return nil, fmt.Errorf("systemd scenarios of more than one suite (%v): one systemd image per run", systemdSuites)
	}
	var busybox, rootfs string
	if len(initramfsScenarios) > 0 {
		if busybox, err = p.Busybox(ctx, Kernel61.Suite); err != nil {
			return nil, err
		}
	}
	if len(systemdSuites) > 0 {
		if rootfs, err = p.Rootfs(ctx, systemdSuites[0], RootfsPackages); err != nil {
			return nil, err
		}
		if os.Geteuid() != 0 {
			return nil, fmt.Errorf("%w: the systemd image is made with chroot and useradd in a copy of the root filesystem: not root", ErrCannotProvision)
		}
	}
	if err := p.Compiler(ctx); err != nil {
		return nil, err
	}
	provisioned := time.Now()
	b := &Builder{ModRoot: cfg.ModRoot, OutDir: filepath.Join(cfg.CacheDir, "build"), Go: cfg.Go, Log: cfg.Log, Busybox: busybox}
	art, err := b.Compile(ctx, cfg.Pkgs, rootfs != "")
	if err != nil {
		return nil, fmt.Errorf("build: %w", err)
	}
	if len(art.Tests) == 0 {
		return nil, errors.New("build: no package has tests to run")
	}
	var initrd, systemdImage string
	var manifest []ManifestEntry
	if busybox != "" {
		if initrd, manifest, err = b.PackInitramfs(art); err != nil {
			return nil, fmt.Errorf("build: %w", err)
		}
	}
	if rootfs != "" {
		if systemdImage, manifest, err = b.PackSystemd(ctx, art, rootfs); err != nil {
			return nil, fmt.Errorf("build: %w", err)
		}
	}
	built := time.Now()
	logDir := filepath.Join(cfg.CacheDir, "logs")
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return nil, err
	}
	par := max(cfg.Parallel, 1)
	outcomes := make([]Outcome, len(cfg.Scenarios))
	sem := make(chan struct{}, par)
	var wg sync.WaitGroup
	var mu sync.Mutex
	next := 0 // verdicts are printed in scenario order as soon as possible
	full := cfg.TestRun == "" && containsAll(cfg.Pkgs, DefaultPkgs)
	done := make([]bool, len(outcomes))
	for i, s := range cfg.Scenarios {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			t0 := time.Now()
			o := Outcome{Scenario: s, LogPath: filepath.Join(logDir, s.Name+".log"), Want: Want(s, manifest),
				Allowed: AllowedSkips[s.Name], Full: full}
			image := initrd
			if s.Systemd {
				image = systemdImage
			}
			o.Console, o.BootErr = Boot(ctx, qemu, kernels[s.Kernel], image, s, max(cfg.BootTimeout, s.BootTimeout),
				Cmdline(s, cfg.TestTimeout, cfg.TestRun), o.LogPath)
			o.Duration = time.Since(t0)
			mu.Lock()
			defer mu.Unlock()
			outcomes[i], done[i] = o, true
			for next < len(outcomes) && done[next] {
				outcomes[next].Report(cfg.Out)
				next++
			}
		}()
	}
	wg.Wait()
	failed := 0
	for _, o := range outcomes {
		if !o.Passed() {
			failed++
		}
	}
	fmt.Fprintf(cfg.Out, "vmtest: %d/%d scenarios passed; stage %.1fs (provision %.1fs, build %.1fs, boots %.1fs, %d at a time)\n",
		len(outcomes)-failed, len(outcomes), time.Since(start).Seconds(), provisioned.Sub(start).Seconds(),
		built.Sub(provisioned).Seconds(), time.Since(built).Seconds(), par)
	return outcomes, nil
}
