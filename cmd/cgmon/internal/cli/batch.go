package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"sort"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/cgmon/cgmon/cgroupmon"
	"github.com/cgmon/cgmon/metrics"
)

// defaultInterval is the sampling interval when --interval is not given
// (cgroupmon's default).
const defaultInterval = 100 * time.Millisecond

// maxBatchLine caps one input line of a batch, in bytes.
const maxBatchLine = 1 << 20

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
	Input       string
}

// BatchLine is one execution of a batch's NDJSON input.
type BatchLine struct {
	ID         string   `json:"id"`
	Language   string   `json:"language"`
	CodeLength int      `json:"code_length"`
	Command    []string `json:"command"`
	// Timeout is a Go duration ("5s", "1m30s") or a number of seconds.
	Timeout json.RawMessage `json:"timeout,omitempty"`
	// Limits is an OCI LinuxResources object.
	Limits  json.RawMessage `json:"limits,omitempty"`
	WaitAll bool            `json:"wait_all"`
}

// batchJob is a parsed input line.
type batchJob struct {
	line int
	spec cgroupmon.Spec
}

// BadLine is an input line that was skipped, or that could not run.
type BadLine struct {
	Line  int    `json:"line"`
	Error string `json:"error"`
}

// parseBatchLine parses one NDJSON line strictly: unknown fields, a missing
// command, a bad timeout or bad limits are errors.
func parseBatchLine(b []byte) (cgroupmon.Spec, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var l BatchLine
	if err := dec.Decode(&l); err != nil {
		return cgroupmon.Spec{}, fmt.Errorf("not a JSON execution object: %v", err)
	}
	if dec.More() {
		return cgroupmon.Spec{}, errors.New("more than one JSON value on the line")
	}
	if len(l.Command) == 0 || l.Command[0] == "" {
		return cgroupmon.Spec{}, errors.New(`"command" is missing or empty`)
	}
	if l.CodeLength < 0 {
		return cgroupmon.Spec{}, fmt.Errorf(`"code_length" %d is negative`, l.CodeLength)
	}
	s := cgroupmon.Spec{ID: l.ID, Language: l.Language, CodeLength: l.CodeLength, Command: l.Command, WaitAll: l.WaitAll}
	if s.Language == "" {
		s.Language = "unknown"
	}
	if len(l.Timeout) > 0 && string(l.Timeout) != "null" {
		d, err := parseTimeout(l.Timeout)
		if err != nil {
			return cgroupmon.Spec{}, err
		}
		s.Timeout = d
	}
	if len(l.Limits) > 0 && string(l.Limits) != "null" {
		lim, err := decodeLimits(l.Limits)
		if err != nil {
			return cgroupmon.Spec{}, fmt.Errorf(`"limits": %v`, err)
		}
		s.Limits = lim
	}
	return s, nil
}

func parseTimeout(raw json.RawMessage) (time.Duration, error) {
	var str string
	if err := json.Unmarshal(raw, &str); err == nil {
		d, err := time.ParseDuration(str)
		if err != nil {
			return 0, fmt.Errorf(`"timeout" %q: not a duration such as "5s"`, str)
		}
		if d < 0 {
			return 0, fmt.Errorf(`"timeout" %q is negative`, str)
		}
		return d, nil
	}
	var secs float64
	if err := json.Unmarshal(raw, &secs); err != nil {
		return 0, fmt.Errorf(`"timeout" %s: want a duration such as "5s" or a number of seconds`, raw)
	}
	if secs < 0 || secs > float64(1<<62)/1e9 {
		return 0, fmt.Errorf(`"timeout" %s is out of range`, raw)
	}
	return time.Duration(secs * float64(time.Second)), nil
}

// readLines calls fn with each line of r (without its newline) and its
// 1-based number. A line longer than maxBatchLine is passed as nil with
// tooLong set; the rest of it is skipped.
func readLines(r io.Reader, fn func(n int, line []byte, tooLong bool) bool) error {
	br := bufio.NewReaderSize(r, 64<<10)
	var buf []byte
	n := 0
	for {
		chunk, err := br.ReadSlice('\n')
		buf = append(buf, chunk...)
		if errors.Is(err, bufio.ErrBufferFull) {
			if len(buf) > maxBatchLine {
				// Skip to the end of the line.
				for errors.Is(err, bufio.ErrBufferFull) {
					_, err = br.ReadSlice('\n')
				}
				n++
				buf = buf[:0]
				if !fn(n, nil, true) {
					return nil
				}
				if err == io.EOF {
					return nil
				}
				if err != nil {
					return err
				}
			}
			continue
		}
		if len(buf) > 0 {
			n++
			line := bytes.TrimRight(buf, "\r\n")
			if len(line) > maxBatchLine {
				if !fn(n, nil, true) {
					return nil
				}
			} else if !fn(n, line, false) {
				return nil
			}
			buf = buf[:0]
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// BatchResult is the JSON summary of `cgmon batch --format json`.
type BatchResult struct {
	SchemaVersion int                              `json:"schema_version"`
	Summary       metrics.Summary                  `json:"summary"`
	Languages     map[string]metrics.LanguageStats `json:"languages"`
	// BadLines are input lines that were skipped or could not run.
	BadLines []BadLine `json:"bad_lines"`
	// Interrupted is true when SIGINT or SIGTERM stopped the batch.
	Interrupted bool `json:"interrupted"`
}

func batchMain(args []string, stdio IO) (int, error) {
	o := &batchOptions{}
	c := newCommand("batch", "cgmon batch [flags] FILE|-")
	c.IntVar(&o.Parallel, "parallel", runtime.NumCPU(), "executions to run at once")
	c.StringVar(&o.Output, "output", "-", "append each result as an NDJSON line to `FILE` (- is standard output)")
	c.StringVar(&o.Output, "o", "-", "shorthand for --output")
	c.StringVar(&o.Summary, "summary", "", "write the summary to `FILE` (default: standard error)")
	c.StringVar(&o.Format, "format", "human", "summary format: human or json")
	c.StringVar(&o.MetricsAddr, "metrics-addr", "", "serve Prometheus /metrics on `HOST:PORT` while the batch runs, e.g. 127.0.0.1:9464")
	c.DurationVar(&o.Interval, "interval", defaultInterval, "sampling `interval`")
	c.StringVar(&o.Backend, "backend", string(cgroupmon.BackendAuto), "backend: auto, cgroup2 or procfs")
	c.StringVar(&o.CgroupRoot, "cgroup-root", "", "cgroup under which executions' cgroups are made (default: as `cgmon doctor` shows)")
	if err := c.parse(args, stdio.Out); err != nil {
		return 0, err
	}
	if c.NArg() != 1 {
		return 0, fail("batch: want one input FILE or - for standard input")
	}
	o.Input = c.Arg(0)
	if o.Parallel < 1 {
		return 0, fail("batch: --parallel %d: must be at least 1", o.Parallel)
	}
	if o.Format != "human" && o.Format != "json" {
		return 0, fail("batch: --format %q: want human or json", o.Format)
	}
	if o.Interval <= 0 {
		return 0, fail("batch: --interval %v: must be positive", o.Interval)
	}
	switch cgroupmon.BackendChoice(o.Backend) {
	case cgroupmon.BackendAuto, cgroupmon.BackendCgroup2, cgroupmon.BackendProcfs:
	default:
		return 0, fail("batch: --backend %q: want auto, cgroup2 or procfs", o.Backend)
	}

	var in io.Reader = stdio.In
	if o.Input != "-" {
		f, err := os.Open(o.Input)
		if err != nil {
			return 0, fail("batch: %v", err)
		}
		defer f.Close()
		in = f
	}
	var out io.Writer = stdio.Out
	if o.Output != "-" {
		f, err := os.OpenFile(o.Output, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			return 0, fail("batch: --output: %v", err)
		}
		defer f.Close()
		out = f
	}
	var sumw io.Writer = stdio.Err
	if o.Summary != "" {
		f, err := os.Create(o.Summary)
		if err != nil {
			return 0, fail("batch: --summary: %v", err)
		}
		defer f.Close()
		sumw = f
	}

	coll := metrics.NewCollector()
	if o.MetricsAddr != "" {
		stopServer, err := serveMetrics(o.MetricsAddr, coll)
		if err != nil {
			return 0, fail("batch: --metrics-addr: %v", err)
		}
		defer stopServer()
	}

	mon, err := cgroupmon.New(cgroupmon.Options{
		Interval:   o.Interval,
		Backend:    cgroupmon.BackendChoice(o.Backend),
		CgroupRoot: o.CgroupRoot,
		Sink:       coll,
		Subreaper:  true,
	})
	if err != nil {
		return 0, fail("batch: %v", err)
	}
	defer mon.Close()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	var gotSig os.Signal
	var sigMu sync.Mutex
	sigDone := make(chan struct{})
	go func() {
		select {
		case s := <-sigs:
			sigMu.Lock()
			gotSig = s
			sigMu.Unlock()
			cancel()
		case <-sigDone:
		}
	}()
	defer close(sigDone)

	b := &batch{
		mon: mon, out: out, diag: stdio.Err,
		progress: isTerminal(stdio.Err),
	}
	jobs := make(chan batchJob)
	var wg sync.WaitGroup
	for range o.Parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				b.run(ctx, j)
			}
		}()
	}
	readErr := readLines(in, func(n int, line []byte, tooLong bool) bool {
		if ctx.Err() != nil {
			return false
		}
		if tooLong {
			b.bad(n, fmt.Errorf("longer than %d bytes", maxBatchLine))
			return true
		}
		if len(bytes.TrimSpace(line)) == 0 {
			return true
		}
		spec, err := parseBatchLine(line)
		if err != nil {
			b.bad(n, err)
			return true
		}
		b.queued()
		select {
		case jobs <- batchJob{line: n, spec: spec}:
			return true
		case <-ctx.Done():
			b.unqueue()
			return false
		}
	})
	close(jobs)
	wg.Wait()
	b.endProgress()

	sigMu.Lock()
	sig := gotSig
	sigMu.Unlock()
	res := &BatchResult{
		SchemaVersion: SchemaVersion,
		Summary:       coll.Summary(),
		Languages:     coll.LanguageStats(),
		BadLines:      b.badLines(),
		Interrupted:   sig != nil,
	}
	var werr error
	if o.Format == "json" {
		enc := json.NewEncoder(sumw)
		enc.SetIndent("", "  ")
		werr = enc.Encode(res)
	} else {
		werr = res.WriteHuman(sumw)
	}
	switch {
	case readErr != nil:
		return 0, fail("batch: reading %s: %v", o.Input, readErr)
	case b.writeErr != nil:
		return 0, fail("batch: writing results: %v", b.writeErr)
	case werr != nil:
		return 0, fail("batch: writing the summary: %v", werr)
	}
	if s, ok := sig.(syscall.Signal); ok {
		return exitSignalBase + int(s), nil
	}
	if len(res.BadLines) > 0 {
		return 1, nil
	}
	return 0, nil
}

// batch is the shared state of a running batch.
type batch struct {
	mon      *cgroupmon.Monitor
	out      io.Writer
	diag     io.Writer
	progress bool

	mu       sync.Mutex
	bads     []BadLine
	writeErr error
	total    int
	done     int
	barShown bool
}

func (b *batch) queued() {
	b.mu.Lock()
	b.total++
	b.drawLocked()
	b.mu.Unlock()
}

func (b *batch) unqueue() {
	b.mu.Lock()
	b.total--
	b.mu.Unlock()
}

// bad reports a skipped or failed line at once on the diagnostics stream.
func (b *batch) bad(n int, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.bads = append(b.bads, BadLine{Line: n, Error: oneLine(err.Error())})
	b.clearBarLocked()
	fmt.Fprintf(b.diag, "cgmon: batch: line %d: %s\n", n, oneLine(err.Error()))
	b.drawLocked()
}

func (b *batch) badLines() []BadLine {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := append([]BadLine{}, b.bads...)
	sort.Slice(out, func(i, j int) bool { return out[i].Line < out[j].Line })
	return out
}

// run runs one job and appends its result line.
func (b *batch) run(ctx context.Context, j batchJob) {
	ex, err := b.mon.Run(ctx, j.spec)
	if err != nil && !errors.Is(err, cgroupmon.ErrStart) {
		b.mu.Lock()
		b.done++
		b.mu.Unlock()
		b.bad(j.line, err)
		return
	}
	rep := NewReport(&ex)
	rep.InputLine = j.line
	line, merr := json.Marshal(rep)
	b.mu.Lock()
	defer b.mu.Unlock()
	b.done++
	if merr == nil {
		// One write per result: the line is in the file the moment the
		// execution completes.
		_, merr = b.out.Write(append(line, '\n'))
	}
	if merr != nil && b.writeErr == nil {
		b.writeErr = merr
	}
	b.drawLocked()
}

const barWidth = 30

func (b *batch) drawLocked() {
	if !b.progress {
		return
	}
	frac := 0.0
	if b.total > 0 {
		frac = float64(b.done) / float64(b.total)
	}
	filled := int(frac * barWidth)
	fmt.Fprintf(b.diag, "\r[%s%s] %d/%d", strings.Repeat("#", filled), strings.Repeat(" ", barWidth-filled), b.done, b.total)
	b.barShown = true
}

func (b *batch) clearBarLocked() {
	if b.barShown {
		fmt.Fprintf(b.diag, "\r%s\r", strings.Repeat(" ", barWidth+24))
		b.barShown = false
	}
}

func (b *batch) endProgress() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.barShown {
		fmt.Fprintln(b.diag)
		b.barShown = false
	}
}

// serveMetrics serves promhttp /metrics for coll on addr until the
// returned function is called.
func serveMetrics(addr string, coll *metrics.Collector) (func(), error) {
	reg := prometheus.NewRegistry()
	if err := reg.Register(metrics.NewPrometheusCollector(coll, nil)); err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	ln, err := net.Listen("tcp", addr)
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
	fmt.Fprintf(w, "Execution time: total %.3f s, average %.3f s, p50 %s, p95 %s, max %s\n",
		s.TotalExecutionTime, s.AverageExecutionTime, optSeconds(s.P50ExecutionTime), optSeconds(s.P95ExecutionTime), optSeconds(s.MaxExecutionTime))
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
		fmt.Fprintf(w, "Bad input lines (skipped or not run): %d (line %s)\n", len(r.BadLines), strings.Join(ls, ", "))
	}
	if r.Interrupted {
		fmt.Fprintln(w, "Interrupted: running executions were cancelled and the rest of the input was not read.")
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
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%.1f%%\t%s\t%s\t%s\t%s\t%s\t%s\t\n", n, l.Count, l.SuccessCount, l.ErrorCount, l.SuccessRate*100,
			optSeconds(l.P50ExecutionTime), optSeconds(l.P95ExecutionTime), optSeconds(l.MaxExecutionTime),
			optBytes(l.AverageMemoryPeakBytes), optBytes(maxMem), cpu)
	}
	return tw.Flush()
}
