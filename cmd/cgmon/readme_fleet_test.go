package main

import (
	"bufio"
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// readmeBlock is a fenced block of the README: its info string and text.
type readmeBlock struct {
	lang, text string
}

// readmeSections returns the fenced blocks of each section of the README,
// keyed by the section's heading without its #s. Headings inside blocks
// do not count.
func readmeSections(t *testing.T) map[string][]readmeBlock {
	t.Helper()
	f, err := os.Open("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := make(map[string][]readmeBlock)
	var section string
	var block *readmeBlock
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case block == nil && strings.HasPrefix(line, "```"):
			block = &readmeBlock{lang: strings.TrimPrefix(line, "```")}
		case block != nil && line == "```":
			out[section] = append(out[section], *block)
			block = nil
		case block != nil:
			block.text += line + "\n"
		case strings.HasPrefix(line, "#"):
			section = strings.TrimSpace(strings.TrimLeft(line, "#"))
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// shellBlocks returns a section's sh blocks, each with the text block that
// follows it (its output as the README prints it), if any.
func shellBlocks(t *testing.T, sections map[string][]readmeBlock, heading string) (cmds, outputs []string) {
	t.Helper()
	blocks, ok := sections[heading]
	if !ok {
		t.Fatalf("README has no section %q", heading)
	}
	for i, b := range blocks {
		if b.lang != "sh" {
			continue
		}
		out := ""
		if i+1 < len(blocks) && blocks[i+1].lang == "text" {
			out = blocks[i+1].text
		}
		cmds, outputs = append(cmds, b.text), append(outputs, out)
	}
	if len(cmds) == 0 {
		t.Fatalf("README section %q has no sh block", heading)
	}
	return cmds, outputs
}

var exitComment = regexp.MustCompile(`# exit status ([0-9]+)`)

// runBlock runs a README block as printed with bash -e in dir, with cgmon
// first on PATH, and checks its exit status against the block's
// "# exit status N" comment (0 without one). It returns standard output
// and error together.
func runBlock(t *testing.T, dir, block string, env ...string) string {
	t.Helper()
	want := 0
	if m := exitComment.FindStringSubmatch(block); m != nil {
		want, _ = strconv.Atoi(m[1])
	}
	cmd := exec.Command("bash", "-e", "-c", block)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(cgmonBin)+":"+os.Getenv("PATH"))
	cmd.Env = append(cmd.Env, env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatal(err)
	}
	if code != want {
		t.Fatalf("README block\n%s exited %d, want %d; output:\n%s", block, code, want, out.String())
	}
	return out.String()
}

// copyDir copies the files of src into a new temporary directory.
func copyDir(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	ents, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// TestReadmeFleetSections runs the commands of the README's sections on
// CI summaries, summary, compare and fleet metrics as printed, and checks
// the output they show.
func TestReadmeFleetSections(t *testing.T) {
	sections := readmeSections(t)

	t.Run("CI job summaries", func(t *testing.T) {
		cmds, _ := shellBlocks(t, sections, "CI job summaries: `--format markdown`")
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "Makefile"), []byte("test:\n\t@echo the tests pass\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		summary := filepath.Join(dir, "step-summary.md")
		for _, c := range cmds {
			runBlock(t, dir, c, "GITHUB_STEP_SUMMARY="+summary)
		}
		b, err := os.ReadFile(summary)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(string(b), "### ✅ success: `make test`\n") || !strings.Contains(string(b), "| Wall time | ") {
			t.Errorf("the step summary:\n%s", b)
		}
	})

	for _, s := range []struct{ heading, fixtures string }{
		{"`cgmon summary [flags] FILE...`", "summary"},
		{"`cgmon compare [flags] BASE.ndjson HEAD.ndjson`", "compare"},
	} {
		t.Run(s.fixtures, func(t *testing.T) {
			cmds, outputs := shellBlocks(t, sections, s.heading)
			dir := copyDir(t, filepath.Join(goldenDir, s.fixtures))
			for i, c := range cmds {
				got := runBlock(t, dir, c)
				if outputs[i] == "" {
					t.Fatalf("README: the block %q shows no output", c)
				}
				if got != outputs[i] {
					t.Errorf("README block\n%s prints\n%s\nthe README shows\n%s", c, got, outputs[i])
				}
			}
		})
	}

	t.Run("fleet metrics", func(t *testing.T) {
		cmds, outputs := shellBlocks(t, sections, "Fleet metrics: a port of its own, node_exporter's textfile, a Grafana dashboard")
		if len(cmds) != 2 {
			t.Fatalf("%d sh blocks, want 2 (batch on port 0, run with a textfile)", len(cmds))
		}
		dir := t.TempDir()
		jobs := `{"id": "j1", "language": "sh", "command": ["true"]}` + "\n"
		if err := os.WriteFile(filepath.Join(dir, "jobs.ndjson"), []byte(jobs), 0o644); err != nil {
			t.Fatal(err)
		}
		got := runBlock(t, dir, cmds[0])
		// The README's line with its port made a pattern.
		shown := strings.TrimSuffix(outputs[0], "\n")
		pattern := regexp.MustCompile("^" + regexp.QuoteMeta(shown[:strings.LastIndex(shown, ":")+1]) + "[0-9]+$")
		first, _, _ := strings.Cut(got, "\n")
		if !pattern.MatchString(first) || strings.HasSuffix(first, ":0") {
			t.Errorf("the first line is %q; the README shows %q", first, shown)
		}
		if err := os.WriteFile(filepath.Join(dir, "job.sh"), []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		textfiles := t.TempDir()
		runBlock(t, dir, cmds[1], "TEXTFILE_DIR="+textfiles)
		if v := scrapeTextfile(t, filepath.Join(textfiles, "cgmon.prom"), `cgmon_executions_total{language="unknown",status="success"}`); v != "1" {
			t.Errorf("the textfile counts %s successes, want 1", v)
		}
	})
}

// TestReadmeRelease runs `make dist` as the README prints it, then the
// README's download-and-verify commands against the binaries it built (a
// file:// URL in CGMON_RELEASE), and checks that a binary changed after
// the sums were made fails the check.
func TestReadmeRelease(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Fatalf("the README's download commands need curl: %v", err)
	}
	cmds, _ := shellBlocks(t, readmeSections(t), "Release binaries")
	if len(cmds) != 2 || !strings.Contains(cmds[1], "make dist") {
		t.Fatalf("want the download block, then make dist; got %q", cmds)
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	runBlock(t, root, cmds[1])
	dist := filepath.Join(root, "dist")
	for _, name := range []string{"cgmon-linux-amd64", "cgmon-linux-arm64", "SHA256SUMS"} {
		if _, err := os.Stat(filepath.Join(dist, name)); err != nil {
			t.Fatal(err)
		}
	}
	home := t.TempDir()
	out := runBlock(t, t.TempDir(), cmds[0], "CGMON_RELEASE=file://"+dist, "HOME="+home)
	if !strings.Contains(out, "cgmon-linux-amd64: OK") {
		t.Errorf("sha256sum -c did not say OK:\n%s", out)
	}
	installed := filepath.Join(home, ".local", "bin", "cgmon")
	v, err := exec.Command(installed, "help").CombinedOutput()
	if err != nil || !strings.Contains(string(v), "Usage:") {
		t.Errorf("the installed binary: %v\n%s", err, v)
	}
	// A binary that differs from its sum is refused: the check is real.
	bad := t.TempDir()
	for _, name := range []string{"cgmon-linux-amd64", "SHA256SUMS"} {
		b, err := os.ReadFile(filepath.Join(dist, name))
		if err != nil {
			t.Fatal(err)
		}
		if name != "SHA256SUMS" {
			b = append(b, 0)
		}
		if err := os.WriteFile(filepath.Join(bad, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command("bash", "-e", "-c", cmds[0])
	cmd.Dir = t.TempDir()
	cmd.Env = append(os.Environ(), "CGMON_RELEASE=file://"+bad, "HOME="+t.TempDir())
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "FAILED") {
		t.Errorf("a changed binary passed the README's check: %v\n%s", err, out)
	}
}
