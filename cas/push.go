package cas

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/cas-ml/cas/cas/chunk"
	"github.com/cas-ml/cas/cas/format"
	"github.com/cas-ml/cas/cas/ingest"
	"github.com/cas-ml/cas/digest"
	"github.com/cas-ml/cas/index"
	"github.com/cas-ml/cas/remote"
)

// PushOptions tune a push.
type PushOptions struct {
	// Excludes are gitignore-style patterns applied from each pushed root,
	// before the .casignore files found inside it.
	Excludes []string
	// Progress, if set, is updated as files are read.
	Progress *Progress
	// Warn is told of every path skipped (FIFOs, sockets, devices).
	Warn func(path string, err error)
	// Ref, if set, names what was pushed: the ref is set in the local
	// store and, with Remote, on the remote.
	Ref string
	// Remote, if set, is where the push is published: each pack goes up
	// as soon as it is written locally, while the push goes on; then
	// Publish sends what the remote still lacks and sets Ref there.
	Remote remote.Backend
	// NoFloatCodec keeps tensor data to the rule for other data (zstd
	// where it pays), as cas did before the float codec: for benchmarks.
	NoFloatCodec bool

	// naturalCuts, set by tests, replaces chunk.NaturalCuts (to compare
	// with plain chunking, say).
	naturalCuts func(r io.ReaderAt, size int64) []int64
}

// Progress counts work as it is done; a caller polls it to draw a bar.
type Progress = ingest.Progress

// ErrFileChanged reports a file that kept changing while cas read it.
var ErrFileChanged = ingest.ErrFileChanged

// ErrSpecialFile reports a FIFO, socket or device, which cas skips.
var ErrSpecialFile = ingest.ErrSpecialFile

// PushResult says what a push stored.
type PushResult struct {
	Digest      digest.Digest `json:"digest"`
	Kind        Kind          `json:"kind"`
	Files       int64         `json:"files"`
	Dirs        int64         `json:"dirs"`
	Bytes       int64         `json:"bytes"`
	NewBytes    int64         `json:"new_bytes"`
	StoredBytes int64         `json:"stored_bytes"`
	Chunks      int64         `json:"chunks"`
	NewChunks   int64         `json:"new_chunks"`
	Packs       int64         `json:"packs"`
	Unchanged   int64         `json:"unchanged_files"`
	Skipped     []string      `json:"skipped"`
	// Name is the base name of the single pushed path.
	Name string `json:"-"`
	// Upload counts what went to PushOptions.Remote, during the push and
	// after it.
	Upload *TransferStats `json:"-"`

	mirrored, mirroredBytes int64 // packs sent to Remote during the push
}

// pushResult is what the ingest pipeline did, as a push reports it.
func pushResult(res *ingest.Result) *PushResult {
	return &PushResult{Digest: res.Digest, Kind: res.Kind, Files: res.Files, Dirs: res.Dirs, Bytes: res.Size,
		NewBytes: res.NewBytes, StoredBytes: res.StoredBytes, Chunks: res.Chunks, NewChunks: res.NewChunks,
		Packs: res.Packs, Unchanged: res.Unchanged, Skipped: res.Skipped, Name: res.Name,
		mirrored: res.Mirrored, mirroredBytes: res.MirroredBytes}
}

// Object is what the push stored, as a ref names it.
func (res *PushResult) Object(paths int) Object {
	o := Object{Digest: res.Digest, Kind: res.Kind, Size: res.Bytes}
	if paths == 1 && res.Kind != KindDir {
		o.Name = res.Name
	}
	return o
}

// Push stores paths and returns the digest of the result: a single path's
// file or tree digest, or, for several paths, the digest of a tree holding
// them by base name.
func (r *Repo) Push(ctx context.Context, paths []string, opts PushOptions) (*PushResult, error) {
	if opts.Ref != "" && !ValidRefName(opts.Ref) {
		return nil, fmt.Errorf("%q: %w", opts.Ref, ErrBadRefName)
	}
	start := r.Now()
	res, err := r.push(ctx, paths, opts)
	if err != nil {
		return nil, err
	}
	obj := res.Object(len(paths))
	if opts.Ref != "" {
		if _, err := r.SetRef(ctx, opts.Ref, obj); err != nil {
			return nil, err
		}
	}
	if opts.Remote == nil {
		return res, nil
	}
	mirrored := TransferStats{Objects: res.mirrored, Bytes: res.mirroredBytes, Seconds: r.Now().Sub(start).Seconds()}
	opts.Progress.Restart()
	if opts.Progress != nil {
		opts.Progress.Uploading.Store(true)
	}
	// The packs went up from this push: without a ref, nothing to check.
	st, err := r.publish(ctx, opts.Remote, opts.Ref, obj, opts.Progress, false)
	if err != nil {
		return nil, err
	}
	st.Objects += mirrored.Objects
	st.Bytes += mirrored.Bytes
	st.Seconds += mirrored.Seconds
	st.Skipped = max(0, st.Skipped-mirrored.Objects) // those it found were ours
	res.Upload = st
	return res, nil
}

// push stores paths in the local store, mirroring packs to opts.Remote.
func (r *Repo) push(ctx context.Context, paths []string, opts PushOptions) (*PushResult, error) {
	_, present, err := r.adoptOrphans(ctx)
	if err != nil {
		return nil, err
	}
	suspect, err := r.lossSuspected(present)
	if err != nil {
		return nil, err
	}
	s := r.newPushStore(false)
	for id := range present {
		s.present.Store(id, true)
	}
	res, err := r.run(ctx, s, suspect, paths, opts)
	var lost *lostError
	if !errors.As(err, &lost) {
		return res, err
	}
	// Data the index vouched for is gone from the store (a deleted or
	// damaged pack): forget it, and push again trusting no stored tree,
	// so that every file is checked and what is missing stored again.
	if err := r.Index.ForgetBlobs(lost.blobs); err != nil {
		return nil, err
	}
	r.warn(lost)
	opts.Progress.Restart()
	res, err = r.run(ctx, r.newPushStore(true), false, paths, opts)
	if errors.As(err, &lost) {
		return nil, fmt.Errorf("push: %w, even after storing it again", lost)
	}
	return res, err
}

// HashResult is a digest computed without storing anything.
type HashResult struct {
	Digest digest.Digest
	Kind   Kind
	Size   int64
	Files  int64
	trees  map[digest.Digest]*Tree
}

// Tree returns a tree computed by Hash, for diffs against stored trees.
func (h *HashResult) Tree(d digest.Digest) (*Tree, bool) {
	t, ok := h.trees[d]
	return t, ok
}

// Hash computes the digest of paths without storing anything. r may be
// nil (no store); then no stat cache is used.
func Hash(ctx context.Context, r *Repo, paths []string, opts PushOptions) (*HashResult, error) {
	io := ingest.Options{Excludes: opts.Excludes, Progress: opts.Progress, Warn: opts.Warn, HashOnly: true,
		SkipName: DirName, NaturalCuts: opts.naturalCuts}
	if r != nil {
		io.Skip, io.StatCache = r.Dir, r.statCache
	}
	res, err := ingest.Run(ctx, nil, paths, io)
	if err != nil {
		return nil, err
	}
	return &HashResult{Digest: res.Digest, Kind: res.Kind, Size: res.Size, Files: res.Files, trees: res.Trees}, nil
}

// statCache is what the last push saved of dir below root.
func (r *Repo) statCache(root, dir string) map[string]index.StatEntry {
	m, err := r.Index.StatDir(root, dir)
	if err != nil {
		return nil
	}
	return m
}

// run pushes paths through the ingest pipeline into s, which writes an
// index segment for each batch of packs as they go, and saves the stat
// cache a directory at a time. With suspect, what the pipeline takes as
// stored without reading it is checked as it takes it, and a lostError
// names what is gone.
func (r *Repo) run(ctx context.Context, s *pushStore, suspect bool, paths []string, opts PushOptions) (*PushResult, error) {
	start := r.Now()
	io := ingest.Options{Excludes: opts.Excludes, Progress: opts.Progress, Warn: opts.Warn,
		Skip: r.Dir, SkipName: DirName, StatCache: r.statCache, SaveStat: r.saveStat, Start: start,
		Mirror: opts.Remote, NaturalCuts: opts.naturalCuts, NoFloatCodec: opts.NoFloatCodec || r.Config.Version < versionFloatCodec}
	if suspect {
		io.Trusted = s.checkTrusted(ctx)
	}
	res, err := ingest.Run(ctx, s, paths, io)
	if err != nil {
		return nil, err
	}
	if err := s.lost(); err != nil {
		return nil, err
	}
	for _, rt := range res.Roots {
		r.saveStat(rt.Abs, lastPushKey, []index.StatEntry{{Digest: rt.Digest, Size: rt.Size, Mode: uint32(rt.Kind)}}, nil)
	}
	return pushResult(res), nil
}

// saveStat saves the stat cache of one directory of a pushed root. The
// stat cache is a speed-up: failing to save it fails nothing.
func (r *Repo) saveStat(root, dir string, entries []index.StatEntry, subdirs []string) {
	_ = r.Index.PutStatDir(root, dir, entries, subdirs)
}

// pushStore is the store as one push's pipeline sees it (ingest.Store):
// what it may reuse is decided here.
type pushStore struct {
	r *Repo
	// distrust: no stored tree vouches for what lies below it (a push
	// again after data the index knew was found missing).
	distrust bool
	// marks: the index holds damage or remote marks, which HasBlob must
	// then ask about (without any, it makes one lookup per chunk).
	marks   bool
	present sync.Map // pack ID → bool: in the store, asked once a push

	lostMu    sync.Mutex
	lostBlobs []digest.Digest // found missing by checkTrusted
	lostErr   error           // the first error checkTrusted met
}

func (r *Repo) newPushStore(distrust bool) *pushStore {
	bad, err1 := r.Index.AnyDamaged()
	remote, err2 := r.Index.AnyRemote()
	return &pushStore{r: r, distrust: distrust, marks: bad || remote || err1 != nil || err2 != nil} // unsure: ask
}

func (s *pushStore) Chunker() *chunk.Chunker { return s.r.chunker }
func (s *pushStore) Connections() int        { return s.r.transfers() }

// TreeStored: a tree the store's own segments name, unless no stored tree
// is to be trusted. A tree only a remote's segment names vouches for
// nothing here: the push settles below it file by file.
func (s *pushStore) TreeStored(d digest.Digest) (bool, error) {
	if s.distrust {
		return false, nil
	}
	b, ok, err := s.r.Index.Blob(d)
	if err != nil || !ok || b.Type != index.TypeTree {
		return false, err
	}
	return s.notRemote(d)
}

// KnowsFile: a segment of the store names the file's chunk list (the
// index is rebuilt when one it loaded is gone).
func (s *pushStore) KnowsFile(d digest.Digest) bool {
	_, ok, err := s.r.Index.FileChunks(d)
	if err != nil || !ok {
		return false
	}
	ok, err = s.notRemote(d)
	return ok && err == nil
}

// notRemote reports whether what the index knows of id came from the
// store's own segments, not only from a remote's; without any remote
// mark in the index (marks), it asks nothing.
func (s *pushStore) notRemote(id digest.Digest) (bool, error) {
	if !s.marks {
		return true, nil
	}
	remote, err := s.r.Index.Remote(id)
	return err == nil && !remote, err
}

// WritePack writes a pack once; a pack of the same name that is there (a
// killed push's, perhaps damaged since) is kept only if it holds exactly
// these bytes.
func (s *pushStore) WritePack(ctx context.Context, id digest.Digest, data []byte) error {
	key := format.PackKey(id)
	err := putOnce(ctx, s.r.Backend, key, data)
	if err == nil {
		remote.StartSync(s.r.Backend, key)
	}
	return err
}

// IndexPacks writes the index segment of a batch of packs once they are
// durable, and records it in the index: only then does the index learn
// their blobs, so a push killed before leaves packs no segment names,
// which the next push adopts (adoptOrphans) without trusting them first.
func (s *pushStore) IndexPacks(ctx context.Context, b *ingest.Batch) (int64, error) {
	// Packs reach the disk before the segment that names them, and the
	// segment before any ref that relies on it.
	if err := s.r.syncKeys(b.PackKeys...); err != nil {
		return 0, err
	}
	return s.r.writeSegment(ctx, b.Blobs, b.Files)
}

func (s *pushStore) CopyPack(ctx context.Context, dst remote.Backend, oi remote.ObjectInfo) error {
	return s.r.mirrorPack(ctx, dst, oi)
}

// hasFile reports whether every chunk of a file is in the store.
func (s *pushStore) HasFile(ctx context.Context, d digest.Digest, size int64) (bool, error) {
	chunks, err := s.storeFileChunks(d, size)
	if err != nil {
		return false, err
	}
	for _, c := range chunks {
		if ok, err := s.HasBlob(ctx, c); !ok || err != nil {
			return false, err
		}
	}
	return true, nil
}

// storeFileChunks is fileChunks as the store's own segments say it: a
// chunk list only a remote's segment gave is not the store's.
func (s *pushStore) storeFileChunks(d digest.Digest, size int64) ([]digest.Digest, error) {
	chunks, err := s.r.indexFileChunks(d, size)
	if err != nil || len(chunks) == 1 && chunks[0] == d {
		return chunks, err
	}
	if ours, err := s.notRemote(d); err != nil || !ours {
		return []digest.Digest{d}, err // as if unknown: HasBlob(d) is false
	}
	return chunks, nil
}

// HasBlob reports whether a blob is in the store: known to the index from
// the store's own segments, in a pack that is there, not found damaged.
// The index is a cache and never the last word.
func (s *pushStore) HasBlob(ctx context.Context, id digest.Digest) (bool, error) {
	b, ok, err := s.r.Index.Blob(id)
	if !ok || err != nil {
		return false, err
	}
	if ours, err := s.notRemote(id); err != nil || !ours {
		return false, err
	}
	if s.marks {
		if bad, ok, err := s.r.Index.Damaged(id); err != nil || (ok && bad == b.Pack) {
			return false, err
		}
	}
	return s.packPresent(ctx, b.Pack)
}

// packPresent reports whether a pack is in the store, asking the backend
// once per pack and push.
func (s *pushStore) packPresent(ctx context.Context, pack digest.Digest) (bool, error) {
	if v, ok := s.present.Load(pack); ok {
		return v.(bool), nil
	}
	_, err := s.r.Backend.Stat(ctx, format.PackKey(pack))
	if err != nil && !errors.Is(err, remote.ErrNotFound) {
		return false, fmt.Errorf("pack %s: %w", pack.Short(), err)
	}
	s.present.Store(pack, err == nil)
	return err == nil, nil
}

// lossSuspected reports whether the index may vouch for data the store no
// longer has: a pack the store's own segments name is not among present
// (the packs the store holds), a chunk was found damaged, or orphan packs
// were adopted (adoptedMark). Only then must a push check what lies below
// the stored trees it trusts.
func (r *Repo) lossSuspected(present map[digest.Digest]bool) (bool, error) {
	if bad, err := r.Index.AnyDamaged(); err != nil || bad {
		return bad, err
	}
	if adopted, err := r.Index.HasRecord(adoptedMark); err != nil || adopted {
		return adopted, err
	}
	lost := false
	err := r.Index.Packs(func(p digest.Digest) error {
		if present[p] {
			return nil
		}
		remote, err := r.Index.Remote(p)
		if err == nil && !remote {
			lost = true
			return errStop
		}
		return err
	})
	if errors.Is(err, errStop) {
		err = nil
	}
	return lost, err
}

// lostError reports blobs the index placed in packs the store no longer
// has: the push that found them stores them again.
type lostError struct{ blobs []digest.Digest }

func (e *lostError) Error() string {
	return fmt.Sprintf("%d chunks the index knew are not vouched for by the store (a push cut short, or a pack deleted or damaged): reading every file again and storing what is missing", len(e.blobs))
}

// checkTrusted returns the check of what the pipeline takes as stored
// without reading it (ingest.Options.Trusted): each tree, file and link
// of such a directory must be in the store; lost reports what is not.
func (s *pushStore) checkTrusted(ctx context.Context) func(kind Kind, d digest.Digest, size int64) {
	return func(kind Kind, d digest.Digest, size int64) {
		ids := []digest.Digest{d} // a tree, or a link's target
		if kind.IsFile() {
			var err error
			if ids, err = s.storeFileChunks(d, size); err != nil {
				s.noteLost(nil, err)
				return
			}
		}
		for _, id := range ids {
			ok, err := s.HasBlob(ctx, id)
			if err != nil || !ok {
				s.noteLost(&id, err)
			}
		}
	}
}

func (s *pushStore) noteLost(id *digest.Digest, err error) {
	s.lostMu.Lock()
	defer s.lostMu.Unlock()
	switch {
	case err != nil:
		if s.lostErr == nil {
			s.lostErr = err
		}
	case id != nil:
		s.lostBlobs = append(s.lostBlobs, *id)
	}
}

// lost reports what checkTrusted found missing, or the first error it met.
func (s *pushStore) lost() error {
	s.lostMu.Lock()
	defer s.lostMu.Unlock()
	if s.lostErr != nil {
		return s.lostErr
	}
	if len(s.lostBlobs) > 0 {
		return &lostError{blobs: s.lostBlobs}
	}
	return nil
}
