package ckpt

import (
	"fmt"
	"math/big"
	"strconv"
	"strings"

	"github.com/cas-ml/cas/digest"
)

// Value is a Python value as the Decoder builds it. It is one of:
//
//	nil                     None
//	bool, int64, *big.Int   bool and int (int64 whenever the value fits)
//	float64                 float
//	string                  str (and Python 2 str)
//	[]byte                  bytes and bytearray
//	*Blob                   a str or bytes too large to keep in memory
//	Tuple, *List, *Dict, *Set
//	*Global                 a class or function named by GLOBAL that the
//	                        class lookup does not know
//	*Object                 an instance of such a class: never executed
//	*StorageType, *StorageRef, *TorchTensor   torch storages and tensors
//	*NDArray, *NPDType      numpy arrays and dtypes
//
// or any value a custom FindClass returns.
type Value = any

// Tuple is a Python tuple.
type Tuple []Value

// List is a Python list. It is a pointer so that the memo can share it
// and APPEND can grow it after it was referenced.
type List struct{ Items []Value }

// Set is a Python set or frozenset.
type Set struct {
	Items  []Value
	Frozen bool
}

// Dict is a Python dict (or OrderedDict) that keeps insertion order, as
// Python does.
type Dict struct {
	Keys   []Value
	Values []Value
	// State is what BUILD gave the dict: the attributes of a dict
	// subclass, e.g. a state_dict's _metadata. It is not walked.
	State Value
	index map[any]int
}

// Len returns the number of entries.
func (d *Dict) Len() int { return len(d.Keys) }

// Set stores v under k, replacing an equal key of a hashable scalar type.
func (d *Dict) Set(k, v Value) {
	if hk, ok := hashKey(k); ok {
		if d.index == nil {
			d.index = make(map[any]int)
		}
		if i, ok := d.index[hk]; ok {
			d.Values[i] = v
			return
		}
		d.index[hk] = len(d.Keys)
	}
	d.Keys = append(d.Keys, k)
	d.Values = append(d.Values, v)
}

// Get returns the value under a scalar key (string, int64, bool, float64
// or nil).
func (d *Dict) Get(k Value) (Value, bool) {
	hk, ok := hashKey(k)
	if !ok || d.index == nil {
		return nil, false
	}
	i, ok := d.index[hk]
	if !ok {
		return nil, false
	}
	return d.Values[i], true
}

// hashKey returns a comparable map key for the scalar values Python
// hashes by value; other keys (tuples, objects) are kept without an index.
func hashKey(k Value) (any, bool) {
	switch k := k.(type) {
	case nil, string, int64, bool, float64:
		return k, true
	case *big.Int:
		return fmt.Sprintf("\x00big:%d:%x", k.Sign(), k.Bytes()), true
	}
	return nil, false
}

// Global is a class or function named by GLOBAL or STACK_GLOBAL that the
// class lookup does not know. Calling it makes an *Object.
type Global struct{ Module, Name string }

func (g *Global) String() string { return g.Module + "." + g.Name }

// Object is an instance of a class the class lookup does not know: what
// the pickle says about it, never the result of running its code.
type Object struct {
	Module, Name string
	// Args are the arguments REDUCE, NEWOBJ, INST or OBJ passed.
	Args Tuple
	// State is what BUILD gave it (usually its __dict__).
	State Value
	// Items and Dict hold what APPEND(S) and SETITEM(S) added to it, for
	// list and dict subclasses.
	Items []Value
	Dict  *Dict
}

// Blob stands for a str or bytes value larger than Limits.MaxBlob: its
// length and BLAKE3 digest, computed while streaming, instead of the bytes.
type Blob struct {
	Len    int64
	Digest digest.Digest
	// Text says the pickle held a str; then Latin1 describes the bytes
	// of its latin-1 encoding (how numpy arrays travel in protocol 2
	// pickles), if every character fits in latin-1.
	Text   bool
	Latin1 *Blob
}

// Callable is a value that REDUCE, NEWOBJ, INST and OBJ can call: the
// classes and functions the class lookup maps to Go code.
type Callable interface {
	Call(args Tuple) (Value, error)
}

// Stateful is a value that takes the state BUILD gives it.
type Stateful interface {
	SetState(state Value) error
}

// function is a Callable made of a Go func; a nil result from fn means the
// arguments were not what it expects, and the call becomes an opaque
// Object as an unknown class's would.
type function struct {
	Global
	fn func(args Tuple) Value
}

func (f *function) Call(args Tuple) (Value, error) {
	if v := f.fn(args); v != nil {
		return v, nil
	}
	return &Object{Module: f.Module, Name: f.Name, Args: args}, nil
}

// toInt reads a Python int that fits in int64.
func toInt(v Value) (int64, bool) {
	switch v := v.(type) {
	case int64:
		return v, true
	case *big.Int:
		if v.IsInt64() {
			return v.Int64(), true
		}
	}
	return 0, false
}

// toInts reads a tuple or list of int64.
func toInts(v Value) ([]int64, bool) {
	items, ok := seqItems(v)
	if !ok {
		return nil, false
	}
	out := make([]int64, len(items))
	for i, it := range items {
		n, ok := toInt(it)
		if !ok {
			return nil, false
		}
		out[i] = n
	}
	return out, true
}

// seqItems returns the items of a tuple or list.
func seqItems(v Value) ([]Value, bool) {
	switch v := v.(type) {
	case Tuple:
		return v, true
	case *List:
		return v.Items, true
	}
	return nil, false
}

// keyString renders a dict key as one segment of an object-graph path.
func keyString(k Value) string {
	var s string
	switch k := k.(type) {
	case string:
		s = k
	case int64:
		s = strconv.FormatInt(k, 10)
	case *big.Int:
		if k.BitLen() > 256 {
			s = fmt.Sprintf("<int of %d bits>", k.BitLen())
		} else {
			s = k.String()
		}
	case bool:
		s = map[bool]string{true: "True", false: "False"}[k]
	case nil:
		s = "None"
	case float64:
		s = strconv.FormatFloat(k, 'g', -1, 64)
	case []byte:
		s = string(k)
	case *Global:
		s = k.String()
	default:
		s = fmt.Sprintf("<%s>", typeName(k))
	}
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

// intsString shows an integer or a sequence meant to hold integers as
// Python prints it, "(18446744073709551616, 4)", with each item that is
// not an integer by its type; for problems.
func intsString(v Value) string {
	one := func(v Value) string {
		switch n := v.(type) {
		case int64:
			return strconv.FormatInt(n, 10)
		case *big.Int:
			return n.String()
		}
		return typeName(v)
	}
	items, ok := seqItems(v)
	if !ok {
		return one(v)
	}
	var b strings.Builder
	b.WriteByte('(')
	for i, it := range items {
		if i == 8 {
			fmt.Fprintf(&b, ", … %d more", len(items)-i)
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(one(it))
	}
	if len(items) == 1 {
		b.WriteByte(',')
	}
	b.WriteByte(')')
	return b.String()
}

// typeName names a Value's Python type, for messages.
func typeName(v Value) string {
	switch v := v.(type) {
	case nil:
		return "None"
	case bool:
		return "bool"
	case int64, *big.Int:
		return "int"
	case float64:
		return "float"
	case string:
		return "str"
	case []byte:
		return "bytes"
	case *Blob:
		return "bytes"
	case Tuple:
		return "tuple"
	case *List:
		return "list"
	case *Dict:
		return "dict"
	case *Set:
		return "set"
	case *Global:
		return v.String()
	case *Object:
		return v.Module + "." + v.Name
	case *TorchTensor:
		return "torch.Tensor"
	case *StorageRef:
		return "torch.Storage"
	case *NDArray:
		return "numpy.ndarray"
	}
	return fmt.Sprintf("%T", v)
}
