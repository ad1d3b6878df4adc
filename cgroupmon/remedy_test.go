package cgroupmon

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// quoted matches a command a remedy quotes, and what follows it.
var quoted = regexp.MustCompile("`([^`]+)`( fails)?")

// fixes returns the commands a remedy gives to run: those it quotes,
// less those it quotes as failing.
func fixes(remedy string) []string {
	var out []string
	for _, m := range quoted.FindAllStringSubmatch(remedy, -1) {
		if m[2] == "" {
			out = append(out, m[1])
		}
	}
	return out
}

// echoEnable matches a write that enables controllers for a cgroup's
// children.
var echoEnable = regexp.MustCompile(`echo '?(\+[a-z]+(?: \+[a-z]+)*)'? > (\S+)/cgroup\.subtree_control`)

// checkEnables holds every "echo +c > D/cgroup.subtree_control" that a
// remedy gives to run on the host as it is to the kernel's rules, read
// from the fixture tree: D must offer c (D/cgroup.controllers), and D
// must be the mount's root or hold no process, or the remedy must say to
// move them first. Writes after a reboot the remedy asks for ("boot
// with"), or after a mount in the same command, are for another host.
func checkEnables(t *testing.T, p *Probe, g Gap) {
	t.Helper()
	now, _, _ := strings.Cut(g.Remedy, "boot with")
	for _, cmd := range fixes(now) {
		if i := strings.Index(cmd, "mount "); i >= 0 {
			cmd = cmd[:i]
		}
		for _, m := range echoEnable.FindAllStringSubmatch(cmd, -1) {
			dir := m[2]
			b, err := os.ReadFile(filepath.Join(dir, "cgroup.controllers"))
			require.NoError(t, err, "remedy %q writes to %s, which has no cgroup.controllers", g.Remedy, dir)
			offered := strings.Fields(string(b))
			for _, c := range strings.Fields(m[1]) {
				assert.Contains(t, offered, strings.TrimPrefix(c, "+"),
					"remedy %q: the kernel refuses %q in %s/cgroup.subtree_control (ENOENT): %s/cgroup.controllers lacks it", g.Remedy, c, dir, dir)
			}
			if dir != p.Mount {
				procs, _ := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
				if strings.TrimSpace(string(procs)) != "" {
					assert.Contains(t, g.Remedy, "move the processes of", "remedy %q: %s holds processes, so the write fails (EBUSY) unless they are moved first", g.Remedy, dir)
				}
			}
		}
	}
}

// TestRemediesOfFixtureHosts checks the remedy of every gap doctor shows
// for the fixture hosts of testdata/cli/doctor against those hosts' own
// files: a write it gives to run is one the kernel would take, and on
// the hybrid host, where cgroup v1 holds the controllers, it gives no
// "echo +cpu > <v2 mount>/cgroup.subtree_control" (which fails there:
// the controller is not in the v2 root's cgroup.controllers) but the
// boot parameters that free them.
func TestRemediesOfFixtureHosts(t *testing.T) {
	for _, h := range []struct {
		name   string
		mount  bool
		hybrid bool
	}{
		{"unified-full", true, false},
		{"unified-5.10", true, false},
		{"hybrid", true, true},
		{"none", false, false},
		{"rootless-delegated", true, false},
	} {
		t.Run(h.name, func(t *testing.T) {
			// A copy the running user owns: the probe checks whether
			// this user may write the fixture's cgroups, and the tests
			// also run as an unprivileged user (v2-rootless).
			root := t.TempDir()
			require.NoError(t, os.CopyFS(root, os.DirFS(filepath.Join("..", "testdata", "cli", "doctor", h.name))))
			opts := Options{ProcRoot: filepath.Join(root, "proc")}
			if h.mount {
				opts.CgroupMount = filepath.Join(root, "cgroup")
			}
			p, err := ProbeHost(opts)
			require.NoError(t, err)
			for _, g := range p.Gaps {
				require.NotEmpty(t, g.Remedy, "gap %q", g.What)
				checkEnables(t, p, g)
			}
			if !h.hybrid {
				return
			}
			require.NotEmpty(t, p.Gaps)
			v1 := p.Gaps[0]
			for _, c := range []string{"cpu", "memory", "pids", "io"} {
				assert.Contains(t, v1.What, c)
			}
			assert.Contains(t, v1.Remedy, "`cgroup_no_v1=cpu,memory,pids,io`")
			assert.Contains(t, v1.Remedy, "`systemd.unified_cgroup_hierarchy=1`")
			assert.Contains(t, v1.Remedy, "`echo +cpu > "+p.Mount+"/cgroup.subtree_control` fails", "the remedy says why the echo does not work here")
			for _, g := range p.Gaps {
				for _, cmd := range fixes(g.Remedy) {
					assert.NotContains(t, cmd, "echo +cpu > "+p.Mount+"/cgroup.subtree_control", "gap %q gives the write that fails on a hybrid host as its fix", g.What)
				}
			}
		})
	}
}

// TestEnableRemedyNamesEveryAncestor: where the cgroup v2 root offers a
// controller but cgroups between it and the execution root do not pass
// it down, the remedy enables it in each of them, from the top down, and
// says to move the processes out of one that has any (the kernel refuses
// to enable controllers below a cgroup with processes of its own).
func TestEnableRemedyNamesEveryAncestor(t *testing.T) {
	unified := "25 23 0:22 / /sys/fs/cgroup rw,relatime - cgroup2 cg rw\n"
	h := newFakeHost(t, "linux-6.1", unified, "6.1.0-56-amd64", "/", "cpuset cpu io memory pids", "cpu io memory pids")
	write := func(p, s string) {
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte(s), 0o644))
	}
	a, b := filepath.Join(h.mount, "ci"), filepath.Join(h.mount, "ci", "jobs")
	write(filepath.Join(a, "cgroup.controllers"), "cpu io memory pids\n")
	write(filepath.Join(a, "cgroup.subtree_control"), "cpu memory pids\n")
	write(filepath.Join(a, "cgroup.procs"), "")
	write(filepath.Join(b, "cgroup.controllers"), "cpu memory pids\n")
	write(filepath.Join(b, "cgroup.subtree_control"), "memory\n")
	write(filepath.Join(b, "cgroup.procs"), "4242\n")
	root := filepath.Join(b, "runner")
	write(filepath.Join(root, "cgroup.controllers"), "memory\n")
	write(filepath.Join(root, "cgroup.subtree_control"), "")
	write(filepath.Join(root, "cgroup.procs"), "")

	p, err := ProbeHost(Options{ProcRoot: h.proc, CgroupMount: h.mount, CgroupRoot: root})
	require.NoError(t, err)
	require.Equal(t, root, p.Root, p.RootReason)
	want := map[string]string{
		"cpu":  "`echo +cpu > " + b + "/cgroup.subtree_control`",
		"pids": "`echo +pids > " + b + "/cgroup.subtree_control`",
		"io":   "`echo +io > " + a + "/cgroup.subtree_control && echo +io > " + b + "/cgroup.subtree_control`",
	}
	found := map[string]bool{}
	for _, g := range p.Gaps {
		for c, cmd := range want {
			if strings.HasPrefix(g.What, "the "+c+" controller ") {
				found[c] = true
				assert.Contains(t, g.Remedy, "as root: "+cmd, "gap %q", g.What)
				assert.Contains(t, g.Remedy, "move the processes of "+b+" into a child cgroup")
			}
		}
		assert.False(t, strings.HasPrefix(g.What, "the memory controller "), "memory is enabled all the way down: %q", g.What)
	}
	assert.Len(t, found, len(want), "gaps %+v", p.Gaps)
}

// TestRemediesOfOtherHosts covers the hosts no fixture golden shows: a
// controller the kernel does not offer (disabled on the command line, or
// not built), cgroup v1 alone (legacy: cgroup2 is mounted beside it, not
// over /sys/fs/cgroup, which would hide the v1 hierarchies), a kernel
// without cgroup2, and a controller systemd did not delegate, whose
// restart names the user of the cgroup path.
func TestRemediesOfOtherHosts(t *testing.T) {
	unified := "25 23 0:22 / /sys/fs/cgroup rw,relatime - cgroup2 cg rw\n"
	t.Run("not offered", func(t *testing.T) {
		h := newFakeHost(t, "linux-6.1", unified, "6.1.0", "/", "cpu memory pids", "cpu memory pids")
		p, err := ProbeHost(Options{ProcRoot: h.proc, CgroupMount: h.mount})
		require.NoError(t, err)
		g := gapAbout(t, p, "the io controller")
		assert.Contains(t, g.Remedy, "CONFIG_BLK_CGROUP")
		assert.Empty(t, fixes(g.Remedy), "no write enables what the root does not offer")

		require.NoError(t, os.WriteFile(filepath.Join(h.proc, "cmdline"), []byte("BOOT_IMAGE=/vmlinuz root=/dev/vda1 cgroup_disable=io,rdma quiet\n"), 0o644))
		p, err = ProbeHost(Options{ProcRoot: h.proc, CgroupMount: h.mount})
		require.NoError(t, err)
		assert.Contains(t, gapAbout(t, p, "the io controller").Remedy, "booted with cgroup_disable=io")
	})
	t.Run("legacy", func(t *testing.T) {
		mi := "22 1 0:20 / /proc rw,relatime - proc proc rw\n25 23 0:22 / /sys/fs/cgroup rw - tmpfs tmpfs rw\n26 25 0:23 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"
		h := newFakeHost(t, "", mi, "5.10.0", "/", "", "")
		p, err := ProbeHost(Options{ProcRoot: h.proc})
		require.NoError(t, err)
		require.Equal(t, ModeLegacy, p.Mode)
		g := gapAbout(t, p, "no cgroup v2 hierarchy")
		assert.Contains(t, fixes(g.Remedy), "mkdir -p /sys/fs/cgroup/unified && mount -t cgroup2 none /sys/fs/cgroup/unified")
		for _, cmd := range fixes(g.Remedy) {
			assert.NotContains(t, cmd, "none /sys/fs/cgroup &", "mounting over /sys/fs/cgroup hides the v1 hierarchies")
		}
	})
	t.Run("no cgroup2 in the kernel", func(t *testing.T) {
		h := newFakeHost(t, "", "22 1 0:20 / /proc rw,relatime - proc proc rw\n", "4.4.0", "/", "", "")
		require.NoError(t, os.WriteFile(filepath.Join(h.proc, "filesystems"), []byte("nodev\tsysfs\nnodev\tproc\nnodev\tcgroup\n\text4\n"), 0o644))
		p, err := ProbeHost(Options{ProcRoot: h.proc})
		require.NoError(t, err)
		g := gapAbout(t, p, "no cgroup v2 hierarchy")
		assert.Contains(t, g.Remedy, "no cgroup2 file system")
		assert.Empty(t, fixes(g.Remedy), "mount -t cgroup2 cannot work on this kernel")
	})
	t.Run("systemd did not delegate", func(t *testing.T) {
		own := "/user.slice/user-1007.slice/user@1007.service/app.slice/cgmon-ci.scope"
		h := newFakeHost(t, "linux-6.1", unified, "6.1.0", own, "cpu memory pids io", "cpu memory pids")
		p, err := ProbeHost(Options{ProcRoot: h.proc, CgroupMount: h.mount})
		require.NoError(t, err)
		g := gapAbout(t, p, "the io controller")
		cmds := fixes(g.Remedy)
		require.NotEmpty(t, cmds, g.Remedy)
		assert.Contains(t, cmds[0], `printf '[Service]\nDelegate=cpu memory pids io\n' > /etc/systemd/system/user@.service.d/delegate.conf`)
		assert.Contains(t, cmds[0], "systemctl restart user@1007.service")
	})
}

// gapAbout returns the gap whose What begins with prefix.
func gapAbout(t *testing.T, p *Probe, prefix string) Gap {
	t.Helper()
	for _, g := range p.Gaps {
		if strings.HasPrefix(g.What, prefix) {
			return g
		}
	}
	t.Fatalf("no gap about %q in %+v", prefix, p.Gaps)
	return Gap{}
}
