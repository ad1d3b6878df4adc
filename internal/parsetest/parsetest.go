// Package parsetest holds what the parser tests of cgroupmon and
// internal/proctree share: fixtures read from the repository's testdata,
// the error contract every parser keeps, and fuzz seeds. The testdata
// directory is found by walking up from the package's directory, where go
// test (and the VM harness) runs the tests.
package parsetest

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Dir returns the path of the repository's testdata/<dir>, looked for in
// the working directory and its parents.
func Dir(t testing.TB, dir string) string {
	t.Helper()
	for up := "."; len(up) < 64; up = filepath.Join(up, "..") {
		p := filepath.Join(up, "testdata", dir)
		if st, err := os.Stat(p); err == nil && st.IsDir() {
			return p
		}
	}
	t.Fatalf("no testdata/%s in the working directory or its parents", dir)
	return ""
}

// Fixture reads testdata/<dir>/<name>.
func Fixture(t testing.TB, dir, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(Dir(t, dir), name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// CheckErr fails unless err matches wantErr; a wanted error must wrap
// sentinel (the package's errMalformed).
func CheckErr(t testing.TB, err error, wantErr bool, sentinel error) {
	t.Helper()
	if wantErr {
		if err == nil {
			t.Fatal("want an error, got none")
		}
		if !errors.Is(err, sentinel) {
			t.Fatalf("error %v does not wrap %v", err, sentinel)
		}
		return
	}
	if err != nil {
		t.Fatalf("unexpected error: %v", err)
	}
}

// Seed adds to f every file under testdata/<dir> whose name starts with
// one of prefixes, and fails when there is none.
func Seed(f *testing.F, dir string, prefixes ...string) {
	f.Helper()
	n := 0
	err := filepath.WalkDir(Dir(f, dir), func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		for _, p := range prefixes {
			if strings.HasPrefix(d.Name(), p) {
				b, err := os.ReadFile(path)
				if err != nil {
					return err
				}
				f.Add(b)
				n++
				break
			}
		}
		return nil
	})
	if err != nil {
		f.Fatal(err)
	}
	if n == 0 {
		f.Fatalf("no seed files for %q under testdata/%s", prefixes, dir)
	}
}

// CheckFuzzErr enforces what every parser promises: its errors wrap
// sentinel, and input with a NUL byte is always an error.
func CheckFuzzErr(t testing.TB, in []byte, err, sentinel error) {
	t.Helper()
	if err != nil && !errors.Is(err, sentinel) {
		t.Fatalf("error %v does not wrap %v", err, sentinel)
	}
	if err == nil && bytes.IndexByte(in, 0) >= 0 {
		t.Fatalf("input with NUL accepted: %q", in)
	}
}
