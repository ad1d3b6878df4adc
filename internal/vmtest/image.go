package vmtest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"sync"

	"github.com/cgmon/cgmon/internal/workload"
)

// Paths inside the initramfs.
const (
	GuestManifest = "/tests/manifest" // one "pkg<TAB>binary<TAB>workdir" per line
	GuestSrc      = "/src"            // the module's testdata trees, laid out as in the repository
	GuestWorkload = "/workloads"      // the prebuilt C workloads of internal/workload
)

// ManifestEntry is one test binary in the initramfs.
type ManifestEntry struct {
	Pkg     string // "./cgroupmon"
	Binary  string // absolute guest path
	WorkDir string // absolute guest path of the package directory
}

// ParseManifest parses the manifest /init reads.
func ParseManifest(r io.Reader) ([]ManifestEntry, error) {
	var out []ManifestEntry
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if sc.Text() == "" {
			continue
		}
		f := strings.Split(sc.Text(), "\t")
		if len(f) != 3 || !strings.HasPrefix(f[1], "/") || !strings.HasPrefix(f[2], "/") {
			return nil, fmt.Errorf("bad manifest line %q", sc.Text())
		}
		out = append(out, ManifestEntry{Pkg: f[0], Binary: f[1], WorkDir: f[2]})
	}
	return out, sc.Err()
}

// CleanPkg validates a package argument ("./cgroupmon") and returns it
// without the leading "./".
func CleanPkg(pkg string) (string, error) {
	p, ok := strings.CutPrefix(pkg, "./")
	c := path.Clean(p)
	if !ok || c == "." || c != p || c == ".." || strings.HasPrefix(c, "../") || strings.Contains(c, "...") {
		return "", fmt.Errorf("package %q: want a relative directory such as ./cgroupmon", pkg)
	}
	return c, nil
}

// Builder builds the static /init and test binaries and packs them.
type Builder struct {
	ModRoot string // the module's root directory
	Busybox string // a static busybox: /bin/busybox and its applets in the guest
	OutDir  string // where binaries and the initramfs are written
	Go      string // the go command
	Log     io.Writer
}

func (b *Builder) goBuild(ctx context.Context, args ...string) error {
	cmd := exec.CommandContext(ctx, b.Go, args...)
	cmd.Dir = b.ModRoot
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w\n%s", b.Go, strings.Join(args, " "), err, out)
	}
	return nil
}

// Artifacts are the static binaries and workloads Compile built, packed
// into an image by PackInitramfs or PackSystemd.
type Artifacts struct {
	Init      string      // the static cmd/vminit
	CLI       string      // the static cmd/cgmon; "" unless asked for
	Tests     []builtTest // the test binaries, in the order of -pkgs
	Workloads string      // directory of the prebuilt internal/workload programs
}

type builtTest struct {
	ManifestEntry
	rel  string // package directory relative to the module root
	host string // the binary on the host
}

// Build compiles /init and one test binary per package and writes the
// busybox initramfs; it returns the initramfs path and the packages that
// have test binaries in it.
func (b *Builder) Build(ctx context.Context, pkgs []string) (string, []ManifestEntry, error) {
	art, err := b.Compile(ctx, pkgs, false)
	if err != nil {
		return "", nil, err
	}
	return b.PackInitramfs(art)
}

// Compile builds /init, one test binary per package (concurrently), the
// cgmon CLI when cli is set, and the C workloads. A package without test
// files is reported on Log and left out.
func (b *Builder) Compile(ctx context.Context, pkgs []string, cli bool) (*Artifacts, error) {
	binDir := filepath.Join(b.OutDir, "bin")
	if err := os.RemoveAll(binDir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(binDir, 0o755); err != nil {
		return nil, err
	}
	type job struct {
		pkg, rel, out string
		test          bool
		err           error
	}
	art := &Artifacts{Init: filepath.Join(binDir, "init"), Workloads: filepath.Join(b.OutDir, "workloads")}
	jobs := []*job{{pkg: "./internal/vmtest/cmd/vminit", out: art.Init}}
	if cli {
		art.CLI = filepath.Join(binDir, "cgmon")
		jobs = append(jobs, &job{pkg: "./cmd/cgmon", out: art.CLI})
	}
	seen := map[string]bool{}
	for _, p := range pkgs {
		rel, err := CleanPkg(p)
		if err != nil {
			return nil, err
		}
		if seen[rel] {
			continue
		}
		seen[rel] = true
		jobs = append(jobs, &job{pkg: "./" + rel, rel: rel, test: true, out: filepath.Join(binDir, strings.ReplaceAll(rel, "/", "_")+".test")})
	}
	var wg sync.WaitGroup
	for _, j := range jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if j.test {
				j.err = b.goBuild(ctx, "test", "-c", "-o", j.out, j.pkg)
			} else {
				j.err = b.goBuild(ctx, "build", "-o", j.out, j.pkg)
			}
		}()
	}
	wg.Wait()
	var errs []error
	for _, j := range jobs {
		errs = append(errs, j.err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	for _, j := range jobs {
		if !j.test {
			continue
		}
		if _, err := os.Stat(j.out); errors.Is(err, fs.ErrNotExist) {
			fmt.Fprintf(b.Log, "vmtest: %s has no test files; not run\n", j.pkg)
			continue
		}
		art.Tests = append(art.Tests, builtTest{
			ManifestEntry: ManifestEntry{Pkg: j.pkg, Binary: "/tests/" + filepath.Base(j.out), WorkDir: GuestSrc + "/" + j.rel},
			rel:           j.rel, host: j.out,
		})
	}
	if err := os.RemoveAll(art.Workloads); err != nil {
		return nil, err
	}
	if err := workload.Build(art.Workloads); err != nil {
		return nil, err
	}
	return art, nil
}

// addFile adds the host file src as name, with its permission bits.
func addFile(w *CPIOWriter, name, src string) error {
	r, err := os.Open(src)
	if err != nil {
		return err
	}
	defer r.Close()
	st, err := r.Stat()
	if err != nil {
		return err
	}
	return w.File(name, st.Mode().Perm(), st.Size(), r)
}

// PackInitramfs writes the busybox initramfs with /init; it returns its
// path and the manifest of the test binaries in it.
func (b *Builder) PackInitramfs(art *Artifacts) (string, []ManifestEntry, error) {
	initrd := filepath.Join(b.OutDir, "initrd.cpio")
	f, err := os.Create(initrd)
	if err != nil {
		return "", nil, err
	}
	defer f.Close()
	bw := bufio.NewWriterSize(f, 1<<20)
	w := NewCPIOWriter(bw)
	// The kernel opens /dev/console for init's stdio before /init mounts
	// devtmpfs; the node must exist in the archive.
	for _, err := range []error{w.CharDev("dev/console", 0o600, 5, 1), w.Dir("proc", 0o555), w.Dir("sys", 0o555),
		w.Dir("tmp", 0o1777), w.Dir("root", 0o700), addFile(w, "init", art.Init)} {
		if err != nil {
			return "", nil, err
		}
	}
	if err := b.addBusybox(w); err != nil {
		return "", nil, err
	}
	manifest, err := b.addTests(w, art)
	if err != nil {
		return "", nil, err
	}
	if err := w.Close(); err != nil {
		return "", nil, err
	}
	if err := bw.Flush(); err != nil {
		return "", nil, err
	}
	return initrd, manifest, f.Close()
}

// addTests adds the workloads, the test binaries with their testdata
// trees, the module's testdata and the manifest.
func (b *Builder) addTests(w *CPIOWriter, art *Artifacts) ([]ManifestEntry, error) {
	for _, n := range workload.Names() {
		if err := addFile(w, strings.TrimPrefix(GuestWorkload, "/")+"/"+n, filepath.Join(art.Workloads, n)); err != nil {
			return nil, err
		}
	}
	var manifest []ManifestEntry
	var mf strings.Builder
	for _, t := range art.Tests {
		e := t.ManifestEntry
		if err := addFile(w, strings.TrimPrefix(e.Binary, "/"), t.host); err != nil {
			return nil, err
		}
		if err := w.Dir(strings.TrimPrefix(e.WorkDir, "/"), 0o755); err != nil {
			return nil, err
		}
		if err := b.addTree(w, filepath.Join(t.rel, "testdata")); err != nil {
			return nil, err
		}
		manifest = append(manifest, e)
		fmt.Fprintf(&mf, "%s\t%s\t%s\n", e.Pkg, e.Binary, e.WorkDir)
	}
	if err := b.addTree(w, "testdata"); err != nil {
		return nil, err
	}
	// The examples the README points to; tests read them (the Grafana
	// dashboard's queries against the metrics cgmon serves).
	if err := b.addTree(w, "examples"); err != nil {
		return nil, err
	}
	if err := w.File(strings.TrimPrefix(GuestManifest, "/"), 0o644, int64(mf.Len()), strings.NewReader(mf.String())); err != nil {
		return nil, err
	}
	return manifest, nil
}

// addBusybox adds /bin/busybox and a symlink to it for each applet it
// lists, so that tests find /bin/sh, /bin/true, /bin/sleep and the like.
func (b *Builder) addBusybox(w *CPIOWriter) error {
	if b.Busybox == "" {
		return nil
	}
	out, err := exec.Command(b.Busybox, "--list").Output()
	if err != nil {
		return fmt.Errorf("%s --list: %w", b.Busybox, err)
	}
	f, err := os.Open(b.Busybox)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if err := w.File("bin/busybox", 0o755, st.Size(), f); err != nil {
		return err
	}
	for _, applet := range strings.Fields(string(out)) {
		if applet == "busybox" || strings.Contains(applet, "/") {
			continue
		}
		if err := w.Symlink("bin/"+applet, "busybox"); err != nil {
			return err
		}
	}
	return w.Symlink("usr/bin/env", "/bin/busybox")
}

// addTree copies the repository directory rel (if it exists) to
// GuestSrc/rel, so that tests run from their package directory find their
// testdata as `go test` would. Symbolic links and other special files are
// skipped.
func (b *Builder) addTree(w *CPIOWriter, rel string) error {
	root := filepath.Join(b.ModRoot, rel)
	if _, err := os.Stat(root); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		r, err := filepath.Rel(b.ModRoot, p)
		if err != nil {
			return err
		}
		name := strings.TrimPrefix(GuestSrc, "/") + "/" + filepath.ToSlash(r)
		switch {
		case d.IsDir():
			return w.Dir(name, 0o755)
		case d.Type().IsRegular():
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			defer f.Close()
			st, err := f.Stat()
			if err != nil {
				return err
			}
			return w.File(name, st.Mode().Perm()|0o444, st.Size(), f)
		}
		return nil
	})
}
