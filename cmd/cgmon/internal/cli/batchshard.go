package cli

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/cgmon/cgmon/metrics"
)

// shard is the part of a batch that `--shard K/N` runs: the lines whose
// id falls in shard k of n. The zero value (n = 0) runs every line.
type shard struct{ k, n int }

// maxShards is the largest N of --shard K/N.
const maxShards = 1 << 20

// parseShard reads the value of --shard: "K/N", with 0 <= K < N (K is
// 0-based, as JOB_COMPLETION_INDEX and SLURM_ARRAY_TASK_ID usually are).
func parseShard(s string) (shard, error) {
	ks, ns, ok := strings.Cut(s, "/")
	k, kerr := strconv.Atoi(ks)
	n, nerr := strconv.Atoi(ns)
	if !ok || kerr != nil || nerr != nil {
		return shard{}, errors.New("want K/N, such as 0/3")
	}
	if n < 1 || n > maxShards {
		return shard{}, fmt.Errorf("the N of K/N must be from 1 to %d", maxShards)
	}
	if k < 0 || k >= n {
		return shard{}, fmt.Errorf("the K of K/N must be from 0 to N-1 = %d", n-1)
	}
	return shard{k: k, n: n}, nil
}

// String returns the shard as --shard takes it.
func (s shard) String() string { return fmt.Sprintf("%d/%d", s.k, s.n) }

// has reports whether the shard runs the lines whose id is id.
func (s shard) has(id string) bool { return s.n == 0 || shardOf(id, s.n) == s.k }

// shardOf returns the shard, from 0 to n-1, of the lines whose id is id:
// the first 8 bytes of the SHA-256 of the id's bytes, read as a
// big-endian unsigned integer, modulo n. In Python:
// int.from_bytes(hashlib.sha256(id.encode()).digest()[:8], "big") % n.
// Result files outlive versions of cgmon, and a resumed shard must find
// the same lines it ran before: this function never changes
// (TestShardOfStable holds it to fixed values).
func shardOf(id string, n int) int {
	sum := sha256.Sum256([]byte(id))
	return int(binary.BigEndian.Uint64(sum[:8]) % uint64(n))
}

// runKey names one run of a keyed batch: a line's id and its
// repeat_index.
type runKey struct {
	id     string
	repeat int
}

// batchKeys is the state of a keyed batch (--shard or --resume): which
// lines are this shard's, which ids it has seen and which runs the
// output file already has. Only the goroutine that reads the input calls
// claim and todo.
type batchKeys struct {
	shard shard
	// done holds the runs that have a result in the output file (nil
	// without --resume).
	done map[runKey]struct{}
	// seen maps each id of this shard to the input line it is on.
	seen map[string]int
	// mu guards the counts: otherShards, the lines left to other shards,
	// and skippedDone, the runs skipped because their result was already
	// written.
	mu                       sync.Mutex
	otherShards, skippedDone int
}

// counts returns the lines left to other shards and the runs skipped as
// done.
func (k *batchKeys) counts() (otherShards, skippedDone int) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.otherShards, k.skippedDone
}

// errNoID rejects a line of a keyed batch that has no id.
var errNoID = errors.New(`no "id": with --shard or --resume, ids key the work and every line needs one`)

// claim reports whether input line n, with id (empty when it has none
// or it could not be read), belongs to this shard; a line without an id,
// or with the id of an earlier line of this shard, is an error that
// rejects it.
func (k *batchKeys) claim(n int, id string) (bool, error) {
	if id == "" {
		return false, errNoID
	}
	if !k.shard.has(id) {
		k.mu.Lock()
		k.otherShards++
		k.mu.Unlock()
		return false, nil
	}
	if first, ok := k.seen[id]; ok {
		return false, fmt.Errorf("id %q is also on line %d: with --shard or --resume, ids key the work and must be unique", id, first)
	}
	k.seen[id] = n
	return true, nil
}

// todo returns the repeat indexes of id, from 0 to repeat-1, that have
// no result yet.
func (k *batchKeys) todo(id string, repeat int) []int {
	runs := make([]int, 0, repeat)
	for r := range repeat {
		if _, ok := k.done[runKey{id, r}]; !ok {
			runs = append(runs, r)
		}
	}
	k.mu.Lock()
	k.skippedDone += repeat - len(runs)
	k.mu.Unlock()
	return runs
}

// maxIDProblems is how many problems checkInputIDs names in its error.
const maxIDProblems = 5

// checkInputIDs reads every line of a keyed batch's input file before
// anything runs and returns an error naming the lines that have no id or
// repeat the id of an earlier line (of any shard, so that every shard of
// a file fails alike).
func checkInputIDs(r io.Reader) error {
	seen := make(map[string]int)
	var problems []string
	count := 0
	add := func(msg string) {
		count++
		if len(problems) < maxIDProblems {
			problems = append(problems, msg)
		}
	}
	err := readLines(r, func(n int, line []byte, tooLong bool) bool {
		switch {
		case tooLong:
			add(fmt.Sprintf("line %d is longer than %d bytes: its id cannot be read", n, maxBatchLine))
		case len(bytes.TrimSpace(line)) == 0:
		default:
			id := lineID(line)
			if id == "" {
				add(fmt.Sprintf("line %d has no id", n))
			} else if first, ok := seen[id]; ok {
				add(fmt.Sprintf("line %d repeats the id %q of line %d", n, id, first))
			} else {
				seen[id] = n
			}
		}
		return true
	})
	if err != nil {
		return err
	}
	if count == 0 {
		return nil
	}
	more := ""
	if count > len(problems) {
		more = fmt.Sprintf(" (and %d more)", count-len(problems))
	}
	return fmt.Errorf("with --shard or --resume, ids key the work and every line needs a unique one: %s%s; nothing was run",
		strings.Join(problems, "; "), more)
}

// maxResumeLine caps one line of the output file that --resume reads, in
// bytes.
const maxResumeLine = 64 << 20

// readDoneRuns reads the output file of a resumed batch and returns the
// runs that have a result in it, and the length of the file up to the
// end of its last complete line. A last line without its newline is torn
// (a kill or a full disk cut its write short): it is not a result, and
// is not counted. A result is a line with a "status" other than rejected
// (nothing ran; it is tried again) or canceled (the batch's own stop
// killed it; it runs again); its key is its id and repeat_index (0 when
// absent). A complete line that is not a result line of cgmon batch is an
// error: the file is not one to add to.
func readDoneRuns(r io.Reader) (map[runKey]struct{}, int64, error) {
	done := make(map[runKey]struct{})
	br := bufio.NewReaderSize(r, readChunk)
	var buf []byte
	var complete int64
	n := 0
	for {
		chunk, err := br.ReadSlice('\n')
		buf = append(buf, chunk...)
		if errors.Is(err, bufio.ErrBufferFull) {
			if len(buf) > maxResumeLine {
				return nil, 0, fmt.Errorf("line %d is longer than %d MiB: not a result line", n+1, maxResumeLine>>20)
			}
			continue
		}
		if err == io.EOF {
			return done, complete, nil // buf, if not empty, is torn
		}
		if err != nil {
			return nil, 0, err
		}
		n++
		complete += int64(len(buf))
		key, ok, perr := parseResultKey(bytes.TrimRight(buf, "\r\n"))
		if perr != nil {
			return nil, 0, fmt.Errorf("line %d: %v", n, perr)
		}
		if ok {
			done[key] = struct{}{}
		}
		buf = buf[:0]
	}
}

// parseResultKey reads the key of one line of a batch's output, and
// whether it is a result that --resume skips. A blank line is not one.
func parseResultKey(line []byte) (runKey, bool, error) {
	if len(bytes.TrimSpace(line)) == 0 {
		return runKey{}, false, nil
	}
	var r struct {
		ID     *string `json:"id"`
		Status *string `json:"status"`
		Repeat *int    `json:"repeat_index"`
	}
	if err := json.Unmarshal(line, &r); err != nil || r.Status == nil {
		return runKey{}, false, errors.New("not a result line of cgmon batch (a JSON object with a status)")
	}
	if r.Repeat != nil && *r.Repeat < 0 {
		return runKey{}, false, fmt.Errorf(`"repeat_index" %d is negative`, *r.Repeat)
	}
	if r.ID == nil || *r.ID == "" || *r.Status == StatusRejected || *r.Status == string(metrics.StatusCanceled) {
		return runKey{}, false, nil
	}
	key := runKey{id: *r.ID}
	if r.Repeat != nil {
		key.repeat = *r.Repeat
	}
	return key, true, nil
}

// openResume opens the output file of a resumed batch for appending,
// creating it if needed, takes it alone (an exclusive flock held until
// it is closed: two batches resuming one file would run its work twice),
// reads the runs it already has, and cuts off a torn last line, which it
// says on diag. Nothing is changed when it fails.
func openResume(path string, diag io.Writer) (*os.File, map[runKey]struct{}, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, nil, err
	}
	done, err := resumeFile(f, path, diag)
	if err != nil {
		_ = f.Close()
		return nil, nil, err
	}
	return f, done, nil
}

// resumeFile does openResume's work on the opened file f.
func resumeFile(f *os.File, path string, diag io.Writer) (map[runKey]struct{}, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file: --resume reads back the results it holds", path)
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, err
	}
	var lockErr error
	if err := rc.Control(func(fd uintptr) { lockErr = unix.Flock(int(fd), unix.LOCK_EX|unix.LOCK_NB) }); err != nil {
		return nil, err
	}
	if errors.Is(lockErr, unix.EWOULDBLOCK) {
		return nil, fmt.Errorf("%s is held by another cgmon batch (--resume takes its output file alone)", path)
	}
	// Another error (a file system without locks) leaves the file unlocked.
	done, complete, err := readDoneRuns(io.NewSectionReader(f, 0, st.Size()))
	if err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	if torn := st.Size() - complete; torn > 0 {
		if err := checkTorn(f, complete, torn); err != nil {
			return nil, fmt.Errorf("%s: %v", path, err)
		}
		if err := f.Truncate(complete); err != nil {
			return nil, fmt.Errorf("%s: removing its torn last line: %v", path, err)
		}
		fmt.Fprintf(diag, "cgmon: batch: --resume: removed the torn last line of %s (%d bytes without an end of line, cut short by a kill or a full disk): it is not a result, and that run is done again\n", path, torn)
	}
	return done, nil
}

// checkKeyedFile checks the ids of a keyed batch's input up front when it
// is a regular file (checkInputIDs), then rewinds it; other inputs (a
// pipe, a terminal) are checked line by line as they are read.
func checkKeyedFile(f *os.File) error {
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		return err
	}
	if err := checkInputIDs(f); err != nil {
		return err
	}
	_, err = f.Seek(0, io.SeekStart)
	return err
}

// resultStart is how every result line of cgmon batch begins.
const resultStart = `{"protocol":`

// checkTorn checks that the torn last line of an output file, n bytes at
// off, is the beginning of a result line of cgmon batch before it is cut
// off: a file that merely lacks its last newline (an input file given as
// the output, say) is refused, not shortened.
func checkTorn(f *os.File, off, n int64) error {
	head := make([]byte, min(n, int64(len(resultStart))))
	if _, err := f.ReadAt(head, off); err != nil {
		return err
	}
	if !strings.HasPrefix(resultStart, string(head)) {
		return fmt.Errorf("its last line has no end of line and is not the start of a result line of cgmon batch (%q...); refusing to cut it off", head)
	}
	return nil
}
