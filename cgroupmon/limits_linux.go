package cgroupmon

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/containerd/cgroups/v3/cgroup2"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Every field of an OCI LinuxResources is either applied to the leaf and
// read back from its files, or refused before anything is created.
// planLimits decides, for CheckLimits and for Start alike; apply writes
// what it planned and reads it back. The record's Limits is what was read
// back, never the request:
//   - a field whose file keeps the OCI unit maps back to that field
//     (memory.max to memory.limit, rounded down to whole pages by the
//     kernel; cpu.max to cpu.quota and cpu.period; cpuset.cpus as the
//     kernel lists it; pids.max; io.max lines to the throttle devices;
//     hugetlb.<size>.max; rdma.max); "max" reads back as -1 where the OCI
//     field takes -1 for no limit;
//   - memory.swap (memory plus swap) reads back as memory.max plus
//     memory.swap.max;
//   - a field cgmon converts to another scale (cpu.shares to cpu.weight,
//     blockIO weights to io.weight or io.bfq.weight) is recorded under
//     unified, with the file's name and its content as read;
//   - a unified key is recorded with its file's content as read;
//   - device rules have no file: the record lists the rules of the program
//     that BPF_PROG_QUERY showed attached, with their defaults explicit.

// limitHost is what planLimits decides from: the execution root, whose
// interface files are those every leaf made under it will have for the
// controllers it enables for them (a non-root cgroup's files depend only
// on its controllers and the kernel).
type limitHost struct {
	root        string   // the execution root; "" when there is no cgroup
	noCgroup    string   // why there is no cgroup, when root is ""
	controllers []string // the controllers enabled for the leaves
	sys         string   // the sysfs mount point, for block devices
}

// limitPlan is what cgmon will do for a LinuxResources: files to write,
// in order, and the device program.
type limitPlan struct {
	writes  []limitWrite
	devices *devicePlan
}

// limitWrite is one write of one field, and how the file's content, read
// back, enters the record.
type limitWrite struct {
	field string // the OCI field as a user names it
	file  string // the leaf's file
	value string
	back  func(r *specs.LinuxResources, read string) error
}

// unifiedPrefixes are the controllers whose files a unified key may set.
// The core files (cgroup.*) are cgmon's own and never written from a
// limit.
var unifiedPrefixes = []string{"memory.", "cpu.", "cpuset.", "io.", "pids.", "hugetlb.", "rdma.", "misc."}

// notLimits are writable controller files that are not settings: writing
// them resets a counter cgmon reads or acts once.
var notLimits = []string{"memory.peak", "memory.swap.peak", "memory.reclaim"}

// empty reports whether the plan changes nothing.
func (p *limitPlan) empty() bool {
	return p == nil || (len(p.writes) == 0 && p.devices == nil)
}

// moveIn reports whether the plan sets a cpuset (cpuset.cpus or
// cpuset.mems), which binds a process only when it is moved in through
// cgroup.procs: until a fix of 2023 (Linux 6.4, taken into some stable
// series), a child cloned into a cgroup (CLONE_INTO_CGROUP) kept its
// parent's CPUs and memory nodes. Seen in the VM tests: Debian's 6.1 has
// the fix, its 5.10 does not, and there the program ran on every CPU
// while cpuset.cpus read back the one it was given.
func (p *limitPlan) moveIn() bool {
	if p == nil {
		return false
	}
	for _, w := range p.writes {
		if strings.HasPrefix(w.file, "cpuset.") {
			return true
		}
	}
	return false
}

// close releases what the plan holds: the device program, until it is
// attached.
func (p *limitPlan) close() {
	if p != nil {
		p.devices.close()
	}
}

// planLimits decides what l needs on h: a plan, or an error naming every
// field it refuses (ErrInvalidSpec, ErrControllerUnavailable,
// ErrLimitUnsupported). It creates nothing; with device rules it loads
// their program (the kernel's answer is the check), which the plan holds.
// A nil l gives a nil plan, which is empty.
func planLimits(l *specs.LinuxResources, h limitHost) (*limitPlan, error) {
	if l == nil {
		return nil, nil // the common case costs nothing: a nil plan is empty
	}
	p := &planner{h: h, plan: &limitPlan{}, files: map[string]string{}}
	for _, f := range setLimitFields(reflect.ValueOf(*l), "") {
		if !knownLimitFields[f] {
			p.refuse(ErrLimitUnsupported, f, "cgmon does not know this field (from a newer runtime spec?); remove it")
		}
	}
	rules := p.devices(l.Devices)
	p.memory(l.Memory)
	p.cpu(l.CPU)
	p.pids(l.Pids)
	p.blockIO(l.BlockIO)
	p.hugepages(l.HugepageLimits)
	if l.Network != nil {
		p.refuse(ErrLimitUnsupported, "network", "cgroup v2 has no net_cls or net_prio controller; remove the field")
	}
	p.rdma(l.Rdma)
	p.unified(l.Unified)
	if len(p.errs) == 0 && rules != nil {
		d, err := loadDevicePlan(rules)
		if err != nil {
			p.errs = append(p.errs, err)
		} else {
			p.plan.devices = d
		}
	}
	if len(p.errs) > 0 {
		p.plan.close()
		return nil, joinLimitErrors(p.errs)
	}
	return p.plan, nil
}

// knownLimitFields are the fields of LinuxResources that planLimits
// decides, each applied or refused, as setLimitFields names them: any
// other field set (one a newer runtime spec adds) is refused, never
// ignored.
var knownLimitFields = map[string]bool{}

func init() {
	for _, f := range strings.Fields(`
		devices[].allow devices[].type devices[].major devices[].minor devices[].access
		memory.limit memory.reservation memory.swap memory.kernel memory.kernelTCP memory.swappiness
		memory.disableOOMKiller memory.useHierarchy memory.checkBeforeUpdate
		cpu.shares cpu.quota cpu.burst cpu.period cpu.realtimeRuntime cpu.realtimePeriod cpu.cpus cpu.mems cpu.idle
		pids.limit
		blockIO.weight blockIO.leafWeight
		blockIO.weightDevice[].major blockIO.weightDevice[].minor blockIO.weightDevice[].weight blockIO.weightDevice[].leafWeight
		blockIO.throttleReadBpsDevice[].major blockIO.throttleReadBpsDevice[].minor blockIO.throttleReadBpsDevice[].rate
		blockIO.throttleWriteBpsDevice[].major blockIO.throttleWriteBpsDevice[].minor blockIO.throttleWriteBpsDevice[].rate
		blockIO.throttleReadIOPSDevice[].major blockIO.throttleReadIOPSDevice[].minor blockIO.throttleReadIOPSDevice[].rate
		blockIO.throttleWriteIOPSDevice[].major blockIO.throttleWriteIOPSDevice[].minor blockIO.throttleWriteIOPSDevice[].rate
		hugepageLimits[].pageSize hugepageLimits[].limit
		network.classID network.priorities[].name network.priorities[].priority
		rdma{}.hcaHandles rdma{}.hcaObjects
		unified{}`) {
		knownLimitFields[f] = true
	}
}

// setLimitFields lists the fields set in v (a LinuxResources or a part of
// it) by their JSON names: "memory.limit", "devices[].access",
// "rdma{}.hcaHandles", "unified{}". A pointer that is not nil counts as
// set, even to zero; an empty list or object sets nothing of its own.
func setLimitFields(v reflect.Value, prefix string) []string {
	var out []string
	add := func(fields ...string) {
		for _, f := range fields {
			if !slices.Contains(out, f) {
				out = append(out, f)
			}
		}
	}
	switch v.Kind() {
	case reflect.Pointer:
		switch {
		case v.IsNil():
		case v.Elem().Kind() == reflect.Struct:
			add(setLimitFields(v.Elem(), prefix)...)
		default:
			add(prefix)
		}
	case reflect.Struct:
		t := v.Type()
		for i := range t.NumField() {
			sf := t.Field(i)
			if sf.Anonymous {
				add(setLimitFields(v.Field(i), prefix)...)
				continue
			}
			name, _, _ := strings.Cut(sf.Tag.Get("json"), ",")
			if name == "" || name == "-" {
				name = sf.Name
			}
			if prefix != "" {
				name = prefix + "." + name
			}
			add(setLimitFields(v.Field(i), name)...)
		}
	case reflect.Slice:
		if v.Type().Elem().Kind() != reflect.Struct {
			if v.Len() > 0 {
				add(prefix)
			}
			break
		}
		for i := range v.Len() {
			add(setLimitFields(v.Index(i), prefix+"[]")...)
		}
	case reflect.Map:
		if v.Type().Elem().Kind() != reflect.Struct {
			if v.Len() > 0 {
				add(prefix + "{}")
			}
			break
		}
		for it := v.MapRange(); it.Next(); {
			add(setLimitFields(it.Value(), prefix+"{}")...)
		}
	default:
		if !v.IsZero() {
			add(prefix)
		}
	}
	return out
}

// limitErrors are several refusals, reported on one line.
type limitErrors []error

func (e limitErrors) Error() string {
	s := make([]string, len(e))
	for i, err := range e {
		s[i] = err.Error()
	}
	return strings.Join(s, "; ")
}

func (e limitErrors) Unwrap() []error { return e }

// joinLimitErrors returns the one refusal, or all of them on one line.
func joinLimitErrors(errs []error) error {
	if len(errs) == 1 {
		return errs[0]
	}
	return limitErrors(errs)
}

// planner builds a limitPlan, collecting every refusal.
type planner struct {
	h     limitHost
	plan  *limitPlan
	files map[string]string // file -> the structured field that writes it
	errs  []error
}

func (p *planner) refuse(kind error, field, format string, args ...any) {
	p.errs = append(p.errs, &limitError{kind: kind, field: field, why: fmt.Sprintf(format, args...)})
}

func (p *planner) invalid(field, format string, args ...any) {
	p.refuse(ErrInvalidSpec, field, format, args...)
}

// write plans a write of value to file for field.
func (p *planner) write(field, file, value string, back func(*specs.LinuxResources, string) error) {
	if _, ok := p.files[file]; !ok {
		p.files[file] = field
	}
	p.plan.writes = append(p.plan.writes, limitWrite{field: field, file: file, value: value, back: back})
}

// fileHints say which kernel brought a file that may be missing.
var fileHints = map[string]string{
	"cpu.idle":        " (cpu.idle arrived in Linux 5.15)",
	"cpu.max.burst":   " (cpu.max.burst arrived in Linux 5.14)",
	"memory.swap.max": " (the kernel accounts no swap: CONFIG_MEMCG_SWAP off or swapaccount=0)",
	"io.bfq.weight":   " (the BFQ I/O scheduler is not loaded)",
}

// has reports whether a leaf will have file, as the root's copy shows.
func (p *planner) has(file string) bool {
	if p.h.root == "" {
		return false
	}
	c, _, _ := strings.Cut(file, ".")
	if !slices.Contains(p.h.controllers, c) {
		return false
	}
	_, err := os.Stat(filepath.Join(p.h.root, file))
	return err == nil
}

// need checks that a leaf will have file, readable and writable, and
// refuses field otherwise.
func (p *planner) need(field, file string) bool {
	h := p.h
	c, _, _ := strings.Cut(file, ".")
	if h.root == "" {
		p.refuse(ErrControllerUnavailable, field, "needs the %s controller, and this monitor has no cgroup (%s)", c, h.noCgroup)
		return false
	}
	fi, err := os.Stat(filepath.Join(h.root, file))
	if err == nil {
		switch m := fi.Mode(); {
		case !m.IsRegular():
			p.refuse(ErrLimitUnsupported, field, "%s is not a file of the cgroup", file)
			return false
		case m.Perm()&0o200 == 0:
			p.refuse(ErrLimitUnsupported, field, "%s is read-only", file)
			return false
		case m.Perm()&0o400 == 0:
			p.refuse(ErrLimitUnsupported, field, "%s is write-only: cgmon reads back every value it writes", file)
			return false
		}
	}
	if !slices.Contains(h.controllers, c) {
		p.refuse(ErrControllerUnavailable, field, "%s does not exist in the cgroups of %s: it needs the %s controller, which is not enabled there", file, h.root, c)
		return false
	}
	if err != nil {
		p.refuse(ErrLimitUnsupported, field, "%s does not exist in this kernel's cgroups%s", file, fileHints[file])
		return false
	}
	return true
}

// devices checks the device rules; their program is loaded last, once
// nothing else is refused.
func (p *planner) devices(in []specs.LinuxDeviceCgroup) []deviceRule {
	if in == nil {
		return nil
	}
	if len(in) == 0 {
		p.invalid("devices", "an empty list would deny every device; give rules, or leave the field out")
		return nil
	}
	rules, errs := parseDeviceRules(in)
	if len(errs) > 0 {
		p.errs = append(p.errs, errs...)
		return nil
	}
	if p.h.root == "" {
		p.refuse(ErrControllerUnavailable, "devices", "device rules attach to a cgroup, and this monitor has no cgroup (%s)", p.h.noCgroup)
		return nil
	}
	return rules
}

// bytesOrMax is a byte count as a memory file takes it, "max" for -1.
func bytesOrMax(v int64) string {
	if v == -1 {
		return "max"
	}
	return strconv.FormatInt(v, 10)
}

// readLimit parses a single-value limit file: -1 for "max".
func readLimit(s string) (int64, error) {
	v, unlimited, err := parseLimit([]byte(s))
	if err != nil {
		return 0, err
	}
	if unlimited {
		return -1, nil
	}
	if v > math.MaxInt64 {
		return 0, fmt.Errorf("%d does not fit in an int64: %w", v, errMalformed)
	}
	return int64(v), nil
}

// recMemory, recCPU and recBlockIO return the record's part, made on
// first use.
func recMemory(r *specs.LinuxResources) *specs.LinuxMemory {
	if r.Memory == nil {
		r.Memory = &specs.LinuxMemory{}
	}
	return r.Memory
}

func recCPU(r *specs.LinuxResources) *specs.LinuxCPU {
	if r.CPU == nil {
		r.CPU = &specs.LinuxCPU{}
	}
	return r.CPU
}

func recBlockIO(r *specs.LinuxResources) *specs.LinuxBlockIO {
	if r.BlockIO == nil {
		r.BlockIO = &specs.LinuxBlockIO{}
	}
	return r.BlockIO
}

// recUnified records a file's content as read under unified.
func recUnified(file string) func(*specs.LinuxResources, string) error {
	return func(r *specs.LinuxResources, read string) error {
		if r.Unified == nil {
			r.Unified = map[string]string{}
		}
		r.Unified[file] = read
		return nil
	}
}

// memory plans the memory fields: memory.max, memory.low and
// memory.swap.max; the cgroup v1 ones are refused.
func (p *planner) memory(m *specs.LinuxMemory) {
	if m == nil {
		return
	}
	for _, f := range []struct {
		field string
		set   bool
		why   string
	}{
		//lint:ignore SA1019 cgmon reads the deprecated field only to refuse it
		{"memory.kernel", m.Kernel != nil, "cgroup v2 has no kernel-memory limit: memory.max counts kernel memory"},
		{"memory.kernelTCP", m.KernelTCP != nil, "cgroup v2 has no limit of TCP buffers: memory.max counts them"},
		{"memory.swappiness", m.Swappiness != nil, "cgroup v2 has no per-cgroup swappiness"},
		{"memory.disableOOMKiller", m.DisableOOMKiller != nil, "cgroup v2 cannot turn the OOM killer off for a cgroup"},
		{"memory.useHierarchy", m.UseHierarchy != nil, "cgroup v2 is always hierarchical and has no file for it"},
		{"memory.checkBeforeUpdate", m.CheckBeforeUpdate != nil, "cgmon sets limits once, before the program starts, and never updates them"},
	} {
		if f.set {
			p.refuse(ErrLimitUnsupported, f.field, "%s; remove the field", f.why)
		}
	}
	if v := m.Limit; v != nil {
		switch {
		case *v == 0:
			p.invalid("memory.limit", "0 bytes would leave the program no memory")
		case *v < -1:
			p.invalid("memory.limit", "%d: want bytes, or -1 for no limit", *v)
		case p.need("memory.limit", "memory.max"):
			p.write("memory.limit", "memory.max", bytesOrMax(*v), func(r *specs.LinuxResources, read string) error {
				n, err := readLimit(read)
				recMemory(r).Limit = &n
				return err
			})
		}
	}
	if v := m.Reservation; v != nil {
		switch {
		case *v < -1:
			p.invalid("memory.reservation", "%d: want bytes, or -1 for no limit", *v)
		case p.need("memory.reservation", "memory.low"):
			p.write("memory.reservation", "memory.low", bytesOrMax(*v), func(r *specs.LinuxResources, read string) error {
				n, err := readLimit(read)
				recMemory(r).Reservation = &n
				return err
			})
		}
	}
	if v := m.Swap; v != nil {
		// OCI's swap is memory plus swap; cgroup v2's memory.swap.max is
		// swap alone.
		var swapMax string
		switch {
		case *v < -1:
			p.invalid("memory.swap", "%d: want bytes of memory plus swap, or -1 for no limit", *v)
			return
		case *v == -1:
			swapMax = "max"
		case m.Limit == nil || *m.Limit == -1:
			p.invalid("memory.swap", "it is memory plus swap, and needs a memory.limit")
			return
		case *v < *m.Limit:
			p.invalid("memory.swap", "%d is memory plus swap: it cannot be below memory.limit (%d)", *v, *m.Limit)
			return
		default:
			swapMax = strconv.FormatInt(*v-*m.Limit, 10)
		}
		if p.need("memory.swap", "memory.swap.max") {
			p.write("memory.swap", "memory.swap.max", swapMax, func(r *specs.LinuxResources, read string) error {
				n, err := readLimit(read)
				if err != nil {
					return err
				}
				mem := recMemory(r)
				switch {
				case n == -1:
				case mem.Limit == nil || *mem.Limit == -1:
					return errors.New("memory.swap.max is set but memory.max is not")
				default:
					n += *mem.Limit
				}
				mem.Swap = &n
				return nil
			})
		}
	}
}

// cpuShares converts cgroup v1 CPU shares [2, 262144] to a cgroup v2
// weight [1, 10000], mapping the defaults to each other (1024 to 100):
// containerd's conversion, the quadratic fit runc and crun use too, so
// that a spec means the same under each runtime. The ends are clamped
// here, since containerd's formula leaves the range beyond them.
func cpuShares(shares uint64) uint64 {
	if shares <= 2 {
		return 1
	}
	if shares >= 262144 {
		return 10000
	}
	return cgroup2.ConvertCPUSharesToCgroupV2Value(shares)
}

// The kernel's bounds of cpu.max, and its default period, in
// microseconds.
const (
	defaultCPUPeriod = 100000
	minCPUPeriod     = 1000
	maxCPUPeriod     = 1000000
	minCPUQuota      = 1000
)

// cpu plans the cpu and cpuset fields; the real-time ones are refused.
func (p *planner) cpu(c *specs.LinuxCPU) {
	if c == nil {
		return
	}
	for _, f := range []struct {
		field string
		set   bool
	}{{"cpu.realtimeRuntime", c.RealtimeRuntime != nil}, {"cpu.realtimePeriod", c.RealtimePeriod != nil}} {
		if f.set {
			p.refuse(ErrLimitUnsupported, f.field, "cgroup v2 has no real-time bandwidth files (cpu.rt_runtime_us is cgroup v1's); remove the field")
		}
	}
	p.cpuWeightAndMax(c)
	p.cpuBurstAndIdle(c)
	p.cpuset(c)
}

// cpuWeightAndMax plans cpu.shares (as cpu.weight) and the quota and
// period (cpu.max).
func (p *planner) cpuWeightAndMax(c *specs.LinuxCPU) {
	if v := c.Shares; v != nil {
		switch {
		case *v == 0:
			p.invalid("cpu.shares", "0: shares run from 2 to 262144 (1024 is the default)")
		case p.need("cpu.shares", "cpu.weight"):
			p.write("cpu.shares", "cpu.weight", strconv.FormatUint(cpuShares(*v), 10), recUnified("cpu.weight"))
		}
	}
	if c.Quota != nil || c.Period != nil {
		field := "cpu.quota"
		if c.Quota == nil {
			field = "cpu.period"
		}
		period := uint64(defaultCPUPeriod) // a quota without a period gets the kernel's default
		if c.Period != nil {
			period = *c.Period
		}
		quota, ok := "max", true
		if period < minCPUPeriod || period > maxCPUPeriod {
			p.invalid("cpu.period", "%d µs: the kernel takes %d to %d", period, minCPUPeriod, maxCPUPeriod)
			ok = false
		}
		if q := c.Quota; q != nil {
			switch {
			case *q == 0:
				p.invalid("cpu.quota", "0 µs would stop the program")
				ok = false
			case *q < -1:
				p.invalid("cpu.quota", "%d: want microseconds per period, or -1 for no limit", *q)
				ok = false
			case *q > 0 && *q < minCPUQuota:
				p.invalid("cpu.quota", "%d µs is below the kernel's minimum of %d", *q, minCPUQuota)
				ok = false
			case *q > 0:
				quota = strconv.FormatInt(*q, 10)
			}
		}
		if ok && p.need(field, "cpu.max") {
			p.write(field, "cpu.max", quota+" "+strconv.FormatUint(period, 10), func(r *specs.LinuxResources, read string) error {
				q, per, err := parseCPUMax([]byte(read))
				cpu := recCPU(r)
				cpu.Quota, cpu.Period = &q, &per
				return err
			})
		}
	}
}

// cpuBurstAndIdle plans cpu.max.burst and cpu.idle.
func (p *planner) cpuBurstAndIdle(c *specs.LinuxCPU) {
	if v := c.Burst; v != nil {
		switch {
		case c.Quota != nil && *c.Quota > 0 && *v > uint64(*c.Quota):
			p.invalid("cpu.burst", "%d µs is above cpu.quota (%d)", *v, *c.Quota)
		case p.need("cpu.burst", "cpu.max.burst"):
			p.write("cpu.burst", "cpu.max.burst", strconv.FormatUint(*v, 10), func(r *specs.LinuxResources, read string) error {
				n, err := parseUint([]byte(read))
				recCPU(r).Burst = &n
				return err
			})
		}
	}
	if v := c.Idle; v != nil {
		switch {
		case *v != 0 && *v != 1:
			p.invalid("cpu.idle", "%d: want 0 or 1 (SCHED_IDLE)", *v)
		case p.need("cpu.idle", "cpu.idle"):
			p.write("cpu.idle", "cpu.idle", strconv.FormatInt(*v, 10), func(r *specs.LinuxResources, read string) error {
				n, err := strconv.ParseInt(read, 10, 64)
				recCPU(r).Idle = &n
				return err
			})
		}
	}
}

// cpuset plans cpuset.cpus and cpuset.mems.
func (p *planner) cpuset(c *specs.LinuxCPU) {
	for _, s := range []struct {
		field, file, v string
		dst            func(*specs.LinuxCPU) *string
	}{
		{"cpu.cpus", "cpuset.cpus", c.Cpus, func(c *specs.LinuxCPU) *string { return &c.Cpus }},
		{"cpu.mems", "cpuset.mems", c.Mems, func(c *specs.LinuxCPU) *string { return &c.Mems }},
	} {
		if s.v == "" {
			continue
		}
		if !cpuList.MatchString(s.v) {
			p.invalid(s.field, "%q: want a list such as 0-3,7", s.v)
			continue
		}
		if p.need(s.field, s.file) {
			p.write(s.field, s.file, s.v, func(r *specs.LinuxResources, read string) error {
				*s.dst(recCPU(r)) = read
				return nil
			})
		}
	}
}

// cpuList is a cpuset list: numbers and ranges separated by commas.
var cpuList = regexp.MustCompile(`^[0-9]+(-[0-9]+)?(,[0-9]+(-[0-9]+)?)*$`)

// pids plans pids.max.
func (p *planner) pids(l *specs.LinuxPids) {
	if l == nil || l.Limit == nil {
		return
	}
	switch v := *l.Limit; {
	case v == 0:
		p.invalid("pids.limit", "0 would not even let the program start")
	case v < -1:
		p.invalid("pids.limit", "%d: want a number of processes, or -1 for no limit", v)
	case p.need("pids.limit", "pids.max"):
		p.write("pids.limit", "pids.max", bytesOrMax(v), func(r *specs.LinuxResources, read string) error {
			n, err := readLimit(read)
			r.Pids = &specs.LinuxPids{Limit: &n}
			return err
		})
	}
}

// ioWeight converts a cgroup v1 blkio weight [10, 1000] to io.weight's
// scale [1, 10000], as runc does.
func ioWeight(w uint16) uint64 {
	return 1 + (uint64(w)-10)*9999/990
}

// blockDevice checks that major:minor is a whole disk of this host (the
// io controller takes no partition), and refuses field otherwise.
func (p *planner) blockDevice(field string, d specs.LinuxBlockIODevice) bool {
	if d.Major < 0 || d.Minor < 0 || d.Major > math.MaxUint32 || d.Minor > math.MaxUint32 {
		p.invalid(field, "device %d:%d: want a major and a minor number", d.Major, d.Minor)
		return false
	}
	dir := filepath.Join(p.h.sys, "dev", "block", fmt.Sprintf("%d:%d", d.Major, d.Minor))
	if _, err := os.Stat(dir); err != nil {
		p.refuse(ErrLimitUnsupported, field, "no block device %d:%d on this host (%s does not exist)", d.Major, d.Minor, dir)
		return false
	}
	if _, err := os.Stat(filepath.Join(dir, "partition")); err == nil {
		p.refuse(ErrLimitUnsupported, field, "block device %d:%d is a partition: the io controller limits whole disks", d.Major, d.Minor)
		return false
	}
	return true
}

// ioKeys are io.max's keys, in the order the kernel writes them, with the
// OCI field each reads back into.
var ioKeys = [...]struct {
	key   string
	field string
	dst   func(*specs.LinuxBlockIO) *[]specs.LinuxThrottleDevice
}{
	{"rbps", "throttleReadBpsDevice", func(b *specs.LinuxBlockIO) *[]specs.LinuxThrottleDevice { return &b.ThrottleReadBpsDevice }},
	{"wbps", "throttleWriteBpsDevice", func(b *specs.LinuxBlockIO) *[]specs.LinuxThrottleDevice { return &b.ThrottleWriteBpsDevice }},
	{"riops", "throttleReadIOPSDevice", func(b *specs.LinuxBlockIO) *[]specs.LinuxThrottleDevice { return &b.ThrottleReadIOPSDevice }},
	{"wiops", "throttleWriteIOPSDevice", func(b *specs.LinuxBlockIO) *[]specs.LinuxThrottleDevice { return &b.ThrottleWriteIOPSDevice }},
}

// blockIO plans the io weights and io.max; leaf weights are refused.
func (p *planner) blockIO(b *specs.LinuxBlockIO) {
	if b == nil {
		return
	}
	if b.LeafWeight != nil {
		p.refuse(ErrLimitUnsupported, "blockIO.leafWeight", "cgroup v2 has no leaf weight (it was CFQ's, in cgroup v1); remove the field")
	}
	// BFQ's io.bfq.weight takes the OCI scale as it is; io.weight (the
	// io.cost controller) takes [1, 10000].
	weightFile, bfq := "io.weight", p.has("io.bfq.weight")
	if bfq {
		weightFile = "io.bfq.weight"
	}
	weight := func(w uint16) string {
		if bfq {
			return strconv.FormatUint(uint64(w), 10)
		}
		return strconv.FormatUint(ioWeight(w), 10)
	}
	if w := b.Weight; w != nil {
		switch {
		case *w < 10 || *w > 1000:
			p.invalid("blockIO.weight", "%d: want 10 to 1000", *w)
		case p.need("blockIO.weight", weightFile):
			p.write("blockIO.weight", weightFile, "default "+weight(*w), recUnified(weightFile))
		}
	}
	for i, d := range b.WeightDevice {
		field := fmt.Sprintf("blockIO.weightDevice[%d]", i)
		switch {
		case d.LeafWeight != nil:
			p.refuse(ErrLimitUnsupported, field+".leafWeight", "cgroup v2 has no leaf weight (it was CFQ's, in cgroup v1); remove the field")
		case d.Weight == nil:
			p.invalid(field, "no weight")
		case *d.Weight < 10 || *d.Weight > 1000:
			p.invalid(field, "weight %d: want 10 to 1000", *d.Weight)
		case p.blockDevice(field, d.LinuxBlockIODevice) && p.need(field, weightFile):
			p.write(field, weightFile, fmt.Sprintf("%d:%d %s", d.Major, d.Minor, weight(*d.Weight)), recUnified(weightFile))
		}
	}
	// io.max: one line per device with all its keys.
	type dev struct{ major, minor int64 }
	var order []dev
	lines := map[dev][]string{}
	for _, k := range ioKeys {
		for i, d := range *k.dst(b) {
			field := fmt.Sprintf("blockIO.%s[%d]", k.field, i)
			key := dev{d.Major, d.Minor}
			switch {
			case d.Rate == 0:
				p.invalid(field, "rate 0 would stop every I/O (cgroup v1 read it as no limit); leave the device out instead")
				continue
			case slices.ContainsFunc(lines[key], func(s string) bool { return strings.HasPrefix(s, k.key+"=") }):
				p.invalid(field, "device %d:%d is listed twice", d.Major, d.Minor)
				continue
			case !p.blockDevice(field, d.LinuxBlockIODevice) || !p.need(field, "io.max"):
				continue
			}
			if _, ok := lines[key]; !ok {
				order = append(order, key)
			}
			lines[key] = append(lines[key], fmt.Sprintf("%s=%d", k.key, d.Rate))
		}
	}
	for _, d := range order {
		devName := fmt.Sprintf("%d:%d", d.major, d.minor)
		p.write("blockIO.throttle "+devName, "io.max", devName+" "+strings.Join(lines[d], " "), func(r *specs.LinuxResources, read string) error {
			rates, err := parseIOMaxLine(read, devName)
			if err != nil {
				return err
			}
			bio := recBlockIO(r)
			for _, k := range ioKeys {
				if v, ok := rates[k.key]; ok {
					dst := k.dst(bio)
					*dst = append(*dst, specs.LinuxThrottleDevice{LinuxBlockIODevice: specs.LinuxBlockIODevice{Major: d.major, Minor: d.minor}, Rate: v})
				}
			}
			return nil
		})
	}
}

// parseIOMaxLine finds device's line in io.max ("8:0 rbps=1 wbps=max
// riops=max wiops=max") and returns its limits, "max" left out.
func parseIOMaxLine(b, device string) (map[string]uint64, error) {
	for _, line := range strings.Split(b, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] != device {
			continue
		}
		out := map[string]uint64{}
		for _, kv := range f[1:] {
			k, v, ok := strings.Cut(kv, "=")
			if !ok {
				return nil, fmt.Errorf("io.max: %q is not key=value: %w", kv, errMalformed)
			}
			if v == "max" {
				continue
			}
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("io.max: %s=%q: %w", k, v, errMalformed)
			}
			out[k] = n
		}
		return out, nil
	}
	return nil, fmt.Errorf("io.max has no line for %s after writing one", device)
}

// hugePageSize is a hugetlb page size as the kernel names its files.
var hugePageSize = regexp.MustCompile(`^[1-9][0-9]*[KMG]B$`)

// hugepages plans hugetlb.<size>.max (and .rsvd.max).
func (p *planner) hugepages(l []specs.LinuxHugepageLimit) {
	seen := map[string]bool{}
	for i, h := range l {
		field := fmt.Sprintf("hugepageLimits[%d]", i)
		switch {
		case !hugePageSize.MatchString(h.Pagesize):
			p.invalid(field, "page size %q: want a size such as 2MB or 1GB", h.Pagesize)
			continue
		case seen[h.Pagesize]:
			p.invalid(field, "page size %s is listed twice", h.Pagesize)
			continue
		}
		seen[h.Pagesize] = true
		file := "hugetlb." + h.Pagesize + ".max"
		if !p.need(field, file) {
			continue
		}
		v := strconv.FormatUint(h.Limit, 10)
		size := h.Pagesize
		p.write(field, file, v, func(r *specs.LinuxResources, read string) error {
			n, unlimited, err := parseLimit([]byte(read))
			if unlimited {
				n = math.MaxUint64
			}
			r.HugepageLimits = append(r.HugepageLimits, specs.LinuxHugepageLimit{Pagesize: size, Limit: n})
			return err
		})
		// Reservations too, where the kernel accounts them (Linux 5.7),
		// as the runtime spec asks.
		if rsvd := "hugetlb." + h.Pagesize + ".rsvd.max"; p.has(rsvd) {
			p.write(field, rsvd, v, func(*specs.LinuxResources, string) error { return nil })
		}
	}
}

// rdma plans rdma.max for devices the host has.
func (p *planner) rdma(m map[string]specs.LinuxRdma) {
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, name := range names {
		v := m[name]
		field := fmt.Sprintf("rdma[%q]", name)
		switch {
		case name == "" || strings.ContainsFunc(name, func(r rune) bool { return r <= ' ' || r == 0x7f || r == '/' }):
			p.invalid(field, "not a device name")
			continue
		case v.HcaHandles == nil && v.HcaObjects == nil:
			p.invalid(field, "sets neither hcaHandles nor hcaObjects")
			continue
		case !p.need(field, "rdma.max"):
			continue
		}
		b, err := readCapped(filepath.Join(p.h.root, "rdma.max"))
		if err != nil {
			p.refuse(ErrLimitUnsupported, field, "reading rdma.max: %v", err)
			continue
		}
		if _, err := parseRdmaLine(string(b), name); err != nil {
			p.refuse(ErrLimitUnsupported, field, "no RDMA device %q on this host (rdma.max lists none by that name)", name)
			continue
		}
		value := name
		if v.HcaHandles != nil {
			value += fmt.Sprintf(" hca_handle=%d", *v.HcaHandles)
		}
		if v.HcaObjects != nil {
			value += fmt.Sprintf(" hca_object=%d", *v.HcaObjects)
		}
		p.write(field, "rdma.max", value, func(r *specs.LinuxResources, read string) error {
			got, err := parseRdmaLine(read, name)
			if err != nil {
				return err
			}
			if r.Rdma == nil {
				r.Rdma = map[string]specs.LinuxRdma{}
			}
			r.Rdma[name] = got
			return nil
		})
	}
}

// parseRdmaLine finds device's line in rdma.max ("mlx4_0 hca_handle=2
// hca_object=max"); "max" reads back as unset (no limit).
func parseRdmaLine(b, device string) (specs.LinuxRdma, error) {
	for _, line := range strings.Split(b, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] != device {
			continue
		}
		var out specs.LinuxRdma
		for _, kv := range f[1:] {
			k, v, ok := strings.Cut(kv, "=")
			if !ok {
				return out, fmt.Errorf("rdma.max: %q is not key=value: %w", kv, errMalformed)
			}
			if v == "max" {
				continue
			}
			n, err := strconv.ParseUint(v, 10, 32)
			if err != nil {
				return out, fmt.Errorf("rdma.max: %s=%q: %w", k, v, errMalformed)
			}
			n32 := uint32(n)
			switch k {
			case "hca_handle":
				out.HcaHandles = &n32
			case "hca_object":
				out.HcaObjects = &n32
			}
		}
		return out, nil
	}
	return specs.LinuxRdma{}, fmt.Errorf("rdma.max has no line for %s", device)
}

// unified plans the unified keys: each is a file of a controller that a
// leaf has, readable and writable, and is written as given.
func (p *planner) unified(m map[string]string) {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		v := m[k]
		field := fmt.Sprintf("unified[%q]", k)
		switch {
		case k == "" || strings.ContainsAny(k, "/\x00") || strings.Contains(k, ".."):
			p.invalid(field, "not the name of a file of the cgroup")
		case strings.HasPrefix(k, "cgroup."):
			p.refuse(ErrLimitUnsupported, field, "the core files (cgroup.*) are cgmon's; only controllers' settings may be set (%s)", strings.Join(unifiedPrefixes, "*, ")+"*")
		case !slices.ContainsFunc(unifiedPrefixes, func(pre string) bool { return strings.HasPrefix(k, pre) }):
			p.refuse(ErrLimitUnsupported, field, "not a setting of a controller cgmon allows (%s)", strings.Join(unifiedPrefixes, "*, ")+"*")
		case strings.HasSuffix(k, ".pressure"):
			p.refuse(ErrLimitUnsupported, field, "a pressure file takes PSI triggers, not limits")
		case slices.Contains(notLimits, k):
			p.refuse(ErrLimitUnsupported, field, "%s is not a limit: writing it resets or acts once", k)
		case strings.ContainsAny(strings.TrimSuffix(v, "\n"), "\n\x00"):
			p.invalid(field, "value %q has more than one line", v)
		case p.files[k] != "":
			p.invalid(field, "%s is also set by %s", k, p.files[k])
		case p.need(field, k):
			p.write(field, k, strings.TrimSuffix(v, "\n"), recUnified(k))
		}
	}
}

// apply writes the plan's files in dir, attaches its device program to the
// cgroup open as dirFD, and reads back what is in force. It returns the
// attached program, which the caller closes once the cgroup is gone. On
// error what was written stays: the caller removes the cgroup.
func (p *limitPlan) apply(dir string, dirFD int) (*specs.LinuxResources, *ebpf.Program, error) {
	for _, w := range p.writes {
		if err := writeLimit(dir, w); err != nil {
			return nil, nil, err
		}
	}
	var prog *ebpf.Program
	if p.devices != nil {
		if p.devices.prog == nil {
			return nil, nil, errors.New("the device program of these limits was already attached to another cgroup")
		}
		var err error
		if prog, err = p.devices.attach(dirFD); err != nil {
			return nil, nil, err
		}
	}
	rec, err := p.readBack(dir)
	if err != nil {
		if prog != nil {
			prog.Close()
		}
		return nil, nil, err
	}
	return rec, prog, nil
}

// readBack makes the record of what is in force from the files the plan
// wrote.
func (p *limitPlan) readBack(dir string) (*specs.LinuxResources, error) {
	rec := &specs.LinuxResources{}
	for _, w := range p.writes {
		b, err := readCapped(filepath.Join(dir, w.file))
		if err == nil {
			err = w.back(rec, strings.TrimSuffix(string(b), "\n"))
		}
		if err != nil {
			return nil, &limitError{kind: ErrLimitUnsupported, field: w.field, why: fmt.Sprintf("reading back %s: %v", w.file, err), cause: err}
		}
	}
	if p.devices != nil {
		rec.Devices = ociDeviceRules(p.devices.rules)
	}
	return rec, nil
}

// writeLimit writes one value in one write(2): the kernel parses each
// write on its own.
func writeLimit(dir string, w limitWrite) error {
	path := filepath.Join(dir, w.file)
	fd, err := unix.Open(path, unix.O_WRONLY|unix.O_TRUNC|unix.O_CLOEXEC, 0)
	if err == nil {
		var n int
		n, err = unix.Write(fd, []byte(w.value))
		if err == nil && n != len(w.value) {
			err = fmt.Errorf("short write (%d of %d bytes)", n, len(w.value))
		}
		unix.Close(fd)
	}
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			err = fmt.Errorf("%s does not exist in the cgroup: %w", w.file, err)
		}
		return &limitError{kind: ErrLimitUnsupported, field: w.field, why: fmt.Sprintf("writing %q to %s: %v", w.value, w.file, err), cause: err}
	}
	return nil
}
