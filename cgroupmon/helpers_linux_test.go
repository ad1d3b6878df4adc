package cgroupmon

// rootPath is the execution root's directory, empty for the procfs backend.
func (m *Monitor) rootPath() string {
	if m.root == nil {
		return ""
	}
	return m.root.path
}

// hasController reports whether controller c is enabled for the leaves.
func (m *Monitor) hasController(c string) bool { return m.root.has(c) }

// leafCaps are the capabilities of this Monitor's leaves.
func (m *Monitor) leafCaps() leafCaps {
	return leafCaps{memory: m.hasController("memory"), pidsCtl: m.hasController("pids"), io: m.hasController("io"), cgroupKill: m.probe.Features.CgroupKill}
}
