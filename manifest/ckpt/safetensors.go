package ckpt

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
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
	var unread []Tensor
	for name, msg := range raw {
		if name == "__metadata__" {
			if err := json.Unmarshal(msg, &rep.Metadata); err != nil {
				rep.problem("__metadata__: not a map of strings")
			}
			continue
		}
		e, err := decodeSafetensorsEntry(msg)
		if err != nil {
			// Listed, never dropped: the problem says why it is not read.
			rep.problem("%s: %v", name, err)
			t := Tensor{Path: name, Shape: []int64{}}
			if e.DType != "" {
				t.DType = "safetensors:" + e.DType
				if dt, ok := safetensorsDTypes[e.DType]; ok {
					t.DType = dt.name
				}
			}
			unread = append(unread, t)
			continue
		}
		entries = append(entries, named{name, e})
	}
	sort.Slice(unread, func(i, j int) bool { return unread[i].Path < unread[j].Path })
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
	rep.Tensors = append(rep.Tensors, unread...)
	return rep, nil
}

// decodeSafetensorsEntry reads {dtype, shape, data_offsets}. A shape or
// offset that is not a 64-bit integer (a dimension of 2^64) is an error
// that names it; the dtype is returned whenever it was read.
func decodeSafetensorsEntry(msg json.RawMessage) (safetensorsEntry, error) {
	var loose struct {
		DType       string        `json:"dtype"`
		Shape       []json.Number `json:"shape"`
		DataOffsets []json.Number `json:"data_offsets"`
	}
	var e safetensorsEntry
	if err := json.Unmarshal(msg, &loose); err != nil {
		return e, fmt.Errorf("not an entry {dtype, shape, data_offsets}: %w", err)
	}
	e.DType = loose.DType
	if loose.Shape != nil {
		e.Shape = make([]int64, len(loose.Shape))
	}
	for i, n := range loose.Shape {
		v, err := strconv.ParseInt(n.String(), 10, 64)
		if err != nil {
			return e, fmt.Errorf("shape %s is not a sequence of 64-bit integers", jsonList(loose.Shape))
		}
		e.Shape[i] = v
	}
	for i, n := range loose.DataOffsets[:min(2, len(loose.DataOffsets))] {
		v, err := strconv.ParseInt(n.String(), 10, 64)
		if err != nil {
			return e, fmt.Errorf("data_offsets %s are not 64-bit integers", jsonList(loose.DataOffsets))
		}
		e.DataOffsets[i] = v
	}
	return e, nil
}

// jsonList shows numbers as the JSON list they came from, the first
// eight of them.
func jsonList(ns []json.Number) string {
	var parts []string
	for i, n := range ns {
		if i == 8 {
			parts = append(parts, fmt.Sprintf("… %d more", len(ns)-i))
			break
		}
		parts = append(parts, n.String())
	}
	return "[" + strings.Join(parts, ", ") + "]"
}
