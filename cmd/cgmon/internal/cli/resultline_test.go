package cli

import (
	"bytes"
	"encoding/json"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/cgmon/cgmon/metrics"
)

// TestParseResultLineReadsReports parses the lines batch writes for the
// report fixtures and checks every field the statistics use.
func TestParseResultLineReadsReports(t *testing.T) {
	for name, ex := range map[string]metrics.Execution{
		"cgroup2-success": cgroupExecution(),
		"hybrid-timeout":  hybridTimeout(),
		"oom":             result("o\"1\\\n", "C++ \u00e9", metrics.StatusOOM, 1234, 1000, 300),
		"unmeasured":      result("u", "", metrics.StatusFailedToStart, -1, -1, -1),
	} {
		t.Run(name, func(t *testing.T) {
			line := resultLineOf(t, ex, 3, 7)
			var p resultParser
			var r scannedResult
			if err := p.parse([]byte(line), &r); err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			if string(r.id) != ex.ID || string(r.language) != ex.Language || r.status != ex.Status || r.repeat != 7 || r.schema != SchemaVersion {
				t.Errorf("id %q language %q status %q repeat %d schema %d; want %q %q %q 7 %d",
					r.id, r.language, r.status, r.repeat, r.schema, ex.ID, ex.Language, ex.Status, SchemaVersion)
			}
			if r.oom != ex.OOMKilled || r.timedOut != ex.TimedOut {
				t.Errorf("oom %v timed out %v; want %v %v", r.oom, r.timedOut, ex.OOMKilled, ex.TimedOut)
			}
			wall, wallOK := ex.Usage.WallTime.Get()
			cpu, cpuOK := ex.Usage.CPUTotal.Get()
			mem, memOK := ex.Usage.MemoryPeak.Get()
			if r.wallOK != wallOK || r.wallOK && secondsToDuration(r.wall) != wall {
				t.Errorf("wall %v (%v), want %v (%v)", r.wall, r.wallOK, wall, wallOK)
			}
			if r.cpuOK != cpuOK || r.cpuOK && secondsToDuration(r.cpu) != cpu {
				t.Errorf("cpu %v (%v), want %v (%v)", r.cpu, r.cpuOK, cpu, cpuOK)
			}
			if r.memOK != memOK || r.mem != mem {
				t.Errorf("memory %v (%v), want %v (%v)", r.mem, r.memOK, mem, memOK)
			}
			// The record the summary counts has the execution's duration.
			got, err := p.record([]byte(line), &r, string(r.language))
			if err != nil {
				t.Fatal(err)
			}
			if got.Duration() != ex.Duration() {
				t.Errorf("duration %v, want %v", got.Duration(), ex.Duration())
			}
		})
	}
}

func TestParseResultLineRefuses(t *testing.T) {
	good := resultLineOf(t, result("a", "c", metrics.StatusSuccess, 1, 1, 1), 1, -1)
	for line, msg := range map[string]string{
		``:                                  "not a JSON object",
		`[1]`:                               "not a JSON object",
		`{}`:                                "empty JSON object",
		good[:len(good)/2]:                  "cut short",
		good[:len(good)-1]:                  "cut short",
		good + ` {}`:                        "more than one",
		good + `x`:                          "more than one",
		`{"id": "x1", "command": ["true"]}`: "schema_version",
		`{"schema_version": 3, "id": "a", "language": "c", "status": "success"}`:                                                                   "schema versions 1 to 2",
		`{"schema_version": 1, "id": "a", "language": "c", "status": "done"}`:                                                                      "not a status",
		`{"schema_version": 1, "id": "a", "language": "c"}`:                                                                                        `no "status"`,
		`{"schema_version": 1, "language": "c", "status": "success"}`:                                                                              `no "id"`,
		`{"schema_version": 1, "id": 3, "language": "c", "status": "success"}`:                                                                     `"id" is not a string`,
		`{"schema_version": "1", "id": "a", "language": "c", "status": "success"}`:                                                                 `"schema_version" is not a number`,
		`{"schema_version": 1, "id": "a", "language": "c", "status": "success", "x": 01}`:                                                          `found '1'`,
		`{"schema_version": 1, "id": "a", "language": "c", "status": "success", "x": tru}`:                                                         "not a JSON value",
		`{"schema_version": 1, "id": "a", "language": "c", "status": "success", "x": [1,]}`:                                                        "not a JSON value",
		`{"schema_version": 1, "id": "a", "language": "c", "status": "success", "x": {"a" 1}}`:                                                     `want ":"`,
		"{\"schema_version\": 1, \"id\": \"a\x01\", \"language\": \"c\", \"status\": \"success\"}":                                                 "control character",
		`{"schema_version": 1, "id": "a\q", "language": "c", "status": "success"}`:                                                                 "bad escape",
		`{"schema_version": 1, "id": "a", "language": "c", "status": "success", "execution_time_seconds": -1}`:                                     "out of range",
		`{"schema_version": 1, "id": "a", "language": "c", "status": "success", "execution_time_seconds": "1"}`:                                    "not a number or null",
		`{"schema_version": 1, "id": "a", "language": "c", "status": "success", "memory_peak_bytes": 1.5}`:                                         "whole number",
		`{"schema_version": 1, "id": "a", "language": "c", "status": "success", "oom_killed": 1}`:                                                  "true or false",
		`{"schema_version": 1, "id": "a", "language": "c", "status": "success", "repeat_index": -1}`:                                               "negative",
		`{"schema_version": 1, "id": "a", "language": "c", "status": "success", "x": ` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}`: "nested deeper",
	} {
		var p resultParser
		var r scannedResult
		err := p.parse([]byte(line), &r)
		if err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("%.80s: error %v, want one mentioning %q", line, err, msg)
		}
	}
	// A null execution time falls back to the start and end times, which
	// must then be times in order.
	var p resultParser
	var r scannedResult
	base := `{"schema_version": 1, "id": "a", "language": "c", "status": "success", "execution_time_seconds": null`
	for line, msg := range map[string]string{
		base + `, "started_at": "2025-03-14T15:09:26Z", "ended_at": "2025-03-14T15:09:25Z"}`: "before",
		base + `, "started_at": "yesterday", "ended_at": "2025-03-14T15:09:25Z"}`:            "started_at",
		base + `}`: "started_at",
	} {
		if _, err := p.record([]byte(line), &r, "c"); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("%s: error %v, want one mentioning %q", line, err, msg)
		}
	}
	ex, err := p.record([]byte(base+`, "started_at": "2025-03-14T15:09:26Z", "ended_at": "2025-03-14T15:09:27.5Z"}`), &r, "c")
	if err != nil || ex.Duration() != 1500*time.Millisecond {
		t.Errorf("duration from the times: %v, %v; want 1.5s", ex.Duration(), err)
	}
}

func TestLineReader(t *testing.T) {
	long := strings.Repeat("x", maxResultLine+5)
	in := "a\r\n\nb\n" + long + "\nc"
	lr := newLineReader(strings.NewReader(in))
	type got struct {
		n       int
		line    string
		tooLong bool
	}
	var lines []got
	for {
		l, tooLong, err := lr.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, got{lr.n, string(l), tooLong})
	}
	want := []got{{1, "a", false}, {2, "", false}, {3, "b", false}, {4, "", true}, {5, "c", false}}
	if len(lines) != len(want) {
		t.Fatalf("lines %v, want %v", lines, want)
	}
	for i := range want {
		if lines[i] != want[i] {
			t.Errorf("line %d: %+v, want %+v", i, lines[i], want[i])
		}
	}
	if !lr.last {
		t.Error("the last line had no newline and was not marked so")
	}
}

// FuzzParseResultLine checks the scanner against encoding/json: a line it
// accepts is valid JSON whose fields decode to the same values, and it
// never panics.
func FuzzParseResultLine(f *testing.F) {
	f.Add([]byte(`{"schema_version":1,"id":"a","language":"c","status":"success","execution_time_seconds":0.5,"x":[1,{"y":null}]}`))
	f.Add([]byte(`{"schema_version":1,"id":"a\"\\\u00e9","language":"","status":"oom","memory_peak_bytes":123,"oom_killed":true}`))
	f.Add([]byte(`{"schema_version": 1 , "id":"a","language":"c","status":"error","repeat_index":2,"cpu_total_seconds":1e-3}`))
	for _, ex := range []metrics.Execution{cgroupExecution(), hybridTimeout()} {
		rep := NewReport(&ex)
		b, _ := json.Marshal(rep)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		var p resultParser
		var r scannedResult
		if p.parse(line, &r) != nil {
			return
		}
		if !json.Valid(line) {
			t.Fatalf("accepted invalid JSON %q", line)
		}
		var want struct {
			Schema   int64    `json:"schema_version"`
			ID       string   `json:"id"`
			Language string   `json:"language"`
			Status   string   `json:"status"`
			Repeat   int64    `json:"repeat_index"`
			Wall     *float64 `json:"execution_time_seconds"`
			CPU      *float64 `json:"cpu_total_seconds"`
			Mem      *uint64  `json:"memory_peak_bytes"`
			OOM      bool     `json:"oom_killed"`
			Timeout  bool     `json:"timed_out"`
		}
		if err := json.Unmarshal(line, &want); err != nil {
			t.Fatalf("accepted %q, which encoding/json refuses: %v", line, err)
		}
		if !bytes.Equal(r.id, []byte(want.ID)) || !bytes.Equal(r.language, []byte(want.Language)) || string(r.status) != want.Status ||
			r.schema != want.Schema || r.repeat != want.Repeat || r.oom != want.OOM || r.timedOut != want.Timeout {
			t.Fatalf("%q: read %+v, encoding/json %+v", line, r, want)
		}
		if r.wallOK != (want.Wall != nil) || r.wallOK && r.wall != *want.Wall ||
			r.cpuOK != (want.CPU != nil) || r.cpuOK && r.cpu != *want.CPU ||
			r.memOK != (want.Mem != nil) || r.memOK && r.mem != *want.Mem {
			t.Fatalf("%q: read %+v, encoding/json %+v", line, r, want)
		}
	})
}

// TestParseRejectedLine reads the lines batch writes for input it did not
// run: no language, an id only when the line could be read, the error.
func TestParseRejectedLine(t *testing.T) {
	for _, c := range []struct{ line, id, msg string }{
		{rejectedLineOf(t, 3, "", "not a JSON execution object: unexpected EOF"), "", "not a JSON execution object: unexpected EOF"},
		{rejectedLineOf(t, 4, "a\tb", `"limits": "x"`), "a\tb", `"limits": "x"`},
	} {
		var p resultParser
		var r scannedResult
		ex, err := p.record([]byte(c.line), &r, "")
		if err != nil {
			t.Fatalf("%s: %v", c.line, err)
		}
		if !r.rejected || r.status != "" || string(r.id) != c.id || string(r.errMsg) != c.msg || ex.Status != "" {
			t.Errorf("%s: rejected %v, status %q, id %q, error %q", c.line, r.rejected, r.status, r.id, r.errMsg)
		}
	}
	var p resultParser
	var r scannedResult
	if err := p.parse([]byte(`{"protocol":1,"status":"rejected","error":"x"}`), &r); err == nil || !strings.Contains(err.Error(), "schema_version") {
		t.Errorf("a rejected line without schema_version: %v", err)
	}
}
