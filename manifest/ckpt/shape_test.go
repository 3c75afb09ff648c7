package ckpt

import (
	"archive/zip"
	"bytes"
	"slices"
	"testing"
)

// pickledTwoTo64 is the pickle of the int 2**64 (LONG1, 9 bytes).
const pickledTwoTo64 = "\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x00\x01"

// npzFile zips .npy members, stored.
func npzFile(t *testing.T, members map[string][]byte) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	for name, data := range members {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Store})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(data); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestShapesThatCannotExist: a tensor whose shape does not fit 64 bits,
// whose element count overflows or whose data runs past the file is
// listed with no digest and a problem naming it, never left out.
func TestShapesThatCannotExist(t *testing.T) {
	t.Parallel()
	one := []byte{0, 0, 0x80, 0x3f}
	torchTensor := func(shape, stride *pk) *pk {
		return newPK().raw("}(").str("w").global("torch._utils", "_rebuild_tensor_v2").raw("((").str("storage").
			global("torch", "FloatStorage").str("0").str("cpu").int(1).raw("tQ").int(0).
			raw(shape.String()[2:]).raw(stride.String()[2:]).raw("\x89}tR").raw("u")
	}
	bigShape := newPK().raw("(" + pickledTwoTo64).int(4).raw("t")
	ndarray := func(shape string) []byte {
		p := newPK().raw("}(").str("w")
		p.global("numpy.core.multiarray", "_reconstruct").raw("(").global("numpy", "ndarray").ints(0).raw("C\x01btR")
		p.raw("(").int(1).raw(shape).global("numpy", "dtype").raw("(").str("f4").raw("\x89\x88tR")
		p.raw("(").int(3).str("<").raw("NNN").int(-1).int(-1).int(0).raw("tb")
		return p.raw("\x89").bytes(one).raw("tb").raw("u").stop()
	}
	bigNpy := npyFile("<f4", false, "(18446744073709551616, 4)", one)
	tests := []struct {
		name    string
		file    []byte
		path    string
		dtype   string
		problem string
	}{
		{"torch: a dimension of 2^64",
			torchZip(t, torchTensor(bigShape, newPK().ints(4, 1)).stop(), map[string][]byte{"0": one}),
			"w", "float32", "w: shape (18446744073709551616, 4) is not a sequence of 64-bit integers"},
		{"torch: a stride of 2^64",
			torchZip(t, torchTensor(newPK().ints(1, 4), newPK().raw("("+pickledTwoTo64).int(1).raw("t")).stop(), map[string][]byte{"0": one}),
			"w", "float32", "w: stride (18446744073709551616, 1) does not fit shape (1, 4)"},
		{"torch: an element count beyond int64",
			torchZip(t, torchTensor(newPK().ints(1<<40, 1<<40), newPK().ints(1<<40, 1)).stop(), map[string][]byte{"0": one}),
			"w", "float32", "w: shape [1099511627776 1099511627776] does not describe a tensor that can exist"},
		{"torch: more elements than the storage",
			torchZip(t, torchTensor(newPK().ints(1<<30), newPK().ints(1)).stop(), map[string][]byte{"0": one}),
			"w", "float32", "w: data runs past the end of its storage (4294967296 bytes from offset 0 of 4)"},
		{"pickled ndarray: a dimension of 2^64", ndarray("(" + pickledTwoTo64 + "J\x04\x00\x00\x00t"),
			"w", "float32", "w: shape (18446744073709551616, 4) is not a sequence of 64-bit integers"},
		{"npy: a dimension of 2^64", bigNpy,
			"", "float32", "<root>: shape (18446744073709551616, 4) is not a sequence of 64-bit integers"},
		{"npz member: a dimension of 2^64", npzFile(t, map[string][]byte{"big.npy": bigNpy}),
			"big", "float32", "big: shape (18446744073709551616, 4) is not a sequence of 64-bit integers"},
		{"safetensors: a dimension of 2^64",
			safetensorsFile(`{"a":{"dtype":"F32","shape":[18446744073709551616,4],"data_offsets":[0,4]}}`, one),
			"a", "float32", "a: shape [18446744073709551616, 4] is not a sequence of 64-bit integers"},
		{"safetensors: more elements than the file",
			safetensorsFile(`{"a":{"dtype":"F32","shape":[1073741824],"data_offsets":[0,4]}}`, one),
			"a", "float32", "a: data runs past the end of its storage (4294967296 bytes from offset 0 of 4)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep, err := inspectBytes(t, tt.file)
			if err != nil {
				t.Fatalf("got error %v, want a report", err)
			}
			i := slices.IndexFunc(rep.Tensors, func(x Tensor) bool { return x.Path == tt.path })
			if i < 0 {
				t.Fatalf("tensor %q is not listed: got %+v", tt.path, rep.Tensors)
			}
			if got := rep.Tensors[i]; got.DType != tt.dtype || !got.Digest.IsZero() || got.Shape == nil {
				t.Errorf("got tensor %+v, want dtype %s, a non-nil shape and no digest", got, tt.dtype)
			}
			if !slices.Contains(rep.Problems, tt.problem) {
				t.Errorf("got problems %q, want %q", rep.Problems, tt.problem)
			}
		})
	}
}
