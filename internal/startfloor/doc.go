// Package startfloor holds three programs that measure the floor under
// `cgmon run -- /bin/true` (see BENCHMARKS.md and `make bench-cli`). Each
// only runs /bin/true; they differ in what they link:
//
//	mini        nothing but the standard library: Go's own start-up
//	containerd  plus github.com/containerd/cgroups/v3/cgroup2
//	alldeps     plus every third-party package cgmon imports
//
// Package initialisers of linked packages run at every start, used or not,
// so alldeps is what no binary with cgmon's dependencies can go below.
package startfloor
