package cli

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cas-ml/cas/cas"
	"github.com/cas-ml/cas/manifest"
	"github.com/cas-ml/cas/manifest/attest"
	"github.com/cas-ml/cas/remote"
)

// pinnedRun makes a store holding a dataset and a run manifest naming it
// and a code patch, pins the run signed on an in-memory remote, and
// returns the store, the remote and the key files.
func pinnedRun(t *testing.T) (*cas.Repo, *remote.Mem, string, string) {
	t.Helper()
	ctx := t.Context()
	tmp := t.TempDir()
	dir := filepath.Join(tmp, ".cas")
	p, _ := cas.NewChunkParams(64 << 10)
	if err := cas.Init(dir, p, time.Now()); err != nil {
		t.Fatal(err)
	}
	r, err := cas.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	data := filepath.Join(tmp, "data")
	if err := os.MkdirAll(data, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(data, "x.csv"), []byte("x,y\n1,2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := r.Push(ctx, []string{data}, cas.PushOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ids, err := r.PutObjects(ctx, []byte("diff --git a/t.py b/t.py\n"))
	if err != nil {
		t.Fatal(err)
	}
	m := &manifest.Manifest{Schema: manifest.Schema, Name: "r1", Kind: "run", Status: "ok",
		Inputs: []manifest.Artifact{{Name: "train", Digest: res.Digest, Kind: "dir", Size: res.Bytes}},
		Code:   manifest.Code{Git: true, Patch: &manifest.Object{Digest: ids[0], Size: 25}}}
	md, b, err := m.Digest()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.PutObjects(ctx, b); err != nil {
		t.Fatal(err)
	}
	if _, err := r.SetRef(ctx, "runs/r1", cas.Object{Digest: md, Kind: cas.KindFile, Size: int64(len(b)), Type: "manifest"}); err != nil {
		t.Fatal(err)
	}

	obj, err := resolvePinTarget(ctx, r, "r1")
	if err != nil {
		t.Fatalf("resolvePinTarget: %v", err)
	}
	roots, err := r.Closure(ctx, obj)
	if err != nil {
		t.Fatalf("Closure: %v", err)
	}
	if obj.Digest != md || obj.Type != "manifest" || len(roots) != 2 {
		t.Fatalf("resolvePinTarget = %+v with %d roots, want manifest %s with 2", obj, len(roots), md.Short())
	}
	_, priv, _ := attest.GenerateKey()
	privFile, pubFile, err := attest.WriteKeyFiles(filepath.Join(tmp, "k"), priv)
	if err != nil {
		t.Fatal(err)
	}
	env, err := attest.Sign(attest.NewPinStatement("fig3", md, "", time.Now(), ""), priv)
	if err != nil {
		t.Fatal(err)
	}
	be := remote.NewMem()
	if _, err := r.Pin(ctx, be, "fig3", *obj, cas.PinOptions{Envelope: env}); err != nil {
		t.Fatalf("Pin: %v", err)
	}
	return r, be, privFile, pubFile
}

func TestVerifyPin(t *testing.T) {
	ctx := t.Context()
	_, be, _, pubFile := pinnedRun(t)
	// The reviewer trusts nothing local: a store that knows only the remote.
	ro, err := cas.OpenRemoteOnly(ctx, be)
	if err != nil {
		t.Fatal(err)
	}
	for _, ref := range []string{"fig3", "pins/fig3"} {
		pc, err := verifyPin(ctx, ro, ref, pubFile)
		if err != nil {
			t.Fatalf("verifyPin(%s): %v", ref, err)
		}
		if pc.Statement == nil || pc.KeyID == "" {
			t.Errorf("verifyPin(%s) = %+v, want a checked statement", ref, pc)
		}
	}
	if _, err := verifyPin(ctx, ro, "nope", pubFile); !errors.Is(err, cas.ErrNotFound) {
		t.Errorf("verifyPin of no pin: got %v, want ErrNotFound", err)
	}
	pc, _ := verifyPin(ctx, ro, "fig3", "")
	rep, checks, err := manifest.VerifyPin(ctx, ro, pc.Pin, nil)
	if err != nil || !rep.OK() {
		t.Fatalf("VerifyPin: %v %+v", err, rep)
	}
	if got := strings.Join(rep.Objects, ","); got != "pins/fig3,input train,code patch" {
		t.Errorf("verified %s, want pins/fig3,input train,code patch", got)
	}
	var kinds []string
	for _, c := range checks {
		if !c.OK {
			t.Errorf("check %+v failed", c)
		}
		kinds = append(kinds, string(c.Kind)+":"+c.What)
	}
	want := "pin:pin fig3,pin:pins/fig3,part:input train,part:code patch,canonical:manifest " + pc.Pin.Target.Short() + " canonical"
	if got := strings.Join(kinds, ","); got != want {
		t.Errorf("checks %s, want %s", got, want)
	}

	t.Run("wrong key", func(t *testing.T) {
		_, priv, _ := attest.GenerateKey()
		_, otherPub, _ := attest.WriteKeyFiles(filepath.Join(t.TempDir(), "o"), priv)
		_, err := verifyPin(ctx, ro, "fig3", otherPub)
		var ue *userError
		if !errors.As(err, &ue) || ue.code != exitDamaged || !strings.Contains(ue.msg, "signed by another key") {
			t.Errorf("verifyPin with another key: got %v, want a damage error naming the key", err)
		}
	})
	t.Run("pin moved to another target", func(t *testing.T) {
		// Rewrite the pin on the remote so it names the dataset instead:
		// the signed statement no longer matches.
		raw, _ := remote.ReadAll(ctx, be, "pins/fig3")
		forged := strings.Replace(string(raw), pc.Pin.Target.String(), pc.Pin.Roots[0].Digest.String(), 1)
		if err := be.Put(ctx, "pins/forged", strings.NewReader(forged), int64(len(forged)), remote.PutOptions{}); err != nil {
			t.Fatal(err)
		}
		_, err := verifyPin(ctx, ro, "forged", pubFile)
		var ue *userError
		if !errors.As(err, &ue) || ue.code != exitDamaged {
			t.Errorf("verifyPin of a moved pin: got %v, want a damage error", err)
		}
	})
	t.Run("type stripped, data missing", func(t *testing.T) {
		// The pin's type field is not signed: a pin without it that names
		// a run whose data is gone must not verify as a plain file.
		raw, _ := remote.ReadAll(ctx, be, "pins/fig3")
		untyped := strings.Replace(string(raw), `"type": "manifest",`, "", 1)
		if untyped == string(raw) {
			t.Fatalf("pin has no type field to strip:\n%s", raw)
		}
		bucket := remote.NewMem()
		_ = be.List(ctx, "", func(oi remote.ObjectInfo) error {
			b, _ := remote.ReadAll(ctx, be, oi.Key)
			return bucket.Put(ctx, oi.Key, bytes.NewReader(b), int64(len(b)), remote.PutOptions{})
		})
		if err := bucket.Put(ctx, "pins/fig3", strings.NewReader(untyped), int64(len(untyped)), remote.PutOptions{}); err != nil {
			t.Fatal(err)
		}
		view, err := cas.OpenRemoteOnly(ctx, bucket)
		if err != nil {
			t.Fatal(err)
		}
		keep, ok, _ := view.Index.Blob(pc.Pin.Target)
		if !ok {
			t.Fatal("the manifest is not in the bucket's index")
		}
		_ = bucket.List(ctx, "packs/", func(oi remote.ObjectInfo) error {
			if !strings.Contains(oi.Key, keep.Pack.Hex()) {
				return bucket.Delete(ctx, oi.Key)
			}
			return nil
		})
		p, err := findPin(ctx, view, "fig3")
		if err != nil || p.Type != "" {
			t.Fatalf("findPin: %+v %v, want the untyped pin", p, err)
		}
		rep, _, err := manifest.VerifyPin(ctx, view, p, nil)
		if err == nil && rep.OK() {
			t.Errorf("VerifyPin of a run whose inputs are gone, its pin stripped of its type: ok")
		}
	})
	t.Run("damaged closure", func(t *testing.T) {
		// Flip a byte of every pack on the remote: the data check fails.
		var keys []string
		_ = be.List(ctx, "packs/", func(oi remote.ObjectInfo) error { keys = append(keys, oi.Key); return nil })
		for _, k := range keys {
			b, _ := remote.ReadAll(ctx, be, k)
			b[len(b)/3] ^= 1 // inside the chunk data, past the magic
			if err := be.Put(ctx, k, strings.NewReader(string(b)), int64(len(b)), remote.PutOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		ro2, err := cas.OpenRemoteOnly(context.Background(), be)
		if err != nil {
			t.Fatal(err)
		}
		rep, _, err := manifest.VerifyPin(ctx, ro2, pc.Pin, nil)
		if err == nil && rep.OK() {
			t.Errorf("VerifyPin of damaged packs: ok, want problems")
		}
	})
}
