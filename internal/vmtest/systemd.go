package vmtest

import (
	"bufio"
	"compress/gzip"
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// The systemd scenario's guest: a Debian root filesystem in which systemd
// starts UnitName, a oneshot unit that runs GuestRunner (cmd/vminit in
// unit mode) as root; it runs every test binary and the CLI checks as the
// lingering user RunnerUser through runuser, prints the result line on the
// serial console and powers the machine off.
const (
	RunnerUser  = "runner"
	RunnerUID   = 1000
	UnitName    = "cgmon-vmtest.service"
	GuestRunner = "/usr/local/sbin/cgmon-vmtest" // cmd/vminit
	GuestCLI    = "/usr/local/bin/cgmon"         // cmd/cgmon, static
	// UnitFlag is the argument that makes cmd/vminit the unit's runner
	// rather than PID 1.
	UnitFlag = "-systemd-unit"
	// CLIPkg is the name under which the guest reports the CLI checks, as
	// if they were a package of tests.
	CLIPkg = "cgmon-cli"
	// DiagPkg is the name under which the guest reports journals and unit
	// lists after a failure; it never passes, so the host shows it.
	DiagPkg = "systemd-diagnostics"
)

// unitFile is the oneshot unit. It is ordered after the user's manager,
// which logind starts at boot because the user lingers, and pulls it in so
// that the order holds even when the unit's transaction runs first. It is
// not ordered after multi-user.target, which wants it (a target is ordered
// after what it wants: that would be a cycle). The output goes to the
// serial console; the getty there is masked.
const unitFile = `[Unit]
Description=cgmon VM tests as the unprivileged user ` + RunnerUser + `
Wants=user@1000.service
After=user@1000.service systemd-logind.service dbus.service
SuccessAction=poweroff
FailureAction=poweroff

[Service]
Type=oneshot
ExecStart=` + GuestRunner + ` ` + UnitFlag + `
StandardOutput=tty
StandardError=tty
TTYPath=/dev/ttyS0
TTYReset=no
TTYVHangup=no
TimeoutStartSec=infinity
`

// PackSystemd writes the systemd scenario's initramfs (gzip'd newc) from a
// copy of the cached root filesystem base: the user RunnerUser (uid
// RunnerUID, lingering), the tests and workloads as in the busybox image,
// the cgmon CLI, the runner and its unit. base itself is not changed. It
// needs root (chroot, useradd, a copy that keeps owners).
func (b *Builder) PackSystemd(ctx context.Context, art *Artifacts, base string) (string, []ManifestEntry, error) {
	if art.CLI == "" {
		return "", nil, fmt.Errorf("the systemd image needs the cgmon CLI: Compile with cli")
	}
	work := filepath.Join(b.OutDir, "systemd-rootfs")
	if err := os.RemoveAll(work); err != nil {
		return "", nil, err
	}
	defer os.RemoveAll(work)
	for _, c := range [][]string{
		{"cp", "-a", base, work},
		{"chroot", work, "useradd", "--create-home", "--uid", strconv.Itoa(RunnerUID), "--user-group", "--shell", "/bin/bash", RunnerUser},
	} {
		if out, err := exec.CommandContext(ctx, c[0], c[1:]...).CombinedOutput(); err != nil {
			return "", nil, fmt.Errorf("%s: %w\n%s", strings.Join(c, " "), err, out)
		}
	}

	out := filepath.Join(b.OutDir, "systemd.cpio.gz")
	f, err := os.Create(out)
	if err != nil {
		return "", nil, err
	}
	defer f.Close()
	bw := bufio.NewWriterSize(f, 1<<20)
	// The fastest level: the archive is rebuilt on every run, and the
	// guest's inflating is not slower for it.
	zw, err := gzip.NewWriterLevel(bw, gzip.BestSpeed)
	if err != nil {
		return "", nil, err
	}
	w := NewCPIOWriter(zw)
	if err := addRootfs(w, work); err != nil {
		return "", nil, err
	}
	const sys = "etc/systemd/system/"
	for _, err := range []error{
		w.File("var/lib/systemd/linger/"+RunnerUser, 0o644, 0, strings.NewReader("")),
		addFile(w, strings.TrimPrefix(GuestRunner, "/"), art.Init),
		addFile(w, strings.TrimPrefix(GuestCLI, "/"), art.CLI),
		w.File(sys+UnitName, 0o644, int64(len(unitFile)), strings.NewReader(unitFile)),
		w.Symlink(sys+"multi-user.target.wants/"+UnitName, "../"+UnitName),
		w.Symlink(sys+"serial-getty@ttyS0.service", "/dev/null"),
	} {
		if err != nil {
			return "", nil, err
		}
	}
	manifest, err := b.addTests(w, art)
	if err != nil {
		return "", nil, err
	}
	for _, c := range []func() error{w.Close, zw.Close, bw.Flush, f.Close} {
		if err := c(); err != nil {
			return "", nil, err
		}
	}
	return out, manifest, nil
}

// addRootfs adds every file under root with its owner and mode. Hard links
// become separate copies; FIFOs and sockets (none in a fresh debootstrap)
// are left out.
func addRootfs(w *CPIOWriter, root string) error {
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == root {
			return nil
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		st, ok := info.Sys().(*syscall.Stat_t)
		if !ok {
			return fmt.Errorf("%s: no stat data", p)
		}
		h := Header{Name: filepath.ToSlash(rel), Mode: uint32(st.Mode), UID: st.Uid, GID: st.Gid}
		switch uint32(st.Mode) & syscall.S_IFMT {
		case syscall.S_IFDIR:
			return w.Entry(h, nil)
		case syscall.S_IFLNK:
			if h.Linkname, err = os.Readlink(p); err != nil {
				return err
			}
			return w.Entry(h, nil)
		case syscall.S_IFCHR, syscall.S_IFBLK:
			h.DevMajor, h.DevMinor = unix.Major(uint64(st.Rdev)), unix.Minor(uint64(st.Rdev))
			return w.Entry(h, nil)
		case syscall.S_IFREG:
			r, err := os.Open(p)
			if err != nil {
				return err
			}
			defer r.Close()
			h.Size = st.Size
			return w.Entry(h, r)
		}
		return nil
	})
}
