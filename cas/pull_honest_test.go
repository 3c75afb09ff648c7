package cas

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/cas-ml/cas/manifest/schema"
	"github.com/cas-ml/cas/remote"
)

// Honest data that pull's check of what trees say (pullCheck) must take:
// an empty file, an empty directory, a link, an exec file, a file and a
// subtree met many times, and a file of one chunk whose bytes are also a
// chunk of another file; pulled into a fresh store, pulled again, pulled
// into the store that pushed it, and as a run's output.
func TestPullHonestTreeShapes(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	root := t.TempDir()
	src := filepath.Join(root, "src")
	write := func(rel string, data []byte, mode os.FileMode) {
		t.Helper()
		p := filepath.Join(src, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, mode); err != nil {
			t.Fatal(err)
		}
	}
	big := pseudoRandom(64<<10, 91)
	write("big.bin", big, 0o644)
	write("empty.txt", nil, 0o644)
	write("run.sh", []byte("#!/bin/sh\necho run\n"), 0o755)
	for _, d := range []string{"a.txt", "dup/a.txt", "s1/a.txt", "s2/a.txt", "s1/deep/a.txt", "s2/deep/a.txt"} {
		write(d, []byte("the same bytes, many times\n"), 0o644)
	}
	if err := os.MkdirAll(filepath.Join(src, "emptydir"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("a.txt", filepath.Join(src, "link")); err != nil {
		t.Fatal(err)
	}
	seed := newStoreAt(t, filepath.Join(root, "seed", DirName), 4<<10)
	defer seed.Close()
	// A file made of the second chunk of big.bin alone is one chunk: the
	// same chunk.
	res, err := seed.Push(ctx, []string{filepath.Join(src, "big.bin")}, PushOptions{})
	if err != nil {
		t.Fatal(err)
	}
	chunks, ok, err := seed.Index.FileChunks(res.Digest)
	if err != nil || !ok || len(chunks) < 3 {
		t.Fatalf("big.bin: %d chunks (%v, %v), want several", len(chunks), ok, err)
	}
	second, err := seed.fetchChunk(ctx, chunks[1])
	if err != nil {
		t.Fatal(err)
	}
	write("chunk.bin", append([]byte(nil), second...), 0o644)
	res, err = seed.Push(ctx, []string{src}, PushOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tree := Object{Digest: res.Digest, Kind: res.Kind, Size: res.Bytes}
	if o, err := seed.Lookup(ctx, &tree, "chunk.bin"); err != nil || o.Digest != chunks[1] {
		t.Fatalf("chunk.bin: %v, %v; want the one chunk %s", o, err, chunks[1].Short())
	}
	for path, kind := range map[string]Kind{"emptydir": KindDir, "link": KindLink, "run.sh": KindExec, "empty.txt": KindFile} {
		if o, err := seed.Lookup(ctx, &tree, path); err != nil || o.Kind != kind {
			t.Fatalf("%s: %v, %v; want a %v", path, o, err, kind)
		}
	}
	m := &schema.Manifest{Schema: schema.Schema, Name: "honest", Kind: "run", Status: "ok",
		Outputs: []schema.Artifact{{Name: "out", Digest: tree.Digest, Kind: "dir", Size: tree.Size}}}
	enc, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	write("../manifest.json", enc, 0o644)
	mres, err := seed.Push(ctx, []string{filepath.Join(root, "manifest.json")}, PushOptions{})
	if err != nil {
		t.Fatal(err)
	}
	manifest := Object{Digest: mres.Digest, Kind: KindFile, Size: mres.Bytes, Type: TypeManifest, Name: "manifest.json"}
	bucket := remote.NewMem()
	if _, err := seed.Upload(ctx, bucket, nil); err != nil {
		t.Fatal(err)
	}

	pullAll := func(r *Repo, when string) {
		t.Helper()
		for _, obj := range []Object{tree, manifest} {
			o := obj
			if _, err := r.Pull(ctx, &o, nil); err != nil {
				t.Errorf("%s: pull %s: %v", when, obj.Digest.Short(), err)
				continue
			}
			rep, err := r.Verify(ctx, &o, "x", nil)
			if err != nil || !rep.OK() {
				t.Errorf("%s: verify %s after the pull: %v %+v", when, obj.Digest.Short(), err, rep)
			}
		}
	}
	fresh := freshPullStore(t, bucket)
	pullAll(fresh, "into a fresh store")
	pullAll(fresh, "again")
	if err := seed.UseRemote(ctx, bucket); err != nil {
		t.Fatal(err)
	}
	pullAll(seed, "into the store that pushed it")
	// A manifest of the run alone: its output comes with it.
	run := freshPullStore(t, bucket)
	o := manifest
	if _, err := run.Pull(ctx, &o, nil); err != nil {
		t.Fatalf("pull the run: %v", err)
	}
	if _, err := run.Pull(ctx, &tree, nil); err != nil {
		t.Errorf("pull the run's output after the run: %v", err)
	}
}
