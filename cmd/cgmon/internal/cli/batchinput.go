package cli

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"time"

	"github.com/cgmon/cgmon/cgroupmon"
)

// maxBatchLine caps one input line of a batch, in bytes: a longer line is
// skipped, read through without being kept.
const maxBatchLine = 1 << 20

// maxSkippedLine caps how far a line longer than maxBatchLine is read
// through, in bytes. Input without an end of line within it (/dev/zero,
// a binary file) is not NDJSON, and reading stops there: reading such a
// line to its end could take forever.
const maxSkippedLine = 64 << 20

// readChunk is the size of the read buffer: what is read at once, and
// what a skipped line holds in memory.
const readChunk = 64 << 10

// errEndlessLine is returned by readLines for a line that has no end
// within maxSkippedLine bytes.
var errEndlessLine = fmt.Errorf("no end of line within %d MiB: the input is not NDJSON", maxSkippedLine>>20)

// readLines calls fn with each line of r (without its line ending) and
// its 1-based number, until fn returns false or r ends. A line longer than
// maxBatchLine is passed as nil with tooLong set, once it has been read
// through; one with no end within maxSkippedLine stops reading with an
// error naming its number (errEndlessLine). Memory stays within
// maxBatchLine plus one read buffer, whatever r holds.
func readLines(r io.Reader, fn func(n int, line []byte, tooLong bool) bool) error {
	br := bufio.NewReaderSize(r, readChunk)
	var buf []byte
	n := 0
	for {
		chunk, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			if len(buf)+len(chunk) <= maxBatchLine {
				buf = append(buf, chunk...)
				continue
			}
			n++
			buf = buf[:0]
			if err = skipLine(br, len(chunk)); err != nil {
				if errors.Is(err, errEndlessLine) {
					return fmt.Errorf("line %d: %w", n, err)
				}
				if err != io.EOF {
					return err
				}
			}
			if !fn(n, nil, true) || err == io.EOF {
				return nil
			}
			continue
		}
		buf = append(buf, chunk...)
		if len(buf) > 0 {
			n++
			line := bytes.TrimRight(buf, "\r\n")
			ok := false
			if len(line) > maxBatchLine {
				ok = fn(n, nil, true)
			} else {
				ok = fn(n, line, false)
			}
			if !ok {
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

// skipLine reads br up to and including the next newline, keeping
// nothing; read is how much of the line was read already. It returns
// errEndlessLine when the line goes on past maxSkippedLine bytes, io.EOF
// when the input ends first.
func skipLine(br *bufio.Reader, read int) error {
	for read <= maxSkippedLine {
		chunk, err := br.ReadSlice('\n')
		read += len(chunk)
		if !errors.Is(err, bufio.ErrBufferFull) {
			return err
		}
	}
	return errEndlessLine
}

// BatchLine is one execution of a batch's NDJSON input.
type BatchLine struct {
	ID         string   `json:"id"`
	Language   string   `json:"language"`
	CodeLength int      `json:"code_length"`
	Command    []string `json:"command"`
	// Timeout is a Go duration ("5s", "1m30s") or a number of seconds.
	Timeout json.RawMessage `json:"timeout,omitempty"`
	// CPUTimeLimit is the CPU-time limit of the whole execution, in the
	// form of Timeout.
	CPUTimeLimit json.RawMessage `json:"cpu_time_limit,omitempty"`
	// Limits is an OCI LinuxResources object.
	Limits  json.RawMessage `json:"limits,omitempty"`
	WaitAll bool            `json:"wait_all"`
	// Repeat is how many times to run the line (default 1); each result
	// carries its repeat_index, from 0.
	Repeat json.RawMessage `json:"repeat,omitempty"`
	// User is who the command runs as: "UID[:GID]" or "NAME[:GROUP]" as
	// --user takes, or an OCI user object {"uid", "gid", "additionalGids"}.
	User json.RawMessage `json:"user,omitempty"`
	// Stdin is a file the command reads as its standard input; Stdout
	// and Stderr are files it writes, created (mode 0644 before the
	// umask) or truncated. Relative paths are from cgmon's working
	// directory. Absent: /dev/null.
	Stdin  string `json:"stdin,omitempty"`
	Stdout string `json:"stdout,omitempty"`
	Stderr string `json:"stderr,omitempty"`
	// Env is the command's whole environment as "KEY=VALUE" strings, as
	// in an OCI process's env; absent: cgmon's own.
	Env []string `json:"env,omitempty"`
	// Dir is the command's working directory; absent: cgmon's own.
	Dir string `json:"dir,omitempty"`
	// Rlimits are OCI POSIXRlimits: {"type": "RLIMIT_FSIZE", "soft": N,
	// "hard": N}, where a value may also be "unlimited".
	Rlimits json.RawMessage `json:"rlimits,omitempty"`
}

// maxRepeat is the most runs one line may ask for with "repeat".
const maxRepeat = 10000

// parseBatchLine parses one NDJSON line strictly: unknown fields, a missing
// command, a bad timeout or CPU-time limit, bad limits or a bad repeat are errors. It
// returns the execution and how many times to run it.
func parseBatchLine(b []byte) (cgroupmon.Spec, int, error) {
	s, _, repeat, err := parseLine(b)
	return s, repeat, err
}

// parseLine is parseBatchLine, and also returns the files the line's
// command reads and writes, opened only when it runs (openLineFiles).
func parseLine(b []byte) (cgroupmon.Spec, lineFiles, int, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var l BatchLine
	if err := dec.Decode(&l); err != nil {
		if jsonFieldError(err) {
			return cgroupmon.Spec{}, lineFiles{}, 0, errors.New(jsonError(err, l, ""))
		}
		return cgroupmon.Spec{}, lineFiles{}, 0, fmt.Errorf("not a JSON execution object: %s", jsonError(err, l, ""))
	}
	if trailing(b, dec) {
		return cgroupmon.Spec{}, lineFiles{}, 0, errors.New("more than one JSON value on the line")
	}
	s, err := lineSpec(&l)
	if err != nil {
		return cgroupmon.Spec{}, lineFiles{}, 0, err
	}
	files, err := lineFilesOf(&l)
	if err != nil {
		return cgroupmon.Spec{}, lineFiles{}, 0, err
	}
	repeat := 1
	if len(l.Repeat) > 0 && string(l.Repeat) != "null" {
		if repeat, err = parseRepeat(l.Repeat); err != nil {
			return cgroupmon.Spec{}, lineFiles{}, 0, err
		}
		if repeat > 1 && l.ID == "" {
			return cgroupmon.Spec{}, lineFiles{}, 0, errors.New(`"repeat" needs an "id": the results of the runs are told apart by id and repeat_index`)
		}
		if repeat > 1 && (files.Stdout != "" || files.Stderr != "") {
			return cgroupmon.Spec{}, lineFiles{}, 0, fmt.Errorf(`"repeat" %d with "stdout" or "stderr": the runs would write the same file at once; give each its own line`, repeat)
		}
	}
	return s, files, repeat, nil
}

// parseRepeat reads a line's "repeat": a whole number from 1 to
// maxRepeat.
func parseRepeat(raw json.RawMessage) (int, error) {
	var n float64
	if err := json.Unmarshal(raw, &n); err != nil || n < 1 || n > maxRepeat || n != math.Trunc(n) {
		return 0, fmt.Errorf(`"repeat" %s: want a whole number from 1 to %d`, raw, maxRepeat)
	}
	return int(n), nil
}

// lineSpec checks the fields of a decoded line other than "repeat" and
// returns its execution.
func lineSpec(l *BatchLine) (cgroupmon.Spec, error) {
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
		d, err := parseDuration("timeout", l.Timeout)
		if err != nil {
			return cgroupmon.Spec{}, err
		}
		s.Timeout = d
	}
	if len(l.CPUTimeLimit) > 0 && string(l.CPUTimeLimit) != "null" {
		d, err := parseDuration("cpu_time_limit", l.CPUTimeLimit)
		if err != nil {
			return cgroupmon.Spec{}, err
		}
		s.CPUTimeLimit = d
	}
	if len(l.Limits) > 0 && string(l.Limits) != "null" {
		lim, err := decodeLimits(l.Limits, "limits")
		if err != nil {
			return cgroupmon.Spec{}, err
		}
		s.Limits = lim
	}
	if len(l.User) > 0 && string(l.User) != "null" {
		u, err := decodeUser(l.User)
		if err != nil {
			return cgroupmon.Spec{}, err
		}
		s.User = u
	}
	if err := lineProcess(l, &s); err != nil {
		return cgroupmon.Spec{}, err
	}
	return s, nil
}

// parseDuration reads a line's "timeout" or "cpu_time_limit" (its key):
// a Go duration or a number of seconds, not negative.
func parseDuration(key string, raw json.RawMessage) (time.Duration, error) {
	var str string
	if err := json.Unmarshal(raw, &str); err == nil {
		d, err := time.ParseDuration(str)
		if err != nil {
			return 0, fmt.Errorf(`%q %q: not a duration such as "5s"`, key, str)
		}
		if d < 0 {
			return 0, fmt.Errorf(`%q %q is negative`, key, str)
		}
		return d, nil
	}
	var secs float64
	if err := json.Unmarshal(raw, &secs); err != nil {
		return 0, fmt.Errorf(`%q %s: want a duration such as "5s" or a number of seconds`, key, raw)
	}
	if secs < 0 || secs > float64(1<<62)/1e9 {
		return 0, fmt.Errorf(`%q %s is out of range`, key, raw)
	}
	return time.Duration(secs * float64(time.Second)), nil
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

// trailing reports whether b holds more than white space after the value
// dec decoded. json.Decoder.More alone misses a stray ']' or '}', which
// it takes for the end of an enclosing value: `{"command": ["true"]}}`.
func trailing(b []byte, dec *json.Decoder) bool {
	return len(bytes.TrimSpace(b[dec.InputOffset():])) > 0
}
