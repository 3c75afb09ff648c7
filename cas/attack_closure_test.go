package cas_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cas-ml/cas/cas"
	"github.com/cas-ml/cas/cas/format"
	"github.com/cas-ml/cas/digest"
	"github.com/cas-ml/cas/manifest/schema"
	"github.com/cas-ml/cas/remote"
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
	// Encode refuses it now; an older cas wrote such manifests.
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	d := digest.Of(b)
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

// smallRun stores, in w's store, a run whose output is one small file
// (a single chunk, so its pack is the index's answer for its digest), and
// returns the manifest, the output and the output's pack key.
func smallRun(t *testing.T, w *closureWorld, name string) (man, out cas.Object, packKey string) {
	t.Helper()
	ctx := t.Context()
	out = pushBytes(t, w.r, name+".bin", []byte(name+" weights\n"))
	m := &schema.Manifest{Schema: schema.Schema, Name: name, Kind: "run", Status: "ok",
		Outputs: []schema.Artifact{{Name: "model", Digest: out.Digest, Kind: "file", Size: out.Size}}}
	d, b, err := m.Digest()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.r.PutObjects(ctx, b); err != nil {
		t.Fatal(err)
	}
	blob, ok, err := w.r.Index.Blob(out.Digest)
	if err != nil || !ok {
		t.Fatalf("index lacks output %s: %v", out.Digest.Short(), err)
	}
	return cas.Object{Digest: d, Kind: cas.KindFile, Size: int64(len(b)), Type: cas.TypeManifest}, out, format.PackKey(blob.Pack)
}

// Publishing a run to a remote names it there only once the remote holds
// its whole closure, whatever breaks on the way.
func TestAttackPublishNeverNamesMissingData(t *testing.T) {
	tests := []struct {
		name  string
		fault func(f *remote.Fault, packKey string)
		// lose deletes the output's pack from the local store first.
		lose bool
	}{
		{name: "output pack upload fails", fault: func(f *remote.Fault, packKey string) {
			f.FailPut = func(key string) error {
				if key == packKey {
					return remote.ErrInjected
				}
				return nil
			}
		}},
		{name: "connection drops in every segment", fault: func(f *remote.Fault, _ string) {
			f.FailPutAfter = func(key string) (int64, bool) { return 10, strings.HasPrefix(key, format.SegmentPrefix) }
		}},
		{name: "ref write fails", fault: func(f *remote.Fault, _ string) {
			f.FailPut = func(key string) error {
				if strings.HasPrefix(key, "refs/") {
					return remote.ErrInjected
				}
				return nil
			}
		}},
		{name: "local store lost the output pack", fault: func(*remote.Fault, string) {}, lose: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := t.Context()
			w := newClosureWorld(t)
			man, _, packKey := smallRun(t, w, "pub")
			if tt.lose {
				if err := w.r.Backend.Delete(ctx, packKey); err != nil {
					t.Fatal(err)
				}
			}
			mem := remote.NewMem()
			f := remote.NewFault(mem)
			tt.fault(f, packKey)
			_, err := w.r.Publish(ctx, f, "runs/pub", man, nil)
			if err == nil {
				t.Fatalf("Publish succeeded")
			}
			if _, err := mem.Stat(ctx, "refs/runs/pub"); !errors.Is(err, remote.ErrNotFound) {
				t.Errorf("after a failed publish (%v) the remote has ref runs/pub: stat %v", err, err)
			}
		})
	}
}

// A remote pin made where the local store lacks part of the closure is
// NotLocal, leaves no local pin, and a local gc still runs.
func TestAttackPinRemoteNotLocal(t *testing.T) {
	ctx := t.Context()
	w := newClosureWorld(t)
	man, out, packKey := smallRun(t, w, "far")
	mem := remote.NewMem()
	if _, err := w.r.Publish(ctx, mem, "runs/far", man, nil); err != nil {
		t.Fatal(err)
	}
	if err := w.r.Backend.Delete(ctx, packKey); err != nil {
		t.Fatal(err)
	}
	p, err := w.r.Pin(ctx, mem, "far", man, cas.PinOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !p.NotLocal {
		t.Errorf("pin NotLocal = false, want true: the local store lacks output %s", out.Digest.Short())
	}
	if _, err := w.r.GetPin(ctx, nil, "far"); !errors.Is(err, cas.ErrNotFound) {
		t.Errorf("local pin far: got %v, want ErrNotFound", err)
	}
	if _, err := w.r.GetPin(ctx, mem, "far"); err != nil {
		t.Errorf("remote pin far: %v", err)
	}
	// A conflicting local pin is refused before the remote is touched.
	other, _, _ := smallRun(t, w, "other")
	if _, err := w.r.Pin(ctx, nil, "mine", other, cas.PinOptions{}); err != nil {
		t.Fatal(err)
	}
	before := keyCount(t, mem)
	if _, err := w.r.Pin(ctx, mem, "mine", man, cas.PinOptions{}); !errors.Is(err, cas.ErrPinExists) {
		t.Errorf("remote pin over a conflicting local pin: got %v, want ErrPinExists", err)
	}
	if after := keyCount(t, mem); after != before {
		t.Errorf("the refused pin changed the remote: %d keys before, %d after", before, after)
	}
}

func keyCount(t *testing.T, be remote.Backend) int {
	t.Helper()
	n := 0
	if err := be.List(t.Context(), "", func(remote.ObjectInfo) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}
