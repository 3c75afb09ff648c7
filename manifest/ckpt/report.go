package ckpt

import (
	"archive/zip"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/bits"

	"github.com/cas-ml/cas/digest"
)

// Formats Inspect recognises, by content.
const (
	FormatTorchZip    = "torch-zip"    // torch.save since PyTorch 1.6
	FormatTorchLegacy = "torch-legacy" // torch.save before 1.6, or _use_new_zipfile_serialization=False
	FormatPickle      = "pickle"       // a plain pickle (storages, if any, cannot be located)
	FormatNpy         = "npy"
	FormatNpz         = "npz"
	FormatSafetensors = "safetensors"
)

// ErrFormat reports a file that is none of the formats Inspect reads.
var ErrFormat = errors.New("not a checkpoint format cas reads")

// Report is what Inspect finds in a checkpoint file. Its JSON form is
// documented in docs/checkpoints.md and pinned by golden files.
type Report struct {
	Name   string `json:"name,omitempty"`
	Format string `json:"format"`
	Size   int64  `json:"size"`
	// ByteOrder is the byte order torch recorded ("little" or "big");
	// empty for formats that record it per tensor.
	ByteOrder string     `json:"byte_order,omitempty"`
	Tensors   []Tensor   `json:"tensors"`
	RNG       []RNGState `json:"rng_states"`
	// Optimizers are the paths of optimizer state dicts: dicts holding
	// both "state" and "param_groups".
	Optimizers []string `json:"optimizer_states,omitempty"`
	// Metadata is a safetensors file's __metadata__.
	Metadata map[string]string `json:"metadata,omitempty"`
	// Problems are what could not be read; the rest of the report stands.
	Problems []string `json:"problems,omitempty"`
}

// Tensor is one tensor or array of a checkpoint.
type Tensor struct {
	// Path is where the tensor sits in the object graph: dict keys and
	// list indices joined by "." (e.g. "model_state_dict.0.weight"); the
	// tensor name in safetensors, the member name without .npy in npz,
	// empty for a bare tensor or an .npy file.
	Path  string  `json:"path"`
	DType string  `json:"dtype"`
	Shape []int64 `json:"shape"`
	// Bytes is the size of its elements: numel × element size.
	Bytes int64 `json:"bytes"`
	// Digest is BLAKE3-256 of its elements in row-major (C) order, as
	// stored (no byte swapping): for a contiguous tensor exactly its
	// slice of the storage. Absent when the data could not be read.
	Digest digest.Digest `json:"digest,omitzero"`
	// Storage names where the bytes are: a torch storage key (the zip
	// member data/KEY), an npz member, "pickle" for an array inside the
	// pickle, or empty for the file itself (npy, safetensors).
	Storage string `json:"storage,omitempty"`
	// Offset is the byte offset of the first element within Storage.
	Offset int64 `json:"offset"`
	// FileOffset is the offset of the first element in the file, when
	// the bytes lie uncompressed there.
	FileOffset int64 `json:"file_offset,omitempty"`
	// Device is the torch storage location ("cpu", "cuda:0", …).
	Device string `json:"device,omitempty"`
	// NonContiguous marks a view whose elements are not one run of
	// storage; its digest is over the gathered elements.
	NonContiguous bool `json:"non_contiguous,omitempty"`
	// Endian is "big" for big-endian data; empty means little-endian.
	Endian string `json:"endian,omitempty"`
	// RNG is the kind of RNG state this tensor is, if it is one.
	RNG string `json:"rng,omitempty"`
}

func (r *Report) problem(format string, a ...any) {
	if len(r.Problems) < 1000 {
		r.Problems = append(r.Problems, fmt.Sprintf(format, a...))
	}
}

// Inspect reads a checkpoint and reports its tensors and RNG states. The
// format is found from the content: a torch zip or legacy checkpoint, a
// plain pickle, numpy .npy or .npz, or safetensors. name is used in
// messages and the report only.
//
// Pickles are parsed, never executed. Whatever the bytes claim, the work
// is bounded by DefaultLimits: tensors are hashed by streaming, and
// malformed input yields an error wrapping ErrFormat, ErrMalformed or
// ErrLimit, or a report listing Problems.
func Inspect(r io.ReaderAt, size int64, name string) (_ *Report, err error) {
	defer wrapError(&err)
	return inspectLimits(r, size, name, DefaultLimits)
}

func inspectLimits(r io.ReaderAt, size int64, name string, lim Limits) (*Report, error) {
	in := &input{r: r, size: size, lim: lim}
	rep, err := in.inspect()
	if err != nil {
		return nil, fmt.Errorf("inspect %s: %w", name, err)
	}
	rep.Name, rep.Size = name, size
	if rep.Tensors == nil {
		rep.Tensors = []Tensor{}
	}
	if rep.RNG == nil {
		rep.RNG = []RNGState{}
	}
	return rep, nil
}

// input is the file being inspected.
type input struct {
	r    io.ReaderAt
	size int64
	lim  Limits
	// hashed counts the bytes hashed so far; views of shared storages
	// may not make it exceed hashBudget.
	hashed int64
	// digests remembers the digest of each view hashed, for tensors
	// that share a storage (tied weights).
	digests map[string]digest.Digest
}

// hashBudget bounds the bytes hashed for one file: twice its size plus
// 64 MiB is more than any real checkpoint's views need, and stops a
// file of many large views of one storage.
func (in *input) hashBudget() int64 { return 2*in.size + 64<<20 }

func (in *input) inspect() (*Report, error) {
	head := make([]byte, 16)
	n, err := in.r.ReadAt(head, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	head = head[:min(int64(n), in.size)]
	switch {
	case bytes.HasPrefix(head, []byte("PK\x03\x04")) || bytes.HasPrefix(head, []byte("PK\x05\x06")):
		zr, err := zip.NewReader(in.r, in.size)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
		}
		if pkl := torchPickle(zr); pkl != nil {
			return readTorchZip(in, zr, pkl)
		}
		for _, f := range zr.File {
			if len(f.Name) > 4 && f.Name[len(f.Name)-4:] == ".npy" {
				return in.readNpz(zr)
			}
		}
		return nil, fmt.Errorf("%w: a zip without data.pkl or .npy members", ErrFormat)
	case bytes.HasPrefix(head, []byte("\x93NUMPY")):
		return in.readNpy()
	case len(head) >= 2 && head[0] == opProto && head[1] <= highestProtocol:
		rep, err := readTorchLegacy(in)
		if errors.Is(err, ErrFormat) {
			return in.readPickle()
		}
		return rep, err
	case looksSafetensors(head, in.size):
		return in.readSafetensors()
	}
	return nil, ErrFormat
}

// readPickle reads a file that is one pickle (torch.save(…,
// pickle_module=pickle) of plain Python values, a pickled RNG state).
func (in *input) readPickle() (*Report, error) {
	dec := NewDecoder(io.NewSectionReader(in.r, 0, in.size))
	dec.Limits = in.lim
	loader := &storageLoader{refs: map[string]*StorageRef{}}
	dec.PersistentLoad = loader.load
	root, err := dec.Decode()
	if err != nil {
		return nil, err
	}
	rep := &Report{Format: FormatPickle}
	if err := in.inspectGraph(rep, root, map[string]region{}); err != nil {
		return nil, err
	}
	return rep, nil
}

// region is a run of bytes of the file: uncompressed in it (ra), inside a
// compressed zip member (zf, from the member's uncompressed offset off),
// or in memory.
type region struct {
	ra   io.ReaderAt
	zf   *zip.File
	mem  []byte
	off  int64
	size int64
}

// open returns a reader of n bytes from off within the region.
func (g region) open(off, n int64) (io.ReadCloser, error) {
	if off < 0 || n < 0 || off > g.size || n > g.size-off {
		return nil, fmt.Errorf("%w: range %d+%d outside %d bytes", ErrMalformed, off, n, g.size)
	}
	switch {
	case g.mem != nil:
		return io.NopCloser(bytes.NewReader(g.mem[off : off+n])), nil
	case g.ra != nil:
		return io.NopCloser(io.NewSectionReader(g.ra, g.off+off, n)), nil
	case g.zf != nil:
		rc, err := g.zf.Open()
		if err != nil {
			return nil, err
		}
		if _, err := io.CopyN(io.Discard, rc, g.off+off); err != nil {
			rc.Close()
			return nil, fmt.Errorf("%w: %s: %w", ErrMalformed, g.zf.Name, err)
		}
		return struct {
			io.Reader
			io.Closer
		}{io.LimitReader(rc, n), rc}, nil
	}
	return nil, fmt.Errorf("%w: empty region", ErrMalformed)
}

// fileOffset is the file offset of off within the region, or 0 when its
// bytes are not stored plainly in the file.
func (g region) fileOffset(off int64) int64 {
	if g.ra == nil {
		return 0
	}
	return g.off + off
}

// hash returns BLAKE3 of n bytes from off.
func (g region) hash(off, n int64) (digest.Digest, error) {
	rc, err := g.open(off, n)
	if err != nil {
		return digest.Zero, err
	}
	defer rc.Close()
	d, got, err := digest.FromReader(rc)
	if err != nil {
		return digest.Zero, err
	}
	if got != n {
		return digest.Zero, fmt.Errorf("%w: %d of %d bytes", ErrMalformed, got, n)
	}
	return d, nil
}

// read returns n bytes from off.
func (g region) read(off, n int64) ([]byte, error) {
	rc, err := g.open(off, n)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b := make([]byte, n)
	if _, err := io.ReadFull(rc, b); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return b, nil
}

// maxZipRatio bounds how much a compressed zip member may claim to expand:
// deflate cannot exceed about 1032:1, so a member declaring more is a bomb.
const maxZipRatio = 1100

// checkMember rejects zip members whose declared sizes cannot be true.
func checkMember(in *input, f *zip.File) error {
	off, err := f.DataOffset()
	if err != nil {
		return fmt.Errorf("%w: zip member %s: %w", ErrMalformed, f.Name, err)
	}
	if f.CompressedSize64 > uint64(in.size) || off > in.size-int64(f.CompressedSize64) {
		return fmt.Errorf("%w: zip member %s declares %d bytes past the end of the file", ErrMalformed, f.Name, f.CompressedSize64)
	}
	switch f.Method {
	case zip.Store:
		if f.CompressedSize64 != f.UncompressedSize64 {
			return fmt.Errorf("%w: stored zip member %s declares %d bytes in %d", ErrMalformed, f.Name, f.UncompressedSize64, f.CompressedSize64)
		}
	default:
		if f.UncompressedSize64/maxZipRatio > f.CompressedSize64+1024 {
			return fmt.Errorf("%w: zip member %s declares %d bytes from %d compressed (zip bomb?)", ErrLimit, f.Name, f.UncompressedSize64, f.CompressedSize64)
		}
	}
	return nil
}

// memberRegion locates a zip member's uncompressed bytes.
func memberRegion(in *input, f *zip.File) (region, error) {
	if err := checkMember(in, f); err != nil {
		return region{}, err
	}
	size := int64(f.UncompressedSize64)
	if f.Method == zip.Store {
		off, _ := f.DataOffset()
		return region{ra: in.r, off: off, size: size}, nil
	}
	return region{zf: f, size: size}, nil
}

// openMember opens a zip member for streaming, after the same checks.
func openMember(in *input, f *zip.File) (io.ReadCloser, error) {
	if err := checkMember(in, f); err != nil {
		return nil, err
	}
	rc, err := f.Open()
	if err != nil {
		return nil, fmt.Errorf("%w: zip member %s: %w", ErrMalformed, f.Name, err)
	}
	return rc, nil
}

// mulNonNeg multiplies non-negative numbers, false on overflow.
func mulNonNeg(a, b int64) (int64, bool) {
	if a < 0 || b < 0 {
		return 0, false
	}
	hi, lo := bits.Mul64(uint64(a), uint64(b))
	if hi != 0 || lo > 1<<62 {
		return 0, false
	}
	return int64(lo), true
}

// addNonNeg adds non-negative numbers, false on overflow.
func addNonNeg(a, b int64) (int64, bool) {
	if a < 0 || b < 0 || a > 1<<62 || b > 1<<62 {
		return 0, false
	}
	return a + b, true
}

// hashTensor fills t's Bytes, Offset and Digest from the elements at
// offset (in elements) with shape and stride, in a storage whose element
// 0 is at byte base of g. A tensor that cannot be read gets a problem and
// no digest.
func (in *input) hashTensor(rep *Report, t *Tensor, g region, base, elem, offset int64, shape, stride []int64) {
	if t.Shape == nil {
		t.Shape = []int64{}
	}
	if err := in.digestTensor(t, g, base, elem, offset, shape, stride); err != nil {
		rep.problem("%s: %v", displayPath(t.Path), err)
	}
}

// digestTensor does hashTensor's work, filling in what it could learn
// before any error; the error is the tensor's problem.
func (in *input) digestTensor(t *Tensor, g region, base, elem, offset int64, shape, stride []int64) error {
	n, ok1 := numel(shape)
	nbytes, ok2 := mulNonNeg(n, elem)
	if !ok1 || !ok2 || len(shape) != len(stride) {
		return fmt.Errorf("shape %v does not describe a tensor that can exist", shape)
	}
	t.Bytes = nbytes
	start, ok := mulNonNeg(offset, elem)
	if ok {
		start, ok = addNonNeg(base, start)
	}
	if !ok {
		return fmt.Errorf("offset %d out of range", offset)
	}
	t.Offset = start
	if n == 0 {
		t.Digest = digest.Of(nil)
		return nil
	}
	v := tensorView{start: start, nbytes: nbytes, elem: elem, shape: shape, stride: stride}
	if err := v.measure(); err != nil {
		return err
	}
	if start > g.size || v.span > g.size-start {
		return fmt.Errorf("data runs past the end of its storage (%d bytes from offset %d of %d)", v.span, start, g.size)
	}
	t.NonContiguous = !v.contiguous
	t.FileOffset = g.fileOffset(start)
	key := v.cacheKey(g)
	if d, ok := in.digests[key]; ok && key != "" {
		t.Digest = d
		return nil
	}
	d, err := in.hashView(g, v)
	if err != nil {
		return err
	}
	t.Digest = d
	if key != "" {
		if in.digests == nil {
			in.digests = map[string]digest.Digest{}
		}
		in.digests[key] = d
	}
	return nil
}

// A tensorView is where a tensor's elements lie in its storage.
type tensorView struct {
	start  int64 // byte offset of the first element in the region
	nbytes int64 // bytes of the elements
	span   int64 // bytes from the first element to the end of the last
	elem   int64 // bytes of one element
	shape  []int64
	stride []int64 // in elements
	// contiguous: the elements lie back to back in row-major order.
	contiguous bool
}

// measure sets the view's span and contiguous from its shape and stride,
// refusing strides that are negative or reach beyond int64.
func (v *tensorView) measure() error {
	last := int64(0) // element index of the last element, from the first
	contiguous, want := true, int64(1)
	for i := len(v.shape) - 1; i >= 0; i-- {
		if v.stride[i] < 0 {
			return fmt.Errorf("negative stride %v", v.stride)
		}
		span, ok := mulNonNeg(v.shape[i]-1, v.stride[i])
		if ok {
			last, ok = addNonNeg(last, span)
		}
		if !ok {
			return fmt.Errorf("strides %v out of range", v.stride)
		}
		if v.shape[i] != 1 {
			if v.stride[i] != want {
				contiguous = false
			}
			want *= v.shape[i]
		}
	}
	span, ok := mulNonNeg(last+1, v.elem)
	if !ok {
		return fmt.Errorf("strides %v out of range", v.stride)
	}
	v.span, v.contiguous = span, contiguous
	return nil
}

// cacheKey names the view of g in input.digests, so that tensors sharing
// a storage view are hashed once; "" for a region held in memory, whose
// views are not remembered.
func (v tensorView) cacheKey(g region) string {
	if g.mem != nil {
		return ""
	}
	zname := ""
	if g.zf != nil {
		zname = g.zf.Name
	}
	return fmt.Sprint(g.off, g.size, zname, v.start, v.elem, v.shape, v.stride)
}

// hashView hashes the view's elements in row-major order, within the
// file's hash budget; a non-contiguous view is gathered in memory first,
// within MaxGather.
func (in *input) hashView(g region, v tensorView) (digest.Digest, error) {
	work := v.nbytes
	if !v.contiguous {
		if v.span > in.lim.MaxGather || v.nbytes > 4*in.lim.MaxGather {
			return digest.Digest{}, fmt.Errorf("non-contiguous view of %d bytes too large to gather for its digest", v.nbytes)
		}
		work += v.span
	}
	if in.hashed+work > in.hashBudget() {
		return digest.Digest{}, fmt.Errorf("not hashed: views of shared storages would hash more than %d bytes", in.hashBudget())
	}
	in.hashed += work
	if v.contiguous {
		return g.hash(v.start, v.nbytes)
	}
	buf, err := g.read(v.start, v.span)
	if err != nil {
		return digest.Digest{}, err
	}
	return gatherDigest(buf, v.elem, v.shape, v.stride), nil
}

// gatherDigest hashes the elements of a strided view of buf in row-major
// order; the caller has checked every index is inside buf.
func gatherDigest(buf []byte, elem int64, shape, stride []int64) digest.Digest {
	h := digest.New()
	nd := len(shape)
	runDims, run := nd, elem
	if nd > 0 && stride[nd-1] == 1 {
		runDims, run = nd-1, shape[nd-1]*elem
	}
	idx := make([]int64, runDims)
	out := make([]byte, 0, 64<<10)
	for {
		pos := int64(0)
		for i := range idx {
			pos += idx[i] * stride[i]
		}
		out = append(out, buf[pos*elem:pos*elem+run]...)
		if len(out) >= 64<<10 {
			h.Write(out)
			out = out[:0]
		}
		i := runDims - 1
		for ; i >= 0; i-- {
			idx[i]++
			if idx[i] < shape[i] {
				break
			}
			idx[i] = 0
		}
		if i < 0 {
			break
		}
	}
	h.Write(out)
	return digest.FromHash(h)
}

func displayPath(p string) string {
	if p == "" {
		return "<root>"
	}
	return p
}
