package format

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/cas-ml/cas/digest"
	"github.com/cas-ml/cas/index"
)

// A lookup run is one immutable, sorted piece of a remote's lookup index
// (docs/FORMAT.md §7a): entries for IDs that share their first
// LookupShardDigits hex digits, sorted by ID, then a fan-out table that
// lets a reader fetch only the bytes of the entries it asks about.
//
//	"CASRUN01"
//	entries, sorted by (ID, kind), back to back:
//	  ID [32]byte, kind u8 (0 data blob, 1 tree blob, 2 file),
//	  segment [32]byte (the index segment that records it)
//	  kind 0, 1: pack [32]byte, codec u8, uvarint offset,
//	             uvarint stored length, uvarint raw length
//	  kind 2:    uvarint N (2 ≤ N), N chunk ids [32]byte
//	fan-out: 257 × u32, the offset of the first entry of each bucket
//	  (bucket = bits 12..19 of the ID), the last one where entries end
//	count u32, "CASRUN01"
//
// A wide run ("CASWIDE1", in the wide area lookup/all/) is laid out the
// same way with entries of any ID, each with uvarint segment size after
// its segment, and a fan-out of 4096 buckets, one per shard (bucket =
// bits 0..11 of the ID).

// RunMagic starts and ends every lookup run of a shard.
const RunMagic = "CASRUN01"

// WideRunMagic starts and ends every wide run: a run of the wide area,
// whose entries may have any ID, with a fan-out by the shard (bits 0..11).
const WideRunMagic = "CASWIDE1"

// Lookup-index keys (docs/FORMAT.md §5).
const (
	// LookupPrefix holds the lookup index: runs under
	// lookup/<3 hex>/<64 hex>, and LookupFormatKey.
	LookupPrefix = "lookup/"
	// LookupFormatKey marks a remote whose lookup index covers every
	// index segment: readers look IDs up instead of loading segments.
	LookupFormatKey = LookupPrefix + "format"
	// LookupShardDigits is how many leading hex digits of an ID name
	// its shard: 4096 shards.
	LookupShardDigits = 3
	// WideShard names the wide area, lookup/all/: runs of an upload too
	// large to stay small and too small to be worth a run in every shard,
	// and the markers below. It is not three hex digits, so no ID's shard.
	WideShard = "all"
	// LookupIndexMarker, in the wide area, says the remote keeps a lookup
	// index of version 2: a reader's one listing of the wide area tells it
	// so, without reading LookupFormatKey (written before it).
	LookupIndexMarker = LookupPrefix + WideShard + "/index"
	// LookupShardedMarker, in the wide area, says runs may be in shards:
	// it is written before the first run of a shard, so a reader that
	// does not find it lists no shard.
	LookupShardedMarker = LookupPrefix + WideShard + "/sharded"
)

// Entry kinds of a lookup run.
const (
	RunData = index.TypeData // a data blob: where it is stored
	RunTree = index.TypeTree // a tree blob: where it is stored
	RunFile = 2              // a multi-chunk file: its chunk list
)

const (
	runBuckets   = 256
	runFooterLen = (runBuckets+1)*4 + 4 + len(RunMagic)
	// RunFooterLen is the size of a shard run's footer: fetching the last
	// RunFooterLen bytes gives the fan-out table.
	RunFooterLen = runFooterLen
	wideBuckets  = 4096
	// WideRunFooterLen is the size of a wide run's footer.
	WideRunFooterLen = (wideBuckets+1)*4 + 4 + len(WideRunMagic)
	// maxRunBytes bounds a run: offsets are u32, and a shard's run is a
	// few MiB even at 10^8 entries.
	maxRunBytes = 1 << 30
	// maxFileChunks bounds one file's chunk list in a run (4 TiB of 4 KiB chunks).
	maxFileChunks = 1 << 30
	// maxSegmentSize bounds the segment size an entry of a wide run gives.
	maxSegmentSize = 1 << 40
)

// ErrBadRun reports a lookup run that cannot be decoded.
var ErrBadRun = errors.New("malformed lookup run")

// RunEntry is one entry of a lookup run: where a blob is (Kind RunData
// or RunTree, Blob) or which chunks make up a file (RunFile, Chunks),
// with the index segment that records it.
type RunEntry struct {
	ID      digest.Digest
	Kind    uint8
	Segment digest.Digest
	Blob    index.Blob      // Kind RunData, RunTree; Blob.ID == ID, Blob.Type == Kind
	Chunks  []digest.Digest // Kind RunFile
	// SegmentSize is the size of Segment in bytes, 0 if not known: an
	// entry of a wide run records it (a reader decides by it whether to
	// load the segment), one of a shard's run does not.
	SegmentSize int64
	// Wide says a reader found the entry in a wide run; not part of the
	// encoding.
	Wide bool
}

// LookupShard names the shard of id: its first LookupShardDigits hex digits.
func LookupShard(id digest.Digest) string { return id.Hex()[:LookupShardDigits] }

// LookupShardPrefix is the key prefix of a shard's runs.
func LookupShardPrefix(shard string) string { return LookupPrefix + shard + "/" }

// RunKey is the backend key of run id in shard.
func RunKey(shard string, id digest.Digest) string { return LookupShardPrefix(shard) + id.Hex() }

// RunIDFromKey returns the run name a key under a shard prefix ends with.
func RunIDFromKey(key string) (digest.Digest, error) { return PackIDFromKey(key) }

// RunBucket is the fan-out bucket of id in a run: bits 12..19.
func RunBucket(id digest.Digest) int { return int(id[1]&0x0f)<<4 | int(id[2]>>4) }

// sameShard reports whether a and b share their first 12 bits.
func sameShard(a, b digest.Digest) bool { return a[0] == b[0] && a[1]>>4 == b[1]>>4 }

func compareEntries(a, b RunEntry) int {
	if c := bytes.Compare(a.ID[:], b.ID[:]); c != 0 {
		return c
	}
	return int(a.Kind) - int(b.Kind)
}

// runLayout is how the runs of a shard, or of the wide area, are laid
// out: their magic and fan-out.
type runLayout struct {
	magic   string
	buckets int
	wide    bool // any ID, fan-out by bits 0..11; else one shard, by bits 12..19
}

var (
	shardLayout = runLayout{RunMagic, runBuckets, false}
	wideLayout  = runLayout{WideRunMagic, wideBuckets, true}
)

func layoutOf(shard string) runLayout {
	if shard == WideShard {
		return wideLayout
	}
	return shardLayout
}

func (l runLayout) bucket(id digest.Digest) int {
	if l.wide {
		return int(id[0])<<4 | int(id[1]>>4)
	}
	return RunBucket(id)
}

func (l runLayout) footerLen() int { return (l.buckets+1)*4 + 4 + len(l.magic) }

// RunFooterLenIn is the size of the footer of a run of shard (or of the
// wide area, WideShard).
func RunFooterLenIn(shard string) int { return layoutOf(shard).footerLen() }

// EncodeRun returns the bytes of a run holding entries (at least one,
// all of one shard), sorted by (ID, kind); exact duplicates are written
// once.
func EncodeRun(entries []RunEntry) ([]byte, error) { return encodeRun(shardLayout, entries) }

// EncodeRunIn is EncodeRun for a run of shard: of the wide area
// (WideShard), entries of any ID make a wide run.
func EncodeRunIn(shard string, entries []RunEntry) ([]byte, error) {
	return encodeRun(layoutOf(shard), entries)
}

func encodeRun(l runLayout, entries []RunEntry) ([]byte, error) {
	if len(entries) == 0 {
		return nil, errors.New("a lookup run needs at least one entry")
	}
	es := slices.Clone(entries)
	slices.SortStableFunc(es, compareEntries)
	flen := l.footerLen()
	b := make([]byte, 0, 8+len(es)*112+flen)
	b = append(b, l.magic...)
	fan := make([]uint32, l.buckets+1)
	next := 0 // the next bucket whose start is not yet known
	count := 0
	var prev []byte
	for i, e := range es {
		if !l.wide && !sameShard(e.ID, es[0].ID) {
			return nil, fmt.Errorf("lookup run: %s and %s are in different shards", es[0].ID.Short(), e.ID.Short())
		}
		enc, err := appendRunEntry(nil, e, l.wide)
		if err != nil {
			return nil, err
		}
		if i > 0 && bytes.Equal(enc, prev) {
			continue
		}
		prev = enc
		count++
		for bk := l.bucket(e.ID); next <= bk; next++ {
			fan[next] = uint32(len(b))
		}
		b = append(b, enc...)
		if len(b) > maxRunBytes-flen {
			return nil, errors.New("lookup run: more than 1 GiB of entries")
		}
	}
	for ; next <= l.buckets; next++ {
		fan[next] = uint32(len(b))
	}
	for _, f := range fan {
		b = binary.LittleEndian.AppendUint32(b, f)
	}
	b = binary.LittleEndian.AppendUint32(b, uint32(count))
	return append(b, l.magic...), nil
}

// appendRunEntry appends the encoding of e; sized (in a wide run) adds
// the size of its segment after the segment.
func appendRunEntry(b []byte, e RunEntry, sized bool) ([]byte, error) {
	b = append(b, e.ID[:]...)
	b = append(b, e.Kind)
	b = append(b, e.Segment[:]...)
	if sized {
		if e.SegmentSize < 0 || e.SegmentSize > maxSegmentSize {
			return nil, fmt.Errorf("lookup run: entry %s: segment size %d", e.ID.Short(), e.SegmentSize)
		}
		b = binary.AppendUvarint(b, uint64(e.SegmentSize))
	}
	switch e.Kind {
	case RunData, RunTree:
		if e.Blob.ID != e.ID || e.Blob.Type != e.Kind || e.Blob.Codec > index.MaxCodec {
			return nil, fmt.Errorf("lookup run: blob entry %s does not match its blob", e.ID.Short())
		}
		b = append(b, e.Blob.Pack[:]...)
		b = append(b, e.Blob.Codec)
		b = binary.AppendUvarint(b, e.Blob.Offset)
		b = binary.AppendUvarint(b, uint64(e.Blob.Length))
		b = binary.AppendUvarint(b, uint64(e.Blob.RawLen))
	case RunFile:
		if len(e.Chunks) < 2 || len(e.Chunks) > maxFileChunks {
			return nil, fmt.Errorf("lookup run: file %s has %d chunks", e.ID.Short(), len(e.Chunks))
		}
		b = binary.AppendUvarint(b, uint64(len(e.Chunks)))
		for _, c := range e.Chunks {
			b = append(b, c[:]...)
		}
	default:
		return nil, fmt.Errorf("lookup run: unknown entry kind %d", e.Kind)
	}
	return b, nil
}

// RunFooter is a run's fan-out table, read from its last bytes (the
// footer): where each bucket's entries are.
type RunFooter struct {
	layout runLayout
	fan    []uint32
	Count  int
	Size   int64
}

// DecodeRunFooter decodes the footer of a shard's run of size bytes from
// its last RunFooterLen bytes.
func DecodeRunFooter(tail []byte, size int64) (*RunFooter, error) {
	return decodeRunFooter(shardLayout, tail, size)
}

// DecodeRunFooterIn decodes the footer of a run of shard (WideShard: a
// wide run) of size bytes from its last RunFooterLenIn(shard) bytes.
func DecodeRunFooterIn(shard string, tail []byte, size int64) (*RunFooter, error) {
	return decodeRunFooter(layoutOf(shard), tail, size)
}

func decodeRunFooter(l runLayout, tail []byte, size int64) (*RunFooter, error) {
	flen := l.footerLen()
	if len(tail) != flen || size < int64(len(l.magic)+flen) || size > maxRunBytes {
		return nil, fmt.Errorf("%w: %d bytes", ErrBadRun, size)
	}
	if string(tail[len(tail)-len(l.magic):]) != l.magic {
		return nil, fmt.Errorf("%w: bad magic", ErrBadRun)
	}
	f := &RunFooter{layout: l, fan: make([]uint32, l.buckets+1), Size: size}
	end := uint32(size) - uint32(flen)
	for i := range f.fan {
		f.fan[i] = binary.LittleEndian.Uint32(tail[4*i:])
		lo := uint32(len(l.magic))
		if i > 0 {
			lo = f.fan[i-1]
		}
		if f.fan[i] < lo || f.fan[i] > end || i == 0 && f.fan[0] != lo {
			return nil, fmt.Errorf("%w: fan-out table out of order", ErrBadRun)
		}
	}
	if f.fan[l.buckets] != end {
		return nil, fmt.Errorf("%w: fan-out table does not end where entries end", ErrBadRun)
	}
	f.Count = int(binary.LittleEndian.Uint32(tail[4*(l.buckets+1):]))
	if int64(f.Count)*(32+1+32+32+1+3) > int64(end) {
		return nil, fmt.Errorf("%w: %d entries cannot fit", ErrBadRun, f.Count)
	}
	return f, nil
}

// Bucket returns the byte range [off, end) of the run that holds the
// entries of id's bucket, if id is in the run at all.
func (f *RunFooter) Bucket(id digest.Digest) (off, end int64) {
	b := f.layout.bucket(id)
	return int64(f.fan[b]), int64(f.fan[b+1])
}

// Buckets is the number of buckets of the fan-out table.
func (f *RunFooter) Buckets() int { return f.layout.buckets }

// BucketRange returns the byte range [off, end) of bucket b of the run;
// in a wide run, bucket b holds the entries of shard b.
func (f *RunFooter) BucketRange(b int) (off, end int64) {
	return int64(f.fan[b]), int64(f.fan[b+1])
}

// DecodeBucketAt decodes data, the bytes BucketRange gave for bucket b.
func (f *RunFooter) DecodeBucketAt(data []byte, b int) ([]RunEntry, error) {
	return decodeBucketRange(f.layout, data, b)
}

// DecodeBucket decodes b, the bytes Bucket gave for id: the entries of
// id's bucket, which must all belong to it, in order.
func (f *RunFooter) DecodeBucket(b []byte, id digest.Digest) ([]RunEntry, error) {
	return decodeBucketRange(f.layout, b, f.layout.bucket(id))
}

// DecodeRun decodes a whole run of a shard, checking every rule of its
// format.
func DecodeRun(data []byte) ([]RunEntry, error) { return decodeRun(shardLayout, data) }

// DecodeRunIn decodes a whole run of shard (WideShard: a wide run).
func DecodeRunIn(shard string, data []byte) ([]RunEntry, error) {
	return decodeRun(layoutOf(shard), data)
}

func decodeRun(l runLayout, data []byte) ([]RunEntry, error) {
	flen := l.footerLen()
	if len(data) < len(l.magic)+flen || string(data[:len(l.magic)]) != l.magic {
		return nil, fmt.Errorf("%w: bad header", ErrBadRun)
	}
	f, err := decodeRunFooter(l, data[len(data)-flen:], int64(len(data)))
	if err != nil {
		return nil, err
	}
	// Every entry sits in its bucket, in order, and (but in a wide run)
	// all share a shard; every bucket starts where its first entry does
	// (an empty one where the next entry does), as the encoder writes the
	// table: a reader of one bucket then decodes what this decode did.
	var es []RunEntry
	pos, end := len(l.magic), int(f.fan[l.buckets])
	next := 0 // the next bucket whose start is not yet checked
	for pos < end {
		e, n, err := decodeRunEntry(data[pos:end], l.wide)
		if err != nil {
			return nil, err
		}
		lo, hi := f.Bucket(e.ID)
		if int64(pos) < lo || int64(pos) >= hi || len(es) > 0 && (!l.wide && !sameShard(e.ID, es[0].ID) || compareEntries(es[len(es)-1], e) > 0) {
			return nil, fmt.Errorf("%w: entry %s out of place", ErrBadRun, e.ID.Short())
		}
		for bk := l.bucket(e.ID); next <= bk; next++ {
			if f.fan[next] != uint32(pos) {
				return nil, fmt.Errorf("%w: bucket %d does not start at an entry", ErrBadRun, next)
			}
		}
		es = append(es, e)
		pos += n
	}
	for ; next <= l.buckets; next++ {
		if f.fan[next] != uint32(end) {
			return nil, fmt.Errorf("%w: bucket %d does not start at an entry", ErrBadRun, next)
		}
	}
	if len(es) != f.Count {
		return nil, fmt.Errorf("%w: %d entries where the footer counts %d", ErrBadRun, len(es), f.Count)
	}
	return es, nil
}

// DecodeRunBucketRange decodes the entries in b, the bytes of one or more
// whole buckets of a shard's run; bucket, when not -1, is the bucket they
// must all belong to. Entries must be sorted.
func DecodeRunBucketRange(b []byte, bucket int) ([]RunEntry, error) {
	return decodeBucketRange(shardLayout, b, bucket)
}

func decodeBucketRange(l runLayout, b []byte, bucket int) ([]RunEntry, error) {
	var es []RunEntry
	for len(b) > 0 {
		e, n, err := decodeRunEntry(b, l.wide)
		if err != nil {
			return nil, err
		}
		if bucket >= 0 && l.bucket(e.ID) != bucket {
			return nil, fmt.Errorf("%w: entry %s in the wrong bucket", ErrBadRun, e.ID.Short())
		}
		if len(es) > 0 && compareEntries(es[len(es)-1], e) > 0 {
			return nil, fmt.Errorf("%w: entries out of order", ErrBadRun)
		}
		es = append(es, e)
		b = b[n:]
	}
	return es, nil
}

func decodeRunEntry(b []byte, sized bool) (e RunEntry, n int, err error) {
	bad := func(what string) (RunEntry, int, error) {
		return RunEntry{}, 0, fmt.Errorf("%w: %s", ErrBadRun, what)
	}
	if len(b) < 65 {
		return bad("entry cut short")
	}
	copy(e.ID[:], b)
	e.Kind = b[32]
	copy(e.Segment[:], b[33:65])
	n = 65
	uv := func() (uint64, bool) {
		v, k := binary.Uvarint(b[n:])
		if k <= 0 {
			return 0, false
		}
		n += k
		return v, true
	}
	if sized {
		size, ok := uv()
		if !ok || size > maxSegmentSize {
			return bad("bad segment size")
		}
		e.SegmentSize = int64(size)
	}
	switch e.Kind {
	case RunData, RunTree:
		if len(b) < n+33 {
			return bad("entry cut short")
		}
		e.Blob = index.Blob{ID: e.ID, Type: e.Kind, Codec: b[n+32]}
		copy(e.Blob.Pack[:], b[n:n+32])
		n += 33
		if e.Blob.Codec > index.MaxCodec {
			return bad(unknownCodec(e.Blob.Codec).Error())
		}
		off, ok1 := uv()
		length, ok2 := uv()
		raw, ok3 := uv()
		if !ok1 || !ok2 || !ok3 || length > 1<<32-1 || raw > 1<<32-1 || off > 1<<40 {
			return bad("bad blob location")
		}
		e.Blob.Offset, e.Blob.Length, e.Blob.RawLen = off, uint32(length), uint32(raw)
	case RunFile:
		c, ok := uv()
		if !ok || c < 2 || c > maxFileChunks || uint64(len(b)-n)/32 < c {
			return bad("bad chunk list")
		}
		e.Chunks = make([]digest.Digest, c)
		for i := range e.Chunks {
			copy(e.Chunks[i][:], b[n:])
			n += 32
		}
	default:
		return bad("unknown entry kind")
	}
	return e, n, nil
}
