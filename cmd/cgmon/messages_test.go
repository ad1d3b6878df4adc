package main

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// flagHead is how -h writes a flag: "--name" (or "-o, --output"), then an
// upper-case placeholder for its value, none for a switch.
var flagHead = regexp.MustCompile(`^  (-[a-z], )?--[a-z][a-z-]*( [A-Z][A-Z0-9/:|_-]*)?$`)

// TestHelpPlaceholders reads each command's -h: every flag is written as
// the README writes it (--name), and its value is an upper-case
// placeholder (FILE, DURATION, SIZE), never a word that reads as a value
// ("-cgroup-root cgmon doctor") or Go's type names ("string", "value").
func TestHelpPlaceholders(t *testing.T) {
	for _, c := range []struct {
		cmd   string
		flags int // at least
	}{{"run", 16}, {"batch", 10}, {"watch", 10}, {"doctor", 5}} {
		t.Run(c.cmd, func(t *testing.T) {
			r := cgmon(t, "", c.cmd, "-h")
			if r.code != 0 || r.stderr != "" {
				t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
			}
			_, flags, ok := strings.Cut(r.stdout, "\nFlags:\n")
			if !ok {
				t.Fatalf("no Flags: section in %q", r.stdout)
			}
			n := 0
			for _, l := range strings.Split(strings.TrimRight(flags, "\n"), "\n") {
				switch {
				case strings.HasPrefix(l, "      "):
					if strings.TrimSpace(l) == "" {
						t.Errorf("empty usage line")
					}
				case !flagHead.MatchString(l):
					t.Errorf("flag line %q: want \"  --name PLACEHOLDER\" with an upper-case placeholder", l)
				default:
					n++
				}
			}
			if n < c.flags {
				t.Errorf("%d flags listed, want at least %d:\n%s", n, c.flags, flags)
			}
		})
	}
}

// goTypeWords are what json's own messages say that a user of the CLI
// cannot act on.
var goTypeWords = regexp.MustCompile(`Go (value|struct)|of type|cli\.|specs\.|\bint64\b|\buint64\b|\[\]string|json: |unmarshal`)

// TestJSONErrorsSpeakJSON: a batch line or a --limits file that is not
// what cgmon takes is refused with the field and the kind of value it
// takes, in JSON's terms, never json's Go type names.
func TestJSONErrorsSpeakJSON(t *testing.T) {
	lines := []struct{ line, want string }{
		{`[1, 2]`, "not a JSON execution object: the JSON value is an array, not an object"},
		{`"x"`, "not a JSON execution object: the JSON value is a string, not an object"},
		{`{"id": 5, "command": ["true"]}`, `"id" must be a string, not a number`},
		{`{"id": "a", "command": "true"}`, `"command" must be an array of strings, not a string`},
		{`{"id": "a", "command": ["true", 1]}`, `"command" must be an array of strings: it holds a number`},
		{`{"id": "a", "command": ["true"], "code_length": "12"}`, `"code_length" must be a whole number, not a string`},
		{`{"id": "a", "command": ["true"], "code_length": 1.5}`, `"code_length" must be a whole number, not 1.5`},
		{`{"id": "a", "command": ["true"], "wait_all": "yes"}`, `"wait_all" must be true or false, not a string`},
		{`{"id": "a", "command": ["true"], "limits": {"memory": {"limit": "1G"}}}`, `"limits.memory.limit" must be a whole number, not a string`},
		{`{"id": "a", "command": ["true"], "limits": {"cpu": {"shares": -1}}}`, `"limits.cpu.shares" must be a whole number of 0 or more, not -1`},
		{`{"id": "a", "command": ["true"], "limits": [1]}`, `"limits" must be an object, not an array`},
		{`{"id": "a", "command": ["true"], "limits": {"devices": [{"allow": "yes"}]}}`, `"limits.devices.allow" must be true or false, not a string`},
		{`{"id": "a", "command": ["true"], "limits": {"memory": {"limot": 1}}}`, `unknown field "limot" in "limits"`},
		{`{"id": "a", "command": ["true"], "bogus": 1}`, `unknown field "bogus"`},
		{`{"id": "a", "command": ["tr`, "not a JSON execution object: the JSON value is cut short"},
	}
	var in strings.Builder
	for _, l := range lines {
		in.WriteString(l.line + "\n")
	}
	r := cgmon(t, in.String(), "batch", "-o", "-", "-")
	if r.code != 1 {
		t.Fatalf("exit %d, want 1 (lines rejected); stderr %q", r.code, r.stderr)
	}
	got := map[int]string{}
	for _, l := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		var res struct {
			InputLine int    `json:"input_line"`
			Status    string `json:"status"`
			Error     string `json:"error"`
		}
		if err := json.Unmarshal([]byte(l), &res); err != nil {
			t.Fatalf("result line %q: %v", l, err)
		}
		if res.Status != "rejected" {
			t.Errorf("line %d ran (%s)", res.InputLine, res.Status)
		}
		got[res.InputLine] = res.Error
	}
	for i, l := range lines {
		if got[i+1] != l.want {
			t.Errorf("line %d %s: error %q, want %q", i+1, l.line, got[i+1], l.want)
		}
	}
	if m := goTypeWords.FindString(r.stderr); m != "" {
		t.Errorf("standard error speaks Go (%q): %s", m, r.stderr)
	}

	dir := t.TempDir()
	for _, c := range []struct{ file, want string }{
		{`{"memory": {"limit": "1G"}}`, `"memory.limit" must be a whole number, not a string`},
		{`{"pids": {"limit": 1.5}}`, `"pids.limit" must be a whole number, not 1.5`},
		{`[{"memory": {}}]`, "not an OCI LinuxResources object: the JSON value is an array, not an object"},
		{`{"memory": `, "not an OCI LinuxResources object: the JSON value is cut short"},
	} {
		f := filepath.Join(dir, "limits.json")
		if err := os.WriteFile(f, []byte(c.file), 0o644); err != nil {
			t.Fatal(err)
		}
		r := cgmon(t, "", "run", "--limits", f, "--", "true")
		want := "cgmon: run: --limits " + f + ": " + c.want + "\n"
		if r.code != 125 || r.stderr != want {
			t.Errorf("--limits %s: exit %d, stderr %q; want 125 and %q", c.file, r.code, r.stderr, want)
		}
	}
}

// TestEmptyFlagValuesRefused: a flag given "" means nothing, and is
// refused, not taken as its default (`--memory-max ""` ran the command
// with no limit, exit 0): exit 125, one line naming the flag, nothing
// run.
func TestEmptyFlagValuesRefused(t *testing.T) {
	marker := filepath.Join(t.TempDir(), "ran")
	touch := []string{"--", "touch", marker}
	for _, args := range [][]string{
		append([]string{"run", "--memory-max", ""}, touch...),
		append([]string{"run", "--limits", ""}, touch...),
		append([]string{"run", "--id", ""}, touch...),
		append([]string{"run", "--language", ""}, touch...),
		append([]string{"run", "--cgroup-root", ""}, touch...),
		append([]string{"run", "-o", ""}, touch...),
		append([]string{"run", "--samples=", "--plot", "x.svg"}, touch...),
		{"batch", "--output", "", "-"},
		{"batch", "--summary", "", "-"},
		{"batch", "--metrics-addr", "", "-"},
		{"watch", "--cgroup", ""},
		{"doctor", "--cgroup-root", ""},
	} {
		r := cgmon(t, `{"command": ["touch", "`+marker+`"]}`+"\n", args...)
		flag := args[1]
		if strings.HasPrefix(flag, "--samples=") {
			flag = "--samples"
		}
		if r.code != 125 || strings.Count(r.stderr, "\n") != 1 || !strings.Contains(r.stderr, flag+` "": empty`) {
			t.Errorf("%q: exit %d, stderr %q; want 125 and one line saying %s is empty", args, r.code, r.stderr, flag)
		}
		if _, err := os.Stat(marker); err == nil {
			t.Fatalf("%q ran the command", args)
		}
	}
}

// TestIntervalFloorCLI: --interval below 1ms would keep a CPU busy
// sampling; every command refuses it, and 1ms itself works.
func TestIntervalFloorCLI(t *testing.T) {
	for _, args := range [][]string{
		{"run", "--interval", "1ns", "--", "true"},
		{"run", "--interval", "999us", "--", "true"},
		{"batch", "--interval", "100us", "-"},
		{"watch", "--interval", "1us", "--duration", "1s", "--pid", strconv.Itoa(os.Getpid())},
	} {
		r := cgmon(t, "", args...)
		if r.code != 125 || !strings.Contains(r.stderr, "--interval") || !strings.Contains(r.stderr, "at least 1ms") {
			t.Errorf("%q: exit %d, stderr %q; want 125 naming the floor of 1ms", args, r.code, r.stderr)
		}
	}
	if r := cgmon(t, "", "run", "--interval", "1ms", "--", "sleep", "0.05"); r.code != 0 {
		t.Errorf("--interval 1ms: exit %d, stderr %q", r.code, r.stderr)
	}
}

// reportLines returns the lines of a human report that begin with label
// and a colon.
func reportLines(report, label string) []string {
	var out []string
	for _, l := range strings.Split(report, "\n") {
		if strings.HasPrefix(l, label+":") {
			out = append(out, l)
		}
	}
	return out
}

// hasRawControl reports whether s holds a control character other than
// the newline (an escape sequence for the terminal, a carriage return).
func hasRawControl(s string) bool {
	return strings.ContainsFunc(s, func(r rune) bool {
		return r != '\n' && (r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == '\u202e')
	})
}

// TestReportsCannotBeForged: text that comes from the user cannot forge a
// line of a report or reach the terminal as an escape sequence. An id
// with a control character is refused (--id $'x\nStatus: success'
// printed a second Status line); a language, command arguments and a
// batch's language are printed escaped.
func TestReportsCannotBeForged(t *testing.T) {
	marker := filepath.Join(t.TempDir(), "ran")
	r := cgmon(t, "", "run", "--id", "x\nStatus: success", "--", "touch", marker)
	if r.code != 125 || strings.Count(r.stderr, "\n") != 1 || !strings.Contains(r.stderr, `"x\nStatus: success"`) {
		t.Errorf("--id with a newline: exit %d, stderr %q; want 125, one line with the id escaped", r.code, r.stderr)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Error("the command ran under a refused id")
	}

	lang := "py\nStatus: success\x1b[2J\u009b"
	r = cgmon(t, "", "run", "--language", lang, "--", "sh", "-c", "exit 3", "arg\nStatus: success\x1b[31m")
	if r.code != 3 {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	if got := reportLines(r.stderr, "Status"); len(got) != 1 || !strings.HasSuffix(got[0], " error") {
		t.Errorf("Status lines %q, want one that says error:\n%s", got, r.stderr)
	}
	if hasRawControl(r.stderr) {
		t.Errorf("the report holds a raw control character: %q", r.stderr)
	}
	if got := reportLines(r.stderr, "Language"); len(got) != 1 || !strings.HasSuffix(got[0], `"py\nStatus: success\x1b[2J\u009b"`) {
		t.Errorf("Language line %q: want the label quoted with its escapes", got)
	}
	if got := reportLines(r.stderr, "Command"); len(got) != 1 || !strings.HasSuffix(got[0], `sh -c 'exit 3' $'arg\nStatus: success\x1b[31m'`) {
		t.Errorf("Command line %q: want the argument quoted as $'...'", got)
	}

	in := `{"id": "a\u001b[31m", "command": ["true"]}` + "\n" +
		`{"id": "ok", "language": "x\nExecutions: 999", "command": ["true"]}` + "\n"
	r = cgmon(t, in, "batch", "-o", "-", "-")
	if r.code != 1 {
		t.Fatalf("batch: exit %d, stderr %q", r.code, r.stderr)
	}
	if hasRawControl(r.stderr) || hasRawControl(r.stdout) {
		t.Errorf("batch wrote a raw control character: stdout %q, stderr %q", r.stdout, r.stderr)
	}
	if !strings.Contains(r.stderr, `line 1: invalid spec: id "a\x1b[31m" contains the control character U+001B`) {
		t.Errorf("the refused id is not named, escaped, on standard error: %q", r.stderr)
	}
	if got := reportLines(r.stderr, "Executions"); len(got) != 1 {
		t.Errorf("the summary has %d lines that begin with Executions: %q", len(got), r.stderr)
	}
	if !strings.Contains(r.stderr, `"x\nExecutions: 999"`) {
		t.Errorf("the language is not shown escaped in the summary: %q", r.stderr)
	}
}

// TestBatchDuplicateIDs: without --shard or --resume, a line with the id
// of an earlier line runs, with a warning at the line on standard error
// and a count in the summary, human and JSON. A line without an id gets
// line-N, N its input line: the same on every run of the file.
func TestBatchDuplicateIDs(t *testing.T) {
	in := strings.Join([]string{
		`{"id": "a", "command": ["true"]}`,
		`{"command": ["true"]}`,
		`{"id": "a", "command": ["true"]}`,
		`{"id": "line-2", "command": ["true"]}`,
		`{"id": "b", "command": ["true"], "repeat": 2}`,
		``,
		`{"command": ["true"]}`,
	}, "\n") + "\n"
	file := filepath.Join(t.TempDir(), "batch.ndjson")
	if err := os.WriteFile(file, []byte(in), 0o644); err != nil {
		t.Fatal(err)
	}
	var ids [2][]string
	for run := range 2 {
		r := cgmon(t, "", "batch", "--parallel", "1", "--format", "json", "-o", "-", file)
		if r.code != 0 {
			t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
		}
		for _, w := range []string{
			`cgmon: batch: line 3: warning: id "a" is also on line 1`,
			`cgmon: batch: line 4: warning: id "line-2" is also on line 2`,
		} {
			if !strings.Contains(r.stderr, w) {
				t.Errorf("standard error lacks %q: %q", w, r.stderr)
			}
		}
		if n := strings.Count(r.stderr, "warning: id"); n != 2 {
			t.Errorf("%d warnings, want 2 (the runs of one line share its id): %q", n, r.stderr)
		}
		_, summary, _ := strings.Cut(r.stderr, "{")
		var s struct {
			DuplicateIDs *int `json:"duplicate_ids"`
		}
		if err := json.Unmarshal([]byte("{"+summary), &s); err != nil {
			t.Fatalf("summary: %v in %q", err, r.stderr)
		}
		if s.DuplicateIDs == nil || *s.DuplicateIDs != 2 {
			t.Errorf("duplicate_ids %v, want 2", s.DuplicateIDs)
		}
		sc := bufio.NewScanner(strings.NewReader(r.stdout))
		for sc.Scan() {
			var res struct {
				ID        string `json:"id"`
				InputLine int    `json:"input_line"`
			}
			if err := json.Unmarshal(sc.Bytes(), &res); err != nil {
				t.Fatal(err)
			}
			ids[run] = append(ids[run], strconv.Itoa(res.InputLine)+"="+res.ID)
		}
		sort.Strings(ids[run])
	}
	want := "1=a 2=line-2 3=a 4=line-2 5=b 5=b 7=line-7"
	if got := strings.Join(ids[0], " "); got != want {
		t.Errorf("ids by input line %q, want %q", got, want)
	}
	if strings.Join(ids[0], " ") != strings.Join(ids[1], " ") {
		t.Errorf("a second run of the file gave other ids: %q, then %q", ids[0], ids[1])
	}
	r := cgmon(t, "", "batch", "-o", os.DevNull, file)
	if !strings.Contains(r.stderr, "\nDuplicate ids: 2 lines had the id of an earlier line") {
		t.Errorf("the human summary does not count the duplicate ids: %q", r.stderr)
	}
}

// runIDForm is the form of the id cgmon run gives a run without --id.
var runIDForm = regexp.MustCompile(`^exec-(\d{8}T\d{6}\.\d{6}Z)-[0-9a-f]{8}-\d+$`)

// TestRunDefaultIDs: `cgmon run` without --id gave every run "exec-1";
// its id is now unique across processes (two at once differ) and sorts
// in time order as a string, so that the records of many runs can be
// joined and sorted.
func TestRunDefaultIDs(t *testing.T) {
	dir := t.TempDir()
	runOnce := func(name string) string {
		out := filepath.Join(dir, name)
		r := cgmon(t, "", "run", "--format", "json", "-o", out, "--", "true")
		if r.code != 0 {
			t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
		}
		rep, _ := readReport(t, out)
		if !runIDForm.MatchString(rep.ID) {
			t.Fatalf("id %q is not of the form %s", rep.ID, runIDForm)
		}
		return rep.ID
	}
	var wg sync.WaitGroup
	var a, b string
	wg.Add(2)
	go func() { defer wg.Done(); a = runOnce("a.json") }()
	go func() { defer wg.Done(); b = runOnce("b.json") }()
	wg.Wait()
	if a == b {
		t.Errorf("two cgmon run processes gave the same id %q", a)
	}
	first := runOnce("first.json")
	time.Sleep(2 * time.Millisecond)
	later := runOnce("later.json")
	if !(first < later) {
		t.Errorf("ids %q then %q do not sort in time order", first, later)
	}
}

// TestProcfsCPUSources: on the procfs backend the user CPU time comes from
// rusage's utime and the system time from its stime; the human report
// labelled both rusage:utime+stime.
func TestProcfsCPUSources(t *testing.T) {
	out := filepath.Join(t.TempDir(), "r.json")
	r := cgmon(t, "", "run", "--backend", "procfs", "--format", "json", "-o", out, "--", wl(t, "burn"), "1", "100")
	if r.code != 0 {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	rep, _ := readReport(t, out)
	for k, want := range map[string]string{
		"cpu_user_seconds":   "rusage:utime",
		"cpu_system_seconds": "rusage:stime",
		"cpu_total_seconds":  "rusage:utime+stime",
	} {
		if got := rep.Sources[k]; got != want {
			t.Errorf("%s source %q, want %q", k, got, want)
		}
	}
	r = cgmon(t, "", "run", "--backend", "procfs", "--", wl(t, "burn"), "1", "100")
	for label, want := range map[string]string{
		"User CPU time":   "[rusage:utime]",
		"System CPU time": "[rusage:stime]",
		"Total CPU time":  "[rusage:utime+stime]",
	} {
		if got := reportLines(r.stderr, label); len(got) != 1 || !strings.HasSuffix(got[0], want) {
			t.Errorf("%s line %q, want it labelled %s", label, got, want)
		}
	}
}

// stopWords are words that may repeat in a message without stuttering:
// a pair of words stutters when neither is one of them.
var stopWords = map[string]bool{"the": true, "a": true, "an": true, "of": true, "in": true, "to": true, "is": true, "and": true, "or": true, "for": true, "with": true, "by": true, "on": true, "at": true, "it": true, "be": true, "as": true, "from": true, "this": true, "that": true, "its": true}

// stutter returns a pair of words, or a path, that msg says twice ("cgroup
// root: cgroup root not delegated: cgroup root ..."); "" when it says
// none twice.
func stutter(msg string) string {
	words := strings.FieldsFunc(strings.ToLower(msg), func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || strings.ContainsRune("/._-+", r))
	})
	seen := map[string]bool{}
	for i, w := range words {
		if strings.Contains(w, "/") && len(w) > 1 {
			if seen[w] {
				return w
			}
			seen[w] = true
		}
		if i == 0 || stopWords[w] || stopWords[words[i-1]] {
			continue
		}
		pair := words[i-1] + " " + w
		if seen[pair] {
			return pair
		}
		seen[pair] = true
	}
	return ""
}

// TestStutter checks the check: it finds the stutter the issue saw, and
// not a message that merely repeats small words.
func TestStutter(t *testing.T) {
	if s := stutter("cgroup root: cgroup root not delegated: cgroup root /x is not usable"); s != "cgroup root" {
		t.Errorf("stutter found %q", s)
	}
	if s := stutter("cgroup root /x is not usable: stat /x: no such file or directory"); s != "/x" {
		t.Errorf("stutter found %q", s)
	}
	if s := stutter("the line is in the file, and the id is in the line"); s != "" {
		t.Errorf("stutter found %q", s)
	}
}

// TestErrorsDoNotStutter runs cgmon into its errors and reads each one:
// none says the same thing twice, as "cgroup root not delegated: cgroup
// root /x is not usable: stat /x: ..." did.
func TestErrorsDoNotStutter(t *testing.T) {
	mount := unifiedMount(t)
	dir := t.TempDir()
	limits := filepath.Join(dir, "limits.json")
	if err := os.WriteFile(limits, []byte(`{"memory": {"limit": "1G"}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(mount, "cgmon-e2e-no-parent-"+strconv.Itoa(os.Getpid()), "root")
	cases := [][]string{
		{"run", "--cgroup-root", missing, "--", "true"},
		{"run", "--cgroup-root", dir, "--", "true"},
		{"run", "--limits", limits, "--", "true"},
		{"run", "--memory-max", "12Q", "--", "true"},
		{"run", "--cpus", "0", "--", "true"},
		{"run", "--pids-max", "x", "--", "true"},
		{"run", "--backend", "v1", "--", "true"},
		{"watch", "--cgroup", "/cgmon-e2e-no-such-cgroup"},
		{"watch", "--cgroup", "../../etc"},
		{"doctor", "--proc-root", filepath.Join(dir, "no-proc")},
	}
	for _, args := range cases {
		r := cgmon(t, "", args...)
		if r.code != 125 {
			t.Errorf("%q: exit %d, want 125; stderr %q", args, r.code, r.stderr)
		}
		if s := stutter(r.stderr); s != "" {
			t.Errorf("%q: %q says %q twice", args, r.stderr, s)
		}
	}
	for _, args := range [][]string{
		{"run", "--backend", "cgroup2", "--", "true"},
		{"run", "--cgroup-root", mount, "--", "true"},
	} {
		r := cgmonCmd(t, asNobody(t, args...), "")
		if r.code != 125 {
			t.Errorf("as nobody %q: exit %d, want 125; stderr %q", args, r.code, r.stderr)
		}
		if s := stutter(r.stderr); s != "" {
			t.Errorf("as nobody %q: %q says %q twice", args, r.stderr, s)
		}
	}
	in := `{"id": "a", "command": ["true"], "limits": {"memory": {"limit": "1G"}}}` + "\n" + `{"id": "a/b", "command": ["true"]}` + "\n"
	r := cgmon(t, in, "batch", "-o", os.DevNull, "-")
	for _, l := range strings.Split(strings.TrimSpace(r.stderr), "\n") {
		if s := stutter(l); s != "" && strings.HasPrefix(l, "cgmon:") {
			t.Errorf("batch: %q says %q twice", l, s)
		}
	}
}
