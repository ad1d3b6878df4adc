package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// k8sManifest is the Kubernetes example, as users copy it.
const k8sManifest = "../../examples/kubernetes/cgmon-batch-job.yaml"

// k8sObject is the part of a Kubernetes object the example's check reads.
type k8sObject struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name string `yaml:"name"`
	} `yaml:"metadata"`
	Spec k8sSpec `yaml:"spec"`
}

// k8sSpec holds the fields of a Job's and a PersistentVolumeClaim's spec
// that the check reads.
type k8sSpec struct {
	// Job.
	CompletionMode   string `yaml:"completionMode"`
	Completions      *int   `yaml:"completions"`
	Parallelism      *int   `yaml:"parallelism"`
	PodFailurePolicy *struct {
		Rules []struct {
			Action          string `yaml:"action"`
			OnPodConditions []struct {
				Type string `yaml:"type"`
			} `yaml:"onPodConditions"`
		} `yaml:"rules"`
	} `yaml:"podFailurePolicy"`
	Template struct {
		Spec struct {
			RestartPolicy string `yaml:"restartPolicy"`
			Containers    []struct {
				Name         string   `yaml:"name"`
				Image        string   `yaml:"image"`
				Command      []string `yaml:"command"`
				Args         []string `yaml:"args"`
				VolumeMounts []struct {
					Name      string `yaml:"name"`
					MountPath string `yaml:"mountPath"`
					ReadOnly  bool   `yaml:"readOnly"`
				} `yaml:"volumeMounts"`
			} `yaml:"containers"`
			Volumes []struct {
				Name      string `yaml:"name"`
				ConfigMap *struct {
					Name string `yaml:"name"`
				} `yaml:"configMap"`
				PersistentVolumeClaim *struct {
					ClaimName string `yaml:"claimName"`
				} `yaml:"persistentVolumeClaim"`
			} `yaml:"volumes"`
		} `yaml:"spec"`
	} `yaml:"template"`
	// PersistentVolumeClaim.
	AccessModes []string `yaml:"accessModes"`
}

// readK8sManifest parses every document of the example.
func readK8sManifest(t *testing.T) []k8sObject {
	t.Helper()
	f, err := os.Open(k8sManifest)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dec := yaml.NewDecoder(f)
	var objs []k8sObject
	for {
		var o k8sObject
		err := dec.Decode(&o)
		if errors.Is(err, io.EOF) {
			return objs
		}
		if err != nil {
			t.Fatalf("%s: %v", k8sManifest, err)
		}
		objs = append(objs, o)
	}
}

// shardFlag finds --shard "$JOB_COMPLETION_INDEX/N" and -o in a command.
var (
	shardFlag  = regexp.MustCompile(`--shard "\$JOB_COMPLETION_INDEX/([0-9]+)"`)
	outputFlag = regexp.MustCompile(`-o "([^"]*\$JOB_COMPLETION_INDEX[^"]*)"`)
)

// TestKubernetesExample checks the Indexed Job a user copies: the fields
// an Indexed Job needs, a shard count equal to its completions, a result
// file per index on a shared writable volume, and then runs its
// container's command as printed for every index (the volumes mapped to
// directories here): the union of the pods' results equals an unsharded
// run, and a pod started again for an index that had finished runs
// nothing.
func TestKubernetesExample(t *testing.T) {
	objs := readK8sManifest(t)
	var job *k8sObject
	claims := map[string]k8sObject{}
	for i, o := range objs {
		switch {
		case o.APIVersion == "batch/v1" && o.Kind == "Job":
			job = &objs[i]
		case o.APIVersion == "v1" && o.Kind == "PersistentVolumeClaim":
			claims[o.Metadata.Name] = o
		default:
			t.Errorf("unexpected object %s %s", o.APIVersion, o.Kind)
		}
	}
	if job == nil {
		t.Fatal("the example has no batch/v1 Job")
	}
	s := job.Spec
	if job.Metadata.Name == "" {
		t.Error("the Job has no name")
	}
	if s.CompletionMode != "Indexed" {
		t.Errorf("completionMode %q, want Indexed: without it pods get no JOB_COMPLETION_INDEX", s.CompletionMode)
	}
	if s.Completions == nil || *s.Completions < 1 {
		t.Fatal("an Indexed Job needs completions of at least 1")
	}
	n := *s.Completions
	if s.Parallelism == nil || *s.Parallelism < 1 || *s.Parallelism > n {
		t.Errorf("parallelism %v, want 1 to completions (%d)", s.Parallelism, n)
	}
	pod := s.Template.Spec
	if s.PodFailurePolicy != nil && pod.RestartPolicy != "Never" {
		t.Errorf("restartPolicy %q: Kubernetes accepts a podFailurePolicy only with Never", pod.RestartPolicy)
	}
	if pod.RestartPolicy != "Never" && pod.RestartPolicy != "OnFailure" {
		t.Errorf("restartPolicy %q: a Job's pods need Never or OnFailure", pod.RestartPolicy)
	}
	if len(pod.Containers) != 1 {
		t.Fatalf("%d containers, want 1", len(pod.Containers))
	}
	c := pod.Containers[0]
	if c.Name == "" || c.Image == "" {
		t.Errorf("the container needs a name and an image: %q, %q", c.Name, c.Image)
	}
	if !slices.Equal(c.Command, []string{"/bin/sh", "-c"}) || len(c.Args) != 1 {
		t.Fatalf("command %q args %q: want /bin/sh -c and one script, so that the shell expands $JOB_COMPLETION_INDEX", c.Command, c.Args)
	}
	script := c.Args[0]
	m := shardFlag.FindStringSubmatch(script)
	if m == nil || m[1] != fmt.Sprint(n) {
		t.Fatalf("the command %q does not run --shard \"$JOB_COMPLETION_INDEX/%d\" (N = completions)", script, n)
	}
	if !strings.Contains(script, " --resume ") {
		t.Errorf("the command %q does not --resume: a pod started again would start over", script)
	}
	o := outputFlag.FindStringSubmatch(script)
	if o == nil {
		t.Fatalf("the command %q has no -o file named after the index", script)
	}
	volumes := map[string]int{}
	for i, v := range pod.Volumes {
		volumes[v.Name] = i
	}
	mounted := false
	for _, vm := range c.VolumeMounts {
		if !strings.HasPrefix(o[1], vm.MountPath+"/") {
			continue
		}
		mounted = true
		i, ok := volumes[vm.Name]
		if !ok {
			t.Fatalf("volume %q is mounted but not defined", vm.Name)
		}
		v := pod.Volumes[i]
		if vm.ReadOnly || v.PersistentVolumeClaim == nil {
			t.Errorf("results go to %s: want a writable persistentVolumeClaim there, not %+v", vm.MountPath, v)
			continue
		}
		claim, ok := claims[v.PersistentVolumeClaim.ClaimName]
		if !ok {
			t.Errorf("the claim %q is not in the example", v.PersistentVolumeClaim.ClaimName)
		} else if !slices.Contains(claim.Spec.AccessModes, "ReadWriteMany") {
			t.Errorf("the claim %q has access modes %v: pods on several nodes need ReadWriteMany", claim.Metadata.Name, claim.Spec.AccessModes)
		}
	}
	if !mounted {
		t.Errorf("results go to %s, on no volume: they would die with the pod", o[1])
	}

	// Run the command of each index, every mount path a directory here.
	dir := t.TempDir()
	for _, vm := range c.VolumeMounts {
		if err := os.MkdirAll(filepath.Join(dir, vm.MountPath), 0o755); err != nil {
			t.Fatal(err)
		}
		script = strings.ReplaceAll(script, vm.MountPath+"/", filepath.Join(dir, vm.MountPath)+"/")
	}
	input := script[strings.LastIndexByte(script, ' ')+1:]
	if !strings.HasPrefix(input, dir) {
		t.Fatalf("the input %s is on no volume", input)
	}
	var lines []string
	for i := range 15 {
		lines = append(lines, fmt.Sprintf(`{"id": "p%02d", "language": "sh", "command": ["sh", "-c", "exit %d"]}`, i, i%3))
	}
	if err := os.WriteFile(input, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, rootFlags := batchRoot(t)
	runPod := func(index int) {
		t.Helper()
		sh := exec.Command("/bin/sh", "-c", strings.Replace(script, "cgmon batch ", "cgmon batch "+strings.Join(rootFlags, " ")+" ", 1))
		sh.Env = append(os.Environ(), fmt.Sprintf("JOB_COMPLETION_INDEX=%d", index), "PATH="+filepath.Dir(cgmonBin)+":"+os.Getenv("PATH"))
		if b, err := sh.CombinedOutput(); err != nil {
			t.Fatalf("index %d: %v\n%s", index, err, b)
		}
	}
	got := map[string]resultRecord{}
	for k := range n {
		runPod(k)
		out := strings.ReplaceAll(outputFlag.FindStringSubmatch(script)[1], "$JOB_COMPLETION_INDEX", fmt.Sprint(k))
		for _, r := range readResultFile(t, out) {
			if _, dup := got[r["id"].(string)]; dup {
				t.Errorf("%v ran in two pods", r["id"])
			}
			got[r["id"].(string)] = r
		}
	}
	all := filepath.Join(dir, "unsharded.ndjson")
	if r := cgmon(t, "", append(append([]string{"batch", "-o", all}, rootFlags...), input)...); r.code != 0 {
		t.Fatalf("unsharded run: exit %d: %s", r.code, r.stderr)
	}
	want := readResultFile(t, all)
	if len(got) != len(want) {
		t.Errorf("the pods ran %d lines, the unsharded run %d", len(got), len(want))
	}
	for _, w := range want {
		g := got[w["id"].(string)]
		for _, f := range stableFields {
			if fmt.Sprint(g[f]) != fmt.Sprint(w[f]) {
				t.Errorf("%v: %s is %v in its pod, %v unsharded", w["id"], f, g[f], w[f])
			}
		}
	}
	// A pod started again for index 1 (its node failed after it ended).
	out1 := strings.ReplaceAll(outputFlag.FindStringSubmatch(script)[1], "$JOB_COMPLETION_INDEX", "1")
	before := completeLines(out1)
	runPod(1)
	if after := completeLines(out1); after != before {
		t.Errorf("index 1 started again wrote %d more results, want none", after-before)
	}
}

// TestSlurmExampleScript runs the Slurm example's script as a job array's
// tasks run it, without Slurm: with SLURM_ARRAY_TASK_ID and
// SLURM_ARRAY_TASK_COUNT set for each task (make fleettest runs it on a
// real Slurm, where it can). The union of the tasks' result files equals
// an unsharded run, and a task run again adds nothing.
func TestSlurmExampleScript(t *testing.T) {
	script, err := filepath.Abs("../../examples/slurm/cgmon-batch.sbatch")
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(script)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^#SBATCH --array=0-([0-9]+)$`).FindSubmatch(b)
	if m == nil {
		t.Fatal("the script has no #SBATCH --array=0-N line")
	}
	var n int
	fmt.Sscan(string(m[1]), &n)
	n++
	dir := t.TempDir()
	var lines []string
	for i := range 15 {
		lines = append(lines, fmt.Sprintf(`{"id": "j%02d", "command": ["sh", "-c", "exit %d"]}`, i, i%2))
	}
	writeLines(t, dir, "batch.ndjson", lines)
	_, rootFlags := batchRoot(t)
	// The script's cgmon on PATH: a wrapper that adds the test's cgroup
	// root.
	wrapper := filepath.Join(dir, "bin", "cgmon")
	if err := os.MkdirAll(filepath.Dir(wrapper), 0o755); err != nil {
		t.Fatal(err)
	}
	wrap := fmt.Sprintf("#!/bin/sh\nsub=$1; shift\nexec %s \"$sub\" %s \"$@\"\n", cgmonBin, strings.Join(rootFlags, " "))
	if err := os.WriteFile(wrapper, []byte(wrap), 0o755); err != nil {
		t.Fatal(err)
	}
	task := func(k int) {
		t.Helper()
		sh := exec.Command("/bin/sh", script)
		sh.Dir = dir
		sh.Env = append(os.Environ(), "PATH="+filepath.Dir(wrapper)+":"+os.Getenv("PATH"),
			fmt.Sprintf("SLURM_ARRAY_TASK_ID=%d", k), fmt.Sprintf("SLURM_ARRAY_TASK_COUNT=%d", n), "SLURM_CPUS_PER_TASK=1")
		if out, err := sh.CombinedOutput(); err != nil {
			t.Fatalf("task %d: %v\n%s", k, err, out)
		}
	}
	got := map[string]resultRecord{}
	for k := range n {
		task(k)
		for _, r := range readResultFile(t, filepath.Join(dir, "results", fmt.Sprintf("shard-%d.ndjson", k))) {
			if _, dup := got[r["id"].(string)]; dup {
				t.Errorf("%v ran in two tasks", r["id"])
			}
			got[r["id"].(string)] = r
		}
	}
	all := filepath.Join(dir, "unsharded.ndjson")
	if r := cgmon(t, "", append(append([]string{"batch", "-o", all}, rootFlags...), filepath.Join(dir, "batch.ndjson"))...); r.code != 0 {
		t.Fatalf("unsharded run: exit %d: %s", r.code, r.stderr)
	}
	want := readResultFile(t, all)
	if len(got) != len(want) {
		t.Errorf("the tasks ran %d lines, the unsharded run %d", len(got), len(want))
	}
	for _, w := range want {
		g := got[w["id"].(string)]
		for _, f := range stableFields {
			if fmt.Sprint(g[f]) != fmt.Sprint(w[f]) {
				t.Errorf("%v: %s is %v in its task, %v unsharded", w["id"], f, g[f], w[f])
			}
		}
	}
	out0 := filepath.Join(dir, "results", "shard-0.ndjson")
	before := completeLines(out0)
	task(0)
	if after := completeLines(out0); after != before {
		t.Errorf("task 0 run again wrote %d more results, want none", after-before)
	}
}

// TestReadmeExampleLines checks that the line the README shows as the one
// that differs per task is the examples' own, word for word: the
// Kubernetes container's command and the Slurm script's cgmon line.
func TestReadmeExampleLines(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	i := strings.Index(text, "\n### Spreading a batch over machines")
	if i < 0 {
		t.Fatal("the README has no section on spreading a batch")
	}
	text = text[i+1:]
	text = text[:strings.Index(text[4:], "\n### ")+4]
	// The blocks without a language: lines of the examples, not commands.
	var blocks []string
	lang, body := "", []string(nil)
	inBlock := false
	for _, l := range strings.Split(text, "\n") {
		switch {
		case !inBlock && strings.HasPrefix(l, "```"):
			inBlock, lang, body = true, strings.TrimPrefix(l, "```"), nil
		case inBlock && l == "```":
			inBlock = false
			if lang == "" {
				blocks = append(blocks, strings.Join(body, "\n"))
			}
		case inBlock:
			body = append(body, l)
		}
	}
	script, err := os.ReadFile("../../examples/slurm/cgmon-batch.sbatch")
	if err != nil {
		t.Fatal(err)
	}
	k8s := readK8sManifest(t)
	seen := map[string]bool{}
	for _, line := range blocks {
		switch {
		case strings.Contains(line, "$JOB_COMPLETION_INDEX"):
			seen["kubernetes"] = true
			for _, o := range k8s {
				if o.Kind == "Job" && o.Spec.Template.Spec.Containers[0].Args[0] != line {
					t.Errorf("the README shows\n  %s\nthe Job runs\n  %s", line, o.Spec.Template.Spec.Containers[0].Args[0])
				}
			}
		case strings.Contains(line, "$SLURM_ARRAY_TASK_ID"):
			seen["slurm"] = true
			if !slices.Contains(strings.Split(string(script), "\n"), line) {
				t.Errorf("the README shows\n  %s\nwhich is not a line of the Slurm script", line)
			}
		}
	}
	if !seen["kubernetes"] || !seen["slurm"] {
		t.Errorf("the README shows the per-task line of %v, want kubernetes and slurm", seen)
	}
}
