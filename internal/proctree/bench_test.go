//go:build linux

package proctree

import (
	"fmt"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// BenchmarkTreeSample measures one Sample of a live tree: one process, and
// a tree of ten (a parent and nine children), walked through /proc.
func BenchmarkTreeSample(b *testing.B) {
	for _, n := range []int{1, 10} {
		b.Run(fmt.Sprintf("procs=%d", n), func(b *testing.B) {
			fs := procFS(b)
			cmd := helperCmd("sleep")
			if n > 1 {
				cmd = helperCmd("parent", "CGMON_CHILDREN="+strings.Repeat("sleep,", n-2)+"sleep")
			}
			cmd.SysProcAttr = nil
			out, err := cmd.StdoutPipe()
			if err != nil {
				b.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				b.Fatal(err)
			}
			tree := fs.NewTree(cmd.Process.Pid, TreeOptions{})
			defer func() {
				tree.Kill(unix.SIGKILL)
				cmd.Wait()
				tree.Close()
			}()
			buf := make([]byte, 16)
			for got := ""; !strings.Contains(got, "ready\n"); {
				m, err := out.Read(buf)
				if err != nil {
					b.Fatal(err)
				}
				got += string(buf[:m])
			}
			if s, err := tree.Sample(); err != nil || s.Procs != n {
				b.Fatalf("Sample = %+v, %v; want %d processes", s, err, n)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if _, err := tree.Sample(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
