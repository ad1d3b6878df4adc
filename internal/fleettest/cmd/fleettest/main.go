// Command fleettest runs the Slurm example of cgmon on a real one-node
// Slurm (see package fleettest): `make fleettest`, part of `make test`.
//
//	go run ./internal/fleettest/cmd/fleettest [-keep] [-timeout 8m]
//
// It exits 1 if a check fails. Where Slurm cannot run (not Linux, not
// root, the packages missing), it prints "fleettest: NOT RUN: ..." and
// exits 0, or 1 when CI=true.
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

	"github.com/cgmon/cgmon/internal/fleettest"
)

func main() {
	os.Exit(run())
}

// modRoot returns the directory of the go.mod above the working directory.
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
	keep := flag.Bool("keep", false, "keep the work directory: the cluster's logs, the input and the result files")
	timeout := flag.Duration("timeout", 8*time.Minute, "timeout of the whole run")
	flag.Parse()
	root, err := modRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, "fleettest:", err)
		return 2
	}
	cfg := fleettest.Config{ModRoot: root, Go: "go", Keep: *keep, Out: os.Stdout}
	if g := os.Getenv("GO"); g != "" {
		cfg.Go = g
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	err = fleettest.Run(ctx, cfg)
	if errors.Is(err, fleettest.ErrCannotRun) {
		bar := strings.Repeat("!", 72)
		fmt.Printf("%s\nfleettest: NOT RUN: %v\n%s\n", bar, err, bar)
		if os.Getenv("CI") == "true" {
			fmt.Println("fleettest: CI=true requires the Slurm stage: failing")
			return 1
		}
		return 0
	}
	if err != nil {
		fmt.Println("fleettest: FAIL:", err)
		return 1
	}
	fmt.Println("fleettest: PASS")
	return 0
}
