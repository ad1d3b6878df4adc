package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"sort"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/cgmon/cgmon/cgroupmon"
	"github.com/cgmon/cgmon/metrics"
	"github.com/cgmon/cgmon/metrics/prom"
)

// exitIOError is batch's exit status when its input or output failed
// (sysexits' EX_IOERR): lines after the failure were not run, or results
// were lost.
const exitIOError = 74

// batchOptions are the flags of `cgmon batch`.
type batchOptions struct {
	Parallel    int
	Output      string
	Summary     string
	Format      string
	MetricsAddr string
	Interval    time.Duration
	Backend     string
	CgroupRoot  string
	MoveOthers  bool
	Input       string
	// Shard is --shard K/N (n = 0 without it); Resume is --resume.
	Shard  shard
	Resume bool

	// PromTextfile is a node_exporter textfile the batch adds to.
	PromTextfile string
}

// keyed reports whether ids key the work: with --shard or --resume.
func (o *batchOptions) keyed() bool { return o.Shard.n > 0 || o.Resume }

// BatchResult is the JSON summary of `cgmon batch --format json`.
type BatchResult struct {
	SchemaVersion int                              `json:"schema_version"`
	Summary       metrics.Summary                  `json:"summary"`
	Languages     map[string]metrics.LanguageStats `json:"languages"`
	// BadLines are input lines that were rejected: not run.
	BadLines []BadLine `json:"bad_lines"`
	// DuplicateIDs counts the input lines that had the id of an earlier
	// line (they ran all the same; without --shard or --resume, which
	// refuse them).
	DuplicateIDs int `json:"duplicate_ids"`
	// Interrupted is true when SIGINT or SIGTERM stopped the batch;
	// InterruptedBy names the signal.
	Interrupted   bool   `json:"interrupted"`
	InterruptedBy string `json:"interrupted_by,omitempty"`
	// InputError is why the input could not be read to its end.
	InputError string `json:"input_error,omitempty"`
	// OutputError is why results could not be written; ResultsLost is
	// how many were not.
	OutputError string `json:"output_error,omitempty"`
	ResultsLost int    `json:"results_lost"`
	// CleanupError names cgroups that could not be removed at the end.
	CleanupError string `json:"cleanup_error,omitempty"`
	// Shard is the --shard K/N that ran; OtherShards counts the input
	// lines it left to other shards.
	Shard       string `json:"shard,omitempty"`
	OtherShards int    `json:"other_shard_lines,omitempty"`
	// Resumed is true with --resume; AlreadyDone counts the runs it
	// skipped because the output file had their results.
	Resumed     bool `json:"resumed,omitempty"`
	AlreadyDone int  `json:"already_done,omitempty"`
	// TextfileError is why --prom-textfile could not be written.
	TextfileError string `json:"textfile_error,omitempty"`
}

// parseBatchFlags fills batchOptions from args and checks them; nothing
// is opened or created.
func parseBatchFlags(args []string, help io.Writer) (*batchOptions, error) {
	o := &batchOptions{}
	c := newCommand("batch", "cgmon batch [flags] FILE|-")
	c.IntVar(&o.Parallel, "parallel", runtime.NumCPU(), "run `N` executions at once (default: the number of CPUs)")
	c.StringVar(&o.Output, "output", "-", "append each result as an NDJSON line to `FILE` (default -: standard output)")
	c.StringVar(&o.Output, "o", "-", "shorthand for --output")
	c.StringVar(&o.Summary, "summary", "", "write the summary to `FILE` (default: standard error)")
	c.StringVar(&o.Format, "format", "human", "summary `FORMAT`: human, json or markdown")
	c.StringVar(&o.MetricsAddr, "metrics-addr", "", "serve Prometheus /metrics on `HOST:PORT` while the batch runs, e.g. 127.0.0.1:9464 (:0 picks a port and prints it)")
	c.StringVar(&o.PromTextfile, "prom-textfile", "", "add the statistics to the node_exporter textfile-collector `FILE` (DIR/cgmon.prom) every 15 s and at the end")
	c.DurationVar(&o.Interval, "interval", defaultInterval, intervalUsage)
	c.StringVar(&o.Backend, "backend", string(cgroupmon.BackendAuto), backendUsage)
	c.StringVar(&o.CgroupRoot, "cgroup-root", "", cgroupRootUsage)
	c.Func("shard", "run only the lines of shard `K/N` (K from 0 to N-1), chosen by a hash of their id", func(v string) error {
		s, err := parseShard(v)
		o.Shard = s
		return err
	})
	c.BoolVar(&o.Resume, "resume", false, "skip the runs that already have a result in --output FILE, and add the others to it")
	c.BoolVar(&o.MoveOthers, "move-others", false, "inside a container whose cgroup-namespace root holds its processes: move them into <mount>/init first, as docker-in-docker does, so that executions get controllers (see cgmon doctor)")
	if err := c.parse(args, help); err != nil {
		return nil, err
	}
	if c.NArg() != 1 {
		return nil, fail("batch: want one input FILE or - for standard input")
	}
	o.Input = c.Arg(0)
	if o.Parallel < 1 {
		return nil, fail("batch: --parallel %d: must be at least 1", o.Parallel)
	}
	if o.Resume && o.Output == "-" {
		return nil, fail("batch: --resume needs --output FILE: it reads back the results already written there")
	}
	if o.Format != "human" && o.Format != "json" && o.Format != "markdown" {
		return nil, fail("batch: --format %q: want human, json or markdown", o.Format)
	}
	if err := checkTextfilePath(o.PromTextfile); err != nil {
		return nil, fail("batch: --prom-textfile: %v", err)
	}
	if err := checkInterval("batch", o.Interval); err != nil {
		return nil, err
	}
	switch cgroupmon.BackendChoice(o.Backend) {
	case cgroupmon.BackendAuto, cgroupmon.BackendCgroup2, cgroupmon.BackendProcfs:
	default:
		return nil, fail("batch: --backend %q: want auto, cgroup2 or procfs", o.Backend)
	}
	return o, nil
}

// batchFiles are the streams of a batch: its input, its results and its
// summary, with the files it opened for them.
type batchFiles struct {
	in      io.Reader
	out     io.Writer
	summary io.Writer
	opened  []*os.File
	// done holds the runs that --resume found in the output file.
	done map[runKey]struct{}
}

// openBatchFiles opens the files that o names; standard streams stand in
// for those it does not. A keyed batch's input file is checked for ids
// before the output is opened, and --resume reads the output file.
func openBatchFiles(o *batchOptions, stdio IO) (*batchFiles, error) {
	f := &batchFiles{in: stdio.In, out: stdio.Out, summary: stdio.Err}
	open := func(what string, dst any, open func() (*os.File, error)) error {
		file, err := open()
		if err != nil {
			f.close()
			return fail("batch: %s%v", what, err)
		}
		f.opened = append(f.opened, file)
		switch d := dst.(type) {
		case *io.Reader:
			*d = file
		case *io.Writer:
			*d = file
		}
		return nil
	}
	if o.Input == "-" {
		f.in = pollableStdin(stdio.In)
		if p, ok := f.in.(*os.File); ok && f.in != stdio.In {
			f.opened = append(f.opened, p)
		}
	} else {
		if err := open("", &f.in, func() (*os.File, error) { return os.Open(o.Input) }); err != nil {
			return nil, err
		}
		if o.keyed() {
			if err := checkKeyedFile(f.in.(*os.File)); err != nil {
				f.close()
				return nil, fail("batch: %s: %v", o.Input, err)
			}
		}
	}
	if o.Resume {
		err := open("--output: ", &f.out, func() (file *os.File, err error) {
			file, f.done, err = openResume(o.Output, stdio.Err)
			return file, err
		})
		if err != nil {
			return nil, err
		}
	} else if o.Output != "-" {
		err := open("--output: ", &f.out, func() (*os.File, error) {
			return os.OpenFile(o.Output, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		})
		if err != nil {
			return nil, err
		}
	}
	if o.Summary != "" {
		if err := open("--summary: ", &f.summary, func() (*os.File, error) { return os.Create(o.Summary) }); err != nil {
			return nil, err
		}
	}
	return f, nil
}

// close closes the files that openBatchFiles opened.
func (f *batchFiles) close() {
	for _, file := range f.opened {
		_ = file.Close()
	}
	f.opened = nil
}

// batchMain runs `cgmon batch`: each input line as it arrives, its result
// written the moment it ends, then the summary. How it ends is described
// in the README's protocol section: at the end of the input running
// executions finish; SIGINT or SIGTERM kills them (canceled); a result
// that cannot be written kills them too and stops taking lines.
func batchMain(args []string, stdio IO) (int, error) {
	o, err := parseBatchFlags(args, stdio.Out)
	if err != nil {
		return 0, err
	}
	files, err := openBatchFiles(o, stdio)
	if err != nil {
		return 0, err
	}
	defer files.close()
	// A reader that went away is an output failure to handle, not cgmon's
	// death: with SIGPIPE caught, a write to a closed pipe fails (EPIPE).
	defer catchSIGPIPE()()

	coll := metrics.NewCollector()
	if o.MetricsAddr != "" {
		stopServer, err := serveMetrics(o.MetricsAddr, coll, stdio.Err)
		if err != nil {
			return 0, fail("batch: --metrics-addr: %v", err)
		}
		defer stopServer()
	}
	var stopTextfile func() error
	if o.PromTextfile != "" {
		stopTextfile = startPromTextfile(o.PromTextfile, coll, textfileInterval)
	}

	mon, err := cgroupmon.New(cgroupmon.Options{
		Interval:   o.Interval,
		Backend:    cgroupmon.BackendChoice(o.Backend),
		CgroupRoot: o.CgroupRoot,
		MoveOthers: o.MoveOthers,
		Sink:       coll,
		Subreaper:  true,
	})
	if err != nil {
		return 0, fail("batch: %v", err)
	}
	defer mon.Close()
	reportReaped(stdio.Err, mon)

	b := newBatch(mon, files.out, stdio.Err, isTerminal(stdio.Err))
	if o.keyed() {
		b.keys = &batchKeys{shard: o.Shard, done: files.done, seen: make(map[string]int)}
	}
	end := b.runAll(files.in, o.Parallel)
	res := &BatchResult{
		SchemaVersion: SchemaVersion,
		Summary:       coll.Summary(),
		Languages:     coll.LanguageStats(),
		BadLines:      b.badLines(),
		DuplicateIDs:  b.duplicateIDs(),
		ResultsLost:   b.resultsLost(),
		Resumed:       o.Resume,
	}
	if o.Shard.n > 0 {
		res.Shard = o.Shard.String()
	}
	if b.keys != nil {
		// The reading goroutine has returned, or is left blocked in a
		// read that no line will come out of.
		res.OtherShards, res.AlreadyDone = b.keys.counts()
	}
	res.CleanupError = closeMonitor(mon, stdio.Err)
	if stopTextfile != nil {
		if err := stopTextfile(); err != nil {
			res.TextfileError = oneLine(err.Error())
		}
	}
	return endBatch(o, files.summary, res, end, b.outputError())
}

// closeMonitor closes mon once every execution has ended and says on diag
// what it could not clean up (the cgroups it names), which it returns.
func closeMonitor(mon interface{ Close() error }, diag io.Writer) string {
	err := mon.Close()
	if err == nil {
		return ""
	}
	msg := oneLine(err.Error())
	fmt.Fprintf(diag, "cgmon: batch: %s\n", msg)
	return msg
}

// endBatch writes the summary of a batch that ended as end says, with
// outErr the first result that could not be written, and returns its exit
// status: 128+N after signal N; exitIOError when the input, the results
// or the summary could not be read or written; 1 when a line was
// rejected; else 0. The error says what failed, if anything did.
func endBatch(o *batchOptions, w io.Writer, res *BatchResult, end batchEnd, outErr error) (int, error) {
	var msgs []string
	if s, ok := end.signal.(syscall.Signal); ok {
		res.Interrupted, res.InterruptedBy = true, signalName(int(s))
	}
	if end.readErr != nil {
		res.InputError = oneLine(end.readErr.Error())
		in := o.Input
		if in == "-" {
			in = "standard input"
		}
		msgs = append(msgs, fmt.Sprintf("reading %s: %s; the rest of the input was not read", in, res.InputError))
	}
	if outErr != nil {
		res.OutputError = oneLine(outErr.Error())
		msgs = append(msgs, fmt.Sprintf("writing results: %s; %d results were lost and the rest of the input was not read", res.OutputError, res.ResultsLost))
	}
	if res.TextfileError != "" {
		msgs = append(msgs, res.TextfileError)
	}
	var werr error
	switch o.Format {
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		werr = enc.Encode(res)
	case "markdown":
		werr = res.WriteMarkdown(w)
	default:
		werr = res.WriteHuman(w)
	}
	if werr != nil {
		msgs = append(msgs, "writing the summary: "+werr.Error())
	}
	code := 0
	switch s, ok := end.signal.(syscall.Signal); {
	case ok:
		code = exitSignalBase + int(s)
	case len(msgs) > 0:
		code = exitIOError
	case len(res.BadLines) > 0:
		code = 1
	}
	if len(msgs) > 0 {
		return 0, &exitError{code: code, err: errors.New("batch: " + strings.Join(msgs, "; "))}
	}
	return code, nil
}

// serveMetrics serves promhttp /metrics for coll on addr until the
// returned function is called; the address it got is printed on diag.
func serveMetrics(addr string, coll *metrics.Collector, diag io.Writer) (func(), error) {
	reg := prometheus.NewRegistry()
	if err := reg.Register(prom.NewCollector(coll, nil)); err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	ln, err := listenMetrics(addr, diag)
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ln)
	}()
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		<-done
	}, nil
}

func optSeconds(v *float64) string {
	if v == nil {
		return "-"
	}
	return fmt.Sprintf("%.3f s", *v)
}

func optBytes(v *float64) string {
	if v == nil {
		return "-"
	}
	return fmt.Sprintf("%.1f MiB", *v/mib)
}

// WriteHuman writes the summary and the per-language table.
func (r *BatchResult) WriteHuman(w io.Writer) error {
	s := r.Summary
	fmt.Fprintf(w, "Executions: %d (success %d, errors %d, success rate %.1f%%)\n",
		s.TotalExecutions, s.SuccessCount, s.ErrorCount, s.SuccessRate*100)
	var st []string
	for _, k := range metrics.Statuses {
		if n := s.StatusCounts[k]; n > 0 {
			st = append(st, fmt.Sprintf("%s %d", k, n))
		}
	}
	if len(st) > 0 {
		fmt.Fprintf(w, "By status: %s\n", strings.Join(st, ", "))
	}
	// Executions that failed to start never ran: they are in no time.
	var avg *float64
	if s.ExecutionTimeCount > 0 {
		avg = &s.AverageExecutionTime
	}
	timed := ""
	if n := s.StatusCounts[metrics.StatusFailedToStart]; n > 0 {
		timed = fmt.Sprintf(" (%d timed; %d failed to start)", s.ExecutionTimeCount, n)
	}
	fmt.Fprintf(w, "Execution time: total %.3f s, average %s, p50 %s, p95 %s, max %s%s\n",
		s.TotalExecutionTime, optSeconds(avg), optSeconds(s.P50ExecutionTime), optSeconds(s.P95ExecutionTime), optSeconds(s.MaxExecutionTime), timed)
	var maxMem *float64
	if s.MaxMemoryPeakBytes != nil {
		v := float64(*s.MaxMemoryPeakBytes)
		maxMem = &v
	}
	fmt.Fprintf(w, "Memory peak: average %s, max %s (%d measured)\n", optBytes(s.AverageMemoryPeakBytes), optBytes(maxMem), s.MemoryPeakCount)
	if s.TotalCPUSeconds != nil {
		fmt.Fprintf(w, "CPU time: %.3f s (%d measured)\n", *s.TotalCPUSeconds, s.CPUCount)
	}
	if len(r.BadLines) > 0 {
		var ls []string
		for _, b := range r.BadLines {
			ls = append(ls, fmt.Sprint(b.Line))
		}
		fmt.Fprintf(w, "Rejected input lines (not run): %d (line %s)\n", len(r.BadLines), strings.Join(ls, ", "))
	}
	if r.DuplicateIDs > 0 {
		lines := "lines"
		if r.DuplicateIDs == 1 {
			lines = "line"
		}
		fmt.Fprintf(w, "Duplicate ids: %d %s had the id of an earlier line (each is named on standard error; results are told apart by input_line)\n", r.DuplicateIDs, lines)
	}
	if r.Shard != "" {
		fmt.Fprintf(w, "Shard %s: %d input lines left to other shards\n", r.Shard, r.OtherShards)
	}
	if r.Resumed {
		fmt.Fprintf(w, "Resumed: %d runs already had a result and were skipped\n", r.AlreadyDone)
	}
	if r.Interrupted {
		by := ""
		if r.InterruptedBy != "" {
			by = " by " + r.InterruptedBy
		}
		fmt.Fprintf(w, "Interrupted%s: running executions were killed (status canceled) and the rest of the input was not read.\n", by)
	}
	if r.InputError != "" {
		fmt.Fprintf(w, "Input failed: %s; the rest of the input was not read.\n", r.InputError)
	}
	if r.OutputError != "" {
		fmt.Fprintf(w, "Output failed: %s; %d results were not written, running executions were killed and the rest of the input was not read.\n", r.OutputError, r.ResultsLost)
	}
	if r.CleanupError != "" {
		fmt.Fprintf(w, "Cleanup failed: %s\n", r.CleanupError)
	}
	if len(r.Languages) == 0 {
		return nil
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "LANGUAGE\tCOUNT\tSUCCESS\tERRORS\tSUCCESS RATE\tP50 TIME\tP95 TIME\tMAX TIME\tAVG MEM PEAK\tMAX MEM PEAK\tCPU SECONDS\t")
	names := make([]string, 0, len(r.Languages))
	for n := range r.Languages {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		l := r.Languages[n]
		var maxMem *float64
		if l.MaxMemoryPeakBytes != nil {
			v := float64(*l.MaxMemoryPeakBytes)
			maxMem = &v
		}
		cpu := "-"
		if l.TotalCPUSeconds != nil {
			cpu = fmt.Sprintf("%.3f", *l.TotalCPUSeconds)
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%.1f%%\t%s\t%s\t%s\t%s\t%s\t%s\t\n", printable(n), l.Count, l.SuccessCount, l.ErrorCount, l.SuccessRate*100,
			optSeconds(l.P50ExecutionTime), optSeconds(l.P95ExecutionTime), optSeconds(l.MaxExecutionTime),
			optBytes(l.AverageMemoryPeakBytes), optBytes(maxMem), cpu)
	}
	return tw.Flush()
}
