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
