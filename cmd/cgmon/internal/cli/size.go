package cli

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// ParseSize parses a size in bytes: a plain number of bytes ("1048576") or a
// number with a binary suffix K, M, G or T (optionally followed by "i", "B"
// or "iB", case-insensitive), so "512K" is 524288 bytes and "1G" is 2^30
// bytes. Fractions such as "1.5G" are accepted when they come to a whole
// number of bytes. Negative, empty, zero-length, malformed and overflowing
// values are errors.
func ParseSize(s string) (int64, error) {
	orig := s
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, fmt.Errorf("size %q: empty", orig)
	}
	if s[0] == '-' {
		return 0, fmt.Errorf("size %q: negative", orig)
	}
	lower := strings.ToLower(s)
	lower = strings.TrimSuffix(lower, "b")
	hadI := strings.HasSuffix(lower, "i")
	lower = strings.TrimSuffix(lower, "i")
	if lower == "" {
		return 0, fmt.Errorf("size %q: no number (want e.g. 512K, 256M, 1G or a number of bytes)", orig)
	}
	shift := 0
	switch lower[len(lower)-1] {
	case 'k':
		shift = 10
	case 'm':
		shift = 20
	case 'g':
		shift = 30
	case 't':
		shift = 40
	}
	if hadI && shift == 0 {
		return 0, fmt.Errorf("size %q: not a number with an optional K, M, G or T suffix", orig)
	}
	num := lower
	if shift > 0 {
		num = lower[:len(lower)-1]
	}
	if num == "" {
		return 0, fmt.Errorf("size %q: no number (want e.g. 512K, 256M, 1G or a number of bytes)", orig)
	}
	for _, c := range num {
		if (c < '0' || c > '9') && c != '.' {
			return 0, fmt.Errorf("size %q: not a number with an optional K, M, G or T suffix", orig)
		}
	}
	if !strings.Contains(num, ".") {
		n, err := strconv.ParseUint(num, 10, 63)
		if err != nil {
			return 0, fmt.Errorf("size %q: out of range", orig)
		}
		if shift > 0 && n > uint64(math.MaxInt64)>>shift {
			return 0, fmt.Errorf("size %q: larger than %d bytes", orig, int64(math.MaxInt64))
		}
		return int64(n << shift), nil
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return 0, fmt.Errorf("size %q: not a number with an optional K, M, G or T suffix", orig)
	}
	v := f * float64(uint64(1)<<shift)
	if v >= math.MaxInt64 {
		return 0, fmt.Errorf("size %q: larger than %d bytes", orig, int64(math.MaxInt64))
	}
	if v != math.Trunc(v) {
		return 0, fmt.Errorf("size %q: not a whole number of bytes", orig)
	}
	return int64(v), nil
}

// FormatSize renders bytes with a binary unit, e.g. "12.3 MiB".
func FormatSize(b uint64) string {
	const unit = 1024
	if b < unit {
		return fmt.Sprintf("%d B", b)
	}
	div, exp := uint64(unit), 0
	for n := b / unit; n >= unit && exp < 4; n /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(b)/float64(div), "KMGTP"[exp])
}
