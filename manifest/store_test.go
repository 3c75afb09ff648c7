package manifest

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cas-ml/cas/cas"
	"github.com/cas-ml/cas/digest"
)

// storedRun stores a run manifest named name and its ref, and returns
// the manifest's digest.
func storedRun(t *testing.T, repo *cas.Repo, name string) digest.Digest {
	t.Helper()
	ctx := t.Context()
	m := &Manifest{Schema: Schema, Name: name, Kind: "run", Status: "ok", Command: []string{"true"}}
	d, b, err := m.Digest()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := repo.PutObjects(ctx, b); err != nil {
		t.Fatal(err)
	}
	if _, err := repo.SetRef(ctx, RefPrefix+name, cas.Object{Digest: d, Kind: cas.KindFile, Size: int64(len(b)), Type: cas.TypeManifest}); err != nil {
		t.Fatal(err)
	}
	return d
}

// TestResolveSpecUnreadableRun: a run whose manifest the store cannot
// read (its pack is gone: a lazy store, or damage) is reported as
// missing data, which a remote may supply, not as "no such ref".
func TestResolveSpecUnreadableRun(t *testing.T) {
	t.Parallel()
	dir, repo := project(t)
	storedRun(t, repo, "r1")
	packs, _ := filepath.Glob(filepath.Join(dir, ".cas", "store", "packs", "*", "*"))
	for _, p := range packs {
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
	}
	repo.Close() // forget the open pack handles
	repo, err := cas.Open(t.Context(), filepath.Join(dir, ".cas"))
	if err != nil {
		t.Fatal(err)
	}
	defer repo.Close()
	_, err = ResolveSpec(t.Context(), repo, "r1:outputs/model")
	// "pack … not found", not "ref r1: not found": the run is there.
	if err == nil || !cas.IsMissing(err) || !strings.Contains(err.Error(), "pack") {
		t.Errorf("ResolveSpec of a run whose manifest is gone: %v, want missing data", err)
	}
}

// TestRunsReportsInvalidRefs: a ref that fails validation is reported
// beside the runs that could be listed, not dropped silently.
func TestRunsReportsInvalidRefs(t *testing.T) {
	t.Parallel()
	dir, repo := project(t)
	storedRun(t, repo, "good")
	bad := filepath.Join(dir, ".cas", "store", "refs", "runs", "bad")
	if err := os.WriteFile(bad, []byte(`{"name":"runs/bad","target":"blake3:zz"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	runs, err := Runs(t.Context(), repo)
	var partial *cas.PartialError
	if len(runs) != 1 || runs[0].Manifest.Name != "good" || !errors.As(err, &partial) || !strings.Contains(err.Error(), "bad") {
		t.Errorf("Runs = %d runs, %v; want the good run and a partial error naming the bad ref", len(runs), err)
	}
}
