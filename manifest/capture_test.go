package manifest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestCaptureGitBoundsUntracked: a repository with more untracked files
// than a manifest lists keeps the manifest small: the first names, then
// one entry saying how many more there are.
func TestCaptureGitBoundsUntracked(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("no git")
	}
	dir := t.TempDir()
	if out, err := exec.Command("git", "init", "-q", dir).CombinedOutput(); err != nil {
		t.Fatalf("git init: %v %s", err, out)
	}
	n := MaxUntracked + 5
	for i := range n {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%06d", i)), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	st := CaptureGit(t.Context(), dir, nil)
	u := st.Code.Untracked
	if len(u) != MaxUntracked || u[0] != "f000000" || u[MaxUntracked-2] != fmt.Sprintf("f%06d", MaxUntracked-2) {
		t.Fatalf("untracked: %d names, first %q", len(u), u[0])
	}
	if want := "... and 6 more untracked files, not listed"; u[MaxUntracked-1] != want {
		t.Errorf("last entry %q, want %q", u[MaxUntracked-1], want)
	}
	if !st.Code.Dirty || strings.Contains(strings.Join(u, ""), "f010004") {
		t.Errorf("dirty %v; listed past the bound", st.Code.Dirty)
	}
}
