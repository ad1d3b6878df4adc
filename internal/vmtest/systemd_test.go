package vmtest

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

func TestAddRootfsKeepsTypesOwnersAndModes(t *testing.T) {
	root := t.TempDir()
	for _, err := range []error{
		os.MkdirAll(filepath.Join(root, "usr/bin"), 0o755),
		os.WriteFile(filepath.Join(root, "usr/bin/tool"), []byte("#!/bin/sh\n"), 0o755),
		os.Chmod(filepath.Join(root, "usr/bin/tool"), os.ModeSetuid|0o755), // set-user-ID survives
		os.Symlink("usr/bin", filepath.Join(root, "bin")),
		os.Mkdir(filepath.Join(root, "tmp"), 0o755),
		os.Chmod(filepath.Join(root, "tmp"), os.ModeSticky|0o777),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	var buf bytes.Buffer
	w := NewCPIOWriter(&buf)
	if err := addRootfs(w, root); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	uid, gid := uint32(os.Getuid()), uint32(os.Getgid())
	got := map[string]cpioEntry{}
	for _, e := range readNewc(t, buf.Bytes()) {
		got[e.name] = e
	}
	want := map[string]cpioEntry{
		"usr":          {mode: 0o040755},
		"usr/bin":      {mode: 0o040755},
		"usr/bin/tool": {mode: 0o104755, data: "#!/bin/sh\n"},
		"bin":          {mode: 0o120777, data: "usr/bin"},
		"tmp":          {mode: 0o041777},
	}
	if len(got) != len(want) {
		t.Errorf("archive has %d members, want %d: %v", len(got), len(want), got)
	}
	for name, w := range want {
		e, ok := got[name]
		if !ok {
			t.Errorf("%s missing", name)
			continue
		}
		if e.mode != w.mode || e.data != w.data || e.uid != uid || e.gid != gid {
			t.Errorf("%s: mode %#o data %q owner %d:%d, want %#o %q %d:%d", name, e.mode, e.data, e.uid, e.gid, w.mode, w.data, uid, gid)
		}
	}
}
