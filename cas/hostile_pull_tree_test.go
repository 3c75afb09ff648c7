package cas

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/cas-ml/cas/digest"
	"github.com/cas-ml/cas/index"
	"github.com/cas-ml/cas/manifest/schema"
)

// Review of pull's check of what a pulled tree says of what it holds
// (pullCheck, fb7d9e0): forgeries run through the whole hostile kit in
// the bucket world, whose checkPull wants each refused, or what the pull
// took to verify in the store pulled into.

// hostilePullRev4Cases are the forged trees.
func hostilePullRev4Cases() []hostileCase {
	return []hostileCase{
		{name: "tree/exec-size=more", where: "bucket", forge: func(w *hostileWorld, f *forger) (string, []string) {
			return treeRef(f, forgedEntry{kind: "exec", digest: w.a.Digest, size: w.a.Size + 1, name: "a"})
		}},
		{name: "tree/link-size=more", where: "bucket", forge: func(w *hostileWorld, f *forger) (string, []string) {
			target := []byte("a.txt")
			return treeRef(f, forgedEntry{kind: "link", digest: f.data(target), size: int64(len(target)) + 1, name: "l"})
		}},
		{name: "tree/file-size=0", where: "bucket", forge: func(w *hostileWorld, f *forger) (string, []string) {
			return treeRef(f, forgedEntry{kind: "file", digest: w.a.Digest, size: 0, name: "a"})
		}},
		{name: "tree/empty-file-size=5", where: "bucket", forge: func(w *hostileWorld, f *forger) (string, []string) {
			return treeRef(f, forgedEntry{kind: "file", digest: emptyFile, size: 5, name: "e"})
		}},
		// A chunk of big.bin named as a file of its own, of 1 byte (a
		// chunk holds 1 KiB at least).
		{name: "tree/chunk-of-big-as-file,size=more", where: "bucket", forge: func(w *hostileWorld, f *forger) (string, []string) {
			return treeRef(f, fileEntry("big", w.big),
				forgedEntry{kind: "file", digest: w.bigChunks[1], size: 1, name: "chunk"})
		}},
		// A lie two levels down, below directories whose sizes add up to
		// what the lie says.
		{name: "tree/dir-size=nested-lie", where: "bucket", forge: func(w *hostileWorld, f *forger) (string, []string) {
			inner := f.tree(forgedEntry{kind: "file", digest: w.c.Digest, size: w.c.Size + 7, name: "c"})
			mid := f.tree(forgedEntry{kind: "dir", digest: inner, size: w.c.Size + 7, name: "in"}, fileEntry("z", w.a))
			return treeRef(f, forgedEntry{kind: "dir", digest: mid, size: w.c.Size + 7 + w.a.Size, name: "mid"})
		}},
		// A file entry naming an honest tree's encoding, at its length:
		// the bytes are what the digest says, so it is a file like any
		// other.
		{name: "tree/file-is-a-tree-encoding", where: "bucket", mayPass: true, forge: func(w *hostileWorld, f *forger) (string, []string) {
			enc := treeBytes([]forgedEntry{fileEntry("a.txt", w.a)})
			d := f.tree(fileEntry("a.txt", w.a))
			return treeRef(f, forgedEntry{kind: "file", digest: d, size: int64(len(enc)), name: "t"})
		}},
		// A segment that places a.txt in a pack of other bytes (at the
		// offset of another blob), beside the honest one: the pack pulled
		// for c.txt holds a.txt too. The tree is honest: it may pass.
		{name: "segment/chunk-placed-in-other-pack", where: "bucket", goodMayFail: true, mayPass: true, forge: func(w *hostileWorld, f *forger) (string, []string) {
			other := []byte(strings.Repeat("o", int(w.a.Size)))
			recs := f.pack(forgedBlob{id: digest.Of(other), stored: other})
			lie := recs[0]
			lie.ID = w.a.Digest
			f.segment([]index.Blob{lie}, nil)
			return treeRef(f, fileEntry("a", w.a), fileEntry("c", w.c))
		}},
	}
}

func TestHostilePullRev4(t *testing.T) {
	t.Parallel()
	for _, c := range hostilePullRev4Cases() {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			runHostile(t, c, true)
		})
	}
}

// A run whose output is a directory holding a file that lies about its
// size: what a run keeps is checked as a tree pulled on its own is, and
// the refusal names the tree and the entry.
func TestHostilePullRunOutputTreeLies(t *testing.T) {
	t.Parallel()
	w := newHostileWorld(t, true)
	f := newForger(t, w.forged)
	out := f.tree(forgedEntry{kind: "file", digest: w.a.Digest, size: w.a.Size + 3, name: "weights"})
	m := &schema.Manifest{Schema: schema.Schema, Name: "evil", Kind: "run", Status: "ok",
		Outputs: []schema.Artifact{{Name: "model", Digest: out, Kind: "dir", Size: w.a.Size + 3}}}
	f.runRef(m)
	if !w.open() {
		return
	}
	r := freshPullStore(t, w.bucket)
	obj, err := r.Resolve(t.Context(), "runs/evil")
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.Pull(t.Context(), obj, nil)
	var me *MismatchError
	if !errors.As(err, &me) || me.Digest != w.a.Digest || !strings.Contains(err.Error(), out.Short()) || !strings.Contains(err.Error(), `"weights"`) {
		t.Errorf("pull a run whose output tree lies: %v; want a *MismatchError naming tree %s and \"weights\"", err, out.Short())
	}
	// And which part of the run it is.
	if want := fmt.Sprintf("manifest %s, output model: pulled tree %s", obj.Digest.Short(), out.Short()); err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("pull a run whose output tree lies: %v; want it to start %q", err, want)
	}
}

// A tree that lies about a file whose chunk the store already holds
// (refs/good pulled first): the chunk is not pulled again, and the lie
// is still refused, as a size the data does not have (not as a damaged
// file: the file is whole), naming the tree and the entry.
func TestHostilePullTreeLiesAboutDataHere(t *testing.T) {
	t.Parallel()
	w := newHostileWorld(t, true)
	f := newForger(t, w.forged)
	sizes := []int64{w.a.Size - 1, w.a.Size + 1, 0}
	var specs []string
	for i, size := range sizes {
		d := f.tree(forgedEntry{kind: "file", digest: w.a.Digest, size: size, name: "a"}, fileEntry("c", w.c))
		name := fmt.Sprintf("evil%d", i)
		f.ref(name, hostileRefFields(name, Object{Digest: d, Kind: KindDir, Size: size + w.c.Size}))
		specs = append(specs, name)
	}
	if !w.open() {
		return
	}
	r := freshPullStore(t, w.bucket)
	ctx := t.Context()
	good := w.good
	if _, err := r.Pull(ctx, &good, nil); err != nil {
		t.Fatalf("pull good: %v", err)
	}
	for i, spec := range specs {
		obj, err := r.Resolve(ctx, spec)
		if err != nil {
			t.Fatal(err)
		}
		_, err = r.Pull(ctx, obj, nil)
		var me *MismatchError
		if !errors.As(err, &me) || me.Digest != w.a.Digest || me.Is.Size != w.a.Size ||
			!strings.Contains(err.Error(), obj.Digest.Short()) || !strings.Contains(err.Error(), `"a"`) {
			t.Errorf("pull a tree naming a.txt, already here, of %d bytes: %v; want a *MismatchError naming tree %s and \"a\"",
				sizes[i], err, obj.Digest.Short())
		}
	}
}
