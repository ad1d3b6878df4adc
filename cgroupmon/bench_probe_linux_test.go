package cgroupmon

import "testing"

// BenchmarkProbeHost is what New pays once to look at the host (mountinfo,
// own cgroup, the root's files and, since issue 13, the signs of a
// container): compare it side by side with the commit before a change to
// the probe. It reads this host's real /proc and cgroup tree.
func BenchmarkProbeHost(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ProbeHost(Options{}); err != nil {
			b.Fatal(err)
		}
	}
}
