package ckpt

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"math/big"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/cas-ml/cas/digest"
)

func digestOf(b []byte) digest.Digest { return digest.Of(b) }

// describe renders a Value the way testdata/ckpt/pickle/gen.py renders
// the Python value it pickled, so that CPython's own pickles check the
// Decoder.
func describe(v Value, onPath map[any]bool) string {
	seq := func(open, close string, items []Value) string {
		parts := make([]string, len(items))
		for i, it := range items {
			parts[i] = describe(it, onPath)
		}
		return open + strings.Join(parts, ",") + close
	}
	switch x := v.(type) {
	case nil:
		return "N"
	case bool:
		return map[bool]string{true: "T", false: "F"}[x]
	case int64:
		return fmt.Sprintf("i%d", x)
	case *big.Int:
		return "i" + x.String()
	case float64:
		var b [8]byte
		binary.LittleEndian.PutUint64(b[:], math.Float64bits(x))
		return "f" + hex.EncodeToString(b[:])
	case string:
		return "s" + hex.EncodeToString([]byte(x))
	case []byte:
		return "b" + hex.EncodeToString(x)
	case Tuple:
		return seq("(", ")", x)
	}
	if onPath[v] {
		return "<cycle>"
	}
	onPath[v] = true
	defer delete(onPath, v)
	switch x := v.(type) {
	case *List:
		return seq("[", "]", x.Items)
	case *Set:
		parts := make([]string, len(x.Items))
		for i, it := range x.Items {
			parts[i] = describe(it, onPath)
		}
		sort.Strings(parts)
		prefix := ""
		if x.Frozen {
			prefix = "f"
		}
		return prefix + "{" + strings.Join(parts, ",") + "}"
	case *Dict:
		parts := make([]string, len(x.Keys))
		for i := range x.Keys {
			parts[i] = describe(x.Keys[i], onPath) + ":" + describe(x.Values[i], onPath)
		}
		return "{" + strings.Join(parts, ",") + "}"
	case *Object:
		return "O" + x.Module + "." + x.Name + describe(x.State, onPath)
	}
	return fmt.Sprintf("<%T>", v)
}

// TestDecodeCPythonPickles decodes one value pickled by CPython with every
// protocol, 0 to 5: all the opcodes CPython writes for ints of every
// size, floats, str, bytes, bytearray, tuples, lists, sets, frozensets,
// dicts, OrderedDict, shared and self-referencing containers, and an
// instance of an unknown class.
func TestDecodeCPythonPickles(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(testdata, "pickle")
	want, err := os.ReadFile(filepath.Join(dir, "expected.txt"))
	if err != nil {
		t.Fatal(err)
	}
	for p := 0; p <= 5; p++ {
		t.Run(fmt.Sprintf("protocol %d", p), func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("p%d.pkl", p)))
			if err != nil {
				t.Fatal(err)
			}
			d := NewDecoder(bytes.NewReader(b))
			v, err := d.Decode()
			if err != nil {
				t.Fatal(err)
			}
			if got := describe(v, map[any]bool{}); got != strings.TrimSpace(string(want)) {
				t.Errorf("got  %s\nwant %s", got, want)
			}
			if d.Offset() != int64(len(b)) {
				t.Errorf("offset after STOP: got %d, want %d", d.Offset(), len(b))
			}
			// The shared list is one value; the recursive list holds itself.
			dict := v.(*Dict)
			shared, _ := dict.Get("shared")
			if s := shared.(Tuple); s[0] != s[1] {
				t.Errorf("memoized list decoded as two values")
			}
			rec, _ := dict.Get("rec")
			if l := rec.(*List); l.Items[0] != l {
				t.Errorf("recursive list does not contain itself")
			}
		})
	}
}

// pk builds pickles opcode by opcode, for what CPython does not write.
type pk struct{ bytes.Buffer }

func newPK() *pk { p := &pk{}; p.WriteString("\x80\x02"); return p }

func (p *pk) raw(s string) *pk { p.WriteString(s); return p }

func (p *pk) int(n int64) *pk {
	if n >= math.MinInt32 && n <= math.MaxInt32 {
		p.WriteByte('J')
		_ = binary.Write(p, binary.LittleEndian, int32(n))
		return p
	}
	p.WriteString("\x8a\x08")
	_ = binary.Write(p, binary.LittleEndian, n)
	return p
}

func (p *pk) float(f float64) *pk {
	p.WriteByte('G')
	_ = binary.Write(p, binary.BigEndian, math.Float64bits(f))
	return p
}

func (p *pk) str(s string) *pk {
	p.WriteByte('X')
	_ = binary.Write(p, binary.LittleEndian, uint32(len(s)))
	p.WriteString(s)
	return p
}

func (p *pk) bytes(b []byte) *pk {
	p.WriteByte('B')
	_ = binary.Write(p, binary.LittleEndian, uint32(len(b)))
	p.Write(b)
	return p
}

func (p *pk) global(mod, name string) *pk { return p.raw("c" + mod + "\n" + name + "\n") }

func (p *pk) ints(ns ...int64) *pk {
	p.raw("(")
	for _, n := range ns {
		p.int(n)
	}
	return p.raw("t")
}

// tensor pickles torch._utils._rebuild_tensor_v2 of storage KEY.
func (p *pk) tensor(storageType, key string, numel, offset int64, shape, stride []int64) *pk {
	p.global("torch._utils", "_rebuild_tensor_v2").raw("((").str("storage").global("torch", storageType).
		str(key).str("cpu").int(numel).raw("tQ").int(offset).ints(shape...).ints(stride...).raw("\x89}tR")
	return p
}

// ndarray pickles a numpy array as numpy does: _reconstruct then BUILD.
func (p *pk) ndarray(descr string, shape []int64, data []byte) *pk {
	p.global("numpy.core.multiarray", "_reconstruct").raw("(").global("numpy", "ndarray").ints(0).raw("C\x01btR")
	p.raw("(").int(1).ints(shape...).global("numpy", "dtype").raw("(").str(descr).raw("\x89\x88tR")
	p.raw("(").int(3).str("<").raw("NNN").int(-1).int(-1).int(0).raw("tb")
	return p.raw("\x89").bytes(data).raw("tb")
}

func (p *pk) stop() []byte { p.WriteByte('.'); return p.Bytes() }

func decode(t *testing.T, b []byte) (Value, error) {
	t.Helper()
	return NewDecoder(bytes.NewReader(b)).Decode()
}

// TestDecodeOpcodes covers the opcodes CPython 3 does not write for
// plain values: Python 2 strings, INST and OBJ, POP, POP_MARK, DUP,
// persistent IDs, long memo indices, extensions, LONG4, the 8-byte
// length forms, NEWOBJ_EX.
func TestDecodeOpcodes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, pickle, want string
	}{
		{"STRING escapes", "S'a\\x41\\n\\'\\\\\\101'\n.", "s" + hex.EncodeToString([]byte("aA\n'\\A"))},
		{"STRING double-quoted", "S\"x\"\n.", "s78"},
		{"BINSTRING", "T\x02\x00\x00\x00hi.", "s6869"},
		{"SHORT_BINSTRING", "U\x02hi.", "s6869"},
		{"UNICODE escapes", "V\\u00e9\\U0001f600x\n.", "s" + hex.EncodeToString([]byte("é😀x"))},
		{"INT booleans", "I01\n.", "T"},
		{"INT big", "I123456789012345678901234567890\n.", "i123456789012345678901234567890"},
		{"LONG", "L-5L\n.", "i-5"},
		{"FLOAT", "F-2.5\n.", describe(-2.5, nil)},
		{"LONG4", "\x8b\x02\x00\x00\x00\xff\x7f.", "i32767"},
		{"LONG1 zero", "\x8a\x00.", "i0"},
		{"LONG1 negative", "\x8a\x01\xff.", "i-1"},
		{"LONG1 big negative", "\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x00\x80.", "i-2361183241434822606848"},
		{"BINUNICODE8", "\x8d\x01\x00\x00\x00\x00\x00\x00\x00z.", "s7a"},
		{"BINBYTES8", "\x8e\x01\x00\x00\x00\x00\x00\x00\x00z.", "b7a"},
		{"BYTEARRAY8 READONLY_BUFFER", "\x96\x01\x00\x00\x00\x00\x00\x00\x00z\x98.", "b7a"},
		{"POP", "K\x01K\x020.", "i1"},
		{"POP of an empty mark", "K\x01(0.", "i1"},
		{"POP_MARK", "K\x01(K\x02K\x031.", "i1"},
		{"DUP", "]2\x86.", "([],[])"},
		{"LONG_BINPUT LONG_BINGET", "K\x07r\x00\x01\x00\x000j\x00\x01\x00\x00.", "i7"},
		{"PUT GET text", "K\x07p12\n0g12\n.", "i7"},
		{"MEMOIZE", "K\x07\x940h\x00.", "i7"},
		{"INST", "(K\x01imymod\nMyClass\n.", "Omymod.MyClassN"},
		{"OBJ with BUILD", "(cmymod\nC\nK\x01o}b.", "Omymod.C{}"},
		{"STACK_GLOBAL NEWOBJ_EX", "\x8c\x01m\x8c\x01C\x93)}\x92.", "Om.CN"},
		{"NEWOBJ", "cm\nC\n)\x81.", "Om.CN"},
		{"EXT1", "\x82\x05).", "()"},
		{"PERSID without a loader", "Pkey\n.", "Opickle.persistent_idN"},
		{"BINPERSID without a loader", "K\x01Q.", "Opickle.persistent_idN"},
		{"DICT", "(K\x01K\x02d.", "{i1:i2}"},
		{"LIST", "(K\x01l.", "[i1]"},
		{"FRAME", "\x95\x02\x00\x00\x00\x00\x00\x00\x00N.", "N"},
		{"duplicate dict key", "}(X\x01\x00\x00\x00aK\x01X\x01\x00\x00\x00aK\x02u.", "{s61:i2}"},
		{"py2 builtins", "c__builtin__\nset\n(]K\x01atR.", "{i1}"},
		{"bytes via _codecs", "c_codecs\nencode\n(X\x02\x00\x00\x00\xc3\xbfX\x06\x00\x00\x00latin1tR.", "bff"},
		{"unknown class REDUCE", "cos\nsystem\n(X\x02\x00\x00\x00rmtR.", "Oos.systemN"},
		{"getattr stays opaque", "cbuiltins\ngetattr\n(K\x01X\x01\x00\x00\x00xtR.", "Obuiltins.getattrN"},
		{"BUILD on an int is ignored", "K\x01K\x02b.", "i1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := decode(t, []byte(tt.pickle))
			if err != nil {
				t.Fatal(err)
			}
			if got := describe(v, map[any]bool{}); got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
}

// TestDecodeErrors: malformed pickles fail with a *PickleError wrapping
// ErrMalformed or ErrLimit, quickly and without large allocations.
func TestDecodeErrors(t *testing.T) {
	t.Parallel()
	small := DefaultLimits
	small.MaxElements, small.MaxMemo, small.MaxBytes = 1000, 10, 1000
	tests := []struct {
		name   string
		pickle string
		want   error
	}{
		{"empty", "", ErrMalformed},
		{"unknown opcode", "\x80\x02\xff.", ErrMalformed},
		{"no STOP", "\x80\x02K\x01", ErrMalformed},
		{"stack underflow", "0.", ErrMalformed},
		{"STOP on empty stack", ".", ErrMalformed},
		{"APPEND to int", "K\x01K\x02a.", ErrMalformed},
		{"SETITEM on list", "]K\x01K\x02s.", ErrMalformed},
		{"SETITEMS odd", "}(K\x01u.", ErrMalformed},
		{"TUPLE without mark", "K\x01t.", ErrMalformed},
		{"undefined memo", "h\x05.", ErrMalformed},
		{"protocol 6", "\x80\x06N.", ErrMalformed},
		{"out-of-band buffer", "\x97.", ErrMalformed},
		{"REDUCE of an int", "K\x01)R.", ErrMalformed},
		{"bad FLOAT", "Fx\n.", ErrMalformed},
		{"unquoted STRING", "Sabc\n.", ErrMalformed},
		{"huge BINBYTES8 length", "\x8e\xff\xff\xff\xff\xff\xff\xff\x7f", ErrLimit},
		{"BINUNICODE longer than the input", "X\x00\x02\x00\x00abc", ErrMalformed},
		{"bytes budget", "B\xe9\x03\x00\x00" + strings.Repeat("a", 1001) + ".", ErrLimit},
		{"huge LONG4", "\x8b\xff\xff\xff\x7f", ErrLimit},
		{"integer text too long", "I" + strings.Repeat("9", 5000) + "\n.", ErrLimit},
		{"text line too long", "cmod\n" + strings.Repeat("n", 70000) + "\n.", ErrLimit},
		{"too many values", strings.Repeat("N", 1001) + ".", ErrLimit},
		{"too many marks", strings.Repeat("(", 1001) + ".", ErrLimit},
		{"memo full", strings.Repeat("Nq\x00", 1) + "Nq\x01Nq\x02Nq\x03Nq\x04Nq\x05Nq\x06Nq\x07Nq\x08Nq\x09Nq\x0a.", ErrLimit},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := NewDecoder(strings.NewReader(tt.pickle))
			d.Limits = small
			_, err := d.Decode()
			var pe *PickleError
			if !errors.As(err, &pe) || !errors.Is(err, tt.want) {
				t.Errorf("got %v, want a PickleError wrapping %v", err, tt.want)
			}
		})
	}
}

// TestDecodeHostileSizes: deeply nested and cyclic pickles decode and
// walk in bounded time and memory.
func TestDecodeHostileSizes(t *testing.T) {
	t.Run("deep nesting walk", func(t *testing.T) {
		// L0 = []; Li = [L(i-1)] for 5000 levels, via the memo: a chain
		// the walker must refuse beyond MaxDepth, not recurse into.
		var p bytes.Buffer
		p.WriteString("\x80\x02]q\x00")
		for i := 0; i < 5000; i++ {
			p.WriteString("]h\x00aq\x00")
		}
		p.WriteString(".")
		start := time.Now()
		_, err := inspectBytes(t, p.Bytes())
		if !errors.Is(err, ErrLimit) || !strings.Contains(err.Error(), "nested deeper") {
			t.Errorf("got %v, want a nesting limit error", err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("took %v", d)
		}
	})
	t.Run("cycles", func(t *testing.T) {
		// a = []; a.append(a); d = {}; d['d'] = d; d['a'] = a; obj.state = obj
		p := newPK().raw("]q\x00h\x00a").raw("}q\x01h\x01X\x01\x00\x00\x00dh\x01sX\x01\x00\x00\x00ah\x00s").
			raw("cm\nC\n)\x81q\x02h\x02b").raw("\x87").stop()
		start := time.Now()
		rep, err := inspectBytes(t, p)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Format != FormatPickle || len(rep.Tensors) != 0 {
			t.Errorf("got %+v", rep)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("took %v", d)
		}
	})
	t.Run("shared references explode", func(t *testing.T) {
		// t0 = (); t(i+1) = (ti, ti): 2^60 paths, 60 tuples.
		p := newPK().raw(")")
		for i := 0; i < 60; i++ {
			p.raw("2\x86")
		}
		start := time.Now()
		_, err := inspectBytes(t, p.stop())
		if !errors.Is(err, ErrLimit) {
			t.Errorf("got %v, want ErrLimit", err)
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("took %v", d)
		}
	})
}

// TestLargeArrayBecomesBlob: a numpy array larger than MaxBlob inside a
// pickle is hashed while streaming, never held, and gets the same digest
// whether it travels as bytes (protocol 3+) or as a latin-1 str
// (protocol 2).
func TestLargeArrayBecomesBlob(t *testing.T) {
	t.Parallel()
	data := make([]byte, 4096)
	for i := range data {
		data[i] = byte(i * 7)
	}
	asBytes := newPK().raw("}").str("arr").ndarray("<u4", []int64{1024}, data).raw("s").stop()
	// The same array, its bytes as _codecs.encode(str, 'latin1').
	var latin1 strings.Builder
	for _, c := range data {
		latin1.WriteRune(rune(c))
	}
	asStr := bytes.Replace(asBytes, append([]byte{'B', 0, 16, 0, 0}, data...),
		newPK().global("_codecs", "encode").raw("(").str(latin1.String()).str("latin1").raw("tR").Bytes()[2:], 1)
	if bytes.Equal(asStr, asBytes) {
		t.Fatal("test pickle not rewritten")
	}
	lim := DefaultLimits
	lim.MaxBlob = 1000
	for name, b := range map[string][]byte{"bytes": asBytes, "latin-1 str": asStr} {
		t.Run(name, func(t *testing.T) {
			for _, l := range []Limits{DefaultLimits, lim} {
				rep, err := inspectLimits(bytes.NewReader(b), int64(len(b)), "t", l)
				if err != nil {
					t.Fatal(err)
				}
				if len(rep.Tensors) != 1 {
					t.Fatalf("got %d tensors", len(rep.Tensors))
				}
				got := rep.Tensors[0]
				if got.Digest != digest.Of(data) || got.Bytes != 4096 || got.DType != "uint32" || got.Path != "arr" {
					t.Errorf("MaxBlob %d: got %+v", l.MaxBlob, got)
				}
			}
		})
	}
}

// torchZip writes a torch zip checkpoint around a data.pkl and storages.
func torchZip(t *testing.T, pkl []byte, storages map[string][]byte) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	add := func(name string, data []byte) {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: "archive/" + name, Method: zip.Store})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(data); err != nil {
			t.Fatal(err)
		}
	}
	add("data.pkl", pkl)
	keys := make([]string, 0, len(storages))
	for k := range storages {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		add("data/"+k, storages[k])
	}
	add("version", []byte("3\n"))
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}
