package cgroupmon

import (
	"fmt"
	"strings"
)

// maxIDLen is the longest execution id accepted, in bytes.
const maxIDLen = 200

// validateID rejects an id that could name a path outside the monitor's
// root or is otherwise unusable; it never rewrites such an id into a path.
func validateID(id string) error {
	switch {
	case len(id) > maxIDLen:
		return fmt.Errorf("%w: id is %d bytes, longer than %d", ErrInvalidSpec, len(id), maxIDLen)
	case strings.ContainsRune(id, '/'):
		return fmt.Errorf("%w: id %q contains '/'", ErrInvalidSpec, id)
	case strings.Contains(id, ".."):
		return fmt.Errorf("%w: id %q contains \"..\"", ErrInvalidSpec, id)
	case strings.IndexByte(id, 0) >= 0:
		return fmt.Errorf("%w: id contains a NUL byte", ErrInvalidSpec)
	}
	return nil
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
