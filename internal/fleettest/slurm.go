package fleettest

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ErrCannotRun is returned (wrapped, with the reason) when this host
// cannot run a Slurm: not Linux, not root, or the packages are missing.
var ErrCannotRun = errors.New("cannot run a Slurm here")

// Packages are the Debian packages the harness needs; .ci/run installs
// them.
const Packages = "slurmctld slurmd slurm-client munge"

// daemons and clients are the programs of those packages the harness
// runs.
var (
	daemons = []string{"munged", "slurmctld", "slurmd"}
	clients = []string{"sbatch", "squeue", "scontrol", "scancel", "sinfo"}
)

// lookTool finds a program on PATH or in the sbin directories, which a
// non-login PATH often lacks.
func lookTool(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/bin"} {
		p := filepath.Join(dir, name)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found", name)
}

// CheckHost returns an error wrapping ErrCannotRun that says why this
// host cannot run the harness, or nil.
func CheckHost() error {
	if runtime.GOOS != "linux" {
		return fmt.Errorf("%w: Slurm's packages are for Linux, this is %s", ErrCannotRun, runtime.GOOS)
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("%w: slurmd and munged are started as root (uid %d here)", ErrCannotRun, os.Geteuid())
	}
	var missing []string
	for _, t := range append(append([]string{}, daemons...), clients...) {
		if _, err := lookTool(t); err != nil {
			missing = append(missing, t)
		}
	}
	if _, err := user.Lookup("munge"); err != nil {
		missing = append(missing, "the munge user")
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: %s missing (apt-get install %s; .ci/run does)", ErrCannotRun, strings.Join(missing, ", "), Packages)
	}
	return nil
}

// cluster is a one-node Slurm that the harness started: its own munged
// (own key and socket), slurmctld and slurmd, on free ports, with every
// file under dir.
type cluster struct {
	dir  string
	conf string
	host string
	env  []string // the environment of the clients: SLURM_CONF
	log  io.Writer
	// procs are the daemons started, in order; stop ends them in reverse.
	procs []*daemon
}

// daemon is one process the cluster started, with the channel closed
// when it has been reaped.
type daemon struct {
	name   string
	cmd    *exec.Cmd
	exited chan struct{}
}

// freePorts asks the kernel for n TCP ports that are free now.
func freePorts(n int) ([]int, error) {
	var ports []int
	var lns []net.Listener
	defer func() {
		for _, l := range lns {
			_ = l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", ":0")
		if err != nil {
			return nil, err
		}
		lns = append(lns, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// slurmConf is the configuration of the one-node cluster: Slurm kept out
// of the cgroups (proctrack/linuxproc, task/none) so that cgmon makes its
// own as it would anywhere, every CPU schedulable to a task (CR_CPU, not
// the default that gives a job all the memory), and a credential lifetime
// of 10 s, which is also how long a requeued task waits before it starts
// again (120 s by default).
const slurmConf = `ClusterName=cgmonfleettest
SlurmctldHost={{host}}(127.0.0.1)
SlurmctldPort={{ctldport}}
SlurmdPort={{slurmdport}}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={{dir}}/munge/munge.socket,cred_expire=10
StateSaveLocation={{dir}}/ctld
SlurmdSpoolDir={{dir}}/slurmd
SlurmctldPidFile={{dir}}/run/slurmctld.pid
SlurmdPidFile={{dir}}/run/slurmd.pid
SlurmctldLogFile={{dir}}/log/slurmctld.log
SlurmdLogFile={{dir}}/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
MailProg=/bin/true
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
NodeName={{host}} NodeAddr=127.0.0.1 CPUs={{cpus}} State=UNKNOWN
PartitionName=fleettest Nodes={{host}} Default=YES MaxTime=INFINITE State=UP
`

// renderConf fills slurmConf in.
func renderConf(host, dir string, ctldPort, slurmdPort, cpus int) string {
	return strings.NewReplacer("{{host}}", host, "{{dir}}", dir, "{{ctldport}}", strconv.Itoa(ctldPort),
		"{{slurmdport}}", strconv.Itoa(slurmdPort), "{{cpus}}", strconv.Itoa(cpus)).Replace(slurmConf)
}

// startCluster writes the configuration and a munge key under dir and
// starts munged, slurmctld and slurmd, then waits (within ctx) until the
// node is idle. On error, what it started is stopped.
func startCluster(ctx context.Context, dir string, log io.Writer) (_ *cluster, err error) {
	host, err := os.Hostname()
	if err != nil {
		return nil, err
	}
	host, _, _ = strings.Cut(host, ".")
	c := &cluster{dir: dir, conf: filepath.Join(dir, "slurm.conf"), host: host, log: log}
	c.env = append(os.Environ(), "SLURM_CONF="+c.conf)
	defer func() {
		if err != nil {
			c.stop()
		}
	}()
	for _, d := range []string{"ctld", "slurmd", "run", "log"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return nil, err
		}
	}
	if err := c.startMunge(ctx); err != nil {
		return nil, err
	}
	ports, err := freePorts(2)
	if err != nil {
		return nil, err
	}
	conf := renderConf(host, dir, ports[0], ports[1], runtime.NumCPU())
	if err := os.WriteFile(c.conf, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	if err := c.start("slurmctld", nil, "-D", "-f", c.conf); err != nil {
		return nil, err
	}
	if err := c.start("slurmd", nil, "-D", "-f", c.conf, "-N", host); err != nil {
		return nil, err
	}
	err = waitFor(ctx, 60*time.Second, "the node to be idle", func() (bool, error) {
		if err := c.exitedEarly(); err != nil {
			return false, err
		}
		out, _ := c.client(ctx, "sinfo", "-h", "-N", "-o", "%T")
		return strings.TrimSpace(out) == "idle", nil
	})
	if err != nil {
		return nil, fmt.Errorf("%v\n%s", err, c.logs())
	}
	return c, nil
}

// startMunge makes a munge key and a socket directory of the cluster's
// own, owned by the munge user, and starts munged in the foreground as
// that user, so that nothing of the host's munge is used or changed.
func (c *cluster) startMunge(ctx context.Context) error {
	u, err := user.Lookup("munge")
	if err != nil {
		return err
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	mdir := filepath.Join(c.dir, "munge")
	if err := os.Mkdir(mdir, 0o755); err != nil {
		return err
	}
	key := make([]byte, 1024)
	if _, err := rand.Read(key); err != nil {
		return err
	}
	keyFile := filepath.Join(mdir, "munge.key")
	if err := os.WriteFile(keyFile, key, 0o400); err != nil {
		return err
	}
	for _, p := range []string{mdir, keyFile} {
		if err := os.Chown(p, uid, gid); err != nil {
			return err
		}
	}
	cred := &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	err = c.start("munged", cred, "-F", "--socket="+filepath.Join(mdir, "munge.socket"), "--key-file="+keyFile,
		"--pid-file="+filepath.Join(mdir, "munged.pid"), "--log-file="+filepath.Join(mdir, "munged.log"),
		"--seed-file="+filepath.Join(mdir, "munged.seed"))
	if err != nil {
		return err
	}
	return waitFor(ctx, 15*time.Second, "munged's socket", func() (bool, error) {
		if err := c.exitedEarly(); err != nil {
			return false, err
		}
		_, err := os.Stat(filepath.Join(mdir, "munge.socket"))
		return err == nil, nil
	})
}

// start starts a daemon in the foreground, in its own process group, its
// output in log/NAME.out.
func (c *cluster) start(name string, cred *syscall.Credential, args ...string) error {
	path, err := lookTool(name)
	if err != nil {
		return err
	}
	out, err := os.Create(filepath.Join(c.dir, "log", name+".out"))
	if err != nil {
		return err
	}
	defer out.Close()
	cmd := exec.Command(path, args...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Env = c.env
	cmd.Dir = c.dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: cred}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %v", name, err)
	}
	d := &daemon{name: name, cmd: cmd, exited: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(d.exited)
	}()
	c.procs = append(c.procs, d)
	fmt.Fprintf(c.log, "fleettest: started %s (pid %d)\n", name, cmd.Process.Pid)
	return nil
}

// exitedEarly returns an error naming a daemon that has exited already.
func (c *cluster) exitedEarly() error {
	for _, d := range c.procs {
		select {
		case <-d.exited:
			return fmt.Errorf("%s exited: %s", d.name, d.cmd.ProcessState)
		default:
		}
	}
	return nil
}

// stop ends the daemons it started, the last first: SIGTERM, then
// SIGKILL after 15 s; it returns once each has been reaped.
func (c *cluster) stop() {
	for i := len(c.procs) - 1; i >= 0; i-- {
		d := c.procs[i]
		_ = d.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-d.exited:
		case <-time.After(15 * time.Second):
			fmt.Fprintf(c.log, "fleettest: %s (pid %d) did not end within 15 s of SIGTERM: SIGKILL\n", d.name, d.cmd.Process.Pid)
			_ = d.cmd.Process.Kill()
			<-d.exited
		}
		fmt.Fprintf(c.log, "fleettest: stopped %s (pid %d)\n", d.name, d.cmd.Process.Pid)
	}
	c.procs = nil
}

// client runs a Slurm client command against the cluster, within 30 s,
// and returns its standard output.
func (c *cluster) client(ctx context.Context, name string, args ...string) (string, error) {
	path, err := lookTool(name)
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Env = c.env
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
}

// logs returns the end of each daemon's log, for a failure message.
func (c *cluster) logs() string {
	var b strings.Builder
	files, _ := filepath.Glob(filepath.Join(c.dir, "log", "*"))
	files = append(files, filepath.Join(c.dir, "munge", "munged.log"))
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil || len(data) == 0 {
			continue
		}
		fmt.Fprintf(&b, "--- %s (end)\n%s\n", f, tail(data, 30))
	}
	return b.String()
}

// tail returns the last n lines of b.
func tail(b []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// waitFor calls cond every 200 ms until it reports true, returns an
// error, ctx ends, or timeout passes; the error then says what was
// waited for.
func waitFor(ctx context.Context, timeout time.Duration, what string, cond func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
	for {
		ok, err := cond()
		if err != nil {
			return fmt.Errorf("waiting for %s: %v", what, err)
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("waited %v for %s", timeout, what)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %v", what, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}
