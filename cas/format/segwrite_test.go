package format_test

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/cas-ml/cas/cas/format"
	"github.com/cas-ml/cas/cas/format/formattest"
	"github.com/cas-ml/cas/digest"
	"github.com/cas-ml/cas/index"
)

// writeSegment gives seg's content to a SegmentWriter in the order it
// asks for.
func writeSegment(t *testing.T, seg *format.Segment) []byte {
	t.Helper()
	blobs := slices.Clone(seg.Blobs)
	sortBlobs(blobs)
	var packs []digest.Digest
	for _, b := range blobs {
		if len(packs) == 0 || packs[len(packs)-1] != b.Pack {
			packs = append(packs, b.Pack)
		}
	}
	var out bytes.Buffer
	w, err := format.NewSegmentWriter(&out, packs, len(blobs))
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range blobs {
		if err := w.Blob(b); err != nil {
			t.Fatal(err)
		}
	}
	files := make([]digest.Digest, 0, len(seg.Files))
	for f := range seg.Files {
		files = append(files, f)
	}
	slices.SortFunc(files, func(a, b digest.Digest) int { return bytes.Compare(a[:], b[:]) })
	if len(files) > 0 {
		if err := w.Files(len(files)); err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			if err := w.File(f, seg.Files[f]); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// A SegmentWriter writes the body Segment.Encode writes: the golden
// segment, segments of several packs, with and without files.
func TestSegmentWriterMatchesEncode(t *testing.T) {
	t.Parallel()
	_, _, golden := buildPack(t, goldenBlobs(t))
	var all []index.Blob
	for k := range 3 {
		var bs []goldenBlob
		for i := range 5 + k {
			raw := formattest.XOF(fmt.Sprintf("blob %d %d", k, i), 100+i*1000)
			bs = append(bs, goldenBlob{uint8(i % 2), index.CodecNone, raw, raw})
		}
		_, _, blobs := buildPack(t, bs)
		all = append(all, blobs...)
	}
	files := map[digest.Digest][]digest.Digest{}
	for i := range 4 {
		files[digest.Of([]byte{byte(i)})] = []digest.Digest{all[i].ID, all[i+1].ID}
	}
	for _, tt := range []struct {
		name string
		seg  *format.Segment
	}{
		{"golden", goldenSegment(golden)},
		{"empty", &format.Segment{}},
		{"blobs only", &format.Segment{Blobs: all}},
		{"files only", &format.Segment{Files: files}},
		{"both", &format.Segment{Blobs: all, Files: files}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := writeSegment(t, tt.seg)
			want := tt.seg.Encode()
			if !bytes.HasPrefix(got, []byte(format.SegmentMagic)) {
				t.Fatalf("segment starts %q, want %q", got[:min(8, len(got))], format.SegmentMagic)
			}
			gb, err := zstdDecoder.DecodeAll(got[len(format.SegmentMagic):], nil)
			if err != nil {
				t.Fatal(err)
			}
			wb, err := zstdDecoder.DecodeAll(want[len(format.SegmentMagic):], nil)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(gb, wb) {
				t.Errorf("body: got %x, want %x", gb, wb)
			}
			if _, err := format.DecodeSegment(got); err != nil {
				t.Errorf("DecodeSegment: %v", err)
			}
		})
	}
}

func TestSegmentWriterRefusesDisorder(t *testing.T) {
	t.Parallel()
	p1, p2 := digest.Of([]byte("p1")), digest.Of([]byte("p2"))
	if bytes.Compare(p1[:], p2[:]) > 0 {
		p1, p2 = p2, p1
	}
	b := func(p digest.Digest, off uint64) index.Blob {
		return index.Blob{ID: digest.Of(fmt.Append(p[:], off)), Pack: p, Offset: off, Length: 1, RawLen: 1}
	}
	f1, f2 := digest.Of([]byte("f1")), digest.Of([]byte("f2"))
	if bytes.Compare(f1[:], f2[:]) > 0 {
		f1, f2 = f2, f1
	}
	chunks := []digest.Digest{f1, f2}
	tests := []struct {
		name  string
		packs []digest.Digest
		blobs int
		steps func(w *format.SegmentWriter) error
	}{
		{"packs unsorted", []digest.Digest{p2, p1}, 0, nil},
		{"pack not listed", []digest.Digest{p1}, 1, func(w *format.SegmentWriter) error { return w.Blob(b(p2, 0)) }},
		{"offsets backwards", []digest.Digest{p1}, 2, func(w *format.SegmentWriter) error {
			if err := w.Blob(b(p1, 8)); err != nil {
				return err
			}
			return w.Blob(b(p1, 0))
		}},
		{"packs backwards", []digest.Digest{p1, p2}, 2, func(w *format.SegmentWriter) error {
			if err := w.Blob(b(p2, 0)); err != nil {
				return err
			}
			return w.Blob(b(p1, 8))
		}},
		{"too many blobs", []digest.Digest{p1}, 1, func(w *format.SegmentWriter) error {
			if err := w.Blob(b(p1, 0)); err != nil {
				return err
			}
			return w.Blob(b(p1, 8))
		}},
		{"too few blobs", []digest.Digest{p1}, 2, func(w *format.SegmentWriter) error {
			if err := w.Blob(b(p1, 0)); err != nil {
				return err
			}
			return w.Close()
		}},
		{"files unsorted", nil, 0, func(w *format.SegmentWriter) error {
			if err := w.Files(2); err != nil {
				return err
			}
			if err := w.File(f2, chunks); err != nil {
				return err
			}
			return w.File(f1, chunks)
		}},
		{"a file of one chunk", nil, 0, func(w *format.SegmentWriter) error {
			if err := w.Files(1); err != nil {
				return err
			}
			return w.File(f1, chunks[:1])
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, err := format.NewSegmentWriter(&bytes.Buffer{}, tt.packs, tt.blobs)
			if err == nil && tt.steps != nil {
				err = tt.steps(w)
			}
			if !errors.Is(err, format.ErrSegmentOrder) {
				t.Errorf("got %v, want ErrSegmentOrder", err)
			}
		})
	}
}
