package chunk

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"
	"testing"
)

// torchLike writes a zip laid out as torch.save writes one: a pickle
// member, then one stored member per tensor storage.
func torchLike(t testing.TB, pickle []byte, tensors [][]byte) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	add := func(name string, data []byte) {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Store})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(data); err != nil {
			t.Fatal(err)
		}
	}
	add("archive/data.pkl", pickle)
	for i, tensor := range tensors {
		add(fmt.Sprintf("archive/data/%d", i), tensor)
	}
	add("archive/version", []byte("3\n"))
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestNaturalCuts(t *testing.T) {
	t.Parallel()
	tensors := [][]byte{pseudoBytes(3000, 1), pseudoBytes(5000, 2)}
	zipped := torchLike(t, pseudoBytes(700, 3), tensors)
	zr, _ := zip.NewReader(bytes.NewReader(zipped), int64(len(zipped)))
	var want []int64
	for _, f := range zr.File {
		off, _ := f.DataOffset()
		want = append(want, off, off+int64(f.CompressedSize64))
	}
	slices.Sort(want)

	npy := append([]byte("\x93NUMPY\x01\x00\x76\x00"), bytes.Repeat([]byte(" "), 0x76)...)
	npy = append(npy, pseudoBytes(4096, 4)...)

	hdr := []byte(`{"__metadata__":{"a":"b"},"w":{"dtype":"F32","shape":[256],"data_offsets":[0,1024]},"b":{"dtype":"F32","shape":[512],"data_offsets":[1024,3072]}}`)
	st := binary.LittleEndian.AppendUint64(nil, uint64(len(hdr)))
	st = append(append(st, hdr...), pseudoBytes(3072, 5)...)
	base := int64(8 + len(hdr))

	tests := []struct {
		name string
		data []byte
		want []int64
	}{
		{"torch zip", zipped, want},
		{"npy", npy, []int64{10 + 0x76}},
		{"safetensors", st, []int64{base, base + 1024}},
		{"plain bytes", pseudoBytes(1<<16, 6), nil},
		{"truncated zip", zipped[:len(zipped)-30], nil},
		{"safetensors header past the end", append(binary.LittleEndian.AppendUint64(nil, 1<<40), bytes.Repeat([]byte("{"), 2000)...), nil},
		{"safetensors offsets past the end", append(append(binary.LittleEndian.AppendUint64(nil, uint64(len(hdr))), hdr...), make([]byte, 100)...), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := NaturalCuts(bytes.NewReader(tt.data), int64(len(tt.data)))
			if !slices.Equal(got, cleanCuts(tt.want, int64(len(tt.data)))) {
				t.Errorf("NaturalCuts = %v, want %v", got, tt.want)
			}
		})
	}
}

func pseudoBytes(n int, seed uint64) []byte { return testData(n, seed) }

// Whatever a file claims, boundary detection never panics and returns
// sorted offsets inside the file.
func FuzzNaturalCuts(f *testing.F) {
	f.Add(torchLike(f, []byte("pickle"), [][]byte{pseudoBytes(2000, 1)}))
	f.Add(append([]byte("\x93NUMPY\x01\x00\x10\x00"), make([]byte, 2000)...))
	hdr := []byte(`{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}`)
	f.Add(append(append(binary.LittleEndian.AppendUint64(nil, uint64(len(hdr))), hdr...), make([]byte, 2000)...))
	f.Fuzz(func(t *testing.T, data []byte) {
		cuts := NaturalCuts(bytes.NewReader(data), int64(len(data)))
		for i, c := range cuts {
			if c <= 0 || c >= int64(len(data)) || (i > 0 && c <= cuts[i-1]) {
				t.Fatalf("cuts %v out of order or bounds for %d bytes", cuts, len(data))
			}
		}
	})
}

// CutsWithin chunks each stretch between two natural cuts as Cuts chunks a
// whole input, whatever offset in the file data starts at.
func TestCutsWithin(t *testing.T) {
	t.Parallel()
	p, _ := NewParams(4 << 10)
	c := New(p)
	data := testData(200<<10, 7)
	// lengths chunks data[from:to] on its own.
	lengths := func(from, to int) []int { return c.Cuts(data[from:to]) }
	tests := []struct {
		name    string
		base    int64
		natural []int64
		want    []int
	}{
		{"no cuts", 0, nil, c.Cuts(data)},
		{"one cut", 0, []int64{70000}, slices.Concat(lengths(0, 70000), lengths(70000, len(data)))},
		{"two cuts", 0, []int64{5, 150001}, slices.Concat(lengths(0, 5), lengths(5, 150001), lengths(150001, len(data)))},
		{"cuts at the ends", 0, []int64{0, int64(len(data))}, c.Cuts(data)},
		{"based", 1 << 30, []int64{1<<30 + 70000}, slices.Concat(lengths(0, 70000), lengths(70000, len(data)))},
		{"cuts before and after the data", 1 << 30, []int64{100, 1<<30 + 9999, 1 << 40}, slices.Concat(lengths(0, 9999), lengths(9999, len(data)))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := c.CutsWithin(data, tt.base, tt.natural)
			if !slices.Equal(got, tt.want) {
				t.Errorf("CutsWithin = %v, want %v", got, tt.want)
			}
		})
	}
}

// CutsWithin must not write into the array behind the caller's cuts.
func TestCutsWithinLeavesCallerArray(t *testing.T) {
	t.Parallel()
	p, _ := NewParams(4 << 10)
	c := New(p)
	backing := []int64{3000, -1}
	c.CutsWithin(testData(10000, 8), 0, backing[:1])
	if backing[1] != -1 {
		t.Errorf("CutsWithin wrote %d past the end of natural, want the array untouched", backing[1])
	}
}
