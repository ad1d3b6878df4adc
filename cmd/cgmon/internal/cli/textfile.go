package cli

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"

	"github.com/cgmon/cgmon/metrics"
	"github.com/cgmon/cgmon/metrics/prom"
)

// The node_exporter textfile collector reads every *.prom file of one
// directory at each scrape. cgmon keeps in such a file the same metrics
// that /metrics serves, cumulated over every `run` and `batch` that wrote
// to it: each writer adds what it recorded since its last write, under a
// lock, and replaces the file by a rename, so that a scrape never sees a
// half-written file and concurrent writers lose nothing.

// textfileInterval is how often `batch --prom-textfile` adds its progress
// to the file.
const textfileInterval = 15 * time.Second

// checkTextfilePath checks a --prom-textfile path without writing
// anything: the collector reads only *.prom files, and the directory must
// exist (cgmon does not create node_exporter's directory).
func checkTextfilePath(path string) error {
	if path == "" {
		return nil
	}
	if filepath.Ext(path) != ".prom" {
		return fmt.Errorf("%s: node_exporter's textfile collector reads only files named *.prom", path)
	}
	dir := filepath.Dir(path)
	st, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("directory %s: %w", dir, err)
	}
	if !st.IsDir() {
		return fmt.Errorf("%s is not a directory", dir)
	}
	return nil
}

// gatherCollector returns the metric families that /metrics serves for
// coll.
func gatherCollector(coll *metrics.Collector) ([]*dto.MetricFamily, error) {
	reg := prometheus.NewRegistry()
	if err := reg.Register(prom.NewCollector(coll, nil)); err != nil {
		return nil, err
	}
	return reg.Gather()
}

// addExecutionToTextfile adds one execution to the textfile at path.
func addExecutionToTextfile(path string, ex *metrics.Execution) error {
	coll := metrics.NewCollector(metrics.WithRecent(0))
	if err := coll.Record(*ex); err != nil {
		return fmt.Errorf("--prom-textfile: %w", err)
	}
	fams, err := gatherCollector(coll)
	if err != nil {
		return fmt.Errorf("--prom-textfile: %w", err)
	}
	if err := addToTextfile(path, fams); err != nil {
		return fmt.Errorf("--prom-textfile: %w", err)
	}
	return nil
}

// promTextfile adds a running collector's statistics to a textfile: each
// Flush adds what was recorded since the previous one.
type promTextfile struct {
	path string
	coll *metrics.Collector

	mu   sync.Mutex
	done []*dto.MetricFamily // what earlier flushes added
}

// newPromTextfile returns a writer of coll's statistics to path.
func newPromTextfile(path string, coll *metrics.Collector) *promTextfile {
	return &promTextfile{path: path, coll: coll}
}

// Flush adds to the file what the collector recorded since the last Flush.
func (t *promTextfile) Flush() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	now, err := gatherCollector(t.coll)
	if err != nil {
		return err
	}
	delta, err := combineFamilies(now, t.done, -1)
	if err != nil {
		return err
	}
	if err := addToTextfile(t.path, delta); err != nil {
		return err
	}
	t.done = now
	return nil
}

// startPromTextfile flushes coll's statistics to path every interval until
// the returned function is called; that function flushes a last time and
// returns the first error any flush met. The batch loop calls it once.
func startPromTextfile(path string, coll *metrics.Collector, interval time.Duration) (stop func() error) {
	t := newPromTextfile(path, coll)
	quit := make(chan struct{})
	done := make(chan struct{})
	var first error
	go func() {
		defer close(done)
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			select {
			case <-tick.C:
				if err := t.Flush(); err != nil && first == nil {
					first = err
				}
			case <-quit:
				return
			}
		}
	}()
	return func() error {
		close(quit)
		<-done
		if err := t.Flush(); err != nil && first == nil {
			first = err
		}
		if first != nil {
			return fmt.Errorf("--prom-textfile: %w", first)
		}
		return nil
	}
}

// addToTextfile adds fams to the metrics in the file at path (counters and
// histograms are summed series by series; other families in the file are
// kept as they are), atomically: under an exclusive lock on a lock file
// beside it, written to a temporary file in the same directory and renamed
// over it. A file that is not Prometheus text is left alone and is an
// error.
func addToTextfile(path string, fams []*dto.MetricFamily) error {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	lock, err := os.OpenFile(filepath.Join(dir, "."+base+".lock"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		return fmt.Errorf("locking %s: %w", lock.Name(), err)
	}
	defer unix.Flock(int(lock.Fd()), unix.LOCK_UN)

	var old []*dto.MetricFamily
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return err
	default:
		parser := expfmt.NewTextParser(model.UTF8Validation)
		byName, err := parser.TextToMetricFamilies(bytes.NewReader(b))
		if err != nil {
			return fmt.Errorf("%s is not a Prometheus text file cgmon can add to: %v", path, err)
		}
		for _, f := range byName {
			old = append(old, f)
		}
	}
	merged, err := combineFamilies(old, fams, +1)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	var out bytes.Buffer
	for _, f := range merged {
		if _, err := expfmt.MetricFamilyToText(&out, f); err != nil {
			return err
		}
	}

	tmp, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // fails harmlessly once renamed
	_, err = tmp.Write(out.Bytes())
	if err == nil {
		err = tmp.Chmod(0o644)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// combineFamilies returns a + sign*b, family by family and series by
// series, sorted by name: counters, untyped values and histograms (count,
// sum and buckets) are added; a gauge takes b's value when sign is
// positive and keeps a's otherwise. A family of one name
// with two types, or histograms with different buckets, are an error.
func combineFamilies(a, b []*dto.MetricFamily, sign float64) ([]*dto.MetricFamily, error) {
	byName := make(map[string]*dto.MetricFamily, len(a)+len(b))
	for _, f := range a {
		f = proto.Clone(f).(*dto.MetricFamily)
		for _, m := range f.Metric {
			dropInfBucket(m)
		}
		byName[f.GetName()] = f
	}
	for _, fb := range b {
		fa, ok := byName[fb.GetName()]
		if !ok {
			fa = &dto.MetricFamily{Name: fb.Name, Help: fb.Help, Type: fb.Type}
			byName[fb.GetName()] = fa
		}
		if fa.GetType() != fb.GetType() {
			return nil, fmt.Errorf("metric %s is a %s in one place and a %s in the other",
				fb.GetName(), strings.ToLower(fa.GetType().String()), strings.ToLower(fb.GetType().String()))
		}
		series := make(map[string]*dto.Metric, len(fa.Metric))
		for _, m := range fa.Metric {
			series[labelKey(m)] = m
		}
		for _, mb := range fb.Metric {
			mb = proto.Clone(mb).(*dto.Metric)
			dropInfBucket(mb)
			ma, ok := series[labelKey(mb)]
			if !ok {
				ma = zeroLike(mb)
				fa.Metric = append(fa.Metric, ma)
				series[labelKey(mb)] = ma
			}
			if err := addMetric(ma, mb, fb.GetType(), sign); err != nil {
				return nil, fmt.Errorf("metric %s: %w", fb.GetName(), err)
			}
		}
	}
	out := make([]*dto.MetricFamily, 0, len(byName))
	for _, f := range byName {
		sort.Slice(f.Metric, func(i, j int) bool { return labelKey(f.Metric[i]) < labelKey(f.Metric[j]) })
		out = append(out, f)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].GetName() < out[j].GetName() })
	return out, nil
}

// labelKey identifies a series by its sorted label pairs.
func labelKey(m *dto.Metric) string {
	pairs := make([]string, 0, len(m.Label))
	for _, l := range m.Label {
		pairs = append(pairs, l.GetName()+"\x00"+l.GetValue())
	}
	sort.Strings(pairs)
	return strings.Join(pairs, "\x01")
}

// dropInfBucket removes a histogram's +Inf bucket: the text format writes
// it from the sample count, and Gather leaves it out.
func dropInfBucket(m *dto.Metric) {
	h := m.GetHistogram()
	if h == nil {
		return
	}
	kept := h.Bucket[:0]
	for _, b := range h.Bucket {
		if !math.IsInf(b.GetUpperBound(), +1) {
			kept = append(kept, b)
		}
	}
	h.Bucket = kept
}

// zeroLike returns a series with m's labels and a zero value of m's kind.
func zeroLike(m *dto.Metric) *dto.Metric {
	z := &dto.Metric{Label: m.Label}
	switch {
	case m.Counter != nil:
		z.Counter = &dto.Counter{Value: proto.Float64(0)}
	case m.Gauge != nil:
		z.Gauge = &dto.Gauge{Value: proto.Float64(0)}
	case m.Untyped != nil:
		z.Untyped = &dto.Untyped{Value: proto.Float64(0)}
	case m.Histogram != nil:
		z.Histogram = &dto.Histogram{SampleCount: proto.Uint64(0), SampleSum: proto.Float64(0)}
		for _, b := range m.Histogram.Bucket {
			z.Histogram.Bucket = append(z.Histogram.Bucket, &dto.Bucket{UpperBound: b.UpperBound, CumulativeCount: proto.Uint64(0)})
		}
	}
	return z
}

// addMetric adds sign*b to a, series of the same labels and type.
func addMetric(a, b *dto.Metric, typ dto.MetricType, sign float64) error {
	switch typ {
	case dto.MetricType_COUNTER:
		a.Counter.Value = proto.Float64(a.Counter.GetValue() + sign*b.Counter.GetValue())
	case dto.MetricType_UNTYPED:
		a.Untyped.Value = proto.Float64(a.Untyped.GetValue() + sign*b.Untyped.GetValue())
	case dto.MetricType_GAUGE:
		if sign > 0 {
			a.Gauge.Value = proto.Float64(b.Gauge.GetValue())
		}
	case dto.MetricType_HISTOGRAM:
		ha, hb := a.Histogram, b.Histogram
		if len(ha.Bucket) != len(hb.Bucket) {
			return fmt.Errorf("histogram buckets differ (%d and %d bounds)", len(ha.Bucket), len(hb.Bucket))
		}
		for i := range ha.Bucket {
			if ha.Bucket[i].GetUpperBound() != hb.Bucket[i].GetUpperBound() {
				return fmt.Errorf("histogram buckets differ (le=%g and le=%g)", ha.Bucket[i].GetUpperBound(), hb.Bucket[i].GetUpperBound())
			}
			ha.Bucket[i].CumulativeCount = proto.Uint64(addCount(ha.Bucket[i].GetCumulativeCount(), hb.Bucket[i].GetCumulativeCount(), sign))
		}
		ha.SampleCount = proto.Uint64(addCount(ha.GetSampleCount(), hb.GetSampleCount(), sign))
		ha.SampleSum = proto.Float64(ha.GetSampleSum() + sign*hb.GetSampleSum())
	default:
		return fmt.Errorf("cgmon cannot add metrics of type %s", strings.ToLower(typ.String()))
	}
	return nil
}

// addCount returns a + sign*b for counts; a count never goes below 0.
func addCount(a, b uint64, sign float64) uint64 {
	if sign > 0 {
		return a + b
	}
	if b > a {
		return 0
	}
	return a - b
}
