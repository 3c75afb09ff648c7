package ckpt

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"math"
	"math/big"
	"slices"
	"strconv"
	"unicode/utf8"

	"github.com/cas-ml/cas/digest"
)

// Limits bound what reading one file may cost, whatever its bytes say.
type Limits struct {
	// MaxPickle is the most pickle bytes one Decoder reads.
	MaxPickle int64
	// MaxElements bounds the values a pickle may create (stack entries,
	// container items) and the nodes a walk of the object graph visits.
	MaxElements int
	// MaxMemo bounds the memo's entries.
	MaxMemo int
	// MaxDepth bounds how deeply containers nest in the object graph.
	MaxDepth int
	// MaxBytes bounds the str and bytes data kept in memory per pickle.
	MaxBytes int64
	// MaxBlob is the largest str or bytes value kept in memory; larger
	// ones (a big numpy array inside a pickle) become a *Blob.
	MaxBlob int64
	// MaxGather bounds the bytes read into memory to hash a
	// non-contiguous tensor in row-major order.
	MaxGather int64
}

// DefaultLimits are generous for real checkpoints (a state dict's pickle
// is kilobytes to a few megabytes; its tensors are streamed, never held).
var DefaultLimits = Limits{
	MaxPickle:   256 << 20,
	MaxElements: 4 << 20,
	MaxMemo:     1 << 20,
	MaxDepth:    1000,
	MaxBytes:    256 << 20,
	MaxBlob:     64 << 20,
	MaxGather:   256 << 20,
}

// Errors. Malformed input wraps ErrMalformed, input beyond a limit wraps
// ErrLimit; both arrive inside a *PickleError when a pickle was at fault.
var (
	ErrMalformed = errors.New("malformed input")
	ErrLimit     = errors.New("limit exceeded")
)

// PickleError reports where a pickle could not be read.
type PickleError struct {
	Offset int64 // of the opcode, from the start of the pickle stream
	Op     byte
	Err    error
}

func (e *PickleError) Error() string {
	if e.Op == 0 && errors.Is(e.Err, io.ErrUnexpectedEOF) {
		return fmt.Sprintf("pickle truncated at offset %d: %v", e.Offset, e.Err)
	}
	return fmt.Sprintf("pickle opcode 0x%02x at offset %d: %v", e.Op, e.Offset, e.Err)
}

func (e *PickleError) Unwrap() error { return e.Err }

// A Decoder reads pickles from a stream and builds Values. It parses and
// never executes: GLOBAL names go through FindClass, which maps the classes
// checkpoints use to Go values and everything else to *Global, whose
// instances are opaque *Objects.
type Decoder struct {
	Limits Limits
	// FindClass maps a GLOBAL's module and name to a value; nil means
	// Lookup. A value implementing Callable is called by REDUCE and NEWOBJ,
	// one implementing Stateful receives BUILD's state.
	FindClass func(module, name string) Value
	// PersistentLoad resolves persistent IDs (torch storages). Nil keeps
	// each ID as an *Object named "persistent_id".
	PersistentLoad func(pid Value) (Value, error)

	r     *bufio.Reader
	off   int64
	stack []Value
	marks []int
	memo  map[int64]Value
	elems int
	bytes int64
}

// NewDecoder returns a Decoder reading r with DefaultLimits.
func NewDecoder(r io.Reader) *Decoder {
	return &Decoder{Limits: DefaultLimits, r: bufio.NewReaderSize(r, 64<<10)}
}

// Offset returns how many bytes the Decoder has consumed: after Decode, the
// offset just past the pickle's STOP.
func (d *Decoder) Offset() int64 { return d.off }

// Protocol opcodes (pickletools).
const (
	opMark           = '('
	opStop           = '.'
	opPop            = '0'
	opPopMark        = '1'
	opDup            = '2'
	opFloat          = 'F'
	opInt            = 'I'
	opBinInt         = 'J'
	opBinInt1        = 'K'
	opLong           = 'L'
	opBinInt2        = 'M'
	opNone           = 'N'
	opPersID         = 'P'
	opBinPersID      = 'Q'
	opReduce         = 'R'
	opString         = 'S'
	opBinString      = 'T'
	opShortBinString = 'U'
	opUnicode        = 'V'
	opBinUnicode     = 'X'
	opAppend         = 'a'
	opBuild          = 'b'
	opGlobal         = 'c'
	opDict           = 'd'
	opEmptyDict      = '}'
	opAppends        = 'e'
	opGet            = 'g'
	opBinGet         = 'h'
	opInst           = 'i'
	opLongBinGet     = 'j'
	opList           = 'l'
	opEmptyList      = ']'
	opObj            = 'o'
	opPut            = 'p'
	opBinPut         = 'q'
	opLongBinPut     = 'r'
	opSetItem        = 's'
	opTuple          = 't'
	opEmptyTuple     = ')'
	opSetItems       = 'u'
	opBinFloat       = 'G'
	// protocol 2
	opProto    = 0x80
	opNewObj   = 0x81
	opExt1     = 0x82
	opExt2     = 0x83
	opExt4     = 0x84
	opTuple1   = 0x85
	opTuple2   = 0x86
	opTuple3   = 0x87
	opNewTrue  = 0x88
	opNewFalse = 0x89
	opLong1    = 0x8a
	opLong4    = 0x8b
	// protocol 3
	opBinBytes      = 'B'
	opShortBinBytes = 'C'
	// protocol 4
	opShortBinUnicode = 0x8c
	opBinUnicode8     = 0x8d
	opBinBytes8       = 0x8e
	opEmptySet        = 0x8f
	opAddItems        = 0x90
	opFrozenSet       = 0x91
	opNewObjEx        = 0x92
	opStackGlobal     = 0x93
	opMemoize         = 0x94
	opFrame           = 0x95
	// protocol 5
	opByteArray8     = 0x96
	opNextBuffer     = 0x97
	opReadOnlyBuffer = 0x98
	highestProtocol  = 5
	maxLineLen       = 1 << 16
	maxIntTextDigits = 1024
	maxLongBytes     = 1024
	streamChunk      = 1 << 20
)

// Decode reads one pickle, up to and including its STOP opcode.
func (d *Decoder) Decode() (Value, error) {
	d.stack, d.marks = d.stack[:0], d.marks[:0]
	d.memo = make(map[int64]Value)
	d.elems, d.bytes = 0, 0
	defer func() { d.stack, d.memo = nil, nil }()
	for {
		at := d.off
		op, err := d.readByte()
		if err != nil {
			if at == d.off && errors.Is(err, io.ErrUnexpectedEOF) && at == 0 {
				return nil, &PickleError{Offset: at, Err: fmt.Errorf("%w: empty pickle", ErrMalformed)}
			}
			return nil, &PickleError{Offset: at, Err: err}
		}
		done, err := d.step(op)
		if err != nil {
			return nil, &PickleError{Offset: at, Op: op, Err: err}
		}
		if done {
			v, err := d.pop()
			if err != nil {
				return nil, &PickleError{Offset: at, Op: op, Err: err}
			}
			return v, nil
		}
	}
}

func malformed(format string, a ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrMalformed}, a...)...)
}

func limit(format string, a ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrLimit}, a...)...)
}

// step runs one opcode; done is true after STOP. The opcodes are grouped
// by what they do, each group in a method of its own.
func (d *Decoder) step(op byte) (done bool, err error) {
	switch op {
	case opStop:
		return true, nil
	case opMark, opPop, opPopMark, opDup,
		opGet, opBinGet, opLongBinGet, opPut, opBinPut, opLongBinPut, opMemoize:
		err = d.stackOp(op)
	case opNone:
		err = d.push(nil)
	case opNewTrue:
		err = d.push(true)
	case opNewFalse:
		err = d.push(false)
	case opFloat, opInt, opLong:
		err = d.textNumber(op)
	case opBinInt, opBinInt1, opBinInt2, opLong1, opLong4, opBinFloat:
		err = d.binaryNumber(op)
	case opString, opBinString, opShortBinString, opUnicode, opBinUnicode, opShortBinUnicode,
		opBinUnicode8, opBinBytes, opShortBinBytes, opBinBytes8, opByteArray8,
		opNextBuffer, opReadOnlyBuffer:
		err = d.dataOp(op)
	case opEmptyTuple, opTuple, opTuple1, opTuple2, opTuple3,
		opEmptyList, opList, opAppend, opAppends:
		err = d.sequenceOp(op)
	case opEmptyDict, opDict, opSetItem, opSetItems, opEmptySet, opAddItems, opFrozenSet:
		err = d.mappingOp(op)
	case opGlobal, opStackGlobal, opExt1, opExt2, opExt4:
		err = d.globalOp(op)
	case opReduce, opNewObj, opNewObjEx, opInst, opObj, opBuild, opPersID, opBinPersID:
		err = d.objectOp(op)
	case opProto:
		var c byte
		if c, err = d.readByte(); err == nil && c > highestProtocol {
			err = malformed("unsupported pickle protocol %d", c)
		}
	case opFrame:
		_, err = d.readN(8) // a buffering hint only
	default:
		err = unknownOpcode(op)
	}
	return false, err
}

func unknownOpcode(op byte) error {
	return malformed("unknown opcode 0x%02x", op)
}

// stackOp runs the opcodes that move values on the stack, set marks on
// it, or keep values in the memo and fetch them back.
func (d *Decoder) stackOp(op byte) error {
	switch op {
	case opMark:
		if len(d.marks) >= d.Limits.MaxElements {
			return limit("more than %d marks", d.Limits.MaxElements)
		}
		d.marks = append(d.marks, len(d.stack))
		return nil
	case opPop:
		if len(d.marks) > 0 && len(d.stack) == d.marks[len(d.marks)-1] {
			d.marks = d.marks[:len(d.marks)-1] // Python pops the mark
			return nil
		}
		_, err := d.pop()
		return err
	case opPopMark:
		_, err := d.popMark()
		return err
	case opDup:
		v, err := d.top()
		if err != nil {
			return err
		}
		return d.push(v)
	case opGet, opBinGet, opLongBinGet:
		idx, err := d.memoIndex(op == opGet, op == opLongBinGet)
		if err != nil {
			return err
		}
		v, ok := d.memo[idx]
		if !ok {
			return malformed("memo key %d not defined", idx)
		}
		return d.push(v)
	case opPut, opBinPut, opLongBinPut:
		idx, err := d.memoIndex(op == opPut, op == opLongBinPut)
		if err != nil {
			return err
		}
		return d.memoPut(idx)
	case opMemoize:
		return d.memoPut(int64(len(d.memo)))
	}
	return unknownOpcode(op)
}

// textNumber runs protocol 0's numbers, each written as a line of text:
// FLOAT, and INT and LONG (INT's "01" and "00" being True and False).
func (d *Decoder) textNumber(op byte) error {
	line, err := d.readLine()
	if err != nil {
		return err
	}
	switch op {
	case opFloat:
		f, err := strconv.ParseFloat(string(line), 64)
		if err != nil {
			return malformed("FLOAT %q", line)
		}
		return d.push(f)
	case opInt:
		if s := string(line); s == "01" || s == "00" {
			return d.push(s == "01")
		}
	case opLong:
		if n := len(line); n > 0 && line[n-1] == 'L' {
			line = line[:n-1]
		}
	}
	v, err := parseIntText(line)
	if err != nil {
		return err
	}
	return d.push(v)
}

// binaryNumber runs the numbers stored in binary: fixed-width integers
// and floats, and LONG1/LONG4's length-prefixed two's complement.
func (d *Decoder) binaryNumber(op byte) error {
	switch op {
	case opBinInt1:
		c, err := d.readByte()
		if err != nil {
			return err
		}
		return d.push(int64(c))
	case opBinInt2:
		b, err := d.readN(2)
		if err != nil {
			return err
		}
		return d.push(int64(binary.LittleEndian.Uint16(b)))
	case opBinInt:
		b, err := d.readN(4)
		if err != nil {
			return err
		}
		return d.push(int64(int32(binary.LittleEndian.Uint32(b))))
	case opBinFloat:
		b, err := d.readN(8)
		if err != nil {
			return err
		}
		return d.push(math.Float64frombits(binary.BigEndian.Uint64(b)))
	case opLong1, opLong4:
		width := 1
		if op == opLong4 {
			width = 4
		}
		n, err := d.readLen(width)
		if err != nil {
			return err
		}
		if n > maxLongBytes {
			return limit("integer of %d bytes", n)
		}
		b, err := d.readN(int(n))
		if err != nil {
			return err
		}
		return d.push(decodeLong(b))
	}
	return unknownOpcode(op)
}

// dataOp runs the opcodes that push str and bytes values: protocol 0's
// quoted lines, and the length-prefixed forms of later protocols.
func (d *Decoder) dataOp(op byte) error {
	switch op {
	case opString:
		line, err := d.readLine()
		if err != nil {
			return err
		}
		s, err := unquotePy(line)
		if err != nil {
			return err
		}
		return d.push(s)
	case opUnicode:
		line, err := d.readLine()
		if err != nil {
			return err
		}
		return d.push(decodeRawUnicodeEscape(line))
	case opShortBinString, opShortBinUnicode:
		return d.pushData(1, true)
	case opBinString, opBinUnicode:
		return d.pushData(4, true)
	case opBinUnicode8:
		return d.pushData(8, true)
	case opShortBinBytes:
		return d.pushData(1, false)
	case opBinBytes:
		return d.pushData(4, false)
	case opBinBytes8, opByteArray8:
		return d.pushData(8, false)
	case opNextBuffer:
		return malformed("out-of-band buffers (protocol 5) are not supported")
	case opReadOnlyBuffer:
		_, err := d.top()
		return err
	}
	return unknownOpcode(op)
}

// sequenceOp runs the opcodes that build tuples and lists.
func (d *Decoder) sequenceOp(op byte) error {
	switch op {
	case opEmptyTuple:
		return d.push(Tuple{})
	case opTuple:
		items, err := d.popMark()
		if err != nil {
			return err
		}
		return d.push(Tuple(items))
	case opTuple1, opTuple2, opTuple3:
		items, err := d.popN(int(op-opTuple1) + 1)
		if err != nil {
			return err
		}
		return d.push(slices.Clone(Tuple(items)))
	case opEmptyList:
		return d.push(&List{})
	case opList:
		items, err := d.popMark()
		if err != nil {
			return err
		}
		return d.push(&List{Items: items})
	case opAppend:
		v, err := d.pop()
		if err != nil {
			return err
		}
		return d.appendTo([]Value{v})
	case opAppends:
		items, err := d.popMark()
		if err != nil {
			return err
		}
		return d.appendTo(items)
	}
	return unknownOpcode(op)
}

// mappingOp runs the opcodes that build dicts and sets.
func (d *Decoder) mappingOp(op byte) error {
	switch op {
	case opEmptyDict:
		return d.push(&Dict{})
	case opDict:
		items, err := d.popMark()
		if err != nil {
			return err
		}
		if len(items)%2 != 0 {
			return malformed("DICT with an odd number of items")
		}
		dict := &Dict{}
		for i := 0; i < len(items); i += 2 {
			dict.Set(items[i], items[i+1])
		}
		return d.push(dict)
	case opSetItem:
		if len(d.stack)-d.floor() < 3 { // the key, the value and the dict below
			return malformed("stack underflow")
		}
		kv, _ := d.popN(2)
		return d.setItems([]Value{kv[0], kv[1]})
	case opSetItems:
		items, err := d.popMark()
		if err != nil {
			return err
		}
		if len(items)%2 != 0 {
			return malformed("SETITEMS with an odd number of items")
		}
		return d.setItems(items)
	case opEmptySet:
		return d.push(&Set{})
	case opAddItems:
		return d.addItems()
	case opFrozenSet:
		items, err := d.popMark()
		if err != nil {
			return err
		}
		return d.push(&Set{Items: items, Frozen: true})
	}
	return unknownOpcode(op)
}

// addItems runs ADDITEMS: the items above the mark join the set below it.
func (d *Decoder) addItems() error {
	items, err := d.popMark()
	if err != nil {
		return err
	}
	top, err := d.top()
	if err != nil {
		return err
	}
	s, ok := top.(*Set)
	if !ok {
		return malformed("ADDITEMS to %s", typeName(top))
	}
	s.Items = append(s.Items, items...)
	return nil
}

// globalOp runs the opcodes that name a class or function: GLOBAL and
// STACK_GLOBAL through findClass, and the copyreg extension codes.
func (d *Decoder) globalOp(op byte) error {
	switch op {
	case opGlobal:
		mod, name, err := d.readName()
		if err != nil {
			return err
		}
		return d.push(d.findClass(mod, name))
	case opStackGlobal:
		if len(d.stack)-d.floor() < 2 {
			return malformed("stack underflow")
		}
		n := len(d.stack)
		mod, ok1 := d.stack[n-2].(string)
		name, ok2 := d.stack[n-1].(string)
		if !ok1 || !ok2 {
			return malformed("STACK_GLOBAL of %s and %s", typeName(d.stack[n-2]), typeName(d.stack[n-1]))
		}
		d.stack = d.stack[:n-2]
		return d.push(d.findClass(mod, name))
	case opExt1, opExt2, opExt4:
		width := 1
		switch op {
		case opExt2:
			width = 2
		case opExt4:
			width = 4
		}
		b, err := d.readN(width)
		if err != nil {
			return err
		}
		var code uint64
		for i := len(b) - 1; i >= 0; i-- {
			code = code<<8 | uint64(b[i])
		}
		return d.push(&Global{Module: "copyreg", Name: fmt.Sprintf("extension_%d", code)})
	}
	return unknownOpcode(op)
}

// readName reads the module and name lines of GLOBAL and INST.
func (d *Decoder) readName() (module, name string, err error) {
	mod, err := d.readLine()
	if err != nil {
		return "", "", err
	}
	nm, err := d.readLine()
	if err != nil {
		return "", "", err
	}
	return string(mod), string(nm), nil
}

// objectOp runs the opcodes that make and fill objects: calls of a class
// or function (REDUCE, NEWOBJ, NEWOBJ_EX, INST, OBJ), BUILD's state, and
// persistent IDs.
func (d *Decoder) objectOp(op byte) error {
	switch op {
	case opReduce, opNewObj, opNewObjEx:
		n := 2
		if op == opNewObjEx {
			n = 3 // the keyword arguments are dropped
		}
		top, err := d.popN(n)
		if err != nil {
			return err
		}
		return d.callPush(top[0], top[1])
	case opInst:
		mod, name, err := d.readName()
		if err != nil {
			return err
		}
		items, err := d.popMark()
		if err != nil {
			return err
		}
		return d.callPush(d.findClass(mod, name), Tuple(items))
	case opObj:
		items, err := d.popMark()
		if err != nil {
			return err
		}
		if len(items) == 0 {
			return malformed("OBJ without a class")
		}
		return d.callPush(items[0], Tuple(items[1:]))
	case opBuild:
		state, err := d.pop()
		if err != nil {
			return err
		}
		top, err := d.top()
		if err != nil {
			return err
		}
		return build(top, state)
	case opPersID, opBinPersID:
		return d.persistentID(op == opBinPersID)
	}
	return unknownOpcode(op)
}

// callPush calls fn with args and pushes what it returns.
func (d *Decoder) callPush(fn, args Value) error {
	v, err := d.call(fn, args)
	if err != nil {
		return err
	}
	return d.push(v)
}

// persistentID runs PERSID, whose ID is a line of text, and BINPERSID,
// whose ID is popped from the stack, pushing what the ID resolves to.
func (d *Decoder) persistentID(fromStack bool) error {
	var pid Value
	if fromStack {
		v, err := d.pop()
		if err != nil {
			return err
		}
		pid = v
	} else {
		line, err := d.readLine()
		if err != nil {
			return err
		}
		pid = string(line)
	}
	v, err := d.persistentLoad(pid)
	if err != nil {
		return err
	}
	return d.push(v)
}

// floor is the stack index above the innermost mark: opcodes other than
// the mark-consuming ones never reach below it.
func (d *Decoder) floor() int {
	if len(d.marks) == 0 {
		return 0
	}
	return d.marks[len(d.marks)-1]
}

// popN removes the top n values above the innermost mark and returns
// them; the slice is valid only until the next push.
func (d *Decoder) popN(n int) ([]Value, error) {
	if len(d.stack)-d.floor() < n {
		return nil, malformed("stack underflow")
	}
	top := d.stack[len(d.stack)-n:]
	d.stack = d.stack[:len(d.stack)-n]
	return top, nil
}

func (d *Decoder) push(v Value) error {
	d.elems++
	if d.elems > d.Limits.MaxElements {
		return limit("more than %d values", d.Limits.MaxElements)
	}
	d.stack = append(d.stack, v)
	return nil
}

func (d *Decoder) pop() (Value, error) {
	if len(d.stack) <= d.floor() {
		return nil, malformed("stack underflow")
	}
	v := d.stack[len(d.stack)-1]
	d.stack = d.stack[:len(d.stack)-1]
	return v, nil
}

func (d *Decoder) top() (Value, error) {
	if len(d.stack) <= d.floor() {
		return nil, malformed("stack underflow")
	}
	return d.stack[len(d.stack)-1], nil
}

// popMark pops everything above the innermost mark, and the mark.
func (d *Decoder) popMark() ([]Value, error) {
	if len(d.marks) == 0 {
		return nil, malformed("no mark on the stack")
	}
	m := d.marks[len(d.marks)-1]
	d.marks = d.marks[:len(d.marks)-1]
	items := make([]Value, len(d.stack)-m)
	copy(items, d.stack[m:])
	d.stack = d.stack[:m]
	return items, nil
}

func (d *Decoder) appendTo(items []Value) error {
	top, err := d.top()
	if err != nil {
		return err
	}
	switch c := top.(type) {
	case *List:
		c.Items = append(c.Items, items...)
	case *Set:
		c.Items = append(c.Items, items...)
	case *Object:
		c.Items = append(c.Items, items...)
	default:
		return malformed("APPEND to %s", typeName(top))
	}
	return nil
}

func (d *Decoder) setItems(kv []Value) error {
	top, err := d.top()
	if err != nil {
		return err
	}
	var dict *Dict
	switch c := top.(type) {
	case *Dict:
		dict = c
	case *Object:
		if c.Dict == nil {
			c.Dict = &Dict{}
		}
		dict = c.Dict
	default:
		return malformed("SETITEM on %s", typeName(top))
	}
	for i := 0; i+1 < len(kv); i += 2 {
		dict.Set(kv[i], kv[i+1])
	}
	return nil
}

func (d *Decoder) memoIndex(text, long bool) (int64, error) {
	if text {
		line, err := d.readLine()
		if err != nil {
			return 0, err
		}
		n, err := strconv.ParseInt(string(line), 10, 64)
		if err != nil {
			return 0, malformed("memo index %q", line)
		}
		return n, nil
	}
	if long {
		b, err := d.readN(4)
		if err != nil {
			return 0, err
		}
		return int64(binary.LittleEndian.Uint32(b)), nil
	}
	c, err := d.readByte()
	return int64(c), err
}

func (d *Decoder) memoPut(idx int64) error {
	v, err := d.top()
	if err != nil {
		return err
	}
	if _, ok := d.memo[idx]; !ok && len(d.memo) >= d.Limits.MaxMemo {
		return limit("more than %d memo entries", d.Limits.MaxMemo)
	}
	d.memo[idx] = v
	return nil
}

func (d *Decoder) findClass(module, name string) Value {
	if d.FindClass != nil {
		return d.FindClass(module, name)
	}
	return Lookup(module, name)
}

func (d *Decoder) persistentLoad(pid Value) (Value, error) {
	if d.PersistentLoad == nil {
		return &Object{Module: "pickle", Name: "persistent_id", Args: Tuple{pid}}, nil
	}
	return d.PersistentLoad(pid)
}

// call is what REDUCE, NEWOBJ, INST and OBJ do: known classes run their Go
// code, unknown ones become opaque Objects. Known classes may copy their
// arguments (list(x), _codecs.encode(s)), so the copy counts towards the
// limits as if the pickle had spelled it out.
func (d *Decoder) call(fn, args Value) (Value, error) {
	if _, known := fn.(Callable); known {
		items, _ := args.(Tuple)
		for _, a := range items {
			switch a := a.(type) {
			case Tuple:
				d.elems += len(a)
			case *List:
				d.elems += len(a.Items)
			case *Set:
				d.elems += len(a.Items)
			case *Dict:
				d.elems += a.Len()
			case string:
				d.bytes += int64(len(a))
			case []byte:
				d.bytes += int64(len(a))
			}
		}
		if d.elems > d.Limits.MaxElements {
			return nil, limit("more than %d values", d.Limits.MaxElements)
		}
		if d.bytes > d.Limits.MaxBytes {
			return nil, limit("more than %d bytes of str and bytes values", d.Limits.MaxBytes)
		}
	}
	return call(fn, args)
}

func call(fn, args Value) (Value, error) {
	t, ok := args.(Tuple)
	if !ok {
		if args != nil {
			return nil, malformed("call with %s arguments", typeName(args))
		}
		t = Tuple{}
	}
	switch f := fn.(type) {
	case Callable:
		return f.Call(t)
	case *Global:
		return &Object{Module: f.Module, Name: f.Name, Args: t}, nil
	case *Object:
		return &Object{Module: f.Module, Name: f.Name + "()", Args: t}, nil
	case *StorageType:
		return &Object{Module: "torch", Name: f.Name, Args: t}, nil
	}
	return nil, malformed("call of %s", typeName(fn))
}

// build is BUILD: it hands state to the value on top of the stack.
func build(top, state Value) error {
	switch t := top.(type) {
	case Stateful:
		return t.SetState(state)
	case *Object:
		t.State = state
	case *Dict:
		t.State = state
	}
	return nil // anything else keeps no state: never an error
}

// Reading primitives. Every read counts towards Offset.

func (d *Decoder) readByte() (byte, error) {
	if d.off >= d.Limits.MaxPickle {
		return 0, limit("pickle longer than %d bytes", d.Limits.MaxPickle)
	}
	c, err := d.r.ReadByte()
	if err != nil {
		return 0, eofErr(err)
	}
	d.off++
	return c, nil
}

func eofErr(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: %w", ErrMalformed, io.ErrUnexpectedEOF)
	}
	return err
}

// readN reads a small fixed-size field.
func (d *Decoder) readN(n int) ([]byte, error) {
	if d.off+int64(n) > d.Limits.MaxPickle {
		return nil, limit("pickle longer than %d bytes", d.Limits.MaxPickle)
	}
	b := make([]byte, n)
	m, err := io.ReadFull(d.r, b)
	d.off += int64(m)
	if err != nil {
		return nil, eofErr(err)
	}
	return b, nil
}

// readLine reads up to a newline (protocol 0 arguments), without it.
func (d *Decoder) readLine() ([]byte, error) {
	var line []byte
	for {
		c, err := d.readByte()
		if err != nil {
			return nil, err
		}
		if c == '\n' {
			break
		}
		if len(line) >= maxLineLen {
			return nil, limit("text argument longer than %d bytes", maxLineLen)
		}
		line = append(line, c)
	}
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, nil
}

// readLen reads a little-endian length field of n bytes.
func (d *Decoder) readLen(n int) (uint64, error) {
	b, err := d.readN(n)
	if err != nil {
		return 0, err
	}
	var v uint64
	for i := n - 1; i >= 0; i-- {
		v = v<<8 | uint64(b[i])
	}
	return v, nil
}

// pushData reads a length-prefixed str or bytes value. Values up to
// MaxBlob are kept (within the MaxBytes budget); larger ones are hashed
// while streaming and become a *Blob, so no declared length makes the
// Decoder allocate more than the bytes really present.
func (d *Decoder) pushData(lenBytes int, text bool) error {
	n, err := d.readLen(lenBytes)
	if err != nil {
		return err
	}
	if n > uint64(d.Limits.MaxPickle-d.off) {
		return limit("value of %d bytes in a pickle limited to %d", n, d.Limits.MaxPickle)
	}
	if int64(n) > d.Limits.MaxBlob {
		b, err := d.readBlob(int64(n), text)
		if err != nil {
			return err
		}
		return d.push(b)
	}
	if d.bytes+int64(n) > d.Limits.MaxBytes {
		return limit("more than %d bytes of str and bytes values", d.Limits.MaxBytes)
	}
	d.bytes += int64(n)
	buf := make([]byte, 0, min(n, streamChunk))
	for uint64(len(buf)) < n {
		k := min(n-uint64(len(buf)), streamChunk)
		buf = append(buf, make([]byte, k)...)
		m, err := io.ReadFull(d.r, buf[uint64(len(buf))-k:])
		d.off += int64(m)
		if err != nil {
			return eofErr(err)
		}
	}
	if text {
		return d.push(string(buf))
	}
	return d.push(buf)
}

// readBlob streams n bytes through BLAKE3; for text, also through a
// latin-1 encoder and its own hash.
func (d *Decoder) readBlob(n int64, text bool) (*Blob, error) {
	h := digest.New()
	var l1 *latin1Hasher
	if text {
		l1 = &latin1Hasher{h: digest.New(), ok: true}
	}
	buf := make([]byte, 64<<10)
	for left := n; left > 0; {
		k := min(left, int64(len(buf)))
		m, err := io.ReadFull(d.r, buf[:k])
		d.off += int64(m)
		if err != nil {
			return nil, eofErr(err)
		}
		h.Write(buf[:k])
		if l1 != nil {
			l1.write(buf[:k])
		}
		left -= k
	}
	b := &Blob{Len: n, Digest: digest.FromHash(h), Text: text}
	if l1 != nil && l1.ok && len(l1.pending) == 0 {
		b.Latin1 = &Blob{Len: l1.n, Digest: digest.FromHash(l1.h)}
	}
	return b, nil
}

// latin1Hasher hashes the latin-1 encoding of a UTF-8 stream.
type latin1Hasher struct {
	h       hash.Hash
	pending []byte
	out     []byte
	n       int64
	ok      bool
}

func (l *latin1Hasher) write(p []byte) {
	if !l.ok {
		return
	}
	p = append(l.pending, p...)
	l.out = l.out[:0]
	for len(p) > 0 {
		if !utf8.FullRune(p) {
			break
		}
		r, size := utf8.DecodeRune(p)
		if r > 0xff || (r == utf8.RuneError && size == 1) {
			l.ok = false
			return
		}
		l.out = append(l.out, byte(r))
		p = p[size:]
	}
	l.pending = append(l.pending[:0], p...)
	l.h.Write(l.out)
	l.n += int64(len(l.out))
}

// decodeLong reads a little-endian two's complement integer.
func decodeLong(b []byte) Value {
	if len(b) == 0 {
		return int64(0)
	}
	if len(b) <= 8 {
		var v uint64
		for i := len(b) - 1; i >= 0; i-- {
			v = v<<8 | uint64(b[i])
		}
		shift := uint(64 - 8*len(b))
		return int64(v<<shift) >> shift
	}
	be := make([]byte, len(b))
	for i := range b {
		be[len(b)-1-i] = b[i]
	}
	v := new(big.Int).SetBytes(be)
	if b[len(b)-1]&0x80 != 0 {
		v.Sub(v, new(big.Int).Lsh(big.NewInt(1), uint(8*len(b))))
	}
	return normInt(v)
}

func normInt(v *big.Int) Value {
	if v.IsInt64() {
		return v.Int64()
	}
	return v
}

func parseIntText(line []byte) (Value, error) {
	if len(line) > maxIntTextDigits {
		return nil, limit("integer of %d digits", len(line))
	}
	if n, err := strconv.ParseInt(string(line), 10, 64); err == nil {
		return n, nil
	}
	v, ok := new(big.Int).SetString(string(line), 10)
	if !ok {
		return nil, malformed("integer %q", line)
	}
	return normInt(v), nil
}

// unquotePy reads a protocol 0 STRING argument: a Python 2 str repr.
func unquotePy(line []byte) (string, error) {
	if len(line) < 2 || (line[0] != '\'' && line[0] != '"') || line[len(line)-1] != line[0] {
		return "", malformed("STRING argument %q is not quoted", line)
	}
	s := line[1 : len(line)-1]
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' || i+1 == len(s) {
			out = append(out, c)
			continue
		}
		i++
		switch e := s[i]; e {
		case 'n':
			out = append(out, '\n')
		case 't':
			out = append(out, '\t')
		case 'r':
			out = append(out, '\r')
		case 'a':
			out = append(out, 7)
		case 'b':
			out = append(out, 8)
		case 'f':
			out = append(out, 12)
		case 'v':
			out = append(out, 11)
		case 'x':
			if i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]) {
				v, _ := strconv.ParseUint(string(s[i+1:i+3]), 16, 8)
				out = append(out, byte(v))
				i += 2
			} else {
				return "", malformed("bad \\x escape in %q", line)
			}
		case '0', '1', '2', '3', '4', '5', '6', '7':
			j := i
			for j < len(s) && j < i+3 && s[j] >= '0' && s[j] <= '7' {
				j++
			}
			v, _ := strconv.ParseUint(string(s[i:j]), 8, 16)
			out = append(out, byte(v))
			i = j - 1
		case '\n':
		default: // \\, \', \" and unknown escapes, which Python keeps
			if e != '\\' && e != '\'' && e != '"' {
				out = append(out, '\\')
			}
			out = append(out, e)
		}
	}
	return string(out), nil
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

// decodeRawUnicodeEscape reads a protocol 0 UNICODE argument: latin-1
// bytes with \uXXXX and \UXXXXXXXX escapes.
func decodeRawUnicodeEscape(b []byte) string {
	out := make([]rune, 0, len(b))
	for i := 0; i < len(b); i++ {
		if b[i] == '\\' && i+1 < len(b) && (b[i+1] == 'u' || b[i+1] == 'U') {
			n := 4
			if b[i+1] == 'U' {
				n = 8
			}
			if i+2+n <= len(b) {
				if v, err := strconv.ParseUint(string(b[i+2:i+2+n]), 16, 32); err == nil && v <= utf8.MaxRune {
					out = append(out, rune(v))
					i += 1 + n
					continue
				}
			}
		}
		out = append(out, rune(b[i]))
	}
	return string(out)
}
