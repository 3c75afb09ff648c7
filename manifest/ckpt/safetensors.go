package ckpt

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
)

// maxSafetensorsHeader is the header size limit of the safetensors
// format itself (100 MB).
const maxSafetensorsHeader = 100_000_000

// safetensorsDTypes maps safetensors dtype names to canonical names and
// element sizes.
var safetensorsDTypes = map[string]struct {
	name string
	size int64
}{
	"BOOL": {"bool", 1}, "U8": {"uint8", 1}, "I8": {"int8", 1},
	"F8_E4M3": {"float8_e4m3fn", 1}, "F8_E5M2": {"float8_e5m2", 1},
	"I16": {"int16", 2}, "U16": {"uint16", 2}, "F16": {"float16", 2}, "BF16": {"bfloat16", 2},
	"I32": {"int32", 4}, "U32": {"uint32", 4}, "F32": {"float32", 4},
	"I64": {"int64", 8}, "U64": {"uint64", 8}, "F64": {"float64", 8},
	"C64": {"complex64", 8},
}

// looksSafetensors says whether head starts a safetensors file: a
// little-endian u64 header length that fits the file, then '{'.
func looksSafetensors(head []byte, size int64) bool {
	if len(head) < 9 || head[8] != '{' {
		return false
	}
	n := binary.LittleEndian.Uint64(head[:8])
	return n <= maxSafetensorsHeader && int64(n) <= size-8
}

type safetensorsEntry struct {
	DType       string   `json:"dtype"`
	Shape       []int64  `json:"shape"`
	DataOffsets [2]int64 `json:"data_offsets"`
}

// readSafetensors reads a safetensors file: u64 header length, a JSON
// header {name: {dtype, shape, data_offsets}, "__metadata__": {…}}, then
// the data, offsets relative to its start.
func (in *input) readSafetensors() (*Report, error) {
	var l [8]byte
	if _, err := in.r.ReadAt(l[:], 0); err != nil {
		return nil, fmt.Errorf("%w: safetensors header: %w", ErrMalformed, err)
	}
	n := int64(binary.LittleEndian.Uint64(l[:]))
	hdr := make([]byte, n)
	if _, err := in.r.ReadAt(hdr, 8); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: safetensors header: %w", ErrMalformed, err)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(hdr, &raw); err != nil {
		return nil, fmt.Errorf("%w: safetensors header: %w", ErrMalformed, err)
	}
	rep := &Report{Format: FormatSafetensors}
	data := region{ra: in.r, off: 8 + n, size: in.size - 8 - n}
	type named struct {
		name string
		e    safetensorsEntry
	}
	var entries []named
	for name, msg := range raw {
		if name == "__metadata__" {
			if err := json.Unmarshal(msg, &rep.Metadata); err != nil {
				rep.problem("__metadata__: not a map of strings")
			}
			continue
		}
		var e safetensorsEntry
		if err := json.Unmarshal(msg, &e); err != nil {
			rep.problem("%s: %v", name, err)
			continue
		}
		entries = append(entries, named{name, e})
	}
	sort.Slice(entries, func(i, j int) bool {
		a, b := entries[i].e.DataOffsets, entries[j].e.DataOffsets
		if a[0] != b[0] {
			return a[0] < b[0]
		}
		return entries[i].name < entries[j].name
	})
	for _, ne := range entries {
		e := ne.e
		t := Tensor{Path: ne.name, DType: "safetensors:" + e.DType, Shape: nonNil(e.Shape)}
		dt, ok := safetensorsDTypes[e.DType]
		if !ok {
			rep.problem("%s: unknown dtype %q", ne.name, e.DType)
			rep.Tensors = append(rep.Tensors, t)
			continue
		}
		t.DType = dt.name
		begin, end := e.DataOffsets[0], e.DataOffsets[1]
		in.hashTensor(rep, &t, data, begin, dt.size, 0, e.Shape, contiguousStrides(e.Shape))
		if !t.Digest.IsZero() && end-begin != t.Bytes {
			rep.problem("%s: data_offsets [%d, %d] hold %d bytes, its shape needs %d", ne.name, begin, end, end-begin, t.Bytes)
		}
		if begin >= 0 {
			t.Offset = data.off + begin // the file is the storage
		}
		rep.Tensors = append(rep.Tensors, t)
	}
	return rep, nil
}
