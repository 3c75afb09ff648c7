package cas

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/cas-ml/cas/cas/format"
	"github.com/cas-ml/cas/digest"
	"github.com/cas-ml/cas/index"
	"github.com/cas-ml/cas/remote"
)

// testSegment is a segment of n blobs over three packs and n/10 files.
func testSegment(n int) *format.Segment {
	seg := &format.Segment{Files: map[digest.Digest][]digest.Digest{}}
	for i := range n {
		id := digest.Of(fmt.Appendf(nil, "blob %d", i))
		seg.Blobs = append(seg.Blobs, index.Blob{ID: id, Pack: digest.Of([]byte{byte(i % 3)}), Offset: uint64(i) * 100, Length: 90, RawLen: 100, Codec: index.CodecZstd})
		if i%10 == 9 {
			seg.Files[digest.Of(fmt.Appendf(nil, "file %d", i))] = []digest.Digest{seg.Blobs[i-1].ID, id}
		}
	}
	return seg
}

func putObject(t *testing.T, be remote.Backend, key string, data []byte) {
	t.Helper()
	if err := be.Put(t.Context(), key, bytes.NewReader(data), int64(len(data)), remote.PutOptions{}); err != nil {
		t.Fatal(err)
	}
}

// TestFetchSegment reads segments below and above smallSegment (the
// larger through a temporary file, parsed as it streams): both index as
// the decoded segment does; one damaged, or named right but malformed,
// is refused before anything is indexed, with the error a whole read
// gives.
func TestFetchSegment(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	r := newStoreForTest(t, 64<<10)
	enc := zstdEncoderForTest(t)
	for _, n := range []int{100, 20000} {
		seg := testSegment(n)
		data := seg.Encode()
		if big := len(data) > smallSegment; big != (n > 100) {
			t.Fatalf("segment of %d blobs is %d bytes: the test wants it on the other side of %d", n, len(data), smallSegment)
		}
		t.Run(fmt.Sprintf("%d blobs", n), func(t *testing.T) {
			key := format.SegmentKey(digest.Of(data))
			putObject(t, r.Backend, key, data)
			fs, err := fetchSegment(ctx, r.Backend, key)
			if err != nil {
				t.Fatalf("fetchSegment: %v", err)
			}
			defer fs.close()
			if (fs.file != nil) != (len(data) > smallSegment) || fs.id != digest.Of(data) {
				t.Errorf("fetched into a file: %v, id %s; want a file only above %d bytes, id %s", fs.file != nil, fs.id.Short(), smallSegment, digest.Of(data).Short())
			}
			got, want := index.NewMemory(), index.NewMemory()
			if _, err := indexSegment(got, fs, true); err != nil {
				t.Fatal(err)
			}
			if err := indexSegmentFrom(want, seg, true); err != nil {
				t.Fatal(err)
			}
			if g, w := allBlobs(t, got), allBlobs(t, want); !reflect.DeepEqual(g, w) || len(g) != n {
				t.Errorf("indexed %d blobs, want the segment's %d", len(g), len(w))
			}
			for f, chunks := range seg.Files {
				if c, ok, _ := got.FileChunks(f); !ok || !slices.Equal(c, chunks) {
					t.Errorf("file %s: got %v, %v; want %v", f.Short(), c, ok, chunks)
				}
			}

			damaged := bytes.Clone(data)
			damaged[len(damaged)/2] ^= 1
			dkey := key[:len(key)-1] + "0"
			if strings.HasSuffix(key, "0") {
				dkey = key[:len(key)-1] + "1"
			}
			putObject(t, r.Backend, dkey, damaged)
			var ce *CorruptError
			if _, err := fetchSegment(ctx, r.Backend, dkey); !errors.As(err, &ce) || ce.What != "index segment" {
				t.Errorf("fetchSegment of a damaged segment: got %v, want a *CorruptError", err)
			}

			// Named right, but a byte too many in its body.
			body, err := zstd.NewReader(nil)
			if err != nil {
				t.Fatal(err)
			}
			raw, err := body.DecodeAll(data[len(format.SegmentMagic):], nil)
			body.Close()
			if err != nil {
				t.Fatal(err)
			}
			bad := enc.EncodeAll(append(raw, 0), []byte(format.SegmentMagic))
			bkey := format.SegmentKey(digest.Of(bad))
			putObject(t, r.Backend, bkey, bad)
			if _, err := fetchSegment(ctx, r.Backend, bkey); !errors.Is(err, ErrBadSegment) {
				t.Errorf("fetchSegment of a malformed segment: got %v, want ErrBadSegment", err)
			}
		})
	}
}

func zstdEncoderForTest(t *testing.T) *zstd.Encoder {
	t.Helper()
	enc, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { enc.Close() })
	return enc
}

func allBlobs(t *testing.T, x index.Index) []index.Blob {
	t.Helper()
	var out []index.Blob
	if err := x.Blobs(func(b index.Blob) error { out = append(out, b); return nil }); err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(out, func(a, b index.Blob) int { return bytes.Compare(a.ID[:], b.ID[:]) })
	return out
}

// A segmentSpool stores what the in-memory rewrite stored: each blob ID
// once (the first given), a file's last chunk list, only if every chunk
// survives; nothing at all when it holds nothing.
func TestSegmentSpoolStores(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	r := newStoreForTest(t, 64<<10)
	seg := testSegment(3000)
	survives := index.NewDigestSet()
	defer survives.Close()
	want := &format.Segment{Files: map[digest.Digest][]digest.Digest{}}
	sp := newSegmentSpool()
	defer sp.close()
	if key, err := sp.store(ctx, r.Backend, survives.Has); key != "" || err != nil {
		t.Fatalf("store of nothing: %q, %v; want no segment", key, err)
	}
	for i, b := range seg.Blobs {
		if err := sp.addBlob(b); err != nil {
			t.Fatal(err)
		}
		again := b
		again.Pack = digest.Of([]byte("another pack"))
		if err := sp.addBlob(again); err != nil { // the same ID: left out
			t.Fatal(err)
		}
		want.Blobs = append(want.Blobs, b)
		if i%3 != 0 {
			if err := survives.Add(b.ID); err != nil {
				t.Fatal(err)
			}
		}
	}
	for f, chunks := range seg.Files {
		if err := sp.addFile(f, []digest.Digest{chunks[1], chunks[0]}); err != nil {
			t.Fatal(err)
		}
		if err := sp.addFile(f, chunks); err != nil { // the last: kept if it survives
			t.Fatal(err)
		}
		if ok, _ := survives.Has(chunks[0]); ok {
			if ok, _ := survives.Has(chunks[1]); ok {
				want.Files[f] = chunks
			}
		}
	}
	key, err := sp.store(ctx, r.Backend, survives.Has)
	if err != nil {
		t.Fatal(err)
	}
	got, id, err := getSegment(ctx, r.Backend, key)
	if err != nil {
		t.Fatal(err)
	}
	if key != format.SegmentKey(id) {
		t.Errorf("stored at %s, which is not its name %s", key, id.Short())
	}
	wantSeg, err := format.DecodeSegment(want.Encode())
	if err != nil {
		t.Fatal(err)
	}
	if len(want.Files) == 0 || len(want.Files) == len(seg.Files) {
		t.Fatalf("%d of %d files survive: the test wants some of each", len(want.Files), len(seg.Files))
	}
	if !reflect.DeepEqual(got, wantSeg) {
		t.Errorf("stored segment: %d blobs, %d files; want %d, %d (or they differ)", len(got.Blobs), len(got.Files), len(wantSeg.Blobs), len(wantSeg.Files))
	}
	// Stored again: the same name, kept.
	if again, err := sp.store(ctx, r.Backend, survives.Has); err != nil || again != key {
		t.Errorf("store again: %q, %v; want %q", again, err, key)
	}
}
