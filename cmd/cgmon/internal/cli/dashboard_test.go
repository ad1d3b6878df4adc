package cli

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/cgmon/cgmon/metrics"
)

const dashboardPath = "../../../../examples/grafana-dashboard.json"

// servedSeries scrapes /metrics as `cgmon batch --metrics-addr` serves it,
// over a collector that saw executions of every kind, and returns each
// series name it exposes (a histogram's _bucket, _sum and _count) with its
// label names. Prometheus adds instance and job to every series.
func servedSeries(t *testing.T) map[string]map[string]bool {
	t.Helper()
	coll := metrics.NewCollector()
	for _, st := range metrics.Statuses {
		coll.RecordExecution(result("x", "c", st, 20, 10, 3))
	}
	var diag bytes.Buffer
	stop, err := serveMetrics("127.0.0.1:0", coll, &diag)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	addr, ok := strings.CutPrefix(strings.TrimSpace(diag.String()), "cgmon: serving /metrics on ")
	if !ok {
		t.Fatalf("serveMetrics printed %q, not the address it got", diag.String())
	}
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("/metrics is not Prometheus text: %v", err)
	}
	out := make(map[string]map[string]bool)
	add := func(name string, m *dto.Metric, extra ...string) {
		labels := map[string]bool{"instance": true, "job": true}
		for _, l := range m.Label {
			labels[l.GetName()] = true
		}
		for _, e := range extra {
			labels[e] = true
		}
		out[name] = labels
	}
	for name, f := range fams {
		for _, m := range f.Metric {
			if f.GetType() == dto.MetricType_HISTOGRAM {
				add(name+"_bucket", m, "le")
				add(name+"_sum", m)
				add(name+"_count", m)
			} else {
				add(name, m)
			}
		}
	}
	return out
}

// promqlWords are PromQL's functions, aggregations and keywords; any other
// identifier in an expression outside a label matcher, a label list or a
// range is a metric name.
var promqlWords = map[string]bool{
	"sum": true, "min": true, "max": true, "avg": true, "count": true, "group": true, "stddev": true, "stdvar": true,
	"topk": true, "bottomk": true, "quantile": true, "count_values": true,
	"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
	"and": true, "or": true, "unless": true, "bool": true, "offset": true,
}

// selector is a metric name in an expression and the label names its
// matchers use.
type selector struct {
	name   string
	labels []string
}

// promqlSelectors returns the metric selectors of a PromQL expression. It
// is a lexer, not a parser: it skips strings, Grafana variables ($x,
// ${x}), ranges ([5m]), label lists after by/without/on/ignoring and
// group_left/right, function and aggregation names, and numbers.
func promqlSelectors(t *testing.T, expr string) []selector {
	t.Helper()
	var out []selector
	isStart := func(c byte) bool { return c == '_' || c == ':' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
	isPart := func(c byte) bool { return isStart(c) || c >= '0' && c <= '9' }
	skipSpace := func(i int) int {
		for i < len(expr) && strings.ContainsRune(" \t\n", rune(expr[i])) {
			i++
		}
		return i
	}
	closing := func(i int, c byte) int {
		j := strings.IndexByte(expr[i:], c)
		if j < 0 {
			t.Fatalf("%q: no %c after byte %d", expr, c, i)
		}
		return i + j
	}
	// quoted returns the index after the string that opens at i.
	quoted := func(i int) int {
		q := expr[i]
		for j := i + 1; j < len(expr); j++ {
			switch expr[j] {
			case '\\':
				j++
			case q:
				return j + 1
			}
		}
		t.Fatalf("%q: a string that opens at byte %d does not close", expr, i)
		return 0
	}
	// matchers reads the label matchers that open at the '{' at i and
	// returns their label names and the index after the '}'.
	matchers := func(i int) ([]string, int) {
		var labels []string
		for i = skipSpace(i + 1); i < len(expr) && expr[i] != '}'; i = skipSpace(i) {
			j := i
			for j < len(expr) && isPart(expr[j]) {
				j++
			}
			labels = append(labels, expr[i:j])
			i = skipSpace(j)
			for i < len(expr) && strings.IndexByte("=!~", expr[i]) >= 0 {
				i++
			}
			i = skipSpace(i)
			if i >= len(expr) || !strings.ContainsRune("\"'`", rune(expr[i])) {
				t.Fatalf("%q: a label matcher without a quoted value at byte %d", expr, i)
			}
			i = skipSpace(quoted(i))
			if i < len(expr) && expr[i] == ',' {
				i++
			}
		}
		return labels, i + 1
	}
	for i := 0; i < len(expr); {
		c := expr[i]
		switch {
		case c == '"' || c == '\'' || c == '`':
			i = quoted(i)
		case c == '$':
			i++
			if i < len(expr) && expr[i] == '{' {
				i = closing(i, '}') + 1
			}
			for i < len(expr) && isPart(expr[i]) {
				i++
			}
		case c == '[':
			i = closing(i, ']') + 1
		case c >= '0' && c <= '9' || c == '.':
			for i < len(expr) && (isPart(expr[i]) || expr[i] == '.') {
				i++
			}
		case isStart(c):
			j := i
			for j < len(expr) && isPart(expr[j]) {
				j++
			}
			word := expr[i:j]
			next := skipSpace(j)
			switch {
			case word == "by" || word == "without" || word == "on" || word == "ignoring" || word == "group_left" || word == "group_right":
				if next < len(expr) && expr[next] == '(' {
					j = closing(next, ')') + 1 // a list of label names
				}
			case promqlWords[word] || next < len(expr) && expr[next] == '(':
				// a function, an aggregation or a keyword
			default:
				s := selector{name: word}
				if next < len(expr) && expr[next] == '{' {
					s.labels, j = matchers(next)
				}
				out = append(out, s)
			}
			i = j
		default:
			i++
		}
	}
	return out
}

// TestPromqlSelectors checks the lexer the dashboard test relies on.
func TestPromqlSelectors(t *testing.T) {
	got := promqlSelectors(t, `histogram_quantile(0.95, sum by (le, language) (rate(a_bucket{language=~"$language", x!="}"}[$__rate_interval])))
/ on (language) group_left sum without (status) (increase(b[5m] offset 1h)) * ${factor} > bool 0.5e3`)
	want := []selector{{"a_bucket", []string{"language", "x"}}, {"b", nil}}
	if len(got) != len(want) {
		t.Fatalf("%+v, want %+v", got, want)
	}
	for i := range want {
		if got[i].name != want[i].name || strings.Join(got[i].labels, ",") != strings.Join(want[i].labels, ",") {
			t.Errorf("%+v, want %+v", got[i], want[i])
		}
	}
}

// TestGrafanaDashboard checks examples/grafana-dashboard.json: it is JSON a
// Grafana can import (a title, panels with positions and queries on the
// datasource variable), and every metric its queries and variables use is
// one that /metrics serves, with the labels they match on.
func TestGrafanaDashboard(t *testing.T) {
	b, err := os.ReadFile(dashboardPath)
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Title      string `json:"title"`
		UID        string `json:"uid"`
		Templating struct {
			List []struct {
				Name       string `json:"name"`
				Type       string `json:"type"`
				Definition string `json:"definition"`
			} `json:"list"`
		} `json:"templating"`
		Panels []struct {
			ID         int             `json:"id"`
			Type       string          `json:"type"`
			Title      string          `json:"title"`
			GridPos    map[string]int  `json:"gridPos"`
			Datasource json.RawMessage `json:"datasource"`
			Targets    []struct {
				Expr       string          `json:"expr"`
				RefID      string          `json:"refId"`
				Datasource json.RawMessage `json:"datasource"`
			} `json:"targets"`
		} `json:"panels"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("%s is not JSON: %v", dashboardPath, err)
	}
	if d.Title == "" || d.UID == "" || len(d.Panels) == 0 {
		t.Fatalf("title %q, uid %q, %d panels: not a dashboard", d.Title, d.UID, len(d.Panels))
	}
	served := servedSeries(t)
	used := make(map[string]bool)
	check := func(where, expr string) {
		sels := promqlSelectors(t, expr)
		if len(sels) == 0 {
			t.Errorf("%s: %q uses no metric", where, expr)
		}
		for _, s := range sels {
			labels, ok := served[s.name]
			if !ok {
				t.Errorf("%s: metric %s is not served by /metrics", where, s.name)
				continue
			}
			used[s.name] = true
			for _, l := range s.labels {
				if !labels[l] {
					t.Errorf("%s: %s has no label %q", where, s.name, l)
				}
			}
		}
	}
	ids := make(map[int]bool)
	const dsVar = `{"type":"prometheus","uid":"${datasource}"}`
	for _, p := range d.Panels {
		where := "panel " + p.Title
		if ids[p.ID] || p.ID == 0 {
			t.Errorf("%s: id %d missing or repeated", where, p.ID)
		}
		ids[p.ID] = true
		if p.GridPos["w"] <= 0 || p.GridPos["h"] <= 0 || p.GridPos["x"]+p.GridPos["w"] > 24 {
			t.Errorf("%s: gridPos %v does not fit Grafana's 24 columns", where, p.GridPos)
		}
		if len(p.Targets) == 0 {
			t.Errorf("%s: no query", where)
		}
		for _, tg := range p.Targets {
			if compact(t, tg.Datasource) != dsVar || compact(t, p.Datasource) != dsVar {
				t.Errorf("%s: the datasource is not the ${datasource} variable", where)
			}
			check(where+" "+tg.RefID, tg.Expr)
		}
	}
	vars := make(map[string]bool)
	labelValues := regexp.MustCompile(`^label_values\(([a-zA-Z_:][a-zA-Z0-9_:]*),\s*([a-zA-Z_][a-zA-Z0-9_]*)\)$`)
	for _, v := range d.Templating.List {
		vars[v.Name] = true
		if v.Type != "query" {
			continue
		}
		m := labelValues.FindStringSubmatch(v.Definition)
		if m == nil {
			t.Errorf("variable %s: %q is not label_values(metric, label)", v.Name, v.Definition)
			continue
		}
		if labels, ok := served[m[1]]; !ok || !labels[m[2]] {
			t.Errorf("variable %s: %s{%s} is not served", v.Name, m[1], m[2])
		}
	}
	for _, v := range []string{"datasource", "language", "instance"} {
		if !vars[v] {
			t.Errorf("the queries use $%s, which the dashboard does not define", v)
		}
	}
	// What the issue asks the dashboard to show: rates per language, time
	// percentiles, the memory distribution, OOM kills and timeouts.
	for _, m := range []string{"cgmon_executions_total", "cgmon_execution_duration_seconds_bucket",
		"cgmon_execution_memory_peak_bytes_bucket", "cgmon_execution_oom_kills_total"} {
		if !used[m] {
			t.Errorf("no panel uses %s", m)
		}
	}
	if !strings.Contains(string(b), `status=\"timeout\"`) {
		t.Error("no panel shows timeouts (cgmon_executions_total{status=\"timeout\"})")
	}
	var names []string
	for n := range used {
		names = append(names, n)
	}
	sort.Strings(names)
	t.Logf("metrics used: %s", strings.Join(names, ", "))
}

func compact(t *testing.T, raw json.RawMessage) string {
	t.Helper()
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		t.Fatalf("%s: %v", raw, err)
	}
	return b.String()
}
