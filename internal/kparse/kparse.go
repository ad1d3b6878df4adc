// Package kparse holds what the kernel-file parsers of cgroupmon (cgroup
// v2 files) and procfallback (/proc files) share: the error they all wrap,
// its constructor, and the reading of a number as the kernel prints it.
package kparse

import (
	"errors"
	"fmt"
	"math"
)

// ErrMalformed is wrapped by every parse error: the file's content is not
// what the kernel writes.
var ErrMalformed = errors.New("malformed kernel file")

// Malformed returns an error wrapping ErrMalformed naming the file.
func Malformed(file, format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrMalformed, file, fmt.Sprintf(format, args...))
}

// Quote shows at most 40 bytes of b, quoted, for error messages.
func Quote(b []byte) string {
	if len(b) > 40 {
		return fmt.Sprintf("%q...", b[:40])
	}
	return fmt.Sprintf("%q", b)
}

// AtoU64 parses a decimal number as the kernel prints it ("%llu"):
// non-empty ASCII digits without a leading zero (but "0"); it rejects
// signs, spaces and overflow. ok is false on any of those.
func AtoU64(b []byte) (v uint64, ok bool) {
	if len(b) == 0 || (b[0] == '0' && len(b) > 1) {
		return 0, false
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if v > (math.MaxUint64-d)/10 {
			return 0, false
		}
		v = v*10 + d
	}
	return v, true
}
