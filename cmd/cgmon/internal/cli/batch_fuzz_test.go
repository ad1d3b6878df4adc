package cli

import (
	"encoding/json"
	"strings"
	"testing"
)

// batchFields are the keys of a batch input line, as an error names them.
var batchFields = []string{`"id"`, `"language"`, `"code_length"`, `"command"`, `"timeout"`, `"limits"`, `"wait_all"`, `"repeat"`,
	`"stdin"`, `"stdout"`, `"stderr"`, `"env"`, `"dir"`, `"rlimits"`}

// FuzzParseBatchLine: a line is either a usable execution (a command to
// run, a non-negative timeout and code length, a language, run 1 to
// maxRepeat times, more than once only with an id) or refused with an
// error that names the field at fault, or says that the line is not one
// JSON execution object and why.
func FuzzParseBatchLine(f *testing.F) {
	for _, s := range []string{
		`{"id": "s1", "language": "python", "code_length": 120, "command": ["python3", "s1.py"], "timeout": "5s", "limits": {"memory": {"limit": 268435456}}, "wait_all": false}`,
		`{"command": ["true"], "timeout": 1.5}`,
		`{"command": ["true"], "timeout": null, "limits": null}`,
		`{"command": ["true"], "timeout": "-1s"}`,
		`{"command": ["true"], "timeout": 1e300}`,
		`{"command": ["true"], "timeout": "5"}`,
		`{"command": ["true"], "code_length": -1}`,
		`{"command": []}`,
		`{"command": [""]}`,
		`{"command": ["true"], "limits": {"cpu": {"quota": 50000, "period": 100000}, "pids": {"limit": 5}}}`,
		`{"command": ["true"], "limits": {"memory": {"limit": "big"}}}`,
		`{"command": ["true"], "limits": {"nosuch": 1}}`,
		`{"command": ["true"], "limits": []}`,
		`{"command": ["true"]} {"command": ["true"]}`,
		`{"command": ["true"], "extra": 1}`,
		`{"id": "../../etc", "command": ["true"]}`,
		`{"command": "true"}`,
		`[1, 2]`, `null`, `"x"`, `{`, ``, `{"command": ["true"], "wait_all": "yes"}`,
		`{"id": "r", "command": ["true"], "repeat": 3}`, `{"command": ["true"], "repeat": 3}`, `{"id": "r", "command": ["true"], "repeat": 1.5}`,
		`{"command": ["true"], "stdin": "in", "stdout": "out", "stderr": "out", "env": ["A=1"], "dir": "/tmp"}`,
		`{"command": ["true"], "env": ["A"]}`, `{"command": ["true"], "env": "A=1"}`, `{"command": ["true"], "stdout": 1}`,
		`{"command": ["true"], "rlimits": [{"type": "RLIMIT_NOFILE", "soft": 64, "hard": "unlimited"}]}`,
		`{"command": ["true"], "rlimits": [{"type": "nofile", "soft": -1, "hard": 1}]}`, `{"command": ["true"], "rlimits": {"type": "x"}}`,
		`{"id": "r", "command": ["true"], "repeat": 2, "stdout": "o"}`,
		`{"id": "r", "command": ["true"], "repeat": 0}`, `{"id": "r", "command": ["true"], "repeat": 10001}`, `{"id": "r", "command": ["true"], "repeat": null}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		s, repeat, err := parseBatchLine(b)
		if err != nil {
			msg := err.Error()
			// A field below a key is named from the key down:
			// "limits.memory.limit"; one the line should not have is
			// named as unknown.
			named := strings.Contains(msg, "JSON") || strings.HasPrefix(msg, `unknown field "`)
			for _, k := range batchFields {
				named = named || strings.Contains(msg, k) || strings.Contains(msg, strings.TrimSuffix(k, `"`)+".")
			}
			if !named {
				t.Fatalf("parseBatchLine(%q): error %q names no field", b, msg)
			}
			return
		}
		if !json.Valid(b) {
			t.Fatalf("parseBatchLine accepted %q, which is not JSON", b)
		}
		if len(s.Command) == 0 || s.Command[0] == "" {
			t.Fatalf("parseBatchLine(%q) accepted command %q", b, s.Command)
		}
		if s.Timeout < 0 || s.CodeLength < 0 || s.Language == "" {
			t.Fatalf("parseBatchLine(%q) = timeout %v, code length %d, language %q", b, s.Timeout, s.CodeLength, s.Language)
		}
		if repeat < 1 || repeat > maxRepeat || repeat > 1 && s.ID == "" {
			t.Fatalf("parseBatchLine(%q) = repeat %d with id %q", b, repeat, s.ID)
		}
	})
}
