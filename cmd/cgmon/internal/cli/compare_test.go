package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cgmon/cgmon/metrics"
)

// writeComparison writes base.ndjson and head.ndjson into dir: two runs of one suite, each id run five times (repeat_index
// 0-4) except python's, run once.
//
//   - c/sort: the same; head's median wall time is 1% higher by chance.
//   - c/hash: head takes 30% more memory and 20% less time, every repeat.
//   - c/io: only in base; c/new: only in head; go: a language only head has.
//   - python/ml: one run a side, 25% more memory in head.
//   - python/slow: succeeds in base, times out twice in head.
//   - python/gpu: runs in base, is rejected in head (not run).
func writeComparison(t *testing.T, dir string) {
	t.Helper()
	S, T := metrics.StatusSuccess, metrics.StatusTimeout
	var base, head []string
	add := func(dst *[]string, id, lang string, rep int, st metrics.Status, wall, cpu, mem int) {
		*dst = append(*dst, resultLineOf(t, result(id, lang, st, wall, cpu, mem), 1, rep))
	}
	sortWall := [][]int{{100, 103, 99, 101, 102}, {101, 104, 98, 102, 103}}
	for i := range 5 {
		add(&base, "sort", "c", i, S, sortWall[0][i], 90, 10)
		add(&head, "sort", "c", i, S, sortWall[1][i], 90, 10)
		add(&base, "hash", "c", i, S, 50+i, 45, 100+i%3)
		add(&head, "hash", "c", i, S, 40+i, 36, 130+i%3)
		add(&base, "io", "c", i, S, 10, 2, 3)
		add(&head, "new", "c", i, S, 12, 2, 3)
		add(&head, "srv", "go", i, S, 300+i, 250, 40)
		st := S
		if i < 2 {
			st = T
		}
		add(&base, "slow", "python", i, S, 900+i, 880, 50)
		add(&head, "slow", "python", i, st, 900+i*2, 880, 50)
	}
	add(&base, "ml", "python", -1, S, 2000, 1900, 200)
	add(&head, "ml", "python", -1, S, 2010, 1900, 250)
	add(&base, "gpu", "python", -1, S, 700, 650, 90)
	head = append(head, rejectedLineOf(t, 40, "gpu", `"limits": the devices field cannot be applied`))
	for name, lines := range map[string][]string{"base.ndjson": base, "head.ndjson": head} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestCompareGolden(t *testing.T) {
	t.Chdir(fixtureDir(t, "compare", writeComparison))
	for _, format := range []string{"human", "json", "markdown"} {
		t.Run(format, func(t *testing.T) {
			code, out, stderr := runCLI("compare", "--format", format,
				"--fail-on", "memory_peak>+10%", "--fail-on", "wall_time>+1%,id:cpu_time<-15%,language:memory_peak>+64M",
				"base.ndjson", "head.ndjson")
			if code != 1 || stderr != "" {
				t.Errorf("exit %d, stderr %q; want 1 (a condition met) and nothing", code, stderr)
			}
			ext := map[string]string{"human": "txt", "json": "json", "markdown": "md"}[format]
			golden(t, "compare."+ext+".golden", []byte(out))
		})
	}
}

// TestCompareVerdicts checks each condition of the fixtures against what
// they were made to show.
func TestCompareVerdicts(t *testing.T) {
	t.Chdir(t.TempDir())
	writeComparison(t, ".")
	base, err := readSide("base.ndjson")
	if err != nil {
		t.Fatal(err)
	}
	head, err := readSide("head.ndjson")
	if err != nil {
		t.Fatal(err)
	}
	for cond, want := range map[string]struct {
		met, notSignificant string
	}{
		// hash's +30% is significant (p = 0.008 with five a side); ml's
		// +25% is one run a side, taken as it is.
		"memory_peak>+10%": {"c/hash, python/ml", ""},
		// sort's +1% is noise: not significant, so not failing; slow is
		// only 0.2% slower.
		"wall_time>+0.5%": {"", "c/sort"},
		// c as a whole is 19% faster (pooled medians), but its results
		// mix programs and the difference is not significant.
		"wall_time<-10%":   {"c/hash", "c"},
		"id:cpu_time<-15%": {"c/hash", ""},
		// Per language, c's memory moves by 0 (pooled medians of 10 MiB).
		"language:memory_peak>+1M": {"", ""},
		"memory_peak>+40M":         {"python/ml", ""},
		"memory_peak<-1":           {"", ""},
	} {
		conds, err := parseConditions(cond)
		if err != nil {
			t.Fatal(err)
		}
		res := compare(base, head, defaultAlpha, conds)
		c := res.Conditions[0]
		if got := strings.Join(c.Met, ", "); got != want.met {
			t.Errorf("%s: met by %q, want %q", cond, got, want.met)
		}
		if got := strings.Join(c.NotSignificant, ", "); got != want.notSignificant {
			t.Errorf("%s: not significant for %q, want %q", cond, got, want.notSignificant)
		}
		if res.Failed != (want.met != "") {
			t.Errorf("%s: failed %v", cond, res.Failed)
		}
	}
	res := compare(base, head, defaultAlpha, nil)
	if len(res.StatusChanges) != 2 || res.StatusChanges[0].ID != "gpu" || res.StatusChanges[0].Head != "rejected" ||
		res.StatusChanges[1].ID != "slow" || res.StatusChanges[1].Head != "success 3, timeout 2" {
		t.Errorf("status changes %+v, want gpu: success -> rejected, slow: success -> success 3, timeout 2", res.StatusChanges)
	}
	var hash *CompareRow
	for i, r := range res.Metrics[2].Rows {
		if r.ID == "hash" {
			hash = &res.Metrics[2].Rows[i]
		}
	}
	if hash == nil || !hash.Tested || !hash.Significant || *hash.P != 2.0/252 || hash.Base.N != 5 || hash.Head.N != 5 {
		t.Errorf("hash's memory row %+v: want tested, p = 2/252 with 5+5 results", hash)
	}
}

func TestParseConditions(t *testing.T) {
	for s, want := range map[string][]condition{
		"memory_peak>+10%": {{text: "memory_peak>+10%", metric: "memory_peak", greater: true, percent: true, limit: 0.1}},
		"memory_peak>10%":  {{text: "memory_peak>10%", metric: "memory_peak", greater: true, percent: true, limit: 0.1}},
		"id:wall_time<-5%, language:cpu_time>+50ms": {
			{text: "id:wall_time<-5%", scope: "id", metric: "wall_time", percent: true, limit: -0.05},
			{text: "language:cpu_time>+50ms", scope: "language", metric: "cpu_time", greater: true, limit: 0.05},
		},
		"memory_peak > +16M": {{text: "memory_peak > +16M", metric: "memory_peak", greater: true, limit: 16 << 20}},
	} {
		got, err := parseConditions(s)
		if err != nil {
			t.Errorf("%q: %v", s, err)
			continue
		}
		if len(got) != len(want) {
			t.Errorf("%q: %+v, want %+v", s, got, want)
			continue
		}
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("%q: %+v, want %+v", s, got[i], want[i])
			}
		}
	}
	for s, msg := range map[string]string{
		"":                      "no condition",
		"memory_peak":           "no > or <",
		"memory>+10%":           "metric",
		"wall_time>=10%":        ">=",
		"wall_time>":            "no limit",
		"wall_time>+10":         "duration",
		"wall_time>+ten%":       "percentage",
		"memory_peak>+10 ducks": "size",
		"test:wall_time>1%":     "scope",
	} {
		if _, err := parseConditions(s); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("%q: error %v, want one mentioning %q", s, err, msg)
		}
	}
}

func TestCompareRefuses(t *testing.T) {
	t.Chdir(t.TempDir())
	writeComparison(t, ".")
	b, _ := os.ReadFile("head.ndjson")
	if err := os.WriteFile("cut.ndjson", append(b, `{"schema_version":1,"id":"x","lang`...), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		msg  string
	}{
		{[]string{"compare", "base.ndjson"}, "two result files"},
		{[]string{"compare", "base.ndjson", "cut.ndjson"}, "cut.ndjson:28: the line ends"},
		{[]string{"compare", "base.ndjson", "absent.ndjson"}, "absent.ndjson"},
		{[]string{"compare", "--fail-on", "mem>1%", "base.ndjson", "head.ndjson"}, "metric"},
		{[]string{"compare", "--alpha", "1.5", "base.ndjson", "head.ndjson"}, "--alpha"},
		{[]string{"compare", "--format", "csv", "base.ndjson", "head.ndjson"}, "--format"},
	} {
		code, out, stderr := runCLI(c.args...)
		if code != ExitFailure || out != "" || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, c.msg) {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want 125, nothing, one line mentioning %q", c.args, code, out, stderr, c.msg)
		}
	}
	// Without a condition, or with none met, the exit status is 0.
	for _, args := range [][]string{
		{"compare", "base.ndjson", "head.ndjson"},
		{"compare", "--fail-on", "memory_peak>+50%", "--format", "json", "base.ndjson", "head.ndjson"},
	} {
		code, out, stderr := runCLI(args...)
		if code != 0 || stderr != "" {
			t.Errorf("%v: exit %d, stderr %q; want 0", args, code, stderr)
		}
		if args[len(args)-3] == "json" {
			var r CompareResult
			if err := json.Unmarshal([]byte(out), &r); err != nil || r.Failed || len(r.Conditions) != 1 || r.Conditions[0].Failed {
				t.Errorf("JSON %v: %+v", err, r.Conditions)
			}
		}
	}
}
