package cli_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io/fs"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cas-ml/cas/remote/s3test"
)

// A push to S3 uploads the packs as written, float tensors compressed:
// the bucket holds about two thirds of a BF16 model's bytes, and a fresh
// store restores the model from it bit for bit.
func TestPushToS3Compressed(t *testing.T) {
	srv := s3test.Start(t)
	for _, kv := range srv.Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	bucket := srv.NewBucket(t)
	url := "s3://" + bucket + "/lab"

	const n = 2 << 20 // BF16 elements: 4 MiB
	hdr := fmt.Sprintf(`{"w":{"dtype":"BF16","shape":[%d],"data_offsets":[0,%d]}}`, n, 2*n)
	model := binary.LittleEndian.AppendUint64(nil, uint64(len(hdr)))
	model = append(model, hdr...)
	r := rand.New(rand.NewPCG(15, 15))
	for range n {
		model = binary.LittleEndian.AppendUint16(model, uint16(math.Float32bits(float32(0.02*r.NormFloat64()))>>16))
	}
	src := filepath.Join(t.TempDir(), "model.safetensors")
	writeFile(t, src, model)

	a := t.TempDir()
	mustCas(t, a, "init")
	mustCas(t, a, "remote", "add", "origin", url, "--endpoint", srv.Endpoint)
	mustCas(t, a, "push", src, "--name", "model", "--to", "origin", "-q")

	var packs int64
	err := filepath.WalkDir(filepath.Join(srv.Dir, bucket), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.Contains(filepath.ToSlash(p), "/packs/") {
			return err
		}
		fi, err := d.Info()
		if err == nil {
			packs += fi.Size()
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if ratio := float64(packs) / float64(len(model)); packs == 0 || ratio > 0.70 {
		t.Errorf("the bucket's packs hold %d bytes for a %d-byte BF16 model (%.3f), want at most 0.70 of it", packs, len(model), ratio)
	}

	b := t.TempDir()
	mustCas(t, b, "init")
	mustCas(t, b, "remote", "add", "origin", url, "--endpoint", srv.Endpoint)
	out := filepath.Join(b, "model.safetensors")
	mustCas(t, b, "restore", "model", out, "-q")
	if got, err := os.ReadFile(out); err != nil || !bytes.Equal(got, model) {
		t.Fatalf("restored %d bytes (%v), want the model pushed", len(got), err)
	}
}
