package cgroupmon

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	"github.com/cgmon/cgmon/metrics"
)

// ProbeHost inspects the host as opts describe it (ProcRoot, CgroupMount,
// CgroupRoot, Backend) without changing anything.
func ProbeHost(opts Options) (*Probe, error) {
	procRoot := opts.ProcRoot
	if procRoot == "" {
		procRoot = defaultProcRoot
	}
	p := &Probe{procRoot: procRoot, Available: []string{}, Enabled: []string{}}
	if err := p.readMounts(opts); err != nil {
		return nil, err
	}
	if p.Mount != "" {
		if cg, err := readCapped(filepath.Join(procRoot, "self", "cgroup")); err == nil {
			if path, ok, _, perr := parseProcCgroup(cg); perr == nil && ok {
				p.OwnCgroup = path
			}
		}
	}
	p.Container = detectContainer(procRoot, p.Mount, p.OwnCgroup, p.mountReadOnly)
	p.chooseRoot(opts)
	p.checkInternalProcesses(opts)
	p.askUserManager(opts)
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

// readMounts sets the cgroup mode, the cgroup v2 mount (opts.CgroupMount
// when given) and whether it is read-only, from mountinfo.
func (p *Probe) readMounts(opts Options) error {
	mi, err := readCapped(filepath.Join(p.procRoot, "self", "mountinfo"))
	if err != nil {
		return fmt.Errorf("probe: reading mountinfo: %w", err)
	}
	mounts, err := parseMountinfo(mi)
	if err != nil {
		return fmt.Errorf("probe: %w", err)
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
	return nil
}

// askUserManager asks the user's systemd instance whether it would hand
// out a delegated scope, where no root was found and the mount is
// writable. A read-only mount has its own gap: no scope a systemd
// instance could hand out would be writable through it.
func (p *Probe) askUserManager(opts Options) {
	if p.Root != "" || p.Mount == "" || p.mountReadOnly || opts.Backend == BackendProcfs || opts.CgroupRoot != "" {
		return
	}
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
		psi:   p.Features.PSI,
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
