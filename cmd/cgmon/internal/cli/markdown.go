package cli

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"sort"
	"strings"

	"github.com/cgmon/cgmon/metrics"
)

// The Markdown reports are written for CI job summaries
// ($GITHUB_STEP_SUMMARY, GitLab and Forgejo): GitHub-flavoured tables, no
// HTML, no images. Every string that came from the user (id, language,
// command, reasons that quote them) is put in a code span or escaped, so
// that it cannot open a link, a heading or a new table row.

// statusIcons marks each status in headings and tables.
var statusIcons = map[metrics.Status]string{
	metrics.StatusSuccess:       "✅",
	metrics.StatusError:         "❌",
	metrics.StatusSignaled:      "⚡",
	metrics.StatusTimeout:       "⏱️",
	metrics.StatusCPUTimeout:    "⌛",
	metrics.StatusOOM:           "💥",
	metrics.StatusCanceled:      "⏹️",
	metrics.StatusFailedToStart: "🚫",
	metrics.StatusEnded:         "⏹️",
}

// statusIcon returns the mark of status s, a question mark for one it does
// not know.
func statusIcon(s metrics.Status) string {
	if i, ok := statusIcons[s]; ok {
		return i
	}
	return "❔"
}

// mdCode renders s as a Markdown code span. In a table cell (inTable) a
// '|' is escaped as "\|", which GitHub removes again inside code spans.
func mdCode(s string, inTable bool) string {
	s = escapeControls(s)
	if inTable {
		s = strings.ReplaceAll(s, "|", `\|`)
	}
	// The fence is one backtick longer than the longest run inside.
	longest, run := 0, 0
	for i := 0; i < len(s); i++ {
		if s[i] == '`' {
			run++
			longest = max(longest, run)
		} else {
			run = 0
		}
	}
	fence := strings.Repeat("`", longest+1)
	if s == "" || s[0] == '`' || s[len(s)-1] == '`' || s[0] == ' ' && s[len(s)-1] == ' ' {
		s = " " + s + " "
	}
	return fence + s + fence
}

// mdText escapes s as Markdown text on one line: every ASCII punctuation
// character that could start markup is backslash-escaped and '&' becomes
// an entity.
func mdText(s string) string {
	s = oneLine(escapeControls(s))
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '&':
			b.WriteString("&amp;")
		case strings.ContainsRune("\\`*_[]<>|#~!", r):
			b.WriteByte('\\')
			b.WriteRune(r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// mdSeconds renders seconds for the Markdown tables.
func mdSeconds(s float64) string { return fmt.Sprintf("%.3f s", s) }

// WriteMarkdown writes the report as a compact Markdown section for a CI
// job summary: the status and reason first, then wall time, CPU, memory
// peak and processes with their sources, the limits, and the CPU and
// memory timeline of samples as sparklines. It ends with an empty line, so
// that reports appended to one file stay apart, and is written in one
// write, so that reports appended at once by several processes do not
// interleave.
func (r *Report) WriteMarkdown(w io.Writer, samples []metrics.Sample) error {
	bw := &bytes.Buffer{}
	status := string(r.Status)
	if r.Status == metrics.StatusSignaled && r.SignalName != "" {
		status += " (" + r.SignalName + ")"
	}
	fmt.Fprintf(bw, "### %s %s: %s\n\n", statusIcon(r.Status), status, mdCode(shorten(shellQuote(r.Command), maxHeadingCommand), false))
	if r.Reason != "" {
		fmt.Fprintf(bw, "**Reason:** %s\n\n", mdText(r.Reason))
	}
	var facts []string
	switch {
	case r.ExitCode >= 0:
		facts = append(facts, fmt.Sprintf("exit code %d", r.ExitCode))
	case r.Status == metrics.StatusEnded:
		facts = append(facts, "exit code unknown (not cgmon's child)")
	default:
		facts = append(facts, "no exit code")
	}
	facts = append(facts,
		"id "+mdCode(r.ID, false),
		"language "+mdCode(r.Language, false),
		"backend "+mdCode(string(r.Backend), false))
	if r.OOMKilled && r.Status != metrics.StatusOOM {
		facts = append(facts, "a process was OOM-killed")
	}
	if r.LeftoverProcessesKilled > 0 {
		facts = append(facts, fmt.Sprintf("%d leftover processes killed", r.LeftoverProcessesKilled))
	}
	fmt.Fprintf(bw, "%s\n\n", strings.Join(facts, " · "))

	fmt.Fprintf(bw, "| metric | value | source |\n|:--|:--|:--|\n")
	row := func(label, value string, keys ...string) {
		var srcs, why []string
		for _, k := range keys {
			if s, ok := r.Sources[k]; ok {
				if !containsString(srcs, s) {
					srcs = append(srcs, s)
				}
			} else if reason, ok := r.Unavailable[k]; ok && !containsString(why, reason) {
				why = append(why, reason)
			}
		}
		var cell []string
		for _, s := range srcs {
			cell = append(cell, mdCode(s, true))
		}
		for _, reason := range why {
			cell = append(cell, "*"+mdText(reason)+"*")
		}
		fmt.Fprintf(bw, "| %s | %s | %s |\n", label, value, strings.Join(cell, ", "))
	}
	na := "n/a"
	if v := r.ExecutionTimeSeconds; v != nil {
		row("Wall time", mdSeconds(*v), "execution_time_seconds")
	} else {
		row("Wall time", na, "execution_time_seconds")
	}
	if v := r.CPUTotalSeconds; v != nil {
		s := mdSeconds(*v)
		if r.CPUUserSeconds != nil && r.CPUSystemSeconds != nil {
			s += fmt.Sprintf(" (user %s, system %s)", mdSeconds(*r.CPUUserSeconds), mdSeconds(*r.CPUSystemSeconds))
		}
		row("CPU time", s, "cpu_total_seconds")
	} else {
		row("CPU time", na, "cpu_total_seconds")
	}
	pct := func(v *float64) string {
		if v == nil {
			return na
		}
		return fmt.Sprintf("%.1f %%", *v)
	}
	row("CPU average / peak", pct(r.CPUAveragePercent)+" / "+pct(r.CPUPeakPercent), "cpu_average_percent", "cpu_peak_percent")
	if v := r.MemoryPeakBytes; v != nil {
		s := FormatSize(*v)
		if l := r.memoryLimit(); l > 0 {
			s += fmt.Sprintf(" (%.0f %% of memory.max %s)", float64(*v)/float64(l)*100, FormatSize(uint64(l)))
		}
		row("Memory peak", s, "memory_peak_bytes")
	} else {
		row("Memory peak", na, "memory_peak_bytes")
	}
	if v := r.PidsPeak; v != nil {
		s := fmt.Sprint(*v)
		if r.Limits != nil && r.Limits.Pids != nil && r.Limits.Pids.Limit != nil && *r.Limits.Pids.Limit > 0 {
			s += fmt.Sprintf(" (pids.max %d)", *r.Limits.Pids.Limit)
		}
		row("Processes (peak)", s, "pids_peak")
	} else {
		row("Processes (peak)", na, "pids_peak")
	}
	// I/O and throttling are shown only where they were measured: the
	// JSON report has every field, the summary stays compact.
	if r.IOReadBytes != nil && r.IOWriteBytes != nil {
		row("I/O read / written", FormatSize(*r.IOReadBytes)+" / "+FormatSize(*r.IOWriteBytes), "io_read_bytes", "io_write_bytes")
	}
	if v := r.CPUThrottledSeconds; v != nil {
		row("CPU throttled", mdSeconds(*v), "cpu_throttled_seconds")
	}
	fmt.Fprintf(bw, "\n**Limits:** %s\n\n", mdText(describeLimits(r.Limits)))
	writeTimeline(bw, samples)
	_, err := w.Write(bw.Bytes())
	return err
}

// maxHeadingCommand is the most characters of the command a heading shows.
const maxHeadingCommand = 80

// shorten cuts s to at most n characters, ending it with "…" when cut.
func shorten(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

// memoryLimit returns the memory.max of the report's limits in bytes, 0
// when there is none.
func (r *Report) memoryLimit() int64 {
	if r.Limits == nil || r.Limits.Memory == nil || r.Limits.Memory.Limit == nil {
		return 0
	}
	return max(*r.Limits.Memory.Limit, 0)
}

// containsString reports whether list holds s.
func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// writeTimeline writes the CPU % and memory of samples as sparklines in a
// table, each scaled from 0 to its highest sample.
func writeTimeline(w io.Writer, samples []metrics.Sample) {
	if len(samples) == 0 {
		fmt.Fprintf(w, "**Timeline:** none (the execution ended before the first sample)\n\n")
		return
	}
	// Both lines have one value per sample, so that they share the time
	// axis; a sample without memory leaves a gap.
	cpu := make([]float64, len(samples))
	mem := make([]float64, len(samples))
	cpuMax, memMax, memSamples := 0.0, 0.0, 0
	for i, s := range samples {
		cpu[i] = s.CPUPercent
		cpuMax = max(cpuMax, s.CPUPercent)
		mem[i] = math.NaN()
		if s.MemoryValid {
			mem[i] = float64(s.Memory)
			memMax = max(memMax, mem[i])
			memSamples++
		}
	}
	span := samples[len(samples)-1].Elapsed.Seconds()
	per := ""
	if len(samples) > maxSparkWidth {
		per = fmt.Sprintf("; a character is the highest of about %d samples", (len(samples)+maxSparkWidth-1)/maxSparkWidth)
	}
	fmt.Fprintf(w, "**Timeline:** %d samples over %s%s\n\n", len(samples), mdSeconds(span), per)
	fmt.Fprintf(w, "| | 0 → %s | highest |\n|:--|:--|--:|\n", mdSeconds(span))
	// Plain text, not code spans: browsers draw the blocks taller in the
	// body font than in the smaller code font.
	fmt.Fprintf(w, "| CPU %% | %s | %.1f %% |\n", sparkline(cpu, cpuMax, maxSparkWidth), cpuMax)
	if memSamples == 0 {
		fmt.Fprintf(w, "| Memory | *not sampled* | |\n")
	} else {
		fmt.Fprintf(w, "| Memory | %s | %s |\n", sparkline(mem, memMax, maxSparkWidth), FormatSize(uint64(memMax)))
	}
	fmt.Fprintln(w)
}

// WriteMarkdown writes the summary and the per-language table of a batch
// as Markdown: the counts by status first, then the execution time,
// memory peak and CPU time, then one table row per language.
func (r *BatchResult) WriteMarkdown(w io.Writer) error {
	bw := &bytes.Buffer{}
	writeStatsMarkdown(bw, "cgmon batch", r.Summary, r.Languages)
	// What went wrong, in the words of the human summary.
	if len(r.BadLines) > 0 {
		var ls []string
		for _, b := range r.BadLines {
			ls = append(ls, fmt.Sprint(b.Line))
		}
		fmt.Fprintf(bw, "**Rejected input lines** (not run): %d (line %s)\n\n", len(r.BadLines), strings.Join(ls, ", "))
	}
	if r.Interrupted {
		by := ""
		if r.InterruptedBy != "" {
			by = " by " + r.InterruptedBy
		}
		fmt.Fprintf(bw, "**Interrupted%s:** running executions were killed (status canceled) and the rest of the input was not read.\n\n", by)
	}
	if r.InputError != "" {
		fmt.Fprintf(bw, "**Input failed:** %s; the rest of the input was not read.\n\n", mdText(r.InputError))
	}
	if r.OutputError != "" {
		fmt.Fprintf(bw, "**Output failed:** %s; %d results were not written, running executions were killed and the rest of the input was not read.\n\n", mdText(r.OutputError), r.ResultsLost)
	}
	if r.CleanupError != "" {
		fmt.Fprintf(bw, "**Cleanup failed:** %s\n\n", mdText(r.CleanupError))
	}
	if r.TextfileError != "" {
		fmt.Fprintf(bw, "**Textfile failed:** %s\n\n", mdText(r.TextfileError))
	}
	_, err := w.Write(bw.Bytes())
	return err
}

// writeStatsMarkdown writes a heading, the statistics over every execution
// and the per-language table.
func writeStatsMarkdown(w io.Writer, title string, s metrics.Summary, langs map[string]metrics.LanguageStats) {
	icon := statusIcon(metrics.StatusSuccess)
	if s.ErrorCount > 0 {
		icon = statusIcon(metrics.StatusError)
	}
	fmt.Fprintf(w, "### %s %s: %d executions, %.1f %% success\n\n", icon, title, s.TotalExecutions, s.SuccessRate*100)
	var st []string
	for _, k := range metrics.Statuses {
		if n := s.StatusCounts[k]; n > 0 {
			st = append(st, fmt.Sprintf("%s %s %d", statusIcon(k), k, n))
		}
	}
	if len(st) > 0 {
		fmt.Fprintf(w, "%s\n\n", strings.Join(st, " · "))
	}
	fmt.Fprintf(w, "| | total | average | p50 | p95 | p99 | max | measured |\n|:--|--:|--:|--:|--:|--:|--:|--:|\n")
	fmt.Fprintf(w, "| Execution time | %s | %s | %s | %s | %s | %s | %d |\n",
		mdSeconds(s.TotalExecutionTime), mdSeconds(s.AverageExecutionTime),
		optSeconds(s.P50ExecutionTime), optSeconds(s.P95ExecutionTime), optSeconds(s.P99ExecutionTime), optSeconds(s.MaxExecutionTime),
		s.TotalExecutions)
	fmt.Fprintf(w, "| Memory peak | | %s | | | | %s | %d |\n",
		optBytes(s.AverageMemoryPeakBytes), optSize(s.MaxMemoryPeakBytes), s.MemoryPeakCount)
	cpu := "-"
	if s.TotalCPUSeconds != nil {
		cpu = mdSeconds(*s.TotalCPUSeconds)
	}
	fmt.Fprintf(w, "| CPU time | %s | | | | | | %d |\n\n", cpu, s.CPUCount)
	if s.OOMCount > 0 || s.TimeoutCount > 0 {
		fmt.Fprintf(w, "OOM-killed: %d · timed out: %d\n\n", s.OOMCount, s.TimeoutCount)
	}
	if len(langs) == 0 {
		return
	}
	// Units in the headers, not the cells, so that the table stays narrow
	// enough not to wrap.
	fmt.Fprintf(w, "| language | count | success | p50 s | p95 s | max s | avg mem MiB | max mem MiB | CPU s |\n")
	fmt.Fprintf(w, "|:--|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	names := make([]string, 0, len(langs))
	for n := range langs {
		names = append(names, n)
	}
	sort.Strings(names)
	num := func(v *float64, scale float64, format string) string {
		if v == nil {
			return "-"
		}
		return fmt.Sprintf(format, *v/scale)
	}
	for _, n := range names {
		l := langs[n]
		var maxMem *float64
		if l.MaxMemoryPeakBytes != nil {
			m := float64(*l.MaxMemoryPeakBytes)
			maxMem = &m
		}
		fmt.Fprintf(w, "| %s | %d | %d (%.1f %%) | %s | %s | %s | %s | %s | %s |\n",
			mdCode(n, true), l.Count, l.SuccessCount, l.SuccessRate*100,
			num(l.P50ExecutionTime, 1, "%.3f"), num(l.P95ExecutionTime, 1, "%.3f"), num(l.MaxExecutionTime, 1, "%.3f"),
			num(l.AverageMemoryPeakBytes, mib, "%.1f"), num(maxMem, mib, "%.1f"), num(l.TotalCPUSeconds, 1, "%.3f"))
	}
	fmt.Fprintln(w)
}

// optSize renders an optional number of bytes in MiB, "-" when absent.
func optSize(v *uint64) string {
	if v == nil {
		return "-"
	}
	f := float64(*v)
	return optBytes(&f)
}
