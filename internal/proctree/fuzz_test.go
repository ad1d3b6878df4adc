package proctree

import (
	"bytes"
	"strconv"
	"strings"
	"testing"

	"github.com/cgmon/cgmon/internal/kparse"
	"github.com/cgmon/cgmon/internal/parsetest"
)

// seedProc adds every file under testdata/proc whose name starts with one
// of prefixes.
func seedProc(f *testing.F, prefixes ...string) {
	f.Helper()
	parsetest.Seed(f, "proc", prefixes...)
}

// checkFuzzErr enforces what every parser promises: errors wrap
// kparse.ErrMalformed, and input with a NUL byte is always an error.
func checkFuzzErr(t *testing.T, in []byte, err error) {
	t.Helper()
	parsetest.CheckFuzzErr(t, in, err, kparse.ErrMalformed)
}

func FuzzParseProcStat(f *testing.F) {
	seedProc(f, "stat")
	f.Fuzz(func(t *testing.T, in []byte) {
		s, err := ParseStat(in)
		checkFuzzErr(t, in, err)
		comm, cerr := statComm(in)
		if err != nil {
			if s != (Stat{}) {
				t.Fatalf("error %v with result %+v", err, s)
			}
			return
		}
		if cerr != nil {
			t.Fatalf("stat parsed but comm did not: %v", cerr)
		}
		// The line must start with the pid and hold the comm in parentheses.
		if !bytes.HasPrefix(in, []byte(strconv.Itoa(s.PID)+" ("+comm+") ")) {
			t.Fatalf("%q gave pid %d comm %q", in, s.PID, comm)
		}
		// -1 is what a 6.1 kernel shows for the pgrp of a dying process
		// group; the parser takes it, and nothing below it.
		if s.PID <= 0 || s.PPID < -1 || s.PGRP < -1 || s.Session < -1 {
			t.Fatalf("%q gave ids %+v", in, s)
		}
	})
}

func FuzzParseProcStatus(f *testing.F) {
	seedProc(f, "status")
	f.Fuzz(func(t *testing.T, in []byte) {
		m, err := ParseStatusMem(in)
		checkFuzzErr(t, in, err)
		if err != nil {
			return
		}
		if m.HasVmRSS != bytes.Contains(in, []byte("\nVmRSS:")) && !bytes.HasPrefix(in, []byte("VmRSS:")) {
			t.Fatalf("%q: HasVmRSS=%v", in, m.HasVmRSS)
		}
		if m.VmRSS%1024 != 0 || m.VmHWM%1024 != 0 {
			t.Fatalf("%q gave %+v, not whole kB", in, m)
		}
		if (!m.HasVmRSS && m.VmRSS != 0) || (!m.HasVmHWM && m.VmHWM != 0) {
			t.Fatalf("%q gave a value without its flag: %+v", in, m)
		}
	})
}

func FuzzParseProcIO(f *testing.F) {
	seedProc(f, "io")
	f.Fuzz(func(t *testing.T, in []byte) {
		s, err := parseProcIO(in)
		checkFuzzErr(t, in, err)
		if err == nil && !bytes.Contains(in, []byte("rchar: "+strconv.FormatUint(s.RChar, 10)+"\n")) {
			t.Fatalf("rchar %d not in %q", s.RChar, in)
		}
	})
}

func FuzzParseChildren(f *testing.F) {
	seedProc(f, "children", "parent-children")
	f.Fuzz(func(t *testing.T, in []byte) {
		dst := []int{-1}
		got, err := parseChildren(in, dst)
		checkFuzzErr(t, in, err)
		if len(got) == 0 || got[0] != -1 {
			t.Fatalf("dst prefix lost: %v", got)
		}
		if err != nil {
			if len(got) != 1 {
				t.Fatalf("error %v but pids appended: %v", err, got)
			}
			return
		}
		// Printing the pids back as the kernel does gives the input.
		var sb strings.Builder
		for _, p := range got[1:] {
			if p <= 0 {
				t.Fatalf("%q gave pid %d", in, p)
			}
			sb.WriteString(strconv.Itoa(p))
			sb.WriteByte(' ')
		}
		if sb.String() != string(bytes.TrimSuffix(in, []byte{'\n'})) {
			t.Fatalf("%q gave %v", in, got[1:])
		}
	})
}

func FuzzCgroupV2Path(f *testing.F) {
	parsetest.Seed(f, "kernel", "proc-self-cgroup")
	f.Add([]byte("0::/cgmon/x-1-2\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		p, ok := CgroupV2Path(in)
		if ok && (!strings.HasPrefix(p, "/") || strings.ContainsAny(p, "\n\x00")) {
			t.Fatalf("%q gave %q", in, p)
		}
		if !ok && p != "" {
			t.Fatalf("%q gave %q without ok", in, p)
		}
	})
}
