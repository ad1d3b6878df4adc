// Command medians reads hyperfine JSON exports of side-by-side runs and
// prints each command's median and its ratio to a baseline, per run, then
// the ratio of one command to the baseline in each run and the median of
// those ratios. hyperfine's own summary uses means, which one slow run
// skews; and the floor itself moves between runs, so only ratios measured
// in the same run are compared.
//
//	medians -cmd PREFIX -base PREFIX [-per N] [-target X] FILE.json...
//
// A command is named by a prefix of its command line in the export; each
// prefix must match exactly one command of every file. With -per N, times
// are divided by N (one hyperfine run of a batch of N executions). With
// -target X, the verdict says whether the median ratio is at most X; the
// exit status is 0 either way (a benchmark reports, the tests gate).
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
)

// export is the part of a hyperfine JSON export that is read.
type export struct {
	Results []struct {
		Command string  `json:"command"`
		Median  float64 `json:"median"` // in seconds
	} `json:"results"`
}

// run is one export: its file name and its commands' medians in seconds.
type run struct {
	name     string
	commands []string
	medians  []float64
}

// find returns the index of the one command of r that starts with prefix.
func (r run) find(prefix string) (int, error) {
	found := -1
	for i, c := range r.commands {
		if strings.HasPrefix(c, prefix) {
			if found >= 0 {
				return 0, fmt.Errorf("%s: more than one command starts with %q", r.name, prefix)
			}
			found = i
		}
	}
	if found < 0 {
		return 0, fmt.Errorf("%s: no command starts with %q", r.name, prefix)
	}
	return found, nil
}

// parse reads one export.
func parse(name string, b []byte) (run, error) {
	var e export
	if err := json.Unmarshal(b, &e); err != nil {
		return run{}, fmt.Errorf("%s: %v", name, err)
	}
	r := run{name: name}
	for _, res := range e.Results {
		if res.Median <= 0 {
			return run{}, fmt.Errorf("%s: command %q has no positive median", name, res.Command)
		}
		r.commands = append(r.commands, res.Command)
		r.medians = append(r.medians, res.Median)
	}
	if len(r.commands) == 0 {
		return run{}, fmt.Errorf("%s: no results", name)
	}
	return r, nil
}

// median returns the median of xs (the mean of the middle two when their
// number is even); xs is not changed.
func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// report writes each run's table and the ratios of cmd to base, and
// returns the median ratio.
func report(w io.Writer, runs []run, cmd, base string, per int, target float64) (float64, error) {
	unit := ""
	if per > 1 {
		unit = fmt.Sprintf(" per execution (of %d)", per)
	}
	var ratios []float64
	for _, r := range runs {
		b, err := r.find(base)
		if err != nil {
			return 0, err
		}
		c, err := r.find(cmd)
		if err != nil {
			return 0, err
		}
		fmt.Fprintf(w, "%s\n| command | median%s | ratio |\n|---|---|---|\n", r.name, unit)
		for i, command := range r.commands {
			fmt.Fprintf(w, "| `%s` | %.3f ms | %.2fx |\n", command, r.medians[i]*1000/float64(max(per, 1)), r.medians[i]/r.medians[b])
		}
		ratios = append(ratios, r.medians[c]/r.medians[b])
	}
	m := median(ratios)
	parts := make([]string, len(ratios))
	for i, x := range ratios {
		parts[i] = fmt.Sprintf("%.3fx", x)
	}
	fmt.Fprintf(w, "ratio of %q to %q in each run: %s; median %.3fx", cmd, base, strings.Join(parts, ", "), m)
	switch {
	case target <= 0:
		fmt.Fprintln(w)
	case m <= target:
		fmt.Fprintf(w, " (target %.2fx: met)\n", target)
	default:
		fmt.Fprintf(w, " (target %.2fx: NOT met)\n", target)
	}
	return m, nil
}

func main() {
	cmd := flag.String("cmd", "", "`prefix` of the measured command's command line")
	base := flag.String("base", "", "`prefix` of the baseline's command line")
	per := flag.Int("per", 1, "executions per hyperfine run (times are divided by it)")
	target := flag.Float64("target", 0, "the largest median ratio the target allows (0: none)")
	flag.Parse()
	if *cmd == "" || *base == "" || flag.NArg() == 0 || *per < 1 {
		fmt.Fprintln(os.Stderr, "usage: medians -cmd PREFIX -base PREFIX [-per N] [-target X] FILE.json...")
		os.Exit(2)
	}
	var runs []run
	for _, name := range flag.Args() {
		b, err := os.ReadFile(name)
		if err == nil {
			var r run
			if r, err = parse(name, b); err == nil {
				runs = append(runs, r)
			}
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "medians:", err)
			os.Exit(1)
		}
	}
	if _, err := report(os.Stdout, runs, *cmd, *base, *per, *target); err != nil {
		fmt.Fprintln(os.Stderr, "medians:", err)
		os.Exit(1)
	}
}
