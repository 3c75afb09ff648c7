package ingest

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/cas-ml/cas/cas/chunk"
	"github.com/cas-ml/cas/cas/format"
	"github.com/cas-ml/cas/digest"
	"github.com/cas-ml/cas/index"
	"github.com/cas-ml/cas/remote"
)

// Store is the repository as a push sees it: what it may reuse, and
// where packs go. The repository (package cas) decides what is trusted.
type Store interface {
	// Chunker cuts files with the repository's parameters.
	Chunker() *chunk.Chunker
	// TreeStored reports whether tree d is in the store and vouches for
	// everything below it, so that nothing below it need be read.
	TreeStored(d digest.Digest) (bool, error)
	// HasFile reports whether every chunk of file d is in the store.
	HasFile(ctx context.Context, d digest.Digest, size int64) (bool, error)
	// HasBlob reports whether blob id is in the store, for a push to
	// reuse instead of storing it again.
	HasBlob(ctx context.Context, id digest.Digest) (bool, error)
	// KnowsFile reports whether the store lists file d's chunks already,
	// so that this push's segment need not.
	KnowsFile(d digest.Digest) bool
	// WritePack stores a finished pack named id.
	WritePack(ctx context.Context, id digest.Digest, data []byte) error
	// CopyPack copies a pack just written to dst (Options.Mirror).
	CopyPack(ctx context.Context, dst remote.Backend, oi remote.ObjectInfo) error
	// Connections bounds the copies to dst in flight.
	Connections() int
}

// Options tune one run of the pipeline.
type Options struct {
	// Excludes are gitignore-style patterns applied from each root,
	// before the .casignore files found inside it.
	Excludes []string
	// Progress, if set, is updated as files are read.
	Progress *Progress
	// Warn is told of every path skipped (FIFOs, sockets, devices).
	Warn func(path string, err error)
	// Skip is a directory never scanned: the store's own. SkipName names
	// the directories never scanned anywhere (every store's).
	Skip, SkipName string
	// StatCache, if set, returns the stat cache entries of dir (relative)
	// below root, as the last push saved them.
	StatCache func(root, dir string) map[string]index.StatEntry
	// Start is when the push began: files modified just before it are not
	// trusted to the stat cache next time (Root.StatDirs).
	Start time.Time
	// HashOnly computes digests and stores nothing; the Store may be nil.
	HashOnly bool
	// Mirror, if set, receives a copy of each pack as soon as it is
	// written (Store.CopyPack), while the push goes on.
	Mirror remote.Backend
	// NaturalCuts, set by tests, replaces chunk.NaturalCuts.
	NaturalCuts func(r io.ReaderAt, size int64) []int64
}

// Root is one path given to Run, as stored.
type Root struct {
	Abs    string
	Digest digest.Digest
	Size   int64
	Kind   format.Kind
	// StatDirs are the stat cache entries to save for the next push.
	StatDirs map[string][]index.StatEntry
}

// Result says what Run read and wrote. The blobs of the packs written
// are in NewBlobs and the chunk lists of new multi-chunk files in
// ChunkLists: the caller writes them into an index segment once the
// packs (PackKeys) are durable.
type Result struct {
	Digest digest.Digest
	Kind   format.Kind
	Size   int64
	// Name is the base name of the single path given.
	Name                    string
	Files, Dirs, Unchanged  int64
	Skipped                 []string
	Chunks, NewChunks       int64
	NewBytes, StoredBytes   int64
	Packs                   int64
	Mirrored, MirroredBytes int64
	Roots                   []Root
	NewBlobs                []index.Blob
	ChunkLists              map[digest.Digest][]digest.Digest
	PackKeys                []string
	// Trees are the trees computed, with HashOnly.
	Trees map[digest.Digest]*format.Tree

	trusted []*node
}

// Run scans paths, reads what changed, cuts, hashes, compresses and packs
// it on every core, and writes the packs to s: the bounded pipeline of
// DESIGN §6. With one path the result is that file or tree; with several,
// a tree holding them by name.
func Run(ctx context.Context, s Store, paths []string, opts Options) (*Result, error) {
	if len(paths) == 0 {
		return nil, errors.New("nothing to push")
	}
	if opts.Progress == nil {
		opts.Progress = &Progress{}
	}
	p := &pusher{s: s, opts: opts, hashOnly: opts.HashOnly || s == nil, chunker: chunkerOf(s)}
	if p.hashOnly {
		p.trees = map[digest.Digest]*format.Tree{}
	}
	roots, err := p.scanRoots(paths)
	if err != nil {
		return nil, err
	}
	finish := p.start(ctx)
	top, err := p.storeRoots(roots)
	if err = finish(err); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}
	return p.result(roots, top), nil
}

// WalkTrusted calls fn for every object below the directories the push
// took as stored whole (Store.TreeStored) without reading them: trees,
// links and files, each with its kind, digest and size. A caller that
// suspects loss checks them after the push.
func (r *Result) WalkTrusted(fn func(kind format.Kind, d digest.Digest, size int64) error) error {
	var walk func(n *node) error
	walk = func(n *node) error {
		if err := fn(n.kind, n.digest, n.size); err != nil {
			return err
		}
		for _, c := range n.children {
			if err := walk(c); err != nil {
				return err
			}
		}
		return nil
	}
	for _, n := range r.trusted {
		if err := walk(n); err != nil {
			return err
		}
	}
	return nil
}

// PutBytes stores each of objs as a file holding those bytes would be
// stored, and returns their digests. The result lists, as Run's does,
// the blobs and chunk lists for the caller's index segment.
func PutBytes(ctx context.Context, s Store, objs [][]byte) ([]digest.Digest, *Result, error) {
	p := &pusher{s: s, opts: Options{Progress: &Progress{}}, chunker: chunkerOf(s)}
	finish := p.start(ctx)
	ids := make([]digest.Digest, len(objs))
	var err error
	for i, b := range objs {
		if ids[i], err = p.storeBytes(b, nil); err != nil {
			break
		}
	}
	if err = finish(err); err != nil {
		return nil, nil, err
	}
	return ids, &Result{NewBlobs: p.newBlobs, ChunkLists: p.files, PackKeys: p.packKeys,
		Packs: p.packs.Load(), StoredBytes: p.storedBytes.Load()}, nil
}

// chunkerOf is s's chunker, or one with the default parameters when there
// is no store (hashing only) or it has none.
func chunkerOf(s Store) *chunk.Chunker {
	if s != nil {
		if c := s.Chunker(); c != nil {
			return c
		}
	}
	params, _ := chunk.NewParams(chunk.DefaultAvg)
	return chunk.New(params)
}
