package cli

import (
	"strconv"
	"strings"
	"testing"
)

// FuzzParseSize: a size is either accepted as a non-negative number of
// bytes that a plain decimal of the same value gives back, or refused with
// an error that quotes it.
func FuzzParseSize(f *testing.F) {
	for _, s := range []string{
		"1", "512K", "1.5G", "-1", "", "9223372036854775807", "1TiB", " 64M ", "0", "0.5K", "1.", ".5M",
		"8388607T", "8388608T", "1e9", "M", "iB", "1i", "1..2M", "１G", "1\x00M", "99999999999999999999G",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := ParseSize(s)
		if err != nil {
			if v != 0 {
				t.Fatalf("ParseSize(%q) = %d with error %v", s, v, err)
			}
			if msg := err.Error(); !strings.Contains(msg, "size") || !strings.Contains(msg, strconv.Quote(s)) {
				t.Fatalf("ParseSize(%q): error %q does not quote the size", s, msg)
			}
			return
		}
		if v < 0 || strings.TrimSpace(s) == "" {
			t.Fatalf("ParseSize(%q) = %d without error", s, v)
		}
		if back, err := ParseSize(strconv.FormatInt(v, 10)); err != nil || back != v {
			t.Fatalf("ParseSize(%q) = %d, but ParseSize(%d) = %d, %v", s, v, v, back, err)
		}
		if n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64); err == nil && n != v {
			t.Fatalf("ParseSize(%q) = %d, want the plain number %d", s, v, n)
		}
	})
}
