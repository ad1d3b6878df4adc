package vmtest

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Markers that /init prints on the serial console and the host parses.
// They are long and upper-case so that no kernel or test output is taken
// for them by accident.
const (
	ResultMarker   = "CGMON-VMTEST-RESULT"
	PkgBeginMarker = "CGMON-VMTEST-PKG-BEGIN"
	PkgEndMarker   = "CGMON-VMTEST-PKG-END"
)

// Status values on the result line.
const (
	StatusPass = "PASS"
	StatusFail = "FAIL"
)

// Counts is the number of Go test results (top-level tests and subtests),
// counted from the `--- PASS/FAIL/SKIP` lines of `-test.v` output.
type Counts struct {
	Passed, Failed, Skipped int
}

// Add adds the counts of o to c.
func (c *Counts) Add(o Counts) {
	c.Passed += o.Passed
	c.Failed += o.Failed
	c.Skipped += o.Skipped
}

// CountLine updates c for one line of `go test -v` output.
func (c *Counts) CountLine(line string) {
	t := strings.TrimLeft(line, " \t")
	switch {
	case strings.HasPrefix(t, "--- PASS:"):
		c.Passed++
	case strings.HasPrefix(t, "--- FAIL:"):
		c.Failed++
	case strings.HasPrefix(t, "--- SKIP:"):
		c.Skipped++
	}
}

// Result is the outcome of one scenario as reported by /init.
type Result struct {
	Scenario string
	Status   string
	Counts
	// Reason says why a scenario failed without a test failing (setup
	// error, a test binary that crashed); empty otherwise.
	Reason string
}

// String formats r as the single result line.
func (r Result) String() string {
	s := fmt.Sprintf("%s scenario=%s status=%s tests=%d failed=%d skipped=%d",
		ResultMarker, r.Scenario, r.Status, r.Passed, r.Failed, r.Skipped)
	if r.Reason != "" {
		s += " reason=" + strconv.Quote(r.Reason)
	}
	return s
}

// PkgEnd is the end-of-package line /init prints after one test binary.
type PkgEnd struct {
	Pkg    string
	Status string
	Counts
	// Exit is how the binary ended ("exit status 1", "ok", ...).
	Exit string
}

// String formats p as one console line.
func (p PkgEnd) String() string {
	return fmt.Sprintf("%s pkg=%s status=%s passed=%d failed=%d skipped=%d exit=%s",
		PkgEndMarker, p.Pkg, p.Status, p.Passed, p.Failed, p.Skipped, strconv.Quote(p.Exit))
}

// PkgBegin formats the line printed before a test binary's output.
func PkgBegin(pkg string) string { return PkgBeginMarker + " pkg=" + pkg }

// PkgOutput is the console output of one test binary.
type PkgOutput struct {
	Pkg   string
	Lines []string
	End   *PkgEnd // nil if the binary never finished (crash, timeout)
}

// Console is what the host read from one boot's serial console.
type Console struct {
	Result *Result // nil if no result line arrived
	Pkgs   []PkgOutput
	Lines  []string // every line, carriage returns removed
	cur    *PkgOutput
}

// fields parses `key=value` pairs after a marker; a value may be a Go
// quoted string. The marker may be preceded by other text on the line
// (a kernel message printed without a newline).
func fields(line, marker string) (map[string]string, bool) {
	i := strings.Index(line, marker+" ")
	if i < 0 {
		return nil, false
	}
	rest := line[i+len(marker)+1:]
	m := map[string]string{}
	for rest != "" {
		rest = strings.TrimLeft(rest, " ")
		eq := strings.IndexByte(rest, '=')
		if eq <= 0 {
			return nil, false
		}
		key := rest[:eq]
		rest = rest[eq+1:]
		if strings.HasPrefix(rest, `"`) {
			q, err := strconv.QuotedPrefix(rest)
			if err != nil {
				return nil, false
			}
			v, _ := strconv.Unquote(q)
			m[key] = v
			rest = rest[len(q):]
			continue
		}
		sp := strings.IndexByte(rest, ' ')
		if sp < 0 {
			sp = len(rest)
		}
		m[key] = rest[:sp]
		rest = rest[sp:]
	}
	return m, true
}

func atoi(m map[string]string, k string) (int, bool) {
	n, err := strconv.Atoi(m[k])
	return n, err == nil && n >= 0
}

// ParseResult parses a result line; ok is false if line holds none or it is
// malformed.
func ParseResult(line string) (Result, bool) {
	m, ok := fields(line, ResultMarker)
	if !ok {
		return Result{}, false
	}
	r := Result{Scenario: m["scenario"], Status: m["status"], Reason: m["reason"]}
	var ok1, ok2, ok3 bool
	r.Passed, ok1 = atoi(m, "tests")
	r.Failed, ok2 = atoi(m, "failed")
	r.Skipped, ok3 = atoi(m, "skipped")
	if r.Scenario == "" || (r.Status != StatusPass && r.Status != StatusFail) || !ok1 || !ok2 || !ok3 {
		return Result{}, false
	}
	return r, true
}

func parsePkgEnd(line string) (PkgEnd, bool) {
	m, ok := fields(line, PkgEndMarker)
	if !ok {
		return PkgEnd{}, false
	}
	p := PkgEnd{Pkg: m["pkg"], Status: m["status"], Exit: m["exit"]}
	var ok1, ok2, ok3 bool
	p.Passed, ok1 = atoi(m, "passed")
	p.Failed, ok2 = atoi(m, "failed")
	p.Skipped, ok3 = atoi(m, "skipped")
	return p, p.Pkg != "" && ok1 && ok2 && ok3
}

// ParseConsole reads a whole serial console log.
func ParseConsole(r io.Reader) (Console, error) {
	var c Console
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 4*1024*1024)
	for sc.Scan() {
		c.Feed(sc.Text())
	}
	c.Finish()
	return c, sc.Err()
}

// Feed adds one console line to c. The first well-formed result line wins;
// a line is attributed to a package only between that package's begin and
// end markers.
func (c *Console) Feed(line string) {
	line = strings.ReplaceAll(line, "\r", "")
	c.Lines = append(c.Lines, line)
	if c.Result == nil {
		if res, ok := ParseResult(line); ok {
			c.Result = &res
			return
		}
	}
	if m, ok := fields(line, PkgBeginMarker); ok && m["pkg"] != "" {
		c.Finish()
		c.cur = &PkgOutput{Pkg: m["pkg"]}
		return
	}
	if end, ok := parsePkgEnd(line); ok && c.cur != nil && end.Pkg == c.cur.Pkg {
		c.cur.End = &end
		c.Finish()
		return
	}
	if c.cur != nil {
		c.cur.Lines = append(c.cur.Lines, line)
	}
}

// Finish closes the package being read, if any (its End stays nil when
// the console ended inside it).
func (c *Console) Finish() {
	if c.cur != nil {
		c.Pkgs = append(c.Pkgs, *c.cur)
		c.cur = nil
	}
}
