package index

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/cas-ml/cas/digest"
)

// table is a persistent map from a digest to a value, the newest write
// winning: where the on-disk index keeps blob locations and file chunk
// lists, a record per chunk and per multi-chunk file, the bulk of an
// index. It is kept out of badger so that what it costs a push of a
// million files stays bounded by us: badger rewrote its tables about
// seven times over and kept them mapped, and its compactions held up to
// 40 MiB of table builders (docs/benchmarks.md, issue 13).
//
// A table is a directory (FORMAT.md §9b) of:
//   - logs: every write is appended to the current log, in one write
//     system call, before it is applied in memory, so that a process
//     killed at any point loses nothing that a write returned for (the
//     table is as durable as badger was: nothing is synced; a cache
//     damaged by a power loss is found by its checksums and rebuilt);
//   - runs: sorted, immutable files of records, each with a fan-out
//     table, a CRC-32C per bucket and a Bloom filter, read with pread
//     (never mapped: reading them costs page cache, not the process's
//     memory);
//   - MANIFEST, replaced by a rename: the runs that hold the table and
//     the first log that no run holds yet.
//
// Writes go to memory (up to maxMem bytes) and are then written to a new
// run; runs of one level are merged, mergeWidth at a time, in the
// background, into one of the next level, so that each record is
// rewritten about once per level and a lookup reads at most one bucket
// of the few runs whose filter holds its key.
//
// A table is safe for concurrent use.
type table struct {
	dir    string
	maxMem int

	mu       sync.RWMutex
	mem      map[digest.Digest][]byte // an empty value is a deletion
	memBytes int
	log      *os.File
	logSize  int64    // bytes of log that hold whole frames
	logErr   error    // a failed write the log could not be cut back from
	logs     []uint64 // the logs whose records are in mem, oldest first; the last is log
	seq      uint64   // the last file number used
	runs     []*diskRun
	closed   bool
	created  bool // openTable found no table and made one

	merging  bool
	merges   sync.WaitGroup
	mergeErr error // a background merge's failure, returned by the next write
}

// Names and sizes of a table's files.
const (
	tableManifest = "MANIFEST"
	// manifestHeader names the format: 2 since log frames carry a check
	// of their header. A table of format 1 reads as damaged, and the
	// index is rebuilt once.
	manifestHeader = "cas index table 2"
	// frameHeaderLen is a log frame's header: the payload's length, its
	// CRC-32C, and the CRC-32C of those 8 bytes (uint32 LE each).
	frameHeaderLen = 12
	runMagic       = "CASTRUN1"
	runTrailerLen  = 40

	// tableMemBytes is how many bytes of records a table holds in memory
	// before it writes them to a run.
	tableMemBytes = 4 << 20
	// memEntryOverhead is what a record in memory costs beyond its value:
	// its key, the slice's words, the map's share.
	memEntryOverhead = 80

	bloomBitsPerKey = 10 // about 1 % false positives with 7 probes
	bloomProbes     = 7

	// maxLogs is how many logs an open replays before it writes their
	// records to a run: each command that writes a little adds to the
	// last log, but a log cut short by a kill is followed by a new one.
	maxLogs = 4
	// maxSeq bounds the file numbers a manifest or a file name may carry:
	// numbers count up from 1 and never come near it, so a larger one was
	// edited or damaged (and the count would wrap).
	maxSeq = 1 << 62
	// readAhead is what a run's reader reads at once when it goes through
	// all its records (a merge, an iteration).
	readAhead = 64 << 10
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// errTableDamaged reports a table file that does not read back as
// written: the index is a cache, and is rebuilt.
var errTableDamaged = fmt.Errorf("%w: an index table file is damaged", ErrCorrupt)

// diskRun is one run file of a table, its footer in memory.
type diskRun struct {
	seq     uint64
	level   int
	f       *os.File
	path    string
	n       int   // records
	recSize int64 // bytes of records
	bits    int   // bucket bits
	fan     []int64
	crcs    []uint32
	bloom   []byte
	refs    atomic.Int32 // the table's, and one per iteration reading it
}

func (r *diskRun) release() {
	if r.refs.Add(-1) == 0 {
		r.f.Close()
	}
}

func logName(seq uint64) string { return fmt.Sprintf("log-%016x", seq) }
func runName(seq uint64) string { return fmt.Sprintf("run-%016x", seq) }

// openTable opens the table in dir, creating it if there is none. A
// table left damaged returns an error wrapping ErrCorrupt.
func openTable(dir string, maxMem int) (*table, error) {
	return loadTable(dir, maxMem, true)
}

// errNoTable is what loadTable returns, not creating it, for a directory
// with no table (no manifest).
var errNoTable = errors.New("index: no table")

// loadTable opens the table in dir; if there is none, it creates one when
// create, and returns errNoTable when not.
func loadTable(dir string, maxMem int, create bool) (*table, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("index: create %s: %w", dir, err)
	}
	t := &table{dir: dir, maxMem: maxMem, mem: map[digest.Digest][]byte{}}
	base, runs, err := readManifest(dir)
	switch {
	case errors.Is(err, os.ErrNotExist) && !create:
		return nil, errNoTable
	case errors.Is(err, os.ErrNotExist):
		// New, or killed before its first manifest: nothing was written
		// that a manifest does not name.
		if err := removeAllIn(dir); err != nil {
			return nil, err
		}
		base = 1
		t.seq = 0
		t.created = true
		if err := t.writeManifest(base, nil); err != nil {
			return nil, err
		}
	case err != nil:
		return nil, err
	}
	if err := t.load(base, runs); err != nil {
		t.releaseRuns()
		return nil, err
	}
	return t, nil
}

// load opens the runs the manifest names, removes every other file but
// the logs from base on, and replays those logs into memory. Writes then
// go on at the end of the last log, cut back to its last whole frame (a
// write a process was killed in); empty logs before it are removed, and
// with more than maxLogs left, their records are written to a run.
func (t *table) load(base uint64, runs []manifestRun) error {
	t.seq = base
	for _, mr := range runs {
		r, err := openRun(filepath.Join(t.dir, runName(mr.seq)), mr.seq, mr.level)
		if err != nil {
			return err
		}
		t.runs = append(t.runs, r)
		t.seq = max(t.seq, mr.seq)
	}
	entries, err := os.ReadDir(t.dir)
	if err != nil {
		return fmt.Errorf("index: %w", err)
	}
	listed := map[string]bool{tableManifest: true}
	for _, r := range t.runs {
		listed[filepath.Base(r.path)] = true
	}
	for _, e := range entries {
		name := e.Name()
		if seq, ok := parseSeq(name, "log-"); ok && seq >= base {
			t.logs = append(t.logs, seq)
			t.seq = max(t.seq, seq)
			continue
		}
		if !listed[name] {
			// A run a merge or flush was killed writing, a log a run holds,
			// a manifest's temporary file.
			os.Remove(filepath.Join(t.dir, name))
		}
	}
	slices.Sort(t.logs)
	kept := t.logs[:0]
	var lastLen int64
	for i, seq := range t.logs {
		path := filepath.Join(t.dir, logName(seq))
		n, err := t.replay(path)
		if err != nil {
			return err
		}
		if n == 0 && i < len(t.logs)-1 {
			os.Remove(path) // nothing in it, and a log after it
			continue
		}
		kept = append(kept, seq)
		lastLen = n
	}
	t.logs = kept
	if len(t.logs) == 0 {
		t.seq++
		t.logs = []uint64{t.seq}
		lastLen = 0
	}
	f, err := os.OpenFile(filepath.Join(t.dir, logName(t.logs[len(t.logs)-1])), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("index: open the log: %w", err)
	}
	t.log = f
	if err := f.Truncate(lastLen); err != nil {
		return fmt.Errorf("index: cut the log back to its last whole write: %w", err)
	}
	t.logSize = lastLen
	if t.memBytes >= t.maxMem || len(t.logs) > maxLogs {
		// Only tidying: the logs stay readable if the run cannot be
		// written (a full disk), and the next write tries again.
		_ = t.flushLocked()
	}
	return nil
}

// parseSeq parses a file number of 16 hex digits after prefix: 1 to
// maxSeq-1.
func parseSeq(name, prefix string) (uint64, bool) {
	hex, ok := strings.CutPrefix(name, prefix)
	if !ok || len(hex) != 16 {
		return 0, false
	}
	seq, err := strconv.ParseUint(hex, 16, 64)
	// Lower case only: the name is opened again as logName or runName
	// writes it.
	return seq, err == nil && seq > 0 && seq < maxSeq && hex == fmt.Sprintf("%016x", seq)
}

// replay applies the frames of a log and returns how many bytes of it
// hold whole frames. A write the process was killed in, whose caller
// never heard back, leaves a prefix of its frame at the end of the log:
// a header cut short, or a sound header whose payload runs past the end
// (or, the whole length there, fails its CRC); it is ignored, and the
// next write replaces it. Anything else that fails is damage
// (errTableDamaged): a header that fails its check with the log going on
// past it, a frame of no payload (put writes none), a payload failing
// its CRC with bytes after it (a write that failed is cut back, so what
// follows a frame was written after it whole).
func (t *table) replay(path string) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("index: read a log: %w", err)
	}
	var whole int64
	for len(b) > 0 {
		if len(b) < frameHeaderLen {
			return whole, nil // a header cut short
		}
		n := binary.LittleEndian.Uint32(b)
		if crc32.Checksum(b[:8], crcTable) != binary.LittleEndian.Uint32(b[8:]) || n == 0 {
			return 0, errTableDamaged
		}
		if uint64(len(b)-frameHeaderLen) < uint64(n) {
			return whole, nil // a payload cut short
		}
		end := frameHeaderLen + int(n)
		payload := b[frameHeaderLen:end]
		if crc32.Checksum(payload, crcTable) != binary.LittleEndian.Uint32(b[4:]) {
			if end == len(b) {
				return whole, nil // the last write, torn
			}
			return 0, errTableDamaged
		}
		if err := forRecords(payload, t.apply); err != nil {
			return 0, err
		}
		b = b[end:]
		whole += int64(end)
	}
	return whole, nil
}

// encodeFrame returns the log frame of a payload of records.
func encodeFrame(payload []byte) []byte {
	frame := make([]byte, frameHeaderLen, frameHeaderLen+len(payload))
	binary.LittleEndian.PutUint32(frame, uint32(len(payload)))
	binary.LittleEndian.PutUint32(frame[4:], crc32.Checksum(payload, crcTable))
	binary.LittleEndian.PutUint32(frame[8:], crc32.Checksum(frame[:8], crcTable))
	return append(frame, payload...)
}

// forRecords calls fn for each record (key, uvarint length, value) of b.
func forRecords(b []byte, fn func(k digest.Digest, v []byte)) error {
	for len(b) > 0 {
		if len(b) < digest.Size {
			return errTableDamaged
		}
		k := digest.Digest(b[:digest.Size])
		n, w := binary.Uvarint(b[digest.Size:])
		if w <= 0 || uint64(len(b)-digest.Size-w) < n {
			return errTableDamaged
		}
		start := digest.Size + w
		fn(k, b[start:start+int(n):start+int(n)])
		b = b[start+int(n):]
	}
	return nil
}

func appendRecord(b []byte, k digest.Digest, v []byte) []byte {
	b = append(b, k[:]...)
	b = binary.AppendUvarint(b, uint64(len(v)))
	return append(b, v...)
}

// apply puts a record in memory; the caller holds the lock.
func (t *table) apply(k digest.Digest, v []byte) {
	if old, ok := t.mem[k]; ok {
		t.memBytes -= len(old) + memEntryOverhead
	}
	t.mem[k] = v
	t.memBytes += len(v) + memEntryOverhead
}

// kv is a record to write: an empty v deletes k.
type kv struct {
	k digest.Digest
	v []byte
}

// put writes records, in order: once it returns, a process killed at any
// point still finds them.
func (t *table) put(recs []kv) error {
	if len(recs) == 0 {
		return nil
	}
	var payload []byte
	for _, r := range recs {
		payload = appendRecord(payload, r.k, r.v)
	}
	if len(payload) > math.MaxUint32 {
		return errors.New("index: a write of over 4 GiB of records")
	}
	frame := encodeFrame(payload)

	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return errors.New("index: closed")
	}
	if err := t.mergeErr; err != nil {
		t.mergeErr = nil
		return err
	}
	if t.logErr != nil {
		return t.logErr
	}
	if _, err := t.log.Write(frame); err != nil {
		// Part of the frame may be written (a disk that filled up):
		// cut it off, or the writes after it would follow a damaged
		// frame. If that fails too, the log takes no more writes.
		if terr := t.log.Truncate(t.logSize); terr != nil {
			t.logErr = fmt.Errorf("index: the log could not be cut back after a failed write (%w); reopen the store", terr)
		}
		return fmt.Errorf("index: write the log: %w", err)
	}
	t.logSize += int64(len(frame))
	for _, r := range recs {
		t.apply(r.k, r.v)
	}
	if t.memBytes >= t.maxMem {
		return t.flushLocked()
	}
	return nil
}

// get returns the newest value of k; ok is false if there is none, or
// if it was deleted. The value is the caller's.
func (t *table) get(k digest.Digest) (v []byte, ok bool, err error) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if v, in := t.mem[k]; in {
		return bytes.Clone(v), len(v) > 0, nil
	}
	for i := len(t.runs) - 1; i >= 0; i-- {
		r := t.runs[i]
		if !r.mayHold(k) {
			continue
		}
		v, found, err := r.get(k)
		if err != nil {
			return nil, false, err
		}
		if found {
			return v, len(v) > 0, nil
		}
	}
	return nil, false, nil
}

// flushLocked writes the records in memory to a new run, starts a new
// log and drops the old ones; the caller holds the lock.
func (t *table) flushLocked() error {
	if len(t.mem) == 0 {
		return nil
	}
	keys := make([]digest.Digest, 0, len(t.mem))
	for k := range t.mem {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b digest.Digest) int { return bytes.Compare(a[:], b[:]) })
	runSeq, logSeq := t.seq+1, t.seq+2
	// With no older run, a deletion has nothing left to hide.
	r, err := writeDiskRun(filepath.Join(t.dir, runName(runSeq)), runSeq, 0, len(keys),
		[]source{&memIter{keys: keys, mem: t.mem, i: -1}}, len(t.runs) == 0)
	if err != nil {
		return err
	}
	log, err := os.OpenFile(filepath.Join(t.dir, logName(logSeq)), os.O_CREATE|os.O_EXCL|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		r.drop()
		return fmt.Errorf("index: start a log: %w", err)
	}
	runs := append(slices.Clip(t.runs), r)
	if err := t.writeManifest(logSeq, runs); err != nil {
		r.drop()
		log.Close()
		os.Remove(log.Name())
		return err
	}
	t.seq = logSeq
	t.runs = runs
	t.log.Close()
	for _, seq := range t.logs {
		os.Remove(filepath.Join(t.dir, logName(seq)))
	}
	t.log, t.logs, t.logSize, t.logErr = log, []uint64{logSeq}, 0, nil
	t.mem, t.memBytes = map[digest.Digest][]byte{}, 0
	t.mergeLocked()
	return nil
}

// mergeLocked starts a background merge if the newest mergeWidth runs
// share a level and none is running; the caller holds the lock.
func (t *table) mergeLocked() {
	n := len(t.runs)
	if t.merging || t.closed || n < mergeWidth {
		return
	}
	from := n - mergeWidth
	for _, r := range t.runs[from:] {
		if r.level != t.runs[from].level {
			return
		}
	}
	olds := slices.Clone(t.runs[from:])
	t.seq++
	seq := t.seq
	t.merging = true
	t.merges.Add(1)
	go t.merge(from, olds, seq)
}

// merge writes olds, runs[from:from+len(olds)], into one run of the
// next level and puts it in their place.
func (t *table) merge(from int, olds []*diskRun, seq uint64) {
	defer t.merges.Done()
	srcs := make([]source, 0, len(olds))
	n := 0
	for i := len(olds) - 1; i >= 0; i-- { // newest first: the first record of a key wins
		srcs = append(srcs, olds[i].iter())
		n += olds[i].n
	}
	r, err := writeDiskRun(filepath.Join(t.dir, runName(seq)), seq, olds[0].level+1, n, srcs, from == 0)
	t.mu.Lock()
	defer t.mu.Unlock()
	t.merging = false
	if err != nil {
		t.mergeErr = err
		return
	}
	runs := slices.Concat(t.runs[:from], []*diskRun{r}, t.runs[from+len(olds):])
	if err := t.writeManifest(t.logs[0], runs); err != nil {
		r.drop()
		t.mergeErr = err
		return
	}
	t.runs = runs
	for _, o := range olds {
		os.Remove(o.path)
		o.release()
	}
	t.mergeLocked()
}

// waitMerges waits for the background merge, if any, and returns with
// the lock held and none running.
func (t *table) waitMerges() {
	t.mu.Lock()
	for t.merging {
		t.mu.Unlock()
		t.merges.Wait()
		t.mu.Lock()
	}
}

// each calls fn, in key order, for every key with a value, and its value
// (fn's to keep). It reads a snapshot: writes made meanwhile, even by fn,
// may or may not be seen.
func (t *table) each(fn func(k digest.Digest, v []byte) error) error {
	t.mu.RLock()
	keys := make([]digest.Digest, 0, len(t.mem))
	mem := make(map[digest.Digest][]byte, len(t.mem))
	for k, v := range t.mem {
		keys = append(keys, k)
		mem[k] = v
	}
	runs := slices.Clone(t.runs)
	for _, r := range runs {
		r.refs.Add(1)
	}
	t.mu.RUnlock()
	defer func() {
		for _, r := range runs {
			r.release()
		}
	}()
	slices.SortFunc(keys, func(a, b digest.Digest) int { return bytes.Compare(a[:], b[:]) })
	srcs := []source{&memIter{keys: keys, mem: mem, i: -1}}
	for i := len(runs) - 1; i >= 0; i-- {
		srcs = append(srcs, runs[i].iter())
	}
	m := newMerger(srcs)
	var last digest.Digest
	first := true
	for m.next() {
		k := m.key()
		if !first && k == last {
			continue // an older record of a key already seen
		}
		first, last = false, k
		if v := m.val(); len(v) > 0 {
			if err := fn(k, bytes.Clone(v)); err != nil {
				return err
			}
		}
	}
	return m.err
}

// reset forgets every record.
func (t *table) reset() error {
	t.waitMerges()
	defer t.mu.Unlock()
	t.releaseRuns()
	t.runs = nil
	t.log.Close()
	t.mem, t.memBytes, t.logs = map[digest.Digest][]byte{}, 0, nil
	if err := removeAllIn(t.dir); err != nil {
		return err
	}
	base := t.seq + 1
	if err := t.writeManifest(base, nil); err != nil {
		return err
	}
	return t.load(base, nil)
}

// close waits for a merge and closes the files; what is in memory stays
// in the logs, for the next open to replay.
func (t *table) close() error {
	t.waitMerges()
	defer t.mu.Unlock()
	if t.closed {
		return nil
	}
	t.closed = true
	t.releaseRuns()
	err := t.log.Close()
	if merr := t.mergeErr; merr != nil {
		err = merr
	}
	return err
}

func (t *table) releaseRuns() {
	for _, r := range t.runs {
		r.release()
	}
}

func removeAllIn(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("index: %w", err)
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return fmt.Errorf("index: %w", err)
		}
	}
	return nil
}

// manifestRun is a run the manifest names.
type manifestRun struct {
	seq   uint64
	level int
}

// writeManifest replaces the manifest: logs from base on, and runs.
func (t *table) writeManifest(base uint64, runs []*diskRun) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s\nlog %016x\n", manifestHeader, base)
	for _, r := range runs {
		fmt.Fprintf(&b, "run %016x %d\n", r.seq, r.level)
	}
	tmp := filepath.Join(t.dir, tableManifest+".tmp")
	if err := os.WriteFile(tmp, []byte(b.String()), 0o644); err != nil {
		return fmt.Errorf("index: write the table manifest: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(t.dir, tableManifest)); err != nil {
		return fmt.Errorf("index: write the table manifest: %w", err)
	}
	return nil
}

func readManifest(dir string) (base uint64, runs []manifestRun, err error) {
	b, err := os.ReadFile(filepath.Join(dir, tableManifest))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return 0, nil, err
		}
		return 0, nil, fmt.Errorf("index: read the table manifest: %w", err)
	}
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if len(lines) < 2 || lines[0] != manifestHeader {
		return 0, nil, errTableDamaged
	}
	var ok bool
	if base, ok = parseSeq(strings.TrimPrefix(lines[1], "log "), ""); !ok || !strings.HasPrefix(lines[1], "log ") {
		return 0, nil, errTableDamaged
	}
	for _, l := range lines[2:] {
		f := strings.Fields(l)
		if len(f) != 3 || f[0] != "run" {
			return 0, nil, errTableDamaged
		}
		seq, ok := parseSeq(f[1], "")
		level, err := strconv.Atoi(f[2])
		if !ok || err != nil || level < 0 || level > 64 {
			return 0, nil, errTableDamaged
		}
		runs = append(runs, manifestRun{seq, level})
	}
	return base, runs, nil
}

// A run file (FORMAT.md §9b): its records sorted by key, one per key
// (key, uvarint length, value; an empty value is a deletion), then its
// footer: the fan-out table (2^bits + 1 offsets, uint64 LE: bucket b
// holds the records whose key's top bits are b), a CRC-32C (Castagnoli)
// per bucket of its bytes, the Bloom filter, and a trailer of 40 bytes:
// "CASTRUN1", the record count, the records' size and the filter's size
// (uint64 LE each), the bucket bits, the filter's probes, two zero bytes,
// and the CRC-32C of the footer before it.

// writeDiskRun merges srcs into a new run at path: for a key held by
// several sources, the first source's record is kept; deletions are
// dropped when dropDeletes. n bounds the record count.
func writeDiskRun(path string, seq uint64, level, n int, srcs []source, dropDeletes bool) (r *diskRun, err error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("index: create a run: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(path)
		}
	}()
	nbits := bucketBits(n)
	r = &diskRun{seq: seq, level: level, f: f, path: path, bits: nbits,
		fan: make([]int64, 1<<nbits+1), crcs: make([]uint32, 1<<nbits),
		bloom: make([]byte, bloomBytes(n))}
	w := bufio.NewWriterSize(f, 256<<10)
	cur, crc := 0, uint32(0) // the bucket being written, and its CRC so far
	var hdr [digest.Size + binary.MaxVarintLen64]byte
	m := newMerger(srcs)
	var last digest.Digest
	first := true
	for m.next() {
		k, v := m.key(), m.val()
		if !first && k == last {
			continue
		}
		first, last = false, k
		if len(v) == 0 && dropDeletes {
			continue
		}
		for b := bucketOf(k, nbits); cur < b; cur++ {
			r.crcs[cur], crc = crc, 0
			r.fan[cur+1] = r.recSize
		}
		copy(hdr[:], k[:])
		h := digest.Size + binary.PutUvarint(hdr[digest.Size:], uint64(len(v)))
		crc = crc32.Update(crc32.Update(crc, crcTable, hdr[:h]), crcTable, v)
		// A bufio.Writer's error sticks: Flush below returns it.
		_, _ = w.Write(hdr[:h])
		_, _ = w.Write(v)
		r.recSize += int64(h + len(v))
		r.n++
		r.addToBloom(k)
	}
	if m.err != nil {
		return nil, m.err
	}
	for ; cur < len(r.crcs); cur++ {
		r.crcs[cur], crc = crc, 0
		r.fan[cur+1] = r.recSize
	}
	footer := r.encodeFooter()
	_, _ = w.Write(footer)
	if err := w.Flush(); err != nil {
		return nil, fmt.Errorf("index: write a run: %w", err)
	}
	r.refs.Store(1)
	return r, nil
}

// drop closes and removes a run no manifest names.
func (r *diskRun) drop() {
	r.f.Close()
	os.Remove(r.path)
}

func bloomBytes(n int) int { return max(8, (n*bloomBitsPerKey+7)/8) }

// bloomProbe returns the i-th bit to test for k in a filter of m bits.
// Keys are digests: their bytes are already uniform.
func bloomProbe(k digest.Digest, i int, m uint64) uint64 {
	h1 := binary.LittleEndian.Uint64(k[8:])
	h2 := binary.LittleEndian.Uint64(k[16:]) | 1
	return (h1 + uint64(i)*h2) % m
}

func (r *diskRun) addToBloom(k digest.Digest) {
	m := uint64(len(r.bloom)) * 8
	for i := range bloomProbes {
		p := bloomProbe(k, i, m)
		r.bloom[p/8] |= 1 << (p % 8)
	}
}

// mayHold reports whether k may be in the run: false means it is not.
func (r *diskRun) mayHold(k digest.Digest) bool {
	m := uint64(len(r.bloom)) * 8
	for i := range bloomProbes {
		p := bloomProbe(k, i, m)
		if r.bloom[p/8]&(1<<(p%8)) == 0 {
			return false
		}
	}
	return true
}

func (r *diskRun) encodeFooter() []byte {
	b := make([]byte, 0, len(r.fan)*8+len(r.crcs)*4+len(r.bloom)+runTrailerLen)
	for _, o := range r.fan {
		b = binary.LittleEndian.AppendUint64(b, uint64(o))
	}
	for _, c := range r.crcs {
		b = binary.LittleEndian.AppendUint32(b, c)
	}
	b = append(b, r.bloom...)
	b = append(b, runMagic...)
	b = binary.LittleEndian.AppendUint64(b, uint64(r.n))
	b = binary.LittleEndian.AppendUint64(b, uint64(r.recSize))
	b = binary.LittleEndian.AppendUint64(b, uint64(len(r.bloom)))
	b = append(b, byte(r.bits), bloomProbes, 0, 0)
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, crcTable))
}

// openRun opens a run file and reads its footer.
func openRun(path string, seq uint64, level int) (r *diskRun, err error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, errTableDamaged
		}
		return nil, fmt.Errorf("index: open a run: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
		}
	}()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("index: open a run: %w", err)
	}
	size := st.Size()
	if size < runTrailerLen {
		return nil, errTableDamaged
	}
	tr := make([]byte, runTrailerLen)
	if _, err := f.ReadAt(tr, size-runTrailerLen); err != nil {
		return nil, fmt.Errorf("index: read a run: %w", err)
	}
	n := binary.LittleEndian.Uint64(tr[8:])
	recSize := binary.LittleEndian.Uint64(tr[16:])
	bloomLen := binary.LittleEndian.Uint64(tr[24:])
	nbits := int(tr[32])
	if string(tr[:8]) != runMagic || nbits > maxBucketBits || tr[33] != bloomProbes || tr[34] != 0 || tr[35] != 0 ||
		bloomLen > uint64(size) || recSize > uint64(size) || n > recSize/digest.Size {
		return nil, errTableDamaged
	}
	footerLen := uint64(1<<nbits+1)*8 + uint64(1<<nbits)*4 + bloomLen + runTrailerLen
	if recSize+footerLen != uint64(size) {
		return nil, errTableDamaged
	}
	footer := make([]byte, footerLen)
	if _, err := f.ReadAt(footer, int64(recSize)); err != nil {
		return nil, fmt.Errorf("index: read a run: %w", err)
	}
	if crc32.Checksum(footer[:footerLen-4], crcTable) != binary.LittleEndian.Uint32(footer[footerLen-4:]) {
		return nil, errTableDamaged
	}
	r = &diskRun{seq: seq, level: level, f: f, path: path, n: int(n), recSize: int64(recSize), bits: nbits,
		fan: make([]int64, 1<<nbits+1), crcs: make([]uint32, 1<<nbits)}
	for i := range r.fan {
		r.fan[i] = int64(binary.LittleEndian.Uint64(footer[i*8:]))
		if i > 0 && r.fan[i] < r.fan[i-1] {
			return nil, errTableDamaged
		}
	}
	if r.fan[0] != 0 || r.fan[len(r.fan)-1] != int64(recSize) {
		return nil, errTableDamaged
	}
	off := len(r.fan) * 8
	for i := range r.crcs {
		r.crcs[i] = binary.LittleEndian.Uint32(footer[off+i*4:])
	}
	off += len(r.crcs) * 4
	r.bloom = footer[off : off+int(bloomLen) : off+int(bloomLen)]
	if len(r.bloom) == 0 {
		return nil, errTableDamaged
	}
	r.refs.Store(1)
	return r, nil
}

// get returns k's record in r, reading its bucket once.
func (r *diskRun) get(k digest.Digest) (v []byte, found bool, err error) {
	b := bucketOf(k, r.bits)
	lo, hi := r.fan[b], r.fan[b+1]
	if lo == hi {
		return nil, false, nil
	}
	buf := make([]byte, hi-lo)
	if _, err := r.f.ReadAt(buf, lo); err != nil {
		return nil, false, fmt.Errorf("index: read a run: %w", err)
	}
	if crc32.Checksum(buf, crcTable) != r.crcs[b] {
		return nil, false, errTableDamaged
	}
	err = forRecords(buf, func(rk digest.Digest, rv []byte) {
		if rk == k {
			v, found = rv, true
		}
	})
	return v, found, err
}

// iter reads the run's records in key order, checking each bucket as
// get does: damage found by a merge or an iteration is an error, never
// copied into a new run under a fresh checksum.
func (r *diskRun) iter() *diskIter { return &diskIter{r: r, cur: -1} }

// diskIter yields a run's records bucket by bucket, reading several
// buckets at once. Each bucket must match its CRC, and hold records whose
// keys rise and fall in it; the run must hold the count its trailer says.
// It holds at most a window of readAhead bytes, or one bucket if larger:
// bytes of the file, so a damaged length allocates nothing.
type diskIter struct {
	r      *diskRun
	win    []byte // the run's bytes from winOff
	winOff int64
	cur    int    // the bucket being read
	rest   []byte // its records not yet yielded
	k      digest.Digest
	v      []byte
	n      int
	err    error
}

func (it *diskIter) next() bool {
	for len(it.rest) == 0 {
		if it.err != nil {
			return false
		}
		it.cur++
		if it.cur >= len(it.r.crcs) {
			if it.n != it.r.n {
				it.err = errTableDamaged
			}
			return false
		}
		lo, hi := it.r.fan[it.cur], it.r.fan[it.cur+1]
		if lo == hi {
			continue
		}
		if lo < it.winOff || hi > it.winOff+int64(len(it.win)) {
			size := min(max(hi-lo, readAhead), it.r.recSize-lo)
			if int64(cap(it.win)) < size {
				it.win = make([]byte, size)
			}
			it.win, it.winOff = it.win[:size], lo
			if _, err := it.r.f.ReadAt(it.win, lo); err != nil {
				it.err = fmt.Errorf("index: read a run: %w", err)
				return false
			}
		}
		it.rest = it.win[lo-it.winOff : hi-it.winOff]
		if crc32.Checksum(it.rest, crcTable) != it.r.crcs[it.cur] {
			it.err, it.rest = errTableDamaged, nil
			return false
		}
	}
	b := it.rest
	if len(b) < digest.Size {
		it.err, it.rest = errTableDamaged, nil
		return false
	}
	k := digest.Digest(b[:digest.Size])
	n, w := binary.Uvarint(b[digest.Size:])
	if w <= 0 || uint64(len(b)-digest.Size-w) < n || bucketOf(k, it.r.bits) != it.cur ||
		it.n > 0 && bytes.Compare(k[:], it.k[:]) <= 0 {
		it.err, it.rest = errTableDamaged, nil
		return false
	}
	start := digest.Size + w
	it.k, it.v = k, b[start:start+int(n):start+int(n)]
	it.rest = b[start+int(n):]
	it.n++
	return true
}

func (it *diskIter) key() digest.Digest { return it.k }
func (it *diskIter) val() []byte        { return it.v }
func (it *diskIter) error() error       { return it.err }

// memIter yields a table's records in memory in key order.
type memIter struct {
	keys []digest.Digest
	mem  map[digest.Digest][]byte
	i    int
}

func (it *memIter) next() bool {
	it.i++
	return it.i < len(it.keys)
}

func (it *memIter) key() digest.Digest { return it.keys[it.i] }
func (it *memIter) val() []byte        { return it.mem[it.keys[it.i]] }
func (it *memIter) error() error       { return nil }
