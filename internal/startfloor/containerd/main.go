//go:build linux

// Command containerd runs /bin/true linked with containerd's cgroup2
// package, which cgmon uses for limits: see package startfloor. It is
// Linux-only, as that package is.
package main

import (
	"os/exec"

	_ "github.com/containerd/cgroups/v3/cgroup2"
)

func main() { _ = exec.Command("/bin/true").Run() }
