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
	// Gaps lists what is missing and the remedy for each.
	Gaps []Gap `json:"gaps,omitempty"`

	procRoot string
	// rootMissing: the given root does not exist and cannot be made.
	rootMissing bool
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
	v1 := false
	for _, m := range mounts {
		switch m.FSType {
		case "cgroup2":
			if v2Mount == "" || m.MountPoint == "/sys/fs/cgroup" {
				v2Mount = m.MountPoint
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
	}
	p.Mount = v2Mount

	if v2Mount != "" {
		if cg, err := readCapped(filepath.Join(procRoot, "self", "cgroup")); err == nil {
			if path, ok, _, perr := parseProcCgroup(cg); perr == nil && ok {
				p.OwnCgroup = path
			}
		}
	}
	p.chooseRoot(opts)
	if p.Root == "" && p.Mount != "" && opts.Backend != BackendProcfs && opts.CgroupRoot == "" {
		p.UserManager = probeUserManager(p.Mount)
		if p.UserManager.Reachable {
			p.Path = PathScopePossible
			p.RootReason += "; New will ask the user's systemd instance for a transient scope with Delegate=yes"
			p.Available = nonNil(p.UserManager.Delegates)
			p.Gaps = nil // the scope closes the gap
		} else {
			p.Gaps = append(p.Gaps, Gap{
				What:   "the user's systemd instance is not reachable (" + p.UserManager.Reason + ")",
				Remedy: "on a systemd host, log in through PAM (or enable lingering: loginctl enable-linger) so that user@UID.service runs, and export XDG_RUNTIME_DIR=/run/user/UID",
			})
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
		p.Gaps = append(p.Gaps, Gap{
			What:   "no cgroup v2 hierarchy",
			Remedy: "mount cgroup2 (mount -t cgroup2 none /sys/fs/cgroup) or boot with systemd.unified_cgroup_hierarchy=1",
		})
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
	p.Gaps = append(p.Gaps, Gap{
		What:   "no writable cgroup v2 directory",
		Remedy: "run cgmon under `systemd-run --user -p Delegate=yes --scope cgmon ...`, or have root create a cgroup and chown it to this user (directory, cgroup.procs, cgroup.subtree_control, cgroup.threads)",
	})
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
	for _, c := range []struct{ name, what string }{
		{"cpu", "cpu.max limits and throttled time"},
		{"memory", "memory.peak, memory limits and OOM detection"},
		{"pids", "pids.peak and pids.max limits"},
		{"io", "io.stat and io limits"},
	} {
		if !p.HasController(c.name) {
			p.Gaps = append(p.Gaps, p.controllerGap(c.name, c.what))
		}
	}
	if k.memory && !k.memoryPeak {
		p.Gaps = append(p.Gaps, Gap{What: "memory.peak is missing (Linux < 5.19)", Remedy: "use Linux 5.19 or newer for an exact memory peak; until then the peak is sampled every interval"})
	}
	if !p.Features.CgroupKill {
		p.Gaps = append(p.Gaps, Gap{What: "cgroup.kill is missing (Linux < 5.14)", Remedy: "cgmon freezes the cgroup and signals each process instead; Linux 5.14 or newer kills atomically"})
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

func (p *Probe) controllerGap(c, what string) Gap {
	// Under a systemd user manager (a scope it will hand out, or a cgroup
	// below user@UID.service) the user cannot enable a controller that
	// systemd did not delegate: the remedy is the Delegate= drop-in.
	if p.Path == PathScopePossible || strings.Contains(p.Root, "/user@") {
		list := []string{"cpu", "memory", "pids"}
		if !slices.Contains(list, c) {
			list = append(list, c)
		}
		return Gap{
			What:   fmt.Sprintf("the %s controller is not delegated to this user (no %s)", c, what),
			Remedy: fmt.Sprintf("as root: mkdir -p /etc/systemd/system/user@.service.d and write [Service] Delegate=%s to a delegate.conf there, then systemctl daemon-reload and log in again", strings.Join(list, " ")),
		}
	}
	hybrid := ""
	if p.Mode == ModeHybrid {
		hybrid = fmt.Sprintf("; on this hybrid host %s is bound to cgroup v1: boot with cgroup_no_v1=%s or systemd.unified_cgroup_hierarchy=1", c, c)
	}
	return Gap{
		What:   fmt.Sprintf("the %s controller is not available in %s (no %s)", c, p.Root, what),
		Remedy: fmt.Sprintf("enable it from the parent: echo +%s > %s/cgroup.subtree_control (and in each ancestor)%s", c, filepath.Dir(p.Root), hybrid),
	}
}

// writableDir reports whether dir exists and this process may create
// cgroups and move processes there.
func writableDir(dir string) error {
	st, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if !st.IsDir() {
		return fmt.Errorf("%s is not a directory", dir)
	}
	if err := unix.Access(dir, unix.W_OK|unix.X_OK); err != nil {
		return fmt.Errorf("%s: %w (%w)", dir, ErrNotDelegated, err)
	}
	if err := unix.Access(filepath.Join(dir, "cgroup.procs"), unix.W_OK); err != nil {
		return fmt.Errorf("%s/cgroup.procs: %w (%w)", dir, ErrNotDelegated, err)
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
