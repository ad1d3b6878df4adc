package cgroupmon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Reaping: the cgroups a monitor that died left behind. A monitor killed
// with SIGKILL (or a crashed program that imported the library) cannot
// remove its executions' leaves; their main processes die with it (the
// parent-death signal, see starter), but their other processes live on.
// Every New looks at its root, and each leaf that cgmon made (its mark)
// and whose lock nobody holds is stale: its owner is gone. It is killed,
// waited for and removed, bottom-up through any cgroup the workload made
// in it. The lock is held while reaping, so two monitors never reap the
// same leaf, and a live monitor's leaf is never touched.

// reapWait is how long reaping waits for a stale leaf's processes to die
// before leaving it for a later reaping.
const reapWait = 2 * time.Second

// Reap reaps the stale leaves under the execution root that New would
// choose with opts (as `cgmon reap` does from a timer or at boot), and
// then removes the root itself when cgmon made it and it is empty. It
// prepares nothing: a root that does not exist has nothing to reap. The
// error wraps ErrNotDelegated when there is no root this user may write
// to, or names the leaves that could not be reaped.
func Reap(opts Options) (Reaped, error) {
	p, err := ProbeHost(opts)
	if err != nil {
		return Reaped{}, err
	}
	root := opts.CgroupRoot
	switch {
	case root != "":
		root = filepath.Clean(root)
	case p.Root == "":
		return Reaped{}, fmt.Errorf("%w: %s", ErrNotDelegated, p.RootReason)
	default:
		root = p.Root
	}
	cgroupKill := p.Features.CgroupKill
	if _, err := os.Stat(root); errors.Is(err, os.ErrNotExist) {
		return Reaped{Root: root, Leaves: []StaleLeaf{}}, nil
	}
	if err := writableDir(root); err != nil {
		return Reaped{Root: root}, &notDelegatedError{root + ": " + err.Error()}
	}
	if !cgroupKill {
		_, err := os.Stat(filepath.Join(root, "cgroup.kill"))
		cgroupKill = err == nil
	}
	r := reapRoot(root, cgroupKill)
	if k, err := readMark(root); err == nil && k.kind == markRoot {
		_ = unix.Rmdir(root) // EBUSY while another monitor's leaves are there
	}
	if len(r.Failed) > 0 {
		return r, fmt.Errorf("%d stale cgroup(s) could not be reaped: %s", len(r.Failed), strings.Join(r.Failed, "; "))
	}
	return r, nil
}

// FindStale lists the stale leaves under root without changing anything
// (`cgmon doctor`). A leaf is stale when cgmon made it and no process
// holds its lock.
func FindStale(root string) ([]StaleLeaf, error) {
	var out []StaleLeaf
	err := eachLeaf(root, func(path, owner string, fd int) error {
		// A shared lock is enough to tell: the owner holds an exclusive
		// one. It is dropped at once (the descriptor is closed).
		err := unix.Flock(fd, unix.LOCK_SH|unix.LOCK_NB)
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil
		}
		if err != nil {
			return err
		}
		pids, _ := subtreePids(path, nil, true)
		out = append(out, StaleLeaf{Path: path, Owner: owner, Processes: len(pids)})
		return nil
	})
	return out, err
}

// eachLeaf calls f for each directory under root that is a leaf cgmon
// made, with its mark's owner and an open descriptor of it, closed after
// f returns. One readdir of root when none is: names that cannot be a
// leaf's are skipped without a system call.
func eachLeaf(root string, f func(path, owner string, fd int) error) error {
	ents, err := os.ReadDir(root)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return err
	}
	var errs []error
	for _, e := range ents {
		if !e.IsDir() || !leafPattern(e.Name()) {
			continue
		}
		path := filepath.Join(root, e.Name())
		k, err := readMark(path)
		if err != nil {
			if !errors.Is(err, unix.ENOENT) {
				errs = append(errs, err)
			}
			continue
		}
		if !k.isLeaf(e.Name()) {
			continue // not cgmon's: an operator's, or an older cgmon's
		}
		fd, err := openDir(path)
		if err != nil {
			if !errors.Is(err, unix.ENOENT) {
				errs = append(errs, err)
			}
			continue
		}
		errs = append(errs, f(path, k.owner, fd))
		unix.Close(fd)
	}
	return errors.Join(errs...)
}

// reapRoot reaps the stale leaves under root; cgroupKill says the kernel
// has cgroup.kill.
func reapRoot(root string, cgroupKill bool) Reaped {
	r := Reaped{Root: root, Leaves: []StaleLeaf{}}
	err := eachLeaf(root, func(path, owner string, fd int) error {
		held, err := lockFD(fd)
		if err != nil || held {
			return err // held: a live monitor's, or another reaper's now
		}
		n, err := reapLeaf(path, cgroupKill)
		if err != nil {
			r.Failed = append(r.Failed, err.Error())
			return nil
		}
		r.Leaves = append(r.Leaves, StaleLeaf{Path: path, Owner: owner, Processes: n})
		r.ProcessesKilled += n
		return nil
	})
	if err != nil {
		r.Failed = append(r.Failed, err.Error())
	}
	return r
}

// reapLeaf kills every process in the stale leaf at path (whose lock the
// caller holds) and below it, waits until it is empty, and removes it
// bottom-up. It returns how many processes it killed.
func reapLeaf(path string, cgroupKill bool) (int, error) {
	l := newLeaf(path)
	l.cgroupKill = cgroupKill
	defer l.closeFDs()
	ctx, cancel := context.WithTimeout(context.Background(), reapWait)
	defer cancel()
	n, err := l.killAndWait(ctx)
	if err != nil {
		return n, fmt.Errorf("killing the processes of stale cgroup %s: %w", path, err)
	}
	l.closeFDs()
	return n, removeTree(path)
}
