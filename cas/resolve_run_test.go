package cas

import (
	"bytes"
	"errors"
	"path/filepath"
	"testing"

	"github.com/cas-ml/cas/remote"
)

// A bare run name (runs/NAME without its prefix) resolves where no ref and
// no pin has that name; a ref or a pin of the name comes first.
func TestResolveBareRunName(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	r := newStoreForTest(t, 64<<10)
	put := func(name, text string) Object {
		t.Helper()
		p := filepath.Join(t.TempDir(), name+".txt")
		writeGenTree(t, filepath.Dir(p), []genEntry{{path: filepath.Base(p), kind: KindFile, data: []byte(text)}})
		res, err := r.Push(ctx, []string{p}, PushOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return res.Object(1)
	}
	run, ref, pinned := put("run", "a run's manifest\n"), put("ref", "a ref's data\n"), put("pin", "a pin's data\n")
	for _, set := range []struct {
		name string
		obj  Object
	}{{"runs/base", run}, {"runs/shadowed", run}, {"shadowed", ref}, {"runs/pinned", run}} {
		if _, err := r.SetRef(ctx, set.name, set.obj); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := r.Pin(ctx, nil, "pinned", pinned, PinOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		spec string
		want Object
	}{
		{"base", run},
		{"runs/base", run},
		{"base:", run},
		{"shadowed", ref},
		{"pinned", pinned},
	} {
		got, err := r.Resolve(ctx, tt.spec)
		if err != nil || got.Digest != tt.want.Digest {
			t.Errorf("Resolve(%q) = %v, %v; want %s", tt.spec, got, err, tt.want.Digest.Short())
		}
	}
	if _, err := r.Resolve(ctx, "nosuch"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Resolve(nosuch): %v, want not found", err)
	}
}

// A pin of the name that cannot be read is an error, not a reason to
// take the run of that name instead: the pin was meant.
func TestResolveUnreadablePinNotARun(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	r := newStoreForTest(t, 64<<10)
	p := filepath.Join(t.TempDir(), "run.txt")
	writeGenTree(t, filepath.Dir(p), []genEntry{{path: filepath.Base(p), kind: KindFile, data: []byte("a run's manifest\n")}})
	res, err := r.Push(ctx, []string{p}, PushOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.SetRef(ctx, "runs/base", res.Object(1)); err != nil {
		t.Fatal(err)
	}
	bad := []byte("{not a pin\n")
	if err := r.Backend.Put(ctx, PinPrefix+"base", bytes.NewReader(bad), int64(len(bad)), remote.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	got, err := r.Resolve(ctx, "base")
	var inv *InvalidError
	if !errors.As(err, &inv) {
		t.Fatalf("Resolve(base) = %v, %v; want the pin's InvalidError", got, err)
	}
}
