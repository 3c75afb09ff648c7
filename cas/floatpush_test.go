package cas

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/cas-ml/cas/index"
)

// TestPushFloatCodec: the tensor data of a model file is stored with the
// float codec (its header is not), a small one read whole as a large
// one streamed; the file restores to its bytes; with NoFloatCodec the
// same data is stored as before the codec, raw.
func TestPushFloatCodec(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		n    int // BF16 elements
	}{{"small file", 20 << 10}, {"large file", 3 << 20}} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			data := bf16Safetensors(t, tt.n, 31)
			for _, off := range []bool{false, true} {
				r := newStoreForTest(t, 256<<10)
				src := filepath.Join(t.TempDir(), "model.safetensors")
				if err := os.WriteFile(src, data, 0o644); err != nil {
					t.Fatal(err)
				}
				res, err := r.Push(t.Context(), []string{src}, PushOptions{NoFloatCodec: off})
				if err != nil {
					t.Fatal(err)
				}
				chunks, err := r.fileChunks(t.Context(), res.Digest, res.Bytes)
				if err != nil {
					t.Fatal(err)
				}
				var raw, stored int64
				codecs := map[uint8]int{}
				for _, c := range chunks {
					b := blobOf(t, r, c)
					codecs[b.Codec]++
					raw += int64(b.RawLen)
					stored += int64(b.Length)
				}
				if off {
					if codecs[index.CodecFloat] != 0 || stored != raw {
						t.Errorf("NoFloatCodec: codecs %v, stored %d of %d; want all raw", codecs, stored, raw)
					}
				} else if codecs[index.CodecFloat] == 0 || float64(stored) > 0.72*float64(raw) {
					t.Errorf("codecs %v, stored/raw %.3f; want float-coded chunks, at most 0.72", codecs, float64(stored)/float64(raw))
				}
				st, err := r.Stats(t.Context())
				if err != nil {
					t.Fatal(err)
				}
				fl := st.Codecs[index.CodecFloat]
				if fl.Codec != "float" || fl.Chunks != int64(codecs[index.CodecFloat]) || fl.SavedBytes != fl.RawBytes-fl.StoredBytes || (!off && fl.SavedBytes <= 0) {
					t.Errorf("Stats float codec: %+v, want %d chunks and what they saved", fl, codecs[index.CodecFloat])
				}
				var buf bytes.Buffer
				if err := r.WriteFile(t.Context(), &Object{Digest: res.Digest, Kind: KindFile, Size: res.Bytes}, &buf); err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(buf.Bytes(), data) {
					t.Fatal("restored bytes differ")
				}
				dest := filepath.Join(t.TempDir(), "out")
				if _, err := r.Restore(t.Context(), &Object{Digest: res.Digest, Kind: KindFile, Size: res.Bytes}, dest, RestoreOptions{}); err != nil {
					t.Fatal(err)
				}
				if got, err := os.ReadFile(dest); err != nil || !bytes.Equal(got, data) {
					t.Fatalf("restored file differs (%v)", err)
				}
				if rep, err := r.Verify(t.Context(), &Object{Digest: res.Digest, Kind: KindFile, Size: res.Bytes}, "m", nil); err != nil || !rep.OK() {
					t.Fatalf("Verify: %+v, %v", rep, err)
				}
			}
		})
	}
}
