//go:build !linux

package cli

import "io"

// isTerminal reports false: cgmon draws progress bars on Linux only.
func isTerminal(io.Writer) bool { return false }
