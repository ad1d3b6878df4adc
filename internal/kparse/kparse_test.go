package kparse

import (
	"errors"
	"strings"
	"testing"
)

func TestAtoU64(t *testing.T) {
	for _, c := range []struct {
		in   string
		want uint64
		ok   bool
	}{
		{"0", 0, true},
		{"42", 42, true},
		{"18446744073709551615", 18446744073709551615, true},
		{"18446744073709551616", 0, false}, // overflow
		{"", 0, false},
		{"007", 0, false}, // the kernel prints no leading zero
		{"-1", 0, false},
		{"+1", 0, false},
		{"1 ", 0, false},
		{"1x", 0, false},
	} {
		got, ok := AtoU64([]byte(c.in))
		if got != c.want || ok != c.ok {
			t.Errorf("AtoU64(%q) = %d, %v; want %d, %v", c.in, got, ok, c.want, c.ok)
		}
	}
}

func TestMalformed(t *testing.T) {
	err := Malformed("cpu.stat", "line %s", Quote([]byte(strings.Repeat("x", 50))))
	if !errors.Is(err, ErrMalformed) {
		t.Fatalf("%v does not wrap ErrMalformed", err)
	}
	if want := `malformed kernel file: cpu.stat: line "` + strings.Repeat("x", 40) + `"...`; err.Error() != want {
		t.Errorf("got %q, want %q", err, want)
	}
}
