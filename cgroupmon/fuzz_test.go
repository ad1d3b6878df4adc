package cgroupmon

import (
	"bytes"
	"math"
	"strconv"
	"strings"
	"testing"

	"github.com/cgmon/cgmon/internal/parsetest"
)

// seedKernel adds every file under testdata/kernel whose name starts with
// one of prefixes (in any kernel's directory, edge/ and malformed/).
func seedKernel(f *testing.F, prefixes ...string) {
	f.Helper()
	parsetest.Seed(f, "kernel", prefixes...)
}

// checkFuzzErr enforces what every parser promises: errors wrap
// errMalformed, and input with a NUL byte is always an error.
func checkFuzzErr(t *testing.T, in []byte, err error) {
	t.Helper()
	parsetest.CheckFuzzErr(t, in, err, errMalformed)
}

func FuzzParseCPUStat(f *testing.F) {
	seedKernel(f, "cpu.stat")
	f.Fuzz(func(t *testing.T, in []byte) {
		s, err := parseCPUStat(in)
		checkFuzzErr(t, in, err)
		if err != nil {
			if s != (cpuStat{}) {
				t.Fatalf("error %v with result %+v", err, s)
			}
			return
		}
		// The reported usage must be the one written in the file.
		if !bytes.Contains(in, []byte("usage_usec "+strconv.FormatUint(s.UsageUsec, 10)+"\n")) {
			t.Fatalf("usage %d not in %q", s.UsageUsec, in)
		}
		if s.HasThrottling != bytes.Contains(in, []byte("nr_throttled ")) {
			t.Fatalf("HasThrottling=%v for %q", s.HasThrottling, in)
		}
	})
}

func FuzzParseMemoryEvents(f *testing.F) {
	seedKernel(f, "memory.events")
	f.Fuzz(func(t *testing.T, in []byte) {
		e, err := parseMemoryEvents(in)
		checkFuzzErr(t, in, err)
		if err == nil && !bytes.Contains(in, []byte("oom_kill "+strconv.FormatUint(e.OOMKill, 10)+"\n")) {
			t.Fatalf("oom_kill %d not in %q", e.OOMKill, in)
		}
	})
}

func FuzzParseMemoryStat(f *testing.F) {
	seedKernel(f, "memory.stat", "cgroup.stat", "pids.events")
	f.Fuzz(func(t *testing.T, in []byte) {
		m, err := parseMemoryStat(in)
		checkFuzzErr(t, in, err)
		if err == nil && len(m) != bytes.Count(in, []byte{'\n'}) {
			t.Fatalf("%d keys from %d lines", len(m), bytes.Count(in, []byte{'\n'}))
		}
	})
}

func FuzzParseIOStat(f *testing.F) {
	seedKernel(f, "io.stat")
	f.Fuzz(func(t *testing.T, in []byte) {
		s, err := parseIOStat(in)
		checkFuzzErr(t, in, err)
		if err == nil && len(in) == 0 && s != (ioStat{}) {
			t.Fatalf("empty file gave %+v", s)
		}
	})
}

func FuzzParseUint(f *testing.F) {
	seedKernel(f, "memory.current", "memory.peak", "pids.current", "pids.peak", "memory.max")
	f.Fuzz(func(t *testing.T, in []byte) {
		v, err := parseUint(in)
		checkFuzzErr(t, in, err)
		// Accepted input is exactly the number as the kernel prints it,
		// with or without one '\n'.
		if err == nil && string(bytes.TrimSuffix(in, []byte{'\n'})) != strconv.FormatUint(v, 10) {
			t.Fatalf("%q parsed as %d", in, v)
		}
	})
}

func FuzzParseLimit(f *testing.F) {
	seedKernel(f, "memory.max", "memory.high", "pids.max", "memory.swap.max")
	f.Fuzz(func(t *testing.T, in []byte) {
		v, unl, err := parseLimit(in)
		checkFuzzErr(t, in, err)
		if err == nil && unl != (string(bytes.TrimSuffix(in, []byte{'\n'})) == "max") {
			t.Fatalf("%q: unlimited=%v v=%d", in, unl, v)
		}
	})
}

func FuzzParseCPUMax(f *testing.F) {
	seedKernel(f, "cpu.max")
	f.Fuzz(func(t *testing.T, in []byte) {
		q, p, err := parseCPUMax(in)
		checkFuzzErr(t, in, err)
		if err == nil && (p == 0 || q < -1) {
			t.Fatalf("%q gave quota %d period %d", in, q, p)
		}
	})
}

func FuzzParseCgroupEvents(f *testing.F) {
	seedKernel(f, "cgroup.events")
	f.Fuzz(func(t *testing.T, in []byte) {
		e, err := parseCgroupEvents(in)
		checkFuzzErr(t, in, err)
		if err == nil && e.Populated != bytes.Contains(in, []byte("populated 1\n")) {
			t.Fatalf("%q gave %+v", in, e)
		}
	})
}

func FuzzParseNrDescendants(f *testing.F) {
	seedKernel(f, "cgroup.stat")
	f.Fuzz(func(t *testing.T, in []byte) {
		_, err := parseNrDescendants(in)
		checkFuzzErr(t, in, err)
	})
}

func FuzzParsePSI(f *testing.F) {
	seedKernel(f, "cpu.pressure", "memory.pressure", "io.pressure")
	f.Fuzz(func(t *testing.T, in []byte) {
		p, err := parsePSI(in)
		checkFuzzErr(t, in, err)
		if err != nil {
			return
		}
		for _, l := range []psiLine{p.Some, p.Full} {
			for _, a := range []float64{l.Avg10, l.Avg60, l.Avg300} {
				if math.IsNaN(a) || math.IsInf(a, 0) || a < 0 {
					t.Fatalf("%q gave average %v", in, a)
				}
			}
		}
		if p.HasFull != bytes.Contains(in, []byte("full ")) {
			t.Fatalf("%q: HasFull=%v", in, p.HasFull)
		}
	})
}

func FuzzParseControllers(f *testing.F) {
	seedKernel(f, "cgroup.controllers", "root-cgroup", "cgroup.subtree_control")
	f.Fuzz(func(t *testing.T, in []byte) {
		names, err := parseControllers(in)
		checkFuzzErr(t, in, err)
		if err == nil && strings.Join(names, " ") != string(bytes.TrimSuffix(in, []byte{'\n'})) {
			t.Fatalf("%q gave %q", in, names)
		}
	})
}

func FuzzParseProcCgroup(f *testing.F) {
	seedKernel(f, "proc-self-cgroup")
	f.Fuzz(func(t *testing.T, in []byte) {
		path, hasV2, _, err := parseProcCgroup(in)
		checkFuzzErr(t, in, err)
		if err == nil && hasV2 && !strings.HasPrefix(path, "/") {
			t.Fatalf("%q gave path %q", in, path)
		}
		if err == nil && !hasV2 && path != "" {
			t.Fatalf("%q gave path %q without v2", in, path)
		}
	})
}

func FuzzParseMountinfo(f *testing.F) {
	seedKernel(f, "proc-self-mountinfo", "mountinfo")
	f.Fuzz(func(t *testing.T, in []byte) {
		ms, err := parseMountinfo(in)
		checkFuzzErr(t, in, err)
		if err != nil {
			return
		}
		if len(ms) != bytes.Count(in, []byte{'\n'}) {
			t.Fatalf("%d mounts from %d lines", len(ms), bytes.Count(in, []byte{'\n'}))
		}
		for _, m := range ms {
			if m.MountPoint == "" || m.FSType == "" || m.Root == "" || m.SuperOptions == "" {
				t.Fatalf("%q gave an empty field: %+v", in, m)
			}
		}
	})
}

func FuzzParseCPUList(f *testing.F) {
	for _, s := range []string{"0\n", "0-1\n", "0-3,8,10-11\n", "", "3-1", "0,,1", "0-8191\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		n, err := parseCPUList("cpuset.cpus.effective", in)
		checkFuzzErr(t, in, err)
		if err == nil && (n < 0 || n > maxCPUs) {
			t.Fatalf("%d CPUs from %q", n, in)
		}
		if err != nil && n != 0 {
			t.Fatalf("error %v with %d CPUs", err, n)
		}
	})
}
