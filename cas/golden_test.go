package cas

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/cas-ml/cas/cas/format/formattest"
)

// The golden files pin the formats that docs/FORMAT.md specifies: chunk
// boundaries in cas/chunk, packs, segments and trees in cas/format. What
// only a repository can check of them is checked here.

// TestGoldenTreeOnDisk checks that the scanner, reading the golden trees
// from disk, computes the golden digests.
func TestGoldenTreeOnDisk(t *testing.T) {
	t.Parallel()
	for _, gs := range formattest.Golden {
		t.Run(gs.Name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "root")
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			formattest.Write(t, dir, gs.Entry)
			want, _, err := formattest.Tree(t, gs.Entry).Digest()
			if err != nil {
				t.Fatal(err)
			}
			res, err := Hash(t.Context(), nil, []string{dir}, PushOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if res.Digest != want || res.Kind != KindDir {
				t.Errorf("Hash = %v %v, want %v dir", res.Digest, res.Kind, want)
			}
		})
	}
}
