package cas

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/cas-ml/cas/cas/format"
	"github.com/cas-ml/cas/digest"
	"github.com/cas-ml/cas/remote"
)

// pinFixture pushes a dataset and a small "manifest" object naming it,
// and returns the manifest object and its roots.
func pinFixture(t *testing.T, r *Repo) (Object, []Object, *Object) {
	t.Helper()
	_, data := pushTree(t, r, []genEntry{
		{path: "train.bin", kind: KindFile, data: pseudoRandom(300<<10, 7)},
		{path: "sub/labels.txt", kind: KindFile, data: []byte("cat\ndog\n")},
	})
	patch := []byte("diff --git a/train.py b/train.py\n")
	m := testManifest(data.Digest, digest.Of(patch), len(patch))
	ids, err := r.PutObjects(t.Context(), m, patch)
	if err != nil {
		t.Fatalf("PutObjects: %v", err)
	}
	man := Object{Digest: ids[0], Kind: KindFile, Size: int64(len(m)), Type: "manifest"}
	roots := []Object{*data, {Digest: ids[1], Kind: KindFile, Size: int64(len(patch))}}
	return man, roots, data
}

// testManifest is a run manifest with one input and a code patch: its
// closure is those two objects.
func testManifest(input, patch digest.Digest, patchSize int) []byte {
	return fmt.Appendf(nil, `{"schema":"cas.manifest/v1","inputs":[{"name":"train","digest":"%s","kind":"dir","size":0}],"code":{"git":false,"patch":{"digest":"%s","size":%d}}}`, input, patch, patchSize)
}

func TestPinLocal(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	r := newStoreForTest(t, 64<<10)
	man, _, data := pinFixture(t, r)

	p, err := r.Pin(ctx, nil, "paper/fig3", man, PinOptions{Message: "Figure 3"})
	if err != nil {
		t.Fatalf("Pin: %v", err)
	}
	if p.Existing || p.Target != man.Digest || p.Type != "manifest" || len(p.Roots) != 2 {
		t.Errorf("Pin = %+v, want a new pin of %s with 2 roots", p, man.Digest.Short())
	}
	got, err := r.GetPin(ctx, nil, "paper/fig3")
	if err != nil {
		t.Fatalf("GetPin: %v", err)
	}
	if got.Target != man.Digest || got.Message != "Figure 3" || got.Roots[0].Digest != data.Digest || got.Roots[0].Kind != KindDir {
		t.Errorf("GetPin = %+v, want target %s, message, roots", got, man.Digest.Short())
	}

	t.Run("same target is idempotent", func(t *testing.T) {
		again, err := r.Pin(ctx, nil, "paper/fig3", man, PinOptions{Message: "other words"})
		if err != nil {
			t.Fatalf("re-Pin: %v", err)
		}
		if !again.Existing || again.Message != "Figure 3" {
			t.Errorf("re-Pin = %+v, want the existing pin unchanged", again)
		}
	})
	t.Run("another target fails", func(t *testing.T) {
		_, err := r.Pin(ctx, nil, "paper/fig3", *data, PinOptions{})
		if !errors.Is(err, ErrPinExists) {
			t.Fatalf("Pin to another target: got %v, want ErrPinExists", err)
		}
		still, _ := r.GetPin(ctx, nil, "paper/fig3")
		if still.Target != man.Digest {
			t.Errorf("pin moved to %s", still.Target.Short())
		}
	})
	t.Run("bad names", func(t *testing.T) {
		for _, name := range []string{"", "a b", "../x", "0123abcd"} {
			if _, err := r.Pin(ctx, nil, name, man, PinOptions{}); !errors.Is(err, ErrBadRefName) {
				t.Errorf("Pin(%q): got %v, want ErrBadRefName", name, err)
			}
		}
	})
	t.Run("pins are not refs", func(t *testing.T) {
		refs, err := r.Refs(ctx)
		if err != nil || len(refs) != 0 {
			t.Errorf("Refs = %v, %v; want none", refs, err)
		}
	})

	if _, err := r.Pin(ctx, nil, "data", *data, PinOptions{}); err != nil {
		t.Fatalf("Pin data: %v", err)
	}
	pins, err := r.Pins(ctx, nil)
	if err != nil {
		t.Fatalf("Pins: %v", err)
	}
	var names []string
	for _, p := range pins {
		names = append(names, p.Name)
	}
	if got, want := strings.Join(names, ","), "data,paper/fig3"; got != want {
		t.Errorf("Pins = %s, want %s", got, want)
	}

	if err := r.Unpin(ctx, nil, "paper/fig3"); err != nil {
		t.Fatalf("Unpin: %v", err)
	}
	if _, err := r.GetPin(ctx, nil, "paper/fig3"); !errors.Is(err, ErrNotFound) {
		t.Errorf("GetPin after Unpin: got %v, want ErrNotFound", err)
	}
	if err := r.Unpin(ctx, nil, "paper/fig3"); !errors.Is(err, ErrNotFound) {
		t.Errorf("second Unpin: got %v, want ErrNotFound", err)
	}
	// Once unpinned, the name can point elsewhere.
	if _, err := r.Pin(ctx, nil, "paper/fig3", *data, PinOptions{}); err != nil {
		t.Errorf("Pin after Unpin: %v", err)
	}
}

func TestPinRemote(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	r := newStoreForTest(t, 64<<10)
	man, roots, _ := pinFixture(t, r)
	be := remote.NewMem()
	env := []byte(`{"payloadType":"application/vnd.in-toto+json","payload":"e30=","signatures":[]}`)

	p, err := r.Pin(ctx, be, "paper/fig3", man, PinOptions{Envelope: env})
	if err != nil {
		t.Fatalf("Pin: %v", err)
	}
	if !p.Signed() {
		t.Error("pin lost its envelope")
	}
	// Kept in the local store too, which holds the whole closure, with
	// the same signature.
	compact := func(b []byte) string {
		var out bytes.Buffer
		_ = json.Compact(&out, b)
		return out.String()
	}
	if local, err := r.GetPin(ctx, nil, "paper/fig3"); err != nil || p.NotLocal || compact(local.Envelope) != compact(env) || local.Target != p.Target {
		t.Errorf("local GetPin: %+v, %v (NotLocal %v), want the remote pin's copy", local, err, p.NotLocal)
	}
	// The envelope is kept as JSON, not as a string.
	raw, err := remote.ReadAll(ctx, be, PinPrefix+"paper/fig3")
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(raw, &doc); err != nil || !strings.HasPrefix(string(doc["envelope"]), "{") {
		t.Errorf("stored pin %s: envelope is not an object (%v)", raw, err)
	}

	// A store that knows only the remote finds everything the pin needs.
	ro, err := OpenRemoteOnly(ctx, be)
	if err != nil {
		t.Fatalf("OpenRemoteOnly: %v", err)
	}
	got, err := ro.GetPin(ctx, nil, "paper/fig3")
	if err != nil {
		t.Fatalf("GetPin on the remote: %v", err)
	}
	var all []Object
	all = append(all, got.Object())
	for _, rt := range got.Roots {
		all = append(all, Object{Digest: rt.Digest, Kind: rt.Kind, Size: rt.Size})
	}
	for _, o := range all {
		rep, err := ro.Verify(ctx, &o, o.Digest.Short(), nil)
		if err != nil || !rep.OK() {
			t.Errorf("Verify %s on the remote: %v %+v", o.Digest.Short(), err, rep)
		}
	}

	if _, err := r.Pin(ctx, be, "paper/fig3", roots[0], PinOptions{}); !errors.Is(err, ErrPinExists) {
		t.Errorf("conflicting remote Pin: got %v, want ErrPinExists", err)
	}
	if again, err := r.Pin(ctx, be, "paper/fig3", man, PinOptions{}); err != nil || !again.Existing {
		t.Errorf("idempotent remote Pin: %+v, %v", again, err)
	}
	if err := r.Unpin(ctx, be, "paper/fig3"); err != nil {
		t.Errorf("Unpin on the remote: %v", err)
	}
	if pins, err := r.Pins(ctx, be); err != nil || len(pins) != 0 {
		t.Errorf("Pins after Unpin = %v, %v; want none", pins, err)
	}
}

// lossy is a backend that says it stored packs but drops them: the pin
// must notice before it is written.
type lossy struct{ *remote.Mem }

func (l lossy) Put(ctx context.Context, key string, rd io.Reader, size int64, opts remote.PutOptions) error {
	if strings.HasPrefix(key, format.PackPrefix) {
		_, err := io.Copy(io.Discard, rd)
		return err
	}
	return l.Mem.Put(ctx, key, rd, size, opts)
}

func TestPinClosureIncomplete(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	r := newStoreForTest(t, 64<<10)
	man, _, _ := pinFixture(t, r)
	be := lossy{remote.NewMem()}
	_, err := r.Pin(ctx, be, "paper/fig3", man, PinOptions{})
	if !errors.Is(err, ErrIncomplete) {
		t.Fatalf("Pin on a lossy remote: got %v, want ErrIncomplete", err)
	}
	if _, err := be.Stat(ctx, PinPrefix+"paper/fig3"); !errors.Is(err, remote.ErrNotFound) {
		t.Errorf("pin written despite the missing packs: %v", err)
	}

	// A manifest naming an input the store does not hold at all.
	gm := testManifest(digest.Of([]byte("never pushed")), digest.Of(nil), 0)
	gids, err := r.PutObjects(ctx, gm)
	if err != nil {
		t.Fatal(err)
	}
	ghost := Object{Digest: gids[0], Kind: KindFile, Size: int64(len(gm)), Type: TypeManifest}
	_, err = r.Pin(ctx, nil, "ghost", ghost, PinOptions{})
	if !errors.Is(err, ErrNotFound) {
		t.Errorf("Pin with a missing root: got %v, want ErrNotFound", err)
	}
	if _, err := r.Pin(ctx, nil, "bad-envelope", man, PinOptions{Envelope: []byte("{")}); err == nil {
		t.Error("Pin with an envelope that is not JSON succeeded")
	}
}
