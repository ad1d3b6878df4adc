package cli

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/cgmon/cgmon/metrics"
)

// compareOptions are the flags of `cgmon compare`.
type compareOptions struct {
	Format     string
	Output     string
	Append     string
	Alpha      float64
	Conditions []condition
	Base, Head string
}

const compareSynopsis = "cgmon compare [flags] BASE.ndjson HEAD.ndjson"

// defaultAlpha is the significance level, as benchstat's default.
const defaultAlpha = 0.05

// The metrics compare looks at, in the order it shows them.
var compareMetrics = []struct {
	name, label, unit string
	value             func(*scannedResult) (float64, bool)
}{
	{"wall_time", "wall time", "seconds", func(r *scannedResult) (float64, bool) { return r.wall, r.wallOK }},
	{"cpu_time", "CPU time", "seconds", func(r *scannedResult) (float64, bool) { return r.cpu, r.cpuOK }},
	{"memory_peak", "memory peak", "bytes", func(r *scannedResult) (float64, bool) { return float64(r.mem), r.memOK }},
}

// CompareResult is the JSON output of `cgmon compare`.
type CompareResult struct {
	SchemaVersion int         `json:"schema_version"`
	Base          CompareSide `json:"base"`
	Head          CompareSide `json:"head"`
	// Alpha is the significance level of the U tests.
	Alpha   float64         `json:"alpha"`
	Metrics []CompareMetric `json:"metrics"`
	// StatusChanges lists the ids whose statuses differ between the sides.
	StatusChanges []StatusChange `json:"status_changes"`
	// Conditions are the --fail-on conditions and the rows that met them.
	Conditions []ConditionResult `json:"conditions"`
	// Failed is true when a condition was met: cgmon exits 1.
	Failed bool `json:"failed"`
}

// CompareSide describes one side's file.
type CompareSide struct {
	File string `json:"file"`
	// Results counts the results compared (each key once); IDs the
	// distinct ids among them.
	Results int `json:"results"`
	IDs     int `json:"ids"`
	// Replaced counts results a later one of the same key replaced.
	Replaced int `json:"replaced"`
}

// CompareMetric holds the rows of one metric: per language, then per id of
// that language that both sides have.
type CompareMetric struct {
	Metric string       `json:"metric"`
	Unit   string       `json:"unit"`
	Rows   []CompareRow `json:"rows"`
}

// CompareRow compares the results of one language, or of one id (all its
// repeats), between the sides.
type CompareRow struct {
	Language string `json:"language"`
	// ID is empty for the row of the whole language.
	ID   string      `json:"id,omitempty"`
	Base SampleStats `json:"base"`
	Head SampleStats `json:"head"`
	// Delta is the head's median minus the base's, in the metric's unit;
	// Change is Delta relative to the base's median (0.1 is +10%), null
	// when the base's median is 0 or a side has no value.
	Delta  *float64 `json:"delta"`
	Change *float64 `json:"change"`
	// Tested is true when a side has more than one value: P is then the
	// U test's p-value and Significant says whether it is below Alpha.
	Tested      bool     `json:"tested"`
	P           *float64 `json:"p"`
	Significant bool     `json:"significant"`
	// Note says why a change cannot be significant or was not tested.
	Note string `json:"note,omitempty"`

	rank int // for --fail-on: +1 for an increase to infinity from 0
}

// SampleStats is one side of a row: how many values and their median.
type SampleStats struct {
	N      int      `json:"n"`
	Median *float64 `json:"median"`
}

// StatusChange is an id whose statuses differ between the sides, e.g.
// "success" and "timeout 1, success 4".
type StatusChange struct {
	ID       string `json:"id"`
	Language string `json:"language"`
	Base     string `json:"base"`
	Head     string `json:"head"`
}

// ConditionResult is one --fail-on condition and the rows that met it.
type ConditionResult struct {
	Condition string `json:"condition"`
	Failed    bool   `json:"failed"`
	// Met lists the rows that met it, as "language", or "language/id".
	Met []string `json:"met"`
	// NotSignificant lists rows whose change met it but whose U test
	// found no significant difference: they do not fail.
	NotSignificant []string `json:"not_significant"`
}

// condition is a parsed --fail-on condition. Grammar:
//
//	CONDITION := [SCOPE ":"] METRIC OP LIMIT
//	SCOPE     := "id" | "language"              (default: both)
//	METRIC    := "wall_time" | "cpu_time" | "memory_peak"
//	OP        := ">" | "<"
//	LIMIT     := [SIGN] NUMBER "%"               relative to the base's median
//	           | [SIGN] DURATION                 wall_time, cpu_time: 50ms, 1.5s
//	           | [SIGN] SIZE                     memory_peak: 512K, 16M, 1G, bytes
//
// A row meets "METRIC > LIMIT" when its change (head median minus base
// median, relative for a percentage) is greater than LIMIT, and "<" when it
// is less; a missing sign is "+". Several conditions are separated by
// commas or given in several flags.
type condition struct {
	text    string
	scope   string // "", "id" or "language"
	metric  string
	greater bool
	percent bool
	limit   float64 // a fraction for a percentage, else in the metric's unit
}

// parseConditions parses a --fail-on value.
func parseConditions(s string) ([]condition, error) {
	var out []condition
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		c, err := parseCondition(part)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%q holds no condition (want e.g. 'memory_peak>+10%%')", s)
	}
	return out, nil
}

// parseCondition parses one condition of the grammar of condition.
func parseCondition(s string) (condition, error) {
	c := condition{text: s}
	bad := func(format string, args ...any) (condition, error) {
		return condition{}, fmt.Errorf("condition %q: "+format, append([]any{s}, args...)...)
	}
	rest := strings.ReplaceAll(s, " ", "")
	if scope, after, ok := strings.Cut(rest, ":"); ok {
		if scope != "id" && scope != "language" {
			return bad("scope %q: want id or language", scope)
		}
		c.scope, rest = scope, after
	}
	op := strings.IndexAny(rest, "<>")
	if op < 0 {
		return bad("no > or < (want e.g. 'memory_peak>+10%%')")
	}
	c.metric, c.greater = rest[:op], rest[op] == '>'
	limit := rest[op+1:]
	known := false
	for _, m := range compareMetrics {
		known = known || m.name == c.metric
	}
	if !known {
		return bad("metric %q: want wall_time, cpu_time or memory_peak", c.metric)
	}
	if strings.HasPrefix(limit, "=") {
		return bad(">= and <= are not conditions cgmon knows; use > or <")
	}
	sign := 1.0
	switch {
	case strings.HasPrefix(limit, "+"):
		limit = limit[1:]
	case strings.HasPrefix(limit, "-"):
		sign, limit = -1, limit[1:]
	}
	switch {
	case limit == "":
		return bad("no limit after %c", rest[op])
	case strings.HasSuffix(limit, "%"):
		v, err := strconv.ParseFloat(strings.TrimSuffix(limit, "%"), 64)
		if err != nil || math.IsInf(v, 0) || math.IsNaN(v) || v < 0 {
			return bad("%q is not a percentage", limit)
		}
		c.percent, c.limit = true, sign*v/100
	case c.metric == "memory_peak":
		v, err := ParseSize(limit)
		if err != nil {
			return bad("%v", err)
		}
		c.limit = sign * float64(v)
	default:
		d, err := time.ParseDuration(limit)
		if err != nil || d < 0 {
			return bad("%q is neither a percentage nor a duration such as 50ms", limit)
		}
		c.limit = sign * d.Seconds()
	}
	return c, nil
}

// meets reports whether row's change meets the condition.
func (c *condition) meets(row *CompareRow) bool {
	if row.Delta == nil {
		return false
	}
	v := *row.Delta
	if c.percent {
		switch {
		case row.Change != nil:
			v = *row.Change
		case row.rank > 0: // from 0 to more: an infinite increase
			v = math.Inf(1)
		default:
			return false
		}
	}
	if c.greater {
		return v > c.limit
	}
	return v < c.limit
}

// parseCompareFlags fills compareOptions from args and checks them, the
// conditions included; nothing is read.
func parseCompareFlags(args []string, help io.Writer) (*compareOptions, error) {
	o := &compareOptions{}
	c := newCommand("compare", compareSynopsis)
	c.StringVar(&o.Format, "format", "human", "output format: human, json or markdown")
	c.StringVar(&o.Output, "output", "", "write the comparison to `FILE` (default: standard output)")
	c.StringVar(&o.Output, "o", "", "shorthand for --output")
	c.StringVar(&o.Append, "append", "", "append the comparison to `FILE`, e.g. \"$GITHUB_STEP_SUMMARY\"")
	c.Float64Var(&o.Alpha, "alpha", defaultAlpha, "significance level of the U test")
	c.Func("fail-on", "exit 1 when a change meets `CONDITION`, e.g. 'memory_peak>+10%' (repeatable; comma-separated)", func(s string) error {
		cs, err := parseConditions(s)
		o.Conditions = append(o.Conditions, cs...)
		return err
	})
	if err := c.parse(args, help); err != nil {
		return nil, err
	}
	if c.NArg() != 2 {
		return nil, fail("compare: want two result files, BASE and HEAD (%s)", compareSynopsis)
	}
	o.Base, o.Head = c.Arg(0), c.Arg(1)
	switch {
	case o.Format != "human" && o.Format != "json" && o.Format != "markdown":
		return nil, fail("compare: --format %q: want human, json or markdown", o.Format)
	case o.Output != "" && o.Append != "":
		return nil, fail("compare: give --output or --append, not both")
	case !(o.Alpha > 0 && o.Alpha < 1):
		return nil, fail("compare: --alpha %v: want a level between 0 and 1, e.g. 0.05", o.Alpha)
	}
	return o, nil
}

// compareMain runs `cgmon compare`. Its exit status is 0 when no condition
// was met, 1 when one was, 125 when the comparison could not be made (a
// bad flag or condition, a file that cannot be read or holds a line that
// is not a result).
func compareMain(args []string, stdio IO) (int, error) {
	o, err := parseCompareFlags(args, stdio.Out)
	if err != nil {
		return 0, err
	}
	base, err := readSide(o.Base)
	if err != nil {
		return 0, fail("compare: %v", err)
	}
	head, err := readSide(o.Head)
	if err != nil {
		return 0, fail("compare: %v", err)
	}
	res := compare(base, head, o.Alpha, o.Conditions)
	if err := writeTo(o.Output, o.Append, stdio.Out, func(w io.Writer) error {
		return res.write(w, o.Format)
	}); err != nil {
		return 0, fail("compare: %v", err)
	}
	if res.Failed {
		return 1, nil
	}
	return 0, nil
}

// resultKey identifies a result: its id and repeat index.
type resultKey struct {
	id     string
	repeat int64
}

// compared is what compare keeps of one result.
type compared struct {
	language string
	status   metrics.Status
	values   [3]float64 // in the order of compareMetrics
	ok       [3]bool
}

// side is one side's results, each key once.
type side struct {
	info    CompareSide
	results map[resultKey]*compared
}

// readSide reads a result file; every non-empty line must be a result.
func readSide(path string) (*side, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	s := &side{info: CompareSide{File: path}, results: make(map[resultKey]*compared)}
	var p resultParser
	var r scannedResult
	lr := newLineReader(f)
	anon := int64(0)
	ids := make(map[string]struct{})
	for {
		line, tooLong, err := lr.next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if tooLong {
			return nil, fmt.Errorf("%s:%d: longer than %d bytes", path, lr.n, maxResultLine)
		}
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		if _, err := p.record(line, &r, ""); err != nil {
			return nil, fmt.Errorf("%s:%d: %v", path, lr.n, err)
		}
		c := &compared{language: string(r.language), status: r.status}
		switch {
		case r.rejected && len(r.id) == 0:
			continue // an input line batch could not even read
		case r.rejected:
			// Not run: no language and nothing to compare, but a status
			// an id can change to or from.
			c.language, c.status = "", StatusRejected
		case c.language == "":
			c.language = metrics.UnknownLanguage
		}
		// An execution that never started ran no program: it has no time
		// or memory to compare.
		if r.status != metrics.StatusFailedToStart && !r.rejected {
			for i, m := range compareMetrics {
				c.values[i], c.ok[i] = m.value(&r)
			}
		}
		k := resultKey{id: string(r.id), repeat: r.repeat}
		if k.id == "" {
			anon-- // results without an id are all distinct
			k.repeat = anon
		} else {
			ids[k.id] = struct{}{}
		}
		if _, dup := s.results[k]; dup {
			s.info.Replaced++
		}
		s.results[k] = c
	}
	s.info.Results = len(s.results)
	s.info.IDs = len(ids)
	return s, nil
}

// compare compares base with head metric by metric, per language (every
// result of it) and per id that both sides have (all its repeats).
func compare(base, head *side, alpha float64, conds []condition) *CompareResult {
	res := &CompareResult{
		SchemaVersion: SchemaVersion,
		Base:          base.info,
		Head:          head.info,
		Alpha:         alpha,
		StatusChanges: []StatusChange{},
		Conditions:    []ConditionResult{},
	}
	// Languages of either side; ids of both, under the base's language.
	// A rejected line has no language (""): it names none and joins no
	// language's row.
	idLang := make(map[string]string)
	langSet := make(map[string]bool)
	for _, s := range []*side{base, head} {
		for k, c := range s.results {
			if c.language == "" {
				continue
			}
			langSet[c.language] = true
			if k.id != "" && idLang[k.id] == "" {
				idLang[k.id] = c.language
			}
		}
	}
	headIDs := make(map[string]bool)
	for k := range head.results {
		if k.id != "" {
			headIDs[k.id] = true
		}
	}
	langIDs := make(map[string][]string)
	baseIDs0 := make(map[string]bool)
	for k := range base.results {
		baseIDs0[k.id] = true
	}
	for id, lang := range idLang {
		if headIDs[id] && baseIDs0[id] {
			langIDs[lang] = append(langIDs[lang], id)
		}
	}
	langs := make([]string, 0, len(langSet))
	for l := range langSet {
		langs = append(langs, l)
	}
	sort.Strings(langs)
	for _, ids := range langIDs {
		sort.Strings(ids)
	}

	byID := func(s *side) map[string][]*compared {
		m := make(map[string][]*compared)
		for k, c := range s.results {
			if k.id != "" {
				m[k.id] = append(m[k.id], c)
			}
		}
		return m
	}
	byLang := func(s *side) map[string][]*compared {
		m := make(map[string][]*compared)
		for _, c := range s.results {
			if c.language != "" {
				m[c.language] = append(m[c.language], c)
			}
		}
		return m
	}
	baseIDs, headByID := byID(base), byID(head)
	baseLangs, headLangs := byLang(base), byLang(head)

	for mi, m := range compareMetrics {
		cm := CompareMetric{Metric: m.name, Unit: m.unit, Rows: []CompareRow{}}
		values := func(cs []*compared) []float64 {
			var v []float64
			for _, c := range cs {
				if c.ok[mi] {
					v = append(v, c.values[mi])
				}
			}
			return v
		}
		for _, l := range langs {
			cm.Rows = append(cm.Rows, compareRow(l, "", values(baseLangs[l]), values(headLangs[l]), alpha))
			for _, id := range langIDs[l] {
				cm.Rows = append(cm.Rows, compareRow(l, id, values(baseIDs[id]), values(headByID[id]), alpha))
			}
		}
		res.Metrics = append(res.Metrics, cm)
	}

	for _, l := range langs {
		for _, id := range langIDs[l] {
			b, h := statusText(baseIDs[id]), statusText(headByID[id])
			if b != h {
				res.StatusChanges = append(res.StatusChanges, StatusChange{ID: id, Language: l, Base: b, Head: h})
			}
		}
	}

	for i := range conds {
		c := &conds[i]
		cr := ConditionResult{Condition: c.text, Met: []string{}, NotSignificant: []string{}}
		for _, cm := range res.Metrics {
			if cm.Metric != c.metric {
				continue
			}
			for ri := range cm.Rows {
				row := &cm.Rows[ri]
				if c.scope == "id" && row.ID == "" || c.scope == "language" && row.ID != "" || !c.meets(row) {
					continue
				}
				name := row.Language
				if row.ID != "" {
					name += "/" + row.ID
				}
				if row.Tested && !row.Significant {
					cr.NotSignificant = append(cr.NotSignificant, name)
					continue
				}
				cr.Met = append(cr.Met, name)
			}
		}
		cr.Failed = len(cr.Met) > 0
		res.Failed = res.Failed || cr.Failed
		res.Conditions = append(res.Conditions, cr)
	}
	return res
}

// compareRow compares two samples of one metric.
func compareRow(lang, id string, base, head []float64, alpha float64) CompareRow {
	row := CompareRow{Language: lang, ID: id, Base: SampleStats{N: len(base)}, Head: SampleStats{N: len(head)}}
	switch {
	case len(base) == 0 && len(head) == 0:
		row.Note = "not measured"
		return row
	case len(base) == 0:
		row.Note = "no value in base"
		return row
	case len(head) == 0:
		row.Note = "no value in head"
		return row
	}
	mb, mh := median(base), median(head)
	row.Base.Median, row.Head.Median = &mb, &mh
	d := mh - mb
	row.Delta = &d
	if mb != 0 {
		ch := d / mb
		row.Change = &ch
	} else if mh > 0 {
		row.rank = 1
		row.Note = "the base's median is 0"
	}
	if len(base) == 1 && len(head) == 1 {
		return row // no repeats: the change is taken as it is
	}
	row.Tested = true
	t, err := mannWhitneyU(base, head)
	p := t.P
	row.P = &p
	row.Significant = err == nil && p < alpha
	switch {
	case errors.Is(err, errSamplesEqual):
		row.Note = "all values are equal"
	case minUTestP(len(base), len(head)) >= alpha:
		row.Note = fmt.Sprintf("too few values to be significant at α = %g", alpha)
	}
	return row
}

// median returns the middle value of v (the mean of the two middle values
// for an even count); v is reordered.
func median(v []float64) float64 {
	sort.Float64s(v)
	n := len(v)
	if n%2 == 1 {
		return v[n/2]
	}
	return (v[n/2-1] + v[n/2]) / 2
}

// statusText describes the statuses of an id's results: "success", or
// "success 4, timeout 1" when they differ.
func statusText(cs []*compared) string {
	counts := make(map[metrics.Status]int)
	for _, c := range cs {
		counts[c.status]++
	}
	if len(counts) == 1 {
		for s := range counts {
			return string(s)
		}
	}
	var parts []string
	for _, s := range metrics.Statuses {
		if n := counts[s]; n > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", s, n))
		}
	}
	return strings.Join(parts, ", ")
}

// write renders r in format: human, json or markdown.
func (r *CompareResult) write(w io.Writer, format string) error {
	return writeAs(w, format, r, r.WriteMarkdown, r.WriteHuman)
}

// formatValue renders a value of a metric's unit.
func formatValue(unit string, v float64) string {
	if unit == "bytes" {
		return FormatSize(uint64(math.Round(v)))
	}
	a := math.Abs(v)
	switch {
	case a == 0:
		return "0 s"
	case a < 1e-3:
		return fmt.Sprintf("%.1f µs", v*1e6)
	case a < 1:
		return fmt.Sprintf("%.2f ms", v*1e3)
	}
	return fmt.Sprintf("%.3f s", v)
}

// cells returns a row's median, change, p and n cells.
func (row *CompareRow) cells(unit string) (base, head, change, p, n string) {
	base, head, change, p = "-", "-", "-", "-"
	if row.Base.Median != nil {
		base = formatValue(unit, *row.Base.Median)
	}
	if row.Head.Median != nil {
		head = formatValue(unit, *row.Head.Median)
	}
	switch {
	case row.Tested && !row.Significant:
		change = "~"
	case row.Change != nil:
		change = fmt.Sprintf("%+.2f%%", *row.Change*100)
	case row.rank > 0:
		change = "+∞%"
	case row.Delta != nil:
		change = "0.00%"
	}
	if row.P != nil {
		p = fmt.Sprintf("%.3f", *row.P)
	}
	n = fmt.Sprintf("%d+%d", row.Base.N, row.Head.N)
	return
}

// legend explains the columns.
func (r *CompareResult) legend() string {
	return fmt.Sprintf("Medians. Where a side has several results (repeats, or a whole language), p is a two-sided Mann-Whitney U test "+
		"and a change is significant below α = %g; ~ marks one that is not. A single result on each side is compared as it is.", r.Alpha)
}

// WriteHuman writes the comparison as aligned tables, one per metric.
func (r *CompareResult) WriteHuman(w io.Writer) error {
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "Base: %s: %d results (%d ids)\n", escapeControls(r.Base.File), r.Base.Results, r.Base.IDs)
	fmt.Fprintf(&buf, "Head: %s: %d results (%d ids)\n", escapeControls(r.Head.File), r.Head.Results, r.Head.IDs)
	fmt.Fprintf(&buf, "%s\n", wrap(r.legend(), 78))
	for _, m := range r.Metrics {
		fmt.Fprintln(&buf)
		tw := tabwriter.NewWriter(&buf, 0, 0, 2, ' ', 0)
		label := m.Metric
		for _, cm := range compareMetrics {
			if cm.name == m.Metric {
				label = cm.label
			}
		}
		fmt.Fprintf(tw, "%s\tbase\thead\tchange\tp\tn\tnote\n", strings.ToUpper(label))
		for i := range m.Rows {
			row := &m.Rows[i]
			b, h, ch, p, n := row.cells(m.Unit)
			name := escapeControls(row.Language)
			if row.ID != "" {
				name = "  " + escapeControls(row.ID)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", name, b, h, ch, p, n, row.Note)
		}
		tw.Flush()
	}
	if len(r.StatusChanges) > 0 {
		fmt.Fprintf(&buf, "\nStatus changes:\n")
		for _, s := range r.StatusChanges {
			fmt.Fprintf(&buf, "  %s (%s): %s -> %s\n", escapeControls(s.ID), escapeControls(s.Language), s.Base, s.Head)
		}
	}
	if len(r.Conditions) > 0 {
		fmt.Fprintf(&buf, "\nFail on:\n")
		for _, c := range r.Conditions {
			fmt.Fprintf(&buf, "  %s: %s\n", c.Condition, c.verdict(printable))
		}
	}
	// The table's last column is often empty: no trailing spaces.
	lines := strings.Split(buf.String(), "\n")
	for i, l := range lines {
		lines[i] = strings.TrimRight(l, " ")
	}
	_, err := io.WriteString(w, strings.Join(lines, "\n"))
	return err
}

// wrap breaks s into lines of at most width bytes at spaces.
func wrap(s string, width int) string {
	var b strings.Builder
	n := 0
	for i, w := range strings.Fields(s) {
		if i > 0 && n+1+len(w) > width {
			b.WriteByte('\n')
			n = 0
		} else if i > 0 {
			b.WriteByte(' ')
			n++
		}
		b.WriteString(w)
		n += len(w)
	}
	return b.String()
}

// verdict says whether a condition failed and where.
func (c *ConditionResult) verdict(quote func(string) string) string {
	q := func(names []string) string {
		out := make([]string, len(names))
		for i, n := range names {
			out[i] = quote(n)
		}
		return strings.Join(out, ", ")
	}
	s := "passed"
	if c.Failed {
		s = "FAILED by " + q(c.Met)
	}
	if len(c.NotSignificant) > 0 {
		s += " (not significant, so not failing: " + q(c.NotSignificant) + ")"
	}
	return s
}

// WriteMarkdown writes the comparison as Markdown tables for a CI job
// summary, the verdict of the conditions first.
func (r *CompareResult) WriteMarkdown(w io.Writer) error {
	var buf bytes.Buffer
	icon := statusIcon(metrics.StatusSuccess)
	verdict := "no condition met"
	switch {
	case r.Failed:
		icon, verdict = statusIcon(metrics.StatusError), "a condition was met"
	case len(r.Conditions) == 0:
		verdict = "no condition given"
	}
	fmt.Fprintf(&buf, "### %s cgmon compare: %s\n\n", icon, verdict)
	for _, c := range r.Conditions {
		mark := "✅"
		if c.Failed {
			mark = "❌"
		}
		fmt.Fprintf(&buf, "- %s %s: %s\n", mark, mdCode(c.Condition, false), c.verdict(func(s string) string { return mdCode(s, false) }))
	}
	if len(r.Conditions) > 0 {
		fmt.Fprintln(&buf)
	}
	fmt.Fprintf(&buf, "Base %s: %d results (%d ids) · head %s: %d results (%d ids)\n\n",
		mdCode(r.Base.File, false), r.Base.Results, r.Base.IDs, mdCode(r.Head.File, false), r.Head.Results, r.Head.IDs)
	for _, m := range r.Metrics {
		label := m.Metric
		for _, cm := range compareMetrics {
			if cm.name == m.Metric {
				label = cm.label
			}
		}
		fmt.Fprintf(&buf, "| %s | base | head | change | p | n | note |\n|:--|--:|--:|--:|--:|--:|:--|\n", label)
		for i := range m.Rows {
			row := &m.Rows[i]
			b, h, ch, p, n := row.cells(m.Unit)
			name := "**" + mdText(row.Language) + "**"
			if row.ID != "" {
				name = "↳ " + mdCode(row.ID, true)
			}
			fmt.Fprintf(&buf, "| %s | %s | %s | %s | %s | %s | %s |\n", name, b, h, ch, p, n, mdText(row.Note))
		}
		fmt.Fprintln(&buf)
	}
	if len(r.StatusChanges) > 0 {
		fmt.Fprintf(&buf, "**Status changes:**\n\n")
		for _, s := range r.StatusChanges {
			fmt.Fprintf(&buf, "- %s (%s): %s → %s\n", mdCode(s.ID, false), mdCode(s.Language, false), s.Base, s.Head)
		}
		fmt.Fprintln(&buf)
	}
	fmt.Fprintf(&buf, "%s\n\n", mdText(r.legend()))
	_, err := w.Write(buf.Bytes())
	return err
}
