package formattest

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/zeebo/blake3"

	"github.com/cas-ml/cas/cas/format"
	"github.com/cas-ml/cas/digest"
)

// Entry describes a tree entry by content, for building both the Tree
// and the same tree on disk.
type Entry struct {
	Name    string
	Kind    format.Kind
	Content string  // file content or link target
	Sub     []Entry // of a dir
}

// Tree returns the sorted tree of es, subtrees digested.
func Tree(t testing.TB, es []Entry) *format.Tree {
	t.Helper()
	tr := &format.Tree{}
	for _, e := range es {
		te := format.TreeEntry{Name: e.Name, Kind: e.Kind, Size: int64(len(e.Content)), Digest: digest.Of([]byte(e.Content))}
		if e.Kind == format.KindDir {
			sub := Tree(t, e.Sub)
			d, _, err := sub.Digest()
			if err != nil {
				t.Fatal(err)
			}
			te.Size, te.Digest = sub.Size(), d
		}
		tr.Entries = append(tr.Entries, te)
	}
	tr.Sort()
	return tr
}

// Write creates the entries of es in dir.
func Write(t testing.TB, dir string, es []Entry) {
	t.Helper()
	for _, e := range es {
		p := filepath.Join(dir, e.Name)
		var err error
		switch e.Kind {
		case format.KindFile:
			err = os.WriteFile(p, []byte(e.Content), 0o644)
		case format.KindExec:
			err = os.WriteFile(p, []byte(e.Content), 0o755)
		case format.KindLink:
			err = os.Symlink(e.Content, p)
		case format.KindDir:
			if err = os.Mkdir(p, 0o755); err == nil {
				Write(t, p, e.Sub)
			}
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// The trees of testdata/golden/trees.json.
var (
	Hello = []Entry{{Name: "hello.txt", Kind: format.KindFile, Content: "hello world\n"}}
	Mixed = []Entry{
		{Name: "README", Kind: format.KindFile, Content: "cas test tree\n"},
		{Name: "empty", Kind: format.KindFile},
		{Name: "run.sh", Kind: format.KindExec, Content: "#!/bin/sh\necho hi\n"},
		{Name: "latest", Kind: format.KindLink, Content: "run.sh"},
		{Name: "sub", Kind: format.KindDir, Sub: Hello},
		{Name: "void", Kind: format.KindDir},
	}
	Names = []Entry{
		{Name: "a", Kind: format.KindFile, Content: "a"},
		{Name: "A", Kind: format.KindFile, Content: "A"},
		{Name: "a b", Kind: format.KindFile, Content: "space"},
		{Name: "ab", Kind: format.KindFile, Content: "ab"},
		{Name: "new\nline", Kind: format.KindFile, Content: "newline"},
		{Name: "\xff", Kind: format.KindFile, Content: "not UTF-8"},
		{Name: "\u00e9t\u00e9", Kind: format.KindFile, Content: "UTF-8"},
		{Name: strings.Repeat("n", 255), Kind: format.KindFile, Content: "long name"},
		{Name: "-dash", Kind: format.KindFile, Content: "dash"},
		{Name: "back\\slash", Kind: format.KindLink, Content: "../\xfe target with spaces"},
	}
	Nested = []Entry{
		{Name: "mixed", Kind: format.KindDir, Sub: Mixed},
		{Name: "names", Kind: format.KindDir, Sub: Names},
		{Name: "hello", Kind: format.KindLink, Content: "mixed/sub/hello.txt"},
	}
	// Golden lists them in the order of trees.json.
	Golden = []struct {
		Name  string
		Entry []Entry
	}{
		{"empty", nil},
		{"hello", Hello},
		{"mixed", Mixed},
		{"names", Names},
		{"nested", Nested},
	}
)

// XOF returns n bytes of the BLAKE3 extended output for seed: the same
// bytes as `printf %s SEED | b3sum --raw --length N`.
func XOF(seed string, n int) []byte {
	h := blake3.New()
	_, _ = h.Write([]byte(seed))
	b := make([]byte, n)
	if _, err := h.Digest().Read(b); err != nil {
		panic(err)
	}
	return b
}

// CheckGolden compares got, as indented JSON, with the golden file path,
// or rewrites the file when update is set.
func CheckGolden(t testing.TB, path string, got any, update bool) {
	t.Helper()
	b, err := json.MarshalIndent(got, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	b = append(b, '\n')
	if update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if bytes.Equal(b, want) {
		return
	}
	gl, wl := strings.Split(string(b), "\n"), strings.Split(string(want), "\n")
	for i := 0; i < len(gl) || i < len(wl); i++ {
		var g, w string
		if i < len(gl) {
			g = gl[i]
		}
		if i < len(wl) {
			w = wl[i]
		}
		if g != w {
			t.Fatalf("%s differs at line %d:\ngot  %s\nwant %s\n(a format change? run with -update only if intended)", path, i+1, g, w)
		}
	}
}

// ReadGolden decodes the JSON golden file path into v.
func ReadGolden(t testing.TB, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}
