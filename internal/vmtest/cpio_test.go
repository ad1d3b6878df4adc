package vmtest

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
)

type cpioEntry struct {
	name         string
	mode         uint32
	rmaj, rmin   uint32
	data         string
	ino, nlink   uint32
	uid, gid     uint32
	headerOffset int
}

// readNewc is an independent newc parser used to check the writer.
func readNewc(t *testing.T, b []byte) []cpioEntry {
	t.Helper()
	var out []cpioEntry
	off := 0
	for {
		if off%4 != 0 {
			t.Fatalf("record at offset %d not 4-byte aligned", off)
		}
		if len(b)-off < 110 {
			t.Fatalf("truncated header at %d", off)
		}
		h := b[off : off+110]
		if string(h[:6]) != "070701" {
			t.Fatalf("bad magic %q at %d", h[:6], off)
		}
		field := func(i int) uint32 {
			v, err := strconv.ParseUint(string(h[6+8*i:14+8*i]), 16, 32)
			if err != nil {
				t.Fatalf("field %d: %v", i, err)
			}
			return uint32(v)
		}
		e := cpioEntry{ino: field(0), mode: field(1), uid: field(2), gid: field(3), nlink: field(4),
			rmaj: field(9), rmin: field(10), headerOffset: off}
		size := int(field(6))
		nameSize := int(field(11))
		name := b[off+110 : off+110+nameSize]
		if name[len(name)-1] != 0 {
			t.Fatalf("name not NUL-terminated: %q", name)
		}
		e.name = string(name[:len(name)-1])
		off += 110 + nameSize
		off = (off + 3) &^ 3
		e.data = string(b[off : off+size])
		off += size
		off = (off + 3) &^ 3
		if e.name == cpioTrailer {
			if off != len(b) {
				t.Fatalf("%d bytes after trailer", len(b)-off)
			}
			return out
		}
		out = append(out, e)
	}
}

func TestCPIOWriterRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	w := NewCPIOWriter(&buf)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(w.CharDev("dev/console", 0o600, 5, 1))
	must(w.File("init", 0o755, 3, strings.NewReader("abc")))
	must(w.File("tests/a/b.test", 0o755, 5, strings.NewReader("hello world")))
	must(w.Dir("tests/a", 0o700)) // already added as a parent: no duplicate
	must(w.File("./empty", 0o644, 0, strings.NewReader("")))
	must(w.Symlink("bin/sh", "busybox"))
	must(w.Close())

	got := readNewc(t, buf.Bytes())
	want := []struct {
		name string
		mode uint32
		data string
	}{
		{"dev", cpioTypeDir | 0o755, ""},
		{"dev/console", cpioTypeChr | 0o600, ""},
		{"init", cpioTypeReg | 0o755, "abc"},
		{"tests", cpioTypeDir | 0o755, ""},
		{"tests/a", cpioTypeDir | 0o755, ""},
		{"tests/a/b.test", cpioTypeReg | 0o755, "hello"},
		{"empty", cpioTypeReg | 0o644, ""},
		{"bin", cpioTypeDir | 0o755, ""},
		{"bin/sh", cpioTypeLnk | 0o777, "busybox"},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d entries %+v, want %d", len(got), got, len(want))
	}
	inos := map[uint32]bool{}
	for i, w := range want {
		g := got[i]
		if g.name != w.name || g.mode != w.mode || g.data != w.data {
			t.Errorf("entry %d = {%q %o %q}, want {%q %o %q}", i, g.name, g.mode, g.data, w.name, w.mode, w.data)
		}
		if g.uid != 0 || g.gid != 0 {
			t.Errorf("%s: owner %d:%d, want 0:0", g.name, g.uid, g.gid)
		}
		if inos[g.ino] {
			t.Errorf("%s: duplicate inode %d", g.name, g.ino)
		}
		inos[g.ino] = true
	}
	if got[1].rmaj != 5 || got[1].rmin != 1 {
		t.Errorf("console rdev = %d:%d, want 5:1", got[1].rmaj, got[1].rmin)
	}
}

func TestCPIOHeaderBytes(t *testing.T) {
	var buf bytes.Buffer
	w := NewCPIOWriter(&buf)
	if err := w.File("x", 0o644, 2, strings.NewReader("hi")); err != nil {
		t.Fatal(err)
	}
	want := "070701" + "00000001" + "000081A4" + "00000000" + "00000000" + "00000001" +
		"00000000" + "00000002" + "00000000" + "00000000" + "00000000" + "00000000" +
		"00000002" + "00000000" + "x\x00" + "hi\x00\x00"
	if got := buf.String(); got != want {
		t.Fatalf("header bytes:\n got %q\nwant %q", got, want)
	}
}

func TestCPIOBadNames(t *testing.T) {
	for _, name := range []string{"", "/abs", "..", "../x", "a/../../x", "."} {
		w := NewCPIOWriter(&bytes.Buffer{})
		if err := w.File(name, 0o644, 0, strings.NewReader("")); !errors.Is(err, ErrBadArchiveName) {
			t.Errorf("File(%q) error = %v, want ErrBadArchiveName", name, err)
		}
	}
}

func TestCPIOShortReader(t *testing.T) {
	w := NewCPIOWriter(&bytes.Buffer{})
	if err := w.File("x", 0o644, 10, strings.NewReader("short")); err == nil {
		t.Fatal("File with a short reader succeeded")
	}
	if err := w.Close(); err == nil {
		t.Fatal("Close after a failed File succeeded")
	}
}

type failWriter struct{ n int }

func (f *failWriter) Write(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, fmt.Errorf("disk full")
	}
	f.n--
	return len(p), nil
}

func TestCPIOWriteError(t *testing.T) {
	w := NewCPIOWriter(&failWriter{n: 1})
	err := w.File("dir/x", 0o644, 1, strings.NewReader("a"))
	if err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("error = %v, want disk full", err)
	}
}

func TestCPIOEntryKeepsOwnerAndSpecialBits(t *testing.T) {
	var buf bytes.Buffer
	w := NewCPIOWriter(&buf)
	for _, h := range []struct {
		h    Header
		data string
	}{
		{Header{Name: "home/runner", Mode: 0o040700, UID: 1000, GID: 1000}, ""},
		{Header{Name: "usr/bin/sudo", Mode: 0o104755, Size: 3}, "elf"},
		{Header{Name: "tmp", Mode: 0o041777}, ""},
		{Header{Name: "var/log/journal", Mode: 0o042755, GID: 101}, ""},
		{Header{Name: "bin", Mode: 0o120777, Linkname: "usr/bin"}, ""},
		{Header{Name: "dev/null", Mode: 0o020666, DevMajor: 1, DevMinor: 3}, ""},
		{Header{Name: "dev/sda", Mode: 0o060660, GID: 6, DevMajor: 8, DevMinor: 0}, ""},
	} {
		if err := w.Entry(h.h, strings.NewReader(h.data)); err != nil {
			t.Fatalf("%s: %v", h.h.Name, err)
		}
	}
	if err := w.Entry(Header{Name: "run/fifo", Mode: 0o010644}, nil); err == nil {
		t.Fatal("a FIFO was accepted; the writer does not support it")
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	got := map[string]cpioEntry{}
	for _, e := range readNewc(t, buf.Bytes()) {
		got[e.name] = e
	}
	for _, c := range []struct {
		name           string
		mode, uid, gid uint32
		data           string
		rmaj, rmin     uint32
	}{
		{"home", 0o040755, 0, 0, "", 0, 0}, // parent added by the writer
		{"home/runner", 0o040700, 1000, 1000, "", 0, 0},
		{"usr/bin/sudo", 0o104755, 0, 0, "elf", 0, 0},
		{"tmp", 0o041777, 0, 0, "", 0, 0},
		{"var/log/journal", 0o042755, 0, 101, "", 0, 0},
		{"bin", 0o120777, 0, 0, "usr/bin", 0, 0},
		{"dev/null", 0o020666, 0, 0, "", 1, 3},
		{"dev/sda", 0o060660, 0, 6, "", 8, 0},
	} {
		e, ok := got[c.name]
		if !ok {
			t.Errorf("%s missing", c.name)
			continue
		}
		if e.mode != c.mode || e.uid != c.uid || e.gid != c.gid || e.data != c.data || e.rmaj != c.rmaj || e.rmin != c.rmin {
			t.Errorf("%s = mode %#o uid %d gid %d data %q dev %d:%d, want %#o %d %d %q %d:%d",
				c.name, e.mode, e.uid, e.gid, e.data, e.rmaj, e.rmin, c.mode, c.uid, c.gid, c.data, c.rmaj, c.rmin)
		}
	}
}
