package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"syscall"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/cgmon/cgmon/cgroupmon"
)

// lineFiles are the paths a batch line names for its command: what it
// reads, what it writes, and where it runs. They are checked when the
// line is read and opened only when it runs, so that a batch holds the
// files of the executions that run at once and no more.
type lineFiles struct {
	Stdin, Stdout, Stderr string
	Dir                   string
}

// lineFilesOf checks the paths of a decoded line: each given one is a
// non-empty path without a NUL byte.
func lineFilesOf(l *BatchLine) (lineFiles, error) {
	f := lineFiles{Stdin: l.Stdin, Stdout: l.Stdout, Stderr: l.Stderr, Dir: l.Dir}
	for _, p := range []struct{ field, path string }{{"stdin", f.Stdin}, {"stdout", f.Stdout}, {"stderr", f.Stderr}, {"dir", f.Dir}} {
		if strings.IndexByte(p.path, 0) >= 0 {
			return lineFiles{}, fmt.Errorf("%q %s: a path cannot hold a NUL byte", p.field, printable(p.path))
		}
	}
	return f, nil
}

// lineProcess fills s with a decoded line's environment, working
// directory and rlimits, and checks them: each env entry is KEY=VALUE
// with a key, and each rlimit an OCI POSIXRlimit whose values are numbers
// or "unlimited". Whether cgmon can set the rlimits is the monitor's to
// say (Monitor.CheckRlimits), when the line runs.
func lineProcess(l *BatchLine, s *cgroupmon.Spec) error {
	if l.Env != nil {
		for i, kv := range l.Env {
			k, _, ok := strings.Cut(kv, "=")
			if !ok || k == "" || strings.IndexByte(kv, 0) >= 0 {
				return fmt.Errorf(`"env"[%d] %s: want "KEY=VALUE", with a key and no NUL byte`, i, printable(kv))
			}
		}
		s.Env = l.Env
	}
	s.Dir = l.Dir
	if len(l.Rlimits) > 0 && string(l.Rlimits) != "null" {
		rl, err := decodeRlimits(l.Rlimits)
		if err != nil {
			return err
		}
		s.Rlimits = rl
	}
	return nil
}

// rlimitJSON is one entry of a line's "rlimits", as written.
type rlimitJSON struct {
	Type string          `json:"type"`
	Soft json.RawMessage `json:"soft"`
	Hard json.RawMessage `json:"hard"`
}

// decodeRlimits reads a line's "rlimits": a list of {"type", "soft",
// "hard"}, every key given, nothing else.
func decodeRlimits(raw json.RawMessage) ([]specs.POSIXRlimit, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var in []rlimitJSON
	if err := dec.Decode(&in); err != nil {
		return nil, fmt.Errorf(`"rlimits": want a list of {"type": "RLIMIT_FSIZE", "soft": N, "hard": N}: %s`, jsonError(err, in, "rlimits"))
	}
	out := make([]specs.POSIXRlimit, len(in))
	for i, r := range in {
		field := fmt.Sprintf(`"rlimits"[%d]`, i)
		if r.Type == "" {
			return nil, fmt.Errorf(`%s: "type" is missing`, field)
		}
		out[i].Type = rlimitType(r.Type)
		for _, v := range []struct {
			name string
			raw  json.RawMessage
			to   *uint64
		}{{"soft", r.Soft, &out[i].Soft}, {"hard", r.Hard, &out[i].Hard}} {
			if len(v.raw) == 0 || string(v.raw) == "null" {
				return nil, fmt.Errorf(`%s %s: %q is missing`, field, out[i].Type, v.name)
			}
			var str string
			if json.Unmarshal(v.raw, &str) != nil {
				str = string(v.raw)
			}
			n, err := rlimitNumber(str)
			if err != nil {
				return nil, fmt.Errorf(`%s %s: %q %w`, field, out[i].Type, v.name, err)
			}
			*v.to = n
		}
	}
	return out, nil
}

// rlimitType turns a limit's name as a user writes it (RLIMIT_NOFILE,
// rlimit_nofile, nofile, NOFILE) into its OCI type (RLIMIT_NOFILE). A
// name that is no limit's stays unknown, for the monitor to refuse.
func rlimitType(name string) string {
	t := strings.ToUpper(name)
	if !strings.HasPrefix(t, "RLIMIT_") {
		t = "RLIMIT_" + t
	}
	return t
}

// rlimitNumber reads one limit's value: a whole number in the limit's
// unit, or "unlimited" (also "infinity").
func rlimitNumber(s string) (uint64, error) {
	switch strings.ToLower(s) {
	case "unlimited", "infinity":
		return cgroupmon.RlimitInfinity, nil
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: want a whole number or \"unlimited\"", printable(s))
	}
	return n, nil
}

// parseRlimitFlag reads `--rlimit NAME=SOFT[:HARD]`; without HARD, the
// hard limit is the soft one.
func parseRlimitFlag(v string) (specs.POSIXRlimit, error) {
	name, values, ok := strings.Cut(v, "=")
	if !ok || name == "" || values == "" {
		return specs.POSIXRlimit{}, errors.New("want NAME=SOFT[:HARD], e.g. nofile=64 or RLIMIT_FSIZE=1048576:unlimited")
	}
	r := specs.POSIXRlimit{Type: rlimitType(name)}
	soft, hard, both := strings.Cut(values, ":")
	var err error
	if r.Soft, err = rlimitNumber(soft); err != nil {
		return r, fmt.Errorf("%s soft limit %w", r.Type, err)
	}
	r.Hard = r.Soft
	if both {
		if r.Hard, err = rlimitNumber(hard); err != nil {
			return r, fmt.Errorf("%s hard limit %w", r.Type, err)
		}
	}
	return r, nil
}

// openedFiles are the files of one run of a line, open.
type openedFiles struct {
	in, out, err *os.File
	created      []string // the outputs that did not exist before
}

// openLineFiles opens the files of one run of a line, or changes nothing
// and returns an error naming the field: the working directory must be a
// directory, stdin a readable file that is not a directory, stdout and
// stderr writable files, neither of them stdin's file. Outputs are
// created (mode 0644 before the umask), or truncated once every file has
// been opened; an output the run created is removed again when a later
// one fails. Stdout and stderr naming one file share one descriptor, so
// that neither overwrites the other.
func openLineFiles(f lineFiles) (o *openedFiles, err error) {
	o = &openedFiles{}
	defer func() {
		if err != nil {
			o.undo()
			o = nil
		}
	}()
	if f.Dir != "" {
		st, err := os.Stat(f.Dir)
		if err != nil {
			return o, fmt.Errorf(`"dir" %s: %w`, printable(f.Dir), pathCause(err))
		}
		if !st.IsDir() {
			return o, fmt.Errorf(`"dir" %s: not a directory`, printable(f.Dir))
		}
	}
	if f.Stdin != "" {
		if o.in, err = os.Open(f.Stdin); err != nil {
			return o, fmt.Errorf(`"stdin" %s: %w`, printable(f.Stdin), pathCause(err))
		}
		if st, err := o.in.Stat(); err != nil || st.IsDir() {
			return o, fmt.Errorf(`"stdin" %s: a directory, not a file to read`, printable(f.Stdin))
		}
	}
	for _, out := range []struct {
		field, path string
		to          **os.File
	}{{"stdout", f.Stdout, &o.out}, {"stderr", f.Stderr, &o.err}} {
		if out.path == "" {
			continue
		}
		file, made, err := openOutput(out.path)
		if err != nil {
			return o, fmt.Errorf(`%q %s: %w`, out.field, printable(out.path), pathCause(err))
		}
		if made {
			o.created = append(o.created, out.path)
		}
		if o.in != nil && sameFile(file, o.in) {
			file.Close()
			return o, fmt.Errorf(`%q %s is the file "stdin" reads: it would be emptied before it is read`, out.field, printable(out.path))
		}
		if out.field == "stderr" && o.out != nil && sameFile(file, o.out) {
			file.Close()
			file = o.out
		}
		*out.to = file
	}
	for _, file := range []*os.File{o.out, o.err} {
		if file != nil {
			if err := file.Truncate(0); err != nil {
				return o, fmt.Errorf("emptying %s: %w", printable(file.Name()), pathCause(err))
			}
		}
	}
	return o, nil
}

// openOutput opens path for writing without emptying it, creating it when
// it does not exist; made says it did.
func openOutput(path string) (f *os.File, made bool, err error) {
	f, err = os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err == nil {
		return f, true, nil
	}
	if !errors.Is(err, fs.ErrExist) {
		return nil, false, err
	}
	f, err = os.OpenFile(path, os.O_WRONLY, 0)
	return f, false, err
}

// sameFile reports whether a and b are one file.
func sameFile(a, b *os.File) bool {
	sa, err1 := a.Stat()
	sb, err2 := b.Stat()
	return err1 == nil && err2 == nil && os.SameFile(sa, sb)
}

// pathCause is the reason of a path error without the path, which the
// message names already.
func pathCause(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		if errno, ok := pe.Err.(syscall.Errno); ok {
			return errno
		}
		return pe.Err
	}
	return err
}

// use makes the open files the standard streams of s; a stream the line
// did not name stays nil (/dev/null).
func (o *openedFiles) use(s *cgroupmon.Spec) {
	if o.in != nil {
		s.Stdin = o.in
	}
	if o.out != nil {
		s.Stdout = o.out
	}
	if o.err != nil {
		s.Stderr = o.err
	}
}

// undo closes the files and removes the outputs that openLineFiles
// created, for a run that did not happen.
func (o *openedFiles) undo() {
	o.close()
	for _, p := range o.created {
		_ = os.Remove(p)
	}
}

// close closes the files.
func (o *openedFiles) close() {
	if o == nil {
		return
	}
	o.in.Close()
	o.out.Close()
	if o.err != o.out {
		o.err.Close()
	}
}
