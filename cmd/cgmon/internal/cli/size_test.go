package cli

import (
	"strings"
	"testing"
)

func TestParseSize(t *testing.T) {
	good := []struct {
		in   string
		want int64
	}{
		{"1", 1},
		{"1048576", 1 << 20},
		{"100b", 100},
		{"512K", 512 << 10},
		{"512k", 512 << 10},
		{"256M", 256 << 20},
		{"256MiB", 256 << 20},
		{"256mb", 256 << 20},
		{"1G", 1 << 30},
		{"1Gi", 1 << 30},
		{"1.5G", 3 << 29},
		{"2T", 2 << 40},
		{" 64M ", 64 << 20},
		{"8388607T", 8388607 << 40},
	}
	for _, c := range good {
		got, err := ParseSize(c.in)
		if err != nil || got != c.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", c.in, got, err, c.want)
		}
	}
	bad := []struct{ in, msg string }{
		{"", "empty"},
		{"-1", "negative"},
		{"-512M", "negative"},
		{"abc", "not a number"},
		{"12X", "not a number"},
		{"M", "no number"},
		{"1i", "not a number"},
		{"1..2M", "not a number"},
		{"0.3", "whole number"},
		{"9223372036854775808", "out of range"},
		{"8388608T", "larger than"},
		{"99999999999999999999G", "out of range"},
		{"1e9", "not a number"},
		{"1 M", "not a number"},
	}
	for _, c := range bad {
		got, err := ParseSize(c.in)
		if err == nil {
			t.Errorf("ParseSize(%q) = %d, want an error", c.in, got)
			continue
		}
		if !strings.Contains(err.Error(), c.msg) {
			t.Errorf("ParseSize(%q) error %q does not say %q", c.in, err, c.msg)
		}
	}
}

func TestFormatSize(t *testing.T) {
	for in, want := range map[uint64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 12894208: "12.3 MiB", 3 << 30: "3.0 GiB"} {
		if got := FormatSize(in); got != want {
			t.Errorf("FormatSize(%d) = %q, want %q", in, got, want)
		}
	}
}
