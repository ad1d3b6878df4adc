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

// errCgmon marks a start failure that is cgmon's, not the command's.
var errCgmon = errors.New("cgmon")
