package cgroupmon

// Pure parsers of the cgroup v2 files and of /proc/self/{cgroup,mountinfo}.
// Each takes the whole file as read (reading and capping happen elsewhere) and
// returns an error wrapping errMalformed for anything the kernel would not
// have written: non-numeric values, overflow, truncated lines, missing
// required keys, NUL bytes. None of them panics on any input.
//
// Multi-line files must end in '\n' (kparse.CheckLines), as the kernel's seq_file output always
// does: a last line without it is taken to be a truncated read, so that a
// cut-off "usage_usec 93" is an error rather than a wrong number.
// Single-value files (memory.peak, pids.max, ...) take an optional '\n'.
//
// The parsers used on every sampler tick (parseCPUStat, parseUint,
// parseLimit, parseCgroupEvents) and the final-read ones (parseMemoryEvents,
// parseIOStat, parsePSI, parseCPUMax) do not allocate on success.

import (
	"bytes"
	"fmt"
	"math"

	"github.com/cgmon/cgmon/internal/kparse"
)

// errMalformed is wrapped by every parse error: the file's content is not
// what the kernel writes. It is the one of package kparse, shared with the
// other package of parsers.
var errMalformed = kparse.ErrMalformed

// uintField parses val as the value of key in file.
func uintField(file string, key, val []byte) (uint64, error) {
	v, ok := kparse.AtoU64(val)
	if !ok {
		return 0, kparse.Malformed(file, "%s: value %s is not an unsigned 64-bit integer", key, kparse.Quote(val))
	}
	return v, nil
}

// cpuStat is cpu.stat; times are in microseconds. Fields absent in the file
// stay 0; HasThrottling says whether the throttling ones were present.
type cpuStat struct {
	UsageUsec, UserUsec, SystemUsec       uint64
	NrPeriods, NrThrottled, ThrottledUsec uint64
	// HasThrottling: nr_periods, nr_throttled and throttled_usec were all
	// present (only with the cpu controller enabled).
	HasThrottling bool
}

// cpuStatKeys are the keys of cpu.stat that parseCPUStat reads, in the
// order of the seen bits below.
var cpuStatKeys = [...]string{"usage_usec", "user_usec", "system_usec", "nr_periods", "nr_throttled", "throttled_usec"}

// Bits for the keys of cpu.stat that parseCPUStat has seen.
const (
	seenUsage = 1 << iota
	seenUser
	seenSystem
	seenPeriods
	seenThrottled
	seenThrottledUsec
)

// parseCPUStat parses cpu.stat. usage_usec, user_usec and system_usec are
// required (the core always writes them); the throttling keys come with the
// cpu controller. Unknown keys (nr_bursts, nice_usec, ...) are ignored but
// must still have the "key value" shape. A repeated known key is an error.
func parseCPUStat(b []byte) (cpuStat, error) {
	const file = "cpu.stat"
	var s cpuStat
	seen, err := kparse.KeyedUints(file, b, " ", cpuStatKeys[:], []*uint64{
		&s.UsageUsec, &s.UserUsec, &s.SystemUsec, &s.NrPeriods, &s.NrThrottled, &s.ThrottledUsec,
	})
	if err != nil {
		return cpuStat{}, err
	}
	const core = seenUsage | seenUser | seenSystem
	if seen&core != core {
		return cpuStat{}, kparse.Malformed(file, "usage_usec, user_usec or system_usec missing")
	}
	const thr = seenPeriods | seenThrottled | seenThrottledUsec
	switch seen & thr {
	case thr:
		s.HasThrottling = true
	case 0:
	default:
		return cpuStat{}, kparse.Malformed(file, "only some of nr_periods, nr_throttled, throttled_usec present")
	}
	return s, nil
}

// memoryEvents is memory.events (or memory.events.local): counts of events.
type memoryEvents struct {
	Low, High, Max, OOM, OOMKill, OOMGroupKill uint64
	// HasOOMGroupKill: oom_group_kill was present (Linux >= 5.17).
	HasOOMGroupKill bool
}

var memoryEventsKeys = [...]string{"low", "high", "max", "oom", "oom_kill", "oom_group_kill"}

// parseMemoryEvents parses memory.events. low, high, max, oom and oom_kill
// are required (present since Linux 4.13); oom_group_kill is optional.
// Unknown keys are ignored; a repeated known key is an error.
func parseMemoryEvents(b []byte) (memoryEvents, error) {
	const file = "memory.events"
	var e memoryEvents
	seen, err := kparse.KeyedUints(file, b, " ", memoryEventsKeys[:], []*uint64{
		&e.Low, &e.High, &e.Max, &e.OOM, &e.OOMKill, &e.OOMGroupKill,
	})
	if err != nil {
		return memoryEvents{}, err
	}
	if seen&31 != 31 {
		return memoryEvents{}, kparse.Malformed(file, "one of low, high, max, oom, oom_kill missing")
	}
	e.HasOOMGroupKill = seen&32 != 0
	return e, nil
}

// parseMemoryStat parses memory.stat (values in bytes, or counts for the
// pg* and workingset keys) into a map. An empty file is an error; every
// value must be an unsigned integer; a repeated key is an error.
func parseMemoryStat(b []byte) (map[string]uint64, error) {
	const file = "memory.stat"
	if err := kparse.CheckLines(file, b); err != nil {
		return nil, err
	}
	if len(b) == 0 {
		return nil, kparse.Malformed(file, "empty")
	}
	m := make(map[string]uint64, bytes.Count(b, []byte{'\n'}))
	for len(b) > 0 {
		var line []byte
		line, b = kparse.NextLine(b)
		key, val, err := kparse.SplitKV(file, line, " ")
		if err != nil {
			return nil, err
		}
		v, err := uintField(file, key, val)
		if err != nil {
			return nil, err
		}
		if _, dup := m[string(key)]; dup {
			return nil, kparse.Malformed(file, "key %s repeated", key)
		}
		m[string(key)] = v
	}
	return m, nil
}

// parseAnonHead parses the head of memory.stat as read into a small
// buffer: its first line, which the kernel has written as "anon N" since
// memory.stat came to cgroup v2 (Linux 4.5). The line must be whole (end
// in '\n'); what follows it is ignored.
func parseAnonHead(b []byte) (uint64, error) {
	const file = "memory.stat"
	line, _, ok := bytes.Cut(b, []byte{'\n'})
	if !ok {
		return 0, kparse.Malformed(file, "first line %s is cut off or too long", kparse.Quote(b))
	}
	val, ok := bytes.CutPrefix(line, []byte("anon "))
	if !ok {
		return 0, kparse.Malformed(file, "first line %s is not \"anon N\"", kparse.Quote(line))
	}
	return uintField(file, []byte("anon"), val)
}

// memoryMakeup is what a cgroup's memory charge is made of, from
// memory.stat, in bytes.
type memoryMakeup struct {
	// File is page cache, tmpfs and shared memory included; Shmem is
	// tmpfs and shared memory alone.
	File, Shmem uint64
	// Kernel is kernel memory: the "kernel" line (Linux 5.18), else the
	// sum of the parts older kernels list (KernelSummed).
	Kernel       uint64
	KernelSummed bool
}

// kernelParts are the kernel-memory lines of memory.stat on kernels
// without a "kernel" line; a kernel lists those it has.
var kernelParts = []string{"kernel_stack", "pagetables", "sec_pagetables", "percpu", "sock", "vmalloc", "slab"}

// parseMemoryMakeup parses memory.stat into what the charge is made of.
// file and shmem are required, as is "kernel" or "slab".
func parseMemoryMakeup(b []byte) (memoryMakeup, error) {
	const file = "memory.stat"
	st, err := parseMemoryStat(b)
	if err != nil {
		return memoryMakeup{}, err
	}
	var m memoryMakeup
	var ok1, ok2 bool
	m.File, ok1 = st["file"]
	m.Shmem, ok2 = st["shmem"]
	if !ok1 || !ok2 {
		return memoryMakeup{}, kparse.Malformed(file, "file or shmem missing")
	}
	if k, ok := st["kernel"]; ok {
		m.Kernel = k
		return m, nil
	}
	if _, ok := st["slab"]; !ok {
		return memoryMakeup{}, kparse.Malformed(file, "neither kernel nor slab")
	}
	m.KernelSummed = true
	for _, k := range kernelParts {
		v, ok := addU64(m.Kernel, st[k])
		if !ok {
			return memoryMakeup{}, kparse.Malformed(file, "kernel memory overflows")
		}
		m.Kernel = v
	}
	return m, nil
}

// ioStat is io.stat summed over all devices: bytes and I/O operations.
type ioStat struct{ RBytes, WBytes, RIOs, WIOs uint64 }

// parseIOStat parses io.stat, lines like
// "8:0 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=0 dios=0", and sums the
// counters over devices. An empty file gives zeros and no error (a guest
// with no block device). rbytes, wbytes, rios and wios are required on each
// line; other keys (dbytes, dios, cost.*) are ignored but must be key=value.
func parseIOStat(b []byte) (ioStat, error) {
	const file = "io.stat"
	var s ioStat
	if err := kparse.CheckLines(file, b); err != nil {
		return s, err
	}
	for len(b) > 0 {
		var line []byte
		line, b = kparse.NextLine(b)
		dev, rest, _ := bytes.Cut(line, []byte{' '})
		maj, min, ok := bytes.Cut(dev, []byte{':'})
		if _, ok1 := kparse.AtoU64(maj); !ok || !ok1 {
			return ioStat{}, kparse.Malformed(file, "line %s does not start with MAJ:MIN", kparse.Quote(line))
		}
		if _, ok := kparse.AtoU64(min); !ok {
			return ioStat{}, kparse.Malformed(file, "line %s does not start with MAJ:MIN", kparse.Quote(line))
		}
		var l ioStat
		seen := 0
		for len(rest) > 0 {
			var field []byte
			field, rest, _ = bytes.Cut(rest, []byte{' '})
			key, val, ok := bytes.Cut(field, []byte{'='})
			if !ok || len(key) == 0 || len(val) == 0 {
				return ioStat{}, kparse.Malformed(file, "field %s is not key=value", kparse.Quote(field))
			}
			var dst *uint64
			var bit int
			switch string(key) {
			case "rbytes":
				dst, bit = &l.RBytes, 1
			case "wbytes":
				dst, bit = &l.WBytes, 2
			case "rios":
				dst, bit = &l.RIOs, 4
			case "wios":
				dst, bit = &l.WIOs, 8
			default:
				continue
			}
			if seen&bit != 0 {
				return ioStat{}, kparse.Malformed(file, "key %s repeated on a line", key)
			}
			seen |= bit
			var err error
			if *dst, err = uintField(file, key, val); err != nil {
				return ioStat{}, err
			}
		}
		if seen != 15 {
			return ioStat{}, kparse.Malformed(file, "line %s lacks one of rbytes, wbytes, rios, wios", kparse.Quote(line))
		}
		var ok1, ok2, ok3, ok4 bool
		s.RBytes, ok1 = addU64(s.RBytes, l.RBytes)
		s.WBytes, ok2 = addU64(s.WBytes, l.WBytes)
		s.RIOs, ok3 = addU64(s.RIOs, l.RIOs)
		s.WIOs, ok4 = addU64(s.WIOs, l.WIOs)
		if !ok1 || !ok2 || !ok3 || !ok4 {
			return ioStat{}, kparse.Malformed(file, "sum over devices overflows")
		}
	}
	return s, nil
}

// addU64 adds with an overflow check.
func addU64(a, b uint64) (uint64, bool) {
	s := a + b
	return s, s >= a
}

// trimNewline drops one trailing '\n' and rejects NUL bytes.
func trimNewline(file string, b []byte) ([]byte, error) {
	if bytes.IndexByte(b, 0) >= 0 {
		return nil, kparse.Malformed(file, "NUL byte")
	}
	if n := len(b); n > 0 && b[n-1] == '\n' {
		b = b[:n-1]
	}
	return b, nil
}

// parseUint parses a single-value file such as memory.current,
// memory.peak (in bytes), pids.current or pids.peak: decimal digits and an
// optional trailing '\n'.
func parseUint(b []byte) (uint64, error) {
	const file = "single-value file"
	t, err := trimNewline(file, b)
	if err != nil {
		return 0, err
	}
	v, ok := kparse.AtoU64(t)
	if !ok {
		return 0, kparse.Malformed(file, "%s is not an unsigned 64-bit integer", kparse.Quote(b))
	}
	return v, nil
}

// parseLimit parses a limit file such as memory.max (in bytes) or pids.max:
// "max" means unlimited, otherwise an unsigned integer; optional '\n'.
func parseLimit(b []byte) (v uint64, unlimited bool, err error) {
	const file = "limit file"
	t, err := trimNewline(file, b)
	if err != nil {
		return 0, false, err
	}
	if string(t) == "max" {
		return 0, true, nil
	}
	v, ok := kparse.AtoU64(t)
	if !ok {
		return 0, false, kparse.Malformed(file, "%s is neither \"max\" nor an unsigned 64-bit integer", kparse.Quote(b))
	}
	return v, false, nil
}

// parseCPUMax parses cpu.max, "$QUOTA $PERIOD" in microseconds; a quota of
// "max" (no limit) gives quotaUsec -1. Both fields are required, as the
// kernel always writes both.
func parseCPUMax(b []byte) (quotaUsec int64, periodUsec uint64, err error) {
	const file = "cpu.max"
	t, err := trimNewline(file, b)
	if err != nil {
		return 0, 0, err
	}
	q, p, ok := bytes.Cut(t, []byte{' '})
	if !ok {
		return 0, 0, kparse.Malformed(file, "%s is not \"$QUOTA $PERIOD\"", kparse.Quote(b))
	}
	period, ok := kparse.AtoU64(p)
	if !ok || period == 0 {
		return 0, 0, kparse.Malformed(file, "period %s is not a positive integer", kparse.Quote(p))
	}
	if string(q) == "max" {
		return -1, period, nil
	}
	quota, ok := kparse.AtoU64(q)
	if !ok || quota > math.MaxInt64 {
		return 0, 0, kparse.Malformed(file, "quota %s is neither \"max\" nor a 63-bit integer", kparse.Quote(q))
	}
	return int64(quota), period, nil
}

// cgroupEvents is cgroup.events.
type cgroupEvents struct {
	// Populated: the cgroup or a descendant holds a live process.
	Populated bool
	// Frozen: the cgroup is frozen (the key exists since Linux 5.2; absent
	// means false).
	Frozen bool
}

var cgroupEventsKeys = [...]string{"populated", "frozen"}

// parseCgroupEvents parses cgroup.events; "populated" is required, values
// must be 0 or 1, unknown keys are ignored.
func parseCgroupEvents(b []byte) (cgroupEvents, error) {
	const file = "cgroup.events"
	var populated, frozen uint64
	seen, err := kparse.KeyedUints(file, b, " ", cgroupEventsKeys[:], []*uint64{&populated, &frozen})
	if err != nil {
		return cgroupEvents{}, err
	}
	if seen&1 == 0 {
		return cgroupEvents{}, kparse.Malformed(file, "populated missing")
	}
	for i, v := range [...]uint64{populated, frozen} {
		if v > 1 {
			return cgroupEvents{}, kparse.Malformed(file, "%s: value %d is not 0 or 1", cgroupEventsKeys[i], v)
		}
	}
	return cgroupEvents{Populated: populated == 1, Frozen: frozen == 1}, nil
}

var cgroupStatKeys = [...]string{"nr_descendants"}

// parseNrDescendants parses cgroup.stat and returns nr_descendants, the
// number of live cgroups below this one (the key is required; the others,
// which vary by kernel, are ignored).
func parseNrDescendants(b []byte) (uint64, error) {
	const file = "cgroup.stat"
	var n uint64
	seen, err := kparse.KeyedUints(file, b, " ", cgroupStatKeys[:], []*uint64{&n})
	if err != nil {
		return 0, err
	}
	if seen&1 == 0 {
		return 0, kparse.Malformed(file, "nr_descendants missing")
	}
	return n, nil
}

// psiLine is one line of a pressure file: the share of wall time stalled,
// in percent, averaged over 10, 60 and 300 seconds, and the total stall
// time in microseconds.
type psiLine struct {
	Avg10, Avg60, Avg300 float64
	Total                uint64
}

// psi is a pressure file (cpu.pressure, memory.pressure, io.pressure).
type psi struct {
	Some, Full psiLine
	// HasFull: the "full" line was present (cpu.pressure has it since
	// Linux 5.13).
	HasFull bool
}

// parsePSI parses a pressure file: a required "some" line and an optional
// "full" line, each "avg10=A avg60=B avg300=C total=T" in that order.
func parsePSI(b []byte) (psi, error) {
	const file = "pressure file"
	var p psi
	if err := kparse.CheckLines(file, b); err != nil {
		return p, err
	}
	seen := 0
	for len(b) > 0 {
		var line []byte
		line, b = kparse.NextLine(b)
		kind, rest, _ := bytes.Cut(line, []byte{' '})
		var dst *psiLine
		var bit int
		switch string(kind) {
		case "some":
			dst, bit = &p.Some, 1
		case "full":
			dst, bit = &p.Full, 2
		default:
			return psi{}, kparse.Malformed(file, "line %s is neither some nor full", kparse.Quote(line))
		}
		if seen&bit != 0 {
			return psi{}, kparse.Malformed(file, "%s line repeated", kind)
		}
		seen |= bit
		var err error
		if *dst, err = parsePSILine(file, rest); err != nil {
			return psi{}, err
		}
	}
	if seen&1 == 0 {
		return psi{}, kparse.Malformed(file, "some line missing")
	}
	p.HasFull = seen&2 != 0
	return p, nil
}

// psiKeys are the fields of a pressure line, in the kernel's order.
var psiKeys = [4]string{"avg10", "avg60", "avg300", "total"}

// parsePSILine parses "avg10=A avg60=B avg300=C total=T".
func parsePSILine(file string, b []byte) (psiLine, error) {
	var l psiLine
	avgs := [3]*float64{&l.Avg10, &l.Avg60, &l.Avg300}
	for i, want := range psiKeys {
		var field []byte
		field, b, _ = bytes.Cut(b, []byte{' '})
		key, val, ok := bytes.Cut(field, []byte{'='})
		if !ok || string(key) != want {
			return psiLine{}, kparse.Malformed(file, "field %s is not %s=...", kparse.Quote(field), want)
		}
		if i < 3 {
			f, ok := atoDecimal(val)
			if !ok {
				return psiLine{}, kparse.Malformed(file, "%s: %s is not a decimal number", want, kparse.Quote(val))
			}
			*avgs[i] = f
			continue
		}
		v, err := uintField(file, key, val)
		if err != nil {
			return psiLine{}, err
		}
		l.Total = v
	}
	if len(b) > 0 {
		return psiLine{}, kparse.Malformed(file, "trailing fields %s", kparse.Quote(b))
	}
	return l, nil
}

// atoDecimal parses "D+" or "D+.D+" (the kernel writes "%lu.%02lu") with at
// most 15 digits in all, so the value is exact before the one rounding
// division; it refuses signs, exponents, NaN and Inf.
func atoDecimal(b []byte) (float64, bool) {
	ip, fp, dot := bytes.Cut(b, []byte{'.'})
	if len(ip) == 0 || (dot && len(fp) == 0) || len(ip)+len(fp) > 15 {
		return 0, false
	}
	i, ok := kparse.AtoU64(ip)
	if !ok {
		return 0, false
	}
	if !dot {
		return float64(i), true
	}
	// The fraction is zero-padded ("%02lu"), so it is read digit by digit.
	var f, scale uint64 = 0, 1
	for _, c := range fp {
		if c < '0' || c > '9' {
			return 0, false
		}
		f = f*10 + uint64(c-'0')
		scale *= 10
	}
	return float64(i*scale+f) / float64(scale), true
}

// parseControllers parses cgroup.controllers or cgroup.subtree_control:
// controller names separated by spaces. An empty file gives no names.
// Names must be lower-case letters, digits or '_'.
func parseControllers(b []byte) ([]string, error) {
	const file = "cgroup.controllers"
	t, err := trimNewline(file, b)
	if err != nil {
		return nil, err
	}
	if len(t) == 0 {
		return nil, nil
	}
	var names []string
	for _, f := range bytes.Split(t, []byte{' '}) {
		if len(f) == 0 {
			return nil, kparse.Malformed(file, "empty name in %s", kparse.Quote(b))
		}
		for _, c := range f {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
				return nil, kparse.Malformed(file, "bad controller name %s", kparse.Quote(f))
			}
		}
		names = append(names, string(f))
	}
	return names, nil
}

// parseProcCgroup parses /proc/PID/cgroup, lines "ID:controllers:path".
// It returns the cgroup v2 path (from the "0::" line) and hasV2 when such a
// line exists, and v1 when any v1 hierarchy (nonzero ID) is listed. The
// path may itself contain ':'.
func parseProcCgroup(b []byte) (v2Path string, hasV2 bool, v1 bool, err error) {
	const file = "/proc/self/cgroup"
	if err := kparse.CheckLines(file, b); err != nil {
		return "", false, false, err
	}
	if len(b) == 0 {
		return "", false, false, kparse.Malformed(file, "empty")
	}
	for len(b) > 0 {
		var line []byte
		line, b = kparse.NextLine(b)
		id, rest, ok1 := bytes.Cut(line, []byte{':'})
		ctrl, path, ok2 := bytes.Cut(rest, []byte{':'})
		n, ok := kparse.AtoU64(id)
		if !ok1 || !ok2 || !ok || len(path) == 0 || path[0] != '/' {
			return "", false, false, kparse.Malformed(file, "line %s is not ID:controllers:/path", kparse.Quote(line))
		}
		if n != 0 {
			v1 = true
			continue
		}
		if len(ctrl) != 0 {
			return "", false, false, kparse.Malformed(file, "line %s: hierarchy 0 with controllers", kparse.Quote(line))
		}
		if hasV2 {
			return "", false, false, kparse.Malformed(file, "two 0:: lines")
		}
		v2Path, hasV2 = string(path), true
	}
	return v2Path, hasV2, v1, nil
}

// mount is one line of /proc/PID/mountinfo, octal escapes (\040 for a
// space) decoded in every field but SuperOptions, which is kept as written.
type mount struct {
	MountPoint, FSType, Source, SuperOptions string
	// Root is the path within the filesystem that is mounted at MountPoint
	// (for cgroup2, the cgroup that appears as the mount's root).
	Root string
	// ReadOnly is true when the mount's own options (not the superblock's)
	// hold "ro", as Docker mounts cgroup2 into a container that is not
	// privileged.
	ReadOnly bool
}

// parseMountinfo parses /proc/PID/mountinfo (proc(5)): "ID PARENT MAJ:MIN
// ROOT MOUNTPOINT OPTS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTS". Fields are
// split on single spaces, so an empty SOURCE is kept.
func parseMountinfo(b []byte) ([]mount, error) {
	const file = "mountinfo"
	if err := kparse.CheckLines(file, b); err != nil {
		return nil, err
	}
	if len(b) == 0 {
		return nil, kparse.Malformed(file, "empty")
	}
	var out []mount
	for len(b) > 0 {
		var line []byte
		line, b = kparse.NextLine(b)
		m, err := parseMountLine(file, line)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}

// parseMountLine parses one mountinfo line.
func parseMountLine(file string, line []byte) (mount, error) {
	bad := func(why string) error {
		return kparse.Malformed(file, "line %s: %s", kparse.Quote(line), why)
	}
	f := bytes.Split(line, []byte{' '})
	sep := -1
	for i := 6; i < len(f); i++ {
		if string(f[i]) == "-" {
			sep = i
			break
		}
	}
	if len(f) < 10 || sep < 0 {
		return mount{}, bad("too few fields or no \" - \" separator")
	}
	if len(f)-sep != 4 {
		return mount{}, bad("not three fields after \" - \"")
	}
	_, ok1 := kparse.AtoU64(f[0])
	_, ok2 := kparse.AtoU64(f[1])
	maj, min, ok3 := bytes.Cut(f[2], []byte{':'})
	_, ok4 := kparse.AtoU64(maj)
	_, ok5 := kparse.AtoU64(min)
	if !ok1 || !ok2 || !ok3 || !ok4 || !ok5 {
		return mount{}, bad("bad mount ID, parent ID or MAJ:MIN")
	}
	for _, opt := range f[6:sep] {
		if len(opt) == 0 {
			return mount{}, bad("empty optional field")
		}
	}
	var m mount
	var err error
	for _, x := range []struct {
		dst      *string
		src      []byte
		nonEmpty bool
	}{
		{&m.Root, f[3], true},
		{&m.MountPoint, f[4], true},
		{&m.FSType, f[sep+1], true},
		{&m.Source, f[sep+2], false},
	} {
		if x.nonEmpty && len(x.src) == 0 {
			return mount{}, bad("empty root, mount point or type")
		}
		if *x.dst, err = unescapeOctal(x.src); err != nil {
			return mount{}, bad(err.Error())
		}
	}
	if len(f[5]) == 0 || len(f[sep+3]) == 0 {
		return mount{}, bad("empty options")
	}
	m.SuperOptions = string(f[sep+3])
	for opts := f[5]; len(opts) > 0; {
		var opt []byte
		opt, opts, _ = bytes.Cut(opts, []byte{','})
		if string(opt) == "ro" {
			m.ReadOnly = true
		}
	}
	return m, nil
}

// unescapeOctal decodes the kernel's mangle(): a backslash followed by
// exactly three octal digits is one byte; any other backslash is an error.
func unescapeOctal(b []byte) (string, error) {
	if bytes.IndexByte(b, '\\') < 0 {
		return string(b), nil
	}
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		if b[i] != '\\' {
			out = append(out, b[i])
			continue
		}
		if i+4 > len(b) {
			return "", fmt.Errorf("bad escape %s", kparse.Quote(b[i:]))
		}
		v := 0
		for _, c := range b[i+1 : i+4] {
			if c < '0' || c > '7' {
				return "", fmt.Errorf("bad escape %s", kparse.Quote(b[i:i+4]))
			}
			v = v*8 + int(c-'0')
		}
		if v > 255 {
			return "", fmt.Errorf("bad escape %s", kparse.Quote(b[i:i+4]))
		}
		out = append(out, byte(v))
		i += 3
	}
	return string(out), nil
}

// parseCPUList parses a CPU list as cpuset.cpus.effective and
// /sys/devices/system/cpu/online write it, e.g. "0-3,8,10-11", with an
// optional '\n', and returns how many CPUs it names. An empty list (a
// cpuset with no CPUs of its own yet) is 0.
func parseCPUList(file string, b []byte) (int, error) {
	t, err := trimNewline(file, b)
	if err != nil {
		return 0, err
	}
	n := 0
	for len(t) > 0 {
		item, rest, _ := bytes.Cut(t, []byte{','})
		t = rest
		lo, hi, isRange := bytes.Cut(item, []byte{'-'})
		first, ok := kparse.AtoU64(lo)
		if !ok {
			return 0, kparse.Malformed(file, "%s is not a CPU number", kparse.Quote(lo))
		}
		last := first
		if isRange {
			if last, ok = kparse.AtoU64(hi); !ok || last < first {
				return 0, kparse.Malformed(file, "%s is not a range of CPUs", kparse.Quote(item))
			}
		}
		if last-first >= maxCPUs || n+int(last-first+1) > maxCPUs {
			return 0, kparse.Malformed(file, "%s names more than %d CPUs", kparse.Quote(b), maxCPUs)
		}
		n += int(last - first + 1)
	}
	return n, nil
}

// maxCPUs is the most CPUs a CPU list may name: the kernel's NR_CPUS is at
// most 8192 on every architecture it supports.
const maxCPUs = 8192
