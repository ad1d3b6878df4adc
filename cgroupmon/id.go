package cgroupmon

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"
)

// maxIDLen is the longest execution id accepted, in bytes.
const maxIDLen = 200

// validateID rejects an id that could name a path outside the monitor's
// root, forge a line of a report or is otherwise unusable; it never
// rewrites such an id into a path.
func validateID(id string) error {
	switch {
	case len(id) > maxIDLen:
		return fmt.Errorf("%w: id is %d bytes, longer than %d", ErrInvalidSpec, len(id), maxIDLen)
	case strings.ContainsRune(id, '/'):
		return fmt.Errorf("%w: id %q contains '/'", ErrInvalidSpec, id)
	case strings.Contains(id, ".."):
		return fmt.Errorf("%w: id %q contains \"..\"", ErrInvalidSpec, id)
	case !utf8.ValidString(id):
		// JSON would carry it as U+FFFD: the id in the record would not
		// be the id given.
		return fmt.Errorf("%w: id %q is not valid UTF-8", ErrInvalidSpec, id)
	}
	if i := strings.IndexFunc(id, controlRune); i >= 0 {
		r, _ := utf8.DecodeRuneInString(id[i:])
		return fmt.Errorf("%w: id %q contains the control character %U: an id is printed in reports, where it must not start a line or an escape sequence", ErrInvalidSpec, id, r)
	}
	return nil
}

// controlRune reports whether r is a control character (C0, DEL, C1) or
// a bidirectional formatting character, which reorders what a terminal
// shows around it.
func controlRune(r rune) bool {
	return unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r)
}

// idTag is drawn once per process: it tells apart the default ids of
// processes that start executions at the same microsecond, on this host
// or another.
var idTag = sync.OnceValue(func() string {
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		// crypto/rand does not fail on Linux; the pid still tells this
		// host's processes apart.
		return "p" + strconv.Itoa(os.Getpid())
	}
	return hex.EncodeToString(b)
})

// idSeq numbers the default ids of this process.
var idSeq atomic.Uint64

// defaultID returns an id for an execution or a watch that was given
// none: kind, the time in UTC to the microsecond (fixed width, so that ids
// sort in time order as strings), this process's random tag and a number
// counted per process, e.g. "exec-20261202T140921.290761Z-5f3a9c1e-1".
// It is unique across processes and machines, so that the records of many
// runs can be joined by id.
func defaultID(kind string, now time.Time) string {
	return kind + "-" + now.UTC().Format("20060102T150405.000000Z") + "-" + idTag() + "-" + strconv.FormatUint(idSeq.Add(1), 10)
}

// leafName turns a valid id into the safe part of a cgroup directory name:
// letters, digits, '-', '_' and '.' are kept, anything else becomes '_',
// and the result is cut to 64 bytes (the unique suffix keeps names apart).
func leafName(id string) string {
	var b strings.Builder
	for i := 0; i < len(id) && b.Len() < 64; i++ {
		c := id[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_':
			b.WriteByte(c)
		case c == '.' && b.Len() > 0:
			b.WriteByte(c)
		default:
			b.WriteByte('_')
		}
	}
	if b.Len() == 0 {
		return "exec"
	}
	return b.String()
}
