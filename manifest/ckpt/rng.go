package ckpt

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"math/big"
	"sort"
	"strconv"

	"github.com/cas-ml/cas/digest"
)

// RNG state kinds.
const (
	// RNGTorchCPU is torch.get_rng_state(): a uint8 tensor of 5056 bytes.
	RNGTorchCPU = "torch_cpu"
	// RNGTorchCUDA is one device's torch.cuda.get_rng_state(): a uint8
	// tensor of 16 bytes (Philox seed and offset, uint64 each).
	RNGTorchCUDA = "torch_cuda"
	// RNGNumpyMT19937 is np.random.get_state(): ('MT19937', uint32[624],
	// pos, has_gauss, cached_gaussian).
	RNGNumpyMT19937 = "numpy_mt19937"
	// RNGNumpyGenerator is a bit generator's state dict, e.g.
	// np.random.default_rng().bit_generator.state.
	RNGNumpyGenerator = "numpy_generator"
	// RNGPython is random.getstate(): (version, 625 ints, gauss_next).
	RNGPython = "python_random"
)

const (
	torchCPUStateLen = 5056
	cudaStateLen     = 16
	mtWords          = 624
)

// RNGState is a random number generator state found in a checkpoint.
type RNGState struct {
	Kind string `json:"kind"`
	Path string `json:"path"`
	// Device is the CUDA device index, for a state found in a list of
	// per-device states.
	Device *int `json:"device,omitempty"`
	// Fingerprint is BLAKE3-256 of the state's canonical encoding
	// (docs/checkpoints.md): equal fingerprints, equal states.
	Fingerprint digest.Digest `json:"fingerprint,omitzero"`
	// Summary is a short description for humans ("MT19937 pos 10").
	Summary string `json:"summary"`
	// Value is the state as parsed (numpy and Python kinds), with arrays
	// turned into lists of their elements; Raw holds the bytes of the
	// torch kinds.
	Value Value  `json:"-"`
	Raw   []byte `json:"-"`
}

// found is a structured RNG state before it has a path.
type found struct {
	kind    string
	value   Value
	summary string
}

func (f found) at(p string) RNGState {
	s := RNGState{Kind: f.kind, Path: p, Summary: f.summary, Value: f.value}
	if enc, err := Canonical(f.value); err == nil {
		s.Fingerprint = digest.Of(enc)
	}
	return s
}

func isUint8Vector(t *TorchTensor, n int64) bool {
	return t.Invalid == "" && t.Storage != nil && t.Storage.Type != nil && t.Storage.Type.DType == "uint8" &&
		len(t.Shape) == 1 && len(t.Stride) == 1 && t.Shape[0] == n && (n == 1 || t.Stride[0] == 1)
}

func isTorchCPUState(t *TorchTensor) bool { return isUint8Vector(t, torchCPUStateLen) }

func isCUDAState(t *TorchTensor) bool { return isUint8Vector(t, cudaStateLen) }

// tensorStateSummary describes a torch state from its bytes. The CPU
// state is CPUGeneratorImplState: the_initial_seed u64, left i32, seeded
// i32, next u64, state[624] u64, …; a CUDA state is seed u64, offset u64.
func tensorStateSummary(kind string, raw []byte, device *int) string {
	le := binary.LittleEndian
	switch kind {
	case RNGTorchCPU:
		return fmt.Sprintf("MT19937 seed %d, left %d", le.Uint64(raw[0:8]), int32(le.Uint32(raw[8:12])))
	case RNGTorchCUDA:
		s := fmt.Sprintf("Philox seed %d offset %d", le.Uint64(raw[0:8]), le.Uint64(raw[8:16]))
		if device != nil {
			s = fmt.Sprintf("device %d, %s", *device, s)
		}
		return s
	}
	return ""
}

// uint32Words reads exactly n 32-bit unsigned words from a uint32 numpy
// array or a sequence of ints.
func uint32Words(v Value, n int) ([]Value, bool) {
	var items []Value
	switch x := v.(type) {
	case *NDArray:
		if x.DType == nil || x.DType.Kind != 'u' || x.DType.Size != 4 || int64(len(x.Data)) != 4*int64(n) {
			return nil, false
		}
		var ok bool
		if items, ok = x.ints(); !ok {
			return nil, false
		}
	default:
		var ok bool
		if items, ok = seqItems(v); !ok {
			return nil, false
		}
	}
	if len(items) != n {
		return nil, false
	}
	for _, it := range items {
		w, ok := it.(int64)
		if !ok || w < 0 || w > math.MaxUint32 {
			return nil, false
		}
	}
	return items, true
}

// intIn reads an int (or bool, which Python counts as one) within [lo, hi].
func intIn(v Value, lo, hi int64) (int64, bool) {
	if b, ok := v.(bool); ok {
		if b {
			return 1, 1 >= lo && 1 <= hi
		}
		return 0, lo <= 0 && 0 <= hi
	}
	n, ok := toInt(v)
	return n, ok && n >= lo && n <= hi
}

// seqRNGState recognises numpy's legacy state tuple and Python's random
// state tuple by their structure.
func seqRNGState(items []Value) (found, bool) {
	switch len(items) {
	case 5: // ('MT19937', uint32[624], pos, has_gauss, cached_gaussian)
		if items[0] != "MT19937" {
			return found{}, false
		}
		key, ok := uint32Words(items[1], mtWords)
		if !ok {
			return found{}, false
		}
		pos, ok1 := intIn(items[2], 0, mtWords)
		hasGauss, ok2 := intIn(items[3], 0, 1)
		gauss, ok3 := items[4].(float64)
		if !ok1 || !ok2 || !ok3 {
			return found{}, false
		}
		s := fmt.Sprintf("MT19937 pos %d", pos)
		if hasGauss == 1 {
			s += ", cached gaussian"
		}
		return found{RNGNumpyMT19937, Tuple{"MT19937", Tuple(key), pos, hasGauss, gauss}, s}, true
	case 3: // (version, (625 ints), gauss_next)
		version, ok := intIn(items[0], 2, 3)
		if !ok {
			return found{}, false
		}
		words, ok := uint32Words(items[1], mtWords+1)
		if !ok || words[mtWords].(int64) > mtWords {
			return found{}, false
		}
		gauss := items[2]
		if _, isFloat := gauss.(float64); gauss != nil && !isFloat {
			return found{}, false
		}
		s := fmt.Sprintf("MT19937 pos %d, version %d", words[mtWords], version)
		if gauss != nil {
			s += ", gauss_next set"
		}
		return found{RNGPython, Tuple{version, Tuple(words), gauss}, s}, true
	}
	return found{}, false
}

// numpyGeneratorState recognises a bit generator's state dict:
// {'bit_generator': NAME, 'state': {...}, …}, with the inner state each
// bit generator has.
func numpyGeneratorState(d *Dict) (found, bool) {
	bg, _ := d.Get("bit_generator")
	name, _ := bg.(string)
	sv, _ := d.Get("state")
	st, ok := sv.(*Dict)
	if !ok {
		return found{}, false
	}
	summary, replace, ok := bitGeneratorState(name, st)
	if !ok {
		return found{}, false
	}
	if hg, ok := d.Get("has_gauss"); ok {
		if n, _ := intIn(hg, 0, 1); n == 1 {
			summary += ", cached gaussian"
		}
	}
	// The value fingerprinted: the dict with arrays replaced by lists.
	inner := &Dict{}
	for i, k := range st.Keys {
		v := st.Values[i]
		if ks, ok := k.(string); ok {
			if r, ok := replace[ks]; ok {
				v = r
			}
		}
		inner.Set(k, v)
	}
	outer := &Dict{}
	for i, k := range d.Keys {
		v := d.Values[i]
		if k == "state" {
			v = inner
		}
		outer.Set(k, v)
	}
	return found{RNGNumpyGenerator, outer, summary}, true
}

// bitGeneratorState checks the inner state of the bit generator name and
// summarises it; replace holds its arrays of words as tuples of ints, by
// key.
func bitGeneratorState(name string, st *Dict) (summary string, replace map[string]Value, ok bool) {
	replace = map[string]Value{}
	switch name {
	case "PCG64", "PCG64DXSM":
		s, _ := st.Get("state")
		if inc, _ := st.Get("inc"); !isInt(s) || !isInt(inc) {
			return "", nil, false
		}
		summary = fmt.Sprintf("%s state %s", name, intString(s))
	case "MT19937":
		key, ok := stateWords(st, "key", mtWords, 4)
		pos, _ := st.Get("pos")
		if !ok || !isInt(pos) {
			return "", nil, false
		}
		replace["key"] = Tuple(key)
		summary = fmt.Sprintf("MT19937 pos %s", intString(pos))
	case "Philox":
		counter, ok1 := stateWords(st, "counter", 4, 8)
		key, ok2 := stateWords(st, "key", 2, 8)
		if !ok1 || !ok2 {
			return "", nil, false
		}
		replace["counter"], replace["key"] = Tuple(counter), Tuple(key)
		summary = fmt.Sprintf("Philox counter %s key %s", intList(counter), intList(key))
		if b, ok := stateWords(st, "buffer", 4, 8); ok {
			replace["buffer"] = Tuple(b)
		}
	case "SFC64":
		s, ok := stateWords(st, "state", 4, 8)
		if !ok {
			return "", nil, false
		}
		replace["state"] = Tuple(s)
		summary = fmt.Sprintf("SFC64 state %s", intList(s))
	default:
		return "", nil, false
	}
	return summary, replace, true
}

// isInt reports whether v is a Python int.
func isInt(v Value) bool {
	switch v.(type) {
	case int64, *big.Int:
		return true
	}
	return false
}

// stateWords returns st[k] as n ints: an array of n unsigned words of size
// bytes, or a sequence of n ints.
func stateWords(st *Dict, k string, n int, size int64) ([]Value, bool) {
	v, _ := st.Get(k)
	if x, ok := v.(*NDArray); ok {
		if x.DType == nil || x.DType.Kind != 'u' || x.DType.Size != size || int64(len(x.Data)) != size*int64(n) {
			return nil, false
		}
		items, ok := x.ints()
		return items, ok && len(items) == n
	}
	items, ok := seqItems(v)
	if !ok || len(items) != n {
		return nil, false
	}
	for _, it := range items {
		if !isInt(it) {
			return nil, false
		}
	}
	return items, true
}

func intString(v Value) string {
	switch x := v.(type) {
	case int64:
		return strconv.FormatInt(x, 10)
	case *big.Int:
		return x.String()
	}
	return "?"
}

func intList(items []Value) string {
	var b bytes.Buffer
	b.WriteByte('[')
	for i, it := range items {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(intString(it))
	}
	b.WriteByte(']')
	return b.String()
}

// Canonical returns the canonical encoding of a state value that
// fingerprints hash (docs/checkpoints.md):
//
//	None        N
//	True, False T, F
//	int         I <decimal> ;
//	float       D <8 bytes: IEEE 754 binary64, little-endian>
//	str         S <decimal byte length> : <UTF-8 bytes>
//	bytes       B <decimal length> : <bytes>
//	tuple, list L <decimal count> : <items>
//	dict        M <decimal count> : <key value>… ordered by the keys' encodings
//
// Integer numpy arrays encode as lists of their elements, so a state
// holds the same fingerprint whether its words sit in an array or a list.
//
// The encoding of a value with more than 65536 nodes, nested deeper
// than 64 or longer than 64 MiB is refused with ErrLimit.
func Canonical(v Value) (_ []byte, err error) {
	defer wrapError(&err)
	c := &canonEncoder{budget: maxCanonNodes}
	if err := c.canon(&c.out, v, 0); err != nil {
		return nil, err
	}
	return c.out.Bytes(), nil
}

const (
	maxCanonNodes = 1 << 16
	maxCanonBytes = 64 << 20
)

type canonEncoder struct {
	out    bytes.Buffer
	budget int
	size   int
}

func (c *canonEncoder) canon(b *bytes.Buffer, v Value, depth int) error {
	c.budget--
	if depth > 64 || c.budget < 0 || c.size+b.Len() > maxCanonBytes {
		return limit("state too large or nested too deeply for a canonical encoding")
	}
	switch x := v.(type) {
	case nil:
		b.WriteByte('N')
	case bool:
		if x {
			b.WriteByte('T')
		} else {
			b.WriteByte('F')
		}
	case int64:
		fmt.Fprintf(b, "I%d;", x)
	case *big.Int:
		fmt.Fprintf(b, "I%s;", x.String())
	case float64:
		b.WriteByte('D')
		_ = binary.Write(b, binary.LittleEndian, math.Float64bits(x))
	case string:
		fmt.Fprintf(b, "S%d:%s", len(x), x)
	case []byte:
		fmt.Fprintf(b, "B%d:", len(x))
		b.Write(x)
	case Tuple:
		return c.seq(b, x, depth)
	case *List:
		return c.seq(b, x.Items, depth)
	case *NDArray:
		if x.DType == nil || x.DType.Size <= 0 || int64(len(x.Data))/x.DType.Size > int64(c.budget) {
			return limit("array too large for a canonical encoding")
		}
		items, ok := x.ints()
		if !ok {
			return fmt.Errorf("%w: no canonical form for a %s array", ErrMalformed, x.DType.Name())
		}
		return c.seq(b, items, depth)
	case *Dict:
		type kv struct{ k, v []byte }
		entries := make([]kv, len(x.Keys))
		for i := range x.Keys {
			var kb, vb bytes.Buffer
			if err := c.canon(&kb, x.Keys[i], depth+1); err != nil {
				return err
			}
			if err := c.canon(&vb, x.Values[i], depth+1); err != nil {
				return err
			}
			entries[i] = kv{kb.Bytes(), vb.Bytes()}
			c.size += kb.Len() + vb.Len()
		}
		sort.Slice(entries, func(i, j int) bool { return bytes.Compare(entries[i].k, entries[j].k) < 0 })
		fmt.Fprintf(b, "M%d:", len(entries))
		for _, e := range entries {
			b.Write(e.k)
			b.Write(e.v)
		}
	default:
		return fmt.Errorf("%w: no canonical form for %s", ErrMalformed, typeName(v))
	}
	return nil
}

func (c *canonEncoder) seq(b *bytes.Buffer, items []Value, depth int) error {
	fmt.Fprintf(b, "L%d:", len(items))
	for _, it := range items {
		if err := c.canon(b, it, depth+1); err != nil {
			return err
		}
	}
	return nil
}
