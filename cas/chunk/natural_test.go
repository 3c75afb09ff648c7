package chunk

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
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
// sorted offsets inside the file, and regions between them.
func FuzzNaturalLayout(f *testing.F) {
	f.Add(torchLike(f, []byte("pickle"), [][]byte{pseudoBytes(2000, 1)}))
	f.Add(append([]byte("\x93NUMPY\x01\x00\x10\x00"), make([]byte, 2000)...))
	hdr := []byte(`{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}`)
	f.Add(append(append(binary.LittleEndian.AppendUint64(nil, uint64(len(hdr))), hdr...), make([]byte, 2000)...))
	if typed, err := os.ReadFile("testdata/typed.pt"); err == nil {
		f.Add(typed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		l := NaturalLayout(bytes.NewReader(data), int64(len(data)))
		cuts := l.Cuts
		for i, c := range cuts {
			if c <= 0 || c >= int64(len(data)) || (i > 0 && c <= cuts[i-1]) {
				t.Fatalf("cuts %v out of order or bounds for %d bytes", cuts, len(data))
			}
		}
		// Each region starts and ends at a cut or an end of the file,
		// after the one before it.
		atCut := func(off int64) bool { return off == 0 || off == int64(len(data)) || slices.Contains(cuts, off) }
		for i, r := range l.Regions {
			if r.Start >= r.End || !atCut(r.Start) || !atCut(r.End) || (i > 0 && r.Start < l.Regions[i-1].End) {
				t.Fatalf("region %d %+v of %+v not between cuts, or overlapping", i, r, l)
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

// TestNaturalLayoutTorch types the storages of a checkpoint torch wrote
// (testdata/typed.pt, from testdata/gen_typed.py): F32, BF16, F16 and F64
// storages by their data.pkl, an int64 one not at all.
func TestNaturalLayoutTorch(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile("testdata/typed.pt")
	if err != nil {
		t.Fatal(err)
	}
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"typed/data/0": "F32", "typed/data/1": "BF16", "typed/data/2": "F16", "typed/data/3": "F64"}
	var regions []Region
	for _, f := range zr.File {
		if dt, ok := want[f.Name]; ok {
			off, _ := f.DataOffset()
			regions = append(regions, Region{off, off + int64(f.CompressedSize64), dt})
		}
	}
	l := NaturalLayout(bytes.NewReader(data), int64(len(data)))
	if !slices.Equal(l.Regions, regions) {
		t.Fatalf("regions = %v, want %v", l.Regions, regions)
	}
	if !slices.Equal(l.Cuts, NaturalCuts(bytes.NewReader(data), int64(len(data)))) {
		t.Fatal("NaturalLayout's cuts are not NaturalCuts'")
	}
	r := regions[1]
	for _, tt := range []struct {
		start, end int64
		want       string
	}{
		{r.Start, r.End, "BF16"},
		{r.Start + 10, r.End - 10, "BF16"},
		{r.Start - 1, r.End, ""},
		{r.Start, r.End + 1, ""},
		{0, 10, ""},
	} {
		if got := l.DTypeAt(tt.start, tt.end); got != tt.want {
			t.Errorf("DTypeAt(%d, %d) = %q, want %q", tt.start, tt.end, got, tt.want)
		}
	}
}

// TestNaturalLayoutTyped types safetensors tensors by dtype and npy
// arrays (alone and in an npz) by descr, and leaves other types alone.
func TestNaturalLayoutTyped(t *testing.T) {
	t.Parallel()
	hdr := []byte(`{"w":{"dtype":"BF16","shape":[512],"data_offsets":[0,1024]},"i":{"dtype":"I64","shape":[128],"data_offsets":[1024,2048]},"h":{"dtype":"F16","shape":[512],"data_offsets":[2048,3072]}}`)
	st := binary.LittleEndian.AppendUint64(nil, uint64(len(hdr)))
	st = append(append(st, hdr...), pseudoBytes(3072, 5)...)
	base := int64(8 + len(hdr))
	l := NaturalLayout(bytes.NewReader(st), int64(len(st)))
	if want := []Region{{base, base + 1024, "BF16"}, {base + 2048, base + 3072, "F16"}}; !slices.Equal(l.Regions, want) {
		t.Errorf("safetensors regions = %v, want %v", l.Regions, want)
	}

	npy := func(descr string) []byte {
		h := fmt.Sprintf("{'descr': '%s', 'fortran_order': False, 'shape': (1024,), }", descr)
		h += strings.Repeat(" ", 63-len(h)) + "\n"
		b := append([]byte("\x93NUMPY\x01\x00"), byte(len(h)), 0)
		return append(append(b, h...), pseudoBytes(4096, 4)...)
	}
	f4 := npy("<f4")
	l = NaturalLayout(bytes.NewReader(f4), int64(len(f4)))
	if want := []Region{{74, int64(len(f4)), "F32"}}; !slices.Equal(l.Regions, want) || !slices.Equal(l.Cuts, []int64{74}) {
		t.Errorf("npy layout = %+v, want regions %v and cut 74", l, want)
	}
	for _, descr := range []string{">f4", "<i8", "|u1"} {
		b := npy(descr)
		if l := NaturalLayout(bytes.NewReader(b), int64(len(b))); l.Regions != nil {
			t.Errorf("npy %s: regions %v, want none", descr, l.Regions)
		}
	}

	var zb bytes.Buffer
	zw := zip.NewWriter(&zb)
	for _, m := range []struct {
		name string
		data []byte
	}{{"a.npy", npy("<f2")}, {"b.npy", npy("<i4")}} {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: m.name, Method: zip.Store})
		if err != nil {
			t.Fatal(err)
		}
		_, _ = w.Write(m.data)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	z := zb.Bytes()
	zr, _ := zip.NewReader(bytes.NewReader(z), int64(len(z)))
	off, _ := zr.File[0].DataOffset()
	l = NaturalLayout(bytes.NewReader(z), int64(len(z)))
	if want := []Region{{off + 74, off + int64(len(f4)), "F16"}}; !slices.Equal(l.Regions, want) || !slices.Contains(l.Cuts, off+74) {
		t.Errorf("npz layout = %+v, want regions %v and a cut at %d", l, want, off+74)
	}
}

// TestStorageTypesBounded: a pickle the walker cannot follow types
// nothing rather than guessing.
func TestStorageTypesBounded(t *testing.T) {
	t.Parallel()
	for _, pkl := range [][]byte{nil, []byte("\x80\x02"), []byte("\x80\x02Q."), []byte("\x80\x02t."), []byte("\x80\x02h\x05."), []byte("\xff.")} {
		if got := storageTypes(pkl); got != nil {
			t.Errorf("storageTypes(%q) = %v, want nil", pkl, got)
		}
	}
}

// The pickle walker never panics, and whatever it returns names only
// the element types cas codes, whatever the pickle holds.
func FuzzStorageTypes(f *testing.F) {
	if typed, err := os.ReadFile("testdata/typed.pt"); err == nil {
		zr, err := zip.NewReader(bytes.NewReader(typed), int64(len(typed)))
		if err != nil {
			f.Fatal(err)
		}
		for _, m := range zr.File {
			if strings.HasSuffix(m.Name, "/data.pkl") {
				rc, _ := m.Open()
				pkl, _ := io.ReadAll(rc)
				_ = rc.Close()
				f.Add(pkl)
			}
		}
	}
	f.Add([]byte("\x80\x02(X\x07\x00\x00\x00storageq\x00ctorch\nHalfStorage\nq\x01X\x01\x00\x00\x000X\x03\x00\x00\x00cpuK\x04tQ."))
	f.Fuzz(func(t *testing.T, pkl []byte) {
		for key, dt := range storageTypes(pkl) {
			if _, ok := elemTypes[dt]; !ok || key == "" && dt == "" {
				t.Fatalf("storageTypes gave %q type %q", key, dt)
			}
		}
	})
}

var elemTypes = map[string]bool{"F32": true, "BF16": true, "F16": true, "F64": true}

// A hand-written protocol-2 pickle: MARK, the storage tuple, BINPERSID.
func TestStorageTypesHandWritten(t *testing.T) {
	t.Parallel()
	pkl := []byte("\x80\x02(X\x07\x00\x00\x00storageq\x00ctorch\nHalfStorage\nq\x01X\x01\x00\x00\x000X\x03\x00\x00\x00cpuK\x04tQ" +
		"(h\x00h\x01X\x01\x00\x00\x001X\x03\x00\x00\x00cpuK\x02tQ" + // the same class again, through the memo
		"(h\x00ctorch\nLongStorage\nX\x01\x00\x00\x002X\x03\x00\x00\x00cpuK\x02tQ\x86.")
	got := storageTypes(pkl)
	want := map[string]string{"0": "F16", "1": "F16"}
	if len(got) != len(want) || got["0"] != "F16" || got["1"] != "F16" {
		t.Fatalf("storageTypes = %v, want %v", got, want)
	}
}
