package cas

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/cas-ml/cas/cas/format"
	"github.com/cas-ml/cas/clock"
	"github.com/cas-ml/cas/digest"
	"github.com/cas-ml/cas/index"
	"github.com/cas-ml/cas/remote"
)

// DirName is the name of the store directory that Find looks for.
const DirName = ".cas"

// Layout of a store directory.
const (
	configFile = "config"
	storeDir   = "store" // the local Backend's root: packs/, index/, refs/
	indexDir   = "index" // the badger cache
)

// refPrefix is the backend key prefix of refs; packs and index segments
// live under format.PackPrefix and format.SegmentPrefix (docs/FORMAT.md).
const refPrefix = "refs/"

// Errors a caller may want to tell apart.
var (
	ErrNoRepo      = errors.New("no store found")
	ErrRepoExists  = errors.New("store already exists")
	ErrNotFound    = errors.New("not found")
	ErrNoPath      = errors.New("no such path in the stored tree")
	ErrAmbiguous   = errors.New("ambiguous digest prefix")
	ErrBadConfig   = errors.New("unreadable store config")
	ErrNotTree     = errors.New("not a directory")
	ErrIndexLocked = index.ErrBusy
	// ErrIndexDamaged: the local index, a cache, cannot be read; a
	// rebuild (RebuildIndex) mends it.
	ErrIndexDamaged = index.ErrCorrupt
	// ErrDataNotFound: stored data that a name or a tree points at (a
	// chunk, a blob, a tree) is missing from the store. The name was
	// found; its bytes were not. It is an ErrNotFound too, with the same
	// text.
	ErrDataNotFound error = dataNotFound{}
)

type dataNotFound struct{}

func (dataNotFound) Error() string        { return ErrNotFound.Error() }
func (dataNotFound) Is(target error) bool { return target == ErrNotFound }

// StoreVersion is the version of store this cas creates and reads up to.
// Version 2 stores may hold chunks of codec 2 (the float codec), which a
// cas that knows only version 1 would take for damage: it refuses a store
// of version 2 instead ("version 2 is not supported by this cas"). Open
// upgrades a store of version 1 to 2; its bytes stay as they are.
const StoreVersion = 2

// versionFloatCodec is the first store version whose chunks may be
// stored with the float codec.
const versionFloatCodec = 2

// Config is a store's fixed settings, kept as JSON in .cas/config.
type Config struct {
	Version  int         `json:"version"`
	ID       string      `json:"id"`
	Chunking ChunkParams `json:"chunking"`
	Created  time.Time   `json:"created"`
}

// Repo is an open store: its config, its object backend and its index.
type Repo struct {
	Dir     string // the .cas directory
	Config  Config
	Backend remote.Backend
	Index   index.Index
	// Clock tells the time of records, refs and grace periods (nil: the
	// wall clock); tests pass a clock.Fake.
	Clock clock.Clock
	// Transfers is how many requests to a remote run at once (0: 8).
	Transfers int

	// Warn, if set, is told of damage cas stepped around (a segment it
	// could not read, a ref it skipped); the caller shows it.
	Warn func(error)

	chunker *Chunker
	packs   *packFiles
	// damageTo is where damage found while reading is marked: the index,
	// or, in a verify's view of the store, the store's own index.
	damageTo   index.Index
	remote     remote.Backend // set by UseRemote
	lazy       *lazyRemote    // set by UseRemote for a remote with a lookup index
	lookupOn   sync.Map       // remote location → whether uploads to it write lookup runs
	readers    sync.Map       // remote location → *lookup.Reader of its lookup index
	bucketIDs  sync.Map       // remote location → the ID in its lookup/format
	lookupVers sync.Map       // remote location → the version in its lookup/format
	lastTree   struct {       // the tree ReadTree read last
		mu sync.Mutex
		d  digest.Digest
		t  *Tree
	}
}

// Find returns the .cas directory of start or its nearest ancestor.
func Find(start string) (string, error) {
	dir, err := filepath.Abs(start)
	if err != nil {
		return "", err
	}
	for {
		p := filepath.Join(dir, DirName)
		if fi, err := os.Stat(filepath.Join(p, configFile)); err == nil && fi.Mode().IsRegular() {
			return p, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", ErrNoRepo
		}
		dir = parent
	}
}

// Init creates a store in dir (the .cas directory itself).
func Init(dir string, params ChunkParams, now time.Time) error {
	if err := params.Validate(); err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(dir, configFile)); err == nil {
		return fmt.Errorf("%w in %s", ErrRepoExists, dir)
	}
	for _, d := range []string{dir, filepath.Join(dir, storeDir), filepath.Join(dir, indexDir)} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("init: %w", err)
		}
	}
	var id [16]byte
	_, _ = rand.Read(id[:])
	cfg := Config{Version: StoreVersion, ID: hex.EncodeToString(id[:]), Chunking: params, Created: now.UTC().Truncate(time.Second)}
	// Git ignores a directory holding a .gitignore of "*", as it does
	// virtualenvs: the store never shows as untracked code.
	if err := os.WriteFile(filepath.Join(dir, ".gitignore"), []byte("# created by cas init: git ignores the store\n*\n"), 0o644); err != nil {
		return fmt.Errorf("init: %w", err)
	}
	// Write then link: of two concurrent inits exactly one wins.
	tmp, err := writeJSONAside(dir, ".config-*", cfg)
	if err != nil {
		return fmt.Errorf("init: %w", err)
	}
	defer os.Remove(tmp)
	if err := os.Link(tmp, filepath.Join(dir, configFile)); err != nil {
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("%w in %s", ErrRepoExists, dir)
		}
		return fmt.Errorf("init: %w", err)
	}
	return nil
}

// Open opens the store in dir. If another process holds the on-disk index,
// Open waits briefly, then works with an in-memory index built from the
// store's index segments, so concurrent processes never fail on the lock.
func Open(ctx context.Context, dir string) (*Repo, error) {
	return OpenWith(ctx, dir, OpenOptions{})
}

// OpenOptions tune Open.
type OpenOptions struct {
	// Warn becomes Repo.Warn, already while the store opens.
	Warn func(error)
	// Clock becomes Repo.Clock (nil: the wall clock).
	Clock clock.Clock
}

// OpenWith is Open with options.
func OpenWith(ctx context.Context, dir string, opts OpenOptions) (*Repo, error) {
	b, err := os.ReadFile(filepath.Join(dir, configFile))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%w at %s", ErrNoRepo, dir)
		}
		return nil, err
	}
	var cfg Config
	if err := json.Unmarshal(b, &cfg); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadConfig, err)
	}
	if cfg.Version < 1 || cfg.Version > StoreVersion {
		return nil, fmt.Errorf("%w: version %d is not supported by this cas (it reads versions 1 to %d): upgrade cas", ErrBadConfig, cfg.Version, StoreVersion)
	}
	if err := cfg.Chunking.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadConfig, err)
	}
	be, err := remote.NewLocal(filepath.Join(dir, storeDir))
	if err != nil {
		return nil, err
	}
	idx, err := openIndex(ctx, filepath.Join(dir, indexDir))
	if err != nil {
		return nil, err
	}
	r := &Repo{Dir: dir, Config: cfg, Backend: be, Index: idx, Clock: opts.Clock, Warn: opts.Warn,
		chunker: NewChunker(cfg.Chunking), packs: newPackFiles(be)}
	if cfg.Version < StoreVersion {
		// Before anything is written that needs it. A store that cannot
		// be upgraded (read-only, say) is used as it is: its pushes keep
		// tensor data to the rules of version 1.
		if err := upgradeConfig(dir, cfg); err != nil {
			r.warn(fmt.Errorf("store %s stays at version %d (tensors are stored without the float codec): %w", dir, cfg.Version, err))
		} else {
			r.Config.Version = StoreVersion
		}
	}
	if err := r.SyncIndex(ctx); err != nil {
		_ = r.Close()
		return nil, err
	}
	// Temp files a killed push left: an hour is far beyond any live Put.
	_, _ = be.RemoveStaleTemp(r.Now().Add(-time.Hour))
	return r, nil
}

// upgradeConfig rewrites dir's config at StoreVersion, the rest of cfg
// kept: written aside, then renamed over the old one, so that a crash
// leaves one or the other whole.
func upgradeConfig(dir string, cfg Config) error {
	cfg.Version = StoreVersion
	return replaceJSON(dir, configFile, ".config-*", 0o600, cfg)
}

// writeJSONAside writes v (two-space indented JSON, final newline)
// durably to a new temporary file in dir named by pattern (os.CreateTemp)
// and returns its path, for the caller to link or rename into place,
// then remove.
func writeJSONAside(dir, pattern string, v any) (string, error) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return "", err
	}
	tmp, err := os.CreateTemp(dir, pattern)
	if err != nil {
		return "", err
	}
	_, err = tmp.Write(append(b, '\n'))
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp.Name())
		return "", err
	}
	return tmp.Name(), nil
}

// replaceJSON writes v to dir/name with mode perm, replacing what is
// there so that a crash leaves the old file or the new one whole: written
// aside (writeJSONAside), renamed over it, the directory synced.
func replaceJSON(dir, name, pattern string, perm os.FileMode, v any) error {
	tmp, err := writeJSONAside(dir, pattern, v)
	if err != nil {
		return err
	}
	defer os.Remove(tmp) // once renamed, removes nothing
	if err := os.Chmod(tmp, perm); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		return err
	}
	return remote.SyncDir(dir)
}

// openIndex opens the badger index, waiting up to a second for another
// process to let go of it before falling back to memory. The wait is on
// the wall clock whatever the Repo's clock: it is for another process.
func openIndex(ctx context.Context, dir string) (index.Index, error) {
	delay := 10 * time.Millisecond
	for waited := time.Duration(0); ; waited += delay {
		idx, err := index.OpenBadger(dir)
		if err == nil {
			return idx, nil
		}
		if !errors.Is(err, index.ErrBusy) {
			return nil, err
		}
		if waited >= time.Second {
			return index.NewMemory(), nil
		}
		if err := clock.Real().Sleep(ctx, delay); err != nil {
			return nil, err
		}
		delay = min(2*delay, 200*time.Millisecond)
	}
}

// Close releases the index and open pack files.
func (r *Repo) Close() error {
	r.packs.close()
	return r.Index.Close()
}

// Now is the time on the Repo's clock.
func (r *Repo) Now() time.Time { return clock.OrReal(r.Clock).Now() }

// newView returns a Repo that reads be through idx, an index of its own:
// nothing of a local store is used or trusted. gc marks through one,
// OpenRemoteOnly is one.
func newView(be remote.Backend, idx index.Index, clk clock.Clock) *Repo {
	return &Repo{Backend: be, Index: idx, Clock: clk, packs: newPackFiles(be)}
}

// clk is the Repo's clock, the wall clock when none is set.
func (r *Repo) clk() clock.Clock { return clock.OrReal(r.Clock) }

// Chunker returns the store's chunker.
func (r *Repo) Chunker() *Chunker { return r.chunker }

// SyncIndex loads index segments that the index has not seen yet: those
// written by other processes, or all of them for a fresh index.
func (r *Repo) SyncIndex(ctx context.Context) error { return r.syncIndexFrom(ctx, r.Backend) }

// warn passes damage cas stepped around to the caller.
func (r *Repo) warn(err error) {
	if r.Warn != nil {
		r.Warn(err)
	}
}

func (r *Repo) loadSegmentFrom(ctx context.Context, be remote.Backend, key string) error {
	fs, err := fetchSegment(ctx, be, key)
	if err != nil {
		return err
	}
	defer fs.close()
	return r.indexFetched(be, fs)
}

// indexFetched puts the fetched segment fs of be into the index and
// marks it loaded.
func (r *Repo) indexFetched(be remote.Backend, fs *fetchedSegment) error {
	if _, err := indexSegment(r.Index, fs, be == r.Backend); err != nil {
		return err
	}
	if be == r.Backend {
		return r.Index.MarkStoreSegment(fs.id)
	}
	return r.Index.MarkSegment(fs.id)
}

// indexSegmentFrom records a decoded segment's blobs and files in idx as
// indexSegment records a fetched one (segmentIndexer: a copy marked
// damaged never replaces another the index knows; what a remote's segment
// says is marked as such, never replaces what the store's own segments
// say, and never counts for a push).
func indexSegmentFrom(idx index.Index, seg *format.Segment, fromStore bool) error {
	x, err := newSegmentIndexer(idx, fromStore)
	if err != nil {
		return err
	}
	for _, b := range seg.Blobs {
		if err := x.blob(b); err != nil {
			return err
		}
	}
	for f, chunks := range seg.Files {
		if err := x.file(f, chunks); err != nil {
			return err
		}
	}
	return x.finish()
}

// keepKnown reports whether the index should keep what it knows of b's
// blob rather than take b: when b is the copy found damaged, or when b
// comes from a remote's segment and the store's own segments name the blob.
func keepKnown(idx index.Index, b index.Blob, anyBad, fromStore bool) (bool, error) {
	if !anyBad && fromStore {
		return false, nil
	}
	if _, known, err := idx.Blob(b.ID); err != nil || !known {
		return false, err
	}
	if anyBad {
		if bad, ok, err := idx.Damaged(b.ID); err != nil || ok && bad == b.Pack {
			return err == nil, err
		}
	}
	if fromStore {
		return false, nil
	}
	remote, err := idx.Remote(b.ID)
	return !remote, err
}

// storeKnowsPack reports whether the store's own segments name pack p.
func storeKnowsPack(idx index.Index, p digest.Digest) (bool, error) {
	return storeKnows(idx, p, func() (bool, error) { return idx.HasPack(p) })
}

// storeKnows reports whether the index knows id from the store's own
// segments: it knows it (known) and no remote mark says otherwise.
func storeKnows(idx index.Index, id digest.Digest, known func() (bool, error)) (bool, error) {
	ok, err := known()
	if err != nil || !ok {
		return false, err
	}
	remote, err := idx.Remote(id)
	return !remote, err
}

// RebuildIndex forgets the local index and rebuilds it from the index
// segments and from the trailers of packs that no segment mentions (left
// by an interrupted push). It returns the number of segments and packs read.
//
// The index only ever holds what segments name, so the orphans' blobs are
// written into a segment of their own ("adopted"): a remote that receives
// the packs then receives the segment naming them too.
func (r *Repo) RebuildIndex(ctx context.Context) (segments, orphanPacks int, err error) {
	if err := r.Index.Reset(); err != nil {
		return 0, 0, err
	}
	if err := r.syncSegments(ctx, r.Backend, false, true); err != nil {
		return 0, 0, err
	}
	err = r.Backend.List(ctx, format.SegmentPrefix, func(remote.ObjectInfo) error { segments++; return nil })
	if err != nil {
		return 0, 0, err
	}
	orphanPacks, present, err := r.adoptOrphans(ctx)
	if err != nil {
		return 0, 0, err
	}
	if err := r.preferPresent(ctx, present); err != nil {
		return 0, 0, err
	}
	return segments, orphanPacks, nil
}

// preferPresent makes the rebuilt index place each blob in a pack the
// store holds (present) wherever a segment names such a copy. A gc killed
// after deleting packs and before deleting the segments naming them
// leaves segments that place blobs in packs that are gone; replayed in
// the listing's order, one of them may come after the segment of a push
// that stored those blobs again, and the index would send every reader,
// and the gc guard of the next ref, to the deleted pack. Only when the
// index names a pack the store lacks are the segments read again.
func (r *Repo) preferPresent(ctx context.Context, present map[digest.Digest]bool) error {
	gone := false
	err := r.Index.Packs(func(p digest.Digest) error {
		if !present[p] {
			gone = true
			return errStop
		}
		return nil
	})
	if err != nil && !errors.Is(err, errStop) || !gone {
		return err
	}
	var keys []string
	if err := r.Backend.List(ctx, format.SegmentPrefix, func(oi remote.ObjectInfo) error { keys = append(keys, oi.Key); return nil }); err != nil {
		return err
	}
	moved := map[digest.Digest][]index.Blob{} // pack → blobs to place there
	for _, key := range keys {
		err := scanSegment(ctx, r.Backend, key, format.SegmentVisitor{Blob: func(b index.Blob) error {
			if !present[b.Pack] {
				return nil
			}
			cur, ok, err := r.Index.Blob(b.ID)
			if err != nil || !ok || present[cur.Pack] {
				return err
			}
			if bad, ok, err := r.Index.Damaged(b.ID); err != nil || ok && bad == b.Pack {
				return err
			}
			moved[b.Pack] = append(moved[b.Pack], b)
			return nil
		}})
		if errors.Is(err, remote.ErrNotFound) {
			continue // merged away meanwhile: the merged one is listed next time
		}
		var ce *CorruptError
		var ie *InvalidError
		if errors.As(err, &ce) || errors.As(err, &ie) || errors.Is(err, format.ErrBadSegment) {
			continue // skipped, with a warning, by the rebuild already
		}
		if err != nil {
			return err
		}
	}
	for pack, blobs := range moved {
		if err := r.Index.AddBlobs(pack, blobs); err != nil {
			return err
		}
	}
	return nil
}

// adoptedMark, a record mark that outlives index resets, says orphan packs
// were adopted: they may hold trees whose files' chunk lists no segment
// kept (a push killed before its segment, a segment lost), so pushes no
// longer take a stored tree's word for everything below it. A rebuild
// that adopts nothing only reloads what segments say, and sets no mark.
var adoptedMark = digest.Of([]byte("cas: orphan packs were adopted"))

// OrphanPackError is a pack that no index segment names and that could
// not be adopted, as reading it failed its checks: it is left where it
// is, and verify reports it.
type OrphanPackError struct {
	Pack digest.Digest
	Err  error
}

func (e *OrphanPackError) Error() string {
	return fmt.Sprintf("pack %s, which no index segment names: %v (not adopted)", e.Pack.Short(), e.Err)
}

func (e *OrphanPackError) Unwrap() error { return e.Err }

// adoptOrphans writes a segment naming the blobs of every pack in the
// store that no segment names: the packs of a push killed before its
// segment (or of one still running elsewhere, which is harmless: both
// segments then name the same blobs). A push calls it first, so it
// resumes past what a killed push stored without ever trusting a pack
// that no segment vouches for. It returns how many packs it adopted, and
// the packs the store holds.
func (r *Repo) adoptOrphans(ctx context.Context) (int, map[digest.Digest]bool, error) {
	var adopted []index.Blob
	var keys []string
	present := map[digest.Digest]bool{}
	err := r.Backend.List(ctx, format.PackPrefix, func(oi remote.ObjectInfo) error {
		id, err := format.PackIDFromKey(oi.Key)
		if err != nil {
			return nil
		}
		present[id] = true
		known, err := r.Index.HasPack(id)
		if err != nil || known {
			return err
		}
		// Nothing vouches for an orphan: it is read whole, and adopted
		// only if every chunk in it is what its trailer says.
		var blobs []index.Blob
		err = r.readPack(ctx, oi.Key, func(b index.Blob, _ []byte, berr error) error {
			if berr != nil {
				return berr
			}
			blobs = append(blobs, b)
			return nil
		})
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			r.warn(&OrphanPackError{Pack: id, Err: err})
			return nil
		}
		adopted = append(adopted, blobs...)
		keys = append(keys, oi.Key)
		return nil
	})
	if err != nil || len(adopted) == 0 {
		return 0, present, err
	}
	if err := r.syncKeys(keys...); err != nil {
		return 0, nil, err
	}
	if err := r.Index.MarkRecord(adoptedMark); err != nil {
		return 0, nil, err
	}
	if _, err := r.writeSegment(ctx, adopted, nil); err != nil {
		return 0, nil, fmt.Errorf("adopt orphan packs: %w", err)
	}
	return len(keys), present, nil
}

// writeSegment stores an index segment naming blobs and files of packs
// already durable, then records them in the index: the index only ever
// holds what a stored segment names.
func (r *Repo) writeSegment(ctx context.Context, blobs []index.Blob, files map[digest.Digest][]digest.Digest) (int64, error) {
	seg := &format.Segment{Blobs: blobs, Files: files}
	data := seg.Encode()
	id := digest.Of(data)
	key := format.SegmentKey(id)
	if err := putOnce(ctx, r.Backend, key, data); err != nil {
		return 0, fmt.Errorf("write index segment: %w", err)
	}
	if err := r.syncKeys(key); err != nil {
		return 0, err
	}
	if err := indexSegmentFrom(r.Index, seg, true); err != nil {
		return 0, err
	}
	return int64(len(data)), r.Index.MarkStoreSegment(id)
}

// syncKeys makes objects of the store durable where the backend needs
// telling.
func (r *Repo) syncKeys(keys ...string) error { return remote.SyncKeys(r.Backend, keys...) }

// replaceIfDifferent makes the object at key hold data: an existing one
// whose bytes differ (damaged) is deleted and written again.
func replaceIfDifferent(ctx context.Context, be remote.Backend, key string, data []byte) error {
	old, err := remote.ReadAll(ctx, be, key)
	if err == nil && bytes.Equal(old, data) {
		return nil
	}
	if err != nil && !errors.Is(err, remote.ErrNotFound) {
		return err
	}
	if err := be.Delete(ctx, key); err != nil && !errors.Is(err, remote.ErrNotFound) {
		return err
	}
	err = be.Put(ctx, key, bytes.NewReader(data), int64(len(data)), remote.PutOptions{IfNoneMatch: true})
	if errors.Is(err, remote.ErrExists) {
		return nil // another writer put it back meanwhile: the same name, the same bytes
	}
	return err
}

// putOnce writes data at key on be, for an object named by its content:
// one already there under that name (a killed writer's, perhaps damaged
// since) is kept only if it holds exactly these bytes.
func putOnce(ctx context.Context, be remote.Backend, key string, data []byte) error {
	err := be.Put(ctx, key, bytes.NewReader(data), int64(len(data)), remote.PutOptions{IfNoneMatch: true})
	if errors.Is(err, remote.ErrExists) {
		err = replaceIfDifferent(ctx, be, key, data)
	}
	return err
}

// readPackTrailer reads and decodes the trailer of a stored pack.
func (r *Repo) readPackTrailer(ctx context.Context, id digest.Digest, size int64) ([]index.Blob, error) {
	tail, err := readPackTail(ctx, r.Backend, id, size)
	if err != nil {
		return nil, err
	}
	return format.ParsePackTrailer(id, tail, size)
}

// readPackTail reads the trailer and footer of the pack id, size bytes on
// be, with two ranged reads: the footer, which says the trailer's length,
// then the trailer.
func readPackTail(ctx context.Context, be remote.Backend, id digest.Digest, size int64) ([]byte, error) {
	if size < int64(format.MinPackLen) {
		return nil, fmt.Errorf("pack %s: %w: too small", id.Short(), ErrBadPack)
	}
	foot := make([]byte, format.PackFooterLen)
	if err := readRange(ctx, be, id, foot, size-int64(len(foot))); err != nil {
		return nil, err
	}
	tl, err := format.PackTrailerLen(foot)
	if err != nil {
		return nil, err
	}
	if int64(tl) > size-int64(len(format.PackMagic)) {
		return nil, fmt.Errorf("pack %s: %w: trailer length", id.Short(), ErrBadPack)
	}
	tail := make([]byte, tl)
	if err := readRange(ctx, be, id, tail, size-int64(tl)); err != nil {
		return nil, err
	}
	return tail, nil
}

// CorruptError reports stored bytes that do not hash to their name.
type CorruptError struct {
	What string // "chunk", "pack", "file", "tree", "index segment"
	ID   digest.Digest
	Path string // where known: the file or directory affected
	// Pack, where known, holds the damaged copy of chunk ID.
	Pack digest.Digest
}

func (e *CorruptError) Error() string {
	s := fmt.Sprintf("%s %s is damaged", e.What, e.ID.Short())
	if e.Path != "" {
		s = e.Path + ": " + s
	}
	return s
}
