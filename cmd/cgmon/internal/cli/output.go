package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/cgmon/cgmon/metrics"
)

// reportFlags are the output flags that `cgmon run` and `cgmon watch`
// share: the report's format and file, and the timeline files.
type reportFlags struct {
	Format  string
	Output  string
	Append  string
	Samples string
	Plot    string
	// PromTextfile is a node_exporter textfile-collector file that the
	// execution is added to.
	PromTextfile string
}

// register adds the output flags to c.
func (f *reportFlags) register(c *command) {
	c.StringVar(&f.Format, "format", "human", "report `FORMAT`: human, json or markdown")
	c.StringVar(&f.Output, "output", "", "write the report to `FILE` (default: standard error)")
	c.StringVar(&f.Output, "o", "", "shorthand for --output")
	c.StringVar(&f.Append, "append", "", "append the report to `FILE`, e.g. \"$GITHUB_STEP_SUMMARY\"")
	c.StringVar(&f.PromTextfile, "prom-textfile", "", "add the execution to the node_exporter textfile-collector `FILE` (DIR/cgmon.prom)")
	c.StringVar(&f.Samples, "samples", "", "write the timeline to `FILE` (.csv or .ndjson)")
	c.StringVar(&f.Plot, "plot", "", "draw the timeline to `FILE` (.svg)")
}

// check validates the output flags of command cmd without creating files.
func (f *reportFlags) check(cmd string) error {
	if f.Format != "human" && f.Format != "json" && f.Format != "markdown" {
		return fail("%s: --format %q: want human, json or markdown", cmd, f.Format)
	}
	if f.Output != "" && f.Append != "" {
		return fail("%s: give --output or --append, not both", cmd)
	}
	if err := checkTextfilePath(f.PromTextfile); err != nil {
		return fail("%s: --prom-textfile: %v", cmd, err)
	}
	if f.Samples != "" {
		if _, err := samplesFormat(f.Samples); err != nil {
			return fail("%s: --samples: %v", cmd, err)
		}
	}
	if f.Plot != "" && strings.ToLower(filepath.Ext(f.Plot)) != ".svg" {
		return fail("%s: --plot %s: the plot is written as SVG; name the file *.svg", cmd, f.Plot)
	}
	return nil
}

// keepSamples reports whether the timeline is needed (the Markdown report
// draws it).
func (f *reportFlags) keepSamples() bool {
	return f.Samples != "" || f.Plot != "" || f.Format == "markdown"
}

// outputs are the files a command writes after the execution, opened
// before it (run) or as soon as the target is attached (watch), so that a
// bad path fails early.
type outputs struct {
	report, samples, plot *os.File
}

// openOutputs creates the files that f names.
func openOutputs(cmd string, f reportFlags) (*outputs, error) {
	out := &outputs{}
	var err error
	create := func(flagName, path string) *os.File {
		if path == "" || err != nil {
			return nil
		}
		var file *os.File
		if file, err = os.Create(path); err != nil {
			err = fail("%s: --%s: %v", cmd, flagName, err)
		}
		return file
	}
	out.report = create("output", f.Output)
	if f.Append != "" && err == nil {
		if out.report, err = os.OpenFile(f.Append, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644); err != nil {
			err = fail("%s: --append: %v", cmd, err)
		}
	}
	out.samples = create("samples", f.Samples)
	out.plot = create("plot", f.Plot)
	if err != nil {
		out.close()
		return nil, err
	}
	return out, nil
}

// close closes the files still open; it may be called more than once.
func (o *outputs) close() error {
	var errs []error
	for _, f := range []**os.File{&o.report, &o.samples, &o.plot} {
		if *f != nil {
			errs = append(errs, (*f).Close())
			*f = nil
		}
	}
	return errors.Join(errs...)
}

// write writes the report of ex (to --output, else standard error), the
// timeline and the plot, then closes the files; its error is a cgmon
// failure of command cmd.
func (o *outputs) write(cmd string, f reportFlags, ex *metrics.Execution, stdio IO) error {
	if err := o.writeAll(f, ex, stdio); err != nil {
		return fail("%s: %v", cmd, err)
	}
	return nil
}

// writeAll writes what write does and returns what could not be written.
func (o *outputs) writeAll(f reportFlags, ex *metrics.Execution, stdio IO) error {
	var errs []error
	rep := NewReport(ex)
	var w io.Writer = stdio.Err
	if o.report != nil {
		w = o.report
	}
	switch f.Format {
	case "json":
		errs = append(errs, rep.WriteJSON(w))
	case "markdown":
		errs = append(errs, rep.WriteMarkdown(w, ex.Samples))
	default:
		errs = append(errs, rep.WriteHuman(w))
	}
	if f.PromTextfile != "" {
		errs = append(errs, addExecutionToTextfile(f.PromTextfile, ex))
	}
	if o.samples != nil {
		format, _ := samplesFormat(f.Samples)
		errs = append(errs, writeSamples(o.samples, format, ex.Samples))
	}
	if o.plot != nil {
		errs = append(errs, writePlot(o.plot, ex))
	}
	errs = append(errs, o.close())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("writing the report: %w", err)
	}
	return nil
}

// signalCatcher turns SIGINT and SIGTERM to cgmon into a cancellation.
type signalCatcher struct {
	sigs chan os.Signal
	got  chan os.Signal
	done chan struct{}
	quit chan struct{}
}

// catchSignals calls cancel when cgmon receives SIGINT or SIGTERM, until
// stop is called.
func catchSignals(cancel func()) *signalCatcher {
	s := &signalCatcher{
		sigs: make(chan os.Signal, 1),
		got:  make(chan os.Signal, 1),
		done: make(chan struct{}),
		quit: make(chan struct{}),
	}
	signal.Notify(s.sigs, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		defer close(s.done)
		select {
		case sig := <-s.sigs:
			s.got <- sig
			cancel()
		case <-s.quit:
		}
	}()
	return s
}

// stop stops canceling and returns the signal received, if any. Later
// signals are still caught (and ignored) until release, so that the report
// is written whole.
func (s *signalCatcher) stop() os.Signal {
	close(s.quit)
	<-s.done
	select {
	case sig := <-s.got:
		return sig
	default:
		return nil
	}
}

// release restores the default handling of SIGINT and SIGTERM.
func (s *signalCatcher) release() { signal.Stop(s.sigs) }

// catchSIGPIPE makes a write to a pipe whose reader has gone fail with
// EPIPE instead of killing cgmon (Go kills a program that writes to a
// closed standard output or error unless it asks for SIGPIPE), so that
// the failure can be handled and told. Executions do not inherit it: a
// child starts with SIGPIPE at its default. It returns the function that
// restores the default.
func catchSIGPIPE() (release func()) {
	c := make(chan os.Signal, 1) // never read: only the delivery matters
	signal.Notify(c, syscall.SIGPIPE)
	return func() { signal.Stop(c) }
}
