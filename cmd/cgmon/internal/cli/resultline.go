package cli

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/cgmon/cgmon/metrics"
)

// Result lines are the JSON reports that `cgmon batch` writes one per line
// (and its lines of rejected input) and `cgmon run --format json` writes
// alone. `summary` reads a million of
// them twice, so they are not decoded into a Report: a small scanner walks
// the object, reads the dozen fields the statistics need and skips the
// rest (command, sources, reasons, limits) without allocating.

// maxResultLine caps one result line, in bytes: a batch input line is at
// most maxBatchLine, and its result adds the measurements and reasons.
const maxResultLine = 4 << 20

// scannedResult is what summary and compare read of one result line. Its byte
// slices point into the line or into the parser's scratch space and are
// valid until the next parse.
type scannedResult struct {
	schema   int64
	id       []byte
	repeat   int64 // repeat_index; 0 when absent
	language []byte
	status   metrics.Status // "" for a rejected line
	// rejected is true for a batch's line of an input line it did not
	// run (status "rejected"); errMsg is the line's error.
	rejected bool
	errMsg   []byte

	wall   float64 // execution_time_seconds
	wallOK bool
	cpu    float64 // cpu_total_seconds
	cpuOK  bool
	mem    uint64 // memory_peak_bytes
	memOK  bool

	oom, timedOut      bool
	startedAt, endedAt []byte
}

// resultParser parses result lines; its scratch space holds unescaped
// strings.
type resultParser struct {
	scratch []byte
}

// errLine is the error of a line that is not a result.
type errLine struct{ msg string }

func (e *errLine) Error() string { return e.msg }

// lineErr returns an errLine of the formatted message.
func lineErr(format string, args ...any) error {
	return &errLine{msg: fmt.Sprintf(format, args...)}
}

// parse reads line into r. A line that is not a JSON object with at least
// schema_version, id, language and status, or whose fields have the wrong
// type, is an error that says which.
func (p *resultParser) parse(line []byte, r *scannedResult) error {
	*r = scannedResult{}
	p.scratch = p.scratch[:0]
	i := skipSpace(line, 0)
	if i == len(line) || line[i] != '{' {
		return lineErr("not a JSON object")
	}
	var seen struct{ schema, id, language, status bool }
	i = skipSpace(line, i+1)
	if i < len(line) && line[i] == '}' {
		return lineErr("an empty JSON object, not a cgmon result")
	}
	for {
		if i >= len(line) || line[i] != '"' {
			return cutOrBad(line, i, "a field name")
		}
		key, end, err := p.str(line, i)
		if err != nil {
			return err
		}
		i = skipSpace(line, end)
		if i >= len(line) || line[i] != ':' {
			return cutOrBad(line, i, `":"`)
		}
		i = skipSpace(line, i+1)
		if i >= len(line) {
			return cutOrBad(line, i, "a value")
		}
		switch string(key) {
		case "schema_version":
			r.schema, i, err = intField(line, i, "schema_version")
			seen.schema = true
		case "id":
			r.id, i, err = p.strField(line, i, "id")
			seen.id = true
		case "repeat_index":
			if r.repeat, i, err = intField(line, i, "repeat_index"); err == nil && r.repeat < 0 {
				err = lineErr(`"repeat_index" %d is negative`, r.repeat)
			}
		case "language":
			r.language, i, err = p.strField(line, i, "language")
			seen.language = true
		case "status":
			var s []byte
			s, i, err = p.strField(line, i, "status")
			if err == nil {
				r.status = statusOf(s)
				r.rejected = string(s) == StatusRejected
				if r.status == "" && !r.rejected {
					err = lineErr(`"status" %q is not a status this cgmon knows`, s)
				}
			}
			seen.status = true
		case "error":
			r.errMsg, i, err = p.strField(line, i, "error")
		case "execution_time_seconds":
			r.wall, r.wallOK, i, err = floatField(line, i, "execution_time_seconds")
		case "cpu_total_seconds":
			r.cpu, r.cpuOK, i, err = floatField(line, i, "cpu_total_seconds")
		case "memory_peak_bytes":
			r.mem, r.memOK, i, err = uintField(line, i, "memory_peak_bytes")
		case "oom_killed":
			r.oom, i, err = boolField(line, i, "oom_killed")
		case "timed_out":
			r.timedOut, i, err = boolField(line, i, "timed_out")
		case "started_at":
			r.startedAt, i, err = p.strField(line, i, "started_at")
		case "ended_at":
			r.endedAt, i, err = p.strField(line, i, "ended_at")
		default:
			i, err = skipValue(line, i, 0)
		}
		if err != nil {
			return err
		}
		i = skipSpace(line, i)
		if i >= len(line) {
			return cutOrBad(line, i, `"," or "}"`)
		}
		if line[i] == '}' {
			i++
			break
		}
		if line[i] != ',' {
			return cutOrBad(line, i, `"," or "}"`)
		}
		i = skipSpace(line, i+1)
	}
	if skipSpace(line, i) != len(line) {
		return lineErr("more than one JSON value on the line")
	}
	switch {
	case !seen.schema:
		return lineErr(`no "schema_version": not a cgmon result`)
	case r.schema < 1 || r.schema > SchemaVersion:
		return lineErr(`"schema_version" %d: this cgmon reads results of schema versions 1 to %d`, r.schema, SchemaVersion)
	case !seen.status:
		return lineErr(`no "status": not a cgmon result`)
	case r.rejected:
		// An input line batch did not run: it has no language, and no id
		// when the line could not be read.
	case !seen.id:
		return lineErr(`no "id": not a cgmon result`)
	case !seen.language:
		return lineErr(`no "language": not a cgmon result`)
	}
	return nil
}

// statusOf returns the Status named s, "" for none.
func statusOf(s []byte) metrics.Status {
	for _, st := range metrics.Statuses {
		if string(st) == string(s) {
			return st
		}
	}
	return ""
}

// cutOrBad is the error at line[i], where want was expected: a line that
// ends there was cut short (a result being written, or a file truncated).
func cutOrBad(line []byte, i int, want string) error {
	if i >= len(line) {
		return lineErr("the line ends in the middle of a JSON object (cut short?)")
	}
	return lineErr("byte %d: want %s, found %q", i+1, want, line[i])
}

// skipSpace returns the index of the first byte at or after i that is not
// JSON whitespace.
func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index after the string that opens at b[i], a
// string of a value the scanner skips, once it has checked that the string
// is one JSON takes: no raw control character, only valid escapes.
func skipString(b []byte, i int) (int, error) {
	end, err := stringEnd(b, i)
	if err != nil {
		return 0, err
	}
	raw := b[i+1 : end-1]
	for _, c := range raw {
		if c < 0x20 {
			return 0, lineErr("a string holds a raw control character")
		}
	}
	if bytes.IndexByte(raw, '\\') >= 0 && !json.Valid(b[i:end]) {
		return 0, lineErr("a string with a bad escape: %s", b[i:end])
	}
	return end, nil
}

// stringEnd returns the index after the closing quote of the string that
// opens at b[i]. It does not check the string's contents.
func stringEnd(b []byte, i int) (int, error) {
	j := i + 1
	for {
		k := bytes.IndexByte(b[j:], '"')
		if k < 0 {
			return 0, lineErr("the line ends in the middle of a string (cut short?)")
		}
		q := j + k
		// The quote is escaped when an odd number of backslashes
		// precede it.
		n := 0
		for q-1-n > i && b[q-1-n] == '\\' {
			n++
		}
		if n%2 == 0 {
			return q + 1, nil
		}
		j = q + 1
	}
}

// str reads the string that opens at b[i] and returns its contents,
// unescaped, and the index after it.
func (p *resultParser) str(b []byte, i int) ([]byte, int, error) {
	end, err := stringEnd(b, i)
	if err != nil {
		return nil, 0, err
	}
	raw := b[i+1 : end-1]
	if !utf8.Valid(raw) {
		// cgmon writes UTF-8 only (ids and languages are checked); a
		// reader that replaced the bytes would merge different ids.
		return nil, 0, lineErr("a string is not UTF-8")
	}
	escaped := false
	for _, c := range raw {
		if c < 0x20 {
			return nil, 0, lineErr("a string holds a raw control character")
		}
		escaped = escaped || c == '\\'
	}
	if !escaped {
		return raw, end, nil
	}
	var s string
	if err := json.Unmarshal(b[i:end], &s); err != nil {
		return nil, 0, lineErr("a string with a bad escape: %s", b[i:end])
	}
	start := len(p.scratch)
	p.scratch = append(p.scratch, s...)
	return p.scratch[start:], end, nil
}

func (p *resultParser) strField(b []byte, i int, name string) ([]byte, int, error) {
	if b[i] != '"' {
		return nil, 0, lineErr("%q is not a string", name)
	}
	return p.str(b, i)
}

// numberEnd returns the index after the JSON number at b[i].
func numberEnd(b []byte, i int) (int, error) {
	j := i
	if j < len(b) && b[j] == '-' {
		j++
	}
	digits := func() int {
		k := j
		for j < len(b) && b[j] >= '0' && b[j] <= '9' {
			j++
		}
		return j - k
	}
	switch {
	case j < len(b) && b[j] == '0':
		j++
	case digits() == 0:
		return 0, lineErr("byte %d: not a JSON value", i+1)
	}
	if j < len(b) && b[j] == '.' {
		j++
		if digits() == 0 {
			return 0, lineErr("byte %d: a number without digits after its point", i+1)
		}
	}
	if j < len(b) && (b[j] == 'e' || b[j] == 'E') {
		j++
		if j < len(b) && (b[j] == '+' || b[j] == '-') {
			j++
		}
		if digits() == 0 {
			return 0, lineErr("byte %d: a number without digits in its exponent", i+1)
		}
	}
	return j, nil
}

// isNull reports whether a null literal starts at b[i].
func isNull(b []byte, i int) bool { return bytes.HasPrefix(b[i:], []byte("null")) }

// floatField reads the non-negative number or null of field name at b[i]:
// its value, whether it is a number, and the index after it.
func floatField(b []byte, i int, name string) (float64, bool, int, error) {
	if isNull(b, i) {
		return 0, false, i + 4, nil
	}
	end, err := numberEnd(b, i)
	if err != nil {
		return 0, false, 0, lineErr("%q is not a number or null", name)
	}
	v, err := strconv.ParseFloat(string(b[i:end]), 64)
	if err != nil || v < 0 || math.IsInf(v, 0) {
		return 0, false, 0, lineErr("%q %s is out of range", name, b[i:end])
	}
	return v, true, end, nil
}

// uintField reads the whole number or null of field name at b[i].
func uintField(b []byte, i int, name string) (uint64, bool, int, error) {
	if isNull(b, i) {
		return 0, false, i + 4, nil
	}
	end, err := numberEnd(b, i)
	if err != nil {
		return 0, false, 0, lineErr("%q is not a number or null", name)
	}
	v, err := strconv.ParseUint(string(b[i:end]), 10, 64)
	if err != nil {
		return 0, false, 0, lineErr("%q %s is not a whole number of bytes", name, b[i:end])
	}
	return v, true, end, nil
}

// intField reads the whole number (within 32 bits) of field name at b[i].
func intField(b []byte, i int, name string) (int64, int, error) {
	end, err := numberEnd(b, i)
	if err != nil {
		return 0, 0, lineErr("%q is not a number", name)
	}
	v, err := strconv.ParseInt(string(b[i:end]), 10, 64)
	if err != nil || v > math.MaxInt32 || v < math.MinInt32 {
		return 0, 0, lineErr("%q %s is not a whole number in range", name, b[i:end])
	}
	return v, end, nil
}

// boolField reads the true or false of field name at b[i].
func boolField(b []byte, i int, name string) (bool, int, error) {
	switch {
	case bytes.HasPrefix(b[i:], []byte("true")):
		return true, i + 4, nil
	case bytes.HasPrefix(b[i:], []byte("false")):
		return false, i + 5, nil
	}
	return false, 0, lineErr("%q is not true or false", name)
}

// maxDepth bounds the nesting of skipped values.
const maxDepth = 64

// skipValue returns the index after the JSON value at b[i]: it checks the
// structure (brackets, commas, colons, literals, numbers) but not what
// skipped strings hold.
func skipValue(b []byte, i, depth int) (int, error) {
	if depth > maxDepth {
		return 0, lineErr("JSON nested deeper than %d levels", maxDepth)
	}
	if i >= len(b) {
		return 0, cutOrBad(b, i, "a value")
	}
	switch c := b[i]; {
	case c == '"':
		return skipString(b, i)
	case c == '{' || c == '[':
		closing := byte('}')
		if c == '[' {
			closing = ']'
		}
		i = skipSpace(b, i+1)
		if i < len(b) && b[i] == closing {
			return i + 1, nil
		}
		for {
			if c == '{' {
				if i >= len(b) || b[i] != '"' {
					return 0, cutOrBad(b, i, "a field name")
				}
				end, err := skipString(b, i)
				if err != nil {
					return 0, err
				}
				i = skipSpace(b, end)
				if i >= len(b) || b[i] != ':' {
					return 0, cutOrBad(b, i, `":"`)
				}
				i = skipSpace(b, i+1)
			}
			end, err := skipValue(b, i, depth+1)
			if err != nil {
				return 0, err
			}
			i = skipSpace(b, end)
			if i >= len(b) {
				return 0, cutOrBad(b, i, "a closing bracket")
			}
			if b[i] == closing {
				return i + 1, nil
			}
			if b[i] != ',' {
				return 0, cutOrBad(b, i, `","`)
			}
			i = skipSpace(b, i+1)
		}
	case c == 't':
		if bytes.HasPrefix(b[i:], []byte("true")) {
			return i + 4, nil
		}
	case c == 'f':
		if bytes.HasPrefix(b[i:], []byte("false")) {
			return i + 5, nil
		}
	case c == 'n':
		if isNull(b, i) {
			return i + 4, nil
		}
	default:
		return numberEnd(b, i)
	}
	return 0, lineErr("byte %d: not a JSON value", i+1)
}

// record parses line into r and returns the record the Collector would
// count (none for a rejected line); a line whose record the Collector
// would reject (a negative execution time) is an error.
func (p *resultParser) record(line []byte, r *scannedResult, language string) (metrics.Execution, error) {
	if err := p.parse(line, r); err != nil {
		return metrics.Execution{}, err
	}
	if r.rejected {
		return metrics.Execution{}, nil
	}
	ex, err := r.execution(language)
	if err != nil {
		return ex, err
	}
	if ex.Duration() < 0 {
		return ex, lineErr(`"ended_at" is before "started_at"`)
	}
	return ex, nil
}

// execution returns the metrics record of r, as the Collector counts it:
// language, status, wall time (from execution_time_seconds, else the
// start and end times), CPU time, memory peak and the OOM and timeout
// flags. language is r's language as a string the caller interns.
func (r *scannedResult) execution(language string) (metrics.Execution, error) {
	ex := metrics.Execution{
		Language:  language,
		Status:    r.status,
		OOMKilled: r.oom,
		TimedOut:  r.timedOut,
	}
	const src = metrics.Source("report")
	if r.wallOK {
		ex.Usage.WallTime = metrics.Measured(secondsToDuration(r.wall), src)
	} else {
		ex.Usage.WallTime = metrics.Unavailable[time.Duration]("execution_time_seconds is null")
		var err error
		if ex.StartedAt, err = time.Parse(time.RFC3339Nano, string(r.startedAt)); err != nil {
			return ex, lineErr(`"execution_time_seconds" is null and "started_at" %q is not a time`, r.startedAt)
		}
		if ex.EndedAt, err = time.Parse(time.RFC3339Nano, string(r.endedAt)); err != nil {
			return ex, lineErr(`"execution_time_seconds" is null and "ended_at" %q is not a time`, r.endedAt)
		}
	}
	if r.cpuOK {
		ex.Usage.CPUTotal = metrics.Measured(secondsToDuration(r.cpu), src)
	} else {
		ex.Usage.CPUTotal = metrics.Unavailable[time.Duration]("cpu_total_seconds is null")
	}
	if r.memOK {
		ex.Usage.MemoryPeak = metrics.Measured(r.mem, src)
	} else {
		ex.Usage.MemoryPeak = metrics.Unavailable[uint64]("memory_peak_bytes is null")
	}
	return ex, nil
}

// secondsToDuration turns the seconds of a report back into the
// nanoseconds they were written from.
func secondsToDuration(s float64) time.Duration {
	if s >= float64(math.MaxInt64)/1e9 {
		return math.MaxInt64
	}
	return time.Duration(math.Round(s * 1e9))
}

// lineReader reads lines of at most maxResultLine bytes; a longer line is
// returned as nil with tooLong set, and the rest of it is skipped.
type lineReader struct {
	br   *bufio.Reader
	buf  []byte
	n    int  // lines read
	last bool // the last line had no newline
}

// newLineReader returns a lineReader of r with a 1 MiB buffer.
func newLineReader(r io.Reader) *lineReader {
	return &lineReader{br: bufio.NewReaderSize(r, 1<<20)}
}

// next returns the next line without its newline; io.EOF after the last.
func (l *lineReader) next() (line []byte, tooLong bool, err error) {
	l.buf = l.buf[:0]
	for {
		chunk, err := l.br.ReadSlice('\n')
		if len(l.buf) == 0 && err == nil {
			l.n++
			return bytes.TrimRight(chunk, "\r\n"), false, nil
		}
		if len(l.buf)+len(chunk) > maxResultLine {
			for errors.Is(err, bufio.ErrBufferFull) {
				_, err = l.br.ReadSlice('\n')
			}
			if err != nil && err != io.EOF {
				return nil, false, err
			}
			l.n++
			l.buf = l.buf[:0]
			return nil, true, nil
		}
		l.buf = append(l.buf, chunk...)
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case err == io.EOF:
			if len(l.buf) == 0 {
				return nil, false, io.EOF
			}
			l.n++
			l.last = true
			return l.buf, false, nil
		case err != nil:
			return nil, false, err
		}
		l.n++
		return bytes.TrimRight(l.buf, "\r\n"), false, nil
	}
}
