//go:build linux

package prom

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// readmeProgram returns the Go program of the README's section "Scraping
// with Prometheus": its first ```go block.
func readmeProgram(t *testing.T, readme string) string {
	t.Helper()
	f, err := os.Open(readme)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var prog strings.Builder
	inSection, inBlock := false, false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "#") && !inBlock:
			if inSection {
				t.Fatal("README: no ```go block in the section \"Scraping with Prometheus\"")
			}
			inSection = line == "### Scraping with Prometheus"
		case inSection && !inBlock && line == "```go":
			inBlock = true
		case inBlock && line == "```":
			return prog.String()
		case inBlock:
			prog.WriteString(line + "\n")
		}
	}
	t.Fatalf("README: no complete ```go block in the section \"Scraping with Prometheus\" (%v)", sc.Err())
	return ""
}

// TestReadmeProgram builds the README's Prometheus program as printed,
// runs it, scrapes /metrics until an execution it ran is counted, and
// checks that SIGTERM ends it cleanly.
func TestReadmeProgram(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command to build the README's program with:", err)
	}
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	src := readmeProgram(t, filepath.Join(root, "README.md"))
	if !strings.HasPrefix(src, "package main\n") {
		t.Fatalf("the README's program does not start with package main:\n%s", src)
	}
	// The program is built inside the module (it imports the module's own
	// packages) through an overlay, so that no file is written in the tree.
	dir := t.TempDir()
	mainGo := filepath.Join(dir, "main.go")
	if err := os.WriteFile(mainGo, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	inTree := filepath.Join(root, "metrics", "prom", "internal", "readmeprogram", "main.go")
	overlay, _ := json.Marshal(map[string]any{"Replace": map[string]string{inTree: mainGo}})
	overlayFile := filepath.Join(dir, "overlay.json")
	if err := os.WriteFile(overlayFile, overlay, 0o644); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "exporter")
	build := exec.Command(goTool, "build", "-overlay", overlayFile, "-o", bin, inTree)
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build of the README's program: %v\n%s", err, out)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cmd := exec.Command(bin, "-listen", addr)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill() // only if the test fails before SIGTERM
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	want := `cgmon_executions_total{language="sh",status="success"} `
	var body string
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		select {
		case err := <-exited:
			t.Fatalf("the README's program ended by itself (%v); stderr: %s", err, stderr.String())
		default:
		}
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		body = string(b)
		if strings.Contains(body, want) && !strings.Contains(body, want+"0\n") {
			break
		}
	}
	if !strings.Contains(body, want) || strings.Contains(body, want+"0\n") {
		t.Errorf("/metrics never counted a successful `sleep 1`:\n%s", body)
	}
	if !strings.Contains(body, `cgmon_execution_duration_seconds_count{language="sh"} `) {
		t.Errorf("/metrics has no duration histogram:\n%s", body)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("the README's program ended with %v after SIGTERM", err)
		}
	case <-time.After(15 * time.Second):
		cmd.Process.Kill()
		<-exited
		t.Error("the README's program did not end within 15 s of SIGTERM")
	}
	if t.Failed() {
		t.Logf("the program's stderr: %s", stderr.String())
	}
}
