package cas_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cas-ml/cas/cas"
	"github.com/cas-ml/cas/digest"
	"github.com/cas-ml/cas/manifest/schema"
)

// Attacks on issue 12's rule that the library owns a run's closure
// (Keeps, GC, Pin, SetRef). Each test states what must hold.

// oversizedRun stores a run manifest over schema.MaxSize, as cas run
// writes one for a git repository with a few hundred thousand untracked
// files (Code.Untracked has no bound and Record no size check), whose
// only output is a dataset nothing else keeps. It returns the manifest
// and the output.
func oversizedRun(t *testing.T, w *closureWorld) (man, out cas.Object) {
	t.Helper()
	ctx := t.Context()
	out = pushBytes(t, w.r, "only-output", []byte(strings.Repeat("weights of the oversized run\n", 20000)))
	untracked := make([]string, 0, 200000)
	for i := range cap(untracked) {
		untracked = append(untracked, fmt.Sprintf("data/shard-%06d/sample-with-a-long-name.bin", i))
	}
	m := &schema.Manifest{Schema: schema.Schema, Name: "big", Kind: "run", Status: "ok",
		Outputs: []schema.Artifact{{Name: "model", Digest: out.Digest, Kind: "file", Size: out.Size}},
		Code:    schema.Code{Git: true, Dirty: true, Untracked: untracked},
	}
	d, b, err := m.Digest()
	if err != nil {
		t.Fatal(err)
	}
	if len(b) <= schema.MaxSize {
		t.Fatalf("manifest is %d bytes, want over %d", len(b), schema.MaxSize)
	}
	if _, err := w.r.PutObjects(ctx, b); err != nil {
		t.Fatal(err)
	}
	return cas.Object{Digest: d, Kind: cas.KindFile, Size: int64(len(b)), Type: cas.TypeManifest}, out
}

func pushBytes(t *testing.T, r *cas.Repo, name string, b []byte) cas.Object {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := r.Push(t.Context(), []string{path}, cas.PushOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return cas.Object{Digest: res.Digest, Kind: res.Kind, Size: res.Bytes}
}

// FAILS at 7d87488 (data loss). A run's manifest over schema.MaxSize is
// marked a manifest by its ref, yet Keeps treats it as "not a manifest"
// (loadManifest returns errNotManifest for Size > MaxSize even when
// marked), so the ref keeps nothing beside the manifest and gc deletes
// the run's output. Either SetRef refuses such a manifest or gc keeps
// (or stops on) its closure; deleting the output is never right.
func TestAttackGCOversizedRunManifest(t *testing.T) {
	ctx := t.Context()
	w := newClosureWorld(t)
	man, out := oversizedRun(t, w)
	if _, err := w.r.SetRef(ctx, "runs/big", man); err != nil {
		t.Logf("SetRef refuses the oversized manifest: %v", err)
		return
	}
	_, err := w.r.GC(context.WithoutCancel(ctx), nil, cas.GCOptions{Grace: cas.NoGrace})
	if err != nil {
		t.Logf("gc stops: %v", err)
		return
	}
	if rep, err := w.r.Verify(ctx, &out, "output", nil); err != nil || !rep.OK() {
		t.Errorf("gc deleted the output of runs/big (manifest of %d bytes): verify %v %+v", man.Size, err, rep)
	}
}

// FAILS at 7d87488 (data loss). Pinning the oversized run succeeds with
// no roots: the pin says it keeps the run, and keeps only the manifest.
func TestAttackPinOversizedRunManifest(t *testing.T) {
	ctx := t.Context()
	w := newClosureWorld(t)
	man, out := oversizedRun(t, w)
	p, err := w.r.Pin(ctx, nil, "big", man, cas.PinOptions{})
	if err != nil {
		t.Logf("Pin refuses the oversized manifest: %v", err)
		return
	}
	if len(p.Roots) == 0 {
		t.Errorf("pin of a run manifest of %d bytes has no roots; its output %s is not kept", man.Size, out.Digest.Short())
	}
	if _, err := w.r.GC(context.WithoutCancel(ctx), nil, cas.GCOptions{Grace: cas.NoGrace}); err != nil {
		return
	}
	if rep, err := w.r.Verify(ctx, &out, "output", nil); err != nil || !rep.OK() {
		t.Errorf("gc deleted the output of pinned run big: verify %v %+v", err, rep)
	}
}

// FAILS at 7d87488 (gc blocked; 225603b collected). A plain data file
// whose bytes happen to be a manifest of another store (a teammate's
// `cas cat runs/x` saved and pushed, or used as a run's input) is sniffed
// as a manifest by Keeps; its parts are not in this store, so every gc
// stops with ErrGCMissing, while `cas verify` reports the store whole.
// A file nobody marked a manifest must not be able to stop gc.
func TestAttackGCDataFileLookingLikeManifest(t *testing.T) {
	ctx := t.Context()
	w := newClosureWorld(t)
	ghost := digest.Of([]byte("a dataset in another store"))
	m := &schema.Manifest{Schema: schema.Schema, Name: "elsewhere", Kind: "run", Status: "ok",
		Inputs: []schema.Artifact{{Name: "train", Digest: ghost, Kind: "dir", Size: 1}}}
	_, b, err := m.Digest()
	if err != nil {
		t.Fatal(err)
	}
	file := pushBytes(t, w.r, "teammate-manifest.json", b)
	if _, err := w.r.SetRef(ctx, "imported/manifest", file); err != nil {
		t.Fatal(err)
	}
	if _, err := w.r.SetRef(ctx, "runs/reproduction", w.repro); err != nil {
		t.Fatal(err)
	}
	_, err = w.r.GC(context.WithoutCancel(ctx), nil, cas.GCOptions{Grace: cas.NoGrace})
	if errors.Is(err, cas.ErrGCMissing) {
		t.Fatalf("gc stopped on a data file's contents: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	w.checkKept(t)
}
