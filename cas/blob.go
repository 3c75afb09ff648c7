package cas

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"sync"

	"github.com/klauspost/compress/zstd"

	"github.com/cas-ml/cas/digest"
	"github.com/cas-ml/cas/index"
	"github.com/cas-ml/cas/remote"
)

// maxBlobLen bounds a blob's raw length, whatever an index claims.
const maxBlobLen = 1 << 30

// pather is what the local backend offers beyond Backend: a file path, so
// packs can be read with pread through cached descriptors.
type pather interface {
	Path(key string) (string, error)
}

// packFiles keeps a few pack files open for reading. A pack the local
// store lacks is read from the fallback (a remote), by ranged GETs.
type packFiles struct {
	be       remote.Backend
	fallback remote.Backend
	mu       sync.Mutex
	open     map[digest.Digest]*list.Element
	order    *list.List // of *openPack, most recent first
}

type openPack struct {
	id digest.Digest
	f  *os.File
	// users counts readers; a pack is closed only once no one reads it.
	users  int
	closed bool
}

const maxOpenPacks = 32

func newPackFiles(be remote.Backend) *packFiles {
	return &packFiles{be: be, open: map[digest.Digest]*list.Element{}, order: list.New()}
}

// readAt reads len(buf) bytes at off of a pack.
func (p *packFiles) readAt(ctx context.Context, pack digest.Digest, buf []byte, off int64) error {
	pt, ok := p.be.(pather)
	if !ok {
		return readRange(ctx, p.be, pack, buf, off)
	}
	op, err := p.acquire(pt, pack)
	if errors.Is(err, remote.ErrNotFound) && p.fallback != nil {
		return readRange(ctx, p.fallback, pack, buf, off)
	}
	if err != nil {
		return err
	}
	defer p.release(op)
	if _, err := op.f.ReadAt(buf, off); err != nil {
		return fmt.Errorf("read pack %s: %w", pack.Short(), err)
	}
	return nil
}

// packReadError is the error of reading blob b (or a run starting at it)
// from its pack: a read cut short means the index places the blob beyond
// the pack's end, which is damage of the index entry, not an I/O failure.
func packReadError(b index.Blob, err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return &CorruptError{What: "index entry", ID: b.ID, Pack: b.Pack}
	}
	return fmt.Errorf("chunk %s: %w", b.ID.Short(), err)
}

// readRange reads len(buf) bytes of a pack at off with one ranged GET.
func readRange(ctx context.Context, be remote.Backend, pack digest.Digest, buf []byte, off int64) error {
	rc, err := be.Get(ctx, packKey(pack), off, int64(len(buf)))
	if err != nil {
		return err
	}
	defer rc.Close()
	if _, err := io.ReadFull(rc, buf); err != nil {
		return fmt.Errorf("read pack %s: %w", pack.Short(), err)
	}
	return nil
}

func (p *packFiles) acquire(pt pather, pack digest.Digest) (*openPack, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if e, ok := p.open[pack]; ok {
		p.order.MoveToFront(e)
		op := e.Value.(*openPack)
		op.users++
		return op, nil
	}
	path, err := pt.Path(packKey(pack))
	if err != nil {
		return nil, err
	}
	f, err := os.Open(path)
	if err != nil {
		if os.IsNotExist(err) {
			return nil, fmt.Errorf("pack %s: %w", pack.Short(), remote.ErrNotFound)
		}
		return nil, err
	}
	op := &openPack{id: pack, f: f, users: 1}
	p.open[pack] = p.order.PushFront(op)
	for p.order.Len() > maxOpenPacks {
		e := p.order.Back()
		old := e.Value.(*openPack)
		p.order.Remove(e)
		delete(p.open, old.id)
		old.closed = true
		if old.users == 0 {
			old.f.Close()
		}
	}
	return op, nil
}

func (p *packFiles) release(op *openPack) {
	p.mu.Lock()
	defer p.mu.Unlock()
	op.users--
	if op.closed && op.users == 0 {
		op.f.Close()
	}
}

func (p *packFiles) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for e := p.order.Front(); e != nil; e = e.Next() {
		op := e.Value.(*openPack)
		op.closed = true
		if op.users == 0 {
			op.f.Close()
		}
	}
	p.open = map[digest.Digest]*list.Element{}
	p.order.Init()
}

var blobDecoder, _ = zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecoderMaxMemory(maxBlobLen), zstd.WithDecoderLowmem(true))

// alternator is what an index that keeps several copies of a blob offers.
type alternator interface {
	Alternatives(id digest.Digest) []index.Blob
}

// alternatives returns the other stored copies of blob id, if the index
// knows any.
func (r *Repo) alternatives(id digest.Digest) []index.Blob {
	if a, ok := r.Index.(alternator); ok {
		return a.Alternatives(id)
	}
	return nil
}

// readBlob returns a blob's raw bytes, checked against its ID. dst is
// reused if large enough. Where the copy b names is damaged or gone and
// the segments named another, the other is read.
func (r *Repo) readBlob(ctx context.Context, b index.Blob, dst []byte) ([]byte, error) {
	raw, err := r.readBlobAt(ctx, b, dst)
	if err == nil || ctx.Err() != nil {
		return raw, err
	}
	r.noteDamage(err)
	for _, alt := range r.alternatives(b.ID) {
		if raw, aerr := r.readBlobAt(ctx, alt, nil); aerr == nil {
			return raw, nil
		}
	}
	return nil, err
}

// damageIndex is the index damage is marked in.
func (r *Repo) damageIndex() index.Index {
	if r.damageTo != nil {
		return r.damageTo
	}
	return r.Index
}

// noteDamage marks in the index a copy of a chunk found damaged, so that
// a push of its source stores it again and no later load of the segment
// naming it replaces a good copy.
func (r *Repo) noteDamage(err error) {
	var ce *CorruptError
	if errors.As(err, &ce) && ce.What == "chunk" && !ce.Pack.IsZero() {
		if merr := r.damageIndex().MarkDamaged([]index.Blob{{ID: ce.ID, Pack: ce.Pack}}); merr != nil {
			r.warn(merr)
		}
	}
}

func (r *Repo) readBlobAt(ctx context.Context, b index.Blob, dst []byte) ([]byte, error) {
	if b.RawLen > maxBlobLen || b.Length > maxBlobLen {
		return nil, &CorruptError{What: "index entry", ID: b.ID}
	}
	stored := dst[:0]
	if b.Codec != index.CodecNone {
		stored = make([]byte, b.Length)
	} else if cap(stored) < int(b.Length) {
		stored = make([]byte, b.Length)
	} else {
		stored = stored[:b.Length]
	}
	if err := r.packs.readAt(ctx, b.Pack, stored, int64(b.Offset)); err != nil {
		return nil, packReadError(b, err)
	}
	return decodeBlob(b, stored, dst)
}

// decodeBlob turns a blob's stored bytes into its raw bytes, checked
// against its ID. Uncompressed, the result is stored itself; dst is the
// buffer a decompressed blob goes into when large enough.
func decodeBlob(b index.Blob, stored, dst []byte) ([]byte, error) {
	raw := stored
	switch b.Codec {
	case index.CodecNone:
	case index.CodecZstd:
		out := dst[:0]
		if cap(out) < int(b.RawLen) || (len(dst) > 0 && &dst[0] == &stored[0]) {
			out = make([]byte, 0, b.RawLen)
		}
		var err error
		raw, err = blobDecoder.DecodeAll(stored, out)
		if err != nil {
			return nil, &CorruptError{What: "chunk", ID: b.ID, Pack: b.Pack}
		}
	default:
		return nil, &CorruptError{What: "chunk", ID: b.ID, Pack: b.Pack}
	}
	if len(raw) != int(b.RawLen) || digest.Of(raw) != b.ID {
		return nil, &CorruptError{What: "chunk", ID: b.ID, Pack: b.Pack}
	}
	return raw, nil
}

// ReadBlob returns the raw bytes of a blob by ID.
func (r *Repo) ReadBlob(ctx context.Context, id digest.Digest) ([]byte, error) {
	b, ok, err := r.Index.Blob(id)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("blob %s: %w", id.Short(), ErrNotFound)
	}
	return r.readBlob(ctx, b, nil)
}

// fileChunks returns the chunk IDs of a stored file.
func (r *Repo) fileChunks(file digest.Digest, size int64) ([]digest.Digest, error) {
	if size == 0 {
		return nil, nil
	}
	chunks, ok, err := r.Index.FileChunks(file)
	if err != nil {
		return nil, err
	}
	if ok {
		return chunks, nil
	}
	return []digest.Digest{file}, nil
}

var sharedEncoder, _ = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(1), zstd.WithLowerEncoderMem(true))

// minSaving is the least fraction of a chunk that compression must save.
const minSaving = 0.05

// encodeChunk returns the stored form of raw and its codec: zstd only
// where it pays. Random-looking bytes (the byte histogram of a sample has
// near 8 bits of entropy) are kept raw without trying; large chunks first
// compress a few samples at the fastest level. dst is reused if large enough.
func encodeChunk(raw []byte, dst []byte) ([]byte, uint8) {
	if len(raw) < 512 || sampleEntropy(raw) > 7.8 {
		return raw, index.CodecNone
	}
	if len(raw) > 64<<10 && !samplesCompress(raw) {
		return raw, index.CodecNone
	}
	out := sharedEncoder.EncodeAll(raw, dst[:0])
	if float64(len(out)) > float64(len(raw))*(1-minSaving) {
		return raw, index.CodecNone
	}
	return out, index.CodecZstd
}

// sampleEntropy estimates the bits per byte of b from the histogram of up
// to 4 KiB taken from its start and middle.
func sampleEntropy(b []byte) float64 {
	var hist [256]int
	n := 0
	for _, part := range [][]byte{b[:min(len(b), 2<<10)], b[len(b)/2 : len(b)/2+min(len(b)/2, 2<<10)]} {
		for _, c := range part {
			hist[c]++
		}
		n += len(part)
	}
	// H = log2(n) - (1/n) * sum(k log2 k), with k log2 k from a table.
	sum := 0.0
	bins := 0
	for _, k := range hist {
		if k > 0 {
			sum += klog2k[k]
			bins++
		}
	}
	e := math.Log2(float64(n)) - sum/float64(n)
	// A finite sample underestimates entropy; add the Miller-Madow
	// correction so uniform random bytes score about 8 at any size.
	return e + float64(bins-1)/(2*float64(n)*math.Ln2)
}

// klog2k[k] = k * log2(k) for the counts a 4 KiB sample can hold.
var klog2k = func() (t [4<<10 + 1]float64) {
	for k := 1; k < len(t); k++ {
		t[k] = float64(k) * math.Log2(float64(k))
	}
	return t
}()

var sampleEncoder, _ = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1), zstd.WithLowerEncoderMem(true))

// samplesCompress compresses three 4 KiB samples of b and reports whether
// they shrink by more than minSaving.
func samplesCompress(b []byte) bool {
	const s = 4 << 10
	var buf [3 * s]byte
	sample := buf[:0]
	for _, at := range []int{0, len(b)/2 - s/2, len(b) - s} {
		sample = append(sample, b[at:at+s]...)
	}
	out := sampleEncoder.EncodeAll(sample, make([]byte, 0, len(sample)+64))
	return float64(len(out)) < float64(len(sample))*(1-minSaving)
}
