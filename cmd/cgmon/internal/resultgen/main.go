// Command resultgen writes synthetic result files, as a batch spread over
// several machines would leave them, for measuring `cgmon summary`: N
// results of distinct ids in F files, each line the JSON report cgmon
// writes (sources, reasons, limits and all), plus a share of ids run
// again in a later file, as a resumed shard does. The output depends only
// on the flags.
//
//	go run ./cmd/cgmon/internal/resultgen -n 1000000 -files 3 -dir /tmp/results
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/cgmon/cgmon/cmd/cgmon/internal/cli"
	"github.com/cgmon/cgmon/metrics"
)

func main() {
	n := flag.Int("n", 1000000, "distinct results")
	files := flag.Int("files", 3, "files to spread them over")
	dup := flag.Float64("dup", 0.01, "share of results written again in the next file")
	dir := flag.String("dir", ".", "directory to write shard-K.ndjson into")
	flag.Parse()
	if err := run(*n, *files, *dup, *dir); err != nil {
		fmt.Fprintln(os.Stderr, "resultgen:", err)
		os.Exit(1)
	}
}

var languages = []string{"python", "c", "cpp", "go", "rust", "java", "javascript", "ruby"}

func run(n, files int, dup float64, dir string) error {
	if n < 1 || files < 1 || dup < 0 || dup > 1 {
		return fmt.Errorf("want -n >= 1, -files >= 1 and 0 <= -dup <= 1")
	}
	outs := make([]*bufio.Writer, files)
	for k := range outs {
		f, err := os.Create(filepath.Join(dir, fmt.Sprintf("shard-%d.ndjson", k)))
		if err != nil {
			return err
		}
		defer f.Close()
		outs[k] = bufio.NewWriterSize(f, 1<<20)
	}
	rng := rand.New(rand.NewPCG(14, 3))
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	limit := int64(512 << 20)
	limits := &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: &limit}}
	for i := range n {
		ex := execution(rng, i, t0, limits)
		k := i % files
		if err := write(outs[k], &ex, i+1); err != nil {
			return err
		}
		if rng.Float64() < dup {
			// Run again after a preemption: the later result differs.
			again := execution(rng, i, t0, limits)
			if err := write(outs[(k+1)%files], &again, i+1); err != nil {
				return err
			}
		}
	}
	for _, w := range outs {
		if err := w.Flush(); err != nil {
			return err
		}
	}
	return nil
}

// execution is one plausible result: a log-normal wall time around 80 ms,
// most of it CPU, a memory peak around 20 MiB, and now and then an error,
// a timeout or an OOM kill.
func execution(rng *rand.Rand, i int, t0 time.Time, limits *specs.LinuxResources) metrics.Execution {
	wall := time.Duration(math.Exp(rng.NormFloat64()*0.8+math.Log(0.08)) * float64(time.Second))
	cpu := time.Duration(float64(wall) * (0.5 + 0.5*rng.Float64()))
	mem := uint64(math.Exp(rng.NormFloat64()*0.7+math.Log(20)) * (1 << 20))
	ex := metrics.Execution{
		ID:         fmt.Sprintf("job-%07d", i),
		Language:   languages[i%len(languages)],
		CodeLength: 200 + rng.IntN(4000),
		Command:    []string{"/usr/bin/runner", "--sandbox", fmt.Sprintf("/work/submissions/%07d/main", i)},
		Status:     metrics.StatusSuccess,
		StartedAt:  t0.Add(time.Duration(i) * time.Millisecond),
		Backend:    metrics.BackendCgroup2,
		Limits:     limits,
	}
	switch r := rng.Float64(); {
	case r < 0.05:
		ex.Status, ex.ExitCode, ex.Reason = metrics.StatusError, 1, "exit status 1"
	case r < 0.06:
		ex.Status, ex.TimedOut, ex.ExitCode, ex.Signal, ex.Reason = metrics.StatusTimeout, true, -1, 9, "timeout 5s"
		wall = 5 * time.Second
	case r < 0.065:
		ex.Status, ex.OOMKilled, ex.ExitCode, ex.Signal = metrics.StatusOOM, true, -1, 9
		mem = 512 << 20
	}
	ex.EndedAt = ex.StartedAt.Add(wall)
	u := &ex.Usage
	u.WallTime = metrics.Measured(wall, metrics.SourceMonotonic)
	u.CPUUser = metrics.Measured(cpu*9/10, metrics.SourceCgroupCPUStat)
	u.CPUSystem = metrics.Measured(cpu/10, metrics.SourceCgroupCPUStat)
	u.CPUTotal = metrics.Measured(cpu, metrics.SourceCgroupCPUStat)
	u.CPUSamples = metrics.Measured(int(wall/(100*time.Millisecond)), metrics.SourceSampler)
	u.CPUAveragePercent = metrics.Measured(100*cpu.Seconds()/wall.Seconds(), metrics.SourceCgroupCPUStat)
	u.CPUPeakPercent = metrics.Unavailable[float64]("the execution ended before the first sample")
	u.MemoryStart = metrics.Unavailable[uint64]("the execution ended before the first sample")
	u.MemoryPeak = metrics.Measured(mem, metrics.SourceCgroupMemoryPeak)
	u.PidsPeak = metrics.Measured[uint64](1, metrics.SourceCgroupPidsPeak)
	u.IORead = metrics.Measured[uint64](0, metrics.SourceCgroupIOStat)
	u.IOWrite = metrics.Measured[uint64](0, metrics.SourceCgroupIOStat)
	u.CPUThrottled = metrics.Measured[time.Duration](0, metrics.SourceCgroupCPUStat)
	return ex
}

func write(w *bufio.Writer, ex *metrics.Execution, line int) error {
	rep := cli.NewReport(ex)
	rep.InputLine = line
	b, err := json.Marshal(rep)
	if err != nil {
		return err
	}
	// As batch writes it: the protocol version first, the repeat index
	// last.
	b = append([]byte(fmt.Sprintf(`{"protocol":%d,`, cli.ProtocolVersion)), b[1:len(b)-1]...)
	b = append(b, `,"repeat_index":0}`+"\n"...)
	_, err = w.Write(b)
	return err
}
