// Package apicheck checks the doc comments of a package's exported API:
// every exported type, function, method, constant, variable and field of
// an exported struct has one, and it is a sentence that starts with the
// name it documents (constants and variables may share their group's
// comment, as Go's own packages do).
package apicheck

import (
	"fmt"
	"go/ast"
	"go/build"
	"go/parser"
	"go/token"
	"path/filepath"
	"sort"
	"strings"
)

// Problem is one exported identifier whose documentation breaks the rule.
type Problem struct {
	Pos  token.Position
	Name string
	Why  string
}

func (p Problem) String() string {
	return fmt.Sprintf("%s:%d: %s: %s", filepath.Base(p.Pos.Filename), p.Pos.Line, p.Name, p.Why)
}

// Check returns the problems of the package in dir, as built for goos.
func Check(dir, goos string) ([]Problem, error) {
	ctx := build.Default
	ctx.GOOS = goos
	bp, err := ctx.ImportDir(dir, 0)
	if err != nil {
		return nil, err
	}
	fset := token.NewFileSet()
	var out []Problem
	for _, name := range bp.GoFiles {
		f, err := parser.ParseFile(fset, filepath.Join(dir, name), nil, parser.ParseComments)
		if err != nil {
			return nil, err
		}
		out = append(out, checkFile(fset, f)...)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Pos.Filename != out[j].Pos.Filename {
			return out[i].Pos.Filename < out[j].Pos.Filename
		}
		return out[i].Pos.Line < out[j].Pos.Line
	})
	return out, nil
}

func checkFile(fset *token.FileSet, f *ast.File) []Problem {
	var out []Problem
	bad := func(pos token.Pos, name, why string) {
		out = append(out, Problem{Pos: fset.Position(pos), Name: name, Why: why})
	}
	for _, d := range f.Decls {
		switch d := d.(type) {
		case *ast.FuncDecl:
			if !d.Name.IsExported() || (d.Recv != nil && !exportedRecv(d.Recv)) {
				continue
			}
			if why := sentence(d.Doc, []string{d.Name.Name}); why != "" {
				bad(d.Pos(), d.Name.Name, why)
			}
		case *ast.GenDecl:
			for _, s := range d.Specs {
				switch s := s.(type) {
				case *ast.TypeSpec:
					if !s.Name.IsExported() {
						continue
					}
					doc := s.Doc
					if doc == nil && len(d.Specs) == 1 {
						doc = d.Doc
					}
					if why := sentence(doc, []string{s.Name.Name}); why != "" {
						bad(s.Pos(), s.Name.Name, why)
					}
					if st, ok := s.Type.(*ast.StructType); ok {
						var prev *ast.CommentGroup
						for _, fl := range st.Fields.List {
							checkField(fl, prev, s.Name.Name, bad)
							if fl.Doc != nil {
								prev = fl.Doc
							}
						}
					}
				case *ast.ValueSpec:
					var names []string
					for _, n := range s.Names {
						if n.IsExported() {
							names = append(names, n.Name)
						}
					}
					if len(names) == 0 {
						continue
					}
					if s.Doc == nil && d.Doc != nil && d.Lparen.IsValid() {
						continue // the group's comment documents its members
					}
					doc := s.Doc
					if doc == nil {
						doc = d.Doc
					}
					if why := sentence(doc, names); why != "" {
						bad(s.Pos(), strings.Join(names, ", "), why)
					}
				}
			}
		}
	}
	return out
}

// checkField checks a field of an exported struct. A field without a
// comment of its own may be documented by the comment of the fields above
// it when that comment names it ("CPUUser, CPUSystem and CPUTotal are").
func checkField(fl *ast.Field, prev *ast.CommentGroup, typ string, bad func(token.Pos, string, string)) {
	var names []string
	for _, n := range fl.Names {
		if n.IsExported() {
			names = append(names, n.Name)
		}
	}
	if len(names) == 0 {
		return // embedded or unexported
	}
	if fl.Doc == nil && prev != nil && namesAll(prev.Text(), names) {
		return
	}
	if why := sentence(fl.Doc, names); why != "" {
		bad(fl.Pos(), typ+"."+strings.Join(names, ", "), why)
	}
}

// sentence says what is wrong with doc as the comment of one of names.
func sentence(doc *ast.CommentGroup, names []string) string {
	if doc == nil {
		return "no doc comment"
	}
	text := strings.TrimSpace(doc.Text())
	first := text
	if i := strings.IndexAny(first, " \n"); i >= 0 {
		first = first[:i]
	}
	first = strings.TrimRight(first, ",")
	for _, n := range names {
		if first == n || (len(names) > 1 && strings.HasPrefix(text, strings.Join(names, ", "))) {
			return ""
		}
	}
	// "A Foo is", "The Foo", "An Foo" also start with the name's sentence.
	for _, art := range []string{"A ", "An ", "The "} {
		for _, n := range names {
			if strings.HasPrefix(text, art+n+" ") {
				return ""
			}
		}
	}
	return fmt.Sprintf("doc comment starts %q, not with the name", firstWords(text))
}

func firstWords(s string) string {
	if len(s) > 30 {
		return s[:30] + "..."
	}
	return s
}

func exportedRecv(r *ast.FieldList) bool {
	t := r.List[0].Type
	if s, ok := t.(*ast.StarExpr); ok {
		t = s.X
	}
	if ix, ok := t.(*ast.IndexExpr); ok {
		t = ix.X
	}
	id, ok := t.(*ast.Ident)
	return ok && id.IsExported()
}

// namesAll reports whether text names every one of names as a word.
func namesAll(text string, names []string) bool {
	words := map[string]bool{}
	for _, w := range strings.FieldsFunc(text, func(r rune) bool {
		return !(r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z')
	}) {
		words[w] = true
	}
	for _, n := range names {
		if !words[n] {
			return false
		}
	}
	return true
}
