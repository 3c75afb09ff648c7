package ckpt

import (
	"math/big"
	"strings"
)

// classes maps "module.name" to the values GLOBAL pushes for the classes
// and functions checkpoints use. Filled by init functions; read-only after.
var classes = map[string]Value{}

func register(module, name string, fn func(Tuple) Value) {
	classes[module+"."+name] = &function{Global: Global{Module: module, Name: name}, fn: fn}
}

// py2Modules are Python 2 module names pickles may carry (pickle's
// fix_imports).
var py2Modules = map[string]string{
	"__builtin__":            "builtins",
	"copy_reg":               "copyreg",
	"numpy._core.multiarray": "numpy.core.multiarray", // numpy 2
}

// Lookup is the default class lookup: a Go value for the classes and
// functions checkpoints use (torch tensors and storages, numpy arrays and
// dtypes, OrderedDict, builtins), a *Global for anything else, whose
// instances become opaque *Objects. It never fails and never runs code.
func Lookup(module, name string) Value {
	if m, ok := py2Modules[module]; ok {
		module = m
	}
	if v, ok := classes[module+"."+name]; ok {
		return v
	}
	return &Global{Module: module, Name: name}
}

// builtinClasses are the builtins and standard-library callables that
// pickles of checkpoints call.
var builtinClasses = []struct {
	module, name string
	fn           func(Tuple) Value
}{
	{"collections", "OrderedDict", newDict},
	{"builtins", "dict", newDict},
	{"collections", "defaultdict", func(Tuple) Value { return &Dict{} }},
	{"builtins", "list", newList},
	{"builtins", "tuple", newTuple},
	{"builtins", "set", newSet(false)},
	{"builtins", "frozenset", newSet(true)},
	{"builtins", "bytes", newBytes},
	{"builtins", "bytearray", newBytes},
	{"builtins", "int", newInt},
	{"builtins", "float", newFloat},
	{"_codecs", "encode", codecsEncode},
	{"copyreg", "_reconstructor", reconstructor},
}

func init() {
	for _, c := range builtinClasses {
		register(c.module, c.name, c.fn)
	}
}

// newDict is collections.OrderedDict(), OrderedDict([(k, v), …]),
// OrderedDict(d) and dict(…) alike.
func newDict(args Tuple) Value {
	d := &Dict{}
	if len(args) >= 1 {
		if pairs, ok := seqItems(args[0]); ok {
			for _, p := range pairs {
				kv, ok := seqItems(p)
				if !ok || len(kv) != 2 {
					return nil
				}
				d.Set(kv[0], kv[1])
			}
		} else if src, ok := args[0].(*Dict); ok {
			for i := range src.Keys {
				d.Set(src.Keys[i], src.Values[i])
			}
		}
	}
	return d
}

// newList is list() and list(iterable).
func newList(args Tuple) Value {
	if len(args) == 0 {
		return &List{}
	}
	if items, ok := seqItems(args[0]); ok {
		return &List{Items: append([]Value(nil), items...)}
	}
	return nil
}

// newTuple is tuple() and tuple(iterable).
func newTuple(args Tuple) Value {
	if len(args) == 0 {
		return Tuple{}
	}
	if items, ok := seqItems(args[0]); ok {
		return Tuple(append([]Value(nil), items...))
	}
	return nil
}

// newSet returns set or frozenset: of nothing, or of an iterable.
func newSet(frozen bool) func(Tuple) Value {
	return func(args Tuple) Value {
		s := &Set{Frozen: frozen}
		if len(args) > 0 {
			items, ok := seqItems(args[0])
			if !ok {
				return nil
			}
			s.Items = append(s.Items, items...)
		}
		return s
	}
}

// newBytes is bytes() and bytearray(): of nothing, of bytes, of a str
// and its encoding, or of a list of ints.
func newBytes(args Tuple) Value {
	if len(args) == 0 {
		return []byte{}
	}
	switch a := args[0].(type) {
	case []byte:
		return append([]byte{}, a...)
	case *Blob:
		return a
	case string:
		if len(args) > 1 {
			return encodeStr(a, args[1])
		}
	}
	if ints, ok := toInts(args[0]); ok {
		b := make([]byte, len(ints))
		for i, n := range ints {
			if n < 0 || n > 255 {
				return nil
			}
			b[i] = byte(n)
		}
		return b
	}
	return nil
}

// newInt is int(x) of an int or a bool.
func newInt(args Tuple) Value {
	if len(args) == 1 {
		switch a := args[0].(type) {
		case int64, *big.Int:
			return a
		case bool:
			if a {
				return int64(1)
			}
			return int64(0)
		}
	}
	return nil
}

// newFloat is float(x) of a float.
func newFloat(args Tuple) Value {
	if len(args) == 1 {
		if f, ok := args[0].(float64); ok {
			return f
		}
	}
	return nil
}

// codecsEncode is _codecs.encode(str, encoding): how protocol 2 pickles
// carry bytes written by Python 3 (numpy arrays among them).
func codecsEncode(args Tuple) Value {
	if len(args) < 1 {
		return nil
	}
	enc := Value("utf-8")
	if len(args) > 1 {
		enc = args[1]
	}
	switch s := args[0].(type) {
	case string:
		return encodeStr(s, enc)
	case *Blob:
		if e, _ := enc.(string); isLatin1(e) && s.Latin1 != nil {
			return s.Latin1
		}
	}
	return nil
}

// reconstructor is copyreg._reconstructor(cls, base, state): an instance
// of cls.
func reconstructor(args Tuple) Value {
	if len(args) < 1 {
		return nil
	}
	if g, ok := args[0].(*Global); ok {
		return &Object{Module: g.Module, Name: g.Name, Args: args[1:]}
	}
	return nil
}

func isLatin1(enc string) bool {
	switch strings.ToLower(strings.ReplaceAll(enc, "_", "-")) {
	case "latin1", "latin-1", "iso-8859-1", "iso8859-1", "l1":
		return true
	}
	return false
}

// encodeStr is str.encode for latin-1 and UTF-8; nil for anything else.
func encodeStr(s string, encVal Value) Value {
	enc, _ := encVal.(string)
	switch {
	case isLatin1(enc):
		b := make([]byte, 0, len(s))
		for _, r := range s {
			if r > 0xff {
				return nil
			}
			b = append(b, byte(r))
		}
		return b
	case strings.EqualFold(enc, "utf-8") || strings.EqualFold(enc, "utf8"), strings.EqualFold(enc, "ascii"):
		return []byte(s)
	}
	return nil
}
