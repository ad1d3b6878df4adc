package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/cgmon/cgmon/cgroupmon"
)

// ProtocolVersion is the version of the batch protocol: the framing of
// input and result lines and the fields that only result lines have
// (protocol, input_line, error, the rejected status). Each result line
// carries it.
const ProtocolVersion = 1

// StatusRejected is the status of a result line for an input line that
// cgmon did not run: not JSON, not an execution, too long, or refused by
// the monitor (a bad id, a limit this host cannot apply). Its error says
// why. It is a protocol status, not an execution's: such lines are in
// the summary's bad lines, not in its executions.
const StatusRejected = "rejected"

// resultLine is one line of a batch's output for an execution that ran.
type resultLine struct {
	Protocol int `json:"protocol"`
	*Report
	// RepeatIndex is which run of its line this is, from 0 (a line's
	// "repeat" asks for several); with the id, it keys the result.
	RepeatIndex int `json:"repeat_index"`
	// Error is cgmon's own trouble measuring an execution that ran (its
	// record is still complete as far as it goes); empty when there was
	// none.
	Error string `json:"error,omitempty"`
}

// rejectedLine is one line of a batch's output for an input line that
// did not run.
type rejectedLine struct {
	Protocol      int    `json:"protocol"`
	SchemaVersion int    `json:"schema_version"`
	InputLine     int    `json:"input_line"`
	ID            string `json:"id,omitempty"`
	// RepeatIndex is the run the monitor refused, for a line that was
	// parsed; absent for a line that was not.
	RepeatIndex *int   `json:"repeat_index,omitempty"`
	Status      string `json:"status"`
	Error       string `json:"error"`
}

// BadLine is an input line that was skipped, or that could not run.
type BadLine struct {
	Line  int    `json:"line"`
	Error string `json:"error"`
}

// batchJob is one run of a parsed input line.
type batchJob struct {
	line   int
	spec   cgroupmon.Spec
	files  lineFiles // opened when the job runs
	repeat int       // the run's repeat_index
}

// batchEnd says why a batch stopped taking lines; the zero value is the
// end of the input.
type batchEnd struct {
	// signal is SIGINT or SIGTERM: running executions were killed.
	signal os.Signal
	// readErr: the input could not be read on (running executions
	// finished).
	readErr error
	// writeErr: a result could not be written (running executions were
	// killed).
	writeErr error
}

// batch is the shared state of a running batch.
type batch struct {
	mon      *cgroupmon.Monitor
	out      io.Writer
	diag     io.Writer
	progress bool
	// keys picks the runs of each line when ids key the work (--shard,
	// --resume); nil otherwise.
	keys *batchKeys
	// ids finds the lines that reuse an earlier line's id when ids do
	// not key the work; only the goroutine that reads the input uses it.
	ids idSet

	// outFailed is closed at the first result that cannot be written.
	outFailed chan struct{}

	mu         sync.Mutex
	bads       []BadLine
	duplicates int // lines whose id an earlier line has
	writeErr   error
	lost       int // results not written because the output had failed
	total      int
	done       int
	barShown   bool
}

// newBatch returns the state of a batch that writes results to out and
// diagnostics (and, with progress, a progress bar) to diag.
func newBatch(mon *cgroupmon.Monitor, out, diag io.Writer, progress bool) *batch {
	return &batch{mon: mon, out: out, diag: diag, progress: progress, outFailed: make(chan struct{})}
}

// runAll runs the lines of in, parallel at a time, until the input ends,
// SIGINT or SIGTERM arrives, or a result cannot be written; it returns
// once every execution it started has ended and its result is written.
func (b *batch) runAll(in io.Reader, parallel int) batchEnd {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)

	jobs, stop := make(chan batchJob), make(chan struct{})
	var wg sync.WaitGroup
	for range parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b.work(ctx, jobs, stop)
		}()
	}
	fed := make(chan error, 1)
	go func() { fed <- b.feed(in, jobs, stop) }()

	var end batchEnd
	select {
	case end.readErr = <-fed:
		fed = nil // done: nothing left to wait for
	case end.signal = <-sigs:
	case <-b.outFailed:
		end.writeErr = b.outputError()
	}
	close(stop)
	if end.signal != nil || end.writeErr != nil {
		cancel() // running executions are killed, reported as canceled
	}
	if fed != nil && interruptRead(in) {
		<-fed // a read that cannot be interrupted is left behind
	}
	wg.Wait()
	b.endProgress()
	return end
}

// work runs the jobs it is handed until there are no more or stop is
// closed.
func (b *batch) work(ctx context.Context, jobs <-chan batchJob, stop <-chan struct{}) {
	for {
		select {
		case j, ok := <-jobs:
			if !ok {
				return
			}
			if ctx.Err() != nil || b.outputFailed() {
				b.unqueue() // stopped while it was handed over: not run
				continue
			}
			b.run(ctx, j)
		case <-stop:
			return
		}
	}
}

// feed reads the lines of in and hands each to a worker, or rejects it,
// until in ends (it then closes jobs and returns the read error, nil at
// the end of the input) or stop is closed. Reading, parsing and handing
// over in one goroutine keeps one wake-up off the path of each line.
func (b *batch) feed(in io.Reader, jobs chan<- batchJob, stop <-chan struct{}) error {
	stopped := false
	err := readLines(in, func(n int, line []byte, tooLong bool) bool {
		j, runs := b.accept(n, line, tooLong)
		for _, r := range runs {
			j.repeat = r
			b.queued()
			select {
			case jobs <- j:
			case <-stop:
				b.unqueue()
				stopped = true
				return false
			}
		}
		return true
	})
	if !stopped {
		close(jobs)
	}
	return err
}

// pollableStdin returns standard input as a file read through Go's
// poller when it is a pipe, so that a read waiting for the next line
// parks no thread and can be interrupted (interruptRead): a new open file
// description of the same pipe, made non-blocking (/proc/self/fd), so the
// flag is not changed for anyone else holding it. Anything else, or where
// that fails, is returned as it is.
func pollableStdin(in io.Reader) io.Reader {
	f, ok := in.(*os.File)
	if !ok {
		return in
	}
	st, err := f.Stat()
	if err != nil || st.Mode()&os.ModeNamedPipe == 0 {
		return in
	}
	// Not f.Fd(): it would make a non-blocking descriptor blocking, for
	// every process that shares it.
	rc, err := f.SyscallConn()
	if err != nil {
		return in
	}
	var p *os.File
	var openErr error
	err = rc.Control(func(fd uintptr) {
		p, openErr = os.OpenFile(fmt.Sprintf("/proc/self/fd/%d", fd), os.O_RDONLY|syscall.O_NONBLOCK, 0)
	})
	if err != nil || openErr != nil {
		return in
	}
	return p
}

// interruptRead makes a read of in that waits return at once, and
// reports whether it could.
func interruptRead(in io.Reader) bool {
	f, ok := in.(*os.File)
	return ok && f.SetReadDeadline(time.Now()) == nil
}

// accept parses input line n into a job and returns the repeat indexes
// to run it with: none for a blank line, a line it rejects (its result
// line is written at once), and, when ids key the work, a line of
// another shard or one whose runs all have results.
func (b *batch) accept(n int, line []byte, tooLong bool) (batchJob, []int) {
	if tooLong {
		b.reject(n, "", nil, fmt.Errorf("longer than %d bytes", maxBatchLine))
		return batchJob{}, nil
	}
	if len(bytes.TrimSpace(line)) == 0 {
		return batchJob{}, nil
	}
	spec, files, repeat, err := parseLine(line)
	if err == nil && len(spec.Rlimits) > 0 {
		err = b.mon.CheckRlimits(spec.Rlimits)
	}
	id := spec.ID
	if err != nil {
		id = lineID(line)
	}
	if b.keys != nil {
		switch mine, kerr := b.keys.claim(n, id); {
		case kerr != nil && err == nil:
			err = kerr
		case kerr == nil && !mine:
			return batchJob{}, nil // another shard's
		}
	}
	if err != nil {
		b.reject(n, id, nil, err)
		return batchJob{}, nil
	}
	if spec.ID == "" {
		// Stable across runs of one file, so that its results can be
		// matched with those of an earlier run.
		spec.ID = lineDefaultID(n)
	}
	j := batchJob{line: n, spec: spec, files: files}
	if b.keys != nil {
		return j, b.keys.todo(id, repeat)
	}
	switch first, state := b.ids.add(spec.ID, n); state {
	case idRepeated:
		b.mu.Lock()
		b.duplicates++
		b.mu.Unlock()
		b.note(n, fmt.Sprintf("warning: id %q is also on line %d; it runs all the same, and its results are told apart by input_line", spec.ID, first))
	case idSetFull:
		b.note(n, fmt.Sprintf("warning: %d ids seen; the ids of this line and the next are not checked for duplicates", maxCheckedIDs))
	}
	runs := make([]int, repeat)
	for r := range runs {
		runs[r] = r
	}
	return j, runs
}

// run runs one job and writes its result line.
func (b *batch) run(ctx context.Context, j batchJob) {
	stdio, err := openLineFiles(j.files)
	if err != nil {
		// Nothing ran: a file of the line cannot be used.
		b.finished()
		b.reject(j.line, j.spec.ID, &j.repeat, err)
		return
	}
	stdio.use(&j.spec)
	ex, err := b.mon.Run(ctx, j.spec)
	if err != nil && ex.StartedAt.IsZero() {
		// Nothing ran: the monitor refused the line.
		stdio.undo()
		b.finished()
		b.reject(j.line, j.spec.ID, &j.repeat, err)
		return
	}
	stdio.close()
	res := resultLine{Protocol: ProtocolVersion, Report: NewReport(&ex), RepeatIndex: j.repeat}
	res.InputLine = j.line
	if err != nil && !errors.Is(err, cgroupmon.ErrStart) {
		// It ran, but part of its measurement failed.
		res.Error = oneLine(err.Error())
		b.note(j.line, res.Error)
	}
	b.emit(j.line, res, true)
}

// reject records a line, or one run of it (repeat is its index), that
// did not run: named on the diagnostics stream, listed in the summary
// (once per line) and answered with a rejected result line.
func (b *batch) reject(n int, id string, repeat *int, err error) {
	msg := oneLine(err.Error())
	b.mu.Lock()
	b.bads = append(b.bads, BadLine{Line: n, Error: msg})
	b.mu.Unlock()
	b.note(n, msg)
	b.emit(n, rejectedLine{
		Protocol: ProtocolVersion, SchemaVersion: SchemaVersion,
		InputLine: n, ID: id, RepeatIndex: repeat, Status: StatusRejected, Error: msg,
	}, false)
}

// note writes a message about input line n on the diagnostics stream.
func (b *batch) note(n int, msg string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.clearBarLocked()
	fmt.Fprintf(b.diag, "cgmon: batch: line %d: %s\n", n, msg)
	b.drawLocked()
}

// emit writes the result line of input line n with one write, the moment
// it is known. The first failed write closes outFailed; after it nothing
// more is written and each result is counted as lost. done says the line
// was an execution that has now finished.
func (b *batch) emit(n int, v any, done bool) {
	line, err := json.Marshal(v)
	if err != nil {
		b.note(n, "the result could not be encoded: "+err.Error())
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if done {
		b.done++
	}
	if b.writeErr != nil || err != nil {
		b.lost++
		return
	}
	if _, err := b.out.Write(append(line, '\n')); err != nil {
		b.writeErr = err
		b.lost++
		close(b.outFailed)
	}
	b.drawLocked()
}

// outputFailed reports whether a result could not be written.
func (b *batch) outputFailed() bool {
	select {
	case <-b.outFailed:
		return true
	default:
		return false
	}
}

// outputError returns the error of the first failed write.
func (b *batch) outputError() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.writeErr
}

// resultsLost returns how many results were not written.
func (b *batch) resultsLost() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.lost
}

// queued counts an execution handed to a worker.
func (b *batch) queued() {
	b.mu.Lock()
	b.total++
	b.drawLocked()
	b.mu.Unlock()
}

// unqueue takes back an execution that was counted but will not run.
func (b *batch) unqueue() {
	b.mu.Lock()
	b.total--
	b.mu.Unlock()
}

// finished counts an execution that ended without a result of its own.
func (b *batch) finished() {
	b.mu.Lock()
	b.done++
	b.mu.Unlock()
}

// duplicateIDs returns how many lines had the id of an earlier line.
func (b *batch) duplicateIDs() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.duplicates
}

// badLines returns the rejected lines in input order.
func (b *batch) badLines() []BadLine {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := append([]BadLine{}, b.bads...)
	sort.SliceStable(out, func(i, j int) bool { return out[i].Line < out[j].Line })
	// The runs of a repeated line may each be refused: the line is
	// listed once.
	return slices.CompactFunc(out, func(a, b BadLine) bool { return a.Line == b.Line })
}

const barWidth = 30

// drawLocked draws the progress bar; b.mu is held.
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

// clearBarLocked erases the progress bar before a message; b.mu is held.
func (b *batch) clearBarLocked() {
	if b.barShown {
		fmt.Fprintf(b.diag, "\r%s\r", strings.Repeat(" ", barWidth+24))
		b.barShown = false
	}
}

// endProgress ends the progress bar's line.
func (b *batch) endProgress() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.barShown {
		fmt.Fprintln(b.diag)
		b.barShown = false
	}
}
