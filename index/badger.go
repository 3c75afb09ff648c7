package index

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
	"golang.org/x/sys/unix"

	"github.com/cas-ml/cas/digest"
)

// Key prefixes of the badger index. Blob locations and file chunk lists,
// the bulk of an index, are kept in tables of their own (table): blobs/
// and files/ beside badger's files.
const (
	prefixSegment  = 'G' // + segment id → ""
	prefixStoreSeg = 'L' // + segment id of the store's own backend → ""
	prefixDamaged  = 'd' // + blob id → pack of its copy found damaged
	prefixRecord   = 'r' // + digest of a gc record's location → ""
	prefixRemote   = 'm' // + blob or file id known from a remote's segments only → ""
	prefixPack     = 'P' // + pack id → ""
	prefixStat     = 's' // + root + NUL + dir → stat entries
)

// legacyPrefixes are the keys of an index written before the tables:
// blobs ('b'), files ('f'), and the segment ('g', 'l') and pack ('p')
// marks that vouched for them. Opening such an index drops them, so that
// the store's segments are read again into the tables. The marks have
// new prefixes so that a cas of before, opening the index afterwards,
// finds none of its own marks and reads the segments again too, instead
// of trusting marks whose blobs it cannot see.
var legacyPrefixes = [][]byte{{'b'}, {'f'}, {'g'}, {'l'}, {'p'}}

// Directories of the tables, within the index directory.
const (
	blobsDir = "blobs"
	filesDir = "files"
)

// ErrBusy reports that another process holds the on-disk index.
var ErrBusy = errors.New("in use by another process")

// Badger is the on-disk Index.
type Badger struct {
	db       *badger.DB
	dir      string
	blobs    *table // blob ID → Blob value (encodeValue)
	files    *table // file digest → chunk IDs
	lock     *os.File
	releaser *pageReleaser // nil where the process cannot tell its pages

	// reads is the read transaction lookups share until the next write
	// (nil: none yet). Each transaction badger starts waits for the writes
	// in flight to be applied: one per lookup held a push's readers up
	// behind every index write of its own.
	reads   atomic.Pointer[readTxn]
	readsMu sync.Mutex // serializes starting a new one
}

// readTxn is a read transaction shared by lookups; refs counts them, plus
// one while it is the current one. The last to let go discards it.
type readTxn struct {
	txn  *badger.Txn
	refs atomic.Int64
}

// readTxn returns the current shared read transaction, starting one if
// there is none, with a reference the caller gives back (done).
func (x *Badger) readTxn() *readTxn {
	for {
		r := x.reads.Load()
		if r == nil {
			x.readsMu.Lock()
			if r = x.reads.Load(); r == nil {
				r = &readTxn{txn: x.db.NewTransaction(false)}
				r.refs.Store(1)
				x.reads.Store(r)
			}
			x.readsMu.Unlock()
		}
		for n := r.refs.Load(); n > 0; n = r.refs.Load() {
			if r.refs.CompareAndSwap(n, n+1) {
				return r
			}
		}
		// Discarded meanwhile (a write ended it): take the next one.
	}
}

// done gives back a reference to r.
func (r *readTxn) done() {
	if r.refs.Add(-1) == 0 {
		r.txn.Discard()
	}
}

// endReads ends the shared read transaction, once a write has been applied:
// every lookup that starts afterwards sees the write.
func (x *Badger) endReads() {
	if r := x.reads.Swap(nil); r != nil {
		r.done()
	}
}

var _ Index = (*Badger)(nil)

// OpenBadger opens (creating if needed) the index in dir. It returns an
// error wrapping ErrBusy at once if another process has it open.
func OpenBadger(dir string) (*Badger, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create the index directory: %w", err)
	}
	// Our own lock, taken before badger's, tells "busy" apart from other
	// failures without reading error strings.
	lock, err := os.OpenFile(filepath.Join(dir, "cas.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("the index lock file: %w", err)
	}
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		lock.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, ErrBusy
		}
		return nil, fmt.Errorf("lock: %w", err)
	}
	// Memory first: what badger holds (memtables, the builders of its
	// compactions) and what it maps of its files stays a few tens of MiB
	// whatever the index's size. Keys are digests, which do not compress:
	// blocks are stored plain, read from the mapped tables without a block
	// cache, and every table is BaseTableSize at every level (a
	// compaction builds several at once, each in a buffer twice that
	// size). Checksums are verified as blocks are read: verifying whole
	// tables at open read the entire index at every command. A damaged
	// block reads as missing, which a cache survives (what a push cannot
	// find it stores again); a table cut short is caught at open
	// (checkTables).
	opts := badger.DefaultOptions(dir).
		WithLogger(nil).
		WithMemTableSize(4 << 20).
		WithNumMemtables(2).
		WithNumLevelZeroTables(2).
		WithNumLevelZeroTablesStall(8).
		WithBaseTableSize(1 << 20).
		WithCompression(options.None).
		WithBlockCacheSize(0).
		WithIndexCacheSize(8 << 20).
		WithValueLogFileSize(64 << 20).
		WithValueThreshold(1 << 10).
		WithNumCompactors(2).
		WithNumGoroutines(2).
		WithDetectConflicts(false).
		WithChecksumVerificationMode(options.OnBlockRead)
	opts.TableSizeMultiplier = 1
	db, err := openDB(opts)
	if err != nil {
		// We hold the lock, so nobody else uses the database: it was left
		// damaged (a process killed while badger wrote its files). It is
		// only a cache of the store's index segments: start it afresh.
		if rerr := clearExcept(dir, "cas.lock"); rerr == nil {
			db, err = openDB(opts)
		}
	}
	if err != nil {
		lock.Close()
		return nil, fmt.Errorf("open %s: %w", dir, err)
	}
	if err := os.MkdirAll(filepath.Join(dir, statDir), 0o755); err != nil {
		db.Close()
		lock.Close()
		return nil, fmt.Errorf("create the stat cache directory: %w", err)
	}
	x := &Badger{db: db, dir: dir, lock: lock}
	if err := x.openTables(); err != nil {
		_ = x.closeTables() // the error to report is err
		db.Close()
		lock.Close()
		return nil, fmt.Errorf("open %s: %w", dir, err)
	}
	x.releaser = startReleaser(dir)
	return x, nil
}

// openTables opens the blob and file tables. Tables that are new or
// damaged, beside marks saying segments were read, cannot serve what the
// marks vouch for: the index is reset (Reset), so that the segments are
// read again. So is an index written before the tables. The marks are
// dropped before any table is made afresh: a process killed between the
// two then leaves no mark vouching for a table that lost its records.
func (x *Badger) openTables() error {
	legacy := false
	var err error
	for _, p := range legacyPrefixes {
		if legacy, err = x.anyKey(p[0]); err != nil || legacy {
			break
		}
	}
	if err != nil {
		return err
	}
	reset := legacy
	for _, t := range []struct {
		dst **table
		dir string
	}{{&x.blobs, blobsDir}, {&x.files, filesDir}} {
		dir := filepath.Join(x.dir, t.dir)
		*t.dst, err = loadTable(dir, tableMemBytes, false)
		damaged := errors.Is(err, ErrCorrupt)
		if damaged || errors.Is(err, errNoTable) {
			if !reset {
				if reset, err = x.anyKey(prefixSegment); err != nil {
					return err
				}
			}
			if reset {
				if err := x.dropMarks(); err != nil {
					return err
				}
			}
			if damaged {
				if err := os.RemoveAll(dir); err != nil {
					return fmt.Errorf("index: %w", err)
				}
			}
			*t.dst, err = loadTable(dir, tableMemBytes, true)
			if err == nil && testHook != nil {
				err = testHook("table made")
			}
		}
		if err != nil {
			return err
		}
	}
	if legacy {
		if err := x.dropMarks(); err != nil {
			return err
		}
		if err := x.db.DropPrefix(legacyPrefixes...); err != nil {
			return fmt.Errorf("drop the index of before: %w", err)
		}
	}
	if reset {
		return x.Reset()
	}
	return nil
}

func (x *Badger) closeTables() error {
	var err error
	for _, t := range []*table{x.blobs, x.files} {
		if t != nil {
			err = errors.Join(err, t.close())
		}
	}
	return err
}

// openDB opens badger, turning a panic on damaged files (a truncated
// table makes badger index out of range) into an error, which the caller
// answers by starting the cache afresh.
func openDB(opts badger.Options) (db *badger.DB, err error) {
	defer recoverDamage(&err)
	// Badger opens its tables in goroutines of its own, where a panic
	// cannot be recovered: read each table here first.
	if err := checkTables(opts.Dir); err != nil {
		return nil, err
	}
	return badger.Open(opts)
}

// checkTables opens every table file of dir read-only, as badger will,
// and reports the first that is damaged.
func checkTables(dir string) (err error) {
	ssts, _ := filepath.Glob(filepath.Join(dir, "*.sst"))
	for _, f := range ssts {
		if err := checkTable(f); err != nil {
			return err
		}
	}
	return nil
}

// checkTable checks that the footer of a table file (its last 4 bytes
// give the checksum's length, the 4 before the checksum the index's) lies
// within the file: badger reads those lengths unchecked and panics on a
// table cut short. Checksums badger verifies itself (OnBlockRead).
func checkTable(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("%w: table %s: %w", ErrCorrupt, filepath.Base(path), err)
	}
	defer f.Close()
	bad := fmt.Errorf("%w: table %s is cut short", ErrCorrupt, filepath.Base(path))
	fi, err := f.Stat()
	if err != nil || fi.Size() < 8 {
		return bad
	}
	n := uint64(fi.Size())
	var u [4]byte
	if _, err := f.ReadAt(u[:], int64(n-4)); err != nil {
		return bad
	}
	sumLen := uint64(binary.BigEndian.Uint32(u[:]))
	if sumLen > n-8 {
		return bad
	}
	if _, err := f.ReadAt(u[:], int64(n-8-sumLen)); err != nil {
		return bad
	}
	if idxLen := uint64(binary.BigEndian.Uint32(u[:])); idxLen > n-8-sumLen {
		return bad
	}
	return nil
}

// recoverDamage turns a panic inside badger, which its damaged files can
// cause, into an error wrapping ErrCorrupt: the index is a cache, which a
// rebuild from the store's segments (or removing its directory) mends.
func recoverDamage(err *error) {
	if p := recover(); p != nil {
		*err = fmt.Errorf("%w: the local index is damaged (%v)", ErrCorrupt, p)
	}
}

func key(prefix byte, d digest.Digest) []byte {
	k := make([]byte, 1+digest.Size)
	k[0] = prefix
	copy(k[1:], d[:])
	return k
}

func (x *Badger) get(k []byte) (v []byte, ok bool, err error) {
	defer recoverDamage(&err)
	r := x.readTxn()
	defer r.done()
	item, err := r.txn.Get(k)
	if err == nil {
		v, err = item.ValueCopy(nil)
	}
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("read the index: %w", err)
	}
	return v, true, nil
}

// write runs fn over a write batch and flushes it.
func (x *Badger) write(fn func(wb *badger.WriteBatch) error) (err error) {
	defer recoverDamage(&err)
	wb := x.db.NewWriteBatch()
	defer wb.Cancel()
	if err := fn(wb); err != nil {
		return fmt.Errorf("write the index: %w", err)
	}
	err = wb.Flush()
	x.endReads() // applied (or failed part way): lookups from now on see it
	if err != nil {
		return fmt.Errorf("write the index: %w", err)
	}
	return nil
}

// Blob implements Index.
func (x *Badger) Blob(id digest.Digest) (Blob, bool, error) {
	v, ok, err := x.blobs.get(id)
	if !ok || err != nil {
		return Blob{}, false, err
	}
	b, err := decodeBlobValue(id, v)
	return b, err == nil, err
}

// AddBlobs implements Index.
func (x *Badger) AddBlobs(pack digest.Digest, blobs []Blob) error {
	return x.addBlobs(pack, blobs, true)
}

// AddRemoteBlobs implements Index: the marks are written before the
// blobs.
func (x *Badger) AddRemoteBlobs(pack digest.Digest, blobs []Blob, marks []digest.Digest) error {
	if err := x.MarkRemote(marks); err != nil {
		return err
	}
	if testHook != nil {
		if err := testHook("marked"); err != nil {
			return err
		}
	}
	return x.addBlobs(pack, blobs, false)
}

// addBlobs records blobs and their pack, clearing their remote marks
// when unmark.
func (x *Badger) addBlobs(pack digest.Digest, blobs []Blob, unmark bool) error {
	recs := make([]kv, len(blobs))
	for i, b := range blobs {
		recs[i] = kv{b.ID, b.encodeValue()}
	}
	if err := x.blobs.put(recs); err != nil {
		return err
	}
	if !unmark {
		return x.write(func(wb *badger.WriteBatch) error { return wb.Set(key(prefixPack, pack), nil) })
	}
	// Remote marks are cleared only where there are any: a delete per blob
	// would double what every push writes.
	clear, err := x.anyKey(prefixRemote)
	if err != nil {
		return err
	}
	return x.write(func(wb *badger.WriteBatch) error {
		if clear {
			for _, b := range blobs {
				if err := wb.Delete(key(prefixRemote, b.ID)); err != nil {
					return err
				}
			}
			if err := wb.Delete(key(prefixRemote, pack)); err != nil {
				return err
			}
		}
		return wb.Set(key(prefixPack, pack), nil)
	})
}

// FileChunks implements Index.
func (x *Badger) FileChunks(file digest.Digest) ([]digest.Digest, bool, error) {
	v, ok, err := x.files.get(file)
	if !ok || err != nil {
		return nil, false, err
	}
	if len(v)%digest.Size != 0 {
		return nil, false, fmt.Errorf("%w: file %s", ErrCorrupt, file.Short())
	}
	out := make([]digest.Digest, len(v)/digest.Size)
	for i := range out {
		copy(out[i][:], v[i*digest.Size:])
	}
	return out, true, nil
}

// AddFiles implements Index.
func (x *Badger) AddFiles(files map[digest.Digest][]digest.Digest) error {
	return x.addFiles(files, true)
}

// AddRemoteFiles implements Index: the marks are written before the
// chunk lists.
func (x *Badger) AddRemoteFiles(files map[digest.Digest][]digest.Digest) error {
	ids := make([]digest.Digest, 0, len(files))
	for f := range files {
		ids = append(ids, f)
	}
	if err := x.MarkRemote(ids); err != nil {
		return err
	}
	if testHook != nil {
		if err := testHook("marked"); err != nil {
			return err
		}
	}
	return x.addFiles(files, false)
}

// addFiles records chunk lists, clearing their remote marks when unmark.
func (x *Badger) addFiles(files map[digest.Digest][]digest.Digest, unmark bool) error {
	recs := make([]kv, 0, len(files))
	for f, chunks := range files {
		v := make([]byte, 0, len(chunks)*digest.Size)
		for _, c := range chunks {
			v = append(v, c[:]...)
		}
		recs = append(recs, kv{f, v})
	}
	if err := x.files.put(recs); err != nil {
		return err
	}
	if !unmark {
		return nil
	}
	clear, err := x.anyKey(prefixRemote)
	if err != nil || !clear {
		return err
	}
	return x.write(func(wb *badger.WriteBatch) error {
		for f := range files {
			if err := wb.Delete(key(prefixRemote, f)); err != nil {
				return err
			}
		}
		return nil
	})
}

// Files implements Index, in order of file digest.
func (x *Badger) Files(fn func(digest.Digest) error) error {
	return x.files.each(func(f digest.Digest, _ []byte) error { return fn(f) })
}

// HasSegment implements Index.
func (x *Badger) HasSegment(seg digest.Digest) (bool, error) {
	_, ok, err := x.get(key(prefixSegment, seg))
	return ok, err
}

// MarkSegment implements Index.
func (x *Badger) MarkSegment(seg digest.Digest) error {
	return x.write(func(wb *badger.WriteBatch) error { return wb.Set(key(prefixSegment, seg), nil) })
}

// ForgetBlobs implements Index.
func (x *Badger) ForgetBlobs(ids []digest.Digest) error {
	recs := make([]kv, len(ids))
	for i, id := range ids {
		recs[i] = kv{k: id}
	}
	return x.blobs.put(recs)
}

// MarkDamaged implements Index.
func (x *Badger) MarkDamaged(blobs []Blob) error {
	return x.write(func(wb *badger.WriteBatch) error {
		for _, b := range blobs {
			if err := wb.Set(key(prefixDamaged, b.ID), b.Pack[:]); err != nil {
				return err
			}
		}
		return nil
	})
}

// Damaged implements Index.
func (x *Badger) Damaged(id digest.Digest) (digest.Digest, bool, error) {
	v, ok, err := x.get(key(prefixDamaged, id))
	var p digest.Digest
	if ok && len(v) == digest.Size {
		copy(p[:], v)
	}
	return p, ok, err
}

// MarkRemote implements Index.
func (x *Badger) MarkRemote(ids []digest.Digest) error {
	return x.write(func(wb *badger.WriteBatch) error {
		for _, id := range ids {
			if err := wb.Set(key(prefixRemote, id), nil); err != nil {
				return err
			}
		}
		return nil
	})
}

// Remote implements Index.
func (x *Badger) Remote(id digest.Digest) (bool, error) {
	_, ok, err := x.get(key(prefixRemote, id))
	return ok, err
}

// AnyRemote implements Index.
func (x *Badger) AnyRemote() (bool, error) { return x.anyKey(prefixRemote) }

// MarkRecord implements Index.
func (x *Badger) MarkRecord(rec digest.Digest) error {
	return x.write(func(wb *badger.WriteBatch) error { return wb.Set(key(prefixRecord, rec), nil) })
}

// HasRecord implements Index.
func (x *Badger) HasRecord(rec digest.Digest) (bool, error) {
	_, ok, err := x.get(key(prefixRecord, rec))
	return ok, err
}

// AnyDamaged implements Index.
func (x *Badger) AnyDamaged() (bool, error) { return x.anyKey(prefixDamaged) }

// anyKey reports whether any key starts with prefix.
func (x *Badger) anyKey(prefix byte) (bool, error) {
	found := false
	err := x.iterate([]byte{prefix}, false, func([]byte, []byte) error {
		found = true
		return errStopIter
	})
	if errors.Is(err, errStopIter) {
		err = nil
	}
	return found, err
}

var errStopIter = errors.New("stop")

// MarkStoreSegment implements Index.
func (x *Badger) MarkStoreSegment(seg digest.Digest) error {
	return x.write(func(wb *badger.WriteBatch) error {
		if err := wb.Set(key(prefixSegment, seg), nil); err != nil {
			return err
		}
		return wb.Set(key(prefixStoreSeg, seg), nil)
	})
}

// StoreSegments implements Index.
func (x *Badger) StoreSegments(fn func(digest.Digest) error) error {
	return x.iterate([]byte{prefixStoreSeg}, false, func(k, _ []byte) error {
		var d digest.Digest
		copy(d[:], k[1:])
		return fn(d)
	})
}

// HasPack implements Index.
func (x *Badger) HasPack(pack digest.Digest) (bool, error) {
	_, ok, err := x.get(key(prefixPack, pack))
	return ok, err
}

// iterate calls fn for every key (and value when withValues) under prefix.
func (x *Badger) iterate(prefix []byte, withValues bool, fn func(k, v []byte) error) (err error) {
	defer recoverDamage(&err)
	return x.db.View(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.Prefix = prefix
		opts.PrefetchValues = withValues
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			var v []byte
			if withValues {
				var err error
				if v, err = it.Item().ValueCopy(nil); err != nil {
					return err
				}
			}
			if err := fn(it.Item().Key(), v); err != nil {
				return err
			}
		}
		return nil
	})
}

// Packs implements Index.
func (x *Badger) Packs(fn func(digest.Digest) error) error {
	return x.iterate([]byte{prefixPack}, false, func(k, _ []byte) error {
		var d digest.Digest
		copy(d[:], k[1:])
		return fn(d)
	})
}

// Blobs implements Index, in order of blob ID.
func (x *Badger) Blobs(fn func(Blob) error) error {
	return x.blobs.each(func(id digest.Digest, v []byte) error {
		b, err := decodeBlobValue(id, v)
		if err != nil {
			return err
		}
		return fn(b)
	})
}

func statKey(root, dir string) []byte {
	return append(append([]byte{prefixStat}, root...), append([]byte{0}, dir...)...)
}

// The stat cache of a directory is as large as its listing (some 80
// bytes a file), and a push reads or writes all of it: read through
// badger's memory-mapped files, it would stay mapped into the process, so
// its entries live in files of their own (statDir), read and written
// whole. Badger keeps only their keys, with an empty value, so that the
// directories of a root are listed in order (staleStatDirs); a non-empty
// value holds the entries themselves, as an index of an earlier version
// kept them.
const statDir = "stat"

// statFile is where the entries of stat cache key k are kept.
func (x *Badger) statFile(k []byte) string {
	return filepath.Join(x.dir, statDir, digest.Of(k).Hex())
}

// readStat returns the encoded entries of stat cache key k (nil if there
// are none), whether the key is there, and whether badger holds the
// entries themselves (legacy) rather than their file.
func (x *Badger) readStat(k []byte) (v []byte, ok, legacy bool, err error) {
	v, ok, err = x.get(k)
	if !ok || err != nil || len(v) > 0 {
		return v, ok, len(v) > 0, err
	}
	v, err = os.ReadFile(x.statFile(k))
	if errors.Is(err, os.ErrNotExist) {
		return nil, true, false, nil // the key written, not yet the file
	}
	if err != nil {
		return nil, true, false, fmt.Errorf("read the stat cache: %w", err)
	}
	return v, true, false, nil
}

// StatDir implements Index.
func (x *Badger) StatDir(root, dir string) (map[string]StatEntry, error) {
	v, _, _, err := x.readStat(statKey(root, dir))
	if err != nil {
		return map[string]StatEntry{}, err
	}
	return decodeStatEntries(v)
}

// PutStatDir implements Index. A directory whose entries did not change
// is not written again (unless badger holds them: they move to their
// file), so an unchanged re-push writes almost nothing. The key is
// written before the file and deleted after it, so that no file outlives
// its key.
func (x *Badger) PutStatDir(root, dir string, entries []StatEntry, subdirs []string) error {
	k := statKey(root, dir)
	v := encodeStatEntries(entries)
	prev, had, legacy, err := x.readStat(k)
	if err != nil {
		return err
	}
	stale, err := x.staleStatDirs(root, dir, subdirs)
	if err != nil {
		return fmt.Errorf("read the index: %w", err)
	}
	if len(entries) > 0 && (!had || legacy || !bytes.Equal(prev, v)) {
		if err := x.write(func(wb *badger.WriteBatch) error { return wb.Set(k, nil) }); err != nil {
			return err
		}
		if err := x.writeStatFile(k, v); err != nil {
			return err
		}
	}
	if len(entries) == 0 && had {
		stale = append(stale, k)
	}
	for _, k := range stale {
		if err := os.Remove(x.statFile(k)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("write the stat cache: %w", err)
		}
	}
	if len(stale) == 0 {
		return nil
	}
	return x.write(func(wb *badger.WriteBatch) error {
		for _, k := range stale {
			if err := wb.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
}

// writeStatFile replaces the entries file of key k: written beside it,
// then renamed over it, so that a reader never sees half of one. It is a
// cache: nothing is synced.
func (x *Badger) writeStatFile(k, v []byte) error {
	f, err := os.CreateTemp(filepath.Join(x.dir, statDir), "tmp-")
	if err == nil {
		_, err = f.Write(v)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			err = os.Rename(f.Name(), x.statFile(k))
		}
		if err != nil {
			os.Remove(f.Name())
		}
	}
	if err != nil {
		return fmt.Errorf("write the stat cache: %w", err)
	}
	return nil
}

// staleStatDirs returns the stat cache keys of directories below dir
// that are neither one of subdirs (sorted) nor below one. It reads keys
// only, and skips the keys below each of subdirs with one seek, so the
// cost follows dir's subdirectories, not the tree below it.
func (x *Badger) staleStatDirs(root, dir string, subdirs []string) (stale [][]byte, err error) {
	defer recoverDamage(&err)
	prefix := statKey(root, dir)
	if dir != "" {
		prefix = append(prefix, '/')
	}
	err = x.db.View(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.Prefix = prefix
		opts.PrefetchValues = false
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Seek(prefix); it.Valid(); {
			k := it.Item().Key()
			rest := k[len(prefix):]
			name, _, below := bytes.Cut(rest, []byte{'/'})
			_, current := slices.BinarySearch(subdirs, string(name))
			switch {
			case len(rest) == 0 || rest[0] == 0:
				it.Next() // dir itself (the root's), or the caller's own record
			case !current:
				stale = append(stale, it.Item().KeyCopy(nil))
				it.Next()
			case below:
				// Past every key below name: name + "/" + anything sorts
				// before name + "0" ('/' + 1).
				it.Seek(append(append(append([]byte(nil), prefix...), name...), '/'+1))
			default:
				it.Next()
			}
		}
		return nil
	})
	return stale, err
}

// Persistent implements Index.
func (x *Badger) Persistent() bool { return true }

// Reset implements Index.
func (x *Badger) Reset() error {
	if err := x.dropMarks(); err != nil {
		return err
	}
	defer x.endReads()
	if err := x.blobs.reset(); err != nil {
		return fmt.Errorf("reset: %w", err)
	}
	if err := x.files.reset(); err != nil {
		return fmt.Errorf("reset: %w", err)
	}
	// Remote marks last: until the tables are empty, records learned
	// from a remote must keep them.
	if err := x.db.DropPrefix([]byte{prefixRemote}); err != nil {
		return fmt.Errorf("reset: %w", err)
	}
	return nil
}

// testHook, when set by a test, runs between two writes that a process
// may be killed between: after openTables made a table afresh, before
// the reset ("table made"); after AddRemoteBlobs or AddRemoteFiles wrote
// the marks, before the records ("marked"). Its error stands for the
// kill.
var testHook func(step string) error

// dropMarks forgets the marks that vouch for what the tables hold (the
// segments read, the packs known) and the stat cache; not the damage and
// gc record marks, which a rebuild must not forget, nor the remote marks,
// which records of the tables still need until they are reset.
func (x *Badger) dropMarks() error {
	drop := [][]byte{{prefixSegment}, {prefixPack}, {prefixStat}, {prefixStoreSeg}}
	err := x.db.DropPrefix(drop...)
	x.endReads()
	if err != nil {
		return fmt.Errorf("reset: %w", err)
	}
	stat := filepath.Join(x.dir, statDir)
	if err := os.RemoveAll(stat); err != nil {
		return fmt.Errorf("reset: %w", err)
	}
	if err := os.MkdirAll(stat, 0o755); err != nil {
		return fmt.Errorf("reset: %w", err)
	}
	return nil
}

// Close implements Index.
func (x *Badger) Close() error {
	x.releaser.close()
	x.endReads()
	err := errors.Join(x.closeTables(), x.db.Close())
	x.lock.Close()
	if err != nil {
		return fmt.Errorf("close: %w", err)
	}
	return nil
}

// clearExcept removes everything in dir but the entry named keep.
func clearExcept(dir, keep string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.Name() != keep {
			if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
				return err
			}
		}
	}
	return nil
}
