package main

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the graph block of docs/architecture.md")

const (
	beginMark = "<!-- importgraph begin -->\n```text\n"
	endMark   = "```\n<!-- importgraph end -->"
)

// TestArchitectureDocGraph keeps the import graph of docs/architecture.md
// equal to the one the code has.
func TestArchitectureDocGraph(t *testing.T) {
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	got, err := importGraph(root)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(root, "docs", "architecture.md")
	doc, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	before, rest, ok := bytes.Cut(doc, []byte(beginMark))
	if !ok {
		t.Fatalf("%s: no %q", path, beginMark)
	}
	want, after, ok := bytes.Cut(rest, []byte(endMark))
	if !ok {
		t.Fatalf("%s: no %q after the begin mark", path, endMark)
	}
	if got == string(want) {
		return
	}
	if *update {
		// A new buffer: appending to before would write over after.
		var b bytes.Buffer
		for _, part := range [][]byte{before, []byte(beginMark), []byte(got), []byte(endMark), after} {
			b.Write(part)
		}
		if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Errorf("docs/architecture.md shows an import graph the code no longer has;\n"+
		"update the drawings and rerun with -update.\ngot:\n%s\nwant (the doc):\n%s", got, want)
}

// TestImportGraph checks the parse on a module made up for the test.
func TestImportGraph(t *testing.T) {
	root := t.TempDir()
	files := map[string]string{
		"go.mod":               "module example.com/m\n\ngo 1.26\n",
		"main.go":              "package main\n\nimport _ \"example.com/m/b\"\n",
		"a/a.go":               "package a\n\nimport (\n\t\"fmt\"\n\t_ \"example.com/m/a/leaf\"\n\t_ \"example.com/mother\"\n)\n\nvar _ = fmt.Sprint\n",
		"a/a_test.go":          "package a\n\nimport _ \"example.com/m/b\"\n",
		"a/leaf/leaf.go":       "package leaf\n",
		"b/b.go":               "package b\n\nimport (\n\t_ \"example.com/m\"\n\t_ \"example.com/m/a\"\n)\n",
		"b/testdata/x/x.go":    "package x\n\nimport _ \"example.com/m/a\"\n",
		"onlytests/x_test.go":  "package onlytests\n",
		".hidden/h.go":         "package h\n\nimport _ \"example.com/m/a\"\n",
		"a/leaf/leaf_linux.go": "package leaf\n\nimport _ \"example.com/m/c\"\n",
		"c/c.go":               "package c\n",
		"c/notgo.txt":          "import \"example.com/m/a\"\n",
	}
	for name, text := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := importGraph(root)
	if err != nil {
		t.Fatal(err)
	}
	want := ". -> b\n" +
		"a -> a/leaf\n" +
		"a/leaf -> c\n" +
		"b -> . a\n" +
		"c\n"
	if got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}
