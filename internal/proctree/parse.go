package proctree

// Pure parsers of /proc/PID/{stat,status,io} and
// /proc/PID/task/TID/children. Each takes the whole file as read (reading
// and capping happen elsewhere) and returns an error wrapping kparse.ErrMalformed
// for anything the kernel would not have written: non-numeric values,
// overflow, truncated lines, missing required fields, NUL bytes. None of
// them panics on any input. parseProcStat and ParseStatusMem, called
// for every process on every tick, do not allocate on success.

import (
	"bytes"
	"math"

	"github.com/cgmon/cgmon/internal/kparse"
)

// atoI64 parses an optionally '-'-signed decimal integer that fits int64.
func atoI64(b []byte) (int64, bool) {
	neg := len(b) > 0 && b[0] == '-'
	if neg {
		b = b[1:]
	}
	u, ok := kparse.AtoU64(b)
	if !ok {
		return 0, false
	}
	if neg {
		if u > 1<<63 {
			return 0, false
		}
		return -int64(u), true
	}
	if u > math.MaxInt64 {
		return 0, false
	}
	return int64(u), true
}

// atoID parses a non-negative decimal that fits int (pids, process groups,
// sessions).
func atoID(b []byte) (int, bool) {
	u, ok := kparse.AtoU64(b)
	if !ok || u > math.MaxInt {
		return 0, false
	}
	return int(u), true
}

// Stat holds the fields of /proc/PID/stat that cgmon uses. Times are in
// clock ticks (USER_HZ), RSS in pages.
type Stat struct {
	PID, PPID, PGRP, Session int
	State                    byte
	// UTimeTicks and STimeTicks are user and system CPU time of the
	// process itself (not of its reaped children), in clock ticks.
	UTimeTicks, STimeTicks uint64
	// StartTimeTicks is the start time after boot, in clock ticks; with the
	// PID it identifies a process across PID reuse.
	StartTimeTicks uint64
	// NumThreads is the number of threads of the process (its thread
	// group), a zombie leader included until the whole group has exited.
	NumThreads int
	// RSSPages is the resident set size in pages (0 for zombies and kernel
	// threads).
	RSSPages int64
}

// statFields is how many fields after the comm ParseStat reads:
// state (3) through rss (24), numbered as in proc(5).
const statFields = 24 - 2

// splitStat checks b and returns the pid field, the comm and the text
// after the comm's closing ") ". The comm may contain spaces, ')' and even
// '\n', so it ends at the last ')' of the line.
func splitStat(b []byte) (pid, comm, rest []byte, err error) {
	const file = "/proc/PID/stat"
	if bytes.IndexByte(b, 0) >= 0 {
		return nil, nil, nil, kparse.Malformed(file, "NUL byte")
	}
	open := bytes.IndexByte(b, '(')
	closing := bytes.LastIndexByte(b, ')')
	if open < 2 || closing < open || b[open-1] != ' ' {
		return nil, nil, nil, kparse.Malformed(file, "no \"PID (comm)\" in %s", kparse.Quote(b))
	}
	if len(b) < closing+2 || b[closing+1] != ' ' {
		return nil, nil, nil, kparse.Malformed(file, "nothing after comm in %s", kparse.Quote(b))
	}
	return b[:open-1], b[open+1 : closing], b[closing+2:], nil
}

// ParseStat parses /proc/PID/stat from the last ')' on, without
// allocating (the comm is skipped: see splitStat). Fields up to rss
// must be present and each must be followed by a space or '\n', so a
// truncated read is an error.
func ParseStat(b []byte) (Stat, error) {
	const file = "/proc/PID/stat"
	pidB, _, rest, err := splitStat(b)
	if err != nil {
		return Stat{}, err
	}
	var s Stat
	pid, ok := atoID(pidB)
	if !ok || pid == 0 {
		return Stat{}, kparse.Malformed(file, "pid %s is not a positive integer", kparse.Quote(pidB))
	}
	s.PID = pid
	for n := 3; n < 3+statFields; n++ {
		end := fieldEnd(rest)
		if end < 0 {
			return Stat{}, kparse.Malformed(file, "field %d of pid %d missing or truncated", n, pid)
		}
		f := rest[:end]
		rest = rest[end+1:]
		if n == 3 {
			if len(f) != 1 || !(f[0] >= 'A' && f[0] <= 'Z' || f[0] >= 'a' && f[0] <= 'z') {
				return Stat{}, kparse.Malformed(file, "state %s is not a letter", kparse.Quote(f))
			}
			s.State = f[0]
			continue
		}
		var bad bool
		switch n {
		case 4, 5, 6: // ppid, pgrp, session: 0 for kernel threads; -1 seen
			// for a pgrp in a dying process group under a 6.1 guest
			v64, ok := atoI64(f)
			bad = !ok || v64 < -1 || v64 > 1<<22
			v := int(v64)
			switch n {
			case 4:
				s.PPID = v
			case 5:
				s.PGRP = v
			case 6:
				s.Session = v
			}
		case 14, 15, 22: // utime, stime, starttime
			v, ok := kparse.AtoU64(f)
			bad = !ok
			switch n {
			case 14:
				s.UTimeTicks = v
			case 15:
				s.STimeTicks = v
			case 22:
				s.StartTimeTicks = v
			}
		case 24: // rss
			s.RSSPages, ok = atoI64(f)
			bad = !ok
		case 20: // num_threads
			v, ok := atoID(f)
			bad = !ok
			s.NumThreads = v
		case 9, 10, 11, 12, 13, 23: // flags, minflt, cminflt, majflt, cmajflt, vsize
			_, ok := kparse.AtoU64(f)
			bad = !ok
		default: // tty_nr, tpgid (-1), cutime, cstime, priority, nice, itrealvalue
			_, ok := atoI64(f)
			bad = !ok
		}
		if bad {
			return Stat{}, kparse.Malformed(file, "field %d of pid %d: %s is not a number", n, pid, kparse.Quote(f))
		}
	}
	return s, nil
}

// fieldEnd is the index of the first ' ' or '\n' in b, or -1.
func fieldEnd(b []byte) int {
	for i, c := range b {
		if c == ' ' || c == '\n' {
			return i
		}
	}
	return -1
}

// StatusMem is the memory of /proc/PID/status, in bytes (the file's kB
// times 1024). Kernel threads and zombies have no Vm* lines; the Has flags
// say which were present.
type StatusMem struct {
	// VmRSS is the resident set size now, in bytes.
	VmRSS uint64
	// VmHWM is the peak resident set size ("high water mark"), in bytes.
	VmHWM              uint64
	HasVmRSS, HasVmHWM bool
}

// ParseStatusMem parses /proc/PID/status for VmRSS and VmHWM without
// allocating. Every line must be "Key:<value>" and end in '\n'; Name is
// required (the kernel's first line), so an empty or cut file is an error;
// VmRSS and VmHWM must be "<n> kB"; a repeated one is an error.
func ParseStatusMem(b []byte) (StatusMem, error) {
	const file = "/proc/PID/status"
	if bytes.IndexByte(b, 0) >= 0 {
		return StatusMem{}, kparse.Malformed(file, "NUL byte")
	}
	if len(b) == 0 || b[len(b)-1] != '\n' {
		return StatusMem{}, kparse.Malformed(file, "empty or last line not terminated (truncated read?)")
	}
	var m StatusMem
	hasName := false
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		line := b[:i]
		b = b[i+1:]
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			return StatusMem{}, kparse.Malformed(file, "line %s has no key", kparse.Quote(line))
		}
		var dst *uint64
		var has *bool
		switch string(line[:colon]) {
		case "Name":
			hasName = true
			continue
		case "VmRSS":
			dst, has = &m.VmRSS, &m.HasVmRSS
		case "VmHWM":
			dst, has = &m.VmHWM, &m.HasVmHWM
		default:
			continue
		}
		if *has {
			return StatusMem{}, kparse.Malformed(file, "%s repeated", line[:colon])
		}
		v, ok := parseKB(line[colon+1:])
		if !ok {
			return StatusMem{}, kparse.Malformed(file, "line %s is not \"<n> kB\"", kparse.Quote(line))
		}
		*dst, *has = v, true
	}
	if !hasName {
		return StatusMem{}, kparse.Malformed(file, "no Name line")
	}
	return m, nil
}

// parseKB parses the value of a status line, blanks then "<n> kB", into
// bytes.
func parseKB(v []byte) (uint64, bool) {
	v = bytes.TrimLeft(v, " \t")
	num, unit, ok := bytes.Cut(v, []byte{' '})
	if !ok || string(unit) != "kB" {
		return 0, false
	}
	kb, ok := kparse.AtoU64(num)
	if !ok || kb > math.MaxUint64/1024 {
		return 0, false
	}
	return kb * 1024, true
}

// procIO is /proc/PID/io. ReadBytes and WriteBytes are bytes that went to
// or came from the storage layer; RChar and WChar are bytes passed to
// read/write-like system calls (pipes and tmpfs included).
type procIO struct{ ReadBytes, WriteBytes, RChar, WChar uint64 }

// parseProcIO parses /proc/PID/io, lines "key: value". rchar, wchar,
// read_bytes and write_bytes are required; other keys are ignored; the
// last line must end in '\n'.
func parseProcIO(b []byte) (procIO, error) {
	const file = "/proc/PID/io"
	var s procIO
	seen, err := kparse.KeyedUints(file, b, ": ", procIOKeys[:], []*uint64{&s.RChar, &s.WChar, &s.ReadBytes, &s.WriteBytes})
	if err != nil {
		return procIO{}, err
	}
	if seen != 15 {
		return procIO{}, kparse.Malformed(file, "one of rchar, wchar, read_bytes, write_bytes missing")
	}
	return s, nil
}

var procIOKeys = [...]string{"rchar", "wchar", "read_bytes", "write_bytes"}

// parseChildren parses /proc/PID/task/TID/children, positive pids each
// followed by a space (the kernel writes "%d "), and appends them to dst.
// An empty file adds nothing. A trailing '\n' is tolerated. On error dst
// is returned as it was passed.
func parseChildren(b []byte, dst []int) ([]int, error) {
	const file = "/proc/PID/task/TID/children"
	orig := dst
	if n := len(b); n > 0 && b[n-1] == '\n' {
		b = b[:n-1]
	}
	for len(b) > 0 {
		end := bytes.IndexByte(b, ' ')
		if end < 0 {
			return orig, kparse.Malformed(file, "last pid %s not followed by a space (truncated read?)", kparse.Quote(b))
		}
		pid, ok := atoID(b[:end])
		if !ok || pid == 0 {
			return orig, kparse.Malformed(file, "%s is not a positive pid", kparse.Quote(b[:end]))
		}
		dst = append(dst, pid)
		b = b[end+1:]
	}
	return dst, nil
}

// CgroupV2Path returns the cgroup v2 path of /proc/PID/cgroup: the "0::"
// line's path (e.g. "/cgmon/job-1-4242-7"); ok is false when the file has
// no such line or it is not an absolute path.
func CgroupV2Path(b []byte) (path string, ok bool) {
	for len(b) > 0 {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		if rest, found := bytes.CutPrefix(line, []byte("0::")); found {
			if len(rest) == 0 || rest[0] != '/' || bytes.IndexByte(rest, 0) >= 0 {
				return "", false
			}
			return string(rest), true
		}
	}
	return "", false
}

// environHas reports whether a /proc/PID/environ file (NUL-separated
// "KEY=VALUE" entries) holds the entry e.
func environHas(b, e []byte) bool {
	for len(b) > 0 {
		i := bytes.IndexByte(b, 0)
		if i < 0 {
			return bytes.Equal(b, e)
		}
		if bytes.Equal(b[:i], e) {
			return true
		}
		b = b[i+1:]
	}
	return false
}
