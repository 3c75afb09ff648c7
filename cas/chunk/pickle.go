package chunk

import (
	"bytes"
	"strconv"
)

// A torch zip checkpoint keeps each tensor's storage in a member
// ARCHIVE/data/KEY and says what type of element it holds only in
// ARCHIVE/data.pkl, a pickle whose persistent IDs are tuples
// ("storage", torch.BFloat16Storage, KEY, location, numel). storageTypes
// walks that pickle just far enough to collect them: a small stack
// machine over the opcodes of protocols 0 to 5 that builds nothing but
// strings, integers, globals and tuples (anything else is an opaque
// value), runs no code and gives up (nil) on anything it does not know,
// on malformed input, or past its bounds.

// Bounds of the walk, whatever the pickle holds.
const (
	maxPickleLen   = 16 << 20
	maxPickleStack = 1 << 20
	maxPickleMemo  = 1 << 20
)

// pval is a value on the walker's stack: a string (str or bytes),
// int64, pglobal, ptuple, or nil for anything else.
type pval any

type (
	pglobal struct{ module, name string }
	ptuple  []pval
	pmark   struct{}
)

// storageDTypes maps torch's storage classes to the element type names
// Region uses.
var storageDTypes = map[string]string{
	"FloatStorage":    "F32",
	"BFloat16Storage": "BF16",
	"HalfStorage":     "F16",
	"DoubleStorage":   "F64",
}

// storageTypes returns the element type of each storage key the pickle
// names, for the float types cas codes; nil when the pickle cannot be
// walked.
func storageTypes(pkl []byte) map[string]string {
	if len(pkl) > maxPickleLen {
		return nil
	}
	w := pickleWalker{in: pkl, memo: map[uint64]pval{}, types: map[string]string{}}
	if !w.run() {
		return nil
	}
	return w.types
}

type pickleWalker struct {
	in    []byte
	at    int
	stack []pval
	memo  map[uint64]pval
	types map[string]string
}

func (w *pickleWalker) read(n int) ([]byte, bool) {
	if n < 0 || n > len(w.in)-w.at {
		return nil, false
	}
	b := w.in[w.at : w.at+n]
	w.at += n
	return b, true
}

func (w *pickleWalker) uint(n int) (uint64, bool) {
	b, ok := w.read(n)
	if !ok {
		return 0, false
	}
	var v uint64
	for i := n - 1; i >= 0; i-- {
		v = v<<8 | uint64(b[i])
	}
	return v, true
}

func (w *pickleWalker) line() ([]byte, bool) {
	i := bytes.IndexByte(w.in[w.at:], '\n')
	if i < 0 {
		return nil, false
	}
	b := w.in[w.at : w.at+i]
	w.at += i + 1
	return b, true
}

func (w *pickleWalker) push(v pval) bool {
	if len(w.stack) >= maxPickleStack {
		return false
	}
	w.stack = append(w.stack, v)
	return true
}

// pop removes the top n values, never past a mark.
func (w *pickleWalker) pop(n int) ([]pval, bool) {
	if len(w.stack) < n {
		return nil, false
	}
	top := w.stack[len(w.stack)-n:]
	for _, v := range top {
		if _, ok := v.(pmark); ok {
			return nil, false
		}
	}
	w.stack = w.stack[:len(w.stack)-n]
	return top, true
}

// popMark removes the values above the innermost mark, and the mark.
func (w *pickleWalker) popMark() ([]pval, bool) {
	for i := len(w.stack) - 1; i >= 0; i-- {
		if _, ok := w.stack[i].(pmark); ok {
			items := w.stack[i+1:]
			w.stack = w.stack[:i]
			return items, true
		}
	}
	return nil, false
}

// sizedString reads a length of n bytes, then that many bytes.
func (w *pickleWalker) sizedString(n int) bool {
	l, ok := w.uint(n)
	if !ok || l > uint64(len(w.in)) {
		return false
	}
	b, ok := w.read(int(l))
	return ok && w.push(string(b))
}

func (w *pickleWalker) memoPut(k uint64) bool {
	if len(w.stack) == 0 || len(w.memo) >= maxPickleMemo {
		return false
	}
	w.memo[k] = w.stack[len(w.stack)-1]
	return true
}

func (w *pickleWalker) memoGet(k uint64) bool {
	v, ok := w.memo[k]
	return ok && w.push(v)
}

// persistent records a storage's element type from its persistent ID.
func (w *pickleWalker) persistent(pid pval) bool {
	t, ok := pid.(ptuple)
	if ok && len(t) >= 3 && t[0] == "storage" {
		g, gok := t[1].(pglobal)
		key, kok := t[2].(string)
		if gok && kok && g.module == "torch" {
			if dt, ok := storageDTypes[g.name]; ok {
				w.types[key] = dt
			}
		}
	}
	return w.push(nil)
}

func (w *pickleWalker) run() bool {
	for w.at < len(w.in) {
		op := w.in[w.at]
		w.at++
		if op == '.' { // STOP
			return true
		}
		if !w.step(op) {
			return false
		}
	}
	return false
}

// step runs one opcode.
func (w *pickleWalker) step(op byte) bool {
	switch op {
	case 0x80: // PROTO
		_, ok := w.read(1)
		return ok
	case 0x95: // FRAME
		_, ok := w.read(8)
		return ok
	case '(': // MARK
		return w.push(pmark{})
	case ')': // EMPTY_TUPLE
		return w.push(ptuple{})
	case 't', 0x85, 0x86, 0x87: // TUPLE, TUPLE1..3
		var items []pval
		var ok bool
		if op == 't' {
			items, ok = w.popMark()
		} else {
			items, ok = w.pop(int(op - 0x84))
		}
		return ok && w.push(append(ptuple(nil), items...))
	case ']', '}', 0x8f, 'N', 0x88, 0x89: // empty list, dict, set; None, True, False
		return w.push(nil)
	case 'l', 'd', 0x91: // LIST, DICT, FROZENSET
		_, ok := w.popMark()
		return ok && w.push(nil)
	case 'a': // APPEND
		_, ok := w.pop(1)
		return ok
	case 's': // SETITEM
		_, ok := w.pop(2)
		return ok
	case 'e', 'u', 0x90: // APPENDS, SETITEMS, ADDITEMS
		_, ok := w.popMark()
		return ok && len(w.stack) > 0
	case 'K', 'M', 'J': // BININT1, BININT2, BININT
		n := map[byte]int{'K': 1, 'M': 2, 'J': 4}[op]
		v, ok := w.uint(n)
		if op == 'J' {
			return ok && w.push(int64(int32(uint32(v))))
		}
		return ok && w.push(int64(v))
	case 0x8a, 0x8b: // LONG1, LONG4
		n := 1
		if op == 0x8b {
			n = 4
		}
		l, ok := w.uint(n)
		if !ok || l > 8 {
			return false
		}
		v, ok := w.uint(int(l))
		return ok && w.push(int64(v))
	case 'I', 'L': // INT, LONG (text)
		b, ok := w.line()
		if !ok {
			return false
		}
		v, err := strconv.ParseInt(string(bytes.TrimSuffix(b, []byte("L"))), 10, 64)
		if err != nil {
			return w.push(nil)
		}
		return w.push(v)
	case 'G': // BINFLOAT
		_, ok := w.read(8)
		return ok && w.push(nil)
	case 'F', 'S', 'V': // FLOAT, STRING, UNICODE (text)
		b, ok := w.line()
		if op == 'V' {
			return ok && w.push(string(b))
		}
		return ok && w.push(nil)
	case 'X', 'B', 'T': // BINUNICODE, BINBYTES, BINSTRING
		return w.sizedString(4)
	case 0x8c, 'C', 'U': // SHORT_BINUNICODE, SHORT_BINBYTES, SHORT_BINSTRING
		return w.sizedString(1)
	case 0x8d, 0x8e, 0x96: // BINUNICODE8, BINBYTES8, BYTEARRAY8
		return w.sizedString(8)
	case 'c': // GLOBAL
		mod, ok1 := w.line()
		name, ok2 := w.line()
		return ok1 && ok2 && w.push(pglobal{string(mod), string(name)})
	case 0x93: // STACK_GLOBAL
		top, ok := w.pop(2)
		if !ok {
			return false
		}
		mod, ok1 := top[0].(string)
		name, ok2 := top[1].(string)
		if !ok1 || !ok2 {
			return w.push(nil)
		}
		return w.push(pglobal{mod, name})
	case 'R', 0x81: // REDUCE, NEWOBJ
		_, ok := w.pop(2)
		return ok && w.push(nil)
	case 0x92: // NEWOBJ_EX
		_, ok := w.pop(3)
		return ok && w.push(nil)
	case 'b': // BUILD
		_, ok := w.pop(1)
		return ok && len(w.stack) > 0
	case 'o': // OBJ
		_, ok := w.popMark()
		return ok && w.push(nil)
	case 'i': // INST
		_, ok1 := w.line()
		_, ok2 := w.line()
		_, ok3 := w.popMark()
		return ok1 && ok2 && ok3 && w.push(nil)
	case 'p', 'g': // PUT, GET
		b, ok := w.line()
		if !ok {
			return false
		}
		k, err := strconv.ParseUint(string(b), 10, 64)
		if err != nil {
			return false
		}
		if op == 'p' {
			return w.memoPut(k)
		}
		return w.memoGet(k)
	case 'q', 'r', 'h', 'j': // BINPUT, LONG_BINPUT, BINGET, LONG_BINGET
		n := 1
		if op == 'r' || op == 'j' {
			n = 4
		}
		k, ok := w.uint(n)
		if !ok {
			return false
		}
		if op == 'q' || op == 'r' {
			return w.memoPut(k)
		}
		return w.memoGet(k)
	case 0x94: // MEMOIZE
		return w.memoPut(uint64(len(w.memo)))
	case 'P': // PERSID
		b, ok := w.line()
		return ok && w.persistent(string(b))
	case 'Q': // BINPERSID
		top, ok := w.pop(1)
		return ok && w.persistent(top[0])
	case '0': // POP
		if len(w.stack) > 0 {
			if _, ok := w.stack[len(w.stack)-1].(pmark); ok {
				_, ok := w.popMark()
				return ok
			}
		}
		_, ok := w.pop(1)
		return ok
	case '1': // POP_MARK
		_, ok := w.popMark()
		return ok
	case '2': // DUP
		return len(w.stack) > 0 && w.push(w.stack[len(w.stack)-1])
	case 0x82, 0x83, 0x84: // EXT1, EXT2, EXT4
		_, ok := w.read(map[byte]int{0x82: 1, 0x83: 2, 0x84: 4}[op])
		return ok && w.push(nil)
	case 0x97, 0x98: // NEXT_BUFFER, READONLY_BUFFER
		return op == 0x98 || w.push(nil)
	}
	return false
}
