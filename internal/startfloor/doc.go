// Package startfloor holds three programs that measure the floor under
// `cgmon run -- /bin/true` (see BENCHMARKS.md and `make bench-cli`). Each
// only runs /bin/true; they differ in what they link:
//
//	mini        nothing but the standard library: Go's own start-up
//	containerd  plus github.com/containerd/cgroups/v3/cgroup2
//	alldeps     every package outside this module that cgmon links
//
// Package initialisers of linked packages run at every start, used or not,
// so alldeps is what no binary with cgmon's dependencies can go below.
// TestAllDepsFollowsCgmon keeps alldeps linking exactly what cgmon links.
// Program medians and bench-cli.sh turn hyperfine's exports into the
// ratios the targets are stated in.
package startfloor
