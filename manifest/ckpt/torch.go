package ckpt

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"maps"
	"math/big"
	"path"
	"slices"
	"strconv"
	"strings"
)

// StorageType is a torch storage class named in a pickle, e.g.
// torch.FloatStorage: it fixes the element type of the storages it tags.
type StorageType struct {
	Name     string // "FloatStorage"
	DType    string // "float32"
	ElemSize int64
}

// storageTypes maps torch's storage class names to element types.
var storageTypes = map[string]StorageType{
	"DoubleStorage":        {DType: "float64", ElemSize: 8},
	"FloatStorage":         {DType: "float32", ElemSize: 4},
	"HalfStorage":          {DType: "float16", ElemSize: 2},
	"BFloat16Storage":      {DType: "bfloat16", ElemSize: 2},
	"LongStorage":          {DType: "int64", ElemSize: 8},
	"IntStorage":           {DType: "int32", ElemSize: 4},
	"ShortStorage":         {DType: "int16", ElemSize: 2},
	"CharStorage":          {DType: "int8", ElemSize: 1},
	"ByteStorage":          {DType: "uint8", ElemSize: 1},
	"BoolStorage":          {DType: "bool", ElemSize: 1},
	"ComplexFloatStorage":  {DType: "complex64", ElemSize: 8},
	"ComplexDoubleStorage": {DType: "complex128", ElemSize: 16},
	"QInt8Storage":         {DType: "qint8", ElemSize: 1},
	"QUInt8Storage":        {DType: "quint8", ElemSize: 1},
	"QInt32Storage":        {DType: "qint32", ElemSize: 4},
	"QUInt4x2Storage":      {DType: "quint4x2", ElemSize: 1},
	"QUInt2x4Storage":      {DType: "quint2x4", ElemSize: 1},
	"UntypedStorage":       {DType: "uint8", ElemSize: 1},
	"Float8_e4m3fnStorage": {DType: "float8_e4m3fn", ElemSize: 1},
	"Float8_e5m2Storage":   {DType: "float8_e5m2", ElemSize: 1},
}

// StorageRef is what persistent_load returns for a torch storage: a
// reference to bytes stored beside the pickle, never the bytes.
type StorageRef struct {
	Key      string // the zip member data/KEY, or the legacy storage key
	Type     *StorageType
	Location string // "cpu", "cuda:0", …
	Numel    int64  // elements, as the persistent ID declares them
	// ViewOffset is the element offset of a legacy storage view into its
	// root storage Key.
	ViewOffset int64
}

// TorchTensor is a tensor rebuilt by torch._utils._rebuild_tensor(_v2).
type TorchTensor struct {
	Storage      *StorageRef
	Offset       int64 // in elements
	Shape        []int64
	Stride       []int64
	RequiresGrad bool
	// Invalid says why the tensor cannot be located in its storage (a
	// shape, stride or offset that is not 64-bit integers, or a storage
	// that is not one); such a tensor is listed with a problem, not hashed.
	Invalid string
}

// rebuildTensor is torch._utils._rebuild_tensor_v2 (storage,
// storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
// and _rebuild_tensor (storage, storage_offset, size, stride).
func rebuildTensor(args Tuple) Value {
	if len(args) < 4 {
		return nil
	}
	off, ok1 := toInt(args[1])
	shape, ok2 := toInts(args[2])
	stride, ok3 := toInts(args[3])
	t := &TorchTensor{Shape: shape, Stride: stride}
	st, ok := args[0].(*StorageRef)
	switch {
	case !ok:
		st = &StorageRef{Type: &StorageType{}}
		t.Invalid = fmt.Sprintf("storage is a %s, not a torch storage", typeName(args[0]))
	case !ok2:
		t.Invalid = fmt.Sprintf("shape %s is not a sequence of 64-bit integers", intsString(args[2]))
	case !ok3 || len(stride) != len(shape):
		t.Invalid = fmt.Sprintf("stride %s does not fit shape %s", intsString(args[3]), intsString(args[2]))
	case !ok1 || off < 0:
		t.Invalid = fmt.Sprintf("storage offset %s out of range", intsString(args[1]))
	}
	t.Storage = st
	if t.Invalid == "" {
		if t.Offset, ok = addNonNeg(off, st.ViewOffset); !ok {
			t.Invalid = fmt.Sprintf("storage offset %d + view offset %d out of range", off, st.ViewOffset)
		}
	}
	if len(args) > 4 {
		t.RequiresGrad, _ = args[4].(bool)
	}
	return t
}

func init() {
	for _, name := range []string{"_rebuild_tensor_v2", "_rebuild_tensor"} {
		register("torch._utils", name, rebuildTensor)
	}
	// _rebuild_parameter(data, requires_grad, backward_hooks) and
	// _rebuild_parameter_with_state(…, state): a Parameter is its tensor.
	for _, name := range []string{"_rebuild_parameter", "_rebuild_parameter_with_state"} {
		register("torch._utils", name, func(args Tuple) Value {
			if len(args) < 1 {
				return nil
			}
			if t, ok := args[0].(*TorchTensor); ok {
				if len(args) > 1 {
					t.RequiresGrad, _ = args[1].(bool)
				}
				return t
			}
			return nil
		})
	}
	// _rebuild_from_type_v2(func, new_type, args, state): a tensor
	// subclass; rebuild the tensor with func(*args).
	register("torch._tensor", "_rebuild_from_type_v2", func(args Tuple) Value {
		if len(args) < 3 {
			return nil
		}
		inner, ok := args[2].(Tuple)
		if !ok {
			return nil
		}
		if f, ok := args[0].(Callable); ok {
			if v, err := f.Call(inner); err == nil {
				if _, opaque := v.(*Object); !opaque {
					return v
				}
			}
		}
		return nil
	})
	// torch.Size(sequence) is a tuple.
	register("torch", "Size", func(args Tuple) Value {
		if len(args) == 1 {
			if items, ok := seqItems(args[0]); ok {
				return Tuple(items)
			}
		}
		return nil
	})
	for name, st := range storageTypes {
		st.Name = name
		classes["torch."+name] = &st
		classes["torch.storage."+name] = &st
		classes["torch.cuda."+name] = &st
	}
}

// storageLoader is persistent_load for torch checkpoints: it turns
// ('storage', storage_type, key, location, numel[, view_metadata]) into
// one *StorageRef per key.
type storageLoader struct {
	refs map[string]*StorageRef
}

func (l *storageLoader) load(pid Value) (Value, error) {
	t, ok := pid.(Tuple)
	if !ok || len(t) < 5 || t[0] != "storage" {
		return &Object{Module: "pickle", Name: "persistent_id", Args: Tuple{pid}}, nil
	}
	st, ok := t[1].(*StorageType)
	if !ok {
		st = &StorageType{Name: typeName(t[1]), DType: "unknown"}
	}
	key := keyString(t[2])
	loc, _ := t[3].(string)
	numel, ok := toInt(t[4])
	if !ok {
		numel = -1
	}
	ref, seen := l.refs[key]
	if !seen {
		ref = &StorageRef{Key: key, Type: st, Location: loc, Numel: numel}
		l.refs[key] = ref
	}
	// A legacy view: (view_key, offset, view_size) into the root storage.
	if len(t) > 5 {
		if vm, ok := t[5].(Tuple); ok && len(vm) == 3 {
			if off, ok := toInt(vm[1]); ok {
				view := *ref
				view.ViewOffset = off
				return &view, nil
			}
		}
	}
	return ref, nil
}

// readTorchZip reads a checkpoint written by torch.save since PyTorch 1.6:
// a zip with PREFIX/data.pkl, PREFIX/data/KEY per storage and, since 2.1,
// PREFIX/byteorder.
func readTorchZip(in *input, zr *zip.Reader, pkl *zip.File) (*Report, error) {
	prefix := strings.TrimSuffix(pkl.Name, "data.pkl")
	rep := &Report{Format: FormatTorchZip, ByteOrder: "little"}
	members := map[string]*zip.File{}
	for _, f := range zr.File {
		members[f.Name] = f
	}
	if f := members[prefix+"byteorder"]; f != nil {
		b, err := readSmall(in, f, 16)
		if err != nil {
			return nil, err
		}
		rep.ByteOrder = strings.TrimSpace(string(b))
	}
	rc, err := openMember(in, pkl)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	loader := &storageLoader{refs: map[string]*StorageRef{}}
	dec := NewDecoder(rc)
	dec.Limits = in.lim
	dec.PersistentLoad = loader.load
	root, err := dec.Decode()
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", pkl.Name, err)
	}
	regions := map[string]region{}
	for _, key := range slices.Sorted(maps.Keys(loader.refs)) { // problems in a fixed order
		f := members[prefix+"data/"+key]
		if f == nil {
			continue // reported per tensor
		}
		g, err := memberRegion(in, f)
		if err != nil {
			rep.problem("storage %s: %v", key, err)
			continue
		}
		regions[key] = g
	}
	if err := in.inspectGraph(rep, root, regions); err != nil {
		return nil, err
	}
	return rep, nil
}

// legacyMagic is the first pickle of a pre-1.6 torch.save file.
var legacyMagic, _ = new(big.Int).SetString("119547037146038801333356", 10)

// readTorchLegacy reads the pre-1.6 format: pickles of the magic number,
// the protocol version and sys_info, then the object pickle, then the
// sorted list of storage keys, then each storage as an int64
// little-endian element count followed by its bytes.
func readTorchLegacy(in *input) (*Report, error) {
	rep := &Report{Format: FormatTorchLegacy, ByteOrder: "little"}
	dec := NewDecoder(io.NewSectionReader(in.r, 0, in.size))
	dec.Limits = in.lim
	magic, err := dec.Decode()
	if err != nil {
		return nil, err
	}
	if m, ok := magic.(*big.Int); !ok || m.Cmp(legacyMagic) != 0 {
		return nil, fmt.Errorf("%w: a pickle, but not a torch checkpoint", ErrFormat)
	}
	if _, err := dec.Decode(); err != nil { // protocol version
		return nil, err
	}
	sysInfo, err := dec.Decode()
	if err != nil {
		return nil, err
	}
	if si, ok := sysInfo.(*Dict); ok {
		if le, ok := si.Get("little_endian"); ok && le == false {
			rep.ByteOrder = "big"
		}
	}
	loader := &storageLoader{refs: map[string]*StorageRef{}}
	dec.PersistentLoad = loader.load
	root, err := dec.Decode()
	if err != nil {
		return nil, err
	}
	dec.PersistentLoad = nil
	keysVal, err := dec.Decode()
	if err != nil {
		return nil, fmt.Errorf("read storage keys: %w", err)
	}
	keys, ok := seqItems(keysVal)
	if !ok {
		return nil, fmt.Errorf("%w: storage keys are a %s", ErrMalformed, typeName(keysVal))
	}
	regions := map[string]region{}
	off := dec.Offset()
	for _, k := range keys {
		key := keyString(k)
		ref := loader.refs[key]
		if ref == nil || ref.Type.ElemSize == 0 {
			rep.problem("storage %s: unknown element type; later storages not located", key)
			break
		}
		var hdr [8]byte
		if _, err := in.r.ReadAt(hdr[:], off); err != nil {
			rep.problem("storage %s: truncated at offset %d", key, off)
			break
		}
		numel := int64(binary.LittleEndian.Uint64(hdr[:]))
		n, ok := mulNonNeg(numel, ref.Type.ElemSize)
		if !ok || n > in.size-off-8 {
			rep.problem("storage %s: %d elements run past the end of the file", key, numel)
			break
		}
		regions[key] = region{ra: in.r, off: off + 8, size: n}
		off += 8 + n
	}
	if err := in.inspectGraph(rep, root, regions); err != nil {
		return nil, err
	}
	return rep, nil
}

// readSmall reads a whole small zip member.
func readSmall(in *input, f *zip.File, max int64) ([]byte, error) {
	rc, err := openMember(in, f)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	var b bytes.Buffer
	if _, err := io.Copy(&b, io.LimitReader(rc, max+1)); err != nil {
		return nil, fmt.Errorf("read %s: %w", f.Name, err)
	}
	if int64(b.Len()) > max {
		return nil, fmt.Errorf("%w: %s is larger than %d bytes", ErrMalformed, f.Name, max)
	}
	return b.Bytes(), nil
}

// torchPrefix finds PREFIX/data.pkl in a zip, the mark of a torch zip
// checkpoint.
func torchPickle(zr *zip.Reader) *zip.File {
	for _, f := range zr.File {
		if path.Base(f.Name) == "data.pkl" && strings.Count(f.Name, "/") <= 1 {
			return f
		}
	}
	return nil
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
