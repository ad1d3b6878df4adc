package cgroupmon

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

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
