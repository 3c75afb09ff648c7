package cas

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cas-ml/cas/cas/format"
	"github.com/cas-ml/cas/digest"
	"github.com/cas-ml/cas/remote"
)

// A copy of a pulled pack damaged in the store after the pull is replaced
// by the bucket's when the data is pulled again, whether or not a verify
// marked it first; a bucket whose copy is damaged too, or that has none,
// leaves the store's copy as it was and the pull fails naming the pack.
func TestPullRepairsDamagedPack(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name   string
		verify bool // verify (which marks the damage) before pulling again
		bucket string
	}{
		{"damage found by the pull", false, "sound"},
		{"damage marked by verify", true, "sound"},
		{"the bucket's copy damaged too", false, "damaged"},
		{"the bucket has no copy", false, "none"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			f := newRepairFixture(t)
			r, bucket, tree, big := f.r, f.bucket, f.tree, f.big

			// Damage one chunk of big.bin in the store's pack.
			file := digest.Of(big)
			chunks, ok, err := r.Index.FileChunks(file)
			if err != nil || !ok || len(chunks) < 2 {
				t.Fatalf("big.bin: %d chunks (%v, %v)", len(chunks), ok, err)
			}
			b, ok, err := r.Index.Blob(chunks[1])
			if err != nil || !ok {
				t.Fatalf("chunk %s: %v %v", chunks[1].Short(), ok, err)
			}
			key := format.PackKey(b.Pack)
			path := filepath.Join(r.Dir, storeDir, filepath.FromSlash(key))
			flipAt(t, path, int64(b.Offset)+int64(b.Length)/2)
			damaged, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if tt.verify {
				if rep, err := r.Verify(ctx, &tree, "src", nil); err != nil || rep.OK() {
					t.Fatalf("verify of the damaged store: %v, ok %v", err, rep != nil && rep.OK())
				}
			}
			switch tt.bucket {
			case "damaged":
				good, err := remote.ReadAll(ctx, bucket, key)
				if err != nil {
					t.Fatal(err)
				}
				bad := bytes.Clone(good)
				bad[b.Offset+uint64(b.Length)/3] ^= 0x40
				if err := bucket.Delete(ctx, key); err != nil {
					t.Fatal(err)
				}
				if err := bucket.Put(ctx, key, bytes.NewReader(bad), int64(len(bad)), remote.PutOptions{}); err != nil {
					t.Fatal(err)
				}
			case "none":
				if err := bucket.Delete(ctx, key); err != nil {
					t.Fatal(err)
				}
			}

			again := tree
			st, err := r.Pull(ctx, &again, nil)
			if tt.bucket != "sound" {
				var ce *CorruptError
				want := map[string]string{"damaged": "and so is mem://'s", "none": "and mem:// has none"}[tt.bucket]
				if err == nil || !errors.As(err, &ce) || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), b.Pack.Short()) {
					t.Fatalf("pull again: %v; want a damaged chunk, naming pack %s, %q", err, b.Pack.Short(), want)
				}
				if now, err := os.ReadFile(path); err != nil || !bytes.Equal(now, damaged) {
					t.Fatalf("the store's copy of the pack changed (%v) though nothing sound replaced it", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("pull again: %v", err)
			}
			if st.Objects < 1 {
				t.Errorf("pull again fetched %d objects, want the pack", st.Objects)
			}
			if rep, err := r.Verify(ctx, &tree, "src", nil); err != nil || !rep.OK() {
				t.Fatalf("verify after the repair: %v %+v", err, rep)
			}
			got, err := r.ReadObject(ctx, file, int64(len(big)))
			if err != nil || !bytes.Equal(got, big) {
				t.Fatalf("big.bin after the repair: %v, equal %v", err, bytes.Equal(got, big))
			}
			// Pulled a third time, the repaired copy stays: nothing fetched.
			third := tree
			if st, err := r.Pull(ctx, &third, nil); err != nil || st.Objects != 0 {
				t.Errorf("pull a third time: %+v, %v; want nothing fetched", st, err)
			}
		})
	}
}
