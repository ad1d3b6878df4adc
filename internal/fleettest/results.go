// Package fleettest runs the Slurm example of cgmon (examples/slurm) on a
// real one-node Slurm started from Debian's packages: a job array of 3
// tasks that run `cgmon batch --shard`, one of them killed half-way and
// requeued to --resume, and checks that the result files of the three
// tasks equal an unsharded run, id for id. See Run, and cmd/fleettest for
// the command that `make fleettest` runs.
package fleettest

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"sort"
)

// Result is the part of one line of a batch's output that does not
// depend on when or where it ran.
type Result struct {
	ID          string   `json:"id"`
	RepeatIndex int      `json:"repeat_index"`
	InputLine   int      `json:"input_line"`
	Status      string   `json:"status"`
	ExitCode    int      `json:"exit_code"`
	TimedOut    bool     `json:"timed_out"`
	Language    string   `json:"language"`
	Command     []string `json:"command"`
	Error       string   `json:"error"`
}

// Key is what a result is matched by: its id and repeat_index.
type Key struct {
	ID          string
	RepeatIndex int
}

// String returns the key as id/repeat_index.
func (k Key) String() string { return fmt.Sprintf("%s/%d", k.ID, k.RepeatIndex) }

// Key returns the result's key.
func (r *Result) Key() Key { return Key{r.ID, r.RepeatIndex} }

// ReadResults reads a batch's output file. A line that is not a JSON
// object, or a last line without its newline, is an error: the files the
// harness checks must hold whole results only.
func ReadResults(path string) ([]Result, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return parseResults(path, b)
}

// parseResults parses the lines of b, the content of the file path.
func parseResults(path string, b []byte) ([]Result, error) {
	if len(b) > 0 && b[len(b)-1] != '\n' {
		return nil, fmt.Errorf("%s ends in a line without its newline (a torn result)", path)
	}
	var out []Result
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 64<<20)
	for n := 1; sc.Scan(); n++ {
		var r Result
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			return nil, fmt.Errorf("%s:%d: %v", path, n, err)
		}
		if r.Status == "" {
			return nil, fmt.Errorf("%s:%d: no status: not a result line", path, n)
		}
		out = append(out, r)
	}
	return out, sc.Err()
}

// Shard returns the shard of id among n as the README documents it,
// computed here on its own rather than by cgmon's code: the first 8 bytes
// of the SHA-256 of the id, read as a big-endian unsigned integer, modulo
// n.
func Shard(id string, n int) int {
	sum := sha256.Sum256([]byte(id))
	return int(binary.BigEndian.Uint64(sum[:8]) % uint64(n))
}

// Merge returns the results of files by key, a later line (of the same
// file, or of a later file) replacing an earlier one, as `cgmon summary`
// counts them.
func Merge(files ...[]Result) map[Key]Result {
	out := make(map[Key]Result)
	for _, f := range files {
		for _, r := range f {
			out[r.Key()] = r
		}
	}
	return out
}

// Diff compares got (the merged shards) with want (the unsharded run) and
// returns a sentence for each difference, sorted: a key on one side only,
// or a field that differs. It is empty when they are equal, id for id.
func Diff(want, got map[Key]Result) []string {
	var out []string
	for k, w := range want {
		g, ok := got[k]
		if !ok {
			out = append(out, fmt.Sprintf("%s: in the unsharded run, in no shard", k))
			continue
		}
		for _, f := range []struct {
			name   string
			wv, gv any
		}{
			{"input_line", w.InputLine, g.InputLine}, {"status", w.Status, g.Status},
			{"exit_code", w.ExitCode, g.ExitCode}, {"timed_out", w.TimedOut, g.TimedOut},
			{"language", w.Language, g.Language}, {"error", w.Error, g.Error},
		} {
			if f.wv != f.gv {
				out = append(out, fmt.Sprintf("%s: %s is %v in its shard, %v unsharded", k, f.name, f.gv, f.wv))
			}
		}
		if !slices.Equal(w.Command, g.Command) {
			out = append(out, fmt.Sprintf("%s: command is %q in its shard, %q unsharded", k, g.Command, w.Command))
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			out = append(out, fmt.Sprintf("%s: in a shard, not in the unsharded run", k))
		}
	}
	sort.Strings(out)
	return out
}

// CheckShardFile checks the results of shard k of n: each is in that
// shard by the documented formula, and no run has two results (a
// canceled or rejected line is not a result: --resume does it again). It
// returns a sentence for each problem.
func CheckShardFile(path string, results []Result, k, n int) []string {
	var out []string
	final := map[Key]int{}
	for i, r := range results {
		if s := Shard(r.ID, n); r.ID != "" && s != k {
			out = append(out, fmt.Sprintf("%s:%d: %s is in shard %d, not %d", path, i+1, r.Key(), s, k))
		}
		if r.Status != "canceled" && r.Status != "rejected" {
			final[r.Key()]++
		}
	}
	for key, c := range final {
		if c > 1 {
			out = append(out, fmt.Sprintf("%s: %s has %d results: a run was done again after it had one", path, key, c))
		}
	}
	sort.Strings(out)
	return out
}
