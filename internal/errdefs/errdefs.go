// Package errdefs defines, once, the sentinel errors that the public
// packages cgroupmon and procfallback share and re-export, so that
// errors.Is works with either package's name for an error from the other
// (the way internal/oserror serves package os and syscall).
package errdefs

import "errors"

var (
	// ErrMalformed is wrapped by every error about a kernel file whose
	// content is not what the kernel writes.
	ErrMalformed = errors.New("malformed kernel file")
	// ErrUnavailable is wrapped when a kernel file or feature is missing
	// on this host.
	ErrUnavailable = errors.New("unavailable on this host")
	// ErrNotSupported is returned outside Linux.
	ErrNotSupported = errors.New("not supported on this operating system")
	// ErrClosed is returned by a Monitor, Tree or Reaper after Close.
	ErrClosed = errors.New("closed")
)
