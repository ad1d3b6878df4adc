package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/cgmon/cgmon/cgroupmon"
	"github.com/cgmon/cgmon/metrics"
)

// defaultInterval is the sampling interval when --interval is not given
// (cgroupmon's default).
const defaultInterval = 100 * time.Millisecond

// Usage strings of the flags that several commands share.
const (
	intervalUsage   = "sampling interval, a `DURATION` of at least 1ms"
	backendUsage    = "`BACKEND` to run executions with: auto, cgroup2 or procfs"
	cgroupRootUsage = "make executions' cgroups under the cgroup at `PATH` (default: the root cgmon doctor shows)"
)

// checkInterval refuses an --interval of command cmd that is below the
// library's floor: a shorter tick would keep a CPU busy sampling.
func checkInterval(cmd string, d time.Duration) error {
	if d < cgroupmon.MinInterval {
		return fail("%s: --interval %v: must be at least %v (a shorter tick keeps a CPU busy sampling)", cmd, d, cgroupmon.MinInterval)
	}
	return nil
}

// runOptions are the flags of `cgmon run`.
type runOptions struct {
	ID         string
	Language   string
	CodeLength int
	Interval   time.Duration
	Timeout    time.Duration
	CPUTime    time.Duration
	Limits     limitFlags
	Rlimits    []specs.POSIXRlimit
	Backend    string
	CgroupRoot string
	MoveOthers bool
	WaitAll    bool
	User       *specs.User // --user; nil without it
	reportFlags
	Command []string
}

const runSynopsis = "cgmon run [flags] -- COMMAND [ARG...]"

// parseRunFlags fills runOptions from args and checks them; nothing is run
// or created.
func parseRunFlags(args []string, help io.Writer) (*runOptions, error) {
	o := &runOptions{}
	c := newCommand("run", runSynopsis)
	c.StringVar(&o.ID, "id", "", "execution `ID` (default: one unique across processes, in time order, e.g. exec-20261202T140921.290761Z-5f3a9c1e-1)")
	c.StringVar(&o.Language, "language", "unknown", "language `LABEL` of the program")
	c.IntVar(&o.CodeLength, "code-length", 0, "length of the program's source, `N` bytes")
	c.DurationVar(&o.Interval, "interval", defaultInterval, intervalUsage)
	c.DurationVar(&o.Timeout, "timeout", 0, "wall-clock limit, a `DURATION` such as 5s or 1m30s; 0 means none (exit status 124 when it ends the command)")
	c.DurationVar(&o.CPUTime, "cpu-time-limit", 0, "CPU-time limit of the whole execution (every process and thread), a `DURATION` such as 1.5s or 100ms; 0 means none (status cpu_timeout, exit status 152 when it ends the command)")
	c.StringVar(&o.Limits.MemoryMax, "memory-max", "", "memory limit (memory.max), a `SIZE` such as 512K, 256M or 1G (binary multiples), or a number of bytes")
	c.Func("cpus", "CPU limit, `N` CPUs (cpu.max quota per 100 ms period), e.g. 0.5", func(s string) error {
		_, err := fmt.Sscan(s, &o.Limits.CPUs)
		if err != nil {
			return errors.New("not a number of CPUs, such as 0.5")
		}
		o.Limits.cpusSet = true
		return nil
	})
	c.Func("pids-max", "limit of `N` processes (pids.max), at least 1", func(s string) error {
		_, err := fmt.Sscan(s, &o.Limits.PidsMax)
		if err != nil || strings.TrimSpace(s) != fmt.Sprint(o.Limits.PidsMax) {
			return errors.New("not a whole number")
		}
		o.Limits.pidsSet = true
		return nil
	})
	c.Func("rlimit", "resource `LIMIT` of the command (setrlimit), NAME=SOFT[:HARD]: NAME as RLIMIT_NOFILE or nofile, each value a number in the limit's unit or unlimited, HARD defaults to SOFT; repeatable", func(v string) error {
		r, err := parseRlimitFlag(v)
		if err != nil {
			return err
		}
		o.Rlimits = append(o.Rlimits, r)
		return nil
	})
	c.StringVar(&o.Limits.File, "limits", "", "OCI LinuxResources JSON `FILE`; the limit flags override it")
	c.StringVar(&o.Backend, "backend", string(cgroupmon.BackendAuto), backendUsage)
	c.StringVar(&o.CgroupRoot, "cgroup-root", "", cgroupRootUsage)
	c.BoolVar(&o.MoveOthers, "move-others", false, "inside a container whose cgroup-namespace root holds its processes: move them into <mount>/init first, as docker-in-docker does, so that executions get controllers (see cgmon doctor)")
	c.BoolVar(&o.WaitAll, "wait-all", false, "wait for every process of the command to exit instead of killing what is left")
	c.Func("user", "run the command as `USER`, or USER:GROUP (numbers or names; default group: the user's primary one), without supplementary groups and with no_new_privs; needs root", func(v string) error {
		u, err := parseUser(v)
		o.User = u
		return err
	})
	o.reportFlags.register(c)
	if err := c.parse(args, help); err != nil {
		return nil, err
	}
	o.Command = c.Args()
	if len(o.Command) == 0 || o.Command[0] == "" {
		return nil, fail("run: no command given (%s)", runSynopsis)
	}
	if err := o.reportFlags.check("run"); err != nil {
		return nil, err
	}
	switch cgroupmon.BackendChoice(o.Backend) {
	case cgroupmon.BackendAuto, cgroupmon.BackendCgroup2, cgroupmon.BackendProcfs:
	default:
		return nil, fail("run: --backend %q: want auto, cgroup2 or procfs", o.Backend)
	}
	if err := checkInterval("run", o.Interval); err != nil {
		return nil, err
	}
	if o.Timeout < 0 {
		return nil, fail("run: --timeout %v: must not be negative", o.Timeout)
	}
	if o.CPUTime < 0 {
		return nil, fail("run: --cpu-time-limit %v: must not be negative", o.CPUTime)
	}
	if o.CodeLength < 0 {
		return nil, fail("run: --code-length %d: must not be negative", o.CodeLength)
	}
	return o, nil
}

// runMain runs `cgmon run`: the command in its own cgroup, then the report.
func runMain(args []string, stdio IO) (int, error) {
	o, err := parseRunFlags(args, stdio.Out)
	if err != nil {
		return 0, err
	}
	limits, err := o.Limits.build()
	if err != nil {
		return 0, fail("run: %v", err)
	}

	mon, err := cgroupmon.New(cgroupmon.Options{
		Interval:   o.Interval,
		Backend:    cgroupmon.BackendChoice(o.Backend),
		CgroupRoot: o.CgroupRoot,
		MoveOthers: o.MoveOthers,
		Subreaper:  true,
	})
	if err != nil {
		return 0, fail("run: %v", err)
	}
	defer mon.Close()
	reportReaped(stdio.Err, mon)
	if err := mon.CheckLimits(limits); err != nil {
		return 0, fail("run: %v", err)
	}
	if err := mon.CheckRlimits(o.Rlimits); err != nil {
		return 0, fail("run: --rlimit: %v", err)
	}

	out, err := openOutputs("run", o.reportFlags)
	if err != nil {
		return 0, err
	}
	defer out.close()

	// SIGINT and SIGTERM to cgmon cancel the execution: it is killed,
	// reported, and cgmon exits 130 or 143.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	signals := catchSignals(cancel)
	defer signals.release()
	// A report to a closed pipe must fail with EPIPE, not kill cgmon.
	defer catchSIGPIPE()()

	ex, runErr := mon.Run(ctx, cgroupmon.Spec{
		ID:           o.ID,
		Language:     o.Language,
		CodeLength:   o.CodeLength,
		Command:      o.Command,
		Stdin:        stdio.In,
		Stdout:       stdio.Out,
		Stderr:       stdio.Err,
		Limits:       limits,
		Rlimits:      o.Rlimits,
		Timeout:      o.Timeout,
		CPUTimeLimit: o.CPUTime,
		WaitAll:      o.WaitAll,
		User:         o.User,
		KeepSamples:  o.keepSamples(),
	})
	sig := signals.stop()
	if runErr != nil && ex.StartedAt.IsZero() {
		return 0, fail("run: %v", runErr) // nothing ran
	}
	return endRun(mon, out, o, &ex, runErr, sig, stdio), nil
}

// endRun finishes a run whose command has ended: it removes the
// execution's cgroup (Monitor.Close) before anything is written, so that
// a report that cannot be written leaves nothing behind, then writes the
// report. It returns the command's exit status whatever happens to the
// report; what went wrong is said on standard error, one line each.
func endRun(mon interface{ Close() error }, out *outputs, o *runOptions, ex *metrics.Execution, runErr error, sig os.Signal, stdio IO) int {
	code := exitStatus(ex, runErr, sig)
	warn := func(format string, args ...any) {
		fmt.Fprintf(stdio.Err, "cgmon: run: %s\n", oneLine(fmt.Sprintf(format, args...)))
	}
	if runErr != nil && !errors.Is(runErr, cgroupmon.ErrStart) {
		warn("measuring %s: %v", ex.ID, runErr)
	}
	if err := mon.Close(); err != nil {
		warn("%v", err)
	}
	if err := out.writeAll(o.reportFlags, ex, stdio); err != nil {
		warn("%v; the report is lost, and the exit status (%d) is the command's own", err, code)
	}
	return code
}

// exitStatus maps an execution to cgmon's exit status, as `time`,
// `timeout` and shells do. sig is the signal cgmon received, if any.
func exitStatus(ex *metrics.Execution, runErr error, sig os.Signal) int {
	if ex.Status == metrics.StatusFailedToStart || errors.Is(runErr, cgroupmon.ErrStart) {
		if errors.Is(runErr, exec.ErrNotFound) || errors.Is(runErr, fs.ErrNotExist) {
			return ExitNotFound
		}
		return ExitNotExecutable
	}
	switch ex.Status {
	case metrics.StatusSuccess:
		return 0
	case metrics.StatusTimeout:
		return ExitTimeout
	case metrics.StatusCPUTimeout:
		return ExitCPUTimeout
	case metrics.StatusCanceled:
		if s, ok := sig.(syscall.Signal); ok {
			return exitSignalBase + int(s)
		}
	}
	if ex.Signal > 0 {
		return exitSignalBase + ex.Signal
	}
	if ex.ExitCode >= 0 {
		return ex.ExitCode
	}
	switch ex.Status {
	case metrics.StatusOOM:
		return exitSignalBase + int(syscall.SIGKILL)
	case metrics.StatusCanceled:
		return exitSignalBase + int(syscall.SIGINT)
	}
	return ExitFailure
}
