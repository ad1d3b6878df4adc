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
	"sort"
	"strings"
	"sync"
	"syscall"

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
	Status        string `json:"status"`
	Error         string `json:"error"`
}

// batchJob is a parsed input line.
type batchJob struct {
	line int
	spec cgroupmon.Spec
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

	// outFailed is closed at the first result that cannot be written.
	outFailed chan struct{}

	mu       sync.Mutex
	bads     []BadLine
	writeErr error
	lost     int // results not written because the output had failed
	total    int
	done     int
	barShown bool
}

func newBatch(mon *cgroupmon.Monitor, out, diag io.Writer, progress bool) *batch {
	return &batch{mon: mon, out: out, diag: diag, progress: progress, outFailed: make(chan struct{})}
}

// inputLine is one line read by the input goroutine: its text (a copy) or
// tooLong, or the end of the input with err set when reading failed.
type inputLine struct {
	n       int
	text    []byte
	tooLong bool
	end     bool
	err     error
}

// readInput sends the lines of in to lines, then its end, until stop is
// closed. It may stay blocked in a read of in after stop is closed, until
// that read returns: a CLI that stops on a signal exits without waiting
// for it.
func readInput(in io.Reader, lines chan<- inputLine, stop <-chan struct{}) {
	send := func(l inputLine) bool {
		select {
		case lines <- l:
			return true
		case <-stop:
			return false
		}
	}
	err := readLines(in, func(n int, line []byte, tooLong bool) bool {
		return send(inputLine{n: n, text: bytes.Clone(line), tooLong: tooLong})
	})
	send(inputLine{end: true, err: err})
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

	jobs := make(chan batchJob)
	var wg sync.WaitGroup
	for range parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				if ctx.Err() != nil || b.outputFailed() {
					b.unqueue() // stopped while it was handed over: not run
					continue
				}
				b.run(ctx, j)
			}
		}()
	}
	lines, stop := make(chan inputLine), make(chan struct{})
	go readInput(in, lines, stop)
	end := b.dispatch(lines, jobs, sigs)
	close(stop)
	if end.signal != nil || end.writeErr != nil {
		cancel() // running executions are killed, reported as canceled
	}
	close(jobs)
	wg.Wait()
	b.endProgress()
	return end
}

// dispatch hands each line to a worker, or rejects it, until the input
// ends, a signal arrives or the output fails.
func (b *batch) dispatch(lines <-chan inputLine, jobs chan<- batchJob, sigs <-chan os.Signal) batchEnd {
	for {
		var l inputLine
		select {
		case l = <-lines:
		case s := <-sigs:
			return batchEnd{signal: s}
		case <-b.outFailed:
			return batchEnd{writeErr: b.outputError()}
		}
		if l.end {
			return batchEnd{readErr: l.err}
		}
		j, ok := b.accept(l)
		if !ok {
			continue
		}
		select {
		case jobs <- j:
		case s := <-sigs:
			b.unqueue()
			return batchEnd{signal: s}
		case <-b.outFailed:
			b.unqueue()
			return batchEnd{writeErr: b.outputError()}
		}
	}
}

// accept parses an input line into a job; a line it rejects gets its
// result line at once. Blank lines are skipped without a result.
func (b *batch) accept(l inputLine) (batchJob, bool) {
	if l.tooLong {
		b.reject(l.n, "", fmt.Errorf("longer than %d bytes", maxBatchLine))
		return batchJob{}, false
	}
	if len(bytes.TrimSpace(l.text)) == 0 {
		return batchJob{}, false
	}
	spec, err := parseBatchLine(l.text)
	if err != nil {
		b.reject(l.n, lineID(l.text), err)
		return batchJob{}, false
	}
	b.queued()
	return batchJob{line: l.n, spec: spec}, true
}

// lineID returns the id of a line that could not be parsed as an
// execution, when it is a JSON object with a string id; else "".
func lineID(text []byte) string {
	var v struct {
		ID string `json:"id"`
	}
	if json.Unmarshal(text, &v) != nil {
		return ""
	}
	return v.ID
}

// run runs one job and writes its result line.
func (b *batch) run(ctx context.Context, j batchJob) {
	ex, err := b.mon.Run(ctx, j.spec)
	if err != nil && ex.StartedAt.IsZero() {
		// Nothing ran: the monitor refused the line.
		b.finished()
		b.reject(j.line, j.spec.ID, err)
		return
	}
	res := resultLine{Protocol: ProtocolVersion, Report: NewReport(&ex)}
	res.InputLine = j.line
	if err != nil && !errors.Is(err, cgroupmon.ErrStart) {
		// It ran, but part of its measurement failed.
		res.Error = oneLine(err.Error())
		b.note(j.line, res.Error)
	}
	b.emit(j.line, res, true)
}

// reject records a line that did not run: named on the diagnostics
// stream, listed in the summary and answered with a rejected result line.
func (b *batch) reject(n int, id string, err error) {
	msg := oneLine(err.Error())
	b.mu.Lock()
	b.bads = append(b.bads, BadLine{Line: n, Error: msg})
	b.mu.Unlock()
	b.note(n, msg)
	b.emit(n, rejectedLine{
		Protocol: ProtocolVersion, SchemaVersion: SchemaVersion,
		InputLine: n, ID: id, Status: StatusRejected, Error: msg,
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

func (b *batch) finished() {
	b.mu.Lock()
	b.done++
	b.mu.Unlock()
}

func (b *batch) badLines() []BadLine {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := append([]BadLine{}, b.bads...)
	sort.Slice(out, func(i, j int) bool { return out[i].Line < out[j].Line })
	return out
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
