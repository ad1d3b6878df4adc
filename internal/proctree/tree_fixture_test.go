//go:build linux

package proctree

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cgmon/cgmon/internal/kparse"
	"github.com/cgmon/cgmon/metrics"
)

// fakeProc is a fake proc root under t.TempDir(); self is pid 1.
type fakeProc struct {
	t    *testing.T
	root string
}

// fixture pgrp and session numbers far from this test process's own.
const (
	fxPgrp = 4000100
	fxSid  = 4000100
)

// fxProc describes one fake process.
type fxProc struct {
	pid, ppid, pgrp, sid int
	state                byte
	utime, stime, start  uint64
	rssPages             int64
	threads              int // num_threads; 0 means 1
}

func newFakeProc(t *testing.T) *fakeProc {
	t.Helper()
	root := t.TempDir()
	f := &fakeProc{t: t, root: root}
	if err := os.Symlink("1", filepath.Join(root, "self")); err != nil {
		t.Fatal(err)
	}
	f.put(fxProc{pid: 1, ppid: 0, pgrp: 1, sid: 1, state: 'S', start: 1})
	return f
}

func (f *fakeProc) write(rel, content string) {
	f.t.Helper()
	p := filepath.Join(f.root, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		f.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		f.t.Fatal(err)
	}
}

// put writes p's stat (fields as proc(5) numbers them), io and an empty
// children file for its main thread.
func (f *fakeProc) put(p fxProc) {
	if p.state == 0 {
		p.state = 'S'
	}
	if p.threads == 0 {
		p.threads = 1
	}
	stat := fmt.Sprintf("%d (fake %d) %c %d %d %d 0 -1 4194560 10 0 0 0 %d %d 0 0 20 0 %d 0 %d 1000000 %d 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0\n",
		p.pid, p.pid, p.state, p.ppid, p.pgrp, p.sid, p.utime, p.stime, p.threads, p.start, p.rssPages)
	f.write(fmt.Sprintf("%d/stat", p.pid), stat)
	f.write(fmt.Sprintf("%d/io", p.pid), fmt.Sprintf("rchar: 1\nwchar: 2\nsyscr: 0\nsyscw: 0\nread_bytes: %d\nwrite_bytes: %d\ncancelled_write_bytes: 0\n", 4096*p.pid, 8192*p.pid))
	f.write(fmt.Sprintf("%d/status", p.pid), fmt.Sprintf("Name:\tfake\nVmHWM:\t%d kB\nVmRSS:\t%d kB\n", p.rssPages*8, p.rssPages*4))
	if _, err := os.Stat(filepath.Join(f.root, fmt.Sprint(p.pid), "task", fmt.Sprint(p.pid), "children")); err != nil {
		f.children(p.pid, p.pid)
	}
}

// children sets the children of thread tid of pid.
func (f *fakeProc) children(pid, tid int, kids ...int) {
	var b strings.Builder
	for _, k := range kids {
		fmt.Fprintf(&b, "%d ", k)
	}
	f.write(fmt.Sprintf("%d/task/%d/children", pid, tid), b.String())
}

func (f *fakeProc) fs() FS {
	f.t.Helper()
	fs, err := NewFS(f.root)
	if err != nil {
		f.t.Fatal(err)
	}
	if fs.Self() != 1 {
		f.t.Fatalf("Self() = %d, want 1", fs.Self())
	}
	return fs
}

func sortedPids(t *Tree) []int {
	p := t.Pids(nil)
	slices.Sort(p)
	return p
}

func newFixtureTree(t *testing.T, fs FS, pid int, opts TreeOptions) *Tree {
	t.Helper()
	before := countFDs(t)
	tr := fs.NewTree(pid, opts)
	t.Cleanup(func() {
		if err := tr.Close(); err != nil {
			t.Error(err)
		}
		if after := countFDs(t); after != before {
			t.Errorf("open fds: %d before the tree, %d after Close", before, after)
		}
	})
	return tr
}

// family writes main 100 with children 101 (thread 100) and 102 (thread
// 105), and grandchild 103 (of 101).
func family(f *fakeProc) {
	f.put(fxProc{pid: 100, ppid: 1, pgrp: fxPgrp, sid: fxSid, utime: 10, stime: 5, start: 500, rssPages: 100})
	f.put(fxProc{pid: 101, ppid: 100, pgrp: fxPgrp, sid: fxSid, utime: 20, stime: 1, start: 510, rssPages: 200})
	f.put(fxProc{pid: 102, ppid: 100, pgrp: fxPgrp, sid: fxSid, utime: 3, stime: 3, start: 520, rssPages: 300})
	f.put(fxProc{pid: 103, ppid: 101, pgrp: fxPgrp, sid: fxSid, utime: 7, stime: 0, start: 530, rssPages: 400})
	f.children(100, 100, 101)
	f.children(100, 105, 102)
	f.children(101, 101, 103)
}

func TestTreeWalkFixture(t *testing.T) {
	f := newFakeProc(t)
	family(f)
	fs := f.fs()
	tr := newFixtureTree(t, fs, 100, TreeOptions{})
	s, err := tr.Sample()
	if err != nil {
		t.Fatal(err)
	}
	page := uint64(os.Getpagesize())
	if want := (100 + 200 + 300 + 400) * page; s.RSS != want {
		t.Errorf("RSS = %d, want %d", s.RSS, want)
	}
	if want := ticks(10 + 5 + 20 + 1 + 3 + 3 + 7); s.CPU != want {
		t.Errorf("CPU = %v, want %v", s.CPU, want)
	}
	if s.Procs != 4 {
		t.Errorf("Procs = %d, want 4", s.Procs)
	}
	if got := sortedPids(tr); !slices.Equal(got, []int{100, 101, 102, 103}) {
		t.Errorf("Pids = %v", got)
	}
	if !tr.Owns(103) || tr.Owns(1) || tr.Owns(999) {
		t.Errorf("Owns(103, 1, 999) = %v, %v, %v", tr.Owns(103), tr.Owns(1), tr.Owns(999))
	}

	// A new grandchild appears under 102; its stat is read at once.
	f.put(fxProc{pid: 104, ppid: 102, pgrp: fxPgrp, sid: fxSid, utime: 100, start: 540, rssPages: 1})
	f.children(102, 102, 104)
	s, err = tr.Sample()
	if err != nil {
		t.Fatal(err)
	}
	if s.Procs != 5 || s.CPU != ticks(49+100) {
		t.Errorf("after a new grandchild: Procs %d CPU %v, want 5 and %v", s.Procs, s.CPU, ticks(149))
	}
	tot := tr.Totals()
	if v, ok := tot.PeakRSS.Get(); !ok || v != 1001*page || tot.PeakRSS.Source() != metrics.SourceSampledProcRSS {
		t.Errorf("PeakRSS = %v %v", v, tot.PeakRSS.Source())
	}
	if v, _ := tot.Procs.Get(); v != 5 {
		t.Errorf("Procs peak = %d, want 5", v)
	}
	if tot.CPUTotal.Source() != metrics.SourceSampledProcCPU {
		t.Errorf("CPU source with live processes = %q, want sampled", tot.CPUTotal.Source())
	}
	if v, ok := tot.IORead.Get(); !ok || v != 4096*(100+101+102+103+104) {
		t.Errorf("IORead = %d, %v (%s)", v, ok, tot.IORead.Reason())
	}
	if tot.MaxRSS.Valid() {
		t.Errorf("MaxRSS valid before Snapshot or any reap: %v", tot.MaxRSS)
	}
	if err := tr.Snapshot(); err != nil {
		t.Fatal(err)
	}
	if v, ok := tr.Totals().MaxRSS.Get(); !ok || v != 400*8*1024 || tr.Totals().MaxRSS.Source() != metrics.SourceProcVmHWM {
		t.Errorf("MaxRSS after Snapshot = %d %v, want VmHWM of 103", v, ok)
	}
}

// TestTreeThreadsFixture: the walk reads each thread's children file
// through a descriptor held between samples, and lists the threads again
// when their count changes, and, for a process of several, at least every
// relistEvery samples (a thread that ends while another starts keeps the
// count).
func TestTreeThreadsFixture(t *testing.T) {
	f := newFakeProc(t)
	main := fxProc{pid: 100, ppid: 1, pgrp: fxPgrp, sid: fxSid, start: 500, rssPages: 1}
	f.put(main)
	tr := newFixtureTree(t, f.fs(), 100, TreeOptions{})
	sample := func(want ...int) {
		t.Helper()
		if _, err := tr.Sample(); err != nil {
			t.Fatal(err)
		}
		if got := sortedPids(tr); !slices.Equal(got, want) {
			t.Fatalf("Pids = %v, want %v", got, want)
		}
	}
	sample(100)
	// A child appears in the file of the one thread: read through the
	// held descriptor.
	f.put(fxProc{pid: 101, ppid: 100, pgrp: fxPgrp, sid: fxSid, start: 510})
	f.children(100, 100, 101)
	sample(100, 101)
	// A second thread starts and forks: the count in stat changes.
	f.put(fxProc{pid: 102, ppid: 100, pgrp: fxPgrp, sid: fxSid, start: 520})
	f.children(100, 106, 102)
	main.threads = 2
	f.put(main)
	sample(100, 101, 102)
	// Thread 106 ends (its child goes to the leader, as the kernel
	// re-parents it to a live thread of the group) and thread 107 starts
	// and forks 103: the count stays 2.
	f.children(100, 106)
	if err := os.RemoveAll(filepath.Join(f.root, "100/task/106")); err != nil {
		t.Fatal(err)
	}
	f.children(100, 100, 101, 102)
	f.put(fxProc{pid: 103, ppid: 100, pgrp: fxPgrp, sid: fxSid, start: 530})
	f.children(100, 107, 103)
	for i := 0; i < relistEvery; i++ {
		if _, err := tr.Sample(); err != nil {
			t.Fatal(err)
		}
	}
	if got := sortedPids(tr); !slices.Equal(got, []int{100, 101, 102, 103}) {
		t.Fatalf("after %d samples: Pids = %v, want the new thread's child 103 too", relistEvery, got)
	}
	tr.mu.Lock()
	var tids []int
	for _, k := range tr.procs[100].kids {
		tids = append(tids, k.tid)
	}
	tr.mu.Unlock()
	if !slices.Equal(tids, []int{100, 107}) {
		t.Errorf("held children files of threads %v, want [100 107]", tids)
	}
}

func TestTreePidReuseFixture(t *testing.T) {
	f := newFakeProc(t)
	family(f)
	tr := newFixtureTree(t, f.fs(), 100, TreeOptions{})
	if _, err := tr.Sample(); err != nil {
		t.Fatal(err)
	}
	// 103 exits unnoticed and its pid goes to a new process, still a
	// child of 101: the old one's CPU stays counted (its parent, alive,
	// has not been reaped by us), the new one is tracked from its start.
	f.put(fxProc{pid: 103, ppid: 101, pgrp: fxPgrp, sid: fxSid, utime: 50, stime: 0, start: 900, rssPages: 10})
	s, err := tr.Sample()
	if err != nil {
		t.Fatal(err)
	}
	if want := ticks(15 + 21 + 6 + 7 + 50); s.CPU != want {
		t.Errorf("CPU = %v, want %v (old 103 kept, new 103 added)", s.CPU, want)
	}
	if s.Procs != 4 {
		t.Errorf("Procs = %d, want 4", s.Procs)
	}
	if want := uint64(100+200+300+10) * uint64(os.Getpagesize()); s.RSS != want {
		t.Errorf("RSS = %d, want %d", s.RSS, want)
	}
	if !tr.Owns(103) {
		t.Error("Owns(103) = false")
	}
}

func TestTreeVanishAndReapedFixture(t *testing.T) {
	f := newFakeProc(t)
	family(f)
	tr := newFixtureTree(t, f.fs(), 100, TreeOptions{})
	if _, err := tr.Sample(); err != nil {
		t.Fatal(err)
	}
	// 103 is reaped by its parent 101: its stat reads empty.
	f.write("103/stat", "")
	f.children(101, 101)
	s, err := tr.Sample()
	if err != nil {
		t.Fatal(err)
	}
	if s.Procs != 3 {
		t.Errorf("Procs = %d, want 3", s.Procs)
	}
	if want := ticks(15 + 21 + 6 + 7); s.CPU != want {
		t.Errorf("CPU = %v, want %v: a vanished child's last reading counts while its parent lives", s.CPU, want)
	}
	// Then every process is reaped by us with rusage; 101's rusage now
	// includes 103, which must not be counted twice.
	for pid, ms := range map[int]int64{100: 300, 101: 250, 102: 60} {
		tr.Reaped(pid, &unix.Rusage{
			Utime:  unix.NsecToTimeval(ms * 1e6),
			Stime:  unix.NsecToTimeval(10e6),
			Maxrss: 1000 * ms,
		})
	}
	tot := tr.Totals()
	if v, ok := tot.CPUTotal.Get(); !ok || v != 640*time.Millisecond || tot.CPUTotal.Source() != metrics.SourceRusage {
		t.Errorf("CPUTotal = %v %v %q, want 640ms from rusage", v, ok, tot.CPUTotal.Source())
	}
	if v, _ := tot.CPUUser.Get(); v != 610*time.Millisecond {
		t.Errorf("CPUUser = %v, want 610ms", v)
	}
	if v, ok := tot.MaxRSS.Get(); !ok || v != 300*1000*1024 || tot.MaxRSS.Source() != metrics.SourceRusageMaxRSS {
		t.Errorf("MaxRSS = %d %v %q", v, ok, tot.MaxRSS.Source())
	}
	if pids := tr.Pids(nil); len(pids) != 0 {
		t.Errorf("Pids after every reap = %v", pids)
	}
}

func TestTreeMembersFixture(t *testing.T) {
	f := newFakeProc(t)
	family(f)
	calls := 0
	tr := newFixtureTree(t, f.fs(), 100, TreeOptions{Members: func(dst []int) ([]int, error) {
		calls++
		return append(dst, 100, 103, 4242), nil // 4242 does not exist
	}})
	s, err := tr.Sample()
	if err != nil {
		t.Fatal(err)
	}
	if calls != 1 || s.Procs != 2 || s.CPU != ticks(15+7) {
		t.Errorf("calls %d, Procs %d, CPU %v; want 1, 2, %v", calls, s.Procs, s.CPU, ticks(22))
	}
	boom := errors.New("boom")
	tr2 := newFixtureTree(t, f.fs(), 100, TreeOptions{Members: func(dst []int) ([]int, error) { return dst, boom }})
	if _, err := tr2.Sample(); !errors.Is(err, boom) {
		t.Errorf("Sample error = %v, want the Members error", err)
	}
}

func TestTreeAdoptsOrphansFixture(t *testing.T) {
	f := newFakeProc(t)
	family(f)
	const marker = MarkerKey + "=abc"
	// Children of self (pid 1), which the walk from 100 cannot reach.
	f.put(fxProc{pid: 200, ppid: 1, pgrp: fxPgrp, sid: fxSid, start: 600, utime: 1}) // main's group
	f.put(fxProc{pid: 201, ppid: 1, pgrp: 201, sid: 201, start: 610, utime: 2})      // marker only
	f.write("201/environ", "A=1\x00"+marker+"\x00")
	f.put(fxProc{pid: 202, ppid: 1, pgrp: 202, sid: 202, start: 620, utime: 4}) // no link
	f.write("202/environ", "A=1\x00"+marker+"x\x00")
	f.put(fxProc{pid: 203, ppid: 1, pgrp: fxPgrp, sid: fxSid, start: 400}) // started before main
	f.put(fxProc{pid: 204, ppid: 201, pgrp: 201, sid: 201, start: 630, utime: 8})
	f.children(201, 201, 204)
	f.children(1, 1, 100, 200, 201, 202, 203)

	tr := newFixtureTree(t, f.fs(), 100, TreeOptions{Marker: marker})
	if _, err := tr.Sample(); err != nil {
		t.Fatal(err)
	}
	if got := sortedPids(tr); !slices.Equal(got, []int{100, 101, 102, 103, 200, 201, 204}) {
		t.Errorf("Pids with marker = %v", got)
	}
	noMarker := newFixtureTree(t, f.fs(), 100, TreeOptions{})
	if _, err := noMarker.Sample(); err != nil {
		t.Fatal(err)
	}
	if got := sortedPids(noMarker); !slices.Equal(got, []int{100, 101, 102, 103, 200}) {
		t.Errorf("Pids without marker = %v", got)
	}
}

// TestTreeOrphanAfterReapedFixture: once the main process is reaped (by
// exec.Cmd, told through Reaped), its double-forked daemon, re-parented to
// this process, is looked for at the very next sample, not only every
// orphanEvery samples: the kill of the leftovers follows at once.
func TestTreeOrphanAfterReapedFixture(t *testing.T) {
	f := newFakeProc(t)
	const marker = MarkerKey + "=abc"
	f.put(fxProc{pid: 100, ppid: 1, pgrp: fxPgrp, sid: fxSid, start: 500})
	tr := newFixtureTree(t, f.fs(), 100, TreeOptions{Marker: marker})
	for i := 0; i < 2; i++ { // past the first sample's scan
		if _, err := tr.Sample(); err != nil {
			t.Fatal(err)
		}
	}
	// The daemon: a new session, its middle parent gone, now this
	// process's child.
	f.put(fxProc{pid: 300, ppid: 1, pgrp: 300, sid: 300, start: 510})
	f.write("300/environ", marker+"\x00")
	f.children(1, 1, 300)
	f.write("100/stat", "")
	tr.Reaped(100, &unix.Rusage{})
	if _, err := tr.Sample(); err != nil {
		t.Fatal(err)
	}
	if got := sortedPids(tr); !slices.Equal(got, []int{300}) {
		t.Errorf("Pids after the main process was reaped = %v, want the daemon [300]", got)
	}
}

func TestTreeMalformedFixture(t *testing.T) {
	f := newFakeProc(t)
	family(f)
	f.write("102/stat", "102 (x) S 100 nonsense\n")
	tr := newFixtureTree(t, f.fs(), 100, TreeOptions{})
	s, err := tr.Sample()
	if !errors.Is(err, kparse.ErrMalformed) {
		t.Errorf("Sample error = %v, want kparse.ErrMalformed", err)
	}
	if s.Procs != 3 {
		t.Errorf("Procs = %d, want the 3 readable processes", s.Procs)
	}
}

func TestTotalsUnavailable(t *testing.T) {
	f := newFakeProc(t)
	tr := newFixtureTree(t, f.fs(), 100, TreeOptions{}) // no such process
	tot := tr.Totals()
	for name, m := range map[string]interface {
		Valid() bool
		Reason() string
	}{"CPUTotal": tot.CPUTotal, "MaxRSS": tot.MaxRSS, "PeakRSS": tot.PeakRSS, "Procs": tot.Procs, "IORead": tot.IORead} {
		if m.Valid() || m.Reason() == "" {
			t.Errorf("%s: valid %v reason %q, want absent with a reason", name, m.Valid(), m.Reason())
		}
	}
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Sample(); !errors.Is(err, ErrClosed) {
		t.Errorf("Sample after Close: %v", err)
	}
}

func TestNewFSErrors(t *testing.T) {
	if _, err := NewFS(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("NewFS(missing) succeeded")
	}
	if _, err := NewFS(t.TempDir()); !errors.Is(err, ErrUnavailable) {
		t.Errorf("NewFS(no self) = %v, want ErrUnavailable", err)
	}
	fs, err := NewFS("")
	if err != nil || fs.Root() != DefaultRoot || fs.Self() != os.Getpid() {
		t.Errorf("NewFS(\"\") = %+v, %v", fs, err)
	}
	f := newFakeProc(t)
	if _, err := EnableReaper(f.fs()); err == nil {
		t.Error("EnableReaper on a fixture root succeeded")
	}
}

func countFDs(t testing.TB) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents) - 1 // the directory's own fd
}

// TestTreeStartTicksFixture: with Members and StartTicks, NewTree reads
// nothing of the main process (it may already be gone); the first Sample
// finds it through Members.
func TestTreeStartTicksFixture(t *testing.T) {
	f := newFakeProc(t)
	family(f)
	before := countFDs(t)
	members := func(dst []int) ([]int, error) { return append(dst, 100, 103), nil }
	tr := newFixtureTree(t, f.fs(), 100, TreeOptions{Members: members, StartTicks: 499})
	if tr.start != 499 {
		t.Errorf("start = %d, want the given 499", tr.start)
	}
	if n := countFDs(t); n != before {
		t.Errorf("NewTree opened %d fds, want none", n-before)
	}
	s, err := tr.Sample()
	if err != nil {
		t.Fatal(err)
	}
	if s.Procs != 2 || s.CPU != ticks(15+7) {
		t.Errorf("Procs %d, CPU %v; want 2, %v", s.Procs, s.CPU, ticks(22))
	}

	// Without StartTicks the main process is read at once, its stat only:
	// its /proc/PID/io waits for the first sample.
	before = countFDs(t)
	tr2 := newFixtureTree(t, f.fs(), 100, TreeOptions{Members: members})
	if tr2.start != 500 {
		t.Errorf("start = %d, want the main process's 500", tr2.start)
	}
	if n := countFDs(t); n != before+1 {
		t.Errorf("NewTree opened %d fds, want 1 (stat)", n-before)
	}
}
