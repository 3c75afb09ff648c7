package index

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math/bits"
	"os"
	"slices"

	"github.com/cas-ml/cas/digest"
)

// runStore keeps (key, value) entries, any number per key, in a small
// buffer in memory and in sorted run files, so that what it holds in
// memory stays bounded whatever the number of entries: the buffer, and
// per run a fan-out table of at most 2^16 offsets. The entries of one key
// come back in the order they were added.
//
// Run files are created in the system's temporary directory and unlinked
// at once: they vanish with the process, however it ends. They are read
// with pread, never mapped, so reading them costs page cache, not the
// process's memory.
//
// A run file is a sequence of records sorted by key (the entries of one
// key in the order added): key (32 bytes), uvarint length, value. Records
// whose keys share their top bits form a bucket; the run's fan-out table
// holds the offset of each bucket, so that a lookup reads one bucket
// with one pread.
//
// A runStore is not safe for concurrent use, except that any number of
// get and each calls may run together while nothing is added.
type runStore struct {
	maxBuf   int // bytes of buffered entries at which they go to a run
	buf      map[digest.Digest][][]byte
	bufBytes int
	runs     []*run // oldest first
}

// run is one sorted run file.
type run struct {
	f     *os.File
	n     int   // records
	size  int64 // bytes
	bits  int   // bucket bits: len(fan) == 1<<bits + 1
	fan   []int64
	level int // how many merges of mergeWidth runs made it
}

// bufEntryOverhead is what a buffered entry costs beyond its value's
// bytes: its key and the map's and slice's own words, roughly.
const bufEntryOverhead = 96

// mergeWidth runs of one level are merged into one of the next level,
// so that a store holds at most mergeWidth-1 runs per level, and each
// entry is rewritten once per level.
const mergeWidth = 8

// maxBucketBits bounds a run's fan-out table: 2^16 offsets, 512 KiB.
const maxBucketBits = 16

func newRunStore(maxBuf int) *runStore {
	return &runStore{maxBuf: maxBuf, buf: map[digest.Digest][][]byte{}}
}

// add appends an entry for k; val is kept, not copied.
func (s *runStore) add(k digest.Digest, val []byte) error {
	s.buf[k] = append(s.buf[k], val)
	s.bufBytes += len(val) + bufEntryOverhead
	if s.bufBytes < s.maxBuf {
		return nil
	}
	return s.flush()
}

// empty reports whether the store holds no entry.
func (s *runStore) empty() bool { return len(s.buf) == 0 && len(s.runs) == 0 }

// get returns every value added for k, in the order added.
func (s *runStore) get(k digest.Digest) ([][]byte, error) {
	var out [][]byte
	for _, r := range s.runs {
		var err error
		if out, err = r.get(k, out); err != nil {
			return nil, err
		}
	}
	return append(out, s.buf[k]...), nil
}

// flush writes the buffer into a new run, then merges the newest runs
// while mergeWidth of them share a level.
func (s *runStore) flush() error {
	if len(s.buf) == 0 {
		return nil
	}
	n := 0
	for _, vs := range s.buf {
		n += len(vs)
	}
	r, err := writeRun(n, []source{s.bufSource()})
	if err != nil {
		return err
	}
	s.buf, s.bufBytes = map[digest.Digest][][]byte{}, 0
	s.runs = append(s.runs, r)
	for len(s.runs) >= mergeWidth {
		tail := s.runs[len(s.runs)-mergeWidth:]
		if tail[0].level != tail[len(tail)-1].level {
			break
		}
		if err := s.merge(len(s.runs) - mergeWidth); err != nil {
			return err
		}
	}
	return nil
}

// compact leaves everything in one run, so that a lookup reads once:
// for a store that is read much more than it is written.
func (s *runStore) compact() error {
	if err := s.flush(); err != nil {
		return err
	}
	if len(s.runs) > 1 {
		return s.merge(0)
	}
	return nil
}

// merge replaces runs[from:] with one run holding all their records.
func (s *runStore) merge(from int) error {
	old := s.runs[from:]
	srcs := make([]source, len(old))
	n, level := 0, 0
	for i, r := range old {
		srcs[i] = r.iter()
		n += r.n
		level = max(level, r.level)
	}
	merged, err := writeRun(n, srcs)
	if err != nil {
		return err
	}
	merged.level = level + 1
	for _, r := range old {
		r.f.Close()
	}
	s.runs = append(s.runs[:from], merged)
	return nil
}

// each calls fn for every key, in key order, with its values in the
// order added. The values are fn's to keep.
func (s *runStore) each(fn func(k digest.Digest, vals [][]byte) error) error {
	srcs := make([]source, 0, len(s.runs)+1)
	for _, r := range s.runs {
		srcs = append(srcs, r.iter())
	}
	srcs = append(srcs, s.bufSource())
	m := newMerger(srcs)
	var cur digest.Digest
	var vals [][]byte
	for m.next() {
		k, v := m.key(), m.val()
		if len(vals) > 0 && k != cur {
			if err := fn(cur, vals); err != nil {
				return err
			}
			vals = nil
		}
		cur = k
		vals = append(vals, bytes.Clone(v))
	}
	if m.err != nil {
		return m.err
	}
	if len(vals) > 0 {
		return fn(cur, vals)
	}
	return nil
}

// close releases the run files, which the system then deletes.
func (s *runStore) close() {
	for _, r := range s.runs {
		r.f.Close()
	}
	s.runs = nil
	s.buf, s.bufBytes = map[digest.Digest][][]byte{}, 0
}

// bucketBits is the number of bucket bits for a run of n records: about
// 16 records a bucket, at most 2^maxBucketBits buckets.
func bucketBits(n int) int {
	return min(maxBucketBits, max(0, bits.Len(uint(n/16))))
}

func bucketOf(k digest.Digest, nbits int) int {
	if nbits == 0 {
		return 0
	}
	return int(binary.BigEndian.Uint32(k[:4]) >> (32 - nbits))
}

// get appends the values of k's records in r to out.
func (r *run) get(k digest.Digest, out [][]byte) ([][]byte, error) {
	b := bucketOf(k, r.bits)
	lo, hi := r.fan[b], r.fan[b+1]
	if lo == hi {
		return out, nil
	}
	buf := make([]byte, hi-lo)
	if _, err := r.f.ReadAt(buf, lo); err != nil {
		return nil, fmt.Errorf("index: read a run: %w", err)
	}
	for len(buf) > 0 {
		if len(buf) < digest.Size {
			return nil, errBadRun
		}
		c := bytes.Compare(buf[:digest.Size], k[:])
		vlen, n := binary.Uvarint(buf[digest.Size:])
		if n <= 0 || uint64(len(buf)-digest.Size-n) < vlen {
			return nil, errBadRun
		}
		rec := digest.Size + n + int(vlen)
		if c > 0 {
			break
		}
		if c == 0 {
			out = append(out, buf[digest.Size+n:rec:rec])
		}
		buf = buf[rec:]
	}
	return out, nil
}

// errBadRun is a run file that does not read back as written.
var errBadRun = fmt.Errorf("%w: a run file reads back damaged", ErrCorrupt)

// writeRun writes the n records of srcs, merged in key order (for one
// key, the records of srcs[0] first), into a new run.
func writeRun(n int, srcs []source) (*run, error) {
	f, err := os.CreateTemp("", "cas-index-*")
	if err != nil {
		return nil, fmt.Errorf("index: create a run file: %w", err)
	}
	os.Remove(f.Name()) // the open file stays until closed
	nbits := bucketBits(n)
	r := &run{f: f, bits: nbits, fan: make([]int64, 1<<nbits+1)}
	w := bufio.NewWriterSize(f, 256<<10)
	next := 0 // the first bucket whose offset is not yet set
	var hdr [digest.Size + binary.MaxVarintLen64]byte
	m := newMerger(srcs)
	for m.next() {
		k, v := m.key(), m.val()
		for b := bucketOf(k, nbits); next <= b; next++ {
			r.fan[next] = r.size
		}
		copy(hdr[:], k[:])
		h := digest.Size + binary.PutUvarint(hdr[digest.Size:], uint64(len(v)))
		if _, err := w.Write(hdr[:h]); err != nil {
			f.Close()
			return nil, fmt.Errorf("index: write a run: %w", err)
		}
		if _, err := w.Write(v); err != nil {
			f.Close()
			return nil, fmt.Errorf("index: write a run: %w", err)
		}
		r.size += int64(h + len(v))
		r.n++
	}
	if m.err != nil {
		f.Close()
		return nil, m.err
	}
	for ; next < len(r.fan); next++ {
		r.fan[next] = r.size
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return nil, fmt.Errorf("index: write a run: %w", err)
	}
	return r, nil
}

// source yields records in key order.
type source interface {
	next() bool
	key() digest.Digest
	val() []byte // valid until the next call of next
	error() error
}

// runIter reads a run's records in order.
type runIter struct {
	rd   *bufio.Reader
	left int   // records
	rest int64 // bytes
	k    digest.Digest
	v    []byte
	err  error
}

func (r *run) iter() *runIter { return newRecordIter(r.f, r.size, r.n) }

// newRecordIter reads the n records in the first size bytes of f.
func newRecordIter(f io.ReaderAt, size int64, n int) *runIter {
	return &runIter{rd: bufio.NewReaderSize(io.NewSectionReader(f, 0, size), 64<<10), left: n, rest: size}
}

func (it *runIter) next() bool {
	if it.left == 0 || it.err != nil {
		return false
	}
	it.left--
	if _, err := io.ReadFull(it.rd, it.k[:]); err != nil {
		it.err = errBadRun
		return false
	}
	vlen, err := binary.ReadUvarint(it.rd)
	// A length past the bytes left is damage, found before it is allocated.
	it.rest -= int64(digest.Size + uvarintLen(vlen))
	if err != nil || it.rest < 0 || vlen > uint64(it.rest) {
		it.err = errBadRun
		return false
	}
	it.rest -= int64(vlen)
	if uint64(cap(it.v)) < vlen {
		it.v = make([]byte, vlen)
	}
	it.v = it.v[:vlen]
	if _, err := io.ReadFull(it.rd, it.v); err != nil {
		it.err = errBadRun
		return false
	}
	return true
}

func (it *runIter) key() digest.Digest { return it.k }
func (it *runIter) val() []byte        { return it.v }
func (it *runIter) error() error       { return it.err }

// bufIter yields the buffer's entries in key order.
type bufIter struct {
	keys []digest.Digest
	buf  map[digest.Digest][][]byte
	i    int      // keys[i] is the current key
	cur  [][]byte // its values
	j    int      // cur[j] is the current value
}

func (s *runStore) bufSource() *bufIter {
	keys := make([]digest.Digest, 0, len(s.buf))
	for k := range s.buf {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b digest.Digest) int { return bytes.Compare(a[:], b[:]) })
	return &bufIter{keys: keys, buf: s.buf, i: -1}
}

func (it *bufIter) next() bool {
	for it.j+1 >= len(it.cur) {
		it.i++
		if it.i >= len(it.keys) {
			it.cur = nil
			return false
		}
		it.cur, it.j = it.buf[it.keys[it.i]], -1
	}
	it.j++
	return true
}

func (it *bufIter) key() digest.Digest { return it.keys[it.i] }
func (it *bufIter) val() []byte        { return it.cur[it.j] }
func (it *bufIter) error() error       { return nil }

// merger yields the records of several sources in key order; for one
// key, those of an earlier source first.
type merger struct {
	srcs  []source
	live  []bool
	cur   int // the source of the current record
	begun bool
	err   error
}

func newMerger(srcs []source) *merger {
	return &merger{srcs: srcs, live: make([]bool, len(srcs)), cur: -1}
}

func (m *merger) next() bool {
	if m.err != nil {
		return false
	}
	if !m.begun {
		m.begun = true
		for i, s := range m.srcs {
			m.live[i] = m.advance(s)
		}
	} else if m.cur >= 0 {
		m.live[m.cur] = m.advance(m.srcs[m.cur])
	}
	if m.err != nil {
		return false
	}
	m.cur = -1
	for i, s := range m.srcs {
		if !m.live[i] {
			continue
		}
		if m.cur < 0 {
			m.cur = i
			continue
		}
		a, b := s.key(), m.srcs[m.cur].key()
		if bytes.Compare(a[:], b[:]) < 0 {
			m.cur = i
		}
	}
	return m.cur >= 0
}

func (m *merger) advance(s source) bool {
	if s.next() {
		return true
	}
	if err := s.error(); err != nil && m.err == nil {
		m.err = err
	}
	return false
}

func (m *merger) key() digest.Digest { return m.srcs[m.cur].key() }
func (m *merger) val() []byte        { return m.srcs[m.cur].val() }

// uvarintLen is how many bytes binary.PutUvarint writes for v.
func uvarintLen(v uint64) int {
	n := 1
	for ; v >= 0x80; v >>= 7 {
		n++
	}
	return n
}
