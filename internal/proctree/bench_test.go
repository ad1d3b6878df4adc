//go:build linux

package proctree

import (
	"bufio"
	"fmt"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// BenchmarkTreeSample measures one Sample of a live tree, the procfs part
// of a tick, for the two ways a Tree finds its members:
//
//   - walk (the procfs backend): from the main process through every
//     thread's task/TID/children. procs=1 and procs=10 are test-binary
//     helpers (a Go process has several threads, each with its own
//     children file); c/procs=1 is /bin/sleep, one thread.
//   - members (the hybrid backend, where cgroup.procs lists the members):
//     the same helpers, their pids given by TreeOptions.Members.
//
// ns/op divided by procs is the cost per process per tick.
func BenchmarkTreeSample(b *testing.B) {
	for _, bc := range []struct {
		name    string
		n       int
		c       bool
		members bool
	}{
		{"procs=1", 1, false, false},
		{"procs=10", 10, false, false},
		{"c/procs=1", 1, true, false},
		{"members/procs=1", 1, false, true},
		{"members/procs=10", 10, false, true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			fs := procFS(b)
			cmd := helperCmd("sleep")
			switch {
			case bc.c:
				cmd = exec.Command("/bin/sleep", "600")
			case bc.n > 1:
				cmd = helperCmd("parent", "CGMON_CHILDREN="+strings.Repeat("sleep,", bc.n-2)+"sleep")
			}
			out, err := cmd.StdoutPipe()
			if err != nil {
				b.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				b.Fatal(err)
			}
			pids := []int{cmd.Process.Pid}
			if !bc.c {
				pids = readyPids(b, bufio.NewReader(out), pids)
			}
			var opts TreeOptions
			if bc.members {
				opts.Members = func(dst []int) ([]int, error) { return append(dst, pids...), nil }
			}
			tree := fs.NewTree(cmd.Process.Pid, opts)
			defer func() {
				tree.Kill(unix.SIGKILL)
				cmd.Wait()
				tree.Close()
			}()
			if s, err := tree.Sample(); err != nil || s.Procs != bc.n {
				b.Fatalf("Sample = %+v, %v; want %d processes", s, err, bc.n)
			}
			if got := tree.Pids(nil); !sameSet(got, pids) {
				b.Fatalf("tree holds %v, want %v", got, pids)
			}
			b.ReportAllocs()
			b.ResetTimer()
			cpu := cpuTime()
			for b.Loop() {
				if _, err := tree.Sample(); err != nil {
					b.Fatal(err)
				}
			}
			reportCPU(b, cpu)
		})
	}
}

// cpuTime is this process's CPU time (user + system) so far.
func cpuTime() time.Duration {
	var ru unix.Rusage
	if unix.Getrusage(unix.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPU reports the process's CPU time per operation since cpu, as
// cpu-ns/op: on a loaded machine it moves less than the wall time, which
// also counts the time spent waiting for a CPU.
func reportCPU(b *testing.B, cpu time.Duration) {
	b.ReportMetric(float64(cpuTime()-cpu)/float64(b.N), "cpu-ns/op")
}

// readyPids appends the pids a helper prints before "ready" to pids.
func readyPids(b *testing.B, out *bufio.Reader, pids []int) []int {
	b.Helper()
	for {
		l, err := out.ReadString('\n')
		if err != nil {
			b.Fatalf("helper did not get ready: %v", err)
		}
		if l == "ready\n" {
			return pids
		}
		pid, err := strconv.Atoi(strings.TrimSpace(l))
		if err != nil {
			b.Fatalf("helper said %q", l)
		}
		pids = append(pids, pid)
	}
}

func sameSet(a, b []int) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// BenchmarkOrphanScan measures one look for orphans among this process's
// children (Tree.adoptOrphans, every orphanEvery samples and after a
// member dies) in a monitor whose other executions' main processes,
// protected by the Reaper, are children too, each waited for by a
// goroutine blocked in wait4 (so on a thread of its own), as cgmon's are:
// siblings=0, and 200 of them.
func BenchmarkOrphanScan(b *testing.B) {
	fs := procFS(b)
	r, err := EnableReaper(fs)
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	for _, n := range []int{0, 200} {
		b.Run(fmt.Sprintf("siblings=%d", n), func(b *testing.B) {
			var cmds []*exec.Cmd
			var waited []chan struct{}
			defer func() {
				for i, c := range cmds {
					c.Process.Kill()
					<-waited[i]
					r.Unprotect(c.Process.Pid)
				}
			}()
			start := func() *exec.Cmd {
				c := exec.Command("/bin/sleep", "600")
				c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
				done := r.Starting()
				err := c.Start()
				if err == nil {
					r.Protect(c.Process.Pid)
				}
				done()
				if err != nil {
					b.Fatal(err)
				}
				cmds = append(cmds, c)
				w := make(chan struct{})
				waited = append(waited, w)
				go func() {
					c.Wait()
					close(w)
				}()
				return c
			}
			for range n {
				start()
			}
			main := start()
			tree := fs.NewTree(main.Process.Pid, TreeOptions{Marker: NewMarker()})
			r.Register(tree)
			defer func() {
				r.Unregister(tree)
				tree.Close()
			}()
			b.ReportAllocs()
			b.ResetTimer()
			cpu := cpuTime()
			for b.Loop() {
				tree.mu.Lock()
				err := tree.adoptOrphans()
				tree.mu.Unlock()
				if err != nil {
					b.Fatal(err)
				}
			}
			reportCPU(b, cpu)
			b.StopTimer()
			if got := tree.Pids(nil); len(got) != 1 {
				b.Fatalf("tree holds %v, want the main process alone", got)
			}
		})
	}
}
