package index

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
	"golang.org/x/sys/unix"

	"github.com/cas-ml/cas/digest"
)

// Key prefixes of the badger index.
const (
	prefixBlob     = 'b' // + blob id → Blob value
	prefixFile     = 'f' // + file digest → chunk ids
	prefixSegment  = 'g' // + segment id → ""
	prefixStoreSeg = 'l' // + segment id of the store's own backend → ""
	prefixDamaged  = 'd' // + blob id → pack of its copy found damaged
	prefixRecord   = 'r' // + digest of a gc record's location → ""
	prefixRemote   = 'm' // + blob or file id known from a remote's segments only → ""
	prefixPack     = 'p' // + pack id → ""
	prefixStat     = 's' // + root + NUL + dir → stat entries
)

// ErrBusy reports that another process holds the on-disk index.
var ErrBusy = errors.New("in use by another process")

// Badger is the on-disk Index.
type Badger struct {
	db   *badger.DB
	lock *os.File
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
	opts := badger.DefaultOptions(dir).
		WithLogger(nil).
		WithMemTableSize(8 << 20).
		WithNumMemtables(2).
		WithNumLevelZeroTables(2).
		WithNumLevelZeroTablesStall(8).
		WithBaseTableSize(2 << 20).
		WithBlockCacheSize(8 << 20).
		WithIndexCacheSize(8 << 20).
		WithValueLogFileSize(64 << 20).
		WithValueThreshold(1 << 10).
		WithNumCompactors(2).
		WithNumGoroutines(2).
		WithDetectConflicts(false).
		// Each block is checked as it is read. Checking whole tables at
		// open (OnTableRead) read every table through its mapping, so
		// every command began with the whole index resident: 140 MiB
		// after a push of a million files. A block that fails its check
		// reads as absent: the cache forgets what it held, which a push
		// stores again and a rebuild restores.
		WithChecksumVerificationMode(options.OnBlockRead)
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
	return &Badger{db: db, lock: lock}, nil
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
	err = x.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(k)
		if err != nil {
			return err
		}
		v, err = item.ValueCopy(nil)
		return err
	})
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
	if err := wb.Flush(); err != nil {
		return fmt.Errorf("write the index: %w", err)
	}
	return nil
}

// Blob implements Index.
func (x *Badger) Blob(id digest.Digest) (Blob, bool, error) {
	v, ok, err := x.get(key(prefixBlob, id))
	if !ok || err != nil {
		return Blob{}, false, err
	}
	b, err := decodeBlobValue(id, v)
	return b, err == nil, err
}

// AddBlobs implements Index.
func (x *Badger) AddBlobs(pack digest.Digest, blobs []Blob) error {
	// Remote marks are cleared only where there are any: a delete per blob
	// would double what every push writes.
	clear, err := x.anyKey(prefixRemote)
	if err != nil {
		return err
	}
	return x.write(func(wb *badger.WriteBatch) error {
		for _, b := range blobs {
			if err := wb.Set(key(prefixBlob, b.ID), b.encodeValue()); err != nil {
				return err
			}
			if clear {
				if err := wb.Delete(key(prefixRemote, b.ID)); err != nil {
					return err
				}
			}
		}
		if clear {
			if err := wb.Delete(key(prefixRemote, pack)); err != nil {
				return err
			}
		}
		return wb.Set(key(prefixPack, pack), nil)
	})
}

// FileChunks implements Index.
func (x *Badger) FileChunks(file digest.Digest) ([]digest.Digest, bool, error) {
	v, ok, err := x.get(key(prefixFile, file))
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
	clear, err := x.anyKey(prefixRemote)
	if err != nil {
		return err
	}
	return x.write(func(wb *badger.WriteBatch) error {
		for f, chunks := range files {
			v := make([]byte, 0, len(chunks)*digest.Size)
			for _, c := range chunks {
				v = append(v, c[:]...)
			}
			if err := wb.Set(key(prefixFile, f), v); err != nil {
				return err
			}
			if clear {
				if err := wb.Delete(key(prefixRemote, f)); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// Files implements Index.
func (x *Badger) Files(fn func(digest.Digest) error) error {
	return x.iterate([]byte{prefixFile}, false, func(k, _ []byte) error {
		var d digest.Digest
		copy(d[:], k[1:])
		return fn(d)
	})
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
	return x.write(func(wb *badger.WriteBatch) error {
		for _, id := range ids {
			if err := wb.Delete(key(prefixBlob, id)); err != nil {
				return err
			}
		}
		return nil
	})
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

// Blobs implements Index.
func (x *Badger) Blobs(fn func(Blob) error) error {
	return x.iterate([]byte{prefixBlob}, true, func(k, v []byte) error {
		var id digest.Digest
		copy(id[:], k[1:])
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

// StatDir implements Index.
func (x *Badger) StatDir(root, dir string) (map[string]StatEntry, error) {
	v, ok, err := x.get(statKey(root, dir))
	if !ok || err != nil {
		return map[string]StatEntry{}, err
	}
	return decodeStatEntries(v)
}

// PutStatDirs implements Index. Directories whose entries did not change
// are not written again, so an unchanged re-push writes almost nothing.
func (x *Badger) PutStatDirs(root string, dirs map[string][]StatEntry) error {
	old := map[string][]byte{}
	err := x.iterate(statKey(root, ""), true, func(k, v []byte) error {
		old[string(k)] = v
		return nil
	})
	if err != nil {
		return fmt.Errorf("read the index: %w", err)
	}
	return x.write(func(wb *badger.WriteBatch) error {
		for d, es := range dirs {
			k := statKey(root, d)
			v := encodeStatEntries(es)
			prev, had := old[string(k)]
			delete(old, string(k))
			if had && bytes.Equal(prev, v) {
				continue
			}
			if err := wb.Set(k, v); err != nil {
				return err
			}
		}
		for k := range old {
			if err := wb.Delete([]byte(k)); err != nil {
				return err
			}
		}
		return nil
	})
}

// Persistent implements Index.
func (x *Badger) Persistent() bool { return true }

// Reset implements Index.
func (x *Badger) Reset() error {
	// Everything but the damage and gc record marks, which a rebuild must
	// not forget.
	drop := [][]byte{{prefixBlob}, {prefixFile}, {prefixSegment}, {prefixPack}, {prefixStat}, {prefixStoreSeg}, {prefixRemote}}
	if err := x.db.DropPrefix(drop...); err != nil {
		return fmt.Errorf("reset: %w", err)
	}
	return nil
}

// Close implements Index.
func (x *Badger) Close() error {
	err := x.db.Close()
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
