package cas

import (
	"errors"
	"path/filepath"
	"testing"
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
