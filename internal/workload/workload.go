// Package workload builds the small static C programs that the tests run
// as executions, so that measured numbers are about a known workload and
// not about a language runtime (a Go or race-enabled helper has a large,
// variable baseline RSS).
//
// Programs: alloc MiB HOLD_MS; burn THREADS MS; daemon MS [BURN_MS];
// stubborn; forkbomb N; bomb (unbounded: only under pids.max or
// RLIMIT_NPROC as a non-root user); leader MS. See src/*.c.
package workload

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
)

//go:embed src/*.c
var sources embed.FS

// DirEnv names a directory of prebuilt workloads (the VM suite packs them
// into its initramfs, where no compiler exists).
const DirEnv = "CGMON_WORKLOAD_DIR"

var (
	once   sync.Once
	dir    string
	bldErr error
)

// Names lists every workload.
func Names() []string {
	ents, _ := sources.ReadDir("src")
	out := make([]string, 0, len(ents))
	for _, e := range ents {
		out = append(out, strings.TrimSuffix(e.Name(), ".c"))
	}
	return out
}

// Build compiles every workload statically into outDir with cc.
func Build(outDir string) error {
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return err
	}
	cc := os.Getenv("CC")
	if cc == "" {
		cc = "cc"
	}
	for _, name := range Names() {
		src, err := sources.ReadFile("src/" + name + ".c")
		if err != nil {
			return err
		}
		cfile := filepath.Join(outDir, name+".c")
		if err := os.WriteFile(cfile, src, 0o644); err != nil {
			return err
		}
		out, err := exec.Command(cc, "-O1", "-static", "-pthread", "-o", filepath.Join(outDir, name), cfile).CombinedOutput()
		if err != nil {
			return fmt.Errorf("workload: compiling %s with %s: %v\n%s", name, cc, err, out)
		}
		os.Remove(cfile)
	}
	return nil
}

// cached builds the workloads once per version of their sources into the
// user's cache directory, so that test binaries leave nothing behind.
func cached() (string, error) {
	h := sha256.New()
	for _, name := range Names() {
		b, _ := sources.ReadFile("src/" + name + ".c")
		h.Write(b)
	}
	base, err := os.UserCacheDir()
	if err != nil {
		base = os.TempDir()
	}
	d := filepath.Join(base, "cgmon-workloads", hex.EncodeToString(h.Sum(nil))[:16])
	if _, err := os.Stat(filepath.Join(d, ".complete")); err == nil {
		return d, nil
	}
	tmp, err := os.MkdirTemp(filepath.Dir(d), "build-")
	if err != nil {
		if err := os.MkdirAll(filepath.Dir(d), 0o755); err != nil {
			return "", err
		}
		if tmp, err = os.MkdirTemp(filepath.Dir(d), "build-"); err != nil {
			return "", err
		}
	}
	if err := Build(tmp); err != nil {
		os.RemoveAll(tmp)
		return "", err
	}
	if err := os.WriteFile(filepath.Join(tmp, ".complete"), nil, 0o644); err != nil {
		os.RemoveAll(tmp)
		return "", err
	}
	if err := os.Rename(tmp, d); err != nil {
		os.RemoveAll(tmp) // another process won the race: use its build
		if _, serr := os.Stat(filepath.Join(d, ".complete")); serr != nil {
			return "", err
		}
	}
	return d, nil
}

// Path returns the path of workload name, building them all once per
// process into a temporary directory unless DirEnv names prebuilt ones.
func Path(name string) (string, error) {
	once.Do(func() {
		if d := os.Getenv(DirEnv); d != "" {
			dir = d
			return
		}
		dir, bldErr = cached()
	})
	if bldErr != nil {
		return "", bldErr
	}
	p := filepath.Join(dir, name)
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("workload %s: %w", name, err)
	}
	return p, nil
}
