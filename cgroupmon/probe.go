package cgroupmon

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/cgmon/cgmon/metrics"
)

// Mode is how the host mounts cgroups.
type Mode string

// The cgroup modes.
const (
	// ModeUnified is a host with only cgroup v2 mounted.
	ModeUnified Mode = "unified"
	// ModeHybrid is a host with v1 controllers plus a cgroup v2 tree (usually without
	// controllers) at e.g. /sys/fs/cgroup/unified.
	ModeHybrid Mode = "hybrid"
	// ModeLegacy is a host with only cgroup v1 mounted.
	ModeLegacy Mode = "legacy"
	// ModeNone is a host with no cgroup filesystem mounted.
	ModeNone Mode = "none"
)

// Features are the kernel's cgroup v2 features, as seen in the cgroup root.
type Features struct {
	// MemoryPeak is true when memory.peak exists (Linux 5.19).
	MemoryPeak bool `json:"memory_peak"`
	// PidsPeak is true when pids.peak exists (Linux 6.1).
	PidsPeak bool `json:"pids_peak"`
	// CgroupKill is true when cgroup.kill exists (Linux 5.14).
	CgroupKill bool `json:"cgroup_kill"`
	// PSI is true when the pressure stall files (cpu.pressure) exist
	// (Linux 4.20, CONFIG_PSI).
	PSI bool `json:"psi"`
	// CloneIntoCgroup is true when clone3 with CLONE_INTO_CGROUP is expected to work
	// (Linux 5.7); a start that the kernel refuses falls back anyway.
	CloneIntoCgroup bool `json:"clone_into_cgroup"`
}

// Gap is something the host lacks, with what would fix it.
type Gap struct {
	// What is what the host lacks, and what that costs.
	What string `json:"what"`
	// Remedy is what would close the gap, as a command where there is one.
	Remedy string `json:"remedy"`
}

// Probe is what the host offers and what a Monitor will do with it. It is
// read-only: probing never creates, writes or moves anything.
type Probe struct {
	// Mode is how cgroups are mounted.
	Mode Mode `json:"mode"`
	// Mount is the cgroup v2 mount point, empty when none.
	Mount string `json:"mount,omitempty"`
	// OwnCgroup is this process's cgroup v2 path relative to Mount.
	OwnCgroup string `json:"own_cgroup,omitempty"`
	// OwnCgroupDelegated is true when the own cgroup is writable and holds only this
	// process, so cgmon may move itself into a leaf and nest executions.
	OwnCgroupDelegated bool `json:"own_cgroup_delegated"`
	// Root is the directory under which execution cgroups will be made,
	// empty when the procfs fallback will be used.
	Root string `json:"root,omitempty"`
	// RootReason says why Root was chosen, or why no root could be.
	RootReason string `json:"root_reason"`
	// SelfMove is true when the Monitor will move this process into a leaf of Root
	// before enabling controllers (Root is its own cgroup).
	SelfMove bool `json:"self_move"`
	// Available are the controllers Root offers (its cgroup.controllers).
	Available []string `json:"controllers_available"`
	// Enabled are the controllers enabled for Root's children (its
	// cgroup.subtree_control).
	Enabled []string `json:"controllers_enabled"`
	// Features are the kernel features seen.
	Features Features `json:"features"`
	// Backend is what executions will be measured with.
	Backend metrics.Backend `json:"backend"`
	// Sources says, for each metric, the sources a run may record and
	// why: the same table the end of every run reads.
	Sources sourceTable `json:"sources"`
	// UserManager is the user's systemd instance, which can hand cgmon a
	// delegated cgroup (a transient scope with Delegate=yes).
	UserManager UserManager `json:"user_manager"`
	// Path says which way Root was found.
	Path RootPath `json:"path"`
	// Container is what was seen of a container around this process; nil
	// when no sign of one was seen.
	Container *Container `json:"container,omitempty"`
	// InternalProcesses is set when the cgroup whose children would hold
	// the executions is the root of a cgroup namespace holding processes,
	// which keeps the kernel from enabling controllers for its children.
	InternalProcesses *InternalProcesses `json:"internal_processes,omitempty"`
	// MovedOthers says what New moved, with Options.MoveOthers, before it
	// prepared Root; nil when it moved nothing.
	MovedOthers *MovedOthers `json:"moved_others,omitempty"`
	// Gaps lists what is missing and the remedy for each.
	Gaps []Gap `json:"gaps,omitempty"`

	procRoot string
	// rootMissing: the given root does not exist and cannot be made.
	rootMissing bool
	// mountReadOnly: the cgroup v2 mount's own options hold "ro".
	mountReadOnly bool
	// The kernel's version, read once (kernelRead) by readFeatures.
	kernelMajor, kernelMinor int
	kernelRead               bool
}

// HasController reports whether Root offers controller c.
func (p *Probe) HasController(c string) bool { return slices.Contains(p.Available, c) }

// ProbeHost inspects the host as opts describe it (ProcRoot, CgroupMount,
// CgroupRoot, Backend) without changing anything.
func ProbeHost(opts Options) (*Probe, error) {
	procRoot := opts.ProcRoot
	if procRoot == "" {
		procRoot = defaultProcRoot
	}
	p := &Probe{procRoot: procRoot, Available: []string{}, Enabled: []string{}}

	mi, err := readCapped(filepath.Join(procRoot, "self", "mountinfo"))
	if err != nil {
		return nil, fmt.Errorf("probe: reading mountinfo: %w", err)
	}
	mounts, err := parseMountinfo(mi)
	if err != nil {
		return nil, fmt.Errorf("probe: %w", err)
	}
	var v2Mount string
	var v2 mount
	v1 := false
	for _, m := range mounts {
		switch m.FSType {
		case "cgroup2":
			if v2Mount == "" || m.MountPoint == "/sys/fs/cgroup" {
				v2Mount, v2 = m.MountPoint, m
			}
		case "cgroup":
			v1 = true
		}
	}
	switch {
	case v2Mount != "" && v1:
		p.Mode = ModeHybrid
	case v2Mount != "":
		p.Mode = ModeUnified
	case v1:
		p.Mode = ModeLegacy
	default:
		p.Mode = ModeNone
	}
	if opts.CgroupMount != "" {
		v2Mount = opts.CgroupMount
		if p.Mode == ModeNone || p.Mode == ModeLegacy {
			p.Mode = ModeUnified
		}
		// The mount's flags are those of the cgroup2 line mounted there; a
		// directory that is no mount point (a fixture tree) keeps the line
		// found above.
		for _, m := range mounts {
			if m.FSType == "cgroup2" && m.MountPoint == filepath.Clean(opts.CgroupMount) {
				v2 = m
			}
		}
	}
	p.Mount = v2Mount
	p.mountReadOnly = v2Mount != "" && v2.ReadOnly

	if v2Mount != "" {
		if cg, err := readCapped(filepath.Join(procRoot, "self", "cgroup")); err == nil {
			if path, ok, _, perr := parseProcCgroup(cg); perr == nil && ok {
				p.OwnCgroup = path
			}
		}
	}
	p.Container = detectContainer(procRoot, p.Mount, p.OwnCgroup, p.mountReadOnly)
	p.chooseRoot(opts)
	p.checkInternalProcesses(opts)
	// A read-only mount has its own gap: no scope a systemd instance could
	// hand out would be writable through it.
	if p.Root == "" && p.Mount != "" && !p.mountReadOnly && opts.Backend != BackendProcfs && opts.CgroupRoot == "" {
		p.UserManager = probeUserManager(p.Mount)
		if p.UserManager.Reachable {
			p.Path = PathScopePossible
			p.RootReason += "; New will ask the user's systemd instance for a transient scope with Delegate=yes"
			p.Available = nonNil(p.UserManager.Delegates)
			p.Gaps = nil // the scope closes the gap
		} else {
			p.Gaps = append(p.Gaps, p.userManagerGap())
		}
	}
	p.readRoot()
	switch {
	case p.Path == PathScopePossible:
		p.readFeatures(p.Mount) // the scope's files do not exist yet
	case p.Path == "":
		p.Path = PathProcfs
		if p.Mount != "" {
			p.readFeatures(p.Mount) // no root to look into: what the kernel offers
		}
	}
	p.chooseSources()
	return p, nil
}

// RootPath is the way the execution root was found (Probe.Path), in the
// order New tries them.
type RootPath string

// The ways a root is found.
const (
	// PathGiven is Options.CgroupRoot.
	PathGiven RootPath = "given"
	// PathOwnCgroup is (a): the own cgroup, delegated and holding only
	// cgmon, which moves itself into a leaf of it.
	PathOwnCgroup RootPath = "own-cgroup"
	// PathSharedRoot is <mount>/cgmon, writable (as root).
	PathSharedRoot RootPath = "shared-root"
	// PathScope is (b): a transient scope with Delegate=yes that New got
	// from the user's systemd instance.
	PathScope RootPath = "systemd-scope"
	// PathScopePossible says that New will ask the user's systemd
	// instance for that scope.
	PathScopePossible RootPath = "systemd-scope-possible"
	// PathProcfs is (c): no cgroup, the procfs fallback.
	PathProcfs RootPath = "procfs"
)

// chooseRoot picks the cgroup root in the documented order.
func (p *Probe) chooseRoot(opts Options) {
	if opts.Backend == BackendProcfs {
		p.RootReason = "backend procfs was asked for"
		return
	}
	if p.Mount == "" {
		p.RootReason = "no cgroup v2 filesystem is mounted"
		p.Gaps = append(p.Gaps, p.noV2Gap())
		return
	}
	if p.mountReadOnly {
		p.RootReason = fmt.Sprintf("the cgroup v2 mount %s is read-only", p.Mount)
		p.Gaps = append(p.Gaps, p.readOnlyGap())
		return
	}
	if opts.CgroupRoot != "" {
		root := filepath.Clean(opts.CgroupRoot)
		if !withinDir(p.Mount, root) {
			p.RootReason = fmt.Sprintf("cgroup root %s is not inside the cgroup v2 mount %s", root, p.Mount)
			return
		}
		if err := writableDir(root); errors.Is(err, fs.ErrNotExist) {
			// New makes it (marked as cgmon's) where its parent allows.
			parent := filepath.Dir(root)
			if perr := writableDir(parent); perr != nil {
				p.RootReason = fmt.Sprintf("cgroup root %s does not exist, and this user cannot make it in %s: %v", root, parent, perr)
				if errors.Is(perr, fs.ErrNotExist) {
					p.RootReason = fmt.Sprintf("cgroup root %s does not exist, nor does its parent %s", root, parent)
				}
				p.rootMissing = true
				p.Gaps = append(p.Gaps, Gap{What: "the given cgroup root does not exist", Remedy: "pass an existing --cgroup-root, or one whose parent this user may write to"})
				return
			}
			p.Root, p.RootReason, p.Path = root, "given as the cgroup root; it does not exist yet, and New makes it in "+parent, PathGiven
			return
		} else if err != nil {
			p.RootReason = fmt.Sprintf("cgroup root %s is not usable: %v", root, err)
			p.Gaps = append(p.Gaps, Gap{What: "the given cgroup root is not writable", Remedy: "pass a --cgroup-root that this user owns, or run under systemd-run --user -p Delegate=yes --scope"})
			return
		}
		p.Root, p.RootReason, p.Path = root, "given as the cgroup root", PathGiven
		return
	}
	own := filepath.Join(p.Mount, p.OwnCgroup)
	if p.OwnCgroup != "" && p.OwnCgroup != "/" {
		if err := writableDir(own); err == nil {
			if only, err := holdsOnlySelf(own); err == nil && only {
				p.OwnCgroupDelegated = true
				p.Root, p.SelfMove, p.Path = own, true, PathOwnCgroup
				p.RootReason = "own cgroup " + p.OwnCgroup + " is delegated and holds only this process; cgmon moves itself into a leaf and nests executions beside it"
				return
			}
		}
	}
	shared := filepath.Join(p.Mount, "cgmon")
	if err := writableDir(shared); err == nil {
		p.Root, p.RootReason, p.Path = shared, shared+" is writable", PathSharedRoot
		return
	} else if errors.Is(err, fs.ErrNotExist) {
		if werr := writableDir(p.Mount); werr == nil {
			p.Root, p.RootReason, p.Path = shared, shared+" will be created (the mount is writable)", PathSharedRoot
			return
		}
	}
	p.RootReason = fmt.Sprintf("own cgroup %s is not delegated and %s is not writable", p.OwnCgroup, shared)
	p.Gaps = append(p.Gaps, p.noWritableGap())
}

// readRoot reads Root's controllers and the kernel features.
func (p *Probe) readRoot() {
	if p.Root == "" {
		return
	}
	dir := p.Root
	availFile := "cgroup.controllers"
	if _, err := os.Stat(dir); err != nil {
		// To be created: a new child gets what its parent enables for its
		// children (the parent's subtree_control), not all it has.
		dir, availFile = filepath.Dir(dir), "cgroup.subtree_control"
	}
	if b, err := readCapped(filepath.Join(dir, "cgroup.subtree_control")); err == nil {
		c, _ := parseControllers(b)
		p.Enabled = nonNil(c)
	}
	if availFile == "cgroup.subtree_control" {
		p.Available = p.Enabled // the same file: read once
	} else if b, err := readCapped(filepath.Join(dir, availFile)); err == nil {
		c, _ := parseControllers(b)
		p.Available = nonNil(c)
	}
	if ip := p.InternalProcesses; ip != nil && ip.Move {
		// New moves the processes out of the root's parent first and
		// enables these controllers there: the root gets them.
		p.Available, p.Enabled = ip.after, ip.after
	}
	p.readFeatures(dir)
}

// readFeatures sets Features from the files of cgroup directory dir and
// the kernel's version, read once per probe. Interface files of the root
// cgroup differ from a child's (no memory.peak or cgroup.kill at the mount
// root), so the version tells where a directory lacks the file.
func (p *Probe) readFeatures(dir string) {
	has := func(name string) bool {
		_, err := os.Stat(filepath.Join(dir, name))
		return err == nil
	}
	if !p.kernelRead {
		p.kernelMajor, p.kernelMinor = kernelVersion(p.procRoot)
		p.kernelRead = true
	}
	atLeast := func(major, minor int) bool {
		return p.kernelMajor > major || (p.kernelMajor == major && p.kernelMinor >= minor)
	}
	p.Features.CgroupKill = has("cgroup.kill") || atLeast(5, 14)
	p.Features.PSI = has("cpu.pressure")
	p.Features.MemoryPeak = p.HasController("memory") && (has("memory.peak") || atLeast(5, 19))
	p.Features.PidsPeak = p.HasController("pids") && (has("pids.peak") || atLeast(6, 1))
	p.Features.CloneIntoCgroup = atLeast(5, 7)
}

// chooseSources sets Backend and Sources from the source table for this
// host, and the gaps that the table's unavailable or less exact sources
// imply.
func (p *Probe) chooseSources() {
	k := p.kind()
	p.Backend, p.Sources = k.backend, sourcesFor(k)
	if k.backend == metrics.BackendProcfs {
		return
	}
	ip := p.InternalProcesses
	blocked := func(c string) bool { return ip != nil && !ip.Move && slices.Contains(ip.Controllers, c) }
	var missing []controllerUse
	for _, c := range controllerUses {
		if !p.HasController(c.name) && !blocked(c.name) {
			missing = append(missing, c)
		}
	}
	p.Gaps = append(p.Gaps, p.controllerGaps(missing)...)
	if ip != nil && !ip.Move {
		p.Gaps = append(p.Gaps, p.internalProcessesGap())
	}
	if k.memory && !k.memoryPeak {
		p.Gaps = append(p.Gaps, Gap{What: "memory.peak is missing (Linux < 5.19)", Remedy: "use Linux 5.19 or newer for an exact memory peak; until then the peak is sampled every interval"})
	}
	if !p.Features.CgroupKill {
		p.Gaps = append(p.Gaps, Gap{What: "cgroup.kill is missing (Linux < 5.14)", Remedy: "use Linux 5.14 or newer, which kills a cgroup at once; until then cgmon freezes the cgroup and signals each process"})
	}
}

// kind is the kind of host whose source table applies to this probe's
// executions.
func (p *Probe) kind() hostKind {
	if p.Root == "" && p.Path != PathScopePossible {
		return hostKind{backend: metrics.BackendProcfs}
	}
	k := hostKind{
		backend: metrics.BackendHybrid,
		cpu:     p.HasController("cpu"), memory: p.HasController("memory"),
		pids: p.HasController("pids"), io: p.HasController("io"),
		memoryPeak: p.Features.MemoryPeak, pidsPeak: p.Features.PidsPeak,
		where: p.Root,
	}
	if k.memory {
		k.backend = metrics.BackendCgroup2
	}
	if k.where == "" {
		k.where = "the user's systemd scope"
	}
	return k
}

// controllerUse is a controller cgmon uses and what its absence costs.
type controllerUse struct{ name, what string }

// controllerUses are the controllers cgmon enables for its leaves.
var controllerUses = []controllerUse{
	{"cpu", "cpu.max limits and throttled time"},
	{"memory", "memory.peak, memory limits and OOM detection"},
	{"pids", "pids.peak and pids.max limits"},
	{"io", "io.stat and io limits"},
}

// v1Names are the cgroup v1 names of the controllers cgmon uses, as
// mountinfo lists them in the options of a v1 hierarchy.
var v1Names = map[string]string{"cpu": "cpu", "memory": "memory", "pids": "pids", "io": "blkio"}

// kernelConfig names the kernel option that builds each controller.
var kernelConfig = map[string]string{"cpu": "CONFIG_CGROUP_SCHED", "memory": "CONFIG_MEMCG", "pids": "CONFIG_CGROUP_PIDS", "io": "CONFIG_BLK_CGROUP"}

// controllerGaps returns the gaps of the controllers in missing, which
// Root lacks, each with a remedy that works where it is printed: a
// controller that a cgroup v1 hierarchy holds cannot be enabled in cgroup
// v2 at all until boot (one gap for all of them); one the kernel does not
// offer at the cgroup v2 root needs another kernel or command line; one
// that systemd did not delegate needs its Delegate=; any other is enabled
// from the top of the tree down to Root's parent.
func (p *Probe) controllerGaps(missing []controllerUse) []Gap {
	if len(missing) == 0 {
		return nil
	}
	bound := p.v1Bindings()
	var offered []string
	offeredKnown := false
	if b, err := readCapped(filepath.Join(p.Mount, "cgroup.controllers")); err == nil {
		offered, _ = parseControllers(b)
		offeredKnown = true
	}
	var gaps []Gap
	var v1 []controllerUse
	v1At := -1
	for _, c := range missing {
		switch {
		case bound[c.name] != "":
			if v1At < 0 {
				v1At = len(gaps)
			}
			v1 = append(v1, c)
		case offeredKnown && !slices.Contains(offered, c.name):
			gaps = append(gaps, p.unofferedGap(c))
		case p.Path == PathScopePossible || strings.Contains(p.Root, "/user@"):
			gaps = append(gaps, p.delegateGap(c))
		default:
			gaps = append(gaps, p.enableGap(c))
		}
	}
	if len(v1) > 0 {
		gaps = slices.Insert(gaps, v1At, p.v1Gap(v1, bound))
	}
	return gaps
}

// v1Bindings returns, for each controller cgmon uses that a cgroup v1
// hierarchy holds, where that hierarchy is mounted (from mountinfo).
func (p *Probe) v1Bindings() map[string]string {
	out := map[string]string{}
	b, err := readCapped(filepath.Join(p.procRoot, "self", "mountinfo"))
	if err != nil {
		return out
	}
	mounts, err := parseMountinfo(b)
	if err != nil {
		return out
	}
	for _, m := range mounts {
		if m.FSType != "cgroup" {
			continue
		}
		opts := strings.Split(m.SuperOptions, ",")
		for c, v1 := range v1Names {
			if slices.Contains(opts, v1) && out[c] == "" {
				out[c] = m.MountPoint
			}
		}
	}
	return out
}

// names lists the controllers of cs: "cpu, memory and pids".
func names(cs []controllerUse, sep string) string {
	n := make([]string, len(cs))
	for i, c := range cs {
		n[i] = c.name
	}
	if sep != "" {
		return strings.Join(n, sep)
	}
	if len(n) == 1 {
		return n[0]
	}
	return strings.Join(n[:len(n)-1], ", ") + " and " + n[len(n)-1]
}

// v1Gap is the gap of controllers that cgroup v1 hierarchies hold (where
// in bound): a controller serves one hierarchy at a time, and the kernel
// refuses to enable it in cgroup v2 while v1 holds it.
func (p *Probe) v1Gap(cs []controllerUse, bound map[string]string) Gap {
	var costs, at []string
	for _, c := range cs {
		costs = append(costs, "no "+c.what)
		if !slices.Contains(at, bound[c.name]) {
			at = append(at, bound[c.name])
		}
	}
	plus := "+" + names(cs, " +")
	first := cs[0].name
	it, has := "them", "none of them"
	if len(cs) == 1 {
		it, has = "it", "not got it"
	}
	return Gap{
		What: fmt.Sprintf("cgroup v1 holds the %s controller%s (mounted at %s), and a controller serves one hierarchy at a time: cgroup v2 has %s here (%s)",
			names(cs, ""), plural(len(cs)), strings.Join(at, ", "), has, strings.Join(costs, "; ")),
		Remedy: fmt.Sprintf("nothing can enable %[1]s in cgroup v2 while v1 holds %[1]s (`echo +%[2]s > %[3]s/cgroup.subtree_control` fails: No such file or directory): "+
			"boot with `cgroup_no_v1=%[4]s` on the kernel command line (or, on a systemd host, with `systemd.unified_cgroup_hierarchy=1`, which mounts cgroup v2 alone); "+
			"then, unless something enables %[1]s at boot (systemd does), as root: `echo '%[5]s' > %[3]s/cgroup.subtree_control`",
			it, first, p.Mount, names(cs, ","), plus),
	}
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// unofferedGap is the gap of a controller that the cgroup v2 root does
// not list in its cgroup.controllers, and no v1 hierarchy holds: the
// kernel has it disabled or lacks it, or, when the mount's root is a
// container's cgroup namespace, the runtime did not give it.
func (p *Probe) unofferedGap(c controllerUse) Gap {
	g := Gap{What: fmt.Sprintf("the %s controller is not available in %s (no %s)", c.name, orScope(p.Root), c.what)}
	if cmdline, err := readCapped(filepath.Join(p.procRoot, "cmdline")); err == nil && disabledOnCmdline(string(cmdline), c.name) {
		g.Remedy = fmt.Sprintf("the kernel was booted with cgroup_disable=%s (%s/cmdline): boot without it", c.name, p.procRoot)
		return g
	}
	g.Remedy = fmt.Sprintf("%s/cgroup.controllers does not list %s, so no cgroup below it can enable it: use a kernel built with %s and not booted with cgroup_disable=%s; in a container, have the runtime give the container's cgroup the %s controller",
		p.Mount, c.name, kernelConfig[c.name], c.name, c.name)
	return g
}

// disabledOnCmdline reports whether a kernel command line disables
// controller c (cgroup_disable=a,b).
func disabledOnCmdline(cmdline, c string) bool {
	for _, f := range strings.Fields(cmdline) {
		if v, ok := strings.CutPrefix(f, "cgroup_disable="); ok && slices.Contains(strings.Split(v, ","), c) {
			return true
		}
	}
	return false
}

// orScope names Root, or the scope New will ask for.
func orScope(root string) string {
	if root == "" {
		return "the scope the user's systemd instance would give"
	}
	return root
}

// delegateGap is the gap of a controller that the user's systemd instance
// does not delegate: the user cannot enable it below user@UID.service,
// and systemd hands out what Delegate= of user@.service names.
func (p *Probe) delegateGap(c controllerUse) Gap {
	list := []string{"cpu", "memory", "pids"}
	if !slices.Contains(list, c.name) {
		list = append(list, c.name)
	}
	const dir = "/etc/systemd/system/user@.service.d"
	return Gap{
		What: fmt.Sprintf("the %s controller is not delegated to this user (no %s)", c.name, c.what),
		Remedy: fmt.Sprintf("as root: `mkdir -p %[1]s && printf '[Service]\\nDelegate=%[2]s\\n' > %[1]s/delegate.conf && systemctl daemon-reload && systemctl restart user@%[3]s.service` "+
			"(the restart ends what runs in the user's systemd instance; logging out of every session and in again does the same for a user without lingering)",
			dir, strings.Join(list, " "), p.uid()),
	}
}

// uid returns the user whose cgroups the probe looked at: the one in
// Root's or the own cgroup's path below user@UID.service or
// user-UID.slice, else this process's.
func (p *Probe) uid() string {
	for _, path := range []string{p.Root, p.OwnCgroup} {
		if m := userInPath.FindStringSubmatch(path); m != nil {
			return m[1] + m[2]
		}
	}
	return strconv.Itoa(os.Getuid())
}

// userInPath finds the user of a cgroup path below systemd's user slice.
var userInPath = regexp.MustCompile(`/user@(\d+)\.service|/user-(\d+)\.slice`)

// noV2Gap is the gap of a host without a cgroup v2 mount.
func (p *Probe) noV2Gap() Gap {
	g := Gap{What: "no cgroup v2 hierarchy is mounted"}
	if fsys, err := readCapped(filepath.Join(p.procRoot, "filesystems")); err == nil && !slices.Contains(strings.Fields(string(fsys)), "cgroup2") {
		g.Remedy = fmt.Sprintf("this kernel has no cgroup2 file system (%s/filesystems): use Linux 4.5 or newer, built with CONFIG_CGROUPS", p.procRoot)
		return g
	}
	if p.Mode == ModeLegacy {
		// /sys/fs/cgroup holds the v1 hierarchies: cgroup2 goes beside them.
		g.Remedy = "as root: `mkdir -p /sys/fs/cgroup/unified && mount -t cgroup2 none /sys/fs/cgroup/unified` (cgroup v1 keeps the controllers it holds: cgmon then measures CPU from cgroup v2 and memory from procfs); " +
			"for every controller, boot with `cgroup_no_v1=all`, or, on a systemd host, with `systemd.unified_cgroup_hierarchy=1`"
		return g
	}
	g.Remedy = "as root: `mount -t cgroup2 none /sys/fs/cgroup && echo '+cpu +memory +pids +io' > /sys/fs/cgroup/cgroup.subtree_control` " +
		"(on a systemd host, boot with `systemd.unified_cgroup_hierarchy=1` instead: systemd mounts it)"
	return g
}

// noWritableGap is the gap of a user with no cgroup v2 directory to write
// to: root must give it one, with the shell that will run cgmon below it,
// since a process may be moved only by one who may write cgroup.procs of
// the cgroup that holds both its old and its new cgroup.
func (p *Probe) noWritableGap() Gap {
	d := filepath.Join(p.Mount, "cgmon-"+p.uid())
	return Gap{
		What: "no writable cgroup v2 directory",
		Remedy: fmt.Sprintf("on a systemd host, run cgmon under `systemd-run --user -p Delegate=yes --scope cgmon ...`; elsewhere, have root delegate a cgroup and move the shell that will run cgmon below it: "+
			"`mkdir -p %[1]s/shell && chown %[2]s %[1]s %[1]s/cgroup.procs %[1]s/cgroup.subtree_control %[1]s/cgroup.threads && echo SHELL_PID > %[1]s/shell/cgroup.procs`, "+
			"then run `cgmon run --cgroup-root %[1]s ...` from that shell",
			d, p.uid()),
	}
}

// userManagerGap is the gap of a user whose systemd instance does not
// answer on the user bus.
func (p *Probe) userManagerGap() Gap {
	u := p.uid()
	return Gap{
		What:   "the user's systemd instance is not reachable (" + p.UserManager.Reason + ")",
		Remedy: fmt.Sprintf("on a systemd host, start it: log in through PAM, or, as root, `loginctl enable-linger %[1]s`; then `export XDG_RUNTIME_DIR=/run/user/%[1]s` in the shell that runs cgmon", u),
	}
}

// enableGap is the gap of a controller that the cgroup v2 root offers
// but some cgroup between it and Root does not pass down: each of those
// must enable it for its children (cgroup.subtree_control), from the top
// down; cgmon enables it in Root itself.
func (p *Probe) enableGap(c controllerUse) Gap {
	g := Gap{What: fmt.Sprintf("the %s controller is not available in %s (no %s)", c.name, p.Root, c.what)}
	var cmds, busy []string
	for _, dir := range ancestors(p.Mount, filepath.Dir(p.Root)) {
		b, err := readCapped(filepath.Join(dir, "cgroup.subtree_control"))
		if err != nil {
			continue
		}
		if on, _ := parseControllers(b); slices.Contains(on, c.name) {
			continue
		}
		cmds = append(cmds, fmt.Sprintf("echo +%s > %s/cgroup.subtree_control", c.name, dir))
		if dir != p.Mount {
			if procs, err := readCapped(filepath.Join(dir, "cgroup.procs")); err == nil && len(strings.TrimSpace(string(procs))) > 0 {
				busy = append(busy, dir)
			}
		}
	}
	if len(cmds) == 0 {
		// Enabled all the way down: Root itself was made before that.
		g.Remedy = fmt.Sprintf("every cgroup above %s enables it now: remove %s (when empty) so that cgmon makes it again with it", p.Root, p.Root)
		return g
	}
	g.Remedy = fmt.Sprintf("as root: `%s`; cgmon enables it in %s itself", strings.Join(cmds, " && "), p.Root)
	if len(busy) > 0 {
		g.Remedy += fmt.Sprintf("; first move the processes of %s into a child cgroup: a cgroup with processes of its own cannot enable controllers for its children (the write fails: Device or resource busy)", strings.Join(busy, ", "))
	}
	return g
}

// ancestors lists the directories from top down to dir, both included;
// just top when dir is not below it.
func ancestors(top, dir string) []string {
	top, dir = filepath.Clean(top), filepath.Clean(dir)
	if !withinDir(top, dir) || dir == top {
		return []string{top}
	}
	rel, err := filepath.Rel(top, dir)
	if err != nil {
		return []string{top}
	}
	out := []string{top}
	cur := top
	for _, part := range strings.Split(rel, string(filepath.Separator)) {
		cur = filepath.Join(cur, part)
		out = append(out, cur)
	}
	return out
}

// writableDir reports whether dir exists and this process may create
// cgroups and move processes there. Its error does not repeat dir: the
// caller's message names it.
func writableDir(dir string) error {
	st, err := os.Stat(dir)
	if pe, ok := err.(*fs.PathError); ok {
		return pe.Err // ENOENT is fs.ErrNotExist
	}
	if err != nil {
		return err
	}
	if !st.IsDir() {
		return errors.New("not a directory")
	}
	if err := unix.Access(dir, unix.W_OK|unix.X_OK); err != nil {
		return fmt.Errorf("not writable by this user (%w)", err)
	}
	if err := unix.Access(filepath.Join(dir, "cgroup.procs"), unix.W_OK); err != nil {
		return fmt.Errorf("its cgroup.procs is not writable by this user (%w)", err)
	}
	return nil
}

// holdsOnlySelf reports whether the cgroup's only process is this one.
func holdsOnlySelf(dir string) (bool, error) {
	b, err := readCapped(filepath.Join(dir, "cgroup.procs"))
	if err != nil {
		return false, err
	}
	self := strconv.Itoa(os.Getpid())
	for _, f := range strings.Fields(string(b)) {
		if f != self {
			return false, nil
		}
	}
	return true, nil
}

// kernelVersion returns the running kernel's major and minor version from
// <procRoot>/sys/kernel/osrelease, 0.0 when it cannot be read.
func kernelVersion(procRoot string) (major, minor int) {
	b, err := readCapped(filepath.Join(procRoot, "sys", "kernel", "osrelease"))
	if err != nil {
		return 0, 0
	}
	if _, err := fmt.Sscanf(string(b), "%d.%d", &major, &minor); err != nil {
		return 0, 0
	}
	return major, minor
}

// rootPrepared updates the probe once New has prepared Root: the sources
// depend on the controllers enabled now, not on what the probe guessed.
func (p *Probe) rootPrepared(controllers []string) {
	p.Available, p.Enabled = nonNil(controllers), nonNil(controllers)
	p.Gaps, p.Features = nil, Features{}
	p.readFeatures(p.Root)
	p.chooseSources()
}

// fallBackToProcfs turns the probe into the procfs fallback's, saying why
// and what would close the gap.
func (p *Probe) fallBackToProcfs(why string, gap Gap) {
	p.Root, p.SelfMove, p.Path, p.RootReason = "", false, PathProcfs, why
	p.Available, p.Enabled = []string{}, []string{}
	p.Gaps = append(p.Gaps, gap)
	p.chooseSources()
}

// Container is what the probe saw of a container around this process.
// Each field is a sign of its own; Signals says in words which were seen.
type Container struct {
	// Runtime names the engine whose marker file was found: "docker"
	// (/.dockerenv) or "podman" (/run/.containerenv); empty when only
	// the cgroup layout tells of a container.
	Runtime string `json:"runtime,omitempty"`
	// ID is the container's id where /run/.containerenv gives one (Podman
	// writes it for privileged containers).
	ID string `json:"id,omitempty"`
	// NamespaceRoot is true when this process's cgroup is the root of a
	// cgroup namespace: /proc/self/cgroup says "/", yet the mount's root
	// has cgroup.type, which the hierarchy's real root never has.
	NamespaceRoot bool `json:"cgroup_namespace_root"`
	// ReadOnly is true when the cgroup v2 mount is read-only (mountinfo),
	// as Docker and Podman mount it into containers that are not
	// privileged.
	ReadOnly bool `json:"cgroup_mount_read_only"`
	// Signals lists, in words, each sign that was seen.
	Signals []string `json:"signals"`
}

// describe names the container in a sentence: "this Docker container",
// "this container".
func (c *Container) describe() string {
	switch c.Runtime {
	case "docker":
		return "this Docker container"
	case "podman":
		return "this Podman container"
	}
	return "this container"
}

// InternalProcesses describes the cgroup-namespace root that a container
// gives its processes when it is writable: the processes sit in the root,
// and the kernel enables a controller for a cgroup's children only while
// the cgroup itself holds no process (the "no internal processes" rule),
// so executions below it get neither memory.peak nor limits.
type InternalProcesses struct {
	// Cgroup is the directory holding the processes: the mount's root.
	Cgroup string `json:"cgroup"`
	// Processes is how many it holds.
	Processes int `json:"processes"`
	// Controllers are the ones cgmon uses that the cgroup offers but
	// cannot enable for its children.
	Controllers []string `json:"controllers"`
	// Sibling is the leaf Options.MoveOthers moves the processes into
	// (<mount>/init, as docker-in-docker's entrypoint does). It is not
	// cgmon's: cgmon never removes it.
	Sibling string `json:"sibling"`
	// Move is true when Options.MoveOthers asks New to move them.
	Move bool `json:"move"`

	// after are the controllers Root gets once they are moved.
	after []string
}

// MovedOthers is what New moved with Options.MoveOthers.
type MovedOthers struct {
	// From and To are the cgroup the processes left and the leaf they
	// were moved into.
	From string `json:"from"`
	To   string `json:"to"`
	// Processes is how many were moved, cgmon's own process among them.
	Processes int `json:"processes"`
	// Controllers were enabled in From for its children once it was empty.
	Controllers []string `json:"controllers"`
}

// othersLeaf is the sibling that Options.MoveOthers moves a namespace
// root's processes into, named as docker-in-docker's entrypoint names it.
const othersLeaf = "init"

// usedControllers are the controllers cgmon enables for its leaves.
var usedControllers = []string{"cpu", "memory", "pids", "io"}

// detectContainer looks for the signs of a container: the files Docker and
// Podman put into a container's root (looked up through
// <procRoot>/self/root, so that a fixture /proc brings its own), a cgroup
// namespace root, and a read-only cgroup v2 mount. It returns nil when
// none is seen.
func detectContainer(procRoot, mnt, own string, readOnly bool) *Container {
	c := &Container{}
	root := filepath.Join(procRoot, "self", "root")
	if _, err := os.Stat(filepath.Join(root, ".dockerenv")); err == nil {
		c.Runtime = "docker"
		c.Signals = append(c.Signals, "/.dockerenv exists (Docker makes it in every container)")
	}
	if b, err := readCapped(filepath.Join(root, "run", ".containerenv")); err == nil {
		if c.Runtime == "" {
			c.Runtime = "podman"
		}
		s := "/run/.containerenv exists (Podman makes it in every container)"
		if id := containerenvID(b); id != "" {
			c.ID = id
			s = fmt.Sprintf("/run/.containerenv exists (Podman makes it in every container) and names container %s", id[:12])
		}
		c.Signals = append(c.Signals, s)
	}
	if mnt != "" && own == "/" {
		if _, err := os.Stat(filepath.Join(mnt, "cgroup.type")); err == nil {
			c.NamespaceRoot = true
			c.Signals = append(c.Signals, fmt.Sprintf("own cgroup / is the root of a cgroup namespace (%s/cgroup.type exists, which the hierarchy's real root lacks)", mnt))
		}
	}
	if readOnly {
		c.ReadOnly = true
		c.Signals = append(c.Signals, fmt.Sprintf("the cgroup v2 mount %s is read-only (mountinfo)", mnt))
	}
	if len(c.Signals) == 0 {
		return nil
	}
	return c
}

// containerenvID returns the id in Podman's /run/.containerenv (lines
// such as id="3f2a..."), empty when it names none or not a full id.
func containerenvID(b []byte) string {
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), "=")
		if ok && k == "id" {
			if v = strings.Trim(v, `"`); isFullContainerID(v) {
				return v
			}
		}
	}
	return ""
}

// isFullContainerID reports whether s is a full container id: 64
// lowercase hex digits, as Docker, containerd, CRI-O and Podman make them.
func isFullContainerID(s string) bool {
	return len(s) == 64 && isHexPrefix(s)
}

// isHexPrefix reports whether s is a non-empty run of lowercase hex digits.
func isHexPrefix(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// checkInternalProcesses sets InternalProcesses when Root is the shared
// root <mount>/cgmon and the mount's root is a cgroup-namespace root that
// holds processes while controllers cgmon uses are available in it but
// not enabled for its children. The hierarchy's real root is exempt from
// the rule (it has no cgroup.type), so it never counts.
func (p *Probe) checkInternalProcesses(opts Options) {
	if p.Path != PathSharedRoot || filepath.Dir(p.Root) != filepath.Clean(p.Mount) {
		return
	}
	dir := filepath.Clean(p.Mount)
	if _, err := os.Stat(filepath.Join(dir, "cgroup.type")); err != nil {
		return
	}
	b, err := readCapped(filepath.Join(dir, "cgroup.procs"))
	n := len(strings.Fields(string(b)))
	if err != nil || n == 0 {
		return
	}
	read := func(f string) []string {
		b, err := readCapped(filepath.Join(dir, f))
		if err != nil {
			return nil
		}
		c, _ := parseControllers(b)
		return c
	}
	avail, enabled := read("cgroup.controllers"), read("cgroup.subtree_control")
	ip := &InternalProcesses{Cgroup: dir, Processes: n, Sibling: filepath.Join(dir, othersLeaf), Move: opts.MoveOthers}
	for _, c := range avail {
		used := slices.Contains(usedControllers, c)
		if used && !slices.Contains(enabled, c) {
			ip.Controllers = append(ip.Controllers, c)
		}
		if used || slices.Contains(enabled, c) {
			ip.after = append(ip.after, c)
		}
	}
	if len(ip.Controllers) > 0 {
		p.InternalProcesses = ip
	}
}

// readOnlyGap is the gap of a read-only cgroup v2 mount, with the
// container's remedy when a container was seen.
func (p *Probe) readOnlyGap() Gap {
	cost := "cgmon can make no cgroup, so executions are measured through procfs and rusage and no limit works"
	if c := p.Container; c != nil && (c.Runtime != "" || c.NamespaceRoot) {
		return Gap{
			What: fmt.Sprintf("the cgroup v2 mount %s is read-only in %s: %s", p.Mount, c.describe(), cost),
			Remedy: "start the container with a private cgroup namespace and a writable cgroup mount: " +
				"`docker run --privileged --cgroupns=private ...` (private is Docker's default on a cgroup v2 host; " +
				"it mounts the cgroup filesystem writable only with --privileged), or Podman's systemd mode " +
				"(`podman run --systemd=always ...`, which mounts it writable); " +
				"then run `cgmon run --move-others ...` so that the container's processes leave the namespace root",
		}
	}
	return Gap{What: fmt.Sprintf("the cgroup v2 mount %s is read-only: %s", p.Mount, cost),
		Remedy: "as root: mount -o remount,rw " + p.Mount}
}

// internalProcessesGap is the gap of a namespace root holding processes.
func (p *Probe) internalProcessesGap() Gap {
	ip := p.InternalProcesses
	where := "the root of this cgroup namespace"
	if c := p.Container; c != nil && c.Runtime != "" {
		where = "the root of " + c.describe() + "'s cgroup namespace"
	}
	return Gap{
		What: fmt.Sprintf("%s is %s and holds %d processes; the kernel enables no controller for the children of a cgroup that holds processes (no internal processes), "+
			"so executions get no %s controller: no memory.peak, no memory or pids limit, and their memory comes from procfs",
			ip.Cgroup, where, ip.Processes, joinOr(ip.Controllers)),
		Remedy: fmt.Sprintf("run cgmon with --move-others (Options.MoveOthers): it moves the container's processes, its own among them, into the sibling %s, "+
			"as docker-in-docker's entrypoint does, then enables %s in %s; or make the container's entrypoint do that move",
			ip.Sibling, strings.Join(ip.Controllers, " "), ip.Cgroup),
	}
}

// joinOr joins words as a sentence lists them: "a", "a or b", "a, b or c".
func joinOr(w []string) string {
	if len(w) < 2 {
		return strings.Join(w, "")
	}
	return strings.Join(w[:len(w)-1], ", ") + " or " + w[len(w)-1]
}
