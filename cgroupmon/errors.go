package cgroupmon

import (
	"errors"

	"github.com/cgmon/cgmon/internal/errdefs"
)

// Errors a caller can test for with errors.Is.
var (
	// ErrInvalidSpec is returned for a malformed Spec, Target or Options
	// (a bad id, an empty command, a negative timeout, ...); nothing is run
	// or created.
	ErrInvalidSpec = errors.New("invalid spec")
	// ErrControllerUnavailable is returned when a limit needs a cgroup
	// controller that the execution root does not offer; nothing is run.
	ErrControllerUnavailable = errors.New("cgroup controller unavailable")
	// ErrLimitUnsupported is returned when cgmon cannot apply a field of
	// Spec.Limits on this host (cgroup v2 has no file for it, the kernel
	// lacks the file, a unified key is not a controller's setting, a device
	// rule needs privileges this process lacks, the device a limit names
	// does not exist, or the kernel refused the value); the error names the
	// field, and nothing is run or left behind.
	ErrLimitUnsupported = errors.New("cgmon cannot apply this limit")
	// ErrUserUnsupported is returned when Spec.User asks for a user this
	// process cannot switch to: it lacks CAP_SETUID and CAP_SETGID (cgmon
	// is not root, e.g. rootless), or the uid or a gid is not mapped in its
	// user namespace; nothing is run or created.
	ErrUserUnsupported = errors.New("cannot switch to another user here")
	// ErrNotDelegated is returned when the cgroup root is not writable by
	// this process.
	ErrNotDelegated = errors.New("cgroup root not delegated")
	// ErrStart is returned when the command could not be executed; the
	// record then has status failed_to_start, and the cause (for example
	// exec.ErrNotFound or fs.ErrPermission) is wrapped too.
	ErrStart = errors.New("command could not be started")

	// ErrMalformed is wrapped when a kernel file's content is not what the
	// kernel writes. It is the same value as procfallback.ErrMalformed.
	ErrMalformed = errdefs.ErrMalformed
	// ErrUnavailable is wrapped when a kernel file or feature is missing on
	// this host. It is the same value as procfallback.ErrUnavailable.
	ErrUnavailable = errdefs.ErrUnavailable
	// ErrNotSupported is returned outside Linux: cgmon measures executions
	// on Linux only.
	ErrNotSupported = errdefs.ErrNotSupported
	// ErrClosed is returned by a Monitor's methods after Close.
	ErrClosed = errdefs.ErrClosed
)

// limitError is a field of Spec.Limits that cgmon refuses: the field as a
// user names it (e.g. "memory.limit", `unified["cpu.max"]`), why, and its
// category (ErrInvalidSpec, ErrControllerUnavailable, ErrLimitUnsupported);
// cause, when set, is the error of the kernel or the file.
type limitError struct {
	kind  error
	field string
	why   string
	cause error
}

func (e *limitError) Error() string {
	return e.kind.Error() + ": " + e.field + ": " + e.why
}

func (e *limitError) Unwrap() []error {
	if e.cause == nil {
		return []error{e.kind}
	}
	return []error{e.kind, e.cause}
}

// notDelegatedError is ErrNotDelegated with the probe's reason as its
// whole message: the reason already says which root and why, and the
// sentinel's own words would repeat it.
type notDelegatedError struct{ reason string }

func (e *notDelegatedError) Error() string        { return e.reason }
func (e *notDelegatedError) Is(target error) bool { return target == ErrNotDelegated }

// errCgmon marks a start failure that is cgmon's, not the command's.
var errCgmon = errors.New("cgmon")
