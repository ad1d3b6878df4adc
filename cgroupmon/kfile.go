package cgroupmon

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

const (
	defaultProcRoot = "/proc"
	// defaultSysRoot is the sysfs mount point (block devices of io limits).
	defaultSysRoot = "/sys"
	// maxKernelFile caps every read of a kernel file (STYLE: reads are capped).
	maxKernelFile = 64 << 10
)

// readCapped reads a kernel file, refusing one larger than maxKernelFile.
func readCapped(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxKernelFile+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(b) > maxKernelFile {
		return nil, fmt.Errorf("%s: larger than %d bytes: %w", path, maxKernelFile, errMalformed)
	}
	return b, nil
}

// nonNil returns s, or an empty list for nil (JSON shows [] not null).
func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// withinDir reports whether path is dir or below it.
func withinDir(dir, path string) bool {
	rel, err := filepath.Rel(dir, path)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}
