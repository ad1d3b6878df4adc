// Command vmtest boots real kernels under qemu and runs the Go tests of the
// given packages inside each scenario (see internal/vmtest/README.md).
//
//	go run ./internal/vmtest/cmd/vmtest [-scenario v2-6.1,hybrid] [-pkgs ./cgroupmon,...] [-timeout 5m]
//
// It exits 1 if any scenario fails or cannot boot. When qemu or a kernel is
// missing and cannot be provisioned here, it prints "vmtest: NOT RUN: ..."
// and exits 0, or 1 when CI=true.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/cgmon/cgmon/internal/vmtest"
)

func main() {
	os.Exit(run())
}

func modRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("not inside a Go module (no go.mod above the working directory)")
		}
		dir = parent
	}
}

func run() int {
	scenarios := flag.String("scenario", strings.Join(vmtest.ScenarioNames(), ","), "comma-separated scenarios to boot")
	pkgs := flag.String("pkgs", strings.Join(vmtest.DefaultPkgs, ","), "comma-separated packages whose tests run in each guest (default: vmtest.DefaultPkgs)")
	timeout := flag.Duration("timeout", 5*time.Minute, "timeout per boot, from qemu start to power-off")
	testTimeout := flag.Duration("test-timeout", 3*time.Minute, "-test.timeout of each test binary in the guest")
	testRun := flag.String("run", "", "-test.run `regexp` of each test binary in the guest (no spaces); default all tests")
	parallel := flag.Int("parallel", 1, "scenarios booted at a time")
	cache := flag.String("cache", "", "cache directory (default <module root>/.cache/vmtest)")
	flag.Parse()

	root, err := modRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, "vmtest:", err)
		return 2
	}
	cfg := vmtest.Config{
		ModRoot: root, CacheDir: *cache, BootTimeout: *timeout, TestTimeout: *testTimeout, TestRun: *testRun,
		Parallel: *parallel, Go: "go", Out: os.Stdout, Log: os.Stderr,
	}
	if cfg.CacheDir == "" {
		cfg.CacheDir = filepath.Join(root, ".cache", "vmtest")
	}
	if g := os.Getenv("GO"); g != "" {
		cfg.Go = g
	}
	if *parallel < 1 || *timeout <= 0 || *testTimeout <= 0 {
		fmt.Fprintln(os.Stderr, "vmtest: -parallel, -timeout and -test-timeout must be positive")
		return 2
	}
	if strings.ContainsAny(*testRun, " \t\n\"'") {
		fmt.Fprintln(os.Stderr, "vmtest: -run travels on the kernel command line: no spaces or quotes")
		return 2
	}
	for _, n := range strings.Split(*scenarios, ",") {
		s, err := vmtest.LookupScenario(strings.TrimSpace(n))
		if err != nil {
			fmt.Fprintln(os.Stderr, "vmtest:", err)
			return 2
		}
		cfg.Scenarios = append(cfg.Scenarios, s)
	}
	for _, p := range strings.Split(*pkgs, ",") {
		p = strings.TrimSpace(p)
		if _, err := vmtest.CleanPkg(p); err != nil {
			fmt.Fprintln(os.Stderr, "vmtest:", err)
			return 2
		}
		cfg.Pkgs = append(cfg.Pkgs, p)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	outcomes, err := vmtest.Run(ctx, cfg)
	if errors.Is(err, vmtest.ErrCannotProvision) {
		bar := strings.Repeat("!", 72)
		fmt.Printf("%s\nvmtest: NOT RUN: %v\n%s\n", bar, err, bar)
		if os.Getenv("CI") == "true" {
			fmt.Println("vmtest: CI=true requires the VM stage: failing")
			return 1
		}
		return 0
	}
	if err != nil {
		fmt.Println("vmtest: FAIL:", err)
		return 1
	}
	for _, o := range outcomes {
		if !o.Passed() {
			return 1
		}
	}
	return 0
}
