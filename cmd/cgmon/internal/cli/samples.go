package cli

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/cgmon/cgmon/metrics"
)

// samplesFormat returns "csv" or "ndjson" from a file name's extension.
func samplesFormat(name string) (string, error) {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".csv":
		return "csv", nil
	case ".ndjson", ".jsonl":
		return "ndjson", nil
	}
	return "", fmt.Errorf("%s: name the file *.csv or *.ndjson", name)
}

// sampleRow is one sample as written to a timeline file; Memory is null
// when it was not measured.
type sampleRow struct {
	ElapsedSeconds float64 `json:"elapsed_seconds"`
	CPUSeconds     float64 `json:"cpu_seconds"`
	CPUPercent     float64 `json:"cpu_percent"`
	MemoryBytes    *uint64 `json:"memory_bytes"`
}

func toRow(s metrics.Sample) sampleRow {
	r := sampleRow{ElapsedSeconds: s.Elapsed.Seconds(), CPUSeconds: s.CPU.Seconds(), CPUPercent: round(s.CPUPercent, 3)}
	if s.MemoryValid {
		m := s.Memory
		r.MemoryBytes = &m
	}
	return r
}

// writeSamples writes the timeline as CSV (a header, then one row per
// sample; an unmeasured memory is an empty cell) or as NDJSON (one object
// per sample; an unmeasured memory is null).
func writeSamples(w io.Writer, format string, samples []metrics.Sample) error {
	bw := bufio.NewWriter(w)
	switch format {
	case "csv":
		bw.WriteString("elapsed_seconds,cpu_seconds,cpu_percent,memory_bytes\n")
		for _, s := range samples {
			r := toRow(s)
			mem := ""
			if r.MemoryBytes != nil {
				mem = strconv.FormatUint(*r.MemoryBytes, 10)
			}
			fmt.Fprintf(bw, "%s,%s,%s,%s\n", ftoa(r.ElapsedSeconds), ftoa(r.CPUSeconds), ftoa(r.CPUPercent), mem)
		}
	case "ndjson":
		enc := json.NewEncoder(bw)
		for _, s := range samples {
			if err := enc.Encode(toRow(s)); err != nil {
				return err
			}
		}
	default:
		return fmt.Errorf("unknown samples format %q", format)
	}
	return bw.Flush()
}

func ftoa(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }
