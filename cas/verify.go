package cas

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sort"
	"sync"

	"github.com/cas-ml/cas/digest"
	"github.com/cas-ml/cas/index"
	"github.com/cas-ml/cas/remote"
)

// Problem is one thing verify found wrong.
type Problem struct {
	// Path is the damaged file or directory below the verified object, or
	// the backend key of a damaged pack or segment.
	Path string `json:"path"`
	Err  string `json:"error"`
}

// VerifyReport sums up a verification.
type VerifyReport struct {
	Objects  []string  `json:"objects"`
	Files    int64     `json:"files"`
	Dirs     int64     `json:"dirs"`
	Bytes    int64     `json:"bytes"`
	Packs    int64     `json:"packs"`
	Problems []Problem `json:"problems"`
	mu       sync.Mutex
}

// OK reports whether nothing was found wrong.
func (v *VerifyReport) OK() bool { return len(v.Problems) == 0 }

func (v *VerifyReport) add(path string, err error) {
	v.mu.Lock()
	v.Problems = append(v.Problems, Problem{Path: path, Err: err.Error()})
	v.mu.Unlock()
}

// Verify re-reads everything obj needs: every tree, every chunk of every
// file, checking each digest, and each file's digest over its chunks. It
// reports damaged files by path and goes on past them.
func (r *Repo) Verify(ctx context.Context, obj *Object, label string, prog *Progress) (*VerifyReport, error) {
	rep := &VerifyReport{Objects: []string{label}}
	if err := r.verifyInto(ctx, obj, rep, prog); err != nil {
		return nil, err
	}
	rep.sortProblems()
	return rep, nil
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
	var files []fileJob
	if obj.Kind == KindDir {
		r.collectVerify(ctx, obj.Digest, "", rep, &files)
	} else {
		name := obj.Name
		if name == "" {
			name = obj.Digest.Short()
		}
		files = append(files, fileJob{e: TreeEntry{Name: name, Kind: obj.Kind, Size: obj.Size, Digest: obj.Digest}, rel: name})
	}
	return forEach(ctx, files, runtime.GOMAXPROCS(0), func(ctx context.Context, j fileJob) error {
		err := r.verifyFile(ctx, j.e, prog)
		if err != nil && ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			rep.add(j.rel, err)
		}
		rep.mu.Lock()
		rep.Files++
		rep.Bytes += j.e.Size
		rep.mu.Unlock()
		return nil
	})
}

func (r *Repo) collectVerify(ctx context.Context, d digest.Digest, rel string, rep *VerifyReport, files *[]fileJob) {
	t, err := r.ReadTree(ctx, d)
	if err != nil {
		p := rel
		if p == "" {
			p = "."
		}
		rep.add(p, err)
		return
	}
	rep.Dirs++
	for _, e := range t.Entries {
		erel := joinRel(rel, e.Name)
		if e.Kind == KindDir {
			r.collectVerify(ctx, e.Digest, erel, rep, files)
		} else { // files and link targets alike
			*files = append(*files, fileJob{e: e, rel: erel})
		}
	}
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

// VerifyAll checks every pack (its name against its bytes, every blob in
// it against its ID) and every ref's whole tree.
func (r *Repo) VerifyAll(ctx context.Context, prog *Progress) (*VerifyReport, error) {
	rep := &VerifyReport{}
	var keys []remote.ObjectInfo
	err := r.Backend.List(ctx, packPrefix, func(oi remote.ObjectInfo) error {
		keys = append(keys, oi)
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, oi := range keys {
		rep.Packs++
		if err := r.verifyPack(ctx, oi.Key); err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			rep.add(oi.Key, err)
		}
	}
	err = r.Backend.List(ctx, segmentPrefix, func(oi remote.ObjectInfo) error {
		if _, _, err := readSegment(ctx, r.Backend, oi.Key); err != nil {
			var ce *CorruptError
			if errors.As(err, &ce) {
				err = ce // the problem's path names the segment already
			}
			rep.add(oi.Key, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	refs, err := r.Refs(ctx)
	if err != nil {
		return nil, err
	}
	for _, ref := range refs {
		rep.Objects = append(rep.Objects, ref.Name)
		sub := &VerifyReport{}
		obj := &Object{Digest: ref.Target, Kind: ref.Kind, Size: ref.Size, Name: ref.File}
		if err := r.verifyInto(ctx, obj, sub, prog); err != nil {
			return nil, err
		}
		for _, p := range sub.Problems {
			rep.Problems = append(rep.Problems, Problem{Path: ref.Name + ":" + p.Path, Err: p.Err})
		}
		rep.Files += sub.Files
		rep.Dirs += sub.Dirs
		rep.Bytes += sub.Bytes
	}
	rep.sortProblems()
	if rep.Objects == nil {
		rep.Objects = []string{}
	}
	return rep, nil
}

// verifyPack reads a whole pack and checks it.
func (r *Repo) verifyPack(ctx context.Context, key string) error {
	return r.readPack(ctx, key, func(index.Blob, []byte) error { return nil })
}

// readPack reads a whole pack, checks its name, and calls fn with every
// blob's checked raw bytes.
func (r *Repo) readPack(ctx context.Context, key string, fn func(b index.Blob, raw []byte) error) error {
	id, err := packIDFromKey(key)
	if err != nil {
		return err
	}
	data, err := remote.ReadAll(ctx, r.Backend, key)
	if err != nil {
		return err
	}
	if digest.Of(data) != id {
		return &CorruptError{What: "pack", ID: id}
	}
	blobs, err := parsePack(id, data)
	if err != nil {
		return err
	}
	for _, b := range blobs {
		raw := data[b.Offset : b.Offset+uint64(b.Length)]
		if b.Codec == index.CodecZstd {
			if raw, err = blobDecoder.DecodeAll(raw, nil); err != nil {
				return &CorruptError{What: "chunk", ID: b.ID}
			}
		}
		if len(raw) != int(b.RawLen) || digest.Of(raw) != b.ID {
			return &CorruptError{What: "chunk", ID: b.ID}
		}
		if b.Type == index.TypeTree {
			if _, err := ParseTree(raw); err != nil {
				return fmt.Errorf("tree %s: %w", b.ID.Short(), err)
			}
		}
		if err := fn(b, raw); err != nil {
			return err
		}
	}
	return nil
}

// ForEachBlob calls fn with the raw bytes of every blob in every pack of
// the store, checked against its ID. What is stored is exactly what fn
// sees: tests use it to prove what a store does not hold.
func (r *Repo) ForEachBlob(ctx context.Context, fn func(id digest.Digest, raw []byte) error) error {
	var keys []string
	err := r.Backend.List(ctx, packPrefix, func(oi remote.ObjectInfo) error {
		keys = append(keys, oi.Key)
		return nil
	})
	if err != nil {
		return err
	}
	for _, k := range keys {
		if err := r.readPack(ctx, k, func(b index.Blob, raw []byte) error { return fn(b.ID, raw) }); err != nil {
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
}

// Stats adds up the store: logical bytes are the sizes of everything the
// refs point at; unique bytes the raw chunks kept once; stored bytes the
// packs on disk.
func (r *Repo) Stats(ctx context.Context) (*Stats, error) {
	s := &Stats{}
	var chunkStored int64
	err := r.Index.Blobs(func(b index.Blob) error {
		if b.Type == index.TypeTree {
			s.Trees++
			return nil
		}
		s.Chunks++
		s.UniqueBytes += int64(b.RawLen)
		chunkStored += int64(b.Length)
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = r.Backend.List(ctx, packPrefix, func(oi remote.ObjectInfo) error {
		s.Packs++
		s.StoredBytes += oi.Size
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = r.Backend.List(ctx, segmentPrefix, func(remote.ObjectInfo) error { s.IndexSegments++; return nil })
	if err != nil {
		return nil, err
	}
	refs, err := r.Refs(ctx)
	if err != nil {
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
	if s.UniqueBytes > 0 {
		s.DedupRatio = float64(s.LogicalBytes) / float64(s.UniqueBytes)
	}
	if chunkStored > 0 {
		s.CompressionRatio = float64(s.UniqueBytes) / float64(chunkStored)
	}
	return s, nil
}
