package vmtest

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// example.invalid stands in for a mirror: the repository names no registry.
const deb822 = `Types: deb
# a comment
URIs: http://mirror.example.invalid/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://mirror.example.invalid/debian-security
Suites: bookworm-security
Components: main
`

func TestFindDeb822Entry(t *testing.T) {
	e, ok := findDeb822Entry(deb822, "bookworm")
	if !ok || e.URI != "http://mirror.example.invalid/debian" || e.SignedBy != "/usr/share/keyrings/debian-archive-keyring.gpg" {
		t.Fatalf("entry = %+v, %v", e, ok)
	}
	if e, ok := findDeb822Entry(deb822, "trixie"); ok {
		t.Fatalf("found %+v for a suite not listed", e)
	}
	got := e.withSuite("bullseye")
	if !strings.Contains(got, "\nSuites: bullseye\n") || !strings.Contains(got, "URIs: http://mirror.example.invalid/debian\n") {
		t.Fatalf("withSuite = %q", got)
	}
}

func TestFindOneLineEntry(t *testing.T) {
	s := "# deb http://old bookworm main\ndeb [arch=amd64 signed-by=/k.gpg] http://m.example.invalid/debian bookworm main contrib\n"
	e, ok := findOneLineEntry(s, "bookworm")
	if !ok || e.URI != "http://m.example.invalid/debian" || e.SignedBy != "/k.gpg" {
		t.Fatalf("entry = %+v, %v", e, ok)
	}
	if _, ok := findOneLineEntry("deb http://m/debian bookworm contrib\n", "bookworm"); ok {
		t.Fatal("accepted an entry without main")
	}
}

func TestDebianEntryFromFiles(t *testing.T) {
	dir := t.TempDir()
	osr := filepath.Join(dir, "os-release")
	os.WriteFile(osr, []byte("NAME=\"Debian GNU/Linux\"\nVERSION_CODENAME=bookworm\n"), 0o644)
	p := &Provisioner{AptEtc: filepath.Join(dir, "apt"), OSRelease: osr}
	if _, err := p.debianEntry(); !errors.Is(err, ErrCannotProvision) {
		t.Fatalf("no sources: error = %v, want ErrCannotProvision", err)
	}
	os.MkdirAll(filepath.Join(dir, "apt", "sources.list.d"), 0o755)
	os.WriteFile(filepath.Join(dir, "apt", "sources.list.d", "debian.sources"), []byte(deb822), 0o644)
	e, err := p.debianEntry()
	if err != nil || e.URI != "http://mirror.example.invalid/debian" {
		t.Fatalf("entry = %+v, %v", e, err)
	}
}

func TestParseKernelDepends(t *testing.T) {
	out := []byte("linux-image-amd64\n  Depends: linux-image-6.1.0-56-amd64\n")
	if p, err := parseKernelDepends(out, "6.1"); err != nil || p != "linux-image-6.1.0-56-amd64" {
		t.Fatalf("= %q, %v", p, err)
	}
	if _, err := parseKernelDepends(out, "5.10"); err == nil {
		t.Fatal("accepted a 6.1 package for the 5.10 scenario")
	}
	if _, err := parseKernelDepends([]byte("linux-image-amd64\n"), "6.1"); err == nil {
		t.Fatal("accepted output without a dependency")
	}
}

func TestRootfsKeyFollowsPackages(t *testing.T) {
	a := rootfsKey("bookworm", []string{"systemd", "dbus"})
	if b := rootfsKey("bookworm", []string{"dbus", "systemd"}); a != b {
		t.Errorf("key depends on the order of the packages: %s, %s", a, b)
	}
	if b := rootfsKey("bookworm", []string{"dbus", "systemd", "sudo"}); a == b {
		t.Errorf("a package added keeps the key %s", a)
	}
	if b := rootfsKey("trixie", []string{"systemd", "dbus"}); a == b || !strings.HasPrefix(b, "trixie-") {
		t.Errorf("key of another suite = %s (bookworm's %s)", b, a)
	}
}
