package cli

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/cgmon/cgmon/metrics"
)

// SchemaVersion is the version of the JSON report's schema.
const SchemaVersion = 2

// mib is one MiB in bytes; the report's "MB" means MiB, as in the original
// module.
const mib = 1 << 20

// Report is the JSON report of one execution (schema_version 2). Every
// number that could not be measured is null, and its key is in Unavailable
// with the reason; every measured one has its key in Sources.
type Report struct {
	SchemaVersion int `json:"schema_version"`
	// InputLine is the line of a batch's input the execution came from;
	// absent for `cgmon run`.
	InputLine               int            `json:"input_line,omitempty"`
	ID                      string         `json:"id"`
	Language                string         `json:"language"`
	CodeLength              int            `json:"code_length"`
	Command                 []string       `json:"command"`
	Status                  metrics.Status `json:"status"`
	Reason                  string         `json:"reason,omitempty"`
	ExitCode                int            `json:"exit_code"`
	Signal                  int            `json:"signal"`
	SignalName              string         `json:"signal_name,omitempty"`
	TimedOut                bool           `json:"timed_out"`
	OOMKilled               bool           `json:"oom_killed"`
	LeftoverProcessesKilled int            `json:"leftover_processes_killed"`
	EscapedProcessesKilled  int            `json:"escaped_processes_killed"`
	StartedAt               time.Time      `json:"started_at"`
	EndedAt                 time.Time      `json:"ended_at"`
	// ExecutionTimeSeconds is the wall time, in seconds.
	ExecutionTimeSeconds *float64 `json:"execution_time_seconds"`
	// CPUUserSeconds, CPUSystemSeconds and CPUTotalSeconds are CPU times,
	// in seconds.
	CPUUserSeconds   *float64 `json:"cpu_user_seconds"`
	CPUSystemSeconds *float64 `json:"cpu_system_seconds"`
	CPUTotalSeconds  *float64 `json:"cpu_total_seconds"`
	CPUSamples       *int     `json:"cpu_samples"`
	// CPUAveragePercent and CPUPeakPercent are in percent of one CPU.
	CPUAveragePercent *float64 `json:"cpu_average_percent"`
	CPUPeakPercent    *float64 `json:"cpu_peak_percent"`
	// MemoryStartMB and MemoryPeakMB are in MiB (2^20 bytes).
	MemoryStartMB   *float64 `json:"memory_start_mb"`
	MemoryPeakMB    *float64 `json:"memory_peak_mb"`
	MemoryPeakBytes *uint64  `json:"memory_peak_bytes"`
	PidsPeak        *uint64  `json:"pids_peak"`
	// IOReadBytes and IOWriteBytes are in bytes.
	IOReadBytes  *uint64 `json:"io_read_bytes"`
	IOWriteBytes *uint64 `json:"io_write_bytes"`
	// CPUThrottledSeconds is the time throttled by cpu.max, in seconds.
	CPUThrottledSeconds *float64 `json:"cpu_throttled_seconds"`
	// CPUSamplesDropped counts sampling intervals whose CPU time exceeded
	// what the execution's CPUs can give: not reported in the peak.
	CPUSamplesDropped *int `json:"cpu_samples_dropped"`
	// CPUWaitSeconds, MemoryWaitSeconds and IOWaitSeconds are how long
	// some of the execution's tasks waited for a CPU, for memory and for
	// I/O (PSI), in seconds.
	CPUWaitSeconds    *float64 `json:"cpu_wait_seconds"`
	MemoryWaitSeconds *float64 `json:"memory_wait_seconds"`
	IOWaitSeconds     *float64 `json:"io_wait_seconds"`
	// MemoryProcessPeakBytes is the largest single process's peak RSS (what
	// time -v prints); MemoryAnonPeakBytes the sampled anonymous memory of
	// the cgroup, a lower bound; MemoryFileAtEndBytes, MemoryShmemAtEndBytes
	// and MemoryKernelAtEndBytes how much of the cgroup's charge was page
	// cache, tmpfs and shared memory, and kernel memory once it ended. In
	// bytes.
	MemoryProcessPeakBytes *uint64           `json:"memory_process_peak_bytes"`
	MemoryAnonPeakBytes    *uint64           `json:"memory_anon_peak_bytes"`
	MemoryFileAtEndBytes   *uint64           `json:"memory_file_at_end_bytes"`
	MemoryShmemAtEndBytes  *uint64           `json:"memory_shmem_at_end_bytes"`
	MemoryKernelAtEndBytes *uint64           `json:"memory_kernel_at_end_bytes"`
	Backend                metrics.Backend   `json:"backend"`
	Sources                map[string]string `json:"sources"`
	Unavailable            map[string]string `json:"unavailable"`
	// LowerBounds holds, for a number that is only a lower bound, its key
	// and the reason (e.g. a process took CPU time out of the cgroup).
	LowerBounds map[string]string     `json:"lower_bounds,omitempty"`
	Limits      *specs.LinuxResources `json:"limits"`
}

// reportKeys maps a metrics.Usage field name to the report keys it fills.
var reportKeys = map[metrics.Metric][]string{
	"execution_time":       {"execution_time_seconds"},
	"cpu_user":             {"cpu_user_seconds"},
	"cpu_system":           {"cpu_system_seconds"},
	"cpu_total":            {"cpu_total_seconds"},
	"cpu_samples":          {"cpu_samples"},
	"cpu_average_percent":  {"cpu_average_percent"},
	"cpu_peak_percent":     {"cpu_peak_percent"},
	"memory_start":         {"memory_start_mb"},
	"memory_peak":          {"memory_peak_mb", "memory_peak_bytes"},
	"pids_peak":            {"pids_peak"},
	"io_read":              {"io_read_bytes"},
	"io_write":             {"io_write_bytes"},
	"cpu_throttled":        {"cpu_throttled_seconds"},
	"cpu_samples_dropped":  {"cpu_samples_dropped"},
	"cpu_wait":             {"cpu_wait_seconds"},
	"memory_wait":          {"memory_wait_seconds"},
	"io_wait":              {"io_wait_seconds"},
	"memory_process_peak":  {"memory_process_peak_bytes"},
	"memory_anon_peak":     {"memory_anon_peak_bytes"},
	"memory_file_at_end":   {"memory_file_at_end_bytes"},
	"memory_shmem_at_end":  {"memory_shmem_at_end_bytes"},
	"memory_kernel_at_end": {"memory_kernel_at_end_bytes"},
}

// ReportKeys returns the report keys filled from the metrics.Usage field
// name (as in Usage.Fields), the name itself for a field it does not know.
func ReportKeys(field metrics.Metric) []string {
	if k, ok := reportKeys[field]; ok {
		return k
	}
	return []string{string(field)}
}

func round(v float64, places int) float64 {
	p := math.Pow(10, float64(places))
	return math.Round(v*p) / p
}

func seconds(m metrics.Measure[time.Duration]) *float64 {
	v, ok := m.Get()
	if !ok {
		return nil
	}
	s := v.Seconds()
	return &s
}

func percent(m metrics.Measure[float64]) *float64 {
	v, ok := m.Get()
	if !ok {
		return nil
	}
	r := round(v, 2)
	return &r
}

func megabytes(m metrics.Measure[uint64]) *float64 {
	v, ok := m.Get()
	if !ok {
		return nil
	}
	r := round(float64(v)/mib, 3)
	return &r
}

func count[T uint64 | int](m metrics.Measure[T]) *T {
	v, ok := m.Get()
	if !ok {
		return nil
	}
	return &v
}

// signalName returns e.g. "SIGKILL" for 9, "" for 0.
func signalName(n int) string {
	if n <= 0 {
		return ""
	}
	if s := unix.SignalName(unix.Signal(n)); s != "" {
		return s
	}
	return fmt.Sprintf("signal %d", n)
}

// NewReport builds the report of ex.
func NewReport(ex *metrics.Execution) *Report {
	u := &ex.Usage
	r := &Report{
		SchemaVersion:           SchemaVersion,
		ID:                      ex.ID,
		Language:                ex.Language,
		CodeLength:              ex.CodeLength,
		Command:                 ex.Command,
		Status:                  ex.Status,
		Reason:                  ex.Reason,
		ExitCode:                ex.ExitCode,
		Signal:                  ex.Signal,
		SignalName:              signalName(ex.Signal),
		TimedOut:                ex.TimedOut,
		OOMKilled:               ex.OOMKilled,
		LeftoverProcessesKilled: ex.LeftoverProcessesKilled,
		EscapedProcessesKilled:  ex.EscapedProcessesKilled,
		StartedAt:               ex.StartedAt.Round(0),
		EndedAt:                 ex.EndedAt.Round(0),
		ExecutionTimeSeconds:    seconds(u.WallTime),
		CPUUserSeconds:          seconds(u.CPUUser),
		CPUSystemSeconds:        seconds(u.CPUSystem),
		CPUTotalSeconds:         seconds(u.CPUTotal),
		CPUSamples:              count(u.CPUSamples),
		CPUAveragePercent:       percent(u.CPUAveragePercent),
		CPUPeakPercent:          percent(u.CPUPeakPercent),
		MemoryStartMB:           megabytes(u.MemoryStart),
		MemoryPeakMB:            megabytes(u.MemoryPeak),
		MemoryPeakBytes:         count(u.MemoryPeak),
		PidsPeak:                count(u.PidsPeak),
		IOReadBytes:             count(u.IORead),
		IOWriteBytes:            count(u.IOWrite),
		CPUThrottledSeconds:     seconds(u.CPUThrottled),
		CPUSamplesDropped:       count(u.CPUSamplesDropped),
		CPUWaitSeconds:          seconds(u.CPUWait),
		MemoryWaitSeconds:       seconds(u.MemoryWait),
		IOWaitSeconds:           seconds(u.IOWait),
		MemoryProcessPeakBytes:  count(u.MemoryProcessPeak),
		MemoryAnonPeakBytes:     count(u.MemoryAnonPeak),
		MemoryFileAtEndBytes:    count(u.MemoryFileAtEnd),
		MemoryShmemAtEndBytes:   count(u.MemoryShmemAtEnd),
		MemoryKernelAtEndBytes:  count(u.MemoryKernelAtEnd),
		Backend:                 ex.Backend,
		Sources:                 map[string]string{},
		Unavailable:             map[string]string{},
		Limits:                  ex.Limits,
	}
	if r.Command == nil {
		r.Command = []string{}
	}
	for m, why := range ex.LowerBounds {
		if r.LowerBounds == nil {
			r.LowerBounds = map[string]string{}
		}
		for _, k := range ReportKeys(m) {
			r.LowerBounds[k] = why
		}
	}
	for _, f := range u.Fields() {
		for _, k := range ReportKeys(f.Name) {
			if f.Valid {
				r.Sources[k] = string(f.Source)
			} else {
				reason := f.Reason
				if reason == "" {
					reason = "not measured (no reason given)"
				}
				r.Unavailable[k] = reason
			}
		}
	}
	return r
}

// WriteJSON writes the report as one JSON object and a newline.
func (r *Report) WriteJSON(w io.Writer) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// WriteHuman writes the report the way `time -v` does: the status and any
// reason first, then one aligned line per quantity with its unit and the
// source it came from.
func (r *Report) WriteHuman(w io.Writer) error {
	// One write for the whole report: tabwriter writes every cell apart.
	bw := bufio.NewWriterSize(w, 4096)
	tw := tabwriter.NewWriter(bw, 0, 0, 2, ' ', 0)
	line := func(label, value, note string) {
		if note == "" {
			fmt.Fprintf(tw, "%s:\t%s\n", label, value)
			return
		}
		fmt.Fprintf(tw, "%s:\t%s\t%s\n", label, value, note)
	}
	src := func(key string) string {
		s, ok := r.Sources[key]
		if !ok {
			return ""
		}
		if _, ok := r.LowerBounds[key]; ok {
			return "[" + s + "] (a lower bound: see below)"
		}
		return "[" + s + "]"
	}
	// An unavailable number is "n/a" with its reason in the note column.
	unavailable := func(label, key string) {
		reason := r.Unavailable[key]
		if reason == "" {
			reason = "not measured"
		}
		line(label, "n/a", "("+printable(reason)+")")
	}
	status := string(r.Status)
	switch {
	case r.Status == metrics.StatusSignaled && r.SignalName != "":
		status += " (" + r.SignalName + ")"
	case r.Status == metrics.StatusOOM:
		status += " (killed by the kernel's OOM killer)"
	case r.Status == metrics.StatusCPUTimeout:
		status += " (CPU-time limit: Time Limit Exceeded)"
	}
	line("Status", status, "")
	if r.Reason != "" {
		line("Reason", printable(r.Reason), "")
	}
	exit := fmt.Sprint(r.ExitCode)
	switch {
	case r.ExitCode >= 0:
	case r.Status == metrics.StatusEnded:
		exit = "unknown (the target is not cgmon's child)"
	case r.Status == metrics.StatusCanceled && r.attached():
		exit = "none (the target still ran when watching stopped)"
	default:
		exit = "none (did not exit normally)"
	}
	line("Exit code", exit, "")
	if r.Signal != 0 {
		line("Signal", fmt.Sprintf("%d (%s)", r.Signal, r.SignalName), "")
	}
	line("Command", shellQuote(r.Command), "")
	line("ID", printable(r.ID), "")
	line("Language", printable(r.Language), "")
	line("Code length", fmt.Sprintf("%d bytes", r.CodeLength), "")
	line("Backend", string(r.Backend), "")
	line("Started", r.StartedAt.Format(time.RFC3339Nano), "")
	line("Ended", r.EndedAt.Format(time.RFC3339Nano), "")

	secs := func(label, key string, v *float64) {
		if v == nil {
			unavailable(label, key)
			return
		}
		line(label, fmt.Sprintf("%.6f s", *v), src(key))
	}
	pct := func(label, key string, v *float64) {
		if v == nil {
			unavailable(label, key)
			return
		}
		line(label, fmt.Sprintf("%.2f %%", *v), src(key))
	}
	num := func(label, key, unit string, v *uint64) {
		if v == nil {
			unavailable(label, key)
			return
		}
		s := fmt.Sprint(*v)
		if unit != "" {
			s += " " + unit
		}
		line(label, s, src(key))
	}
	secs("Elapsed (wall clock) time", "execution_time_seconds", r.ExecutionTimeSeconds)
	secs("User CPU time", "cpu_user_seconds", r.CPUUserSeconds)
	secs("System CPU time", "cpu_system_seconds", r.CPUSystemSeconds)
	secs("Total CPU time", "cpu_total_seconds", r.CPUTotalSeconds)
	pct("Average CPU (of one CPU)", "cpu_average_percent", r.CPUAveragePercent)
	pct("Peak CPU (per interval)", "cpu_peak_percent", r.CPUPeakPercent)
	if r.CPUSamples == nil {
		unavailable("CPU samples", "cpu_samples")
	} else {
		line("CPU samples", fmt.Sprint(*r.CPUSamples), src("cpu_samples"))
	}
	if r.MemoryStartMB == nil {
		unavailable("Memory at start", "memory_start_mb")
	} else {
		line("Memory at start", fmt.Sprintf("%.3f MiB", *r.MemoryStartMB), src("memory_start_mb"))
	}
	if r.MemoryPeakBytes == nil {
		unavailable("Maximum memory (peak)", "memory_peak_bytes")
	} else {
		line("Maximum memory (peak)", fmt.Sprintf("%.3f MiB (%d bytes)", float64(*r.MemoryPeakBytes)/mib, *r.MemoryPeakBytes), src("memory_peak_bytes"))
	}
	num("Peak processes", "pids_peak", "", r.PidsPeak)
	num("I/O read", "io_read_bytes", "bytes", r.IOReadBytes)
	num("I/O written", "io_write_bytes", "bytes", r.IOWriteBytes)
	secs("CPU throttled time", "cpu_throttled_seconds", r.CPUThrottledSeconds)
	if r.CPUSamplesDropped == nil {
		unavailable("CPU samples dropped", "cpu_samples_dropped")
	} else if *r.CPUSamplesDropped > 0 {
		line("CPU samples dropped", fmt.Sprint(*r.CPUSamplesDropped), "(more CPU time than the CPUs could give over the interval: the counter lagged the clock)")
	}
	secs("Waiting for a CPU", "cpu_wait_seconds", r.CPUWaitSeconds)
	secs("Waiting for memory", "memory_wait_seconds", r.MemoryWaitSeconds)
	secs("Waiting for I/O", "io_wait_seconds", r.IOWaitSeconds)
	mem := func(label, key string, v *uint64) {
		if v == nil {
			unavailable(label, key)
			return
		}
		line(label, fmt.Sprintf("%.3f MiB", float64(*v)/mib), src(key))
	}
	mem("Largest process peak", "memory_process_peak_bytes", r.MemoryProcessPeakBytes)
	mem("Anon memory (lower bound)", "memory_anon_peak_bytes", r.MemoryAnonPeakBytes)
	mem("Page cache at end", "memory_file_at_end_bytes", r.MemoryFileAtEndBytes)
	mem("Shared memory at end", "memory_shmem_at_end_bytes", r.MemoryShmemAtEndBytes)
	mem("Kernel memory at end", "memory_kernel_at_end_bytes", r.MemoryKernelAtEndBytes)
	line("Timed out", yesNo(r.TimedOut), "")
	line("OOM killed", yesNo(r.OOMKilled), "")
	line("Leftover processes killed", fmt.Sprint(r.LeftoverProcessesKilled), "")
	if r.EscapedProcessesKilled > 0 {
		line("Escaped processes killed", fmt.Sprint(r.EscapedProcessesKilled), "(they had moved out of the execution's cgroup)")
	}
	if len(r.LowerBounds) > 0 {
		var why []string
		for _, k := range slices.Sorted(maps.Keys(r.LowerBounds)) {
			if w := r.LowerBounds[k]; !slices.Contains(why, w) {
				why = append(why, w)
			}
		}
		line("Lower bounds", strings.Join(why, "; "), "")
	}
	line("Limits", describeLimits(r.Limits), "")
	for _, n := range r.notes() {
		line("Note", n, "")
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	return bw.Flush()
}

// busyShare is the share of the wall time spent waiting for a CPU above
// which the report warns that the host was busy.
const busyShare = 0.10

// notes are the report's warnings about its own numbers: a busy host
// (the wall time says less about the program) and a memory peak made
// mostly of what no process held (page cache, tmpfs).
func (r *Report) notes() []string {
	var out []string
	if r.CPUWaitSeconds != nil && r.ExecutionTimeSeconds != nil && *r.ExecutionTimeSeconds > 0 {
		if share := *r.CPUWaitSeconds / *r.ExecutionTimeSeconds; share > busyShare {
			out = append(out, fmt.Sprintf("the host was busy: %.0f%% of the wall time was spent waiting for a CPU", share*100))
		}
	}
	if s := r.memoryMakeup(); s != "" {
		out = append(out, s)
	}
	return out
}

// memoryMakeup says what the memory peak is made of when the largest
// process held less than half of it: "301.0 MiB charged, of which 299.0
// MiB page cache; largest process 1.7 MiB".
func (r *Report) memoryMakeup() string {
	if r.MemoryPeakBytes == nil || !strings.HasPrefix(r.Sources["memory_peak_bytes"], "cgroup2:") {
		return ""
	}
	// The largest process's maxrss, or where cgmon could not tell it from
	// its own (see memory_process_peak_bytes), the sampled anon memory.
	own, what := r.MemoryProcessPeakBytes, "largest process"
	if own == nil {
		own, what = r.MemoryAnonPeakBytes, "anonymous memory at least"
	}
	if own == nil {
		return ""
	}
	peak, proc := *r.MemoryPeakBytes, *own
	if peak < 8*mib || proc*2 >= peak {
		return ""
	}
	s := fmt.Sprintf("%.1f MiB charged", float64(peak)/mib)
	var parts []string
	if v := r.MemoryFileAtEndBytes; v != nil && *v > 0 {
		p := fmt.Sprintf("%.1f MiB page cache", float64(*v)/mib)
		if sh := r.MemoryShmemAtEndBytes; sh != nil && *sh > 0 {
			p += fmt.Sprintf(" (%.1f MiB tmpfs or shared memory)", float64(*sh)/mib)
		}
		parts = append(parts, p)
	}
	if v := r.MemoryKernelAtEndBytes; v != nil && *v > mib {
		parts = append(parts, fmt.Sprintf("%.1f MiB kernel", float64(*v)/mib))
	}
	if len(parts) > 0 {
		s += ", of which at the end " + strings.Join(parts, " and ")
	}
	return s + fmt.Sprintf("; %s %.1f MiB", what, float64(proc)/mib)
}

// attached reports whether the record is of a target that `cgmon watch`
// attached to (its command is "pid:N" or "cgroup:PATH") rather than ran.
func (r *Report) attached() bool {
	return len(r.Command) == 1 && (strings.HasPrefix(r.Command[0], "pid:") || strings.HasPrefix(r.Command[0], "cgroup:"))
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// unprintable reports whether r must not be printed as it is on a line
// of a report: a control character (C0, DEL, C1), a bidirectional
// formatting character, or anything else that is not a graphic character
// or the ASCII space.
func unprintable(r rune) bool {
	return !unicode.IsPrint(r) || unicode.Is(unicode.Bidi_Control, r)
}

// controlChar reports whether r is a control character or a
// bidirectional formatting character: what escapeControls escapes.
func controlChar(r rune) bool {
	return unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r)
}

// printable returns s for a line of a human report: s itself when every
// character is printable, else s quoted as a Go string ("x\nStatus:
// success"), so that text that came from the user (an id, a language, a
// path in a reason) can neither start a line of its own nor send an
// escape sequence to the terminal.
func printable(s string) string {
	if utf8.ValidString(s) && strings.IndexFunc(s, unprintable) < 0 {
		return s
	}
	return strconv.Quote(s)
}

// escapeControls returns s with each control character, bidirectional
// formatting character and byte that is not UTF-8 written as Go writes it
// in a string literal (\n, \x1b, \u202e, \xff); the rest is left as it
// is. Diagnostics go through it (oneLine).
func escapeControls(s string) string {
	if utf8.ValidString(s) && strings.IndexFunc(s, controlChar) < 0 {
		return s
	}
	var b strings.Builder
	for len(s) > 0 {
		r, n := utf8.DecodeRuneInString(s)
		switch {
		case r == utf8.RuneError && n == 1:
			fmt.Fprintf(&b, `\x%02x`, s[0])
		case controlChar(r):
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
		default:
			b.WriteString(s[:n])
		}
		s = s[n:]
	}
	return b.String()
}

// ansiCQuote quotes s as bash's $'...', so that control characters stay
// on one line and reach no terminal: they, and bytes that are not UTF-8,
// are written as escapes that bash reads back.
func ansiCQuote(s string) string {
	var b strings.Builder
	b.WriteString("$'")
	for len(s) > 0 {
		r, n := utf8.DecodeRuneInString(s)
		switch {
		case r == '\\' || r == '\'':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == utf8.RuneError && n == 1:
			fmt.Fprintf(&b, `\x%02x`, s[0])
		case r < 0x80 && unprintable(r):
			fmt.Fprintf(&b, `\x%02x`, r)
		case unprintable(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteString(s[:n])
		}
		s = s[n:]
	}
	b.WriteByte('\'')
	return b.String()
}

// shellQuote renders argv so that a shell would read it back.
func shellQuote(argv []string) string {
	out := make([]string, len(argv))
	for i, a := range argv {
		if a != "" && strings.IndexFunc(a, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./=:,+@%", r))
		}) < 0 {
			out[i] = a
			continue
		}
		if !utf8.ValidString(a) || strings.IndexFunc(a, unprintable) >= 0 {
			out[i] = ansiCQuote(a)
			continue
		}
		out[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return strings.Join(out, " ")
}
