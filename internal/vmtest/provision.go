package vmtest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
)

// ErrCannotProvision means qemu or a kernel is missing and this host cannot
// fetch it (not root, no apt-get, no Debian source entry). The runner reports
// the VM stage as not run rather than failed, unless CI requires it.
var ErrCannotProvision = errors.New("cannot provision the VM stage")

// Provisioner fetches qemu and kernels from Debian's packages. The kernels
// go into CacheDir and are reused on later runs.
type Provisioner struct {
	// CacheDir is the directory for kernels and private apt state
	// (.cache/vmtest in the repository).
	CacheDir string
	// AptEtc is the machine's apt configuration directory ("/etc/apt").
	AptEtc string
	// OSRelease is the os-release file naming this machine's suite.
	OSRelease string
	// Log receives the output of the commands run.
	Log io.Writer

	updated map[string]bool // suites whose private lists this run updated
}

func (p *Provisioner) run(ctx context.Context, dir string, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	err := cmd.Run()
	if err != nil {
		fmt.Fprintf(p.Log, "vmtest: %s %s:\n%s", name, strings.Join(args, " "), out.Bytes())
		return out.Bytes(), fmt.Errorf("%s %s: %w", name, strings.Join(args, " "), err)
	}
	return out.Bytes(), nil
}

func canInstall() error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("%w: not root", ErrCannotProvision)
	}
	if _, err := exec.LookPath("apt-get"); err != nil {
		return fmt.Errorf("%w: no apt-get", ErrCannotProvision)
	}
	return nil
}

// QEMU returns the path of qemu-system-x86_64, installing Debian's
// qemu-system-x86 (without recommends) when it is missing and we are root.
func (p *Provisioner) QEMU(ctx context.Context) (string, error) {
	const bin = "qemu-system-x86_64"
	if path, err := exec.LookPath(bin); err == nil {
		return path, nil
	}
	if err := canInstall(); err != nil {
		return "", fmt.Errorf("%s not installed: %w", bin, err)
	}
	fmt.Fprintln(p.Log, "vmtest: installing qemu-system-x86")
	if _, err := p.run(ctx, "", "apt-get", "update"); err != nil {
		return "", err
	}
	if _, err := p.run(ctx, "", "apt-get", "install", "-y", "--no-install-recommends", "qemu-system-x86"); err != nil {
		return "", err
	}
	return exec.LookPath(bin)
}

// Kernel returns the path of the cached vmlinuz for k, fetching Debian's
// current linux-image-amd64 of k.Suite when it is not cached. The apt state
// used for the fetch is private to the cache: the machine's own lists are
// not touched.
func (p *Provisioner) Kernel(ctx context.Context, k Kernel) (string, error) {
	dir := filepath.Join(p.CacheDir, "kernels", k.Suite)
	vmlinuz := filepath.Join(dir, "vmlinuz")
	if _, err := os.Stat(vmlinuz); err == nil {
		return vmlinuz, nil
	}
	opts, err := p.aptState(ctx, k.Suite)
	if err != nil {
		return "", fmt.Errorf("kernel %s not cached: %w", k.Version, err)
	}
	fmt.Fprintf(p.Log, "vmtest: fetching Debian %s's linux-image-amd64\n", k.Suite)
	out, err := p.run(ctx, "", "apt-cache", append(opts, "depends", "linux-image-amd64")...)
	if err != nil {
		return "", err
	}
	pkg, err := parseKernelDepends(out, k.Version)
	if err != nil {
		return "", fmt.Errorf("%s: %w", k.Suite, err)
	}
	return p.fetchFile(ctx, opts, pkg, "boot/vmlinuz-*", vmlinuz)
}

// Busybox returns the path of a cached static busybox (Debian's
// busybox-static of suite): the guest's /bin/sh and small tools.
func (p *Provisioner) Busybox(ctx context.Context, suite string) (string, error) {
	dst := filepath.Join(p.CacheDir, "busybox", suite, "busybox")
	if _, err := os.Stat(dst); err == nil {
		return dst, nil
	}
	opts, err := p.aptState(ctx, suite)
	if err != nil {
		return "", fmt.Errorf("busybox not cached: %w", err)
	}
	fmt.Fprintf(p.Log, "vmtest: fetching Debian %s's busybox-static\n", suite)
	return p.fetchFile(ctx, opts, "busybox-static", "bin/busybox", dst)
}

// aptState prepares the private apt configuration for suite (a copy of the
// machine's own Debian entry with the suite changed) and updates its lists
// once per run; it returns the apt options that select it.
func (p *Provisioner) aptState(ctx context.Context, suite string) ([]string, error) {
	aptDir := filepath.Join(p.CacheDir, "apt", suite)
	parts := filepath.Join(aptDir, "sources.list.d")
	opts := []string{
		"-o", "Dir::Etc::SourceList=/dev/null",
		"-o", "Dir::Etc::SourceParts=" + parts,
		"-o", "Dir::State::Lists=" + filepath.Join(aptDir, "lists"),
		"-o", "Dir::Cache=" + filepath.Join(aptDir, "cache"),
	}
	if p.updated[suite] {
		return opts, nil
	}
	if err := canInstall(); err != nil {
		return nil, err
	}
	if _, err := exec.LookPath("dpkg"); err != nil {
		return nil, fmt.Errorf("%w: no dpkg", ErrCannotProvision)
	}
	entry, err := p.debianEntry()
	if err != nil {
		return nil, err
	}
	for _, d := range []string{parts, filepath.Join(aptDir, "lists", "partial"), filepath.Join(aptDir, "cache", "archives", "partial")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	if err := os.WriteFile(filepath.Join(parts, "debian.sources"), []byte(entry.withSuite(suite)), 0o644); err != nil {
		return nil, err
	}
	if _, err := p.run(ctx, "", "apt-get", append(opts, "update")...); err != nil {
		return nil, err
	}
	if p.updated == nil {
		p.updated = map[string]bool{}
	}
	p.updated[suite] = true
	return opts, nil
}

// fetchFile downloads pkg, extracts it and moves the single file matching
// glob (relative to the package root) to dst, recording the package name.
func (p *Provisioner) fetchFile(ctx context.Context, opts []string, pkg, glob, dst string) (string, error) {
	if err := os.MkdirAll(p.CacheDir, 0o755); err != nil {
		return "", err
	}
	work, err := os.MkdirTemp(p.CacheDir, "fetch-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(work)
	if _, err := p.run(ctx, work, "apt-get", append(opts, "download", pkg)...); err != nil {
		return "", err
	}
	debs, _ := filepath.Glob(filepath.Join(work, pkg+"_*.deb"))
	if len(debs) != 1 {
		return "", fmt.Errorf("apt-get download %s: found %d .deb files", pkg, len(debs))
	}
	root := filepath.Join(work, "root")
	if _, err := p.run(ctx, "", "dpkg", "-x", debs[0], root); err != nil {
		return "", err
	}
	files, _ := filepath.Glob(filepath.Join(root, glob))
	if len(files) != 1 {
		return "", fmt.Errorf("%s: found %d files matching %s", pkg, len(files), glob)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(filepath.Dir(dst), "package"), []byte(filepath.Base(debs[0])+"\n"), 0o644); err != nil {
		return "", err
	}
	// Rename last, so that a cached file is always complete.
	if err := os.Rename(files[0], dst); err != nil {
		return "", err
	}
	return dst, nil
}

// Compiler checks that a C compiler for the test workloads exists (CC or
// cc), installing gcc and libc6-dev when it is missing and we are root.
func (p *Provisioner) Compiler(ctx context.Context) error {
	cc := os.Getenv("CC")
	if cc == "" {
		cc = "cc"
	}
	if _, err := exec.LookPath(cc); err == nil {
		return nil
	}
	if err := canInstall(); err != nil {
		return fmt.Errorf("no C compiler %q for the test workloads: %w", cc, err)
	}
	fmt.Fprintln(p.Log, "vmtest: installing gcc and libc6-dev for the test workloads")
	if _, err := p.run(ctx, "", "apt-get", "update"); err != nil {
		return err
	}
	_, err := p.run(ctx, "", "apt-get", "install", "-y", "--no-install-recommends", "gcc", "libc6-dev")
	return err
}

// parseKernelDepends finds the versioned kernel package in the output of
// `apt-cache depends linux-image-amd64` and checks it is of series version.
func parseKernelDepends(out []byte, version string) (string, error) {
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 2 && f[0] == "Depends:" && strings.HasPrefix(f[1], "linux-image-") {
			if !strings.HasPrefix(f[1], "linux-image-"+version+".") {
				return "", fmt.Errorf("linux-image-amd64 depends on %s, not a %s kernel", f[1], version)
			}
			return f[1], nil
		}
	}
	return "", fmt.Errorf("no linux-image-* dependency in apt-cache output %q", out)
}

// sourceEntry is the part of an apt source entry we copy.
type sourceEntry struct {
	URI      string
	SignedBy string
}

// withSuite renders e as a deb822 entry for suite, component main.
func (e sourceEntry) withSuite(suite string) string {
	s := "Types: deb\nURIs: " + e.URI + "\nSuites: " + suite + "\nComponents: main\n"
	if e.SignedBy != "" {
		s += "Signed-By: " + e.SignedBy + "\n"
	}
	return s
}

// debianEntry finds the machine's own Debian entry: a deb source for this
// machine's suite (VERSION_CODENAME) with component main, in the deb822
// files under sources.list.d or in one-line sources.list format.
func (p *Provisioner) debianEntry() (sourceEntry, error) {
	osr, err := os.ReadFile(p.OSRelease)
	if err != nil {
		return sourceEntry{}, fmt.Errorf("%w: %v", ErrCannotProvision, err)
	}
	codename := osReleaseField(string(osr), "VERSION_CODENAME")
	if codename == "" {
		return sourceEntry{}, fmt.Errorf("%w: no VERSION_CODENAME in %s", ErrCannotProvision, p.OSRelease)
	}
	files, _ := filepath.Glob(filepath.Join(p.AptEtc, "sources.list.d", "*.sources"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		if e, ok := findDeb822Entry(string(b), codename); ok {
			return e, nil
		}
	}
	lists, _ := filepath.Glob(filepath.Join(p.AptEtc, "sources.list.d", "*.list"))
	lists = append([]string{filepath.Join(p.AptEtc, "sources.list")}, lists...)
	for _, f := range lists {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		if e, ok := findOneLineEntry(string(b), codename); ok {
			return e, nil
		}
	}
	return sourceEntry{}, fmt.Errorf("%w: no Debian source entry for suite %s under %s", ErrCannotProvision, codename, p.AptEtc)
}

func osReleaseField(s, key string) string {
	for _, l := range strings.Split(s, "\n") {
		if v, ok := strings.CutPrefix(l, key+"="); ok {
			return strings.Trim(v, `"'`)
		}
	}
	return ""
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// findDeb822Entry returns the first stanza of a deb822 sources file with
// type deb, suite codename and component main.
func findDeb822Entry(s, codename string) (sourceEntry, bool) {
	for _, stanza := range strings.Split(s, "\n\n") {
		f := map[string]string{}
		for _, l := range strings.Split(stanza, "\n") {
			if strings.HasPrefix(l, "#") {
				continue
			}
			k, v, ok := strings.Cut(l, ":")
			if ok {
				f[strings.ToLower(strings.TrimSpace(k))] = strings.TrimSpace(v)
			}
		}
		if strings.EqualFold(f["enabled"], "no") {
			continue
		}
		uris := strings.Fields(f["uris"])
		if contains(strings.Fields(f["types"]), "deb") && contains(strings.Fields(f["suites"]), codename) &&
			contains(strings.Fields(f["components"]), "main") && len(uris) > 0 {
			return sourceEntry{URI: uris[0], SignedBy: f["signed-by"]}, true
		}
	}
	return sourceEntry{}, false
}

// findOneLineEntry parses "deb [opts] URI suite comp..." lines.
func findOneLineEntry(s, codename string) (sourceEntry, bool) {
	for _, l := range strings.Split(s, "\n") {
		f := strings.Fields(l)
		if len(f) < 4 || f[0] != "deb" {
			continue
		}
		var e sourceEntry
		rest := f[1:]
		if strings.HasPrefix(rest[0], "[") {
			for len(rest) > 0 {
				opt := strings.Trim(rest[0], "[]")
				if v, ok := strings.CutPrefix(opt, "signed-by="); ok {
					e.SignedBy = v
				}
				done := strings.HasSuffix(rest[0], "]")
				rest = rest[1:]
				if done {
					break
				}
			}
		}
		if len(rest) >= 3 && rest[1] == codename && contains(rest[2:], "main") {
			e.URI = rest[0]
			return e, true
		}
	}
	return sourceEntry{}, false
}

// RootfsPackages are the packages debootstrap adds to Debian's minbase for
// the systemd scenario: systemd as PID 1, a system and a user D-Bus
// (dbus-user-session gives the user manager its bus), pam_systemd so that
// logind starts the lingering user's manager, ps and sudo for debugging.
var RootfsPackages = []string{"systemd", "systemd-sysv", "dbus", "dbus-user-session", "libpam-systemd", "procps", "sudo"}

// rootfsKey names a root filesystem in the cache by what it is built from,
// so that a changed package list builds a new one.
func rootfsKey(suite string, pkgs []string) string {
	s := append([]string(nil), pkgs...)
	sort.Strings(s)
	h := sha256.Sum256([]byte("debootstrap --variant=minbase " + suite + " " + strings.Join(s, ",")))
	return suite + "-" + hex.EncodeToString(h[:6])
}

// Rootfs returns the directory of a cached Debian root filesystem of suite
// (debootstrap's minbase plus pkgs), building it once per machine: it
// installs debootstrap when missing (root only) and fetches from the
// machine's own Debian source entry. The directory is never changed
// afterwards; images are packed from a copy of it.
func (p *Provisioner) Rootfs(ctx context.Context, suite string, pkgs []string) (string, error) {
	dir := filepath.Join(p.CacheDir, "rootfs", rootfsKey(suite, pkgs))
	root := filepath.Join(dir, "root")
	if _, err := os.Stat(filepath.Join(dir, "complete")); err == nil {
		return root, nil
	}
	if err := canInstall(); err != nil {
		return "", fmt.Errorf("the root filesystem of Debian %s is not cached: %w", suite, err)
	}
	if _, err := exec.LookPath("debootstrap"); err != nil {
		fmt.Fprintln(p.Log, "vmtest: installing debootstrap")
		if _, err := p.run(ctx, "", "apt-get", "update"); err != nil {
			return "", err
		}
		if _, err := p.run(ctx, "", "apt-get", "install", "-y", "--no-install-recommends", "debootstrap"); err != nil {
			return "", err
		}
	}
	entry, err := p.debianEntry()
	if err != nil {
		return "", err
	}
	// A partial tree from an interrupted run is never reused.
	if err := os.RemoveAll(dir); err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	fmt.Fprintf(p.Log, "vmtest: debootstrap of Debian %s with systemd into %s (once per machine, about a minute)\n", suite, dir)
	args := []string{"--variant=minbase", "--include=" + strings.Join(pkgs, ","), suite, root, entry.URI}
	if _, err := p.run(ctx, "", "debootstrap", args...); err != nil {
		os.RemoveAll(dir)
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dir, "packages"), []byte(strings.Join(pkgs, "\n")+"\n"), 0o644); err != nil {
		return "", err
	}
	// Written last, so that a cached tree is always complete.
	return root, os.WriteFile(filepath.Join(dir, "complete"), nil, 0o644)
}
