package cas

import (
	"errors"
	"github.com/cas-ml/cas/index"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Attacks on the fixes of issue 10: each test states what must hold.

// A tree restored to a destination inside the open store's directory must
// be refused like a single file is: it would write objects (refs, packs,
// segments) into the store behind its back.
func TestAttackRestoreTreeIntoStore(t *testing.T) {
	r := newStoreForTest(t, 64<<10)
	_, obj := pushTree(t, r, []genEntry{
		{path: "evil", kind: KindFile, data: []byte(`{"not":"a ref"}`)},
	})
	tests := []struct {
		name  string
		dest  string
		force bool
	}{
		{"new directory below refs", filepath.Join(r.Dir, storeDir, "refs", "forged"), false},
		{"existing refs directory", filepath.Join(r.Dir, storeDir, "refs"), true},
		{"the store root", filepath.Join(r.Dir, storeDir), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := r.Restore(t.Context(), obj, tt.dest, RestoreOptions{Force: tt.force})
			if !errors.Is(err, ErrIntoStore) {
				t.Errorf("restore into %s: got %v, want ErrIntoStore", tt.dest, err)
			}
			if _, serr := os.Lstat(filepath.Join(tt.dest, "evil")); serr == nil {
				t.Errorf("restore wrote %s inside the store", filepath.Join(tt.dest, "evil"))
			}
		})
	}
}

// A project whose .cas is a symlink to a store kept elsewhere: a tree
// holding a .cas of its own, restored in place with --force, must neither
// remove that symlink nor plant a forged store in its place.
func TestAttackRestoreOverSymlinkedStore(t *testing.T) {
	for _, kind := range []Kind{KindDir, KindFile} {
		t.Run(kind.String(), func(t *testing.T) {
			ctx := t.Context()
			base := t.TempDir()
			real := filepath.Join(base, "elsewhere", DirName)
			params, _ := NewChunkParams(64 << 10)
			if err := Init(real, params, time.Now()); err != nil {
				t.Fatal(err)
			}
			proj := filepath.Join(base, "proj")
			if err := os.Mkdir(proj, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(real, filepath.Join(proj, DirName)); err != nil {
				t.Fatal(err)
			}
			r := mustOpen(t, filepath.Join(proj, DirName))
			defer mustClose(t, r)
			// Put the symlink back before Close, whatever the restore did:
			// badger hangs closing an index whose directory vanished.
			defer func() {
				link := filepath.Join(proj, DirName)
				if fi, err := os.Lstat(link); err == nil && fi.Mode()&os.ModeSymlink != 0 {
					return
				}
				_ = os.RemoveAll(link)
				_ = os.Symlink(real, link)
			}()

			payload := []byte("forged\n")
			fileID := putRawBlobs(t, r, rawBlob{index.TypeData, payload})[0]
			e := TreeEntry{Name: DirName, Kind: KindFile, Size: int64(len(payload)), Digest: fileID}
			if kind == KindDir {
				inner := validTree(t, TreeEntry{Name: "marker", Kind: KindFile, Size: int64(len(payload)), Digest: fileID})
				e.Kind, e.Digest = KindDir, putRawBlobs(t, r, rawBlob{index.TypeTree, inner})[0]
			}
			top := putRawBlobs(t, r, rawBlob{index.TypeTree, validTree(t, e)})[0]
			obj := &Object{Digest: top, Kind: KindDir, Size: int64(len(payload))}
			_, err := r.Restore(ctx, obj, proj, RestoreOptions{Force: true})
			if !errors.Is(err, ErrIntoStore) {
				t.Errorf("restore of a tree holding %s into the project: got %v, want ErrIntoStore", DirName, err)
			}
			fi, lerr := os.Lstat(filepath.Join(proj, DirName))
			if lerr != nil || fi.Mode()&os.ModeSymlink == 0 {
				t.Fatalf("the project's %s is no longer the symlink to its store (%v)", DirName, lerr)
			}
		})
	}
}
