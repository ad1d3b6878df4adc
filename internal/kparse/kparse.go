// Package kparse holds what the kernel-file parsers of cgroupmon (cgroup
// v2 files) and internal/proctree (/proc files) share: the error they all
// wrap, its constructor, the reading of a number as the kernel prints it,
// and the loop over a keyed file's lines.
package kparse

import (
	"bytes"
	"fmt"
	"math"

	"github.com/cgmon/cgmon/internal/errdefs"
)

// ErrMalformed is wrapped by every parse error: the file's content is not
// what the kernel writes. It is errdefs.ErrMalformed, which cgroupmon and
// procfallback export.
var ErrMalformed = errdefs.ErrMalformed

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

// CheckLines rejects NUL bytes and a non-empty b whose last line lacks its
// '\n' (a truncated read): the kernel's seq_file output always ends lines.
func CheckLines(file string, b []byte) error {
	if bytes.IndexByte(b, 0) >= 0 {
		return Malformed(file, "NUL byte")
	}
	if len(b) > 0 && b[len(b)-1] != '\n' {
		return Malformed(file, "last line not terminated (truncated read?)")
	}
	return nil
}

// NextLine splits b at its first '\n'; line excludes the '\n'. Callers
// have run CheckLines, so every line is terminated.
func NextLine(b []byte) (line, rest []byte) {
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		return b, nil
	}
	return b[:i], b[i+1:]
}

// SplitKV splits a "key<sep>value" line at its first sep; key and value
// must be non-empty and the value must hold no space.
func SplitKV(file string, line []byte, sep string) (key, val []byte, err error) {
	i := bytes.Index(line, []byte(sep))
	if i <= 0 || i+len(sep) == len(line) || bytes.IndexByte(line[i+len(sep):], ' ') >= 0 {
		return nil, nil, Malformed(file, "line %s is not \"key%svalue\"", Quote(line), sep)
	}
	return line[:i], line[i+len(sep):], nil
}

// KeyedUints parses a flat keyed file of "key<sep>value" lines whose
// values are unsigned integers (cpu.stat and memory.events with sep " ",
// /proc/PID/io with ": "): the value of keys[i] goes to *dst[i], and bit i
// of seen says that it was present. Unknown keys are skipped but must
// have the line's shape; a repeated known key is an error. It does not
// allocate (dst does not escape).
func KeyedUints(file string, b []byte, sep string, keys []string, dst []*uint64) (seen int, err error) {
	if err := CheckLines(file, b); err != nil {
		return 0, err
	}
	for len(b) > 0 {
		var line []byte
		line, b = NextLine(b)
		key, val, err := SplitKV(file, line, sep)
		if err != nil {
			return 0, err
		}
		i := 0
		for i < len(keys) && keys[i] != string(key) {
			i++
		}
		if i == len(keys) {
			continue
		}
		if seen&(1<<i) != 0 {
			return 0, Malformed(file, "key %s repeated", key)
		}
		seen |= 1 << i
		v, ok := AtoU64(val)
		if !ok {
			return 0, Malformed(file, "%s: value %s is not an unsigned 64-bit integer", key, Quote(val))
		}
		*dst[i] = v
	}
	return seen, nil
}
