package cas

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sort"
	"sync"

	"github.com/cas-ml/cas/cas/format"
	"github.com/cas-ml/cas/digest"
	"github.com/cas-ml/cas/index"
	"github.com/cas-ml/cas/internal/par"
	"github.com/cas-ml/cas/remote"
)

// Problem is one thing verify found wrong.
type Problem struct {
	// Path is the damaged file or directory below the verified object, or
	// the backend key of a damaged pack or segment.
	Path string `json:"path"`
	Err  string `json:"error"`
	// Missing: the data is not in the store read (perhaps on a remote),
	// as opposed to bytes found wrong.
	Missing bool `json:"missing,omitempty"`
}

// VerifyReport sums up a verification.
type VerifyReport struct {
	Objects  []string  `json:"objects"`
	Files    int64     `json:"files"`
	Links    int64     `json:"links"` // symlinks, not among Files (as push and restore count them)
	Dirs     int64     `json:"dirs"`
	Bytes    int64     `json:"bytes"`
	Packs    int64     `json:"packs"`
	Problems []Problem `json:"problems"`
	mu       sync.Mutex
}

// OK reports whether nothing was found wrong.
func (v *VerifyReport) OK() bool { return len(v.Problems) == 0 }

// IsMissing reports whether err says only that data is not in the store
// read (it may be elsewhere: on a remote), as opposed to bytes found wrong.
func IsMissing(err error) bool {
	var ce *CorruptError
	return (errors.Is(err, ErrNotFound) || errors.Is(err, remote.ErrNotFound)) && !errors.As(err, &ce)
}

func (v *VerifyReport) add(path string, err error) {
	v.mu.Lock()
	v.Problems = append(v.Problems, Problem{Path: path, Err: err.Error(), Missing: IsMissing(err)})
	v.mu.Unlock()
}

// Damaged reports whether a problem is damage (bytes found wrong, an
// object invalid), not only data missing from the store.
func (v *VerifyReport) Damaged() bool {
	for _, p := range v.Problems {
		if !p.Missing {
			return true
		}
	}
	return false
}

// Verify re-reads everything obj needs: every tree, every chunk of every
// file, checking each digest, and each file's digest over its chunks. It
// reports damaged files by path and goes on past them.
//
// It reads the store through its index segments, never through the local
// index cache: data the cache knows but no segment names is reported
// missing, as a reader elsewhere would find it. Copies of chunks found
// damaged are marked in the local index (noteDamage), so that the next
// push of their source stores them again.
func (r *Repo) Verify(ctx context.Context, obj *Object, label string, prog *Progress) (*VerifyReport, error) {
	rep := &VerifyReport{Objects: []string{label}}
	view, done, err := r.segmentView(ctx, rep)
	if err != nil {
		return nil, err
	}
	defer done()
	if err := view.verifyInto(ctx, obj, rep, prog); err != nil {
		return nil, err
	}
	rep.sortProblems()
	return rep, nil
}

// segmentView returns a view of the store whose index is built afresh
// from the store's own index segments: what the store itself says, not
// what the local cache remembers. Segments that cannot be read are
// reported in rep. A store opened on a remote alone (OpenRemoteOnly) is
// its own view already. The view's index keeps the blobs on disk
// (index.Spill), whatever their number; done releases it.
func (r *Repo) segmentView(ctx context.Context, rep *VerifyReport) (view *Repo, done func(), err error) {
	if r.Dir == "" {
		return r, func() {}, nil
	}
	idx := index.NewSpill()
	// Where segments name two copies of a blob (one found damaged and
	// stored again by a push), take the one the local index has: the
	// latest a push wrote.
	idx.Prefer = func(old, new index.Blob) index.Blob {
		if b, ok, err := r.Index.Blob(new.ID); err == nil && ok && b.Pack == new.Pack {
			return new
		}
		return old
	}
	view = &Repo{Dir: r.Dir, Config: r.Config, Backend: r.Backend, Index: idx, Clock: r.Clock,
		Transfers: r.Transfers, chunker: r.chunker, packs: r.packs, remote: r.remote,
		damageTo: r.Index, Warn: func(err error) { rep.add("index segment", err) }}
	err = view.syncSegments(ctx, r.Backend, false, true)
	if err == nil && r.remote != nil {
		err = view.syncSegments(ctx, r.remote, false, true)
	}
	if err == nil {
		err = idx.Compact()
	}
	if err != nil {
		idx.Close()
		return nil, nil, err
	}
	return view, func() { idx.Close() }, nil
}

func (v *VerifyReport) sortProblems() {
	sort.Slice(v.Problems, func(i, j int) bool { return v.Problems[i].Path < v.Problems[j].Path })
	if v.Problems == nil {
		v.Problems = []Problem{}
	}
}

func (r *Repo) verifyInto(ctx context.Context, obj *Object, rep *VerifyReport, prog *Progress) error {
	if prog == nil {
		prog = &Progress{}
	}
	prog.TotalBytes.Add(obj.Size)
	// The walk hands files to the workers as it finds them: what is in
	// flight is a file per worker and the trees on the walk's path.
	walk := func(ctx context.Context, send func(fileJob) error) error {
		if obj.Kind != KindDir {
			name := obj.Name
			if name == "" {
				name = obj.Digest.Short()
			}
			return send(fileJob{e: TreeEntry{Name: name, Kind: obj.Kind, Size: obj.Size, Digest: obj.Digest}, rel: name})
		}
		size, ok, err := r.collectVerify(ctx, obj.Digest, "", rep, send)
		if err == nil && ok && size != obj.Size {
			rep.add(".", fmt.Errorf("size %d recorded, but the tree holds %d bytes: %w", obj.Size, size, ErrBadTree))
		}
		return err
	}
	return par.Stream(ctx, runtime.GOMAXPROCS(0), walk, func(ctx context.Context, j fileJob) error {
		err := r.verifyFile(ctx, j.e, prog)
		if err != nil && ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			rep.add(j.rel, err)
		}
		rep.mu.Lock()
		if j.e.Kind == KindLink {
			rep.Links++
		} else {
			rep.Files++
		}
		rep.Bytes += j.e.Size
		rep.mu.Unlock()
		return nil
	})
}

// collectVerify sends the files below tree d and checks that each
// directory's recorded size is what its subtree holds. It returns the
// tree's size and whether it could be read whole; an error only when
// send fails (the verification was cancelled).
func (r *Repo) collectVerify(ctx context.Context, d digest.Digest, rel string, rep *VerifyReport, send func(fileJob) error) (int64, bool, error) {
	p := rel
	if p == "" {
		p = "."
	}
	t, err := r.ReadTree(ctx, d)
	if err != nil {
		if ctx.Err() != nil {
			return 0, false, ctx.Err()
		}
		rep.add(p, err)
		return 0, false, nil
	}
	rep.mu.Lock()
	rep.Dirs++
	rep.mu.Unlock()
	whole := true
	for _, e := range t.Entries {
		erel := joinRel(rel, e.Name)
		if e.Kind == KindDir {
			size, ok, err := r.collectVerify(ctx, e.Digest, erel, rep, send)
			if err != nil {
				return 0, false, err
			}
			if ok && size != e.Size {
				rep.add(erel, fmt.Errorf("size %d recorded, but the tree holds %d bytes: %w", e.Size, size, ErrBadTree))
			}
			whole = whole && ok
		} else { // files and link targets alike
			if e.Kind == KindLink && e.Size > maxLinkTarget {
				rep.add(erel, fmt.Errorf("link target of %d bytes: %w", e.Size, ErrBadTree))
				continue
			}
			if err := send(fileJob{e: e, rel: erel}); err != nil {
				return 0, false, err
			}
		}
	}
	return t.Size(), whole, nil
}

// verifyFile reads every chunk of a file and checks the whole digest.
func (r *Repo) verifyFile(ctx context.Context, e TreeEntry, prog *Progress) error {
	err := r.streamFile(ctx, e.Digest, e.Size, func(b []byte) error {
		prog.Bytes.Add(int64(len(b)))
		return nil
	})
	if err == nil {
		prog.Files.Add(1)
	}
	return err
}

// VerifyAll checks every pack (its name against its trailer, or against
// all its bytes for a pack named so before; its header; every blob in it
// against its ID), every index segment (readable, naming only packs the
// store holds) and every ref's whole tree, read through the segments as
// Verify does. Refs that cannot be read are problems too.
func (r *Repo) VerifyAll(ctx context.Context, prog *Progress) (*VerifyReport, error) {
	rep := &VerifyReport{}
	var keys []remote.ObjectInfo
	err := r.Backend.List(ctx, format.PackPrefix, func(oi remote.ObjectInfo) error {
		keys = append(keys, oi)
		return nil
	})
	if err != nil {
		return nil, err
	}
	packs := map[digest.Digest]int64{}
	var damaged []index.Blob
	for _, oi := range keys {
		rep.Packs++
		if id, err := format.PackIDFromKey(oi.Key); err == nil {
			packs[id] = oi.Size
		}
		bad, err := r.verifyPack(ctx, oi.Key)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			rep.add(oi.Key, err)
		}
		damaged = append(damaged, bad...)
	}
	view, done, err := r.segmentView(ctx, rep)
	if err != nil {
		return nil, err
	}
	defer done()
	if len(damaged) > 0 {
		if err := view.damageIndex().MarkDamaged(damaged); err != nil {
			r.warn(err)
		}
	}
	err = view.Index.Blobs(func(b index.Blob) error {
		// A pack the store lacks may be a remote's (a pull brings every
		// segment but only the packs it needs): the refs say what is
		// missing. One it holds must hold the chunk where it says.
		if size, ok := packs[b.Pack]; ok && b.Offset+uint64(b.Length) > uint64(size) {
			rep.add(format.PackKey(b.Pack), fmt.Errorf("an index segment places chunk %s beyond the end of the pack", b.ID.Short()))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	refs, err := r.Refs(ctx)
	var partial *PartialError
	if errors.As(err, &partial) {
		for _, e := range partial.Errs {
			rep.add("refs", e)
		}
	} else if err != nil {
		return nil, err
	}
	for _, ref := range refs {
		rep.Objects = append(rep.Objects, ref.Name)
		sub := &VerifyReport{}
		obj := &Object{Digest: ref.Target, Kind: ref.Kind, Size: ref.Size, Name: ref.File}
		if err := view.verifyInto(ctx, obj, sub, prog); err != nil {
			return nil, err
		}
		for _, p := range sub.Problems {
			p.Path = ref.Name + ":" + p.Path // and Missing kept: absent is not damaged
			rep.Problems = append(rep.Problems, p)
		}
		rep.Files += sub.Files
		rep.Links += sub.Links
		rep.Dirs += sub.Dirs
		rep.Bytes += sub.Bytes
	}
	rep.sortProblems()
	if rep.Objects == nil {
		rep.Objects = []string{}
	}
	return rep, nil
}

// verifyPack reads a whole pack and checks it, going on past damaged
// chunks; it returns their IDs and the first error.
func (r *Repo) verifyPack(ctx context.Context, key string) ([]index.Blob, error) {
	var bad []index.Blob
	var first error
	err := r.readPack(ctx, key, func(b index.Blob, raw []byte, err error) error {
		if err != nil {
			bad = append(bad, b)
			if first == nil {
				first = err
			}
		}
		return nil
	})
	if err == nil {
		err = first
	}
	return bad, err
}

// readPack reads a whole pack, checks its name, and calls fn with every
// blob's checked raw bytes, or, for a damaged blob, the error saying so.
func (r *Repo) readPack(ctx context.Context, key string, fn func(b index.Blob, raw []byte, err error) error) error {
	id, err := format.PackIDFromKey(key)
	if err != nil {
		return err
	}
	data, err := readObject(ctx, r.Backend, key)
	if err != nil {
		return err
	}
	return checkPackData(id, data, fn)
}

// checkPackData checks the bytes of pack id as readPack does, calling fn
// for each blob.
func checkPackData(id digest.Digest, data []byte, fn func(b index.Blob, raw []byte, err error) error) error {
	blobs, err := format.ParsePack(id, data)
	if err != nil {
		return err
	}
	whole := format.PackNamed(id, data)
	for _, b := range blobs {
		raw, berr := format.DecodeChunk(b, data[b.Offset:b.Offset+uint64(b.Length)], nil)
		if berr != nil {
			berr = &CorruptError{What: "chunk", ID: b.ID}
		}
		if berr == nil && b.Type == index.TypeTree {
			if _, err := ParseTree(raw); err != nil {
				berr = fmt.Errorf("tree %s: %w", b.ID.Short(), err)
			}
		}
		if berr != nil {
			raw = nil
		}
		if err := fn(b, raw, berr); err != nil {
			return err
		}
	}
	if !whole {
		return &CorruptError{What: "pack", ID: id}
	}
	return nil
}

// readObject reads a whole object into a buffer of the size Stat gives:
// io.ReadAll would grow one to up to twice a pack's size.
func readObject(ctx context.Context, be remote.Backend, key string) ([]byte, error) {
	oi, err := be.Stat(ctx, key)
	if err != nil {
		return nil, err
	}
	if oi.Size < 0 || oi.Size > 1<<30 {
		return remote.ReadAll(ctx, be, key)
	}
	rc, err := be.Get(ctx, key, 0, -1)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	buf := make([]byte, oi.Size+1)
	n, err := io.ReadFull(rc, buf)
	switch {
	case err == nil: // more than Stat said: it changed since
		rest, err := io.ReadAll(rc)
		return append(buf, rest...), err
	case errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF):
		return buf[:n], nil
	}
	return nil, err
}

// ForEachBlob calls fn with the raw bytes of every blob in every pack of
// the store, checked against its ID. What is stored is exactly what fn
// sees: tests use it to prove what a store does not hold.
func (r *Repo) ForEachBlob(ctx context.Context, fn func(id digest.Digest, raw []byte) error) error {
	var keys []string
	err := r.Backend.List(ctx, format.PackPrefix, func(oi remote.ObjectInfo) error {
		keys = append(keys, oi.Key)
		return nil
	})
	if err != nil {
		return err
	}
	for _, k := range keys {
		err := r.readPack(ctx, k, func(b index.Blob, raw []byte, err error) error {
			if err != nil {
				return err
			}
			return fn(b.ID, raw)
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// Stats describes a store's size.
type Stats struct {
	Refs             int     `json:"refs"`
	LogicalBytes     int64   `json:"logical_bytes"`
	UniqueBytes      int64   `json:"unique_bytes"`
	StoredBytes      int64   `json:"stored_bytes"`
	Chunks           int64   `json:"chunks"`
	Trees            int64   `json:"trees"`
	Packs            int64   `json:"packs"`
	IndexSegments    int64   `json:"index_segments"`
	DedupRatio       float64 `json:"dedup_ratio"`
	CompressionRatio float64 `json:"compression_ratio"`
	// Codecs say what each chunk codec holds and saved, one entry per
	// codec this cas knows (none, zstd, float), in that order.
	Codecs []CodecStats `json:"codecs"`
}

// CodecStats are the data chunks stored with one codec: how many, their
// raw and stored bytes, and what the codec saved (raw - stored).
type CodecStats struct {
	Codec       string `json:"codec"`
	Chunks      int64  `json:"chunks"`
	RawBytes    int64  `json:"raw_bytes"`
	StoredBytes int64  `json:"stored_bytes"`
	SavedBytes  int64  `json:"saved_bytes"`
}

// CodecName is the name of a chunk codec, as stats and inspect show it.
func CodecName(c uint8) string {
	switch c {
	case index.CodecNone:
		return "none"
	case index.CodecZstd:
		return "zstd"
	case index.CodecFloat:
		return "float"
	}
	return fmt.Sprintf("codec-%d", c)
}

// Stats adds up the store: logical bytes are the sizes of everything the
// refs point at and of the roots given (a run's inputs and outputs, which
// its manifest names), each distinct digest once; unique bytes the raw
// chunks kept once; stored bytes the packs on disk.
func (r *Repo) Stats(ctx context.Context, roots ...Object) (*Stats, error) {
	s := &Stats{}
	for c := range index.MaxCodec + 1 {
		s.Codecs = append(s.Codecs, CodecStats{Codec: CodecName(c)})
	}
	var chunkStored int64
	err := r.Index.Blobs(func(b index.Blob) error {
		if b.Type == index.TypeTree {
			s.Trees++
			return nil
		}
		s.Chunks++
		s.UniqueBytes += int64(b.RawLen)
		chunkStored += int64(b.Length)
		if int(b.Codec) < len(s.Codecs) {
			cs := &s.Codecs[b.Codec]
			cs.Chunks++
			cs.RawBytes += int64(b.RawLen)
			cs.StoredBytes += int64(b.Length)
			cs.SavedBytes += int64(b.RawLen) - int64(b.Length)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = r.Backend.List(ctx, format.PackPrefix, func(oi remote.ObjectInfo) error {
		s.Packs++
		s.StoredBytes += oi.Size
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = r.Backend.List(ctx, format.SegmentPrefix, func(remote.ObjectInfo) error { s.IndexSegments++; return nil })
	if err != nil {
		return nil, err
	}
	refs, err := r.Refs(ctx)
	var partial *PartialError
	if errors.As(err, &partial) {
		r.warn(partial)
	} else if err != nil {
		return nil, err
	}
	seen := map[digest.Digest]bool{}
	for _, ref := range refs {
		s.Refs++
		if !seen[ref.Target] {
			seen[ref.Target] = true
			s.LogicalBytes += ref.Size
		}
	}
	for _, o := range roots {
		if !seen[o.Digest] {
			seen[o.Digest] = true
			s.LogicalBytes += o.Size
		}
	}
	if s.UniqueBytes > 0 {
		s.DedupRatio = float64(s.LogicalBytes) / float64(s.UniqueBytes)
	}
	if chunkStored > 0 {
		s.CompressionRatio = float64(s.UniqueBytes) / float64(chunkStored)
	}
	return s, nil
}
