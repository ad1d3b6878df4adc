package proctree

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// cgroup2Mount returns where cgroup v2 is mounted, or "" when it is not.
func cgroup2Mount(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) > 2 && f[2] == "cgroup2" {
			return f[1]
		}
	}
	return ""
}

// TestReaperReapsZombiesOfCgroup: a leftover of an execution that died in
// the execution's cgroup and came back to this subreaper as a zombie, in
// this process's own process group (as exec.Cmd leaves a child without
// Setpgid) and owned by no tree, is reaped when its cgroup is below one
// given to ReapCgroup, and left alone otherwise (the Reaper never takes a
// child of this process's group that it cannot place). This is what a
// timeout leaves on a hybrid host: the killed child of the main process,
// never sampled.
func TestReaperReapsZombiesOfCgroup(t *testing.T) {
	mount := cgroup2Mount(t)
	if mount == "" {
		t.Skip("no cgroup v2 mount here")
	}
	root := filepath.Join(mount, fmt.Sprintf("cgmon-proctree-test-%d", os.Getpid()))
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Skipf("no writable cgroup v2 here: %v", err)
	}
	t.Cleanup(func() { unix.Rmdir(root) })
	leakCheck(t)
	fs := procFS(t)
	r := reaper(t, fs)
	r.ReapCgroup("/" + filepath.Base(root))

	// orphan starts `sh -c 'sleep 0.2 & echo $!'` in the cgroup dir and
	// returns the pid of the sleep, re-parented to this process when sh
	// exits, and a zombie 0.2 s later.
	orphan := func(dir string) int {
		t.Helper()
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { unix.Rmdir(dir) })
		start := func(cmd *exec.Cmd) (io.ReadCloser, error) {
			out, err := cmd.StdoutPipe()
			if err != nil {
				return nil, err
			}
			done := r.Starting()
			err = cmd.Start()
			if err == nil {
				r.Protect(cmd.Process.Pid)
			}
			done()
			return out, err
		}
		fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer unix.Close(fd)
		cmd := exec.Command("/bin/sh", "-c", "sleep 0.2 & echo $!")
		cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: fd}
		out, err := start(cmd)
		if errors.Is(err, unix.ENOSYS) {
			// clone3 refused (Docker's seccomp profile): the shell moves
			// itself in through cgroup.procs; the sleep is born there.
			cmd = exec.Command("/bin/sh", "-c", `echo $$ > "$1/cgroup.procs" && { sleep 0.2 & echo $!; }`, "sh", dir)
			out, err = start(cmd)
		}
		if err != nil {
			t.Fatal(err)
		}
		l, err := bufio.NewReader(out).ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Wait(); err != nil {
			t.Fatal(err)
		}
		r.Unprotect(cmd.Process.Pid)
		pid, err := strconv.Atoi(strings.TrimSpace(l))
		if err != nil {
			t.Fatalf("sh said %q", l)
		}
		return pid
	}
	exists := func(pid int) bool {
		_, err := os.Stat(fmt.Sprintf("/proc/%d", pid))
		return err == nil
	}
	zombie := func(pid int) bool {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		return err == nil && strings.Contains(string(b), ") Z ")
	}

	reaped0, _ := r.Stats()
	in := orphan(filepath.Join(root, "leaf"))
	out := orphan(root + "-other")
	deadline := time.Now().Add(5 * time.Second)
	for exists(in) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if exists(in) {
		t.Errorf("the zombie of a cgroup below the given one was not reaped (zombie: %v)", zombie(in))
	}
	if reaped, _ := r.Stats(); reaped != reaped0+1 {
		t.Errorf("Stats reaped %d, want %d", reaped, reaped0+1)
	}
	for !zombie(out) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	r.kick()
	time.Sleep(100 * time.Millisecond)
	if !zombie(out) {
		t.Errorf("the zombie of another cgroup, in this process group, was taken (exists: %v)", exists(out))
	}
	var ws unix.WaitStatus
	if _, err := unix.Wait4(out, &ws, 0, nil); err != nil {
		t.Errorf("waiting for the other zombie ourselves: %v", err)
	}
}
