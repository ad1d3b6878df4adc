package proctree

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/cgmon/cgmon/internal/kparse"
	"github.com/cgmon/cgmon/internal/parsetest"
)

// procFixture reads testdata/proc/<name> at the repository root.
func procFixture(t testing.TB, name string) []byte {
	t.Helper()
	return parsetest.Fixture(t, "proc", name)
}

// checkErr fails unless err matches wantErr; a wanted error must wrap
// kparse.ErrMalformed.
func checkErr(t *testing.T, err error, wantErr bool) {
	t.Helper()
	parsetest.CheckErr(t, err, wantErr, kparse.ErrMalformed)
}

func TestParseProcStat(t *testing.T) {
	tests := []struct {
		file    string
		want    Stat
		comm    string
		wantErr bool
	}{
		{file: "self/stat", comm: "sh", want: Stat{
			PID: 6555, PPID: 6551, PGRP: 6551, Session: 2850, State: 'S', StartTimeTicks: 117750, NumThreads: 1, RSSPages: 357,
		}},
		{file: "busy/stat", comm: "sh", want: Stat{
			PID: 4116, PPID: 4113, PGRP: 4113, Session: 2850, State: 'S', UTimeTicks: 30, StartTimeTicks: 241007, NumThreads: 1, RSSPages: 367,
		}},
		// A real process whose comm is "(a) b)": parsing must start at the last ')'.
		{file: "comm-parens/stat", comm: "(a) b)", want: Stat{
			PID: 6596, PPID: 6591, PGRP: 6591, Session: 2850, State: 'S', StartTimeTicks: 118751, NumThreads: 1, RSSPages: 422,
		}},
		{file: "zombie/stat", comm: "sleep", want: Stat{
			PID: 6604, PPID: 6602, PGRP: 6591, Session: 2850, State: 'Z', StartTimeTicks: 118782, NumThreads: 1,
		}},
		{file: "kthread/stat", comm: "kthreadd", want: Stat{PID: 2, State: 'S', StartTimeTicks: 24, NumThreads: 1}},
		// A real python3 with four threads besides its main one.
		{file: "threads/stat", comm: "python3", want: Stat{
			PID: 31738, PPID: 31698, PGRP: 31698, Session: 10398, State: 'R', UTimeTicks: 13, STimeTicks: 8, StartTimeTicks: 349265, NumThreads: 5, RSSPages: 3386,
		}},
		// stat does not escape the comm: it may hold '\n' and ')'.
		{file: "edge/stat-comm-newline", comm: "x\n) y", want: Stat{
			PID: 4194304, PPID: 6551, PGRP: 6551, Session: 2850, State: 'Z', StartTimeTicks: 117750, NumThreads: 1, RSSPages: 357,
		}},
		{file: "malformed/stat-truncated-rss", wantErr: true},
		{file: "malformed/stat-truncated-before-rss", wantErr: true},
		{file: "malformed/stat-nonnumeric-utime", wantErr: true},
		{file: "malformed/stat-overflow-utime", wantErr: true},
		{file: "malformed/stat-bad-state", wantErr: true},
		{file: "malformed/stat-no-paren", wantErr: true},
		{file: "malformed/stat-nul", wantErr: true},
		{file: "malformed/stat-pid-zero", wantErr: true},
		{file: "malformed/stat-empty", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			b := procFixture(t, tt.file)
			got, err := ParseStat(b)
			checkErr(t, err, tt.wantErr)
			if got != tt.want {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
			if tt.wantErr {
				return
			}
			comm, err := statComm(b)
			if err != nil || comm != tt.comm {
				t.Fatalf("comm %q, %v; want %q", comm, err, tt.comm)
			}
		})
	}
}

func TestParseProcStatusMem(t *testing.T) {
	tests := []struct {
		file    string
		want    StatusMem
		wantErr bool
	}{
		{file: "self/status", want: StatusMem{VmRSS: 1636 * 1024, VmHWM: 1636 * 1024, HasVmRSS: true, HasVmHWM: true}},
		{file: "busy/status", want: StatusMem{VmRSS: 1640 * 1024, VmHWM: 1640 * 1024, HasVmRSS: true, HasVmHWM: true}},
		{file: "comm-parens/status", want: StatusMem{VmRSS: 1860 * 1024, VmHWM: 1860 * 1024, HasVmRSS: true, HasVmHWM: true}},
		// Zombies and kernel threads have no mm: no Vm lines, absent, not 0.
		{file: "zombie/status", want: StatusMem{}},
		{file: "kthread/status", want: StatusMem{}},
		{file: "edge/status-max-kb", want: StatusMem{VmHWM: 18014398509481983 * 1024, HasVmRSS: true, HasVmHWM: true}},
		{file: "malformed/status-truncated", wantErr: true},
		{file: "malformed/status-no-kb", wantErr: true},
		{file: "malformed/status-overflow", wantErr: true},
		{file: "malformed/status-repeated", wantErr: true},
		{file: "malformed/status-no-name", wantErr: true},
		{file: "malformed/status-nul", wantErr: true},
		{file: "malformed/status-empty", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			got, err := ParseStatusMem(procFixture(t, tt.file))
			checkErr(t, err, tt.wantErr)
			if got != tt.want {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestParseProcIO(t *testing.T) {
	tests := []struct {
		file    string
		want    procIO
		wantErr bool
	}{
		{file: "self/io", want: procIO{RChar: 19635, WChar: 1703, ReadBytes: 8192, WriteBytes: 8192}},
		{file: "busy/io", want: procIO{RChar: 19638, WChar: 1706, WriteBytes: 20480}},
		{file: "zombie/io", want: procIO{RChar: 6976}},
		{file: "kthread/io", want: procIO{}},
		{file: "malformed/io-missing-write-bytes", wantErr: true},
		{file: "malformed/io-truncated", wantErr: true},
		{file: "malformed/io-nonnumeric", wantErr: true},
		{file: "malformed/io-empty", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			got, err := parseProcIO(procFixture(t, tt.file))
			checkErr(t, err, tt.wantErr)
			if got != tt.want {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestParseChildren(t *testing.T) {
	tests := []struct {
		file    string
		want    []int
		wantErr bool
	}{
		{file: "zombie/parent-children", want: []int{-7, 6604}},
		{file: "edge/children-empty", want: []int{-7}},
		{file: "edge/children-many", want: []int{-7, 1, 22, 333, 4194304}},
		{file: "malformed/children-no-trailing-space", wantErr: true},
		{file: "malformed/children-negative", wantErr: true},
		{file: "malformed/children-double-space", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			dst := make([]int, 1, 8)
			dst[0] = -7 // appended to, never overwritten
			got, err := parseChildren(procFixture(t, tt.file), dst)
			checkErr(t, err, tt.wantErr)
			if tt.wantErr {
				if !reflect.DeepEqual(got, []int{-7}) {
					t.Fatalf("on error got %v, want dst unchanged", got)
				}
				return
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
		})
	}
}

// TestMalformedFixturesRejected runs every file under testdata/proc/malformed
// through the parser its name starts with.
func TestCgroupV2Path(t *testing.T) {
	for _, c := range []struct {
		in   string
		want string
		ok   bool
	}{
		{"0::/cgmon/job-1-4242-7\n", "/cgmon/job-1-4242-7", true},
		{"9:name=systemd:/\n4:memory:/x\n0::/a b\n", "/a b", true}, // hybrid: v1 lines first
		{"0::/\n", "/", true},
		{"0::/last", "/last", true},  // no final newline
		{"4:memory:/x\n", "", false}, // v1 only
		{"0::\n", "", false},
		{"0::relative\n", "", false},
		{"0::/a\x00b\n", "", false},
		{"", "", false},
	} {
		got, ok := CgroupV2Path([]byte(c.in))
		if got != c.want || ok != c.ok {
			t.Errorf("CgroupV2Path(%q) = %q, %v; want %q, %v", c.in, got, ok, c.want, c.ok)
		}
	}
}

func TestEnvironHas(t *testing.T) {
	env := []byte("PATH=/bin\x00CGMON_TREE=ab\x00HOME=/root\x00")
	for _, c := range []struct {
		e    string
		want bool
	}{
		{"CGMON_TREE=ab", true}, {"PATH=/bin", true}, {"HOME=/root", true},
		{"CGMON_TREE=a", false}, {"CGMON_TREE=abc", false}, {"", false},
	} {
		if got := environHas(env, []byte(c.e)); got != c.want {
			t.Errorf("environHas(%q) = %v, want %v", c.e, got, c.want)
		}
	}
	if !environHas([]byte("A=1\x00B=2"), []byte("B=2")) {
		t.Error("the last entry without a NUL")
	}
}

func TestMalformedFixturesRejected(t *testing.T) {
	parsers := map[string]func([]byte) error{
		"stat":     func(b []byte) error { _, err := ParseStat(b); return err },
		"status":   func(b []byte) error { _, err := ParseStatusMem(b); return err },
		"io":       func(b []byte) error { _, err := parseProcIO(b); return err },
		"children": func(b []byte) error { _, err := parseChildren(b, nil); return err },
	}
	entries, err := os.ReadDir(filepath.Join(parsetest.Dir(t, "proc"), "malformed"))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) == 0 {
		t.Fatal("no malformed fixtures")
	}
	for _, e := range entries {
		prefix, _, _ := strings.Cut(e.Name(), "-")
		parse, ok := parsers[prefix]
		if !ok {
			t.Errorf("%s: no parser for prefix %q", e.Name(), prefix)
			continue
		}
		if err := parse(procFixture(t, filepath.Join("malformed", e.Name()))); !errors.Is(err, kparse.ErrMalformed) {
			t.Errorf("%s: got %v, want kparse.ErrMalformed", e.Name(), err)
		}
	}
}

// TestLiveProcSelf parses this test process's own files, as the kernel
// writes them now.
func TestLiveProcSelf(t *testing.T) {
	read := func(name string) []byte {
		b, err := os.ReadFile("/proc/self/" + name)
		if err != nil {
			t.Skipf("no procfs here: %v", err)
		}
		return b
	}
	st, err := ParseStat(read("stat"))
	if err != nil {
		t.Fatal(err)
	}
	if st.PID != os.Getpid() || st.PPID != os.Getppid() || st.RSSPages <= 0 {
		t.Fatalf("stat %+v for pid %d ppid %d", st, os.Getpid(), os.Getppid())
	}
	m, err := ParseStatusMem(read("status"))
	if err != nil {
		t.Fatal(err)
	}
	if !m.HasVmRSS || !m.HasVmHWM || m.VmRSS == 0 || m.VmHWM < m.VmRSS {
		t.Fatalf("status %+v", m)
	}
	if _, err := parseProcIO(read("io")); err != nil {
		t.Fatal(err)
	}
}

// TestHotParsersDoNotAllocate checks the per-tick, per-process parsers
// allocate nothing on success.
func TestHotParsersDoNotAllocate(t *testing.T) {
	stat := procFixture(t, "comm-parens/stat")
	status := procFixture(t, "self/status")
	io := procFixture(t, "self/io")
	children := procFixture(t, "edge/children-many")
	dst := make([]int, 0, 16)
	for name, f := range map[string]func() error{
		"parseProcStat":  func() error { _, err := ParseStat(stat); return err },
		"ParseStatusMem": func() error { _, err := ParseStatusMem(status); return err },
		"parseProcIO":    func() error { _, err := parseProcIO(io); return err },
		"parseChildren":  func() error { _, err := parseChildren(children, dst[:0]); return err },
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

func BenchmarkParseProcStat(b *testing.B) {
	in := procFixture(b, "self/stat")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseStat(in); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseProcStatusMem(b *testing.B) {
	in := procFixture(b, "self/status")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseStatusMem(in); err != nil {
			b.Fatal(err)
		}
	}
}

// statComm is the comm that ParseStat skips, as splitStat delimits it.
func statComm(b []byte) (string, error) {
	_, comm, _, err := splitStat(b)
	return string(comm), err
}
