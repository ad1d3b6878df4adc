package cgroupmon

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/cgmon/cgmon/internal/parsetest"
)

// kernelFixture reads testdata/kernel/<name> at the repository root.
func kernelFixture(t testing.TB, name string) []byte {
	t.Helper()
	return parsetest.Fixture(t, "kernel", name)
}

// checkErr fails unless err matches wantErr; a wanted error must wrap
// errMalformed.
func checkErr(t *testing.T, err error, wantErr bool) {
	t.Helper()
	parsetest.CheckErr(t, err, wantErr, errMalformed)
}

func TestParseCPUStat(t *testing.T) {
	tests := []struct {
		file    string
		want    cpuStat
		wantErr bool
	}{
		{file: "linux-6.1/cpu.stat", want: cpuStat{
			UsageUsec: 933594, UserUsec: 301685, SystemUsec: 631909,
			NrPeriods: 21, NrThrottled: 17, ThrottledUsec: 849707, HasThrottling: true,
		}},
		{file: "linux-5.10/cpu.stat", want: cpuStat{
			UsageUsec: 812184, UserUsec: 300508, SystemUsec: 511676,
			NrPeriods: 18, NrThrottled: 15, ThrottledUsec: 688228, HasThrottling: true,
		}},
		// The hybrid host's cgroup2 root: no cpu controller, so no throttling keys.
		{file: "hybrid-6.18/cpu.stat", want: cpuStat{
			UsageUsec: 75730774, UserUsec: 51984616, SystemUsec: 23746158,
		}},
		{file: "edge/cpu.stat-zero-unknown-keys", want: cpuStat{}},
		{file: "malformed/cpu.stat-nonnumeric", wantErr: true},
		{file: "malformed/cpu.stat-overflow", wantErr: true},
		{file: "malformed/cpu.stat-truncated", wantErr: true},
		{file: "malformed/cpu.stat-truncated-key-only", wantErr: true},
		{file: "malformed/cpu.stat-missing-usage", wantErr: true},
		{file: "malformed/cpu.stat-partial-throttling", wantErr: true},
		{file: "malformed/cpu.stat-nul", wantErr: true},
		{file: "malformed/cpu.stat-negative", wantErr: true},
		{file: "malformed/cpu.stat-repeated", wantErr: true},
		{file: "malformed/cpu.stat-empty", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			got, err := parseCPUStat(kernelFixture(t, tt.file))
			checkErr(t, err, tt.wantErr)
			if !tt.wantErr && got != tt.want {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
			if tt.wantErr && got != (cpuStat{}) {
				t.Fatalf("error with a non-zero result %+v", got)
			}
		})
	}
}

func TestParseMemoryEvents(t *testing.T) {
	tests := []struct {
		file    string
		want    memoryEvents
		wantErr bool
	}{
		{file: "linux-6.1/memory.events", want: memoryEvents{HasOOMGroupKill: true}},
		{file: "linux-6.1/memory.events.local", want: memoryEvents{HasOOMGroupKill: true}},
		{file: "linux-5.10/memory.events", want: memoryEvents{}},
		{file: "malformed/memory.events-missing-oom-kill", wantErr: true},
		{file: "malformed/memory.events-hex", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			got, err := parseMemoryEvents(kernelFixture(t, tt.file))
			checkErr(t, err, tt.wantErr)
			if !tt.wantErr && got != tt.want {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
	// The real files hold only zeros; check that each key lands in its field.
	got, err := parseMemoryEvents([]byte("low 1\nhigh 2\nmax 3\noom 4\noom_kill 5\noom_group_kill 6\nfuture 7\n"))
	want := memoryEvents{Low: 1, High: 2, Max: 3, OOM: 4, OOMKill: 5, OOMGroupKill: 6, HasOOMGroupKill: true}
	if err != nil || got != want {
		t.Fatalf("got %+v, %v; want %+v", got, err, want)
	}
}

func TestParseMemoryStat(t *testing.T) {
	for _, file := range []string{"linux-6.1/memory.stat", "linux-5.10/memory.stat"} {
		t.Run(file, func(t *testing.T) {
			b := kernelFixture(t, file)
			got, err := parseMemoryStat(b)
			checkErr(t, err, false)
			lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
			if len(got) != len(lines) {
				t.Fatalf("got %d keys, file has %d lines", len(got), len(lines))
			}
		})
	}
	got, err := parseMemoryStat(kernelFixture(t, "linux-6.1/memory.stat"))
	checkErr(t, err, false)
	for k, v := range map[string]uint64{"anon": 0, "file": 8388608, "shmem": 8388608, "slab": 20528, "pgfault": 8599} {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s = %d (present %v), want %d", k, g, ok, v)
		}
	}
	_, err = parseMemoryStat(kernelFixture(t, "malformed/memory.stat-truncated"))
	checkErr(t, err, true)
	_, err = parseMemoryStat([]byte("anon 1\nanon 2\n"))
	checkErr(t, err, true)
	_, err = parseMemoryStat(nil)
	checkErr(t, err, true)
}

func TestParseIOStat(t *testing.T) {
	tests := []struct {
		file    string
		want    ioStat
		wantErr bool
	}{
		// Both guests had no block device: empty file, zeros, no error.
		{file: "linux-6.1/io.stat", want: ioStat{}},
		{file: "linux-5.10/io.stat", want: ioStat{}},
		{file: "edge/io.stat-two-devices", want: ioStat{RBytes: 1048576 + 4096, WBytes: 8388608, RIOs: 17, WIOs: 64}},
		{file: "edge/io.stat-iocost", want: ioStat{RBytes: 100, WBytes: 200, RIOs: 3, WIOs: 4}},
		{file: "malformed/io.stat-missing-wios", wantErr: true},
		{file: "malformed/io.stat-bad-device", wantErr: true},
		{file: "malformed/io.stat-sum-overflow", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			got, err := parseIOStat(kernelFixture(t, tt.file))
			checkErr(t, err, tt.wantErr)
			if !tt.wantErr && got != tt.want {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestParseUint(t *testing.T) {
	tests := []struct {
		file    string
		want    uint64
		wantErr bool
	}{
		{file: "linux-6.1/memory.peak", want: 34140160},
		{file: "linux-6.1/memory.current", want: 8413184},
		{file: "linux-6.1/pids.peak", want: 3},
		{file: "linux-6.1/pids.current", want: 0},
		{file: "linux-5.10/memory.current", want: 8409088},
		{file: "edge/memory.current-no-newline", want: 8413184},
		{file: "edge/memory.peak-maxuint", want: 1<<64 - 1},
		{file: "linux-6.1/memory.max", want: 268435456},
		{file: "linux-6.1/memory.high", wantErr: true}, // "max" is not a number
		{file: "malformed/memory.current-leading-space", wantErr: true},
		{file: "malformed/cpu.stat-empty", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			got, err := parseUint(kernelFixture(t, tt.file))
			checkErr(t, err, tt.wantErr)
			if got != tt.want {
				t.Fatalf("got %d, want %d", got, tt.want)
			}
		})
	}
	for _, in := range []string{"18446744073709551616\n", "1\n\n", "-1\n", "+1\n", "1 \n", "0x10\n", "007\n", "1\x00\n"} {
		if v, err := parseUint([]byte(in)); err == nil || !errors.Is(err, errMalformed) {
			t.Errorf("parseUint(%q) = %d, %v; want errMalformed", in, v, err)
		}
	}
}

func TestParseLimit(t *testing.T) {
	tests := []struct {
		file      string
		want      uint64
		unlimited bool
		wantErr   bool
	}{
		{file: "linux-6.1/memory.max", want: 268435456},
		{file: "linux-6.1/pids.max", want: 64},
		{file: "linux-5.10/pids.max", want: 64},
		{file: "linux-6.1/memory.high", unlimited: true},
		{file: "linux-6.1/memory.swap.max", unlimited: true},
		{file: "edge/memory.max-unlimited", unlimited: true},
		{file: "malformed/memory.max-word", wantErr: true},
		{file: "malformed/cpu.stat-empty", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			got, unl, err := parseLimit(kernelFixture(t, tt.file))
			checkErr(t, err, tt.wantErr)
			if got != tt.want || unl != tt.unlimited {
				t.Fatalf("got %d unlimited=%v, want %d unlimited=%v", got, unl, tt.want, tt.unlimited)
			}
		})
	}
}

func TestParseCPUMax(t *testing.T) {
	tests := []struct {
		file    string
		quota   int64
		period  uint64
		wantErr bool
	}{
		{file: "linux-6.1/cpu.max", quota: 50000, period: 100000},
		{file: "linux-5.10/cpu.max", quota: 50000, period: 100000},
		{file: "edge/cpu.max-unlimited", quota: -1, period: 100000},
		{file: "malformed/cpu.max-no-period", wantErr: true},
		{file: "malformed/cpu.max-quota-overflow", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			q, p, err := parseCPUMax(kernelFixture(t, tt.file))
			checkErr(t, err, tt.wantErr)
			if q != tt.quota || p != tt.period {
				t.Fatalf("got %d %d, want %d %d", q, p, tt.quota, tt.period)
			}
		})
	}
	if _, _, err := parseCPUMax([]byte("50000 0\n")); !errors.Is(err, errMalformed) {
		t.Fatalf("period 0: %v", err)
	}
}

func TestParseCgroupEvents(t *testing.T) {
	tests := []struct {
		file    string
		want    cgroupEvents
		wantErr bool
	}{
		{file: "linux-6.1/cgroup.events", want: cgroupEvents{}},
		{file: "linux-5.10/cgroup.events", want: cgroupEvents{}},
		{file: "edge/cgroup.events-no-frozen", want: cgroupEvents{Populated: true}},
		{file: "edge/cgroup.events-frozen", want: cgroupEvents{Populated: true, Frozen: true}},
		{file: "malformed/cgroup.events-bad-value", wantErr: true},
		{file: "malformed/cgroup.events-no-populated", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			got, err := parseCgroupEvents(kernelFixture(t, tt.file))
			checkErr(t, err, tt.wantErr)
			if got != tt.want {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestParseNrDescendants(t *testing.T) {
	tests := []struct {
		file    string
		want    uint64
		wantErr bool
	}{
		{file: "linux-6.1/cgroup.stat", want: 0},
		{file: "linux-5.10/cgroup.stat", want: 0},
		{file: "hybrid-6.18/cgroup.stat", want: 6}, // with nr_subsys_* keys
		{file: "malformed/cgroup.stat-no-nr-descendants", wantErr: true},
		{file: "malformed/cgroup.stat-negative", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			got, err := parseNrDescendants(kernelFixture(t, tt.file))
			checkErr(t, err, tt.wantErr)
			if got != tt.want {
				t.Fatalf("got %d, want %d", got, tt.want)
			}
		})
	}
}

func TestParsePSI(t *testing.T) {
	cpu61 := psiLine{Avg10: 3.98, Avg60: 0.71, Avg300: 0.15, Total: 463077}
	tests := []struct {
		file    string
		want    psi
		wantErr bool
	}{
		{file: "linux-6.1/cpu.pressure", want: psi{Some: cpu61, Full: cpu61, HasFull: true}},
		// 5.10 has no "full" line in cpu.pressure (added in 5.13).
		{file: "linux-5.10/cpu.pressure", want: psi{Some: psiLine{Total: 678470}}},
		{file: "linux-5.10/memory.pressure", want: psi{HasFull: true}},
		{file: "linux-6.1/io.pressure", want: psi{HasFull: true}},
		{file: "hybrid-6.18/cpu.pressure", want: psi{Some: psiLine{Avg10: 0.43, Avg60: 3.52, Avg300: 3.14, Total: 18066204}, HasFull: true}},
		{file: "edge/cpu.pressure-some-only-extreme", want: psi{Some: psiLine{Avg10: 100, Avg60: 99.99, Avg300: 0.01, Total: 1<<64 - 1}}},
		{file: "malformed/cpu.pressure-no-total", wantErr: true},
		{file: "malformed/cpu.pressure-nan", wantErr: true},
		{file: "malformed/cpu.pressure-no-some", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			got, err := parsePSI(kernelFixture(t, tt.file))
			checkErr(t, err, tt.wantErr)
			if got != tt.want {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestParseControllers(t *testing.T) {
	tests := []struct {
		file    string
		want    []string
		wantErr bool
	}{
		{file: "linux-6.1/root-cgroup.controllers", want: []string{"cpuset", "cpu", "io", "memory", "hugetlb", "pids", "rdma", "misc"}},
		{file: "linux-6.1/root-cgroup.subtree_control", want: []string{"cpu", "io", "memory", "pids"}},
		{file: "linux-6.1/cgroup.subtree_control", want: nil},
		{file: "hybrid-6.18/cgroup.controllers", want: []string{"hugetlb"}},
		{file: "edge/cgroup.controllers-empty", want: nil},
		{file: "malformed/cgroup.controllers-double-space", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			got, err := parseControllers(kernelFixture(t, tt.file))
			checkErr(t, err, tt.wantErr)
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestParseProcCgroup(t *testing.T) {
	tests := []struct {
		file    string
		path    string
		hasV2   bool
		v1      bool
		wantErr bool
	}{
		{file: "linux-6.1/proc-self-cgroup", path: "/init", hasV2: true},
		{file: "linux-5.10/proc-self-cgroup", path: "/init", hasV2: true},
		{file: "hybrid-6.18/proc-self-cgroup", path: "/", hasV2: true, v1: true},
		{file: "edge/proc-self-cgroup-colon", path: "/user.slice/a:b c/job", hasV2: true},
		{file: "edge/proc-self-cgroup-v1-only", v1: true},
		{file: "malformed/proc-self-cgroup-relative", wantErr: true},
		{file: "malformed/proc-self-cgroup-two-v2", wantErr: true},
		{file: "malformed/cpu.stat-empty", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			path, hasV2, v1, err := parseProcCgroup(kernelFixture(t, tt.file))
			checkErr(t, err, tt.wantErr)
			if path != tt.path || hasV2 != tt.hasV2 || v1 != tt.v1 {
				t.Fatalf("got %q hasV2=%v v1=%v, want %q hasV2=%v v1=%v", path, hasV2, v1, tt.path, tt.hasV2, tt.v1)
			}
		})
	}
}

func TestParseMountinfo(t *testing.T) {
	vmCgroup := mount{MountPoint: "/sys/fs/cgroup", FSType: "cgroup2", Source: "cg", SuperOptions: "rw", Root: "/"}
	tests := []struct {
		file    string
		n       int
		idx     int // the line to compare with want
		want    mount
		wantErr bool
	}{
		{file: "linux-6.1/proc-self-mountinfo", n: 6, idx: 4, want: vmCgroup},
		{file: "linux-5.10/proc-self-mountinfo", n: 6, idx: 4, want: vmCgroup},
		{file: "hybrid-6.18/proc-self-mountinfo", n: 20, idx: 19, want: mount{
			MountPoint: "/sys/fs/cgroup/unified", FSType: "cgroup2", Source: "cgroup2", SuperOptions: "rw", Root: "/",
		}},
		{file: "edge/mountinfo-escapes-optional-empty-source", n: 2, idx: 0, want: mount{
			MountPoint: "/mnt with space", FSType: "ext3", Source: "/dev/root", SuperOptions: "rw,errors=continue", Root: "/mnt1",
		}},
		{file: "edge/mountinfo-escapes-optional-empty-source", n: 2, idx: 1, want: mount{
			MountPoint: `/sys/fs/cgroup\x`, FSType: "cgroup2", Source: "", SuperOptions: "rw,nsdelegate", Root: "/job",
		}},
		{file: "malformed/mountinfo-no-separator", wantErr: true},
		{file: "malformed/mountinfo-bad-escape", wantErr: true},
		{file: "malformed/mountinfo-truncated", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			got, err := parseMountinfo(kernelFixture(t, tt.file))
			checkErr(t, err, tt.wantErr)
			if tt.wantErr {
				if got != nil {
					t.Fatalf("error with mounts %+v", got)
				}
				return
			}
			if len(got) != tt.n {
				t.Fatalf("got %d mounts, want %d", len(got), tt.n)
			}
			if got[tt.idx] != tt.want {
				t.Fatalf("line %d: got %+v, want %+v", tt.idx, got[tt.idx], tt.want)
			}
		})
	}
}

// TestMalformedFixturesRejected runs every file under testdata/kernel/malformed
// through the parser its name starts with, so no malformed fixture is left
// unchecked.
func TestMalformedFixturesRejected(t *testing.T) {
	parsers := map[string]func([]byte) error{
		"cpu.stat":           func(b []byte) error { _, err := parseCPUStat(b); return err },
		"memory.events":      func(b []byte) error { _, err := parseMemoryEvents(b); return err },
		"memory.stat":        func(b []byte) error { _, err := parseMemoryStat(b); return err },
		"io.stat":            func(b []byte) error { _, err := parseIOStat(b); return err },
		"cpu.pressure":       func(b []byte) error { _, err := parsePSI(b); return err },
		"cgroup.events":      func(b []byte) error { _, err := parseCgroupEvents(b); return err },
		"cgroup.stat":        func(b []byte) error { _, err := parseNrDescendants(b); return err },
		"cpu.max":            func(b []byte) error { _, _, err := parseCPUMax(b); return err },
		"memory.max":         func(b []byte) error { _, _, err := parseLimit(b); return err },
		"memory.current":     func(b []byte) error { _, err := parseUint(b); return err },
		"cgroup.controllers": func(b []byte) error { _, err := parseControllers(b); return err },
		"proc-self-cgroup":   func(b []byte) error { _, _, _, err := parseProcCgroup(b); return err },
		"mountinfo":          func(b []byte) error { _, err := parseMountinfo(b); return err },
	}
	entries, err := os.ReadDir(filepath.Join("..", "testdata", "kernel", "malformed"))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) == 0 {
		t.Fatal("no malformed fixtures")
	}
	for _, e := range entries {
		name := e.Name()
		var parse func([]byte) error
		for prefix, p := range parsers {
			if strings.HasPrefix(name, prefix+"-") {
				parse = p
			}
		}
		if parse == nil {
			t.Errorf("%s: no parser for its prefix", name)
			continue
		}
		err := parse(kernelFixture(t, filepath.Join("malformed", name)))
		if !errors.Is(err, errMalformed) {
			t.Errorf("%s: got %v, want errMalformed", name, err)
		}
	}
}

// TestRealFixturesParse checks that every file of both kernels that one of
// these parsers covers is accepted.
func TestRealFixturesParse(t *testing.T) {
	for _, k := range []string{"linux-6.1", "linux-5.10"} {
		for name, parse := range map[string]func([]byte) error{
			"cgroup.stat":             func(b []byte) error { _, err := parseMemoryStat(b); return err }, // flat keyed too
			"memory.swap.events":      func(b []byte) error { _, err := parseMemoryStat(b); return err },
			"pids.events":             func(b []byte) error { _, err := parseMemoryStat(b); return err },
			"memory.pressure":         func(b []byte) error { _, err := parsePSI(b); return err },
			"io.pressure":             func(b []byte) error { _, err := parsePSI(b); return err },
			"memory.swap.max":         func(b []byte) error { _, _, err := parseLimit(b); return err },
			"memory.low":              func(b []byte) error { _, _, err := parseLimit(b); return err },
			"memory.min":              func(b []byte) error { _, _, err := parseLimit(b); return err },
			"cgroup.max.depth":        func(b []byte) error { _, _, err := parseLimit(b); return err },
			"root-cgroup.controllers": func(b []byte) error { _, err := parseControllers(b); return err },
		} {
			if err := parse(kernelFixture(t, filepath.Join(k, name))); err != nil {
				t.Errorf("%s/%s: %v", k, name, err)
			}
		}
	}
}

// TestHotParsersDoNotAllocate checks the parsers the sampler calls on every
// tick, and the final-read ones, allocate nothing on success.
func TestHotParsersDoNotAllocate(t *testing.T) {
	cpu := kernelFixture(t, "linux-6.1/cpu.stat")
	cur := kernelFixture(t, "linux-6.1/memory.current")
	ev := kernelFixture(t, "linux-6.1/cgroup.events")
	me := kernelFixture(t, "linux-6.1/memory.events")
	io := kernelFixture(t, "edge/io.stat-two-devices")
	pr := kernelFixture(t, "linux-6.1/cpu.pressure")
	lim := kernelFixture(t, "linux-6.1/memory.high")
	cmax := kernelFixture(t, "linux-6.1/cpu.max")
	cst := kernelFixture(t, "hybrid-6.18/cgroup.stat")
	for name, f := range map[string]func() error{
		"parseNrDescendants": func() error { return errOf(parseNrDescendants(cst)) },
		"parseCPUStat":       func() error { return errOf(parseCPUStat(cpu)) },
		"parseUint":          func() error { return errOf(parseUint(cur)) },
		"parseCgroupEvents":  func() error { return errOf(parseCgroupEvents(ev)) },
		"parseMemoryEvents":  func() error { return errOf(parseMemoryEvents(me)) },
		"parseIOStat":        func() error { return errOf(parseIOStat(io)) },
		"parsePSI":           func() error { return errOf(parsePSI(pr)) },
		"parseLimit":         func() error { _, _, err := parseLimit(lim); return err },
		"parseCPUMax":        func() error { _, _, err := parseCPUMax(cmax); return err },
	} {
		var err error
		if n := testing.AllocsPerRun(100, func() { err = f() }); n != 0 {
			t.Errorf("%s: %v allocations per run, want 0", name, n)
		}
		if err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// errOf drops a parser's value and keeps its error.
func errOf[T any](_ T, err error) error { return err }

func BenchmarkParseCPUStat(b *testing.B) {
	in := kernelFixture(b, "linux-6.1/cpu.stat")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := parseCPUStat(in); err != nil {
			b.Fatal(err)
		}
	}
}
