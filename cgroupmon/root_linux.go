package cgroupmon

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// selfLeaf is the leaf a Monitor moves its own process into when it nests
// executions in its own delegated cgroup.
const selfLeaf = "cgmon-monitor"

// execRoot is the cgroup directory under which a Monitor makes the leaves
// of its executions, as New prepared it.
type execRoot struct {
	path string
	// controllers are enabled for the leaves (the root's subtree_control).
	controllers []string
	// owned: cgmon made the directory (its mark says so, or, where the
	// kernel has no user xattrs, this monitor made it), and Close removes
	// it when empty. A root that existed before cgmon, an operator's with
	// its settings, is never removed.
	owned bool
	// shared: the root is the default <mount>/cgmon, which monitors share:
	// one whose neighbour removed it makes it again.
	shared bool
	// movedFrom is the cgroup this process was moved out of (SelfMove).
	movedFrom string
}

// prepareRoot makes the root p chose if needed (and marks it as cgmon's),
// moves this process out of it when it is the own cgroup, and enables the
// controllers it offers for the leaves. On error it undoes what it did.
func prepareRoot(p *Probe, given bool) (_ *execRoot, err error) {
	r := &execRoot{path: p.Root, shared: !given && !p.SelfMove}
	defer func() {
		if err != nil {
			r.undo()
		}
	}()
	if p.SelfMove { // the own cgroup: no other monitor removes it
		if err := r.moveSelfIntoLeaf(); err != nil {
			return nil, err
		}
		return r, r.enableControllers()
	}
	for try := 1; ; try++ {
		err = r.makeOrAdopt()
		if err == nil {
			err = r.enableControllers()
		}
		// Another monitor sharing the root may remove it, empty, between
		// two of these steps (monitors started and closed at once).
		if err == nil || !errors.Is(err, fs.ErrNotExist) || try == 5 {
			return r, err
		}
	}
}

// makeOrAdopt makes the root directory when it does not exist, marked as
// cgmon's; an existing one is cgmon's only when its mark says so.
func (r *execRoot) makeOrAdopt() error {
	err := os.Mkdir(r.path, 0o755)
	switch {
	case err == nil:
		if err := markPath(r.path, markRoot); err != nil && !errors.Is(err, errNoXattr) {
			_ = unix.Rmdir(r.path)
			return fmt.Errorf("marking cgroup root %s as cgmon's: %w", r.path, err)
		}
		r.owned = true
	case errors.Is(err, os.ErrExist):
		k, err := readMark(r.path)
		if err != nil {
			return err
		}
		r.owned = k.kind == markRoot
	default:
		return fmt.Errorf("creating cgroup root %s: %w", r.path, err)
	}
	return nil
}

// moveSelfIntoLeaf moves this process into <root>/cgmon-monitor, so that
// the root holds no process and may enable controllers for its children.
func (r *execRoot) moveSelfIntoLeaf() error {
	leafDir := filepath.Join(r.path, selfLeaf)
	if err := os.Mkdir(leafDir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("creating %s: %w", leafDir, err)
	}
	if err := os.WriteFile(filepath.Join(leafDir, "cgroup.procs"), []byte(strconv.Itoa(os.Getpid())), 0); err != nil {
		_ = os.Remove(leafDir)
		return fmt.Errorf("moving cgmon into %s: %w", leafDir, err)
	}
	r.movedFrom = r.path
	return nil
}

// enableControllers enables every controller cgmon uses that the root
// offers, then reads back what is enabled.
func (r *execRoot) enableControllers() error {
	b, err := readCapped(filepath.Join(r.path, "cgroup.controllers"))
	if err != nil {
		return fmt.Errorf("reading %s/cgroup.controllers: %w", r.path, err)
	}
	avail, err := parseControllers(b)
	if err != nil {
		return fmt.Errorf("%s/cgroup.controllers: %w", r.path, err)
	}
	var want []string
	for _, c := range []string{"cpu", "memory", "pids", "io"} {
		if slices.Contains(avail, c) {
			want = append(want, "+"+c)
		}
	}
	if len(want) > 0 {
		sc := filepath.Join(r.path, "cgroup.subtree_control")
		if err := os.WriteFile(sc, []byte(strings.Join(want, " ")), 0); err != nil {
			return fmt.Errorf("enabling controllers %v in %s: %w", want, sc, err)
		}
	}
	if b, err = readCapped(filepath.Join(r.path, "cgroup.subtree_control")); err == nil {
		r.controllers, _ = parseControllers(b)
	}
	return nil
}

// has reports whether controller c is enabled for the leaves.
func (r *execRoot) has(c string) bool { return r != nil && slices.Contains(r.controllers, c) }

// remake makes the root again, as prepareRoot left it, after another
// monitor sharing it removed it: the directory and the controllers enabled
// for its children.
func (r *execRoot) remake() error {
	if err := r.makeOrAdopt(); err != nil {
		return fmt.Errorf("making cgroup root %s again: %w", r.path, err)
	}
	if len(r.controllers) == 0 {
		return nil
	}
	sc := filepath.Join(r.path, "cgroup.subtree_control")
	if err := os.WriteFile(sc, []byte("+"+strings.Join(r.controllers, " +")), 0); err != nil {
		return fmt.Errorf("enabling controllers %v in %s again: %w", r.controllers, sc, err)
	}
	return nil
}

// undo reverts prepareRoot as far as it went (best effort): moves this
// process back and removes what New made.
func (r *execRoot) undo() {
	if r.movedFrom != "" {
		off := make([]string, len(r.controllers))
		for i, c := range r.controllers {
			off[i] = "-" + c
		}
		_ = os.WriteFile(filepath.Join(r.movedFrom, "cgroup.subtree_control"), []byte(strings.Join(off, " ")), 0)
		if err := os.WriteFile(filepath.Join(r.movedFrom, "cgroup.procs"), []byte(strconv.Itoa(os.Getpid())), 0); err == nil {
			_ = os.Remove(filepath.Join(r.movedFrom, selfLeaf))
		}
		r.movedFrom = ""
	}
	if r.owned {
		// The last monitor out removes a root cgmon made; while another
		// monitor's leaves exist the kernel refuses (EBUSY), harmlessly.
		// It is removed only if its mark still says it is cgmon's: an
		// operator may have made a directory of that name in between.
		if k, err := readMark(r.path); err == nil && (k.kind == markRoot || k.noXattr) {
			_ = unix.Rmdir(r.path)
		}
	}
}
