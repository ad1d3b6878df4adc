//go:build linux

package cgroupmon

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The fuzzers of this file hold cgroup path handling to its promise: an
// execution id, a --cgroup-root or an Attach cgroup path never becomes a
// directory outside the root it belongs under, and what is refused is
// refused with an error (or reason) that names the offending value.

// inside reports whether the clean absolute path p is root or under it,
// by string comparison alone (withinDir, the code's own check, is what is
// tested).
func inside(root, p string) bool {
	return p == root || strings.HasPrefix(p, root+"/")
}

func FuzzValidateID(f *testing.F) {
	for _, s := range []string{
		"", "job-1", "s1", "..", "../x", "a/b", "a\x00b", "a..b", ".hidden", "...",
		"python3.11", "日本語", " spaced id ", strings.Repeat("x", 200), strings.Repeat("x", 201),
	} {
		f.Add(s)
	}
	const root = "/sys/fs/cgroup/cgmon"
	f.Fuzz(func(t *testing.T, id string) {
		err := validateID(id)
		if err != nil {
			if !errors.Is(err, ErrInvalidSpec) {
				t.Fatalf("validateID(%q) = %v, not ErrInvalidSpec", id, err)
			}
			if !strings.Contains(err.Error(), "id") {
				t.Fatalf("validateID(%q) = %q: the error does not say it is about the id", id, err)
			}
			return
		}
		if len(id) > maxIDLen || strings.ContainsAny(id, "/\x00") || strings.Contains(id, "..") {
			t.Fatalf("validateID accepted %q", id)
		}
		name := leafName(id)
		if name == "" || len(name) > 64 || name[0] == '.' {
			t.Fatalf("leafName(%q) = %q", id, name)
		}
		for _, c := range []byte(name) {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
				t.Fatalf("leafName(%q) = %q holds byte %q", id, name, c)
			}
		}
		// The leaf as makeLeaf names it: one directory right under root.
		leaf := filepath.Join(root, name+"-4242-1")
		if filepath.Dir(leaf) != root || !inside(root, leaf) {
			t.Fatalf("id %q makes leaf %s, not a child of %s", id, leaf, root)
		}
	})
}

// FuzzCgroupDir fuzzes the path Attach (and `cgmon watch --cgroup`)
// resolves against the cgroup v2 mount.
func FuzzCgroupDir(f *testing.F) {
	const mount = "/sys/fs/cgroup"
	for _, s := range []string{
		"/system.slice/docker-3f2a.scope", "system.slice", "/", "", ".", "..", "/..", "../../etc",
		"/sys/fs/cgroup/user.slice", "/sys/fs/cgroup/../../etc", "/sys/fs/cgroupx", "//sys//fs/cgroup/a/",
		"/a/../../..", "a/./b/../../../c", "/sys/fs/cgroup/a\x00b",
	} {
		f.Add(s)
	}
	m := &Monitor{probe: &Probe{Mount: mount}}
	f.Fuzz(func(t *testing.T, p string) {
		dir, err := m.cgroupDir(p)
		if err != nil {
			if !errors.Is(err, ErrInvalidSpec) {
				t.Fatalf("cgroupDir(%q) = %v, not ErrInvalidSpec", p, err)
			}
			if !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), mount) {
				t.Fatalf("cgroupDir(%q) = %q: the error does not name the path and the mount", p, err)
			}
			return
		}
		if dir != filepath.Clean(dir) || !inside(mount, dir) {
			t.Fatalf("cgroupDir(%q) = %q, outside %s", p, dir, mount)
		}
	})
	empty := &Monitor{probe: &Probe{}}
	if _, err := empty.cgroupDir("/x"); !errors.Is(err, ErrUnavailable) {
		f.Fatalf("cgroupDir without a cgroup v2 mount = %v, want ErrUnavailable", err)
	}
}

// FuzzCgroupRoot fuzzes --cgroup-root (Options.CgroupRoot) as the probe
// takes it, against a fake mount that holds one usable cgroup directory.
// The fuzzed text is tried as given and appended to the mount. Accepted,
// it is that cgroup or a new one to be made directly in it.
func FuzzCgroupRoot(f *testing.F) {
	mount := f.TempDir()
	given := filepath.Join(mount, "given")
	if err := os.Mkdir(given, 0o755); err != nil {
		f.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(given, "cgroup.procs"), nil, 0o644); err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{
		"given", "/given", "given/", "./given", "given/..", "..", "../..", "/", "", "missing", "given/../given",
		"/sys/fs/cgroup", "../" + filepath.Base(mount) + "/given", "given\x00",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, root := range []string{s, mount + "/" + s} {
			if root == "" {
				continue // empty means "choose one", not a given root
			}
			p := &Probe{Mount: mount}
			p.chooseRoot(Options{CgroupRoot: root})
			if p.Root == "" {
				if p.RootReason == "" || !strings.Contains(p.RootReason, filepath.Clean(root)) {
					t.Fatalf("--cgroup-root %q refused with reason %q, which does not name it", root, p.RootReason)
				}
				continue
			}
			if p.Path != PathGiven || !inside(mount, p.Root) {
				t.Fatalf("--cgroup-root %q gives root %q (%s), outside the mount %s", root, p.Root, p.Path, mount)
			}
			// The usable cgroup, or a root that does not exist yet and will
			// be made in it (a missing root is made when its parent is a
			// cgroup that allows it).
			if p.Root != given {
				if _, err := os.Stat(p.Root); !errors.Is(err, os.ErrNotExist) || filepath.Dir(p.Root) != given {
					t.Fatalf("--cgroup-root %q gives root %q, which is neither the usable cgroup here nor one to be made in it", root, p.Root)
				}
			}
		}
	})
}
