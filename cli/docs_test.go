package cli

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/spf13/cobra/doc"
)

// The CLI reference in docs/cli is generated; this fails when a command's
// help changed without `make docs`.
func TestCLIReferenceUpToDate(t *testing.T) {
	dir := t.TempDir()
	root := NewRootCmd(SystemFactory())
	root.DisableAutoGenTag = true
	if err := doc.GenMarkdownTree(root, dir); err != nil {
		t.Fatal(err)
	}
	got, err := filepath.Glob(filepath.Join(dir, "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	committed, _ := filepath.Glob("../docs/cli/*.md")
	if len(got) != len(committed) {
		t.Errorf("generated %d pages, docs/cli has %d: run `make docs`", len(got), len(committed))
	}
	for _, g := range got {
		want, err := os.ReadFile(filepath.Join("../docs/cli", filepath.Base(g)))
		if err != nil {
			t.Errorf("docs/cli/%s: %v: run `make docs`", filepath.Base(g), err)
			continue
		}
		b, _ := os.ReadFile(g)
		if string(b) != string(want) {
			t.Errorf("docs/cli/%s is stale: run `make docs`", filepath.Base(g))
		}
	}
}
