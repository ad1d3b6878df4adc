//go:build linux

// Command soak runs the soak of issue 11 (see package soak and
// RELIABILITY.md) and exits 1 if any check failed. make soak builds it and
// a fresh cgmon, and runs it.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/cgmon/cgmon/cgroupmon"
	"github.com/cgmon/cgmon/internal/soak"
)

func main() {
	cgmon := flag.String("cgmon", "", "the cgmon `binary` the CLI scenarios run (required for batch, seq, parallel)")
	scenarios := flag.String("scenarios", "mixed,batch,seq,alive,parallel", "comma-separated `scenarios` to run")
	backend := flag.String("backend", "auto", "backend of the library scenarios and of the CLI: auto, cgroup2 or procfs")
	n := flag.Int("n", 10000, "executions of the mixed and batch scenarios")
	every := flag.Int("every", 1000, "executions between checkpoints")
	par := flag.Int("parallel", 8, "executions at once in the mixed and batch scenarios")
	seqTrue := flag.Int("seq-true", 2000, "sequential cgmon run -- /bin/true")
	seqDaemon := flag.Int("seq-daemon", 300, "sequential cgmon run -- sh -c 'sleep 0.05 & exit 0'")
	alive := flag.Int("alive", 1000, "executions alive at once")
	aliveBackends := flag.String("alive-backends", "auto", "comma-separated backends to run the alive scenario with")
	interval := flag.Duration("interval", 100*time.Millisecond, "sampling interval of the alive scenario")
	window := flag.Duration("window", 20*time.Second, "steady window over which the alive scenario measures the monitor's CPU")
	runs := flag.Int("runs", 50, "cgmon run started at once")
	heapDir := flag.String("heap-profiles", "", "write a heap profile of the mixed scenario at each checkpoint into `DIR`")
	noSink := flag.Bool("no-sink", false, "run the mixed scenario's Monitor without a Collector")
	flag.Parse()

	want := strings.Split(*scenarios, ",")
	needCLI := slices.ContainsFunc(want, func(s string) bool { return s == "batch" || s == "seq" || s == "parallel" })
	if needCLI && *cgmon == "" {
		fmt.Fprintln(os.Stderr, "soak: -cgmon is required for the batch, seq and parallel scenarios")
		os.Exit(2)
	}
	s, err := soak.New(os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		os.Exit(2)
	}
	s.Cgmon, s.Backend, s.Parallel = *cgmon, cgroupmon.BackendChoice(*backend), *par
	s.HeapProfiles, s.NoSink = *heapDir, *noSink
	if *heapDir != "" {
		runtime.MemProfileRate = 1 // every allocation: the growth looked for is small
	}
	header(*cgmon)
	t0 := time.Now()
	for _, sc := range want {
		t := time.Now()
		switch sc {
		case "mixed":
			s.Mixed(*n, *every)
		case "batch":
			s.Batch(*n, *every)
		case "seq":
			s.Sequential(*seqTrue, *seqDaemon)
		case "alive":
			for _, b := range strings.Split(*aliveBackends, ",") {
				s.Backend = cgroupmon.BackendChoice(b)
				s.Alive(*alive, *interval, *window, true)
			}
			s.Backend = cgroupmon.BackendChoice(*backend)
		case "parallel":
			s.Together(*runs)
		default:
			fmt.Fprintf(os.Stderr, "soak: unknown scenario %q\n", sc)
			os.Exit(2)
		}
		fmt.Printf("  (%s took %.0f s)\n\n", sc, time.Since(t).Seconds())
	}
	fmt.Printf("soak: %.0f s in all\n", time.Since(t0).Seconds())
	if p := s.Problems(); len(p) > 0 {
		fmt.Printf("soak: FAIL: %d problems\n", len(p))
		for _, x := range p {
			fmt.Println("  -", x)
		}
		os.Exit(1)
	}
	fmt.Println("soak: PASS: every execution ended as its kind must, with one result each; nothing left")
}

// header prints where and on what the soak runs.
func header(cgmon string) {
	kernel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Printf("soak: %s, kernel %s, %d CPUs, load %s, %s\n", time.Now().UTC().Format(time.RFC3339),
		strings.TrimSpace(string(kernel)), runtime.NumCPU(), strings.Join(strings.Fields(string(load))[:3], " "), runtime.Version())
	if cgmon != "" {
		out, err := exec.Command(cgmon, "version").CombinedOutput()
		if err == nil {
			fmt.Printf("soak: %s: %s\n", cgmon, bytes.TrimSpace(out))
		}
	}
	if rev, err := exec.Command("git", "describe", "--always", "--dirty").Output(); err == nil {
		fmt.Printf("soak: source %s\n", bytes.TrimSpace(rev))
	}
	fmt.Println()
}
