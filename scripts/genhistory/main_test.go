package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cas-ml/cas/cas"
	"github.com/cas-ml/cas/digest"
	"github.com/cas-ml/cas/remote"
)

// TestHistoryRestoresFromTheBucketAlone writes five pushes in batches of
// two and three into a bucket, then reads it as a fresh machine does: each
// ref resolves there, and its sample file restores to the bytes listed.
func TestHistoryRestoresFromTheBucketAlone(t *testing.T) {
	ctx := context.Background()
	params, err := cas.NewChunkParams(cas.DefaultChunkAvg)
	if err != nil {
		t.Fatal(err)
	}
	bucket := remote.NewMem()
	o := options{work: t.TempDir(), seed: 7}
	var all []pushed
	for _, b := range [][2]int{{0, 2}, {2, 3}} {
		got, err := pushBatch(ctx, o, params, 0, bucket, b[0], b[1])
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, got...)
	}
	if len(all) != 5 {
		t.Fatalf("got %d pushes, want 5", len(all))
	}
	left, _ := os.ReadDir(o.work)
	if len(left) != 0 {
		t.Errorf("scratch directory holds %d entries after the batches, want none", len(left))
	}

	count := map[string]int{}
	err = bucket.List(ctx, "", func(oi remote.ObjectInfo) error {
		count[oi.Key[:strings.IndexByte(oi.Key, '/')]]++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, prefix := range []string{"packs", "index", "refs"} {
		if count[prefix] != 5 {
			t.Errorf("bucket holds %d objects under %s/, want 5 (one a push): %v", count[prefix], prefix, count)
		}
	}

	fresh, err := cas.OpenRemoteOnly(ctx, bucket)
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	for i, p := range all {
		if want := fmt.Sprintf("push-%05d", i); p.ref != want {
			t.Errorf("push %d has ref %s, want %s", i, p.ref, want)
		}
		obj, err := fresh.Resolve(ctx, p.ref+":"+samplePath)
		if err != nil {
			t.Fatalf("resolve %s:%s in the bucket: %v", p.ref, samplePath, err)
		}
		if obj.Digest != p.sample || obj.Size != sampleSize {
			t.Errorf("%s:%s is %s (%d bytes), want %s (%d bytes)", p.ref, samplePath, obj.Digest, obj.Size, p.sample, sampleSize)
		}
		out := filepath.Join(t.TempDir(), "sample.bin")
		if _, err := fresh.Restore(ctx, obj, out, cas.RestoreOptions{}); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		if got := digest.Of(b); got != p.sample {
			t.Errorf("restored %s:%s has digest %s, want %s", p.ref, samplePath, got, p.sample)
		}
	}
	if all[0].sample == all[1].sample || all[0].obj.Digest == all[1].obj.Digest {
		t.Error("two pushes have the same sample or tree: each push must store new data")
	}
}

// TestWritePushIsDeterministic: the same seed and number give the same
// bytes, so a listed digest can be checked on any machine.
func TestWritePushIsDeterministic(t *testing.T) {
	a, err := writePush(t.TempDir(), 42, 1)
	if err != nil {
		t.Fatal(err)
	}
	b, err := writePush(t.TempDir(), 42, 1)
	if err != nil {
		t.Fatal(err)
	}
	c, err := writePush(t.TempDir(), 42, 2)
	if err != nil {
		t.Fatal(err)
	}
	if a != b {
		t.Errorf("push 42, seed 1 twice: %s then %s", a, b)
	}
	if a == c {
		t.Errorf("push 42 has the same sample %s with seeds 1 and 2", a)
	}
}
