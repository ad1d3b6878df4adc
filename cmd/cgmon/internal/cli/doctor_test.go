package cli

import (
	"strings"
	"testing"

	"github.com/cgmon/cgmon/cgroupmon"
)

// TestRunPathStates checks which way doctor says run takes for the probe
// paths that no fixture golden reaches: a scope the user manager will give,
// a scope already given, a given root, and --backend procfs.
func TestRunPathStates(t *testing.T) {
	um := cgroupmon.UserManager{Address: "unix:path=/run/user/1000/bus", Reachable: true, Version: "252", Delegates: []string{"cpu", "memory", "pids"}}
	cases := []struct {
		name   string
		probe  cgroupmon.Probe
		procfs bool
		want   string // states of a, shared, b, c (and the given root first)
		um     string
		limits map[string]bool
	}{
		{
			name:   "scope possible",
			probe:  cgroupmon.Probe{Mount: "/sys/fs/cgroup", OwnCgroup: "/user.slice/user-1000.slice/session-2.scope", Path: "systemd-scope-possible", UserManager: um, Available: []string{"cpu", "memory", "pids"}},
			want:   "no no will be used not needed",
			um:     "reachable at unix:path=/run/user/1000/bus, systemd 252; would delegate cpu memory pids",
			limits: map[string]bool{"memory": true, "cpu": true, "pids": true, "io": false, "cpuset": false},
		},
		{
			name:  "scope given",
			probe: cgroupmon.Probe{Mount: "/sys/fs/cgroup", OwnCgroup: "/user.slice/user-1000.slice/user@1000.service/app.slice/cgmon-1.scope", Root: "/sys/fs/cgroup/user.slice/user-1000.slice/user@1000.service/app.slice/cgmon-1.scope", Path: "systemd-scope", UserManager: um, Available: []string{"cpu"}},
			want:  "no no used not needed",
			um:    "reachable at unix:path=/run/user/1000/bus, systemd 252; would delegate cpu memory pids",
		},
		{
			name:  "unreachable",
			probe: cgroupmon.Probe{Mount: "/sys/fs/cgroup", OwnCgroup: "/", Path: "procfs", UserManager: cgroupmon.UserManager{Address: "unix:path=/run/user/1000/bus", Reason: "cannot reach the user's systemd instance: connection refused"}},
			want:  "no no no used",
			um:    "not reachable at unix:path=/run/user/1000/bus: cannot reach the user's systemd instance: connection refused",
		},
		{
			name:  "given root",
			probe: cgroupmon.Probe{Mount: "/sys/fs/cgroup", OwnCgroup: "/", Root: "/sys/fs/cgroup/ci", Path: "given"},
			want:  "used not tried not tried not tried not needed",
			um:    "not asked (run does not need it here)",
		},
		{
			name:   "procfs asked",
			probe:  cgroupmon.Probe{Mount: "/sys/fs/cgroup", OwnCgroup: "/", Path: "procfs", RootReason: "backend procfs was asked for"},
			procfs: true,
			want:   "not tried not tried not tried used",
			um:     "not asked (run does not need it here)",
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := NewDoctor(&c.probe, map[bool]cgroupmon.BackendChoice{true: cgroupmon.BackendProcfs, false: cgroupmon.BackendAuto}[c.procfs])
			var states []string
			for _, s := range d.RunPath {
				states = append(states, s.State)
			}
			if got := strings.Join(states, " "); got != c.want {
				t.Errorf("states %q, want %q (%+v)", got, c.want, d.RunPath)
			}
			if got := describeUserManager(&c.probe); got != c.um {
				t.Errorf("user manager %q, want %q", got, c.um)
			}
			for _, l := range d.Limits {
				if want, ok := c.limits[l.Controller]; ok && l.Works != want {
					t.Errorf("limit %s works=%v, want %v (%s)", l.Flag, l.Works, want, l.Reason)
				}
			}
		})
	}
}
