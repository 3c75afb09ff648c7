package ckpt

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cas-ml/cas/digest"
)

func u32s(n int, f func(i int) uint32) []byte {
	b := make([]byte, 4*n)
	for i := 0; i < n; i++ {
		binary.LittleEndian.PutUint32(b[4*i:], f(i))
	}
	return b
}

func u64s(ws ...uint64) []byte {
	b := make([]byte, 8*len(ws))
	for i, w := range ws {
		binary.LittleEndian.PutUint64(b[8*i:], w)
	}
	return b
}

// mtTuple pickles numpy's legacy state tuple around key (a pickled value).
func mtTuple(p *pk, key func(*pk), pos int64) *pk {
	p.raw("(").str("MT19937")
	key(p)
	return p.int(pos).int(0).float(0).raw("t")
}

func pyState(p *pk, version int64, n int, last int64) *pk {
	p.raw("(").int(version).raw("(")
	for i := 0; i < n-1; i++ {
		p.int(int64(i) * 65537)
	}
	return p.int(last).raw("tNt")
}

func keyArray(descr string, n int) func(*pk) {
	size := map[string]int{"<u4": 4, "<i8": 8, "<f4": 4}[descr]
	return func(p *pk) {
		p.ndarray(descr, []int64{int64(n)}, make([]byte, size*n))
	}
}

func keyList(n int, float bool) func(*pk) {
	return func(p *pk) {
		p.raw("]q\x09(")
		for i := 0; i < n; i++ {
			if float {
				p.float(float64(i))
			} else {
				p.int(int64(i))
			}
		}
		p.raw("e")
	}
}

// genDict pickles {'bit_generator': name, 'state': {…}, 'has_uint32': 0, 'uinteger': 0}.
func genDict(name string, state func(*pk)) func(*pk) {
	return func(p *pk) {
		p.raw("}(").str("bit_generator").str(name).str("state").raw("}(")
		state(p)
		p.raw("u").str("has_uint32").int(0).str("uinteger").int(0).raw("u")
	}
}

// TestRNGByStructure: states are found by their structure wherever they
// sit, and values that merely look alike are not states.
func TestRNGByStructure(t *testing.T) {
	t.Parallel()
	cpuState := make([]byte, 5056)
	binary.LittleEndian.PutUint64(cpuState, 7)
	storages := map[string][]byte{
		"u8_5056": cpuState, "f32_5056": make([]byte, 4*5056),
		"i64_16": make([]byte, 8*16), "u8_17": make([]byte, 17),
		"cuda0": u64s(11, 0), "cuda1": u64s(12, 4), "cuda2": u64s(13, 8),
	}
	tensor := func(st, key string, numel int64, shape ...int64) func(*pk) {
		stride := contiguousStrides(shape)
		return func(p *pk) { p.tensor(st, key, numel, 0, shape, stride) }
	}
	u32key := keyArray("<u4", 624)
	tests := []struct {
		name string
		val  func(*pk)
		want string // "kind@path[#device]" joined by spaces
	}{
		// Look-alikes.
		{"float tensor of 5056", tensor("FloatStorage", "f32_5056", 5056, 5056), ""},
		{"int64 tensor of 16", tensor("LongStorage", "i64_16", 16, 16), ""},
		{"list of int64 tensors of 16", func(p *pk) {
			p.raw("]q\x08(")
			tensor("LongStorage", "i64_16", 16, 16)(p)
			tensor("LongStorage", "i64_16", 16, 16)(p)
			p.raw("e")
		}, ""},
		{"uint8 5056 bytes but 2-D", tensor("ByteStorage", "u8_5056", 5056, 2, 2528), ""},
		{"uint8 tensor of 17", tensor("ByteStorage", "u8_17", 17, 17), ""},
		{"MT19937 with float words", func(p *pk) { mtTuple(p, keyList(624, true), 10) }, ""},
		{"MT19937 with 623 words", func(p *pk) { mtTuple(p, keyArray("<u4", 623), 10) }, ""},
		{"MT19937 with int64 array", func(p *pk) { mtTuple(p, keyArray("<i8", 624), 10) }, ""},
		{"MT19937 with pos 625", func(p *pk) { mtTuple(p, u32key, 625) }, ""},
		{"other name, MT19937 shape", func(p *pk) {
			p.raw("(").str("PCG64")
			u32key(p)
			p.int(1).int(0).float(0).raw("t")
		}, ""},
		{"Python state of 624 words", func(p *pk) { pyState(p, 3, 624, 2) }, ""},
		{"Python state with index 700", func(p *pk) { pyState(p, 3, 625, 700) }, ""},
		{"Python state version 4", func(p *pk) { pyState(p, 4, 625, 2) }, ""},
		{"Python state with a str gauss", func(p *pk) {
			p.raw("(").int(3).ints(make([]int64, 625)...).str("x").raw("t")
		}, ""},
		{"bit_generator with a str state", func(p *pk) {
			p.raw("}(").str("bit_generator").str("PCG64").str("state").str("x").raw("u")
		}, ""},
		{"PCG64 with a float state", genDict("PCG64", func(p *pk) { p.str("state").float(1.5).str("inc").int(1) }), ""},
		{"unknown bit generator", genDict("Xoshiro256", func(p *pk) { p.str("state").int(1).str("inc").int(1) }), ""},

		// States, wherever they sit.
		{"torch CPU state deep under odd keys", func(p *pk) {
			p.raw("}(").str("a").raw("}(").str("b").raw("]q\x07(")
			p.raw("}(").str("x")
			tensor("ByteStorage", "u8_5056", 5056, 5056)(p)
			p.raw("ueu").raw("u")
		}, "torch_cpu@a.b.0.x"},
		{"lone CUDA state", tensor("ByteStorage", "cuda0", 16, 16), "torch_cuda@<root>"},
		{"tuple of CUDA states", func(p *pk) {
			p.raw("(")
			for _, k := range []string{"cuda0", "cuda1", "cuda2"} {
				tensor("ByteStorage", k, 16, 16)(p)
			}
			p.raw("t")
		}, "torch_cuda@0#0 torch_cuda@1#1 torch_cuda@2#2"},
		{"numpy MT19937, key as a list", func(p *pk) { mtTuple(p, keyList(624, false), 3) }, "numpy_mt19937@<root>"},
		{"numpy MT19937 in a list", func(p *pk) {
			p.raw("]q\x07(")
			mtTuple(p, u32key, 624)
			p.raw("e")
		}, "numpy_mt19937@0"},
		{"Python 2 random state", func(p *pk) { pyState(p, 2, 625, 624) }, "python_random@<root>"},
		{"Python state with gauss_next", func(p *pk) {
			p.raw("(").int(3).ints(make([]int64, 625)...).float(0.25).raw("t")
		}, "python_random@<root>"},
		{"PCG64DXSM", genDict("PCG64DXSM", func(p *pk) { p.str("state").int(5).str("inc").int(1) }), "numpy_generator@<root>"},
		{"MT19937 generator", genDict("MT19937", func(p *pk) { p.str("key"); u32key(p); p.str("pos").int(624) }), "numpy_generator@<root>"},
		{"Philox generator", genDict("Philox", func(p *pk) {
			p.str("counter").ndarray("<u8", []int64{4}, u64s(1, 2, 3, 4)).str("key").ndarray("<u8", []int64{2}, u64s(5, 6)).
				str("buffer").ndarray("<u8", []int64{4}, u64s(0, 0, 0, 0)).str("buffer_pos").int(4)
		}), "numpy_generator@<root>"},
		{"SFC64 generator", genDict("SFC64", func(p *pk) { p.str("state").ndarray("<u8", []int64{4}, u64s(1, 2, 3, math.MaxUint64)) }), "numpy_generator@<root>"},
		{"RandomState pickled whole", func(p *pk) {
			// numpy.random._pickle.__randomstate_ctor('MT19937') then BUILD
			// with get_state(legacy=False): an opaque object whose state
			// holds the Generator-style dict.
			p.raw("}(").str("rs").global("numpy.random._pickle", "__randomstate_ctor").raw("(").str("MT19937").raw("tR")
			genDict("MT19937", func(p *pk) { p.str("key"); u32key(p); p.str("pos").int(7) })(p)
			p.raw("bu")
		}, "numpy_generator@rs"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newPK()
			tt.val(p)
			rep, err := inspectBytes(t, torchZip(t, p.stop(), storages))
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, s := range rep.RNG {
				g := s.Kind + "@" + displayPath(s.Path)
				if s.Device != nil {
					g += fmt.Sprintf("#%d", *s.Device)
				}
				got = append(got, g)
				if s.Fingerprint.IsZero() || s.Summary == "" {
					t.Errorf("%s: no fingerprint or summary: %+v", g, s)
				}
			}
			if strings.Join(got, " ") != tt.want {
				t.Errorf("got states %q, want %q", strings.Join(got, " "), tt.want)
			}
			if len(rep.Problems) > 0 {
				t.Errorf("problems: %q", rep.Problems)
			}
		})
	}
}

// TestFingerprintNormalisesArrays: the numpy key words give one
// fingerprint whether they sit in a uint32 array or a list.
func TestFingerprintNormalisesArrays(t *testing.T) {
	t.Parallel()
	words := func(i int) uint32 { return uint32(i*2654435761 + 1) }
	asArray := mtTuple(newPK(), func(p *pk) { p.ndarray("<u4", []int64{624}, u32s(624, words)) }, 5).stop()
	asList := mtTuple(newPK(), func(p *pk) {
		p.raw("]q\x09(")
		for i := 0; i < 624; i++ {
			p.int(int64(words(i)))
		}
		p.raw("e")
	}, 5).stop()
	a, err1 := inspectBytes(t, asArray)
	b, err2 := inspectBytes(t, asList)
	if err := errors.Join(err1, err2); err != nil {
		t.Fatal(err)
	}
	if len(a.RNG) != 1 || len(b.RNG) != 1 || a.RNG[0].Fingerprint != b.RNG[0].Fingerprint {
		t.Errorf("got %+v and %+v, want one equal fingerprint", a.RNG, b.RNG)
	}
	// And a different word gives a different fingerprint.
	other := mtTuple(newPK(), func(p *pk) {
		p.ndarray("<u4", []int64{624}, u32s(624, func(i int) uint32 { return words(i) ^ uint32(i/623) }))
	}, 5).stop()
	c, err := inspectBytes(t, other)
	if err != nil {
		t.Fatal(err)
	}
	if c.RNG[0].Fingerprint == a.RNG[0].Fingerprint {
		t.Errorf("a different key has the same fingerprint")
	}
}

func TestCanonical(t *testing.T) {
	// The example of docs/checkpoints.md.
	doc := &Dict{}
	doc.Set("b", int64(-2))
	doc.Set("a", Tuple{nil, true, 1.0})
	if got, _ := Canonical(doc); string(got) != "M2:S1:aL3:NTD\x00\x00\x00\x00\x00\x00\xf0\x3fS1:bI-2;" {
		t.Errorf("docs example: got %q", got)
	}
	d := &Dict{}
	d.Set("b", int64(-2))
	d.Set("a", Tuple{nil, true, false, 1.0, []byte{0}, "é"})
	got, err := Canonical(d)
	if err != nil {
		t.Fatal(err)
	}
	want := "M2:S1:aL6:NTFD\x00\x00\x00\x00\x00\x00\xf0\x3fB1:\x00S2:éS1:bI-2;"
	if string(got) != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if _, err := Canonical(&Object{Module: "m", Name: "C"}); !errors.Is(err, ErrMalformed) {
		t.Errorf("opaque object: got %v, want ErrMalformed", err)
	}
	// 2^60 paths through 60 shared tuples: refused, not walked.
	v := Value(Tuple{})
	for i := 0; i < 60; i++ {
		v = Tuple{v, v}
	}
	start := time.Now()
	if _, err := Canonical(v); !errors.Is(err, ErrLimit) {
		t.Errorf("shared tuples: got %v, want ErrLimit", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v", d)
	}
}

// TestStridedTensors: digests of views are over their elements in
// row-major order, so a transposed view hashes like its contiguous copy.
func TestStridedTensors(t *testing.T) {
	t.Parallel()
	f32 := func(vals ...float32) []byte {
		b := make([]byte, 4*len(vals))
		for i, v := range vals {
			binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
		}
		return b
	}
	storage := f32(0, 1, 2, 3, 4, 5)
	p := newPK().raw("}(").
		str("t").tensor("FloatStorage", "0", 6, 0, []int64{3, 2}, []int64{1, 3}).
		str("slice").tensor("FloatStorage", "0", 6, 3, []int64{2}, []int64{1}).
		str("expand").tensor("FloatStorage", "0", 6, 1, []int64{4}, []int64{0}).
		str("scalar").tensor("FloatStorage", "0", 6, 5, []int64{}, []int64{}).
		str("empty").tensor("FloatStorage", "0", 6, 0, []int64{0, 3}, []int64{3, 1}).
		raw("u").stop()
	rep, err := inspectBytes(t, torchZip(t, p, map[string][]byte{"0": storage}))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]struct {
		data   []byte
		offset int64
		nc     bool
	}{
		"t":      {f32(0, 3, 1, 4, 2, 5), 0, true},
		"slice":  {f32(3, 4), 12, false},
		"expand": {f32(1, 1, 1, 1), 4, true},
		"scalar": {f32(5), 20, false},
		"empty":  {nil, 0, false},
	}
	if len(rep.Tensors) != len(want) || len(rep.Problems) > 0 {
		t.Fatalf("got %d tensors, problems %q", len(rep.Tensors), rep.Problems)
	}
	for _, tt := range rep.Tensors {
		w := want[tt.Path]
		if tt.Digest != digest.Of(w.data) || tt.Bytes != int64(len(w.data)) || tt.Offset != w.offset || tt.NonContiguous != w.nc {
			t.Errorf("%s: got %+v, want digest of %v at %d (non-contiguous %v)", tt.Path, tt, w.data, w.offset, w.nc)
		}
	}
}

func npyFile(descr string, fortran bool, shape string, data []byte) []byte {
	fo := "False"
	if fortran {
		fo = "True"
	}
	h := fmt.Sprintf("{'descr': '%s', 'fortran_order': %s, 'shape': %s, }", descr, fo, shape)
	for (10+len(h)+1)%64 != 0 {
		h += " "
	}
	h += "\n"
	b := []byte("\x93NUMPY\x01\x00")
	b = binary.LittleEndian.AppendUint16(b, uint16(len(h)))
	return append(append(b, h...), data...)
}

func TestNpy(t *testing.T) {
	t.Parallel()
	// A Fortran-order 2×3 array hashes like its C-order copy.
	fortran := npyFile("<u2", true, "(2, 3)", []byte{0, 0, 3, 0, 1, 0, 4, 0, 2, 0, 5, 0})
	c := []byte{0, 0, 1, 0, 2, 0, 3, 0, 4, 0, 5, 0}
	rep, err := inspectBytes(t, fortran)
	if err != nil {
		t.Fatal(err)
	}
	if got := rep.Tensors[0]; got.Digest != digest.Of(c) || got.DType != "uint16" || !got.NonContiguous {
		t.Errorf("Fortran order: got %+v", got)
	}
	tests := []struct {
		name, file  string
		dtype       string
		problem     bool
		errContains string
	}{
		{"big-endian", string(npyFile(">f8", false, "(1,)", make([]byte, 8))), "float64", false, ""},
		{"scalar", string(npyFile("<i4", false, "()", make([]byte, 4))), "int32", false, ""},
		{"object array", string(npyFile("|O", false, "(2,)", []byte("pickle"))), "object", true, ""},
		{"short data", string(npyFile("<f4", false, "(100,)", make([]byte, 8))), "float32", true, ""},
		{"absurd shape", string(npyFile("<f4", false, "(4611686018427387904, 4611686018427387904)", nil)), "float32", true, ""},
		{"bad header", "\x93NUMPY\x01\x00\x05\x00{'a':", "", false, "npy header"},
		{"version 9", "\x93NUMPY\x09\x00\x05\x00", "", false, "version 9"},
		{"truncated", "\x93NUMPY\x01", "", false, "npy header"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep, err := inspectBytes(t, []byte(tt.file))
			if tt.errContains != "" {
				if err == nil || !strings.Contains(err.Error(), tt.errContains) {
					t.Errorf("got %v, want an error about %q", err, tt.errContains)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := rep.Tensors[0].DType; got != tt.dtype {
				t.Errorf("dtype: got %s, want %s", got, tt.dtype)
			}
			if (len(rep.Problems) > 0) != tt.problem {
				t.Errorf("problems: got %q, want some: %v", rep.Problems, tt.problem)
			}
		})
	}
}

func safetensorsFile(header string, data []byte) []byte {
	b := binary.LittleEndian.AppendUint64(nil, uint64(len(header)))
	return append(append(b, header...), data...)
}

func TestSafetensors(t *testing.T) {
	t.Parallel()
	data := []byte("abcdefghijklmnopqrs")
	hdr := `{"b":{"dtype":"U8","shape":[3],"data_offsets":[16,19]},"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}}`
	rep, err := inspectBytes(t, safetensorsFile(hdr, data))
	if err != nil {
		t.Fatal(err)
	}
	if rep.Format != FormatSafetensors || len(rep.Tensors) != 2 || rep.Metadata["format"] != "pt" || len(rep.Problems) > 0 {
		t.Fatalf("got %+v", rep)
	}
	a, b := rep.Tensors[0], rep.Tensors[1]
	base := int64(8 + len(hdr))
	if a.Path != "a" || a.DType != "float32" || a.Digest != digest.Of(data[:16]) || a.Offset != base || a.FileOffset != base {
		t.Errorf("a: got %+v", a)
	}
	if b.Path != "b" || b.DType != "uint8" || b.Digest != digest.Of(data[16:19]) || b.Offset != base+16 {
		t.Errorf("b: got %+v", b)
	}

	for name, file := range map[string][]byte{
		"offsets past the data": safetensorsFile(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, []byte("abc")),
		"offsets disagree":      safetensorsFile(`{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,3]}}`, []byte("abc")),
		"negative offset":       safetensorsFile(`{"a":{"dtype":"U8","shape":[2],"data_offsets":[-5,3]}}`, []byte("abc")),
		"unknown dtype":         safetensorsFile(`{"a":{"dtype":"Q9","shape":[2],"data_offsets":[0,2]}}`, []byte("abc")),
		"absurd shape":          safetensorsFile(`{"a":{"dtype":"F64","shape":[4611686018427387904,4],"data_offsets":[0,2]}}`, []byte("abc")),
	} {
		t.Run(name, func(t *testing.T) {
			rep, err := inspectBytes(t, file)
			if err != nil {
				t.Fatal(err)
			}
			if len(rep.Problems) == 0 {
				t.Errorf("got no problems: %+v", rep)
			}
		})
	}
	if _, err := inspectBytes(t, safetensorsFile(`{"a":`, nil)); !errors.Is(err, ErrMalformed) {
		t.Errorf("bad JSON: got %v, want ErrMalformed", err)
	}
	if _, err := inspectBytes(t, safetensorsFile(`{}`, nil)[:9]); !errors.Is(err, ErrFormat) {
		t.Errorf("header length past the file: got %v, want ErrFormat", err)
	}
}

func readFixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testdata, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestBadInput: hostile and damaged files give an error or a report with
// problems, in bounded time and memory; never a panic or a hang.
func TestBadInput(t *testing.T) {
	one := []byte{0, 0, 0x80, 0x3f}
	tensorPickle := func(numel, offset int64, shape, stride []int64) []byte {
		return newPK().raw("}(").str("w").tensor("FloatStorage", "0", numel, offset, shape, stride).raw("u").stop()
	}
	deflatedZip := func(declared uint64) []byte {
		var b bytes.Buffer
		zw := zip.NewWriter(&b)
		var raw bytes.Buffer
		fw, _ := zip.NewWriter(&raw).CreateHeader(&zip.FileHeader{Name: "x", Method: zip.Deflate})
		_, _ = fw.Write(bytes.Repeat([]byte{'N'}, 1<<16))
		w, err := zw.CreateRaw(&zip.FileHeader{Name: "archive/data.pkl", Method: zip.Deflate, CompressedSize64: 100, UncompressedSize64: declared})
		if err != nil {
			t.Fatal(err)
		}
		_, _ = w.Write(make([]byte, 100))
		_ = zw.Close()
		return b.Bytes()
	}
	tests := []struct {
		name    string
		file    []byte
		err     error  // wanted error, or nil for a report
		problem string // wanted in a problem, for a report
	}{
		{"empty file", nil, ErrFormat, ""},
		{"not a checkpoint", []byte("hello world, this is text"), ErrFormat, ""},
		{"truncated zip", readFixture(t, "seed_layout_cuda2.pt")[:10000], ErrMalformed, ""},
		{"zip bomb: declared size far beyond the file", deflatedZip(1 << 40), ErrLimit, ""},
		{"zip without data.pkl", func() []byte {
			var b bytes.Buffer
			zw := zip.NewWriter(&b)
			_, _ = zw.Create("readme.txt")
			_ = zw.Close()
			return b.Bytes()
		}(), ErrFormat, ""},
		{"unknown opcode in data.pkl", torchZip(t, []byte("\x80\x02\xfe."), nil), ErrMalformed, ""},
		{"absurd shape", torchZip(t, tensorPickle(1, 0, []int64{1 << 40, 1 << 40}, []int64{1 << 40, 1}), map[string][]byte{"0": one}), nil, "does not describe"},
		{"negative shape", torchZip(t, tensorPickle(1, 0, []int64{-1}, []int64{1}), map[string][]byte{"0": one}), nil, "does not describe"},
		{"shape beyond storage", torchZip(t, tensorPickle(1, 0, []int64{1 << 30}, []int64{1}), map[string][]byte{"0": one}), nil, "runs past"},
		{"negative stride", torchZip(t, tensorPickle(1, 0, []int64{2}, []int64{-1}), map[string][]byte{"0": one}), nil, "negative stride"},
		{"huge offset", torchZip(t, tensorPickle(1, 1<<62, []int64{1}, []int64{1}), map[string][]byte{"0": one}), nil, "out of range"},
		{"huge stride", torchZip(t, tensorPickle(1, 0, []int64{2}, []int64{1 << 62}), map[string][]byte{"0": one}), nil, "out of range"},
		{"storage missing", torchZip(t, tensorPickle(1, 0, []int64{1}, []int64{1}), nil), nil, "not in the file"},
		{"storage size disagrees", torchZip(t, tensorPickle(2, 0, []int64{1}, []int64{1}), map[string][]byte{"0": one}), nil, "declares 2 elements"},
		{"huge non-contiguous view", torchZip(t, tensorPickle(1, 0, []int64{1 << 40}, []int64{0}), map[string][]byte{"0": one}), nil, "too large to gather"},
		{"many views of one storage", func() []byte {
			p := newPK().raw("](")
			for i := int64(0); i < 100; i++ {
				p.tensor("FloatStorage", "0", 1<<18, i, []int64{1<<18 - 100}, []int64{1})
			}
			return torchZip(t, p.raw("e").stop(), map[string][]byte{"0": make([]byte, 1<<20)})
		}(), nil, "not hashed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			rep, err := inspectBytes(t, tt.file)
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("took %v", d)
			}
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Errorf("got %v, want %v", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(strings.Join(rep.Problems, "\n"), tt.problem) {
				t.Errorf("got problems %q, want one about %q", rep.Problems, tt.problem)
			}
			if ws := Lint(rep); len(ws) == 0 {
				t.Errorf("Lint found nothing wrong")
			}
		})
	}
}

// TestTruncatedFixtures cuts every fixture at many points: each prefix
// gives an error or a report, never a panic.
func TestTruncatedFixtures(t *testing.T) {
	t.Parallel()
	for _, name := range fixtures {
		b := readFixture(t, name)
		for _, n := range []int{0, 1, 8, 16, 100, len(b) / 3, len(b) / 2, len(b) - 100, len(b) - 22, len(b) - 1} {
			if n < 0 || n > len(b) {
				continue
			}
			if rep, err := inspectBytes(t, b[:n]); err == nil && rep == nil {
				t.Errorf("%s[:%d]: no report and no error", name, n)
			}
		}
	}
	// The legacy format keeps storages after the pickles: cut inside them,
	// the report stands with problems.
	b := readFixture(t, "seed_layout_legacy.pt")
	rep, err := inspectBytes(t, b[:len(b)-1000])
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Problems) == 0 {
		t.Errorf("truncated legacy checkpoint: no problems reported")
	}
}

// TestStoredMemberPastEnd: a stored zip member whose declared size runs
// past the end of the file is refused, not read.
func TestStoredMemberPastEnd(t *testing.T) {
	t.Parallel()
	p := newPK().raw("}(").str("w").tensor("FloatStorage", "0", 1, 0, []int64{1}, []int64{1}).raw("u").stop()
	z := torchZip(t, p, map[string][]byte{"0": {1, 2, 3, 4}})
	// Patch data/0's sizes in the central directory to 1 TiB.
	name := []byte("archive/data/0")
	i := bytes.LastIndex(z, name)
	hdr := i - 46 // central directory header start
	if i < 0 || string(z[hdr:hdr+4]) != "PK\x01\x02" {
		t.Fatal("central directory entry not found")
	}
	binary.LittleEndian.PutUint32(z[hdr+20:], 0xfffffff0)
	binary.LittleEndian.PutUint32(z[hdr+24:], 0xfffffff0)
	rep, err := inspectBytes(t, z)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Join(rep.Problems, "\n"), "past the end of the file") {
		t.Errorf("got problems %q", rep.Problems)
	}
}
