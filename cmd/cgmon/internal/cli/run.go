package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/cgmon/cgmon/cgroupmon"
	"github.com/cgmon/cgmon/metrics"
)

// runOptions are the flags of `cgmon run`.
type runOptions struct {
	ID         string
	Language   string
	CodeLength int
	Interval   time.Duration
	Timeout    time.Duration
	Limits     limitFlags
	Backend    string
	CgroupRoot string
	WaitAll    bool
	Format     string
	Output     string
	Samples    string
	Plot       string
	Command    []string
}

const runSynopsis = "cgmon run [flags] -- COMMAND [ARG...]"

// parseRunFlags fills runOptions from args and checks them; nothing is run
// or created.
func parseRunFlags(args []string, help io.Writer) (*runOptions, error) {
	o := &runOptions{}
	c := newCommand("run", runSynopsis)
	c.StringVar(&o.ID, "id", "", "execution `ID` (default: generated)")
	c.StringVar(&o.Language, "language", "unknown", "language `label` of the program")
	c.IntVar(&o.CodeLength, "code-length", 0, "length of the program's source, in `bytes`")
	c.DurationVar(&o.Interval, "interval", defaultInterval, "sampling `interval`")
	c.DurationVar(&o.Timeout, "timeout", 0, "wall-clock limit; 0 means none (exit status 124 when it ends the command)")
	c.StringVar(&o.Limits.MemoryMax, "memory-max", "", "memory limit (memory.max), e.g. 512K, 256M, 1G or `bytes`")
	c.Func("cpus", "CPU limit in `CPUs` (cpu.max quota per 100 ms period), e.g. 0.5", func(s string) error {
		_, err := fmt.Sscan(s, &o.Limits.CPUs)
		if err != nil {
			return fmt.Errorf("not a number: %q", s)
		}
		o.Limits.cpusSet = true
		return nil
	})
	c.Func("pids-max", "limit on the number of processes (pids.max)", func(s string) error {
		_, err := fmt.Sscan(s, &o.Limits.PidsMax)
		if err != nil || strings.TrimSpace(s) != fmt.Sprint(o.Limits.PidsMax) {
			return fmt.Errorf("not an integer: %q", s)
		}
		o.Limits.pidsSet = true
		return nil
	})
	c.StringVar(&o.Limits.File, "limits", "", "OCI LinuxResources JSON `file`; the limit flags override it")
	c.StringVar(&o.Backend, "backend", string(cgroupmon.BackendAuto), "backend: auto, cgroup2 or procfs")
	c.StringVar(&o.CgroupRoot, "cgroup-root", "", "cgroup under which executions' cgroups are made (default: as `cgmon doctor` shows)")
	c.BoolVar(&o.WaitAll, "wait-all", false, "wait for every process of the command to exit instead of killing what is left")
	c.StringVar(&o.Format, "format", "human", "report format: human or json")
	c.StringVar(&o.Output, "output", "", "write the report to `FILE` (default: standard error)")
	c.StringVar(&o.Output, "o", "", "shorthand for --output")
	c.StringVar(&o.Samples, "samples", "", "write the timeline to `FILE` (.csv or .ndjson)")
	c.StringVar(&o.Plot, "plot", "", "draw the timeline to `FILE` (.svg)")
	if err := c.parse(args, help); err != nil {
		return nil, err
	}
	o.Command = c.Args()
	if len(o.Command) == 0 || o.Command[0] == "" {
		return nil, fail("run: no command given (%s)", runSynopsis)
	}
	if o.Format != "human" && o.Format != "json" {
		return nil, fail("run: --format %q: want human or json", o.Format)
	}
	switch cgroupmon.BackendChoice(o.Backend) {
	case cgroupmon.BackendAuto, cgroupmon.BackendCgroup2, cgroupmon.BackendProcfs:
	default:
		return nil, fail("run: --backend %q: want auto, cgroup2 or procfs", o.Backend)
	}
	if o.Interval <= 0 {
		return nil, fail("run: --interval %v: must be positive", o.Interval)
	}
	if o.Timeout < 0 {
		return nil, fail("run: --timeout %v: must not be negative", o.Timeout)
	}
	if o.CodeLength < 0 {
		return nil, fail("run: --code-length %d: must not be negative", o.CodeLength)
	}
	if o.Samples != "" {
		if _, err := samplesFormat(o.Samples); err != nil {
			return nil, fail("run: --samples: %v", err)
		}
	}
	if o.Plot != "" && strings.ToLower(filepath.Ext(o.Plot)) != ".svg" {
		return nil, fail("run: --plot %s: the plot is written as SVG; name the file *.svg", o.Plot)
	}
	return o, nil
}

// outputs are the files a run writes after the execution, opened before it
// so that a bad path fails before anything runs.
type outputs struct {
	report, samples, plot *os.File
}

func (o *outputs) close() error {
	var errs []error
	for _, f := range []*os.File{o.report, o.samples, o.plot} {
		if f != nil {
			errs = append(errs, f.Close())
		}
	}
	return errors.Join(errs...)
}

func create(flagName, path string) (*os.File, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fail("run: --%s: %v", flagName, err)
	}
	return f, nil
}

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
		Subreaper:  true,
	})
	if err != nil {
		return 0, fail("run: %v", err)
	}
	defer mon.Close()
	if err := mon.CheckLimits(limits); err != nil {
		return 0, fail("run: %v", err)
	}

	var out outputs
	defer out.close()
	if o.Output != "" {
		if out.report, err = create("output", o.Output); err != nil {
			return 0, err
		}
	}
	if o.Samples != "" {
		if out.samples, err = create("samples", o.Samples); err != nil {
			return 0, err
		}
	}
	if o.Plot != "" {
		if out.plot, err = create("plot", o.Plot); err != nil {
			return 0, err
		}
	}

	// SIGINT and SIGTERM to cgmon cancel the execution: it is killed,
	// reported, and cgmon exits 130 or 143.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	got := make(chan os.Signal, 1)
	stop := make(chan struct{})
	watcherDone := make(chan struct{})
	go func() {
		defer close(watcherDone)
		select {
		case s := <-sigs:
			got <- s
			cancel()
		case <-stop:
		}
	}()

	ex, runErr := mon.Run(ctx, cgroupmon.Spec{
		ID:          o.ID,
		Language:    o.Language,
		CodeLength:  o.CodeLength,
		Command:     o.Command,
		Stdin:       stdio.In,
		Stdout:      stdio.Out,
		Stderr:      stdio.Err,
		Limits:      limits,
		Timeout:     o.Timeout,
		WaitAll:     o.WaitAll,
		KeepSamples: o.Samples != "" || o.Plot != "",
	})
	close(stop)
	<-watcherDone
	var sig os.Signal
	select {
	case sig = <-got:
	default:
	}
	if runErr != nil && !errors.Is(runErr, cgroupmon.ErrStart) {
		return 0, fail("run: %v", runErr)
	}

	var werrs []error
	rep := NewReport(&ex)
	var w io.Writer = stdio.Err
	if out.report != nil {
		w = out.report
	}
	if o.Format == "json" {
		werrs = append(werrs, rep.WriteJSON(w))
	} else {
		werrs = append(werrs, rep.WriteHuman(w))
	}
	if out.samples != nil {
		f, _ := samplesFormat(o.Samples)
		werrs = append(werrs, writeSamples(out.samples, f, ex.Samples))
	}
	if out.plot != nil {
		werrs = append(werrs, writePlot(out.plot, &ex))
	}
	werrs = append(werrs, out.close())
	out = outputs{}
	if err := errors.Join(werrs...); err != nil {
		return 0, fail("run: writing the report: %v", err)
	}
	return exitStatus(&ex, runErr, sig), nil
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
