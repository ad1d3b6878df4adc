package cgroupmon

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Ownership of the cgroups cgmon makes. Every directory cgmon creates
// carries a mark, the extended attribute ownerAttr (user.* xattrs on
// cgroupfs exist since Linux 5.7), that says it is cgmon's: cgmon removes
// only directories with the mark, never one that existed before it (an
// operator's root with its settings). An execution's leaf is also locked:
// its monitor holds flock(LOCK_EX) on the directory's descriptor from
// before the mark is written until the leaf is removed, and the kernel
// drops the lock when that process dies, however it dies. So a later
// monitor tells a live leaf from a stale one by trying the lock: no pid is
// compared, so neither pid reuse nor pid namespaces can fool it, and two
// monitors reaping at once cannot both take a leaf.
//
// Where the kernel refuses user xattrs on cgroupfs (before 5.7), a leaf is
// recognised by its name instead (leafPattern), and a root cgmon created
// is removed only by the monitor that created it.

// ownerAttr is the extended attribute that marks a directory as cgmon's.
const ownerAttr = "user.cgmon"

// The kinds of mark, the first word of ownerAttr's value.
const (
	markLeaf = "leaf" // an execution's cgroup: "leaf pid=P pidns=N started=T"
	markRoot = "root" // a root cgmon created: "root pid=P pidns=N"
)

// ownerOnce holds this process's part of every mark, computed once.
var ownerOnce = sync.OnceValue(func() string {
	s := "pid=" + strconv.Itoa(os.Getpid())
	var st unix.Stat_t
	if unix.Stat("/proc/self/ns/pid", &st) == nil {
		s += " pidns=" + strconv.FormatUint(st.Ino, 10)
	}
	return s
})

// markValue is the value of a mark of kind.
func markValue(kind string) []byte {
	v := kind + " " + ownerOnce()
	if kind == markLeaf {
		v += " started=" + time.Now().UTC().Format(time.RFC3339)
	}
	return []byte(v)
}

// errNoXattr says the filesystem refuses user xattrs: marks are not
// available and the name of a leaf is its mark.
var errNoXattr = errors.New("user xattrs are not supported here")

// markFD writes a mark of kind on the directory open at fd.
func markFD(fd int, kind string) error {
	err := unix.Fsetxattr(fd, ownerAttr, markValue(kind), 0)
	if noXattr(err) {
		return errNoXattr
	}
	return err
}

// markPath writes a mark of kind on the directory path.
func markPath(path, kind string) error {
	err := unix.Setxattr(path, ownerAttr, markValue(kind), 0)
	if noXattr(err) {
		return errNoXattr
	}
	return err
}

// noXattr reports whether err is the kernel refusing user xattrs on this
// filesystem (or for this directory) rather than a failure.
func noXattr(err error) bool {
	return errors.Is(err, unix.ENOTSUP) || errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EPERM)
}

// mark is what a directory's ownerAttr says.
type mark struct {
	kind    string // markLeaf, markRoot, or "" when the directory has none
	owner   string // the rest of the value: "pid=P pidns=N started=T"
	noXattr bool   // the filesystem refuses user xattrs: kind is unknown
}

// readMark reads the mark of the directory path.
func readMark(path string) (mark, error) {
	var buf [256]byte
	n, err := unix.Getxattr(path, ownerAttr, buf[:])
	switch {
	case errors.Is(err, unix.ENODATA):
		return mark{}, nil
	case noXattr(err):
		return mark{noXattr: true}, nil
	case err != nil:
		return mark{}, fmt.Errorf("reading the owner mark of %s: %w", path, err)
	}
	kind, owner, _ := strings.Cut(string(buf[:n]), " ")
	return mark{kind: kind, owner: owner}, nil
}

// isLeaf reports whether a directory named name with mark k is an
// execution cgroup cgmon made: its mark says so, or, where there are no
// marks, its name has the form leafs take.
func (k mark) isLeaf(name string) bool {
	if k.noXattr {
		return leafPattern(name)
	}
	return k.kind == markLeaf
}

// leafPattern reports whether name has the form makeLeaf gives a leaf:
// "<id>-<pid>-<sequence>", both numbers in decimal.
func leafPattern(name string) bool {
	digits := func(s string) (rest string, ok bool) {
		i := len(s)
		for i > 0 && s[i-1] >= '0' && s[i-1] <= '9' {
			i--
		}
		if i == len(s) || i == 0 || s[i-1] != '-' {
			return s, false
		}
		return s[:i-1], true
	}
	rest, ok := digits(name)
	if !ok {
		return false
	}
	rest, ok = digits(rest)
	return ok && rest != ""
}

// lockFD takes the owner's lock on the directory open at fd without
// waiting. held is true when another open description (a live monitor, or
// a reaper at work) holds it.
func lockFD(fd int) (held bool, err error) {
	for {
		err = unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if errors.Is(err, unix.EWOULDBLOCK) {
		return true, nil
	}
	return false, err
}

// openDir opens a directory for its descriptor (the lock, the mark, and
// CLONE_INTO_CGROUP).
func openDir(path string) (int, error) {
	return unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
}
