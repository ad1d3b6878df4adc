package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"math"
	"os"
	"strings"

	"github.com/cgmon/cgmon/metrics"
)

// summaryOptions are the flags of `cgmon summary`.
type summaryOptions struct {
	Format string
	Output string
	Append string
	Files  []string
}

const summarySynopsis = "cgmon summary [flags] FILE..."

// maxBadLinesKept bounds the bad lines a summary lists; the rest are
// counted.
const maxBadLinesKept = 100

// SummaryResult is the JSON output of `cgmon summary`: the same summary
// and per-language statistics as `cgmon batch`, over every result read,
// each key (id, repeat_index) counted once.
type SummaryResult struct {
	SchemaVersion int                              `json:"schema_version"`
	Summary       metrics.Summary                  `json:"summary"`
	Languages     map[string]metrics.LanguageStats `json:"languages"`
	// Files are the files read, in the order given.
	Files []SummaryFile `json:"files"`
	// Replaced counts results that a later result of the same key (id and
	// repeat_index) replaced: a later line of the same file, or a line of
	// a later file.
	Replaced uint64 `json:"replaced"`
	// BadLineCount counts lines that are not results; BadLines lists the
	// first 100 of them.
	BadLineCount uint64     `json:"bad_line_count"`
	BadLines     []FileLine `json:"bad_lines"`
	// RejectedCount counts the lines of input that a batch did not run
	// (result lines of status "rejected" that no later result of their id
	// replaced); Rejected lists the first 100, with their errors. They
	// are in no statistic.
	RejectedCount uint64     `json:"rejected_count"`
	Rejected      []FileLine `json:"rejected"`
}

// SummaryFile is one file a summary read.
type SummaryFile struct {
	Path string `json:"path"`
	// Lines counts the non-empty lines read; Results those that are
	// results.
	Lines   uint64 `json:"lines"`
	Results uint64 `json:"results"`
}

// FileLine is a line of a result file and what is wrong with it: it could
// not be read as a result, or it is a batch's line of rejected input.
type FileLine struct {
	File  string `json:"file"`
	Line  int    `json:"line"`
	Error string `json:"error"`
}

// parseSummaryFlags fills summaryOptions from args and checks them;
// nothing is read or created.
func parseSummaryFlags(args []string, help io.Writer) (*summaryOptions, error) {
	o := &summaryOptions{}
	c := newCommand("summary", summarySynopsis)
	c.StringVar(&o.Format, "format", "human", "output format: human, json or markdown")
	c.StringVar(&o.Output, "output", "", "write the summary to `FILE` (default: standard output)")
	c.StringVar(&o.Output, "o", "", "shorthand for --output")
	c.StringVar(&o.Append, "append", "", "append the summary to `FILE`, e.g. \"$GITHUB_STEP_SUMMARY\"")
	if err := c.parse(args, help); err != nil {
		return nil, err
	}
	o.Files = c.Args()
	switch {
	case len(o.Files) == 0:
		return nil, fail("summary: no result files given (%s)", summarySynopsis)
	case o.Format != "human" && o.Format != "json" && o.Format != "markdown":
		return nil, fail("summary: --format %q: want human, json or markdown", o.Format)
	case o.Output != "" && o.Append != "":
		return nil, fail("summary: give --output or --append, not both")
	}
	for _, f := range o.Files {
		if f == "-" {
			return nil, fail("summary: reads each file twice, so it cannot read standard input; save it to a file first")
		}
	}
	return o, nil
}

// summaryMain runs `cgmon summary`. Its exit status is 1 when lines that
// are not results were skipped, 0 otherwise; a failure (a bad flag, a file
// that cannot be read) is an error, and nothing is written.
func summaryMain(args []string, stdio IO) (int, error) {
	o, err := parseSummaryFlags(args, stdio.Out)
	if err != nil {
		return 0, err
	}
	res, err := summarize(o.Files, stdio.Err)
	if err != nil {
		return 0, fail("summary: %v", err)
	}
	if err := writeTo(o.Output, o.Append, stdio.Out, func(w io.Writer) error {
		return res.write(w, o.Format)
	}); err != nil {
		return 0, fail("summary: %v", err)
	}
	if res.BadLineCount > 0 {
		return 1, nil
	}
	return 0, nil
}

// writeTo renders with fn into memory, then writes it in one write to the
// file output (created), to the file appendTo (appended) or to def.
func writeTo(output, appendTo string, def io.Writer, fn func(io.Writer) error) error {
	var buf bytes.Buffer
	if err := fn(&buf); err != nil {
		return err
	}
	var f *os.File
	var err error
	switch {
	case output != "":
		f, err = os.Create(output)
	case appendTo != "":
		f, err = os.OpenFile(appendTo, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	default:
		_, err = def.Write(buf.Bytes())
		return err
	}
	if err != nil {
		return err
	}
	_, err = f.Write(buf.Bytes())
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// write renders r in format: human, json or markdown.
func (r *SummaryResult) write(w io.Writer, format string) error {
	return writeAs(w, format, r, r.WriteMarkdown, r.WriteHuman)
}

// writeAs writes v to w in format: indented JSON, markdown or human.
func writeAs(w io.Writer, format string, v any, markdown, human func(io.Writer) error) error {
	switch format {
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	case "markdown":
		return markdown(w)
	}
	return human(w)
}

// inputLines describe what was read, for the human and Markdown forms:
// the results and files, and the bad lines if any.
func (r *SummaryResult) inputLines(quote func(string) string) []string {
	var results uint64
	for _, f := range r.Files {
		results += f.Results
	}
	read := fmt.Sprintf("Read: %s in %s", plural(results, "result"), plural(uint64(len(r.Files)), "file"))
	if r.Replaced > 0 {
		read += fmt.Sprintf(" (%d replaced by a later result of the same id)", r.Replaced)
	}
	lines := []string{read}
	if r.BadLineCount > 0 {
		var at []string
		for _, b := range r.BadLines {
			at = append(at, quote(fmt.Sprintf("%s:%d", b.File, b.Line)))
		}
		if n := r.BadLineCount - uint64(len(r.BadLines)); n > 0 {
			at = append(at, fmt.Sprintf("and %d more", n))
		}
		lines = append(lines, fmt.Sprintf("Bad lines (skipped): %d (%s)", r.BadLineCount, strings.Join(at, ", ")))
	}
	if r.RejectedCount > 0 {
		var at []string
		for _, b := range r.Rejected {
			at = append(at, quote(fmt.Sprintf("%s:%d", b.File, b.Line)))
		}
		if n := r.RejectedCount - uint64(len(r.Rejected)); n > 0 {
			at = append(at, fmt.Sprintf("and %d more", n))
		}
		lines = append(lines, fmt.Sprintf("Rejected input lines (not run): %d (%s)", r.RejectedCount, strings.Join(at, ", ")))
	}
	return lines
}

// plural returns "1 file", "2 files".
func plural(n uint64, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// WriteHuman writes what was read, then the summary and the per-language
// table exactly as `cgmon batch` does.
func (r *SummaryResult) WriteHuman(w io.Writer) error {
	for _, l := range r.inputLines(printable) {
		fmt.Fprintln(w, l)
	}
	b := &BatchResult{SchemaVersion: r.SchemaVersion, Summary: r.Summary, Languages: r.Languages}
	return b.WriteHuman(w)
}

// WriteMarkdown writes the summary as Markdown for a CI job summary.
func (r *SummaryResult) WriteMarkdown(w io.Writer) error {
	var buf bytes.Buffer
	writeStatsMarkdown(&buf, "cgmon summary", r.Summary, r.Languages)
	fmt.Fprintf(&buf, "%s\n\n", strings.Join(r.inputLines(func(s string) string { return mdCode(s, false) }), "\n\n"))
	_, err := w.Write(buf.Bytes())
	return err
}

// summarize reads the result files twice: the first pass finds, for each
// key (id, repeat_index), its last line; the second records in a
// Collector the lines that are last of their key (and every result
// without an id). Bad lines are reported on diag as they are found.
func summarize(files []string, diag io.Writer) (*SummaryResult, error) {
	res := &SummaryResult{SchemaVersion: SchemaVersion, BadLines: []FileLine{}, Rejected: []FileLine{}}
	sizes := make([]int64, len(files))
	var total int64
	for i, name := range files {
		st, err := os.Stat(name)
		if err != nil {
			return nil, err
		}
		if !st.Mode().IsRegular() {
			return nil, fmt.Errorf("%s: not a regular file", name)
		}
		// A file still being appended to is read up to the size it had
		// now, in both passes.
		sizes[i] = st.Size()
		total += st.Size()
		res.Files = append(res.Files, SummaryFile{Path: name})
	}
	// About 1 KiB per result line; the hint only avoids regrowing the
	// index.
	idx := newKeyIndex(int(min(total/1024, 1<<24)))
	var p resultParser
	var r scannedResult
	var ordinal uint64

	// Pass 1: index the keys.
	err := eachLine(files, sizes, func(fi int, n int, line []byte, tooLong bool) error {
		ordinal++
		res.Files[fi].Lines++
		if tooLong {
			res.bad(diag, files[fi], n, fmt.Errorf("longer than %d bytes", maxResultLine))
			return nil
		}
		if _, err := p.record(line, &r, ""); err != nil {
			res.bad(diag, files[fi], n, err)
			return nil
		}
		res.Files[fi].Results++
		if len(r.id) > 0 {
			return idx.put(r.id, r.repeat, ordinal)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}

	// Pass 2: record the last result of each key.
	coll := metrics.NewCollector(metrics.WithRecent(0))
	langs := make(map[string]string)
	ordinal = 0
	err = eachLine(files, sizes, func(fi int, n int, line []byte, tooLong bool) error {
		ordinal++
		if tooLong || p.parse(line, &r) != nil {
			return nil // reported in pass 1
		}
		changed := func() error { return fmt.Errorf("%s:%d: the file changed while it was read", files[fi], n) }
		if len(r.id) > 0 {
			last, ok := idx.last(r.id, r.repeat)
			if !ok {
				return changed()
			}
			if last != ordinal {
				res.Replaced++
				return nil
			}
		}
		if r.rejected {
			res.RejectedCount++
			if len(res.Rejected) < maxBadLinesKept {
				res.Rejected = append(res.Rejected, FileLine{File: files[fi], Line: n, Error: oneLine(string(r.errMsg))})
			}
			return nil
		}
		lang, ok := langs[string(r.language)]
		if !ok {
			lang = string(r.language)
			langs[lang] = lang
		}
		ex, err := r.execution(lang)
		if err == nil {
			err = coll.Record(ex)
		}
		if err != nil {
			// Pass 1 accepted the line.
			return changed()
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	res.Summary = coll.Summary()
	res.Languages = coll.LanguageStats()
	return res, nil
}

// bad records and reports a line that is not a result.
func (r *SummaryResult) bad(diag io.Writer, file string, line int, err error) {
	r.BadLineCount++
	msg := oneLine(err.Error())
	if len(r.BadLines) < maxBadLinesKept {
		r.BadLines = append(r.BadLines, FileLine{File: file, Line: line, Error: msg})
		fmt.Fprintf(diag, "cgmon: summary: %s:%d: %s\n", escapeControls(file), line, msg)
	} else if len(r.BadLines) == maxBadLinesKept && r.BadLineCount == maxBadLinesKept+1 {
		fmt.Fprintf(diag, "cgmon: summary: more bad lines; only the first %d are listed\n", maxBadLinesKept)
	}
}

// eachLine calls fn with every non-empty line of the first sizes[i] bytes
// of each file, its file's index and its 1-based line number.
func eachLine(files []string, sizes []int64, fn func(fi, n int, line []byte, tooLong bool) error) error {
	for fi, name := range files {
		f, err := os.Open(name)
		if err != nil {
			return err
		}
		lr := newLineReader(io.LimitReader(f, sizes[fi]))
		for {
			line, tooLong, err := lr.next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				f.Close()
				return fmt.Errorf("%s: %w", name, err)
			}
			if !tooLong && len(bytes.TrimSpace(line)) == 0 {
				continue
			}
			if err := fn(fi, lr.n, line, tooLong); err != nil {
				f.Close()
				return err
			}
		}
		f.Close()
	}
	return nil
}

// keyIndex maps a key (id, repeat_index) to the ordinal of its last line.
// Ids are kept in one byte arena and entries in one slice, found through
// an open-addressing table of entry numbers, so that a million keys cost
// about 40 MiB and give the garbage collector no pointer to follow.
type keyIndex struct {
	seed  maphash.Seed
	slots []int32 // entry number + 1; 0 is an empty slot; a power of two long
	ents  []keyEntry
	arena []byte
}

type keyEntry struct {
	off, n uint32 // the id is arena[off:off+n]
	repeat int32
	last   uint32 // the ordinal of the key's last line
}

// newKeyIndex returns an empty index sized for about hint keys.
func newKeyIndex(hint int) *keyIndex {
	n := 1024
	for n < 2*hint {
		n *= 2
	}
	return &keyIndex{
		seed:  maphash.MakeSeed(),
		slots: make([]int32, n),
		ents:  make([]keyEntry, 0, hint),
	}
}

func (x *keyIndex) hash(id []byte, repeat int64) uint64 {
	return maphash.Bytes(x.seed, id) ^ uint64(repeat)*0x9e3779b97f4a7c15
}

// slot returns the slot of the key: the one holding its entry, or the
// empty one where it would go.
func (x *keyIndex) slot(id []byte, repeat int64) int {
	mask := len(x.slots) - 1
	for i := int(x.hash(id, repeat)) & mask; ; i = (i + 1) & mask {
		s := x.slots[i]
		if s == 0 {
			return i
		}
		e := &x.ents[s-1]
		if int64(e.repeat) == repeat && bytes.Equal(x.arena[e.off:e.off+e.n], id) {
			return i
		}
	}
}

// put records ordinal as the key's last line.
func (x *keyIndex) put(id []byte, repeat int64, ordinal uint64) error {
	if ordinal > math.MaxUint32 {
		return errors.New("more lines than one summary can count (2^32)")
	}
	i := x.slot(id, repeat)
	if s := x.slots[i]; s != 0 {
		x.ents[s-1].last = uint32(ordinal)
		return nil
	}
	if len(x.arena)+len(id) > math.MaxUint32 || len(x.ents) >= math.MaxInt32-1 {
		return errors.New("more distinct ids than one summary can hold (4 GiB of ids, 2^31 keys)")
	}
	x.ents = append(x.ents, keyEntry{off: uint32(len(x.arena)), n: uint32(len(id)), repeat: int32(repeat), last: uint32(ordinal)})
	x.arena = append(x.arena, id...)
	x.slots[i] = int32(len(x.ents))
	if 2*len(x.ents) > len(x.slots) {
		x.grow()
	}
	return nil
}

// grow doubles the table, keeping it at most half full.
func (x *keyIndex) grow() {
	x.slots = make([]int32, 2*len(x.slots))
	for j := range x.ents {
		e := &x.ents[j]
		x.slots[x.slot(x.arena[e.off:e.off+e.n], int64(e.repeat))] = int32(j + 1)
	}
}

// last returns the ordinal of the key's last line.
func (x *keyIndex) last(id []byte, repeat int64) (uint64, bool) {
	if s := x.slots[x.slot(id, repeat)]; s != 0 {
		return uint64(x.ents[s-1].last), true
	}
	return 0, false
}
