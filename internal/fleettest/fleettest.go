package fleettest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Config is what Run needs.
type Config struct {
	// ModRoot is the module's root: README.md, examples/slurm and
	// ./cmd/cgmon are read from it.
	ModRoot string
	// Go is the go command that builds cgmon.
	Go string
	// Keep keeps the work directory (the cluster's logs, the input and
	// the result files) instead of removing it.
	Keep bool
	// Out receives progress and the verdict.
	Out io.Writer
}

// shards is the size of the example's job array; killedTask is the task
// the harness kills half-way and requeues.
const (
	shards     = 3
	killedTask = 1
)

// idPrefix starts every id of the harness's input, so that the cgroups
// its executions leave can be told from anyone else's.
const idPrefix = "fleettest-"

// rejectedID is the id of the one input line that cgmon rejects.
const rejectedID = idPrefix + "bad"

// lockPath serialises runs of the harness on a machine: they would share
// the cgroup root of cgmon and the slurmstepd processes the harness
// watches.
const lockPath = "/tmp/cgmon-fleettest.lock"

// Run starts a one-node Slurm, submits the README's sbatch command for
// examples/slurm/cgmon-batch.sbatch (a job array of 3 tasks, each
// `cgmon batch --shard K/3 --resume`), kills task 1 with SIGKILL once it
// has written some results, tears its last result line in half as a kill
// in the middle of that write would, requeues it, waits for the array to
// end, and checks the three result files against an unsharded run of the
// same input, id for id. Whatever happens, it stops every daemon it
// started (by pid), and removes its files and the cgroups the killed
// cgmon left. It returns nil when every check passed; an error wrapping
// ErrCannotRun when this host cannot run a Slurm.
func Run(ctx context.Context, cfg Config) (err error) {
	if err := CheckHost(); err != nil {
		return err
	}
	unlock, err := lock(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	h := &harness{cfg: cfg, out: cfg.Out}
	if h.work, err = os.MkdirTemp("", "cgmon-fleettest-"); err != nil {
		return err
	}
	defer func() {
		if cfg.Keep {
			fmt.Fprintf(h.out, "fleettest: kept %s\n", h.work)
			return
		}
		if rerr := os.RemoveAll(h.work); rerr != nil {
			err = errors.Join(err, fmt.Errorf("removing %s: %v", h.work, rerr))
		}
	}()
	// munged, as the munge user, must reach its socket below it.
	if err := os.Chmod(h.work, 0o755); err != nil {
		return err
	}
	defer func() { err = errors.Join(err, h.removeLeftovers()) }()
	return h.run(ctx)
}

// harness is the state of one Run.
type harness struct {
	cfg  Config
	out  io.Writer
	work string
	bin  string // the cgmon built for the run
	// cgroupRoot is where cgmon makes its executions' cgroups here, and
	// rootExisted whether it existed before the run.
	cgroupRoot  string
	rootExisted bool
	// killedPid is the cgmon the harness killed: the cgroups it left are
	// expected.
	killedPid int
	// stepdsBefore are the slurmstepd processes that ran before the
	// cluster started: any other is the harness's.
	stepdsBefore map[int]bool
}

// step prints what the harness does next.
func (h *harness) step(format string, args ...any) {
	fmt.Fprintf(h.out, "fleettest: "+format+"\n", args...)
}

// run does Run's work once the work directory exists.
func (h *harness) run(ctx context.Context) (err error) {
	h.step("building cgmon")
	if err := h.build(ctx); err != nil {
		return err
	}
	if err := h.findCgroupRoot(ctx); err != nil {
		return err
	}
	input, runs, err := writeInput(h.work)
	if err != nil {
		return err
	}
	h.step("an unsharded run of %s (%d runs)", input, runs)
	unsharded := filepath.Join(h.work, "unsharded.ndjson")
	if code, stderr, err := h.cgmon(ctx, "batch", "--parallel", "2", "-o", unsharded, input); err != nil || code != 1 {
		return fmt.Errorf("the unsharded run: exit %d (want 1, for the rejected line), %v: %s", code, err, stderr)
	}

	h.stepdsBefore = pidsNamed("slurmstepd")
	h.step("starting a one-node Slurm under %s", filepath.Join(h.work, "slurm"))
	cl, err := startCluster(ctx, filepath.Join(h.work, "slurm"), h.out)
	if err != nil {
		return fmt.Errorf("starting Slurm: %v", err)
	}
	job := ""
	defer func() {
		if job != "" {
			_, _ = cl.client(context.Background(), "scancel", job)
		}
		cl.stop()
		err = errors.Join(err, h.endStragglers())
		if err != nil {
			fmt.Fprintln(h.out, cl.logs())
		}
	}()

	if job, err = h.submit(ctx, cl); err != nil {
		return err
	}
	h.step("job array %s submitted", job)
	resultsDir := filepath.Join(h.work, "results")
	killed := filepath.Join(resultsDir, fmt.Sprintf("shard-%d.ndjson", killedTask))
	prefix, tornKey, err := h.killHalfway(ctx, cl, job, killed, runsOf(input, killedTask))
	if err != nil {
		return err
	}
	h.step("requeueing task %d", killedTask)
	if _, err := cl.client(ctx, "scontrol", "requeue", fmt.Sprintf("%s_%d", job, killedTask)); err != nil {
		return err
	}
	h.step("waiting for the array to end (a requeued task waits about 10 s before it starts again)")
	err = waitFor(ctx, 3*time.Minute, "the job array to end", func() (bool, error) {
		out, err := cl.client(ctx, "squeue", "-h", "-j", job, "-o", "%i %T")
		return err == nil && strings.TrimSpace(out) == "", nil
	})
	if err != nil {
		return err
	}
	states, err := arrayStates(ctx, cl, job)
	if err != nil {
		return err
	}
	arrayID := job
	job = "" // ended: nothing to cancel

	var problems []string
	problems = append(problems, checkStates(states, Shard(rejectedID, shards))...)
	problems = append(problems, h.checkResults(resultsDir, unsharded, killed, prefix, tornKey)...)
	log := filepath.Join(h.work, fmt.Sprintf("cgmon-batch-%s_%d.log", arrayID, killedTask))
	if b, err := os.ReadFile(log); err != nil || !bytes.Contains(b, []byte("removed the torn last line")) {
		problems = append(problems, fmt.Sprintf("the log of task %d (%s) does not say that the resumed cgmon removed the torn line: %v %s", killedTask, log, err, tail(b, 10)))
	}
	problems = append(problems, h.checkSummaries(ctx, resultsDir, unsharded)...)
	if len(problems) > 0 {
		return fmt.Errorf("%d problems:\n  %s", len(problems), strings.Join(problems, "\n  "))
	}
	h.step("checked: %d shards, task %d killed half-way and resumed; the results equal the unsharded run, id for id, and so does cgmon summary of the three files", shards, killedTask)
	return nil
}

// build builds cgmon into the work directory.
func (h *harness) build(ctx context.Context) error {
	h.bin = filepath.Join(h.work, "bin", "cgmon")
	cmd := exec.CommandContext(ctx, h.cfg.Go, "build", "-o", h.bin, "./cmd/cgmon")
	cmd.Dir = h.cfg.ModRoot
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("building cgmon: %v\n%s", err, out)
	}
	return os.Chmod(filepath.Dir(h.bin), 0o755)
}

// cgmon runs the built cgmon and returns its exit status and standard
// error.
func (h *harness) cgmon(ctx context.Context, args ...string) (int, string, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, h.bin, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), stderr.String(), nil
	}
	return 0, stderr.String(), err
}

// findCgroupRoot asks `cgmon doctor` where cgmon makes its executions'
// cgroups on this host.
func (h *harness) findCgroupRoot(ctx context.Context) error {
	cmd := exec.CommandContext(ctx, h.bin, "doctor", "--format", "json")
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("cgmon doctor: %v", err)
	}
	var d struct {
		Root string `json:"root"`
	}
	if err := json.Unmarshal(out, &d); err != nil {
		return fmt.Errorf("cgmon doctor: %v", err)
	}
	h.cgroupRoot = d.Root
	if d.Root != "" {
		_, err := os.Stat(d.Root)
		h.rootExisted = err == nil
	}
	return nil
}

// writeInput writes the batch the harness spreads: runs long enough
// (0.4 s each, one at a time per task) for a task to be killed half-way,
// with several exit statuses and languages, a line repeated 3 times, a
// timeout, and one line that cgmon rejects. It returns the file's path
// and the number of runs.
func writeInput(dir string) (string, int, error) {
	var lines []string
	for i := range 30 {
		lang := []string{"sh", "c", "python"}[i%3]
		lines = append(lines, fmt.Sprintf(`{"id": "%s%02d", "language": %q, "command": ["sh", "-c", "sleep 0.4; exit %d"]}`, idPrefix, i, lang, i%3))
	}
	lines = append(lines,
		fmt.Sprintf(`{"id": "%srep", "language": "sh", "command": ["sleep", "0.2"], "repeat": 3}`, idPrefix),
		fmt.Sprintf(`{"id": "%sslow", "language": "sh", "command": ["sleep", "5"], "timeout": "300ms"}`, idPrefix),
		fmt.Sprintf(`{"id": %q, "command": ["true"], "oops": 1}`, rejectedID))
	path := filepath.Join(dir, "batch.ndjson")
	return path, 30 + 3 + 1 + 1, os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o644)
}

// runsOf counts the runs of the input file that fall in shard k.
func runsOf(input string, k int) int {
	b, _ := os.ReadFile(input)
	n := 0
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var v struct {
			ID     string `json:"id"`
			Repeat int    `json:"repeat"`
		}
		if json.Unmarshal([]byte(l), &v) == nil && Shard(v.ID, shards) == k {
			n += max(v.Repeat, 1)
		}
	}
	return n
}

// sbatchBlock matches the README's command block that submits the example.
var sbatchBlock = regexp.MustCompile("(?s)```sh\n(sbatch [^`]*?)```")

// submit copies the example into the work directory and runs the
// README's sbatch command there, as printed, with the built cgmon first
// on PATH; it returns the job's id.
func (h *harness) submit(ctx context.Context, cl *cluster) (string, error) {
	readme, err := os.ReadFile(filepath.Join(h.cfg.ModRoot, "README.md"))
	if err != nil {
		return "", err
	}
	m := sbatchBlock.FindSubmatch(readme)
	if m == nil {
		return "", errors.New("the README has no sh block that starts with sbatch")
	}
	block := string(m[1])
	src := filepath.Join(h.cfg.ModRoot, "examples", "slurm", "cgmon-batch.sbatch")
	script, err := os.ReadFile(src)
	if err != nil {
		return "", err
	}
	dst := filepath.Join(h.work, "examples", "slurm", "cgmon-batch.sbatch")
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return "", err
	}
	if err := os.WriteFile(dst, script, 0o755); err != nil {
		return "", err
	}
	h.step("running the README's command in %s: %s", h.work, strings.TrimSpace(block))
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-e", "-c", block)
	cmd.Dir = h.work
	cmd.Env = append(cl.env, "PATH="+filepath.Dir(h.bin)+":/usr/sbin:/usr/bin:/sbin:/bin")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("%s: %v\n%s", block, err, out)
	}
	id := regexp.MustCompile(`Submitted batch job ([0-9]+)`).FindSubmatch(out)
	if id == nil {
		return "", fmt.Errorf("%s printed no job id: %s", block, out)
	}
	return string(id[1]), nil
}

// killHalfway waits until the task writing path is running and has
// written a few of its runs results, kills its cgmon with SIGKILL through
// scancel, waits until it is gone, and cuts the file's last line in half,
// as a kill in the middle of that write would. It returns the file up to
// that line and the torn result's key.
func (h *harness) killHalfway(ctx context.Context, cl *cluster, job, path string, runs int) ([]byte, Key, error) {
	task := fmt.Sprintf("%s_%d", job, killedTask)
	if runs < 6 {
		return nil, Key{}, fmt.Errorf("shard %d has %d runs: too few to be killed half-way", killedTask, runs)
	}
	h.step("waiting for task %d to write 3 of its %d results", killedTask, runs)
	err := waitFor(ctx, 90*time.Second, fmt.Sprintf("task %s to run and write 3 results", task), func() (bool, error) {
		out, _ := cl.client(ctx, "squeue", "-h", "-j", task, "-o", "%T")
		b, _ := os.ReadFile(path)
		n := bytes.Count(b, []byte("\n"))
		if n >= runs {
			return false, fmt.Errorf("task %s finished (%d results) before it could be killed", task, n)
		}
		return strings.TrimSpace(out) == "RUNNING" && n >= 3, nil
	})
	if err != nil {
		return nil, Key{}, err
	}
	h.killedPid = h.findCgmon(fmt.Sprintf("%d/%d", killedTask, shards))
	if h.killedPid == 0 {
		return nil, Key{}, fmt.Errorf("task %s runs, but no cgmon --shard %d/%d was found", task, killedTask, shards)
	}
	h.step("killing task %d's cgmon (pid %d) with SIGKILL: scancel --batch --signal=KILL %s", killedTask, h.killedPid, task)
	if _, err := cl.client(ctx, "scancel", "--batch", "--signal=KILL", task); err != nil {
		return nil, Key{}, err
	}
	err = waitFor(ctx, 60*time.Second, fmt.Sprintf("task %s to end", task), func() (bool, error) {
		out, _ := cl.client(ctx, "squeue", "-h", "-j", task, "-o", "%T")
		_, gone := os.Stat(fmt.Sprintf("/proc/%d", h.killedPid))
		state := strings.TrimSpace(out)
		return gone != nil && state != "RUNNING" && state != "COMPLETING", nil
	})
	if err != nil {
		return nil, Key{}, err
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, Key{}, err
	}
	n := bytes.Count(b, []byte("\n"))
	if n >= runs || n < 2 || b[len(b)-1] != '\n' {
		return nil, Key{}, fmt.Errorf("task %s was killed with %d of %d results written: not half-way", task, n, runs)
	}
	cut := bytes.LastIndexByte(b[:len(b)-1], '\n') + 1
	last, err := parseResults(path, b[cut:])
	if err != nil {
		return nil, Key{}, err
	}
	torn := append(append([]byte{}, b[:cut]...), b[cut:cut+(len(b)-cut)/2]...)
	if err := os.WriteFile(path, torn, 0o644); err != nil {
		return nil, Key{}, err
	}
	h.step("task %d was killed after %d of %d results; its last line (%s) torn in half", killedTask, n, runs, last[0].Key())
	return b[:cut], last[0].Key(), nil
}

// findCgmon returns the pid of the built cgmon running with shard in its
// arguments, or 0.
func (h *harness) findCgmon(shard string) int {
	for _, pid := range procPids() {
		exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
		if err != nil || exe != h.bin {
			continue
		}
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if bytes.Contains(cmdline, []byte("\x00"+shard+"\x00")) {
			return pid
		}
	}
	return 0
}

// taskState is what `scontrol show job` says of one array task.
type taskState struct {
	state, exitCode string
	restarts        int
}

// arrayStates reads the state of each task of the array job.
func arrayStates(ctx context.Context, cl *cluster, job string) (map[int]taskState, error) {
	out, err := cl.client(ctx, "scontrol", "-o", "show", "job", job)
	if err != nil {
		return nil, err
	}
	field := func(line, name string) string {
		m := regexp.MustCompile(`(?:^| )` + name + `=(\S*)`).FindStringSubmatch(line)
		if m == nil {
			return ""
		}
		return m[1]
	}
	states := map[int]taskState{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		k, err := strconv.Atoi(field(line, "ArrayTaskId"))
		if err != nil {
			return nil, fmt.Errorf("scontrol show job %s: no task id in %q", job, line)
		}
		r, _ := strconv.Atoi(field(line, "Restarts"))
		states[k] = taskState{state: field(line, "JobState"), exitCode: field(line, "ExitCode"), restarts: r}
	}
	return states, nil
}

// checkStates checks that every task of the array ran to its end: exit
// status 1 for the task whose shard holds the rejected line (as
// `cgmon batch` exits), 0 for the others; and that the killed task was
// requeued.
func checkStates(states map[int]taskState, rejectedShard int) []string {
	var out []string
	if len(states) != shards {
		out = append(out, fmt.Sprintf("scontrol shows %d tasks, want %d", len(states), shards))
	}
	for k := range shards {
		s, ok := states[k]
		if !ok {
			out = append(out, fmt.Sprintf("task %d: not in scontrol's answer", k))
			continue
		}
		want, wantState := "0:0", "COMPLETED"
		if k == rejectedShard {
			want, wantState = "1:0", "FAILED"
		}
		if s.exitCode != want || s.state != wantState {
			out = append(out, fmt.Sprintf("task %d: %s with exit code %s, want %s with %s", k, s.state, s.exitCode, wantState, want))
		}
		if k == killedTask && s.restarts < 1 {
			out = append(out, fmt.Sprintf("task %d was not requeued (Restarts=%d)", k, s.restarts))
		}
	}
	return out
}

// checkResults compares the result files of the shards with the
// unsharded run, id for id, and checks the killed task's file: the
// results it had before the kill are unchanged and the torn one was run
// again, once.
func (h *harness) checkResults(dir, unsharded, killed string, prefix []byte, torn Key) []string {
	var out []string
	want, err := ReadResults(unsharded)
	if err != nil {
		return []string{err.Error()}
	}
	var files [][]Result
	for k := range shards {
		path := filepath.Join(dir, fmt.Sprintf("shard-%d.ndjson", k))
		rs, err := ReadResults(path)
		if err != nil {
			out = append(out, err.Error())
			continue
		}
		out = append(out, CheckShardFile(path, rs, k, shards)...)
		files = append(files, rs)
		if k != killedTask {
			continue
		}
		b, _ := os.ReadFile(path)
		if !bytes.HasPrefix(b, prefix) {
			out = append(out, fmt.Sprintf("%s: the results written before the kill were changed", path))
		}
		again := 0
		for _, r := range rs {
			if r.Key() == torn {
				again++
			}
		}
		if again != 1 {
			out = append(out, fmt.Sprintf("%s: the torn result %s is there %d times, want once (run again)", path, torn, again))
		}
	}
	out = append(out, Diff(Merge(want), Merge(files...))...)
	return out
}

// removeLeftovers removes the cgroups that executions of the harness's
// ids left in cgmon's root: expected only of the cgmon it killed (it had
// no chance to remove them), an error for any other. The root goes too
// if the run made it and it is empty.
func (h *harness) removeLeftovers() error {
	if h.cgroupRoot == "" {
		return nil
	}
	ents, err := os.ReadDir(h.cgroupRoot)
	if err != nil {
		return nil // no root: nothing was left
	}
	var errs []error
	for _, e := range ents {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), idPrefix) {
			continue
		}
		dir := filepath.Join(h.cgroupRoot, e.Name())
		if h.killedPid == 0 || !strings.Contains(e.Name(), fmt.Sprintf("-%d-", h.killedPid)) {
			errs = append(errs, fmt.Errorf("cgroup %s was left by a cgmon that was not killed", dir))
		}
		_ = os.WriteFile(filepath.Join(dir, "cgroup.kill"), []byte("1"), 0)
		werr := waitFor(context.Background(), 10*time.Second, "the removal of "+dir, func() (bool, error) {
			return syscall.Rmdir(dir) == nil, nil
		})
		if werr != nil {
			errs = append(errs, werr)
		} else {
			h.step("removed %s, left by the killed cgmon", dir)
		}
	}
	if !h.rootExisted {
		_ = syscall.Rmdir(h.cgroupRoot)
	}
	return errors.Join(errs...)
}

// endStragglers kills, by pid, what the harness's cluster may have left
// running once its daemons are stopped: slurmstepd processes that were
// not there before, and cgmon processes of the built binary. Each is an
// error: nothing should be left.
func (h *harness) endStragglers() error {
	var errs []error
	// A slurmstepd ends on its own shortly after its job: give it time.
	newStepds := func() map[int]bool {
		out := map[int]bool{}
		for pid := range pidsNamed("slurmstepd") {
			if !h.stepdsBefore[pid] {
				out[pid] = true
			}
		}
		return out
	}
	_ = waitFor(context.Background(), 15*time.Second, "slurmstepd to end", func() (bool, error) {
		return len(newStepds()) == 0, nil
	})
	for pid := range newStepds() {
		_ = syscall.Kill(pid, syscall.SIGKILL)
		errs = append(errs, fmt.Errorf("slurmstepd (pid %d) was still running 15 s after the cluster stopped: killed", pid))
	}
	for _, pid := range procPids() {
		if exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid)); err == nil && exe == h.bin {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			errs = append(errs, fmt.Errorf("cgmon (pid %d) was still running after the cluster stopped: killed", pid))
		}
	}
	return errors.Join(errs...)
}

// procPids lists the pids in /proc.
func procPids() []int {
	ents, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range ents {
		if pid, err := strconv.Atoi(e.Name()); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

// pidsNamed returns the pids of the live processes whose command name is
// name; a zombie (ended, not yet reaped) is not one.
func pidsNamed(name string) map[int]bool {
	out := map[int]bool{}
	for _, pid := range procPids() {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		// pid (comm) state ...: comm may hold spaces and parentheses.
		open, end := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
		if open < 0 || end < open || end+2 >= len(b) {
			continue
		}
		if string(b[open+1:end]) == name && b[end+2] != 'Z' {
			out[pid] = true
		}
	}
	return out
}

// lock takes the harness's lock file, waiting at most 5 minutes (or
// until ctx ends) for another run to finish; the returned function
// releases it.
func lock(ctx context.Context) (func(), error) {
	f, err := os.OpenFile(lockPath, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	err = waitFor(ctx, 5*time.Minute, "another fleettest to release "+lockPath, func() (bool, error) {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if errors.Is(err, unix.EWOULDBLOCK) {
			return false, nil
		}
		return err == nil, err
	})
	if err != nil {
		f.Close()
		return nil, err
	}
	return func() { f.Close() }, nil
}

// summaryCounts is what checkSummaries compares of two `cgmon summary
// --format json` outputs: the counts, by status and by language, which do
// not depend on how long each execution took.
type summaryCounts struct {
	Summary struct {
		TotalExecutions int            `json:"total_executions"`
		SuccessCount    int            `json:"success_count"`
		ErrorCount      int            `json:"error_count"`
		StatusCounts    map[string]int `json:"status_counts"`
	} `json:"summary"`
	Languages map[string]struct {
		TotalExecutions int `json:"total_executions"`
		SuccessCount    int `json:"success_count"`
	} `json:"languages"`
}

// checkSummaries runs `cgmon summary --format json` over the three
// shards' result files and over the unsharded run's, and reports where
// their counts differ: the merge of a fleet's files must count what one
// machine's run counts, each id once.
func (h *harness) checkSummaries(ctx context.Context, dir, unsharded string) []string {
	read := func(files ...string) (summaryCounts, error) {
		var c summaryCounts
		cmd := exec.CommandContext(ctx, h.bin, append([]string{"summary", "--format", "json"}, files...)...)
		out, err := cmd.Output()
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			return c, fmt.Errorf("cgmon summary %s: %v", strings.Join(files, " "), err)
		}
		if err := json.Unmarshal(out, &c); err != nil {
			return c, fmt.Errorf("cgmon summary %s: %v: %s", strings.Join(files, " "), err, tail(out, 10))
		}
		return c, nil
	}
	var files []string
	for k := range shards {
		files = append(files, filepath.Join(dir, fmt.Sprintf("shard-%d.ndjson", k)))
	}
	got, err := read(files...)
	if err != nil {
		return []string{err.Error()}
	}
	want, err := read(unsharded)
	if err != nil {
		return []string{err.Error()}
	}
	if want.Summary.TotalExecutions == 0 {
		return []string{"cgmon summary of the unsharded run counts no execution"}
	}
	g, _ := json.Marshal(got)
	w, _ := json.Marshal(want)
	if !bytes.Equal(g, w) {
		return []string{fmt.Sprintf("cgmon summary of the shards counts %s, of the unsharded run %s", g, w)}
	}
	return nil
}
