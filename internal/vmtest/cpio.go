package vmtest

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strings"
)

// newc mode bits (see linux/stat.h); fs.FileMode does not use these values.
const (
	cpioTypeDir  = 0o040000
	cpioTypeReg  = 0o100000
	cpioTypeChr  = 0o020000
	cpioTypeLnk  = 0o120000
	cpioTypeBlk  = 0o060000
	cpioTypeMask = 0o170000
	cpioPermMask = 0o7777
	cpioTrailer  = "TRAILER!!!"
	maxCPIOSize  = 1<<32 - 1
)

// ErrBadArchiveName is returned for a member name that is absolute, empty
// or escapes the archive root with "..".
var ErrBadArchiveName = errors.New("bad archive member name")

// CPIOWriter writes a newc ("070701") cpio archive, the format the Linux
// kernel unpacks as an initramfs. Parent directories of every member are
// added automatically (mode 0755) before the member itself. All members are
// owned by root with mtime 0, so the archive is reproducible.
type CPIOWriter struct {
	w    io.Writer
	ino  uint32
	dirs map[string]bool
	err  error
}

// NewCPIOWriter returns a writer that appends archive members to w. Close
// must be called to write the trailer.
func NewCPIOWriter(w io.Writer) *CPIOWriter {
	return &CPIOWriter{w: w, ino: 1, dirs: map[string]bool{".": true}}
}

// cleanName validates an archive member name and returns it cleaned,
// relative and without a leading "./".
func cleanName(name string) (string, error) {
	if name == "" || strings.HasPrefix(name, "/") {
		return "", fmt.Errorf("%w: %q", ErrBadArchiveName, name)
	}
	c := path.Clean(name)
	if c == "." || c == ".." || strings.HasPrefix(c, "../") {
		return "", fmt.Errorf("%w: %q", ErrBadArchiveName, name)
	}
	return c, nil
}

// Dir adds a directory with permission bits perm (e.g. 0o755).
func (c *CPIOWriter) Dir(name string, perm fs.FileMode) error {
	n, err := cleanName(name)
	if err != nil {
		return err
	}
	if err := c.parents(n); err != nil {
		return err
	}
	if c.dirs[n] {
		return nil
	}
	c.dirs[n] = true
	return c.header(n, cpioTypeDir|uint32(perm.Perm()), 2, 0, 0, 0, 0, 0)
}

// File adds a regular file of size bytes read from r, with permission bits
// perm. It fails if r yields fewer than size bytes.
func (c *CPIOWriter) File(name string, perm fs.FileMode, size int64, r io.Reader) error {
	n, err := cleanName(name)
	if err != nil {
		return err
	}
	if size < 0 || size > maxCPIOSize {
		return fmt.Errorf("cpio: %s: size %d out of range for newc", n, size)
	}
	if err := c.parents(n); err != nil {
		return err
	}
	if err := c.header(n, cpioTypeReg|uint32(perm.Perm()), 1, size, 0, 0, 0, 0); err != nil {
		return err
	}
	got, err := io.CopyN(c.w, r, size)
	if err != nil {
		c.err = fmt.Errorf("cpio: %s: wrote %d of %d bytes: %w", n, got, size, err)
		return c.err
	}
	return c.pad(size)
}

// CharDev adds a character device node (e.g. console: major 5, minor 1).
func (c *CPIOWriter) CharDev(name string, perm fs.FileMode, major, minor uint32) error {
	n, err := cleanName(name)
	if err != nil {
		return err
	}
	if err := c.parents(n); err != nil {
		return err
	}
	return c.header(n, cpioTypeChr|uint32(perm.Perm()), 1, 0, 0, 0, major, minor)
}

// Symlink adds a symbolic link name pointing to target.
func (c *CPIOWriter) Symlink(name, target string) error {
	n, err := cleanName(name)
	if err != nil {
		return err
	}
	if target == "" {
		return fmt.Errorf("cpio: %s: empty symlink target", n)
	}
	if err := c.parents(n); err != nil {
		return err
	}
	if err := c.header(n, cpioTypeLnk|0o777, 1, int64(len(target)), 0, 0, 0, 0); err != nil {
		return err
	}
	if _, err := io.WriteString(c.w, target); err != nil {
		c.err = fmt.Errorf("cpio: %s: %w", n, err)
		return c.err
	}
	return c.pad(int64(len(target)))
}

// Header describes one member written by Entry, with the metadata of a
// file of a root filesystem (owner, set-id bits, device numbers).
type Header struct {
	Name string
	// Mode is the file type and permission bits as in stat(2)'s st_mode
	// (e.g. 0o104755 for a set-user-ID executable).
	Mode     uint32
	UID, GID uint32
	Size     int64  // bytes of a regular file's content
	Linkname string // a symbolic link's target
	DevMajor uint32 // a device node's numbers
	DevMinor uint32
}

// Entry adds a member described by h: a directory, regular file (content
// read from r), symbolic link, or character or block device. A directory
// already written (or added as a parent) is written again, so that its
// owner and mode are the ones of h when the kernel unpacks the archive.
func (c *CPIOWriter) Entry(h Header, r io.Reader) error {
	n, err := cleanName(h.Name)
	if err != nil {
		return err
	}
	if err := c.parents(n); err != nil {
		return err
	}
	mode := h.Mode & (cpioTypeMask | cpioPermMask)
	switch mode & cpioTypeMask {
	case cpioTypeDir:
		c.dirs[n] = true
		return c.header(n, mode, 2, 0, h.UID, h.GID, 0, 0)
	case cpioTypeReg:
		if h.Size < 0 || h.Size > maxCPIOSize {
			return fmt.Errorf("cpio: %s: size %d out of range for newc", n, h.Size)
		}
		if err := c.header(n, mode, 1, h.Size, h.UID, h.GID, 0, 0); err != nil {
			return err
		}
		got, err := io.CopyN(c.w, r, h.Size)
		if err != nil {
			c.err = fmt.Errorf("cpio: %s: wrote %d of %d bytes: %w", n, got, h.Size, err)
			return c.err
		}
		return c.pad(h.Size)
	case cpioTypeLnk:
		if h.Linkname == "" {
			return fmt.Errorf("cpio: %s: empty symlink target", n)
		}
		if err := c.header(n, mode, 1, int64(len(h.Linkname)), h.UID, h.GID, 0, 0); err != nil {
			return err
		}
		if _, err := io.WriteString(c.w, h.Linkname); err != nil {
			c.err = fmt.Errorf("cpio: %s: %w", n, err)
			return c.err
		}
		return c.pad(int64(len(h.Linkname)))
	case cpioTypeChr, cpioTypeBlk:
		return c.header(n, mode, 1, 0, h.UID, h.GID, h.DevMajor, h.DevMinor)
	}
	return fmt.Errorf("cpio: %s: unsupported file type %#o", n, mode&cpioTypeMask)
}

// Close writes the trailer record. It does not close the underlying writer.
func (c *CPIOWriter) Close() error {
	if c.err != nil {
		return c.err
	}
	return c.header(cpioTrailer, 0, 1, 0, 0, 0, 0, 0)
}

func (c *CPIOWriter) parents(n string) error {
	dir := path.Dir(n)
	if c.dirs[dir] {
		return nil
	}
	if err := c.parents(dir); err != nil {
		return err
	}
	c.dirs[dir] = true
	return c.header(dir, cpioTypeDir|0o755, 2, 0, 0, 0, 0, 0)
}

// header writes one newc header plus the padded name.
func (c *CPIOWriter) header(name string, mode, nlink uint32, size int64, uid, gid, rmajor, rminor uint32) error {
	if c.err != nil {
		return c.err
	}
	ino := c.ino
	c.ino++
	if name == cpioTrailer {
		ino = 0
	}
	// Fields: magic, ino, mode, uid, gid, nlink, mtime, filesize, devmajor,
	// devminor, rdevmajor, rdevminor, namesize (with NUL), check.
	h := fmt.Sprintf("070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		ino, mode, uid, gid, nlink, 0, uint32(size), 0, 0, rmajor, rminor, len(name)+1, 0)
	if _, err := io.WriteString(c.w, h+name+"\x00"); err != nil {
		c.err = fmt.Errorf("cpio: %s: %w", name, err)
		return c.err
	}
	return c.pad(int64(len(h) + len(name) + 1))
}

// pad writes zero bytes so that n written bytes end on a 4-byte boundary.
func (c *CPIOWriter) pad(n int64) error {
	if p := (4 - n%4) % 4; p > 0 {
		if _, err := c.w.Write(make([]byte, p)); err != nil {
			c.err = fmt.Errorf("cpio: padding: %w", err)
			return c.err
		}
	}
	return nil
}
