//go:build !linux && unix

package proctree

import (
	"os"

	"golang.org/x/sys/unix"
)

// NewFS returns ErrNotSupported: only Linux has the proc files this
// package reads.
func NewFS(root string) (FS, error) { return FS{}, ErrNotSupported }

// Tree is not supported outside Linux.
type Tree struct{}

// NewTree returns a Tree whose methods fail with ErrNotSupported.
func (fs FS) NewTree(pid int, opts TreeOptions) *Tree { return &Tree{} }

// Sample returns ErrNotSupported.
func (t *Tree) Sample() (TreeSample, error) { return TreeSample{}, ErrNotSupported }

// Pids returns dst unchanged.
func (t *Tree) Pids(dst []int) []int { return dst }

// Owns returns false.
func (t *Tree) Owns(pid int) bool { return false }

// Reaped does nothing.
func (t *Tree) Reaped(pid int, ru *unix.Rusage) {}

// Snapshot returns ErrNotSupported.
func (t *Tree) Snapshot() error { return ErrNotSupported }

// Totals returns every quantity as unavailable.
func (t *Tree) Totals() Totals {
	why := ErrNotSupported.Error()
	return Totals{
		CPUUser: unavailableDur(why), CPUSystem: unavailableDur(why), CPUTotal: unavailableDur(why),
		MaxRSS: unavailableU64(why), PeakRSS: unavailableU64(why), Procs: unavailableU64(why),
		IORead: unavailableU64(why), IOWrite: unavailableU64(why),
	}
}

// Kill returns ErrNotSupported.
func (t *Tree) Kill(sig unix.Signal) (int, error) { return 0, ErrNotSupported }

// Killed returns dst.
func (t *Tree) Killed(dst []int) []int { return dst }

// Sweep describes what one execution may have left; see the Linux
// documentation.
type Sweep struct {
	Cgroup    string
	Marker    string
	Elsewhere func(cgroup string) bool
	Tree      *Tree
}

// Swept is what Sweep did.
type Swept struct {
	Escaped int
	Cgroups []string
	Reaped  int
}

// Sweep returns ErrNotSupported.
func (r *Reaper) Sweep(s Sweep) (Swept, error) { return Swept{}, ErrNotSupported }

// Close does nothing.
func (t *Tree) Close() error { return nil }

// Reaper is not supported outside Linux.
type Reaper struct{}

// EnableReaper returns ErrNotSupported.
func EnableReaper(fs FS) (*Reaper, error) { return nil, ErrNotSupported }

// Starting returns a no-op.
func (r *Reaper) Starting() (done func()) { return func() {} }

// Protect does nothing.
func (r *Reaper) Protect(pid int) {}

// Unprotect does nothing.
func (r *Reaper) Unprotect(pid int) {}

// Register does nothing.
func (r *Reaper) Register(t *Tree) {}

// Unregister does nothing.
func (r *Reaper) Unregister(t *Tree) {}

// Stats returns zeros.
func (r *Reaper) Stats() (reaped, swept int) { return 0, 0 }

// Close does nothing.
func (r *Reaper) Close() error { return nil }

// RusageOf returns nil outside Linux.
func RusageOf(ps *os.ProcessState) *unix.Rusage { return nil }
