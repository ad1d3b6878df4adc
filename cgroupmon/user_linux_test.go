package cgroupmon

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/cgmon/cgmon/metrics"
)

// nobody is the unprivileged user the tests run executions as.
var nobody = specs.User{UID: 65534, GID: 65534}

// statusLines runs the command's own /proc/self/status through grep as
// spec asks and returns its Uid, Gid, Groups and NoNewPrivs lines, tabs
// and all, keyed by name.
func statusLines(t *testing.T, m *Monitor, s Spec) map[string]string {
	t.Helper()
	var out bytes.Buffer
	s.Command = []string{"grep", "-E", "^(Uid|Gid|Groups|NoNewPrivs):", "/proc/self/status"}
	s.Stdout = &out
	ex := mustRun(t, m, s)
	require.Equal(t, metrics.StatusSuccess, ex.Status, ex.Reason)
	lines := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		name, value, _ := strings.Cut(l, ":")
		lines[name] = strings.Join(strings.Fields(value), " ")
	}
	return lines
}

// ownNoNewPrivs returns the no_new_privs flag of each thread of this
// process, keyed by thread id.
func ownNoNewPrivs(t *testing.T) map[string]string {
	t.Helper()
	tasks, err := filepath.Glob("/proc/self/task/*/status")
	require.NoError(t, err)
	flags := map[string]string{}
	for _, f := range tasks {
		b, err := os.ReadFile(f)
		if err != nil {
			continue // the thread ended
		}
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "NoNewPrivs:"); ok {
				flags[filepath.Base(filepath.Dir(f))] = strings.TrimSpace(v)
			}
		}
	}
	require.NotEmpty(t, flags, "no NoNewPrivs line in /proc/self/task/*/status (kernel before 4.10?)")
	return flags
}

// TestUser: Spec.User runs the command as that user, with exactly the
// groups asked for and no_new_privs set, while executions without it keep
// cgmon's own credentials and flag, and the flag reaches no thread of
// cgmon that outlives the Monitor. Without root it is refused and
// nothing runs.
func TestUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Run("refused", func(t *testing.T) {
			m := newMonitor(t, Options{Subreaper: true})
			mark := filepath.Join(t.TempDir(), "ran")
			u := nobody
			h, err := m.Start(context.Background(), Spec{Command: []string{"touch", mark}, User: &u})
			require.ErrorIs(t, err, ErrUserUnsupported)
			assert.Nil(t, h)
			assert.Contains(t, err.Error(), "CAP_SETUID")
			_, serr := os.Stat(mark)
			assert.ErrorIs(t, serr, fs.ErrNotExist, "the command ran")
		})
		return
	}
	// The main thread's flag: 0, or 1 where the tests were started with
	// it (a container whose runtime set it).
	own := ownNoNewPrivs(t)[strconv.Itoa(os.Getpid())]
	m, err := New(Options{Subreaper: true})
	require.NoError(t, err)
	closed := false
	defer func() {
		if !closed {
			_ = m.Close()
		}
	}()

	dumpable, err := unix.PrctlRetInt(unix.PR_GET_DUMPABLE, 0, 0, 0, 0)
	require.NoError(t, err)
	u := nobody
	got := statusLines(t, m, Spec{User: &u})
	// Go's child setuid on this process's memory (vfork) made it not
	// dumpable: it is given back.
	now, err := unix.PrctlRetInt(unix.PR_GET_DUMPABLE, 0, 0, 0, 0)
	require.NoError(t, err)
	assert.Equal(t, dumpable, now, "this process's dumpable flag changed")
	assert.Equal(t, "65534 65534 65534 65534", got["Uid"], "real, effective, saved and filesystem uid")
	assert.Equal(t, "65534 65534 65534 65534", got["Gid"])
	assert.Equal(t, "", got["Groups"], "root's supplementary groups were kept")
	assert.Equal(t, "1", got["NoNewPrivs"])

	u.AdditionalGids = []uint32{100, 200}
	got = statusLines(t, m, Spec{User: &u})
	assert.Equal(t, "100 200", got["Groups"])
	assert.Equal(t, "1", got["NoNewPrivs"])

	// The gated start (stopped at exec under ptrace, moved, released)
	// where the kernel refuses CLONE_INTO_CGROUP: the same.
	if m.rootPath() != "" {
		m.forceGated = true
		got = statusLines(t, m, Spec{User: &nobody})
		m.forceGated = false
		assert.Equal(t, "65534 65534 65534 65534", got["Uid"], "gated")
		assert.Equal(t, "1", got["NoNewPrivs"], "gated")
	}

	// The common path: cgmon's own credentials and flag.
	got = statusLines(t, m, Spec{})
	assert.Equal(t, "0 0 0 0", got["Uid"])
	assert.Equal(t, own, got["NoNewPrivs"], "an execution without User got no_new_privs")

	// A working directory the user may not enter: the command does not
	// start (Go's child changes directory after it has become the user).
	dir := t.TempDir() // 0700, root's
	require.NoError(t, os.Chmod(dir, 0o700))
	ex, err := m.Run(context.Background(), Spec{Command: []string{"true"}, Dir: dir, User: &nobody})
	require.ErrorIs(t, err, ErrStart)
	assert.ErrorIs(t, err, fs.ErrPermission)
	assert.Equal(t, metrics.StatusFailedToStart, ex.Status)

	require.NoError(t, m.Close())
	closed = true
	// The no_new_privs thread ends with the Monitor instead of going back
	// to Go's pool, where any goroutine could fork from it. Go ends it
	// just after its goroutine returns: give it a moment.
	var marked []string
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		marked = marked[:0]
		for tid, v := range ownNoNewPrivs(t) {
			if v != own {
				marked = append(marked, tid)
			}
		}
		if len(marked) == 0 || time.Now().After(deadline) {
			break
		}
	}
	assert.Empty(t, marked, "threads of cgmon still marked no_new_privs 5 s after Close (the main thread is %d)", os.Getpid())
}

// TestUserInvalid: a Spec.User field cgmon cannot apply is refused before
// anything runs, whoever cgmon is.
func TestUserInvalid(t *testing.T) {
	m := newMonitor(t, Options{})
	umask := uint32(0o22)
	for name, u := range map[string]specs.User{
		"umask":    {UID: 65534, GID: 65534, Umask: &umask},
		"username": {Username: "nobody"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := m.Run(context.Background(), Spec{Command: []string{"true"}, User: &u})
			require.ErrorIs(t, err, ErrInvalidSpec)
			assert.Contains(t, err.Error(), "user."+name)
		})
	}
}

// TestUserCannotEscape: the hostile workload of TestEscapedProcessesAreKilled,
// run as an unprivileged user, cannot write its pid into another cgroup's
// cgroup.procs nor into the root cgroup's: EACCES ("Permission denied"),
// nothing escapes, and nothing is left there. As root (the control), the
// same script does escape.
func TestUserCannotEscape(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("running as another user needs root: TestUser checks the refusal")
	}
	root := testRoot(t)
	other := otherCgroup(t, root)
	p, err := ProbeHost(Options{})
	require.NoError(t, err)
	m := newMonitor(t, Options{CgroupRoot: root, Subreaper: true})
	for _, target := range []string{other, p.Mount} {
		procs := filepath.Join(target, "cgroup.procs")
		var stdout, stderr bytes.Buffer
		script := `echo $$ > ` + procs + `; echo "exit $?"; cat /proc/self/cgroup`
		ex := mustRun(t, m, Spec{Command: []string{"/bin/sh", "-c", script}, User: &nobody, Stdout: &stdout, Stderr: &stderr})
		assert.Equal(t, metrics.StatusSuccess, ex.Status, ex.Reason)
		assert.Contains(t, stderr.String(), "Permission denied", "writing %s as uid 65534", procs)
		assert.NotContains(t, stdout.String(), "exit 0", "the write into %s succeeded", procs)
		assert.Contains(t, stdout.String(), filepath.Base(m.rootPath())+"/", "the process left its leaf: %s", stdout.String())
		assert.Zero(t, ex.EscapedProcessesKilled)
		assert.Nil(t, ex.LowerBounds)
	}
	b, err := os.ReadFile(filepath.Join(other, "cgroup.procs"))
	require.NoError(t, err)
	assert.Empty(t, strings.TrimSpace(string(b)))

	// The control: as root the same write succeeds and the process escapes.
	procs := filepath.Join(other, "cgroup.procs")
	var stdout bytes.Buffer
	ex := mustRun(t, m, Spec{Command: []string{"/bin/sh", "-c", `echo $$ > ` + procs + `; echo "exit $?"; exec sleep 30`}, Stdout: &stdout, Timeout: 300 * time.Millisecond})
	assert.Contains(t, stdout.String(), "exit 0")
	assert.Equal(t, 1, ex.EscapedProcessesKilled, "the control did not escape: the test proves nothing")
}

// TestIDsMapped: an id outside every range of a user namespace's map is
// refused, naming it; one inside a range, or any id of the initial
// namespace's map, is not; a map that cannot be read refuses nothing.
func TestIDsMapped(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(content), 0o644))
		return p
	}
	initial := write("initial", "         0          0 4294967295\n")
	rootless := write("rootless", "         0       1000          1\n         1     100000      65536\n")
	assert.NoError(t, idsMapped(initial, "uid", 0, 65534, 4294967294))
	assert.NoError(t, idsMapped(rootless, "gid", 0, 1, 65534, 65536))
	err := idsMapped(rootless, "gid", 65534, 65537)
	require.ErrorIs(t, err, ErrUserUnsupported)
	assert.Contains(t, err.Error(), "gid 65537 is not mapped")
	assert.NoError(t, idsMapped(filepath.Join(dir, "missing"), "uid", 65537))
}

// TestUserDiesWithMonitor: an execution run as another user still gets
// the parent-death signal (Go's child sets it after the uid change, which
// would clear it): a monitor killed with SIGKILL takes the main process
// with it, and the next monitor reaps the rest.
func TestUserDiesWithMonitor(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("running as another user needs root: TestUser checks the refusal")
	}
	root := testRoot(t)
	t.Setenv(envUser, "nobody")
	h := startHelper(t, root, 1, nil, "/bin/sh", "-c", "sleep 300 & exec sleep 301")
	leaf, main := h.leafs[0], h.pids[0]
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", main))
	require.NoError(t, err)
	assert.Regexp(t, `(?m)^Uid:\s+65534\s`, string(b))
	require.Eventually(t, func() bool { return len(leafPids(t, leaf)) == 2 }, 5*time.Second, 10*time.Millisecond, "the background sleep in %s", leaf)
	others := slices.DeleteFunc(leafPids(t, leaf), func(p int) bool { return p == main })
	h.kill()
	assertGone(t, main) // Pdeathsig
	defer reapOwn(append(others, main))
	m := newMonitor(t, Options{CgroupRoot: root})
	assert.Equal(t, 1, m.Reaped().ProcessesKilled)
	assert.NoDirExists(t, leaf)
	for _, p := range others {
		assertGone(t, p)
	}
}
