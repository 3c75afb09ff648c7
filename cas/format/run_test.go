package format

import (
	"bytes"
	"encoding/binary"
	"errors"
	"slices"
	"testing"

	"github.com/cas-ml/cas/digest"
	"github.com/cas-ml/cas/index"
)

// shardIDs returns n distinct IDs of one shard (first 12 bits 0xabc).
func shardIDs(n int) []digest.Digest {
	ids := make([]digest.Digest, n)
	for i := range ids {
		d := digest.Of(binary.LittleEndian.AppendUint32(nil, uint32(i)))
		d[0], d[1] = 0xab, 0xc0|d[1]&0x0f
		ids[i] = d
	}
	return ids
}

func entryEqual(a, b RunEntry) bool {
	return a.ID == b.ID && a.Kind == b.Kind && a.Segment == b.Segment && a.Blob == b.Blob && slices.Equal(a.Chunks, b.Chunks)
}

func testEntries(n int) []RunEntry {
	seg := digest.Of([]byte("segment"))
	pack := digest.Of([]byte("pack"))
	var es []RunEntry
	for i, id := range shardIDs(n) {
		if i%5 == 4 {
			es = append(es, RunEntry{ID: id, Kind: RunFile, Segment: seg, Chunks: shardIDs(2 + i%3)})
			continue
		}
		typ := uint8(i % 2)
		es = append(es, RunEntry{ID: id, Kind: typ, Segment: seg,
			Blob: index.Blob{ID: id, Type: typ, Pack: pack, Codec: uint8(i % 2), Offset: uint64(8 + 100*i), Length: uint32(10 + i), RawLen: uint32(20 + i)}})
	}
	return es
}

func TestRunRoundTrip(t *testing.T) {
	es := testEntries(500)
	// Given twice and shuffled, written once and sorted.
	in := append(append([]RunEntry(nil), es[250:]...), es...)
	data, err := EncodeRun(in)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeRun(data)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(es) {
		t.Fatalf("decoded %d entries, want %d", len(got), len(es))
	}
	byID := map[digest.Digest]RunEntry{}
	for _, e := range es {
		byID[e.ID] = e
	}
	for i, e := range got {
		if i > 0 && compareEntries(got[i-1], e) >= 0 {
			t.Fatalf("entry %d out of order", i)
		}
		if !entryEqual(e, byID[e.ID]) {
			t.Fatalf("entry %s: got %+v, want %+v", e.ID.Short(), e, byID[e.ID])
		}
	}
	// Every entry is found through the footer and its bucket alone.
	f, err := DecodeRunFooter(data[len(data)-RunFooterLen:], int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	if f.Count != len(es) {
		t.Fatalf("footer counts %d, want %d", f.Count, len(es))
	}
	for _, e := range es {
		off, end := f.Bucket(e.ID)
		bs, err := DecodeRunBucketRange(data[off:end], RunBucket(e.ID))
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, b := range bs {
			if b.ID == e.ID && entryEqual(b, e) {
				n++
			}
		}
		if n != 1 {
			t.Fatalf("entry %s found %d times in its bucket", e.ID.Short(), n)
		}
	}
}

func TestRunRejects(t *testing.T) {
	es := testEntries(20)
	other := es[0]
	other.ID[0] ^= 0xff
	other.Blob.ID = other.ID
	if _, err := EncodeRun(append(es, other)); err == nil {
		t.Fatal("EncodeRun accepted entries of two shards")
	}
	if _, err := EncodeRun(nil); err == nil {
		t.Fatal("EncodeRun accepted no entries")
	}
	bad := es[1]
	bad.Blob.ID[5] ^= 1
	if _, err := EncodeRun([]RunEntry{bad}); err == nil {
		t.Fatal("EncodeRun accepted a blob entry whose blob has another ID")
	}
	data, err := EncodeRun(es)
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]func([]byte) []byte{
		"cut short":    func(b []byte) []byte { return b[:len(b)-1] },
		"no magic":     func(b []byte) []byte { b[0] = 'X'; return b },
		"no end magic": func(b []byte) []byte { b[len(b)-1] = 'X'; return b },
		"bad kind":     func(b []byte) []byte { b[8+32] = 7; return b },
		"bad count":    func(b []byte) []byte { b[len(b)-9]++; return b },
		"bad fan-out":  func(b []byte) []byte { b[len(b)-RunFooterLen+4*3]++; return b },
		"wrong bucket": func(b []byte) []byte { b[8+2] ^= 0xf0; return b },
		"wrong shard":  func(b []byte) []byte { b[8] ^= 0x01; return b },
	}
	for name, mutate := range cases {
		if _, err := DecodeRun(mutate(bytes.Clone(data))); !errors.Is(err, ErrBadRun) {
			t.Errorf("%s: got %v, want ErrBadRun", name, err)
		}
	}
}

func FuzzDecodeRun(f *testing.F) {
	data, _ := EncodeRun(testEntries(12))
	f.Add(data)
	f.Fuzz(func(t *testing.T, b []byte) {
		es, err := DecodeRun(b)
		if err != nil {
			return
		}
		again, err := EncodeRun(es)
		if err != nil {
			t.Fatalf("a decoded run does not encode: %v", err)
		}
		if !bytes.Equal(again, b) && len(again) > len(b) {
			t.Fatalf("re-encoding grew a run from %d to %d bytes", len(b), len(again))
		}
	})
}

// FuzzRunMutation flips bytes of a valid run: whatever it becomes, the
// decoders never panic, and a run that still decodes is one EncodeRun
// accepts, with its entries where the footer says.
func FuzzRunMutation(f *testing.F) {
	f.Add(uint16(40), byte(1), uint16(0), byte(0))
	f.Add(uint16(9000), byte(0x80), uint16(77), byte(0xff))
	valid, _ := EncodeRun(testEntries(30))
	f.Fuzz(func(t *testing.T, p1 uint16, v1 byte, p2 uint16, v2 byte) {
		b := bytes.Clone(valid)
		b[int(p1)%len(b)] ^= v1
		b[int(p2)%len(b)] ^= v2
		es, err := DecodeRun(b)
		if foot, ferr := DecodeRunFooter(b[len(b)-RunFooterLen:], int64(len(b))); ferr == nil {
			for bk := range 256 {
				id := digest.Digest{0xab, 0xc0 | byte(bk>>4), byte(bk << 4)}
				off, end := foot.Bucket(id)
				_, _ = DecodeRunBucketRange(b[off:end], bk)
			}
		}
		if err != nil {
			return
		}
		if _, err := EncodeRun(es); err != nil {
			t.Fatalf("a decoded run does not encode: %v", err)
		}
	})
}

// A wide run holds entries of any shard, found through its footer (a
// bucket a shard) and that bucket alone; a reader of one kind of run
// never takes the other.
func TestWideRunRoundTrip(t *testing.T) {
	var es []RunEntry
	seg, pack := digest.Of([]byte("segment")), digest.Of([]byte("pack"))
	for i := range 3000 {
		id := digest.Of(binary.LittleEndian.AppendUint32(nil, uint32(i)))
		es = append(es, RunEntry{ID: id, Kind: RunData, Segment: seg, SegmentSize: int64(i * 300),
			Blob: index.Blob{ID: id, Pack: pack, Offset: uint64(8 + 100*i), Length: 100, RawLen: 100}})
	}
	if _, err := EncodeRun(es); err == nil {
		t.Fatal("a shard's run took entries of many shards")
	}
	data, err := EncodeRunIn(WideShard, es)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeRunIn(WideShard, data)
	if err != nil || len(got) != len(es) {
		t.Fatalf("decoded %d entries (%v), want %d", len(got), err, len(es))
	}
	size := map[digest.Digest]int64{}
	for _, e := range es {
		size[e.ID] = e.SegmentSize
	}
	for _, e := range got {
		if e.SegmentSize != size[e.ID] {
			t.Fatalf("entry %s: segment size %d, want %d", e.ID.Short(), e.SegmentSize, size[e.ID])
		}
	}
	if _, err := DecodeRun(data); !errors.Is(err, ErrBadRun) {
		t.Fatalf("a wide run read as a shard's: %v", err)
	}
	shard, _ := EncodeRun(testEntries(20))
	if _, err := DecodeRunIn(WideShard, shard); !errors.Is(err, ErrBadRun) {
		t.Fatalf("a shard's run read as a wide one: %v", err)
	}
	flen := RunFooterLenIn(WideShard)
	f, err := DecodeRunFooterIn(WideShard, data[len(data)-flen:], int64(len(data)))
	if err != nil || f.Count != len(es) || f.Buckets() != 4096 {
		t.Fatalf("footer: %+v, %v", f, err)
	}
	for _, e := range es {
		off, end := f.Bucket(e.ID)
		bs, err := f.DecodeBucket(data[off:end], e.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.ContainsFunc(bs, func(b RunEntry) bool { return entryEqual(b, e) }) {
			t.Fatalf("entry %s not in its bucket", e.ID.Short())
		}
		if b := int(e.ID[0])<<4 | int(e.ID[1]>>4); [2]int64{off, end} != func() [2]int64 { o, n := f.BucketRange(b); return [2]int64{o, n} }() {
			t.Fatalf("entry %s: its bucket is not that of its shard", e.ID.Short())
		}
	}
	// An entry moved to another bucket is refused.
	off, end := f.Bucket(es[0].ID)
	other := es[0].ID
	other[0] ^= 0x80
	if _, err := f.DecodeBucket(data[off:end], other); !errors.Is(err, ErrBadRun) {
		t.Fatalf("entries of one bucket read as another's: %v", err)
	}
}

// FuzzWideRunMutation is FuzzRunMutation for a wide run: a bucket's
// bytes decode as that bucket's or not at all, whatever a hostile bucket
// changed.
func FuzzWideRunMutation(f *testing.F) {
	f.Add(uint16(40), byte(1), uint16(0), byte(0))
	f.Add(uint16(60000), byte(0x80), uint16(77), byte(0xff))
	var es []RunEntry
	for i, e := range testEntries(60) {
		e.ID[0], e.ID[1] = byte(i*37), byte(i*91)
		if e.Kind != RunFile {
			e.Blob.ID = e.ID
		}
		e.SegmentSize = int64(i * 1000)
		es = append(es, e)
	}
	valid, err := EncodeRunIn(WideShard, es)
	if err != nil {
		f.Fatal(err)
	}
	flen := RunFooterLenIn(WideShard)
	f.Fuzz(func(t *testing.T, p1 uint16, v1 byte, p2 uint16, v2 byte) {
		b := bytes.Clone(valid)
		b[int(p1)%len(b)] ^= v1
		b[int(p2)%len(b)] ^= v2
		got, err := DecodeRunIn(WideShard, b)
		if foot, ferr := DecodeRunFooterIn(WideShard, b[len(b)-flen:], int64(len(b))); ferr == nil {
			for bk := range foot.Buckets() {
				off, end := foot.BucketRange(bk)
				for _, e := range func() []RunEntry { x, _ := foot.DecodeBucketAt(b[off:end], bk); return x }() {
					if int(e.ID[0])<<4|int(e.ID[1]>>4) != bk {
						t.Fatalf("entry %s decoded in bucket %d", e.ID.Short(), bk)
					}
				}
			}
		}
		if err != nil {
			return
		}
		if _, err := EncodeRunIn(WideShard, got); err != nil {
			t.Fatalf("a decoded wide run does not encode: %v", err)
		}
	})
}

// A fan-out table whose bucket starts inside an entry is refused by the
// whole-run decode, as a reader of that bucket alone would refuse it.
func TestRunFanOutOnEntryBoundaries(t *testing.T) {
	es := testEntries(500)
	data, err := EncodeRun(es)
	if err != nil {
		t.Fatal(err)
	}
	f, err := DecodeRunFooter(data[len(data)-RunFooterLen:], int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	// A bucket that starts right after a non-empty one: move its start a
	// byte back, into the last entry of the one before.
	b := 1
	for ; b < runBuckets; b++ {
		if f.fan[b-1] < f.fan[b] && f.fan[b] < f.fan[b+1] {
			break
		}
	}
	if b == runBuckets {
		t.Fatal("no two non-empty buckets side by side")
	}
	bad := bytes.Clone(data)
	at := len(bad) - RunFooterLen + 4*b
	binary.LittleEndian.PutUint32(bad[at:], f.fan[b]-1)
	if _, err := DecodeRun(bad); !errors.Is(err, ErrBadRun) {
		t.Fatalf("a bucket starting inside an entry: %v, want ErrBadRun", err)
	}
	if _, err := DecodeRun(data); err != nil {
		t.Fatal(err)
	}
}
