package ckpt

import (
	"archive/zip"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"math/big"
	"strconv"
	"strings"
)

// NPDType is a numpy dtype: numpy.dtype(descr, align, copy) plus the byte
// order its BUILD state sets.
type NPDType struct {
	Kind  byte  // b i u f c O S U V M m
	Size  int64 // bytes per element (0 when unknown)
	Order byte  // '<', '>', '|' (not applicable) or '=' (native)
	Descr string
}

// parseDescr reads a dtype string such as "<f4", "u4", "|b1", "O8".
func parseDescr(s string) *NPDType {
	t := &NPDType{Descr: s, Order: '='}
	if s != "" && strings.ContainsRune("<>|=", rune(s[0])) {
		t.Order, s = s[0], s[1:]
	}
	if s == "" {
		return t
	}
	t.Kind = s[0]
	if n, err := strconv.ParseInt(s[1:], 10, 64); err == nil && n >= 0 && n <= 1<<20 {
		t.Size = n
		if t.Kind == 'U' {
			t.Size *= 4
		}
	}
	if t.Kind == 'b' && s == "b" {
		t.Size = 1
	}
	return t
}

// SetState takes the dtype's pickled state (version, byteorder, …).
func (t *NPDType) SetState(state Value) error {
	if st, ok := state.(Tuple); ok && len(st) >= 2 {
		if o, ok := st[1].(string); ok && len(o) == 1 {
			t.Order = o[0]
		}
	}
	return nil
}

// Name is the dtype's canonical name, shared with torch and safetensors
// ("float32", "uint8", …), or "numpy:DESCR" for what has none.
func (t *NPDType) Name() string {
	names := map[string]string{
		"b1": "bool", "i1": "int8", "i2": "int16", "i4": "int32", "i8": "int64",
		"u1": "uint8", "u2": "uint16", "u4": "uint32", "u8": "uint64",
		"f2": "float16", "f4": "float32", "f8": "float64",
		"c8": "complex64", "c16": "complex128",
	}
	if n, ok := names[string(t.Kind)+strconv.FormatInt(t.Size, 10)]; ok {
		return n
	}
	return "numpy:" + t.Descr
}

// bigEndian says the elements are stored big-endian.
func (t *NPDType) bigEndian() bool { return t.Order == '>' && t.Size > 1 }

// NDArray is a numpy array rebuilt by numpy.core.multiarray._reconstruct
// and BUILD. Its bytes are kept when the pickle held them in memory
// (Data), else only their digest (Blob).
type NDArray struct {
	DType   *NPDType
	Shape   []int64
	Fortran bool
	Data    []byte
	Blob    *Blob
	// Items hold the elements of an object array, pickled one by one.
	Items []Value
	// BadShape says why Shape could not be read (a dimension beyond 64
	// bits); the array is listed with a problem, not hashed.
	BadShape string
}

// SetState takes (version, shape, dtype, is_fortran, rawdata), or the
// version-less 4-tuple of old numpy.
func (a *NDArray) SetState(state Value) error {
	st, ok := state.(Tuple)
	if !ok {
		return nil
	}
	if len(st) == 5 {
		st = st[1:]
	}
	if len(st) != 4 {
		return nil
	}
	if a.Shape, ok = toInts(st[0]); !ok {
		a.BadShape = fmt.Sprintf("shape %s is not a sequence of 64-bit integers", intsString(st[0]))
	}
	a.DType, _ = st[1].(*NPDType)
	a.Fortran, _ = st[2].(bool)
	switch raw := st[3].(type) {
	case []byte:
		a.Data = raw
	case string: // Python 2 str
		a.Data = []byte(raw)
	case *Blob:
		a.Blob = raw
	default:
		a.Items, _ = seqItems(raw)
	}
	return nil
}

// numel is the element count, false if the shape is invalid or overflows.
func numel(shape []int64) (int64, bool) {
	n := int64(1)
	for _, d := range shape {
		var ok bool
		if d < 0 {
			return 0, false
		}
		if n, ok = mulNonNeg(n, d); !ok {
			return 0, false
		}
	}
	return n, true
}

// ints reads an integer array's elements as int64 (uint64 beyond int64
// become *big.Int), false for other dtypes or a size mismatch.
func (a *NDArray) ints() ([]Value, bool) {
	if a.DType == nil || (a.DType.Kind != 'i' && a.DType.Kind != 'u' && a.DType.Kind != 'b') || a.Data == nil {
		return nil, false
	}
	n, ok := numel(a.Shape)
	size := a.DType.Size
	if !ok || size <= 0 || size > 8 || n*size != int64(len(a.Data)) {
		return nil, false
	}
	out := make([]Value, n)
	for i := range out {
		b := a.Data[int64(i)*size : int64(i+1)*size]
		var u uint64
		for j := range b {
			k := j
			if !a.DType.bigEndian() {
				k = len(b) - 1 - j
			}
			u = u<<8 | uint64(b[k])
		}
		switch {
		case a.DType.Kind == 'b':
			out[i] = u != 0
		case a.DType.Kind == 'i':
			shift := uint(64 - 8*size)
			out[i] = int64(u<<shift) >> shift
		case u > math.MaxInt64:
			out[i] = new(big.Int).SetUint64(u)
		default:
			out[i] = int64(u)
		}
	}
	return out, true
}

// scalar is numpy.core.multiarray.scalar(dtype, bytes): a numpy scalar as
// a Python number where the dtype allows.
func scalar(args Tuple) Value {
	if len(args) < 2 {
		return nil
	}
	dt, ok := args[0].(*NPDType)
	if !ok {
		return nil
	}
	var data []byte
	switch b := args[1].(type) {
	case []byte:
		data = b
	case string:
		data = []byte(b)
	default:
		return nil
	}
	if int64(len(data)) != dt.Size {
		return nil
	}
	a := &NDArray{DType: dt, Shape: []int64{}, Data: data}
	if v, ok := a.ints(); ok {
		return v[0]
	}
	if dt.Kind == 'f' && (dt.Size == 4 || dt.Size == 8) {
		var order binary.ByteOrder = binary.LittleEndian
		if dt.bigEndian() {
			order = binary.BigEndian
		}
		if dt.Size == 4 {
			return float64(math.Float32frombits(order.Uint32(data)))
		}
		return math.Float64frombits(order.Uint64(data))
	}
	return nil
}

func init() {
	for _, mod := range []string{"numpy.core.multiarray", "numpy._core.multiarray"} {
		register(mod, "_reconstruct", func(Tuple) Value { return &NDArray{} })
		register(mod, "scalar", scalar)
	}
	register("numpy", "dtype", func(args Tuple) Value {
		if len(args) < 1 {
			return nil
		}
		if s, ok := args[0].(string); ok {
			return parseDescr(s)
		}
		return nil
	})
}

// npyHeader is what an .npy file's header says.
type npyHeader struct {
	dtype   *NPDType
	descr   Value
	shape   []int64
	fortran bool
	dataOff int64
	// badShape says why a shape that is a tuple could not be read.
	badShape string
}

const maxNpyHeader = 1 << 20

// readNpyHeader parses the magic, version and header dict at the start of
// an .npy stream.
func readNpyHeader(r io.Reader) (*npyHeader, error) {
	short := fmt.Errorf("%w: npy header: %w", ErrMalformed, io.ErrUnexpectedEOF)
	var pre [8]byte
	if _, err := io.ReadFull(r, pre[:]); err != nil {
		return nil, short
	}
	if string(pre[:6]) != "\x93NUMPY" {
		return nil, fmt.Errorf("%w: not an npy file", ErrFormat)
	}
	var hlen, off int64
	switch pre[6] {
	case 1:
		var l [2]byte
		if _, err := io.ReadFull(r, l[:]); err != nil {
			return nil, short
		}
		hlen, off = int64(binary.LittleEndian.Uint16(l[:])), 10
	case 2, 3:
		var l [4]byte
		if _, err := io.ReadFull(r, l[:]); err != nil {
			return nil, short
		}
		hlen, off = int64(binary.LittleEndian.Uint32(l[:])), 12
	default:
		return nil, fmt.Errorf("%w: npy format version %d.%d", ErrMalformed, pre[6], pre[7])
	}
	if hlen > maxNpyHeader {
		return nil, fmt.Errorf("%w: npy header of %d bytes", ErrLimit, hlen)
	}
	text := make([]byte, hlen)
	if _, err := io.ReadFull(r, text); err != nil {
		return nil, short
	}
	v, err := parsePyLiteral(string(text))
	if err != nil {
		return nil, fmt.Errorf("npy header: %w", err)
	}
	d, ok := v.(*Dict)
	if !ok {
		return nil, fmt.Errorf("%w: npy header is a %s, not a dict", ErrMalformed, typeName(v))
	}
	h := &npyHeader{dataOff: off + hlen}
	h.descr, _ = d.Get("descr")
	if s, ok := h.descr.(string); ok {
		h.dtype = parseDescr(s)
	}
	sv, _ := d.Get("shape")
	if h.shape, ok = toInts(sv); !ok {
		if _, isSeq := seqItems(sv); !isSeq {
			return nil, fmt.Errorf("%w: npy shape %s", ErrMalformed, typeName(sv))
		}
		h.badShape = fmt.Sprintf("shape %s is not a sequence of 64-bit integers", intsString(sv))
	}
	fo, _ := d.Get("fortran_order")
	h.fortran, _ = fo.(bool)
	return h, nil
}

// npyTensor describes the array of an .npy stream whose bytes are g.
func (in *input) npyTensor(rep *Report, p string, g region, storage string) {
	rc, err := g.open(0, min(g.size, maxNpyHeader+16))
	if err != nil {
		rep.problem("%s: %v", displayPath(p), err)
		return
	}
	h, err := readNpyHeader(rc)
	rc.Close()
	if err != nil {
		rep.problem("%s: %v", displayPath(p), err)
		return
	}
	t := Tensor{Path: p, Shape: nonNil(h.shape), Storage: storage, Offset: h.dataOff}
	switch {
	case h.dtype == nil:
		t.DType = "numpy:" + fmt.Sprint(h.descr)
		rep.problem("%s: structured dtype not inspected", displayPath(p))
	case h.dtype.Kind == 'O':
		t.DType = "object"
		rep.problem("%s: object array (pickled Python objects) not inspected", displayPath(p))
	default:
		t.DType = h.dtype.Name()
		if h.dtype.bigEndian() {
			t.Endian = "big"
		}
	}
	if h.badShape != "" {
		rep.problem("%s: %s", displayPath(p), h.badShape)
	}
	if h.badShape != "" || h.dtype == nil || h.dtype.Kind == 'O' || h.dtype.Size == 0 {
		rep.Tensors = append(rep.Tensors, t)
		return
	}
	stride := contiguousStrides(h.shape)
	if h.fortran {
		stride = fortranStrides(h.shape)
	}
	in.hashTensor(rep, &t, g, h.dataOff, h.dtype.Size, 0, h.shape, stride)
	rep.Tensors = append(rep.Tensors, t)
}

func (in *input) readNpy() (*Report, error) {
	rep := &Report{Format: FormatNpy}
	in.npyTensor(rep, "", region{ra: in.r, size: in.size}, "")
	if len(rep.Tensors) == 0 {
		return nil, fmt.Errorf("%s", strings.Join(rep.Problems, "; "))
	}
	return rep, nil
}

// readNpz reads an .npz: a zip of .npy members, deflated or stored.
func (in *input) readNpz(zr *zip.Reader) (*Report, error) {
	rep := &Report{Format: FormatNpz}
	for _, f := range zr.File {
		if !strings.HasSuffix(f.Name, ".npy") {
			continue
		}
		g, err := memberRegion(in, f)
		if err != nil {
			rep.problem("%s: %v", f.Name, err)
			continue
		}
		in.npyTensor(rep, strings.TrimSuffix(f.Name, ".npy"), g, f.Name)
	}
	return rep, nil
}

func contiguousStrides(shape []int64) []int64 {
	st := make([]int64, len(shape))
	s := int64(1)
	for i := len(shape) - 1; i >= 0; i-- {
		st[i] = s
		s *= max(shape[i], 1)
	}
	return st
}

func fortranStrides(shape []int64) []int64 {
	st := make([]int64, len(shape))
	s := int64(1)
	for i := range shape {
		st[i] = s
		s *= max(shape[i], 1)
	}
	return st
}

// parsePyLiteral reads the Python literal of an .npy header: dicts,
// tuples, lists, strings, ints, True, False, None.
func parsePyLiteral(s string) (Value, error) {
	p := &litParser{s: s}
	v, err := p.value(0)
	if err != nil {
		return nil, err
	}
	p.space()
	if p.i != len(p.s) {
		return nil, fmt.Errorf("%w: trailing text in %q", ErrMalformed, s)
	}
	return v, nil
}

type litParser struct {
	s string
	i int
}

func (p *litParser) space() {
	for p.i < len(p.s) && strings.ContainsRune(" \t\r\n", rune(p.s[p.i])) {
		p.i++
	}
}

func (p *litParser) value(depth int) (Value, error) {
	if depth > 32 {
		return nil, fmt.Errorf("%w: npy header nests too deeply", ErrLimit)
	}
	p.space()
	if p.i >= len(p.s) {
		return nil, fmt.Errorf("%w: npy header ends early", ErrMalformed)
	}
	switch c := p.s[p.i]; c {
	case '{':
		p.i++
		d := &Dict{}
		for {
			p.space()
			if p.i < len(p.s) && p.s[p.i] == '}' {
				p.i++
				return d, nil
			}
			k, err := p.value(depth + 1)
			if err != nil {
				return nil, err
			}
			p.space()
			if p.i >= len(p.s) || p.s[p.i] != ':' {
				return nil, fmt.Errorf("%w: npy header: missing ':'", ErrMalformed)
			}
			p.i++
			v, err := p.value(depth + 1)
			if err != nil {
				return nil, err
			}
			d.Set(k, v)
			if err := p.sep('}'); err != nil {
				return nil, err
			}
		}
	case '(', '[':
		end := map[byte]byte{'(': ')', '[': ']'}[c]
		p.i++
		var items []Value
		for {
			p.space()
			if p.i < len(p.s) && p.s[p.i] == end {
				p.i++
				if c == '[' {
					return &List{Items: items}, nil
				}
				return Tuple(items), nil
			}
			v, err := p.value(depth + 1)
			if err != nil {
				return nil, err
			}
			items = append(items, v)
			if err := p.sep(end); err != nil {
				return nil, err
			}
		}
	case '\'', '"':
		j := strings.IndexByte(p.s[p.i+1:], c)
		if j < 0 {
			return nil, fmt.Errorf("%w: npy header: unterminated string", ErrMalformed)
		}
		v := p.s[p.i+1 : p.i+1+j]
		p.i += j + 2
		return v, nil
	default:
		j := p.i
		for j < len(p.s) && !strings.ContainsRune(",:)]} \t\r\n", rune(p.s[j])) {
			j++
		}
		word := p.s[p.i:j]
		p.i = j
		switch word {
		case "True":
			return true, nil
		case "False":
			return false, nil
		case "None":
			return nil, nil
		}
		word = strings.TrimSuffix(word, "L")
		if n, err := strconv.ParseInt(word, 10, 64); err == nil {
			return n, nil
		}
		// An integer beyond 64 bits is kept, for a problem that names it.
		if len(word) <= 40 {
			if n, ok := new(big.Int).SetString(word, 10); ok {
				return n, nil
			}
		}
		return nil, fmt.Errorf("%w: npy header: unexpected %q", ErrMalformed, word)
	}
}

// sep consumes a ',' or sees the closing end.
func (p *litParser) sep(end byte) error {
	p.space()
	if p.i < len(p.s) && p.s[p.i] == ',' {
		p.i++
		return nil
	}
	if p.i < len(p.s) && p.s[p.i] == end {
		return nil
	}
	return fmt.Errorf("%w: npy header: expected ',' or %q", ErrMalformed, end)
}
