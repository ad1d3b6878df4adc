package cli

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestParseBatchLine(t *testing.T) {
	s, err := parseBatchLine([]byte(`{"id": "a1", "language": "go", "code_length": 10, "command": ["go", "run", "."], "timeout": "5s", "limits": {"pids": {"limit": 5}}, "wait_all": true}`))
	if err != nil {
		t.Fatal(err)
	}
	if s.ID != "a1" || s.Language != "go" || s.CodeLength != 10 || len(s.Command) != 3 || s.Timeout != 5*time.Second || !s.WaitAll || *s.Limits.Pids.Limit != 5 {
		t.Errorf("spec %+v", s)
	}
	s, err = parseBatchLine([]byte(`{"command": ["true"], "timeout": 1.5}`))
	if err != nil || s.Timeout != 1500*time.Millisecond || s.Language != "unknown" {
		t.Errorf("numeric timeout: %+v, %v", s, err)
	}
	for line, msg := range map[string]string{
		`{"command": ["true"]`:                          "not a JSON",
		`{"command": []}`:                               "command",
		`{"id": "x"}`:                                   "command",
		`{"command": ["true"], "timout": "5s"}`:         "timout",
		`{"command": ["true"], "timeout": "5 parsecs"}`: "timeout",
		`{"command": ["true"], "timeout": "-1s"}`:       "negative",
		`{"command": ["true"], "timeout": -3}`:          "out of range",
		`{"command": ["true"], "limits": {"cpu": 1}}`:   "limits",
		`{"command": ["true"], "code_length": -1}`:      "negative",
		`{"command": ["true"]} {"command": ["true"]}`:   "more than one",
		`["true"]`: "not a JSON",
	} {
		_, err := parseBatchLine([]byte(line))
		if err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("%s: error %v, want one mentioning %q", line, err, msg)
		}
	}
}

func TestReadLines(t *testing.T) {
	long := strings.Repeat("x", maxBatchLine+10)
	in := "a\r\n\nb\n" + long + "\nc"
	type got struct {
		n       int
		line    string
		tooLong bool
	}
	var lines []got
	err := readLines(strings.NewReader(in), func(n int, line []byte, tooLong bool) bool {
		lines = append(lines, got{n, string(line), tooLong})
		return true
	})
	if err != nil {
		t.Fatal(err)
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
}

func TestBatchSummaryHuman(t *testing.T) {
	var b bytes.Buffer
	r := &BatchResult{BadLines: []BadLine{{Line: 3, Error: "x"}}}
	if err := r.WriteHuman(&b); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "Executions: 0") || !strings.Contains(b.String(), "line 3") {
		t.Errorf("summary:\n%s", b.String())
	}
}
