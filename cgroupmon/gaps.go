package cgroupmon

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

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
