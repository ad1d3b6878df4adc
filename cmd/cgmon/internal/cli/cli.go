// Package cli is cgmon's command-line layer: it parses flags into option
// structs, calls the cgroupmon library and renders reports to writers. The
// main package only hands it the process's arguments and standard streams.
package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// Exit statuses of cgmon's own, as `timeout` and shells use them.
const (
	// ExitTimeout: cgmon's timeout ended the execution.
	ExitTimeout = 124
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

// oneLine folds an error message onto one line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
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
// cgmon failure (125).
func (c *command) parse(args []string, help io.Writer) error {
	err := c.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprintf(help, "Usage: %s\n\nFlags:\n", c.synopsis)
		c.SetOutput(help)
		c.PrintDefaults()
		return err
	}
	if err != nil {
		return fail("%s: %v", c.Name(), err)
	}
	return nil
}
