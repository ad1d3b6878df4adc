package cgroupmon

import (
	"sync"

	"golang.org/x/sys/unix"

	"github.com/cgmon/cgmon/internal/proctree"
)

// selfPeak is this process's own peak RSS (VmHWM): what a child started
// with vfork inherits at exec. exec.Cmd starts children with
// CLONE_VM|CLONE_VFORK, and at exec the kernel folds the parent's RSS
// high-water mark into the child's maxrss, so a child's rusage maxrss not
// above this says nothing about the program. Only the procfs memory source
// needs it; it is read while the command runs.
type selfPeak struct {
	procRoot string
	// inherited is the maxrss this process inherited when it was itself
	// started with vfork (go test and Python's subprocess do that), when
	// that exceeds its own peak; measured once, on first use.
	inherited     uint64
	inheritedOnce sync.Once

	// status is <procRoot>/self/status, held open once needed: a pread
	// costs a third of opening the file each time.
	mu  sync.Mutex
	fd  int
	buf [4096]byte
}

func newSelfPeak(procRoot string) *selfPeak { return &selfPeak{procRoot: procRoot, fd: -1} }

// bytes returns the peak, in bytes. getrusage(RUSAGE_SELF) gives the larger
// of the peak and what this process inherited at its own exec, so a value
// above that is the peak itself, in one system call; otherwise
// /proc/self/status tells.
func (s *selfPeak) bytes() uint64 {
	s.inheritedOnce.Do(func() {
		if g := rusageMaxRSS(); g > s.readHWM() {
			s.inherited = g
		}
	})
	g := rusageMaxRSS()
	if g > s.inherited {
		return g
	}
	// VmHWM, or when it cannot be read the upper bound g: a threshold too
	// high only leaves a peak unmeasured, one too low would pass cgmon's
	// own memory off as the program's.
	if hwm := s.readHWM(); hwm > 0 {
		return hwm
	}
	return g
}

// readHWM reads VmHWM from the held /proc/self/status; 0 if it cannot.
func (s *selfPeak) readHWM() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fd < 0 {
		fd, err := unix.Open(s.procRoot+"/self/status", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return 0
		}
		s.fd = fd
	}
	n, err := unix.Pread(s.fd, s.buf[:], 0)
	if err != nil {
		return 0
	}
	b := s.buf[:n]
	if n == len(s.buf) { // longer than the buffer (many CPUs): read it whole
		if b, err = readCapped(s.procRoot + "/self/status"); err != nil {
			return 0
		}
	}
	m, err := proctree.ParseStatusMem(b)
	if err != nil || !m.HasVmHWM {
		return 0
	}
	return m.VmHWM
}

// close releases the held descriptor.
func (s *selfPeak) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fd >= 0 {
		unix.Close(s.fd)
		s.fd = -1
	}
}

// rusageMaxRSS is getrusage(RUSAGE_SELF)'s maxrss in bytes; 0 if unknown.
func rusageMaxRSS() uint64 {
	var ru unix.Rusage
	if unix.Getrusage(unix.RUSAGE_SELF, &ru) != nil || ru.Maxrss < 0 {
		return 0
	}
	return uint64(ru.Maxrss) * 1024
}
