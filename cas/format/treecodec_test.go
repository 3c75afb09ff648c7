package format_test

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/cas-ml/cas/cas/format"
	"github.com/cas-ml/cas/digest"
	"github.com/cas-ml/cas/index"
)

// TestEncodeTree checks that a tree's encoding is stored as a zstd frame
// that decodes to its exact bytes, smaller than the default level stores
// it (EncodeChunk), and that a tree too small to pay stays raw.
func TestEncodeTree(t *testing.T) {
	t.Parallel()
	tree := &format.Tree{}
	for i := range 500 {
		tree.Entries = append(tree.Entries, format.TreeEntry{Name: fmt.Sprintf("f%06d.bin", i), Kind: format.KindFile,
			Digest: digest.Of(fmt.Appendf(nil, "file %d", i)), Size: int64(2048 + 29*i)})
	}
	raw, err := tree.Encode()
	if err != nil {
		t.Fatal(err)
	}
	stored, codec := format.EncodeTreeInto(make([]byte, 0, len(raw)), raw)
	if codec != index.CodecZstd {
		t.Fatalf("codec %d, want zstd", codec)
	}
	if def, _ := format.EncodeChunk(raw); len(stored) > len(def) {
		t.Errorf("tree stored in %d bytes, more than the default level's %d", len(stored), len(def))
	}
	t.Logf("tree of %d bytes stored in %d", len(raw), len(stored))
	got, err := format.DecodeChunk(index.Blob{ID: digest.Of(raw), RawLen: uint32(len(raw)), Codec: codec}, stored, nil)
	if err != nil || !bytes.Equal(got, raw) {
		t.Fatalf("decoded %d bytes (%v), want the %d encoded", len(got), err, len(raw))
	}
	small := []byte(format.TreeMagic + "file " + digest.Of(nil).String()[7:] + " 0 1 a\n")
	if s, c := format.EncodeTreeInto(nil, small); c != index.CodecNone || !bytes.Equal(s, small) {
		t.Errorf("a tree of %d bytes: codec %d, %d bytes stored; want it raw", len(small), c, len(s))
	}
}
