package soak

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/cgmon/cgmon/metrics"
)

// batchResult is the part of a `cgmon batch` result line the soak checks.
type batchResult struct {
	ID        string         `json:"id"`
	InputLine int            `json:"input_line"`
	Status    metrics.Status `json:"status"`
	ExitCode  int            `json:"exit_code"`
	Signal    int            `json:"signal"`
	Leftovers int            `json:"leftover_processes_killed"`
	PidsPeak  *uint64        `json:"pids_peak"`
	Reason    string         `json:"reason"`
}

// batchLine is one input line of kind k.
func (s *Soak) batchLine(k kind, id string) ([]byte, error) {
	l := map[string]any{"id": id, "language": k.name, "command": k.command}
	if k.timeout > 0 {
		l["timeout"] = k.timeout.String()
	}
	if k.limits != nil {
		l["limits"] = k.limits
	}
	b, err := json.Marshal(l)
	return append(b, '\n'), err
}

// Batch feeds n lines of the mix to one `cgmon batch --parallel Parallel`
// through a pipe, every lines at a time: after each round it waits for
// that round's results, checks that each input line got exactly one
// result line with the status its kind must end in, and that nothing of
// the soak is left but the batch itself, whose descriptors must stay the
// same and whose RSS must stay flat. At the end of the input the batch
// must exit 0 with a summary of n executions, leaving nothing.
func (s *Soak) Batch(n, every int) []Checkpoint {
	s.printf("batch: %d lines through one cgmon batch --parallel %d\n", n, s.Parallel)
	ks, err := kinds(s.VM)
	if err != nil {
		s.problem("batch: workloads: %v", err)
		return nil
	}
	sum, err := os.CreateTemp("", "cgmon-soak-summary-*.json")
	if err != nil {
		s.problem("batch: %v", err)
		return nil
	}
	sum.Close()
	defer os.Remove(sum.Name())
	cmd := exec.Command(s.Cgmon, "batch", "--parallel", fmt.Sprint(s.Parallel), "--backend", string(s.backend()),
		"--format", "json", "--summary", sum.Name(), "-")
	cmd.Env = s.env()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		s.problem("batch: %v", err)
		return nil
	}
	outR, err := cmd.StdoutPipe()
	if err != nil {
		s.problem("batch: %v", err)
		return nil
	}
	if err := cmd.Start(); err != nil {
		s.problem("batch: start: %v", err)
		return nil
	}
	pid := cmd.Process.Pid
	results := make(chan []byte, 64)
	var readErr error
	go func() {
		defer close(results)
		sc := bufio.NewScanner(outR)
		sc.Buffer(make([]byte, 64<<10), 4<<20)
		for sc.Scan() {
			results <- append([]byte(nil), sc.Bytes()...)
		}
		readErr = sc.Err()
	}()
	bad := tally{}
	got := make([]int32, n+1) // by input line; made before the first checkpoint
	var cps []Checkpoint
	start := time.Now()
	lost := false
	for done := 0; done < n && !lost; {
		round := min(every, n-done)
		var werr error
		var wg sync.WaitGroup
		wg.Add(1)
		go func() { // write while reading: the pipes are small
			defer wg.Done()
			w := bufio.NewWriter(in)
			for i := done; i < done+round && werr == nil; i++ {
				var b []byte
				if b, werr = s.batchLine(ks[i%len(ks)], s.id("batch", i)); werr == nil {
					_, werr = w.Write(b)
				}
			}
			if werr == nil {
				werr = w.Flush()
			}
		}()
		for k := 0; k < round; k++ {
			var line []byte
			select {
			case l, ok := <-results:
				if !ok {
					s.problem("batch: output ended after %d results (exit: %v): %s", done+k, cmd.Wait(), first(strings.Split(stderr.String(), "\n"), 5))
					lost = true
				}
				line = l
			case <-time.After(2 * time.Minute):
				s.problem("batch: no result for 2 minutes after %d", done+k)
				lost = true
			}
			if lost {
				break
			}
			var r batchResult
			if err := json.Unmarshal(line, &r); err != nil {
				bad.add("a result line that is not JSON", string(first(line, 200)))
				continue
			}
			i := r.InputLine - 1
			if i < 0 || i >= n || r.ID != s.id("batch", i) {
				bad.add("a result for no input line", fmt.Sprintf("line %d id %s", r.InputLine, r.ID))
				continue
			}
			got[r.InputLine]++
			k := ks[i%len(ks)]
			var peak uint64
			if r.PidsPeak != nil {
				peak = *r.PidsPeak
			}
			if err := k.check(r.Status, r.ExitCode, r.Signal, r.Leftovers, peak, r.PidsPeak != nil); err != nil {
				bad.add(k.name+": "+err.Error(), r.ID+" ("+r.Reason+")")
			}
		}
		wg.Wait()
		if werr != nil {
			s.problem("batch: writing its input: %v", werr)
			lost = true
		}
		if lost {
			break
		}
		done += round
		c := Checkpoint{Done: done, Elapsed: time.Since(start)}
		c.Procs, c.Leaves = s.checkNothingLeft(fmt.Sprintf("batch after %d", done), pid)
		if z := settle(2*time.Second, func() []string { return children(pid) }); len(z) > 0 {
			s.problem("batch after %d: %d children of cgmon batch left: %v", done, len(z), first(z, 5))
		}
		c.RSS, c.FDs, c.Threads = statusField(pid, "VmRSS"), countFDs(pid), int(statusField(pid, "Threads"))
		s.printCheckpoint(c, n)
		cps = append(cps, c)
	}
	in.Close()
	for l := range results {
		bad.add("a result after the input ended", string(first(l, 200)))
	}
	werr := cmd.Wait()
	if readErr != nil {
		s.problem("batch: reading its output: %v", readErr)
	}
	if werr != nil {
		s.problem("batch: %v: %s", werr, first(strings.Split(stderr.String(), "\n"), 5))
	}
	bad.report(s, "batch")
	for line := 1; line <= n && !lost; line++ {
		if got[line] != 1 {
			s.problem("batch: input line %d has %d result lines", line, got[line])
		}
	}
	var summary struct {
		Summary metrics.Summary `json:"summary"`
	}
	if b, err := os.ReadFile(sum.Name()); err != nil || json.Unmarshal(b, &summary) != nil {
		s.problem("batch: no JSON summary: %v", err)
	} else if summary.Summary.TotalExecutions != uint64(n) && !lost {
		s.problem("batch: the summary counts %d executions, want %d", summary.Summary.TotalExecutions, n)
	}
	s.checkNothingLeft("batch after its end")
	s.flat("batch", cps)
	return cps
}

// backend is the backend to ask the CLI for.
func (s *Soak) backend() string {
	if s.Backend == "" {
		return "auto"
	}
	return string(s.Backend)
}

// SequentialResult is what Sequential measured.
type SequentialResult struct {
	// First and Last are the median wall times of the first and the last
	// tenth of each series (at least one run, at most 200).
	TrueFirst, TrueLast     time.Duration
	DaemonFirst, DaemonLast time.Duration
	// LeftoversKilled counts the daemon runs whose report says cgmon
	// killed the background sleep.
	LeftoversKilled int
}

// Sequential runs nTrue `cgmon run -- /bin/true`, then nDaemon `cgmon run
// -- sh -c 'sleep 0.05 & exit 0'` (the background sleep is a leftover
// cgmon kills), one after the other, timing each from fork to exit, and
// checks that each exits 0 and that nothing is left.
func (s *Soak) Sequential(nTrue, nDaemon int) SequentialResult {
	var res SequentialResult
	s.printf("sequential: %d cgmon run -- /bin/true, then %d cgmon run -- sh -c 'sleep 0.05 & exit 0'\n", nTrue, nDaemon)
	env := s.env()
	run := func(i int, report string, command ...string) (time.Duration, error) {
		args := append([]string{"run", "--backend", s.backend(), "--id", s.id("seq", i), "--format", "json", "-o", report, "--"}, command...)
		cmd := exec.Command(s.Cgmon, args...)
		cmd.Env = env
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		t0 := time.Now()
		err := cmd.Run()
		d := time.Since(t0)
		if err != nil {
			return d, fmt.Errorf("%v: %s", err, strings.TrimSpace(stderr.String()))
		}
		return d, nil
	}
	series := func(name string, count, offset int, report string, command ...string) []time.Duration {
		ds := make([]time.Duration, 0, count)
		bad := tally{}
		for i := range count {
			d, err := run(offset+i, report, command...)
			if err != nil {
				bad.add("cgmon run failed: "+firstWords(err.Error()), err.Error())
				continue
			}
			ds = append(ds, d)
			if name == "daemon" {
				var r batchResult
				b, _ := os.ReadFile(report)
				if err := json.Unmarshal(b, &r); err != nil || r.Status != metrics.StatusSuccess {
					bad.add("a report that is not a success", fmt.Sprintf("%s %v", r.Status, err))
				} else if r.Leftovers >= 1 {
					res.LeftoversKilled++
				}
			}
			if (i+1)%max(count/5, 1) == 0 {
				s.printf("  %s %5d/%d  last run %.2f ms\n", name, i+1, count, float64(d.Microseconds())/1000)
			}
		}
		bad.report(s, "sequential "+name)
		return ds
	}
	tenth := func(ds []time.Duration) (time.Duration, time.Duration) {
		k := min(max(len(ds)/10, 1), 200, len(ds))
		return median(ds[:k]), median(ds[len(ds)-k:])
	}
	dir, err := os.MkdirTemp("", "cgmon-soak-seq-")
	if err != nil {
		s.problem("sequential: %v", err)
		return res
	}
	defer os.RemoveAll(dir)
	ts := series("true", nTrue, 0, os.DevNull, "/bin/true")
	ds := series("daemon", nDaemon, nTrue, filepath.Join(dir, "report.json"), "/bin/sh", "-c", "sleep 0.05 & exit 0")
	if len(ts) > 0 {
		res.TrueFirst, res.TrueLast = tenth(ts)
	}
	if len(ds) > 0 {
		res.DaemonFirst, res.DaemonLast = tenth(ds)
	}
	ms := func(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d.Microseconds())/1000) }
	s.printf("  /bin/true: median of the first tenth %s, of the last tenth %s (x%.2f)\n", ms(res.TrueFirst), ms(res.TrueLast), ratio(res.TrueLast, res.TrueFirst))
	s.printf("  daemon:    median of the first tenth %s, of the last tenth %s (x%.2f); leftover killed in %d of %d\n",
		ms(res.DaemonFirst), ms(res.DaemonLast), ratio(res.DaemonLast, res.DaemonFirst), res.LeftoversKilled, len(ds))
	s.checkNothingLeft("sequential")
	return res
}

func ratio(a, b time.Duration) float64 {
	if b == 0 {
		return 0
	}
	return a.Seconds() / b.Seconds()
}

// Together starts n `cgmon run -- sh -c 'sleep 0.2'` at once, all on the
// default root, and checks that each exits 0 with a success report and
// that nothing is left.
func (s *Soak) Together(n int) {
	s.printf("parallel: %d cgmon run started at once on the default root\n", n)
	dir, err := os.MkdirTemp("", "cgmon-soak-par-")
	if err != nil {
		s.problem("parallel: %v", err)
		return
	}
	defer os.RemoveAll(dir)
	env := s.env()
	cmds := make([]*exec.Cmd, n)
	errs := make([]bytes.Buffer, n)
	for i := range cmds {
		cmds[i] = exec.Command(s.Cgmon, "run", "--backend", s.backend(), "--id", s.id("par", i), "--format", "json",
			"-o", filepath.Join(dir, fmt.Sprint(i)), "--", "/bin/sh", "-c", "sleep 0.2")
		cmds[i].Env = env
		cmds[i].Stderr = &errs[i]
	}
	t0 := time.Now()
	for i, c := range cmds {
		if err := c.Start(); err != nil {
			s.problem("parallel: start %d: %v", i, err)
			cmds[i] = nil
		}
	}
	ok := 0
	for i, c := range cmds {
		if c == nil {
			continue
		}
		if err := c.Wait(); err != nil {
			s.problem("parallel: run %d: %v: %s", i, err, strings.TrimSpace(errs[i].String()))
			continue
		}
		var r batchResult
		b, err := os.ReadFile(filepath.Join(dir, fmt.Sprint(i)))
		if err == nil {
			err = json.Unmarshal(b, &r)
		}
		if err != nil || r.Status != metrics.StatusSuccess {
			s.problem("parallel: run %d: report %q, %v", i, r.Status, err)
			continue
		}
		ok++
	}
	s.printf("  %d of %d succeeded in %.2f s\n", ok, n, time.Since(t0).Seconds())
	s.checkNothingLeft("parallel")
}
