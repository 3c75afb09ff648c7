package cas

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/cas-ml/cas/cas/format"
	"github.com/cas-ml/cas/digest"
	"github.com/cas-ml/cas/index"
	"github.com/cas-ml/cas/remote"
)

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
	rc, err := be.Get(ctx, format.PackKey(pack), off, int64(len(buf)))
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
	path, err := pt.Path(format.PackKey(pack))
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

// forget closes pack's file if it is open (once no one reads it): a
// copy taken out of the store (found damaged) must not be read again
// through a descriptor kept from before, when a sound one takes its name.
func (p *packFiles) forget(pack digest.Digest) {
	p.mu.Lock()
	defer p.mu.Unlock()
	e, ok := p.open[pack]
	if !ok {
		return
	}
	op := e.Value.(*openPack)
	p.order.Remove(e)
	delete(p.open, pack)
	op.closed = true
	if op.users == 0 {
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
	if !r.fromLookup(b.ID) {
		r.noteDamage(err)
	}
	// A location the remote's lookup index gave may name a pack a gc has
	// deleted since, or be forged: its segments, the truth, say where.
	if r.retryLazy(ctx, err) {
		if nb, ok, lerr := r.Index.Blob(b.ID); lerr == nil && ok && nb != b {
			return r.readBlob(ctx, nb, dst)
		}
	}
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
	if err := checkLens(b); err != nil {
		return nil, err
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
// against its ID (format.DecodeChunk); damage is a *CorruptError naming
// the chunk and the pack holding the damaged copy.
func decodeBlob(b index.Blob, stored, dst []byte) ([]byte, error) {
	raw, err := format.DecodeChunk(b, stored, dst)
	if err != nil {
		return nil, &CorruptError{What: "chunk", ID: b.ID, Pack: b.Pack}
	}
	return raw, nil
}

// decodeBlobUnchecked is decodeBlob for a caller that checks the raw
// bytes another way (format.DecodeChunkUnchecked).
func decodeBlobUnchecked(b index.Blob, stored, dst []byte) ([]byte, error) {
	raw, err := format.DecodeChunkUnchecked(b, stored, dst)
	if err != nil {
		return nil, &CorruptError{What: "chunk", ID: b.ID, Pack: b.Pack}
	}
	return raw, nil
}

// ReadBlob returns the raw bytes of a blob by ID.
func (r *Repo) ReadBlob(ctx context.Context, id digest.Digest) ([]byte, error) {
	b, ok, err := r.locate(ctx, id)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("blob %s: %w", id.Short(), ErrDataNotFound)
	}
	return r.readBlob(ctx, b, nil)
}

// fileChunks returns the chunk IDs of a stored file, asking the remote's
// lookup index (lazy mode) about a file the index lacks.
func (r *Repo) fileChunks(ctx context.Context, file digest.Digest, size int64) ([]digest.Digest, error) {
	return r.fileChunksFrom(file, size, func() ([]digest.Digest, bool, error) { return r.chunksOf(ctx, file) })
}

// indexFileChunks is fileChunks from the local index alone: what a push
// relies on.
func (r *Repo) indexFileChunks(file digest.Digest, size int64) ([]digest.Digest, error) {
	return r.fileChunksFrom(file, size, func() ([]digest.Digest, bool, error) { return r.Index.FileChunks(file) })
}

func (r *Repo) fileChunksFrom(file digest.Digest, size int64, get func() ([]digest.Digest, bool, error)) ([]digest.Digest, error) {
	if size == 0 {
		return nil, nil
	}
	chunks, ok, err := get()
	if err != nil {
		return nil, err
	}
	if ok {
		return chunks, nil
	}
	return []digest.Digest{file}, nil
}

// checkLens refuses an index entry whose lengths no chunk can have, before
// anything is allocated for it.
func checkLens(b index.Blob) error {
	if b.RawLen > format.MaxChunkLen || b.Length > format.MaxChunkLen {
		return &CorruptError{What: "index entry", ID: b.ID, Pack: b.Pack}
	}
	return nil
}
