package cas_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cas-ml/cas/cas"
	"github.com/cas-ml/cas/digest"
	"github.com/cas-ml/cas/manifest/schema"
)

// closureWorld is a store holding two runs — an original and a
// reproduction of it — each with an input, an output, a code patch, a
// package list, a config and logs, and one dataset nothing keeps.
type closureWorld struct {
	r        *cas.Repo
	orig     cas.Object // the original run's manifest
	repro    cas.Object // the reproduction's manifest
	kept     map[string][]byte
	dropped  cas.Object
	keptObjs []cas.Object
}

func newClosureWorld(t *testing.T) *closureWorld {
	t.Helper()
	ctx := t.Context()
	dir := filepath.Join(t.TempDir(), cas.DirName)
	p, err := cas.NewChunkParams(64 << 10)
	if err != nil {
		t.Fatal(err)
	}
	if err := cas.Init(dir, p, time.Now()); err != nil {
		t.Fatal(err)
	}
	r, err := cas.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	w := &closureWorld{r: r, kept: map[string][]byte{}}
	push := func(name string, size int) cas.Object {
		b := bytes.Repeat([]byte(name+"\n"), size/(len(name)+1))
		path := filepath.Join(t.TempDir(), name)
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		res, err := r.Push(ctx, []string{path}, cas.PushOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return cas.Object{Digest: res.Digest, Kind: res.Kind, Size: res.Bytes}
	}
	object := func(text string) *schema.Object {
		ids, err := r.PutObjects(ctx, []byte(text))
		if err != nil {
			t.Fatal(err)
		}
		w.kept[text] = []byte(text)
		w.keptObjs = append(w.keptObjs, cas.Object{Digest: ids[0], Kind: cas.KindFile, Size: int64(len(text))})
		return &schema.Object{Digest: ids[0], Size: int64(len(text))}
	}
	run := func(name string, of digest.Digest) cas.Object {
		in, out := push(name+"-input", 300<<10), push(name+"-output", 200<<10)
		w.keptObjs = append(w.keptObjs, in, out)
		m := &schema.Manifest{Schema: schema.Schema, Name: name, Kind: "run", Status: "ok", ReproductionOf: of,
			Inputs:      []schema.Artifact{{Name: "train", Digest: in.Digest, Kind: "file", Size: in.Size}},
			Outputs:     []schema.Artifact{{Name: "model", Digest: out.Digest, Kind: "file", Size: out.Size}},
			Code:        schema.Code{Git: true, Dirty: true, Patch: object(name + " patch\n")},
			Environment: schema.Environment{Packages: object(name + " numpy==2.0\n")},
			Config:      object(name + " lr: 0.1\n"),
			Logs:        schema.Logs{Stdout: object(name + " stdout\n"), Stderr: object(name + " stderr\n")},
		}
		d, b, err := m.Digest()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.PutObjects(ctx, b); err != nil {
			t.Fatal(err)
		}
		o := cas.Object{Digest: d, Kind: cas.KindFile, Size: int64(len(b)), Type: cas.TypeManifest}
		w.keptObjs = append(w.keptObjs, o)
		return o
	}
	w.orig = run("original", digest.Zero)
	w.repro = run("reproduction", w.orig.Digest)
	w.dropped = push("unkept", 400<<10)
	return w
}

// checkKept verifies every object of both runs, byte for byte.
func (w *closureWorld) checkKept(t *testing.T) {
	t.Helper()
	ctx := t.Context()
	for _, o := range w.keptObjs {
		rep, err := w.r.Verify(ctx, &o, o.Digest.Short(), nil)
		if err != nil || !rep.OK() {
			t.Errorf("%s (%s) after gc: %v %+v", o.Digest.Short(), o.Kind, err, rep)
		}
	}
	for text, want := range w.kept {
		d := digest.Of(want)
		got, err := w.r.ReadObject(ctx, d, 1<<20)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("object %q after gc: %q, %v", text, got, err)
		}
	}
}

// TestGCKeepsPinnedClosure collects garbage through the library alone,
// with no caller telling gc what a manifest keeps: a pinned reproduction
// keeps its whole closure and the original run's, and the dataset nothing
// keeps is deleted.
func TestGCKeepsPinnedClosure(t *testing.T) {
	ctx := t.Context()
	w := newClosureWorld(t)
	p, err := w.r.Pin(ctx, nil, "paper", w.repro, cas.PinOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// The pin lists its closure (5 objects and 2 artifacts a run, and
	// the original manifest).
	if len(p.Roots) != 15 {
		t.Errorf("pin has %d roots, want 15", len(p.Roots))
	}
	rep, err := w.r.GC(ctx, nil, cas.GCOptions{Grace: cas.NoGrace})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Freed.Packs == 0 {
		t.Errorf("gc freed nothing: %+v", rep)
	}
	w.checkKept(t)
	if rep, err := w.r.Verify(ctx, &w.dropped, "unkept", nil); err == nil && rep.OK() {
		t.Errorf("the unkept dataset survived gc")
	}
}

// TestGCKeepsRunRefClosure: a run's ref alone (no pin, so no list of
// roots beside it) keeps the run's closure, found from the manifest.
func TestGCKeepsRunRefClosure(t *testing.T) {
	ctx := t.Context()
	w := newClosureWorld(t)
	if _, err := w.r.SetRef(ctx, "runs/reproduction", w.repro); err != nil {
		t.Fatal(err)
	}
	if _, err := w.r.GC(ctx, nil, cas.GCOptions{Grace: cas.NoGrace}); err != nil {
		t.Fatal(err)
	}
	w.checkKept(t)
}

// TestGCStopsOnMissingPart: when a part a manifest names is not in the
// store, gc cannot tell what it keeps, and stops instead of collecting.
func TestGCStopsOnMissingPart(t *testing.T) {
	ctx := t.Context()
	w := newClosureWorld(t)
	ghost := digest.Of([]byte("never stored"))
	m := &schema.Manifest{Schema: schema.Schema, Name: "ghost", Kind: "run", Status: "ok",
		Inputs: []schema.Artifact{{Name: "train", Digest: ghost, Kind: "dir", Size: 1}}}
	d, b, err := m.Digest()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.r.PutObjects(ctx, b); err != nil {
		t.Fatal(err)
	}
	if _, err := w.r.SetRef(ctx, "runs/ghost", cas.Object{Digest: d, Kind: cas.KindFile, Size: int64(len(b)), Type: cas.TypeManifest}); err != nil {
		t.Fatal(err)
	}
	_, err = w.r.GC(context.WithoutCancel(ctx), nil, cas.GCOptions{Grace: cas.NoGrace})
	if err == nil {
		t.Fatal("gc went ahead although a run's input is missing")
	}
}
