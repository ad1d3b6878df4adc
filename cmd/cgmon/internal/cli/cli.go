// Package cli is cgmon's command-line layer: it parses flags into option
// structs, calls the cgroupmon library and renders reports to writers. The
// main package only hands it the process's arguments and standard streams.
package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"regexp"
	"strings"
	"time"
)

// Exit statuses of cgmon's own, as `timeout` and shells use them.
const (
	// ExitTimeout: cgmon's timeout ended the execution.
	ExitTimeout = 124
	// ExitCPUTimeout: the CPU-time limit ended the execution; 128 plus
	// SIGXCPU (24), what a shell shows for a program that RLIMIT_CPU
	// ended, and distinct from the wall-clock timeout's 124.
	ExitCPUTimeout = 152
	// ExitFailure: cgmon itself failed (bad flag or size, a limit whose
	// controller is unavailable, a cgroup it cannot create, a target to
	// watch that does not exist).
	ExitFailure = 125
	// ExitNotExecutable: the command exists but could not be executed.
	ExitNotExecutable = 126
	// ExitNotFound: the command was not found.
	ExitNotFound = 127
	// exitSignalBase is added to a signal number.
	exitSignalBase = 128
)

// IO is the process's standard streams. When they are *os.File values the
// executed command inherits them directly (nothing is copied).
type IO struct {
	In  io.Reader
	Out io.Writer
	Err io.Writer
}

// exitError is a failure with the exit status it maps to.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// fail returns a cgmon failure (exit status 125).
func fail(format string, args ...any) error {
	return &exitError{code: ExitFailure, err: fmt.Errorf(format, args...)}
}

const usage = `cgmon runs programs in their own cgroup and reports what they used.

Usage:
  cgmon run [flags] -- COMMAND [ARG...]   run one command and report
  cgmon batch [flags] FILE|-              run NDJSON executions, report each and a summary
  cgmon watch (--cgroup PATH | --pid PID | --container ID) [flags]
                                          watch a cgroup, process or container that already runs, and report
  cgmon doctor [--format json]            show what this host offers and what cgmon will do
  cgmon summary [flags] FILE...           merge result files and print the batch summary
  cgmon compare [flags] BASE HEAD         compare two result files; fail on a regression
  cgmon version                           show cgmon's version and the commit it was built from
  cgmon reap [--cgroup-root PATH]         remove the cgroups of cgmon processes that died
  cgmon help [COMMAND]                    show a command's flags

Run 'cgmon COMMAND -h' for a command's flags.
`

// Main runs cgmon with args (without the program name) and returns the
// process's exit status.
func Main(args []string, stdio IO) int {
	if len(args) == 0 {
		fmt.Fprint(stdio.Err, usage)
		return 2
	}
	var err error
	switch cmd, rest := args[0], args[1:]; cmd {
	case "run":
		var code int
		code, err = runMain(rest, stdio)
		if err == nil {
			return code
		}
	case "batch":
		var code int
		code, err = batchMain(rest, stdio)
		if err == nil {
			return code
		}
	case "watch":
		var code int
		code, err = watchMain(rest, stdio)
		if err == nil {
			return code
		}
	case "doctor":
		err = doctorMain(rest, stdio)
	case "summary":
		var code int
		code, err = summaryMain(rest, stdio)
		if err == nil {
			return code
		}
	case "compare":
		var code int
		code, err = compareMain(rest, stdio)
		if err == nil {
			return code
		}
	case "version", "-version", "--version":
		err = versionMain(rest, stdio)
	case "reap":
		err = reapMain(rest, stdio)
	case "help", "-h", "-help", "--help":
		if len(rest) == 1 && rest[0] != "help" {
			return Main([]string{rest[0], "-h"}, IO{In: stdio.In, Out: stdio.Out, Err: stdio.Out})
		}
		fmt.Fprint(stdio.Out, usage)
		return 0
	default:
		fmt.Fprintf(stdio.Err, "cgmon: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	if err == nil {
		return 0
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	code := ExitFailure
	var ee *exitError
	if errors.As(err, &ee) {
		code = ee.code
	}
	fmt.Fprintf(stdio.Err, "cgmon: %s\n", oneLine(err.Error()))
	return code
}

// oneLine folds a message onto one line and escapes the control
// characters left (an escape sequence, say, in text that came from the
// user), so that a diagnostic can neither start a line nor drive the
// terminal.
func oneLine(s string) string {
	return escapeControls(strings.Join(strings.Fields(s), " "))
}

// command is one subcommand's flag set with its synopsis.
type command struct {
	*flag.FlagSet
	synopsis string
}

// newCommand returns a flag set that reports errors instead of exiting.
func newCommand(name, synopsis string) *command {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are reported once, by Main
	fs.Usage = func() {}
	return &command{FlagSet: fs, synopsis: synopsis}
}

// parse parses args; -h prints the usage to help, and a flag error becomes a
// cgmon failure (125), as does a flag given an empty value: no flag of
// cgmon means something by "" (`--memory-max ""` is not "no limit").
func (c *command) parse(args []string, help io.Writer) error {
	err := c.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprintf(help, "Usage: %s\n\nFlags:\n", c.synopsis)
		c.printFlags(help)
		return err
	}
	if err != nil {
		return fail("%s: %s", c.Name(), c.flagError(err))
	}
	c.Visit(func(f *flag.Flag) {
		if g, ok := f.Value.(flag.Getter); ok && err == nil {
			if v, ok := g.Get().(string); ok && v == "" {
				err = fail("%s: %s \"\": empty; give a value, or leave the flag out for its default", c.Name(), flagName(f.Name))
			}
		}
	})
	return err
}

// Messages of the flag package, which names flags with one dash and
// says "parse error" for a value it cannot read.
var (
	flagUnknown = regexp.MustCompile(`^flag provided but not defined: -+(.*)$`)
	flagNoValue = regexp.MustCompile(`^flag needs an argument: -+(.*)$`)
	flagBad     = regexp.MustCompile(`^invalid (?:boolean )?value ("(?:[^"\\]|\\.)*") for (?:flag )?-+([^:]*): (.*)$`)
)

// flagError rewrites an error of the flag package the way cgmon names
// flags (--name) and says what a value must be.
func (c *command) flagError(err error) string {
	msg := err.Error()
	if m := flagUnknown.FindStringSubmatch(msg); m != nil {
		return fmt.Sprintf("unknown flag %s (cgmon %s -h lists them)", flagName(m[1]), c.Name())
	}
	if m := flagNoValue.FindStringSubmatch(msg); m != nil {
		return flagName(m[1]) + " needs a value"
	}
	if m := flagBad.FindStringSubmatch(msg); m != nil {
		why := m[3]
		if g, ok := c.getter(m[2]); ok && (why == "parse error" || why == "value out of range") {
			switch g.Get().(type) {
			case time.Duration:
				why = "not a duration such as 100ms, 5s or 1m30s"
			case int, int64, uint, uint64:
				why = "not a whole number in range"
			case bool:
				why = "not true or false"
			}
		}
		return fmt.Sprintf("%s %s: %s", flagName(m[2]), m[1], why)
	}
	return msg
}

// getter returns the value of flag name when it can say its type.
func (c *command) getter(name string) (flag.Getter, bool) {
	f := c.Lookup(name)
	if f == nil {
		return nil, false
	}
	g, ok := f.Value.(flag.Getter)
	return g, ok
}

// flagName returns a flag's name as the README and -h write it: "--name",
// "-o" for a one-letter one.
func flagName(name string) string {
	if len(name) == 1 {
		return "-" + name
	}
	return "--" + name
}

// shorthandFor begins the usage of a one-letter alias of a long flag.
const shorthandFor = "shorthand for --"

// printFlags writes c's flags as -h shows them: "--name VALUE" (a
// one-letter alias beside its long form), then the usage and the default
// where it is not the zero value and the usage does not say it.
func (c *command) printFlags(w io.Writer) {
	alias := map[string]string{}
	c.VisitAll(func(f *flag.Flag) {
		if long, ok := strings.CutPrefix(f.Usage, shorthandFor); ok {
			alias[long] = f.Name
		}
	})
	c.VisitAll(func(f *flag.Flag) {
		if strings.HasPrefix(f.Usage, shorthandFor) {
			return
		}
		value, usage := flag.UnquoteUsage(f)
		head := flagName(f.Name)
		if a, ok := alias[f.Name]; ok {
			head = flagName(a) + ", " + head
		}
		if value != "" {
			head += " " + value
		}
		switch f.DefValue {
		case "", "0", "0s", "false":
		default:
			if !strings.Contains(usage, "(default") {
				usage += " (default " + f.DefValue + ")"
			}
		}
		fmt.Fprintf(w, "  %s\n      %s\n", head, usage)
	})
}
