//go:build linux

package proctree

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"unsafe"

	"golang.org/x/sys/unix"
)

// userHZ is the unit of the times in /proc/PID/stat, in ticks per second:
// USER_HZ, 100 on every architecture Go supports (sysconf(_SC_CLK_TCK)).
const userHZ = 100

// maxProcFile caps a read of one proc file, in bytes.
const maxProcFile = 1 << 20

// NewFS returns the proc filesystem mounted at root; empty root means
// DefaultRoot. It fails when root is not a directory or root/self does not
// name a pid.
func NewFS(root string) (FS, error) {
	if root == "" {
		root = DefaultRoot
	}
	st, err := os.Stat(root)
	if err != nil {
		return FS{}, fmt.Errorf("procfallback: proc root: %w", err)
	}
	if !st.IsDir() {
		return FS{}, fmt.Errorf("procfallback: proc root %s is not a directory", root)
	}
	link, err := os.Readlink(filepath.Join(root, "self"))
	if err != nil {
		return FS{}, fmt.Errorf("procfallback: %s/self: %w: %w", root, ErrUnavailable, err)
	}
	self, err := strconv.Atoi(filepath.Base(link))
	if err != nil || self <= 0 {
		return FS{}, fmt.Errorf("procfallback: %s/self points to %q, not a pid: %w", root, link, ErrUnavailable)
	}
	return FS{root: root, self: self, pageSize: uint64(os.Getpagesize())}, nil
}

// thisPid is this process's pid: an FS whose self is another pid is a
// fixture.
var thisPid = os.Getpid()

// orphansComeHere reports whether processes orphaned below this one can
// be re-parented to it: it is a child subreaper (prctl
// PR_GET_CHILD_SUBREAPER), or fs is not this process's /proc (a fixture,
// where the fixture's children of self say so).
func (fs *FS) orphansComeHere() bool {
	if fs.self != thisPid {
		return true
	}
	var v int32
	if err := unix.Prctl(unix.PR_GET_CHILD_SUBREAPER, uintptr(unsafe.Pointer(&v)), 0, 0, 0); err != nil {
		return true // cannot tell: look
	}
	return v != 0
}

// pathBuf builds NUL-terminated proc paths without allocating.
type pathBuf []byte

// pid returns root/pid/name, NUL-terminated, reusing b.
func (b *pathBuf) pid(root string, pid int, name string) []byte {
	p := append((*b)[:0], root...)
	p = append(p, '/')
	p = strconv.AppendInt(p, int64(pid), 10)
	if name != "" {
		p = append(p, '/')
		p = append(p, name...)
	}
	p = append(p, 0)
	*b = p
	return p
}

// task returns root/pid/task/tid/name, NUL-terminated, reusing b.
func (b *pathBuf) task(root string, pid, tid int, name string) []byte {
	p := b.pid(root, pid, "task")
	p = p[:len(p)-1]
	p = append(p, '/')
	p = strconv.AppendInt(p, int64(tid), 10)
	p = append(p, '/')
	p = append(p, name...)
	p = append(p, 0)
	*b = p
	return p
}

// tid returns "tid/name", NUL-terminated, reusing b: a path relative to
// a held task directory.
func (b *pathBuf) tid(tid int, name string) []byte {
	p := strconv.AppendInt((*b)[:0], int64(tid), 10)
	p = append(p, '/')
	p = append(p, name...)
	p = append(p, 0)
	*b = p
	return p
}

// openPath opens a NUL-terminated path read-only without allocating.
func openPath(path []byte, flags int) (int, error) {
	return openAt(unix.AT_FDCWD, path, flags)
}

// openAt opens a NUL-terminated path relative to the directory open at
// dirfd (or unix.AT_FDCWD) read-only without allocating.
func openAt(dirfd int, path []byte, flags int) (int, error) {
	for {
		fd, _, errno := unix.Syscall6(unix.SYS_OPENAT, uintptr(dirfd),
			uintptr(unsafe.Pointer(&path[0])), uintptr(flags|unix.O_RDONLY|unix.O_CLOEXEC), 0, 0, 0)
		if errno == unix.EINTR {
			continue
		}
		if errno != 0 {
			return -1, errno
		}
		return int(fd), nil
	}
}

// preadAll reads the whole file behind fd from offset 0 into buf, growing
// it up to maxProcFile, and returns what it read.
func preadAll(fd int, buf []byte) ([]byte, error) {
	if cap(buf) == 0 {
		buf = make([]byte, 0, 4096)
	}
	n := 0
	for {
		buf = buf[:cap(buf)]
		m, err := unix.Pread(fd, buf[n:], int64(n))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return buf[:0], err
		}
		n += m
		if m == 0 || n < len(buf) {
			return buf[:n], nil
		}
		if len(buf) >= maxProcFile {
			return buf[:0], fmt.Errorf("procfallback: proc file larger than %d bytes", maxProcFile)
		}
		buf = append(buf[:n], make([]byte, len(buf))...)
	}
}

// readPath opens path, reads it whole into buf and closes it.
func readPath(path []byte, buf []byte) ([]byte, error) {
	fd, err := openPath(path, 0)
	if err != nil {
		return buf[:0], err
	}
	b, err := preadAll(fd, buf)
	unix.Close(fd)
	return b, err
}

// gone reports whether err says that the process no longer exists.
func gone(err error) bool {
	return errors.Is(err, unix.ESRCH) || errors.Is(err, unix.ENOENT) || errors.Is(err, io.EOF)
}

// lister lists the children of processes through root/PID/task/*/children
// (CONFIG_PROC_CHILDREN, Linux 3.5+), reusing its buffers.
type lister struct {
	path pathBuf
	dent []byte
	buf  []byte
	tids []int
}

// kid is the held task/TID/children descriptor of one thread.
type kid struct{ tid, fd int }

// closeKids closes every descriptor of kids and returns kids emptied.
func closeKids(kids []kid) []kid {
	for _, k := range kids {
		unix.Close(k.fd)
	}
	return kids[:0]
}

// listThreads lists pid's threads through root/PID/task and brings kids,
// sorted by tid, up to date: the descriptor of a thread still listed is
// kept, one is opened for each new thread (relative to the task directory,
// so it is the same process's), and the descriptor of a thread gone is
// closed. A process that is gone has none: kids comes back empty, and the
// error is nil.
func (l *lister) listThreads(fs *FS, pid int, kids []kid) ([]kid, error) {
	dfd, err := openPath(l.path.pid(fs.root, pid, "task"), unix.O_DIRECTORY)
	if err != nil {
		if gone(err) {
			return closeKids(kids), nil
		}
		return kids, fmt.Errorf("procfallback: list tasks of %d: %w", pid, err)
	}
	defer unix.Close(dfd)
	l.tids, err = readDirPids(dfd, l.tids[:0], &l.dent)
	if err != nil {
		if gone(err) {
			return closeKids(kids), nil
		}
		return kids, fmt.Errorf("procfallback: list tasks of %d: %w", pid, err)
	}
	slices.Sort(l.tids)
	// Merge the sorted listing into the sorted held set, in place: what is
	// kept moves down, what is new goes to the end and is sorted after.
	n, i := 0, 0
	for _, k := range kids {
		for i < len(l.tids) && l.tids[i] < k.tid {
			i++
		}
		if i < len(l.tids) && l.tids[i] == k.tid {
			kids[n] = k
			n++
			continue
		}
		unix.Close(k.fd)
	}
	held := kids[:n]
	kids = held
	var errs error
	j := 0
	for _, tid := range l.tids {
		for j < len(held) && held[j].tid < tid {
			j++
		}
		if j < len(held) && held[j].tid == tid {
			continue
		}
		fd, err := openAt(dfd, l.path.tid(tid, "children"), 0)
		if err != nil {
			if !gone(err) {
				errs = errors.Join(errs, fmt.Errorf("procfallback: children of %d/%d: %w", pid, tid, err))
			}
			continue
		}
		kids = append(kids, kid{tid: tid, fd: fd})
	}
	slices.SortFunc(kids, func(a, b kid) int { return a.tid - b.tid })
	return kids, errs
}

// readKids appends the pids that the held children descriptors of pid's
// threads list to dst.
func (l *lister) readKids(pid int, kids []kid, dst []int) ([]int, error) {
	var errs error
	for _, k := range kids {
		b, err := preadAll(k.fd, l.buf)
		l.buf = b
		if err != nil {
			if !gone(err) {
				errs = errors.Join(errs, fmt.Errorf("procfallback: children of %d/%d: %w", pid, k.tid, err))
			}
			continue
		}
		if dst, err = parseChildren(b, dst); err != nil {
			errs = errors.Join(errs, fmt.Errorf("procfallback: children of %d/%d: %w", pid, k.tid, err))
		}
	}
	return dst, errs
}

// children appends the pids of pid's children to dst, opening and closing
// each thread's file (for a process whose descriptors are not held: this
// process, in the orphan scan and the Reaper). A process that is gone has
// none.
func (l *lister) children(fs *FS, pid int, dst []int) ([]int, error) {
	fd, err := openPath(l.path.pid(fs.root, pid, "task"), unix.O_DIRECTORY)
	if err != nil {
		if gone(err) {
			return dst, nil
		}
		return dst, fmt.Errorf("procfallback: list tasks of %d: %w", pid, err)
	}
	l.tids, err = readDirPids(fd, l.tids[:0], &l.dent)
	unix.Close(fd)
	if err != nil {
		return dst, fmt.Errorf("procfallback: list tasks of %d: %w", pid, err)
	}
	var errs error
	for _, tid := range l.tids {
		b, err := readPath(l.path.task(fs.root, pid, tid, "children"), l.buf)
		l.buf = b
		if err != nil {
			if !gone(err) {
				errs = errors.Join(errs, fmt.Errorf("procfallback: children of %d/%d: %w", pid, tid, err))
			}
			continue
		}
		if dst, err = parseChildren(b, dst); err != nil {
			errs = errors.Join(errs, fmt.Errorf("procfallback: children of %d/%d: %w", pid, tid, err))
		}
	}
	return dst, errs
}

// leaderChildren appends the pids of the children of pid's main thread
// (task/PID/children) to dst. A process that is gone has none.
func (l *lister) leaderChildren(fs *FS, pid int, dst []int) ([]int, error) {
	b, err := readPath(l.path.task(fs.root, pid, pid, "children"), l.buf)
	l.buf = b
	if err != nil {
		if gone(err) {
			return dst, nil
		}
		return dst, fmt.Errorf("procfallback: children of %d: %w", pid, err)
	}
	dst, err = parseChildren(b, dst)
	if err != nil {
		return dst, fmt.Errorf("procfallback: children of %d: %w", pid, err)
	}
	return dst, nil
}

// readDirPids appends the numeric entry names of the directory open at fd.
func readDirPids(fd int, dst []int, dent *[]byte) ([]int, error) {
	if cap(*dent) < 8192 {
		*dent = make([]byte, 8192)
	}
	buf := (*dent)[:cap(*dent)]
	for {
		n, err := unix.Getdents(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return dst, err
		}
		if n <= 0 {
			return dst, nil
		}
		for off := 0; off+19 <= n; {
			reclen := int(*(*uint16)(unsafe.Pointer(&buf[off+16])))
			if reclen <= 0 || off+reclen > n {
				return dst, fmt.Errorf("procfallback: bad dirent")
			}
			name := buf[off+19 : off+reclen]
			v, ok := 0, false
			for _, c := range name {
				if c == 0 {
					break
				}
				if c < '0' || c > '9' {
					ok = false
					break
				}
				v, ok = v*10+int(c-'0'), true
			}
			if ok {
				dst = append(dst, v)
			}
			off += reclen
		}
	}
}
