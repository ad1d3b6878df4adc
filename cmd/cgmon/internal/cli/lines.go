package cli

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
)

// maxBatchLine caps one input line of a batch, in bytes: a longer line is
// skipped, read through without being kept.
const maxBatchLine = 1 << 20

// maxSkippedLine caps how far a line longer than maxBatchLine is read
// through, in bytes. Input without an end of line within it (/dev/zero,
// a binary file) is not NDJSON, and reading stops there: reading such a
// line to its end could take forever.
const maxSkippedLine = 64 << 20

// readChunk is the size of the read buffer: what is read at once, and
// what a skipped line holds in memory.
const readChunk = 64 << 10

// errEndlessLine is returned by readLines for a line that has no end
// within maxSkippedLine bytes.
var errEndlessLine = fmt.Errorf("no end of line within %d MiB: the input is not NDJSON", maxSkippedLine>>20)

// readLines calls fn with each line of r (without its line ending) and
// its 1-based number, until fn returns false or r ends. A line longer than
// maxBatchLine is passed as nil with tooLong set, once it has been read
// through; one with no end within maxSkippedLine stops reading with an
// error naming its number (errEndlessLine). Memory stays within
// maxBatchLine plus one read buffer, whatever r holds.
func readLines(r io.Reader, fn func(n int, line []byte, tooLong bool) bool) error {
	br := bufio.NewReaderSize(r, readChunk)
	var buf []byte
	n := 0
	for {
		chunk, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			if len(buf)+len(chunk) <= maxBatchLine {
				buf = append(buf, chunk...)
				continue
			}
			n++
			buf = buf[:0]
			if err = skipLine(br, len(chunk)); err != nil {
				if errors.Is(err, errEndlessLine) {
					return fmt.Errorf("line %d: %w", n, err)
				}
				if err != io.EOF {
					return err
				}
			}
			if !fn(n, nil, true) || err == io.EOF {
				return nil
			}
			continue
		}
		buf = append(buf, chunk...)
		if len(buf) > 0 {
			n++
			line := bytes.TrimRight(buf, "\r\n")
			ok := false
			if len(line) > maxBatchLine {
				ok = fn(n, nil, true)
			} else {
				ok = fn(n, line, false)
			}
			if !ok {
				return nil
			}
			buf = buf[:0]
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// skipLine reads br up to and including the next newline, keeping
// nothing; read is how much of the line was read already. It returns
// errEndlessLine when the line goes on past maxSkippedLine bytes, io.EOF
// when the input ends first.
func skipLine(br *bufio.Reader, read int) error {
	for read <= maxSkippedLine {
		chunk, err := br.ReadSlice('\n')
		read += len(chunk)
		if !errors.Is(err, bufio.ErrBufferFull) {
			return err
		}
	}
	return errEndlessLine
}
