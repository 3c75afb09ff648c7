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
	// IndexPacks makes the packs of b durable, then writes the index
	// segment naming them and records it in the index; it returns the
	// segment's size. Batches come in the order their packs were
	// written, and a blob is never in an earlier batch than a blob it
	// relies on (a tree's entries, a file list's chunks). The pipeline
	// reuses b's slices for the next batch: the Store keeps none of them.
	IndexPacks(ctx context.Context, b *Batch) (int64, error)
	// CopyPack copies a pack just written to dst (Options.Mirror), or
	// leaves it for later and says so with ErrNotCopied: dst may hold its
	// blobs already, which the store decides.
	CopyPack(ctx context.Context, dst remote.Backend, oi remote.ObjectInfo) error
	// Connections bounds the copies to dst in flight.
	Connections() int
}

// Batch is a run of packs a push wrote, for the index segment that names
// them: their keys, their blobs, and the chunk lists of the multi-chunk
// files stored in them (or before them) that the store did not list yet.
type Batch struct {
	PackKeys []string
	Blobs    []index.Blob
	Files    map[digest.Digest][]digest.Digest
}

// Empty reports whether b names nothing.
func (b *Batch) Empty() bool { return len(b.Blobs) == 0 && len(b.Files) == 0 }

// ErrNotCopied is what Store.CopyPack returns for a pack it left for
// later: nothing went up, and nothing is counted as mirrored.
var ErrNotCopied = errors.New("pack not copied")

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
	// SaveStat, if set, is given the stat cache entries of each directory
	// once it is pushed (of root itself, "", when root is a file), and
	// the names of its subdirectories: what the cache held below dir for
	// any other is stale.
	SaveStat func(root, dir string, entries []index.StatEntry, subdirs []string)
	// Start is when the push began: files modified just before it are not
	// trusted to the stat cache next time (SaveStat leaves them out).
	Start time.Time
	// Trusted, if set, is called for every tree, file and link of each
	// directory the push takes as stored whole (Store.TreeStored) without
	// reading it, as it takes it; the directories below it were taken,
	// and reported, before. A caller that suspects loss checks them.
	Trusted func(kind format.Kind, d digest.Digest, size int64)
	// HashOnly computes digests and stores nothing; the Store may be nil.
	HashOnly bool
	// Mirror, if set, receives a copy of each pack as soon as it is
	// written (Store.CopyPack), while the push goes on.
	Mirror remote.Backend
	// NaturalCuts, set by tests, replaces chunk.NaturalCuts (and leaves
	// the data untyped).
	NaturalCuts func(r io.ReaderAt, size int64) []int64
	// NoFloatCodec keeps tensor data to the rule for untyped data (zstd
	// where it pays): for benchmarks that compare with the float codec.
	NoFloatCodec bool
}

// Root is one path given to Run, as stored.
type Root struct {
	Abs    string
	Digest digest.Digest
	Size   int64
	Kind   format.Kind
}

// Result says what Run read and wrote. The packs written are named by
// the index segments the Store wrote for them (Store.IndexPacks) before
// Run returned.
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
	// Trees are the trees computed, with HashOnly.
	Trees map[digest.Digest]*format.Tree
}

// Run walks paths, reads what changed, cuts, hashes, compresses and packs
// it on every core, writes the packs to s and has s index them a batch at
// a time: the bounded pipeline of DESIGN §6. It works directory by
// directory, so that what it holds follows the directories being worked
// on, not the size of the tree. With one path the result is that file or
// tree; with several, a tree holding them by name.
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
	roots, err := p.openRoots(paths)
	if err != nil {
		return nil, err
	}
	finish := p.start(ctx)
	top, err := p.pushRoots(roots)
	if err = finish(err); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}
	return p.result(roots, top), nil
}

// PutBytes stores each of objs as a file holding those bytes would be
// stored, and returns their digests; the Store has indexed them, as Run's
// packs, when it returns.
func PutBytes(ctx context.Context, s Store, objs [][]byte) ([]digest.Digest, *Result, error) {
	p := &pusher{s: s, opts: Options{Progress: &Progress{}}, chunker: chunkerOf(s)}
	finish := p.start(ctx)
	ids := make([]digest.Digest, len(objs))
	var err error
	for i, b := range objs {
		if ids[i], err = p.putBytes(b); err != nil {
			break
		}
	}
	if err = finish(err); err != nil {
		return nil, nil, err
	}
	return ids, &Result{Packs: p.packs.Load(), StoredBytes: p.storedBytes.Load()}, nil
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
