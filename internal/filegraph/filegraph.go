// Package filegraph finds which files of a Go package use which: file A
// uses file B when an identifier in A (outside comments and strings)
// resolves, by type checking, to a package-level function, method, type,
// variable or constant declared in B. The tests of this package hold
// cgmon's packages to their layout: the files of one package call one
// way, with no two files using each other, directly or around a loop.
package filegraph

import (
	"bytes"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/importer"
	"go/parser"
	"go/token"
	"go/types"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
)

// Graph is the use relation between the non-test files of one package.
type Graph struct {
	// Files are the package's files, by base name.
	Files []string
	// Uses maps a file to the files it uses (itself excluded).
	Uses map[string][]string
}

// Load type-checks the package at import path pkg (as the go command sees
// it from dir) and returns its file graph. It needs the go command, for
// the export data of the package's dependencies.
func Load(dir, pkg string) (*Graph, error) {
	cmd := exec.Command("go", "list", "-deps", "-export", "-json=ImportPath,Export,Dir,GoFiles", pkg)
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go list %s: %w", pkg, err)
	}
	type listed struct {
		ImportPath, Export, Dir string
		GoFiles                 []string
	}
	exports := map[string]string{}
	var target listed
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var l listed
		if err := dec.Decode(&l); err == io.EOF {
			break
		} else if err != nil {
			return nil, err
		}
		exports[l.ImportPath] = l.Export
		target = l // the package itself comes last
	}
	fset := token.NewFileSet()
	var files []*ast.File
	for _, name := range target.GoFiles {
		f, err := parser.ParseFile(fset, filepath.Join(target.Dir, name), nil, 0)
		if err != nil {
			return nil, err
		}
		files = append(files, f)
	}
	imp := importer.ForCompiler(fset, "gc", func(path string) (io.ReadCloser, error) {
		p, ok := exports[path]
		if !ok || p == "" {
			return nil, fmt.Errorf("no export data for %s", path)
		}
		return os.Open(p)
	})
	info := &types.Info{Uses: map[*ast.Ident]types.Object{}, Selections: map[*ast.SelectorExpr]*types.Selection{}}
	conf := types.Config{Importer: imp}
	tpkg, err := conf.Check(target.ImportPath, fset, files, info)
	if err != nil {
		return nil, err
	}
	g := &Graph{Files: append([]string(nil), target.GoFiles...), Uses: map[string][]string{}}
	sort.Strings(g.Files)
	edges := map[[2]string]bool{}
	add := func(at token.Pos, obj types.Object) {
		if obj == nil || obj.Pkg() != tpkg || !obj.Pos().IsValid() {
			return
		}
		if !declaredAtTop(obj) {
			return
		}
		from := filepath.Base(fset.Position(at).Filename)
		to := filepath.Base(fset.Position(obj.Pos()).Filename)
		if from != to {
			edges[[2]string{from, to}] = true
		}
	}
	for id, obj := range info.Uses {
		add(id.Pos(), obj)
	}
	for sel, s := range info.Selections {
		add(sel.Sel.Pos(), s.Obj())
	}
	for e := range edges {
		g.Uses[e[0]] = append(g.Uses[e[0]], e[1])
	}
	for _, v := range g.Uses {
		sort.Strings(v)
	}
	return g, nil
}

// declaredAtTop reports whether obj is a package-level declaration or a
// method or field of a package-level type: what one file hands another.
func declaredAtTop(obj types.Object) bool {
	if obj.Parent() == obj.Pkg().Scope() {
		return true
	}
	switch o := obj.(type) {
	case *types.Func:
		return o.Type().(*types.Signature).Recv() != nil
	case *types.Var:
		return o.IsField()
	}
	return false
}

// Cycles returns the strongly connected sets of more than one file: files
// that use each other, directly or around a loop.
func (g *Graph) Cycles() [][]string {
	index, low := map[string]int{}, map[string]int{}
	onStack := map[string]bool{}
	var stack []string
	var out [][]string
	n := 0
	var visit func(v string)
	visit = func(v string) {
		index[v], low[v] = n, n
		n++
		stack = append(stack, v)
		onStack[v] = true
		for _, w := range g.Uses[v] {
			if _, seen := index[w]; !seen {
				visit(w)
				low[v] = min(low[v], low[w])
			} else if onStack[w] {
				low[v] = min(low[v], index[w])
			}
		}
		if low[v] == index[v] {
			var scc []string
			for {
				w := stack[len(stack)-1]
				stack = stack[:len(stack)-1]
				onStack[w] = false
				scc = append(scc, w)
				if w == v {
					break
				}
			}
			if len(scc) > 1 {
				sort.Strings(scc)
				out = append(out, scc)
			}
		}
	}
	for _, f := range g.Files {
		if _, seen := index[f]; !seen {
			visit(f)
		}
	}
	return out
}

// Layers returns the files from the top (used by none of the others) to the
// bottom (using none), each file below every file that uses it; nil when
// the graph has a cycle.
func (g *Graph) Layers() [][]string {
	if len(g.Cycles()) > 0 {
		return nil
	}
	depth := map[string]int{} // longest path down to a file using nothing
	var down func(f string) int
	down = func(f string) int {
		if d, ok := depth[f]; ok {
			return d
		}
		d := 0
		for _, w := range g.Uses[f] {
			d = max(d, down(w)+1)
		}
		depth[f] = d
		return d
	}
	top := 0
	for _, f := range g.Files {
		top = max(top, down(f))
	}
	layers := make([][]string, top+1)
	for _, f := range g.Files {
		layers[top-depth[f]] = append(layers[top-depth[f]], f)
	}
	return layers
}
