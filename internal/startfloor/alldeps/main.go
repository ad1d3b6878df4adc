//go:build linux

// Command alldeps runs /bin/true linked with every package outside this
// module that cgmon links, doing nothing with them: see package startfloor.
// TestAllDepsFollowsCgmon keeps the two sets equal. It is Linux-only, as
// containerd's cgroup2 package is.
package main

import (
	"os/exec"

	_ "flag"
	_ "hash/maphash"
	_ "os/signal"

	_ "github.com/DataDog/sketches-go/ddsketch"
	_ "github.com/containerd/cgroups/v3/cgroup2"
	_ "github.com/coreos/go-systemd/v22/dbus"
	_ "github.com/opencontainers/runtime-spec/specs-go"
	_ "github.com/prometheus/client_golang/prometheus/promhttp"
	_ "gonum.org/v1/plot"
	_ "gonum.org/v1/plot/plotter"
	_ "gonum.org/v1/plot/vg/vgsvg"
)

func main() { _ = exec.Command("/bin/true").Run() }
