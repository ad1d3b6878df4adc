package cgroupmon

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// checkUser refuses a Spec.User that cgmon cannot honour, before anything
// is created: a field cgmon has no way to apply (ErrInvalidSpec), or a
// switch this process is not allowed to make (ErrUserUnsupported): it
// lacks CAP_SETUID or CAP_SETGID (not root, rootless), or an id is not
// mapped in its user namespace. procRoot is Options.ProcRoot.
func checkUser(u *specs.User, procRoot string) error {
	if u.Umask != nil {
		// The umask is the process's (shared by Go's threads), and Go's
		// fork has no hook to set it in the child alone.
		return fmt.Errorf("%w: user.umask: cgmon cannot set a umask for one execution", ErrInvalidSpec)
	}
	if u.Username != "" {
		return fmt.Errorf("%w: user.username %q: give the numeric uid and gid (cgmon run --user resolves names)", ErrInvalidSpec, u.Username)
	}
	var hdr = unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return fmt.Errorf("%w: reading this process's capabilities: %v", ErrUserUnsupported, err)
	}
	const need = 1<<unix.CAP_SETUID | 1<<unix.CAP_SETGID // both in the first word
	if data[0].Effective&need != need {
		return fmt.Errorf("%w: uid %d needs root (CAP_SETUID and CAP_SETGID), and cgmon runs as uid %d without them", ErrUserUnsupported, u.UID, os.Geteuid())
	}
	if procRoot == "" {
		procRoot = "/proc"
	}
	if err := idsMapped(filepath.Join(procRoot, "self/uid_map"), "uid", u.UID); err != nil {
		return err
	}
	return idsMapped(filepath.Join(procRoot, "self/gid_map"), "gid", append([]uint32{u.GID}, u.AdditionalGids...)...)
}

// idsMapped returns ErrUserUnsupported for the first of ids that has no
// mapping in the user namespace map file (uid_map or gid_map: "inside
// outside count" lines); the kernel would refuse setuid or setgid to it.
// A map that cannot be read checks nothing: the child's own setuid then
// says what is wrong.
func idsMapped(file, what string, ids ...uint32) error {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil
	}
	lines := strings.Split(string(b), "\n")
next:
	for _, id := range ids {
		for _, l := range lines {
			fields := strings.Fields(l)
			if len(fields) != 3 {
				continue
			}
			inside, err1 := strconv.ParseUint(fields[0], 10, 32)
			count, err2 := strconv.ParseUint(fields[2], 10, 32)
			if err1 == nil && err2 == nil && uint64(id) >= inside && uint64(id)-inside < count {
				continue next
			}
		}
		return fmt.Errorf("%w: %s %d is not mapped in cgmon's user namespace (%s)", ErrUserUnsupported, what, id, file)
	}
	return nil
}

// credential is the SysProcAttr credential of u: its uid and gid, and
// exactly its additional groups (none when it lists none: cgmon's own
// supplementary groups are dropped).
func credential(u *specs.User) *syscall.Credential {
	return &syscall.Credential{Uid: u.UID, Gid: u.GID, Groups: append([]uint32{}, u.AdditionalGids...)}
}

// keepDumpable runs fork, which starts a command with a Credential, and
// gives this process back its dumpable flag. Go's child runs on this
// process's memory until it executes (vfork), and its setuid marks that
// memory, so this process, not dumpable (the kernel's suid_dumpable, 0 by
// default): no core dump, and its /proc files owned by root.
func keepDumpable(fork func() error) error {
	was, gerr := unix.PrctlRetInt(unix.PR_GET_DUMPABLE, 0, 0, 0, 0)
	err := fork()
	if gerr == nil && was == 1 {
		if now, nerr := unix.PrctlRetInt(unix.PR_GET_DUMPABLE, 0, 0, 0, 0); nerr == nil && now != 1 {
			_ = unix.Prctl(unix.PR_SET_DUMPABLE, 1, 0, 0, 0)
		}
	}
	return err
}
