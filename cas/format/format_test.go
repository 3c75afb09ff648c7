package format_test

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/cas-ml/cas/cas/format"
	"github.com/cas-ml/cas/cas/format/formattest"
	"github.com/cas-ml/cas/digest"
	"github.com/cas-ml/cas/index"
	"github.com/klauspost/compress/zstd"
)

// The golden files pin the on-disk formats that docs/FORMAT.md specifies.
// A diff in them is a change of format: run `go test ./cas/format -run Golden
// -update` only when that is intended, and update docs/FORMAT.md with it.
var update = flag.Bool("update", false, "rewrite the golden files in ../../testdata/golden")

const goldenDir = "../../testdata/golden"

// The tests' own zstd coders, to take segments apart and forge them.
var (
	zstdEncoder, _ = zstd.NewWriter(nil)
	zstdDecoder, _ = zstd.NewReader(nil)
)

type goldenEntry struct {
	Name    string        `json:"name,omitempty"`     // when valid UTF-8
	NameHex string        `json:"name_hex,omitempty"` // otherwise
	Kind    format.Kind   `json:"kind"`
	Size    int64         `json:"size"`
	Digest  digest.Digest `json:"digest"`
}

type treeVector struct {
	Name        string        `json:"name"`
	Entries     []goldenEntry `json:"entries"`
	Size        int64         `json:"size"`
	EncodingHex string        `json:"encoding_hex"`
	Digest      digest.Digest `json:"digest"`
}

type fileVector struct {
	Content string        `json:"content"`
	Digest  digest.Digest `json:"digest"`
}

type treeGolden struct {
	Files []fileVector `json:"files"`
	Trees []treeVector `json:"trees"`
}

func TestGoldenTrees(t *testing.T) {
	t.Parallel()
	var g treeGolden
	for _, s := range []string{"", "hello world\n", "abc"} {
		g.Files = append(g.Files, fileVector{s, digest.Of([]byte(s))})
	}
	for _, gs := range formattest.Golden {
		tr := formattest.Tree(t, gs.Entry)
		d, enc, err := tr.Digest()
		if err != nil {
			t.Fatalf("%s: %v", gs.Name, err)
		}
		tv := treeVector{Name: gs.Name, Entries: []goldenEntry{}, Size: tr.Size(), EncodingHex: hex.EncodeToString(enc), Digest: d}
		for _, e := range tr.Entries {
			ge := goldenEntry{Kind: e.Kind, Size: e.Size, Digest: e.Digest}
			if utf8.ValidString(e.Name) {
				ge.Name = e.Name
			} else {
				ge.NameHex = hex.EncodeToString([]byte(e.Name))
			}
			tv.Entries = append(tv.Entries, ge)
		}
		g.Trees = append(g.Trees, tv)

		back, err := format.ParseTree(enc)
		if err != nil {
			t.Fatalf("%s: ParseTree: %v", gs.Name, err)
		}
		if !reflect.DeepEqual(back.Entries, tr.Entries) {
			t.Errorf("%s: ParseTree(Encode(t)) = %+v, want %+v", gs.Name, back.Entries, tr.Entries)
		}
	}
	formattest.CheckGolden(t, filepath.Join(goldenDir, "trees.json"), g, *update)
}

func TestFormatTreeRejects(t *testing.T) {
	t.Parallel()
	h := strings.Repeat("ab", 32)
	valid := "cas-tree-v1\nfile " + h + " 3 1 a\n"
	if _, err := format.ParseTree([]byte(valid)); err != nil {
		t.Fatalf("ParseTree(valid) = %v", err)
	}
	for _, tt := range []struct{ name, enc string }{
		{"no header", "file " + h + " 3 1 a\n"},
		{"old header", "cas-tree-v0\n"},
		{"unknown kind", "cas-tree-v1\nfifo " + h + " 3 1 a\n"},
		{"upper hex", "cas-tree-v1\nfile " + strings.ToUpper(h) + " 3 1 a\n"},
		{"short hex", "cas-tree-v1\nfile " + h[2:] + " 3 1 a\n"},
		{"leading zero size", "cas-tree-v1\nfile " + h + " 03 1 a\n"},
		{"negative size", "cas-tree-v1\nfile " + h + " -3 1 a\n"},
		{"plus size", "cas-tree-v1\nfile " + h + " +3 1 a\n"},
		{"size overflow", "cas-tree-v1\nfile " + h + " 9223372036854775808 1 a\n"},
		// Sizes that add up past int64: four of 2^62 would hold 0 bytes.
		{"total overflow", "cas-tree-v1\n" +
			"dir " + h + " 4611686018427387904 1 a\ndir " + h + " 4611686018427387904 1 b\n" +
			"dir " + h + " 4611686018427387904 1 c\ndir " + h + " 4611686018427387904 1 d\n"},
		{"name length too long", "cas-tree-v1\nfile " + h + " 3 2 a\n"},
		{"name length too short", "cas-tree-v1\nfile " + h + " 3 1 ab\n"},
		{"empty name", "cas-tree-v1\nfile " + h + " 3 0 \n"},
		{"dot", "cas-tree-v1\ndir " + h + " 3 1 .\n"},
		{"dotdot", "cas-tree-v1\ndir " + h + " 3 2 ..\n"},
		{"slash", "cas-tree-v1\nfile " + h + " 3 3 a/b\n"},
		{"nul", "cas-tree-v1\nfile " + h + " 3 3 a\x00b\n"},
		{"no newline", "cas-tree-v1\nfile " + h + " 3 1 a"},
		{"double space", "cas-tree-v1\nfile  " + h + " 3 1 a\n"},
		{"unsorted", "cas-tree-v1\nfile " + h + " 3 1 b\nfile " + h + " 3 1 a\n"},
		{"duplicate", "cas-tree-v1\nfile " + h + " 3 1 a\nexec " + h + " 3 1 a\n"},
		{"trailing bytes", valid + "x"},
		{"trailing newline", valid + "\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if tr, err := format.ParseTree([]byte(tt.enc)); err == nil {
				t.Errorf("ParseTree(%q) = %+v, want error", tt.enc, tr.Entries)
			} else if !errors.Is(err, format.ErrBadTree) && !errors.Is(err, format.ErrBadName) {
				t.Errorf("ParseTree(%q) error %v, want ErrBadTree or ErrBadName", tt.enc, err)
			}
		})
	}
	for _, tt := range []struct {
		name string
		es   []format.TreeEntry
	}{
		{"unsorted", []format.TreeEntry{{Name: "b", Kind: format.KindFile}, {Name: "a", Kind: format.KindFile}}},
		{"duplicate", []format.TreeEntry{{Name: "a", Kind: format.KindFile}, {Name: "a", Kind: format.KindDir}}},
		{"bad name", []format.TreeEntry{{Name: "a/b", Kind: format.KindFile}}},
		{"bad kind", []format.TreeEntry{{Name: "a", Kind: 9}}},
		{"negative size", []format.TreeEntry{{Name: "a", Kind: format.KindFile, Size: -1}}},
	} {
		t.Run("encode "+tt.name, func(t *testing.T) {
			if _, err := (&format.Tree{Entries: tt.es}).Encode(); err == nil {
				t.Errorf("Encode(%+v) succeeded, want error", tt.es)
			}
		})
	}
}

// zstdRLE is a hand-made zstd frame: single segment, content size 600,
// one last RLE block of 600 bytes 'z'. Any zstd decoder reads it.
var zstdRLE = []byte{0x28, 0xb5, 0x2f, 0xfd, 0x60, 0x58, 0x01, 0xc3, 0x12, 0x00, 'z'}

// goldenBlob is a blob of the golden pack: raw bytes and what is stored.
type goldenBlob struct {
	typ, codec uint8
	raw        []byte
	stored     []byte
}

func goldenBlobs(t testing.TB) []goldenBlob {
	t.Helper()
	_, enc, err := formattest.Tree(t, formattest.Hello).Digest()
	if err != nil {
		t.Fatal(err)
	}
	return []goldenBlob{
		{index.TypeData, index.CodecNone, []byte("hello world\n"), []byte("hello world\n")},
		{index.TypeTree, index.CodecNone, enc, enc},
		{index.TypeData, index.CodecZstd, bytes.Repeat([]byte("z"), 600), zstdRLE},
	}
}

func buildPack(t testing.TB, bs []goldenBlob) ([]byte, digest.Digest, []index.Blob) {
	t.Helper()
	p := &format.PackBuilder{}
	p.Reset()
	for _, b := range bs {
		p.Add(index.Blob{ID: digest.Of(b.raw), Type: b.typ, Codec: b.codec, RawLen: uint32(len(b.raw))}, b.stored)
	}
	data, id, blobs := p.Finish()
	return bytes.Clone(data), id, blobs
}

type packBlobJSON struct {
	Type   uint8         `json:"type"`
	Codec  uint8         `json:"codec"`
	ID     digest.Digest `json:"id"`
	Offset uint64        `json:"offset"`
	Length uint32        `json:"length"`
	RawLen uint32        `json:"raw_len"`
}

type packGolden struct {
	Pack    digest.Digest              `json:"pack"`
	Blobs   []packBlobJSON             `json:"blobs"`
	PackHex string                     `json:"pack_hex"`
	Files   map[string][]digest.Digest `json:"segment_files"`
	BodyHex string                     `json:"segment_body_hex"`
}

// goldenSegment is the segment that records the golden pack and a
// two-chunk file.
func goldenSegment(blobs []index.Blob) *format.Segment {
	a, b := digest.Of([]byte("hello world\n")), digest.Of(bytes.Repeat([]byte("z"), 600))
	file := digest.Of(append([]byte("hello world\n"), bytes.Repeat([]byte("z"), 600)...))
	return &format.Segment{Blobs: blobs, Files: map[digest.Digest][]digest.Digest{file: {a, b}}}
}

func TestGoldenPack(t *testing.T) {
	t.Parallel()
	gbs := goldenBlobs(t)
	if raw, err := zstdDecoder.DecodeAll(zstdRLE, nil); err != nil || !bytes.Equal(raw, gbs[2].raw) {
		t.Fatalf("zstdRLE decodes to %d bytes, %v; want 600 bytes 'z'", len(raw), err)
	}
	data, id, blobs := buildPack(t, gbs)
	trailer := data[len(data)-len(blobs)*format.PackRecordLen-format.PackFooterLen:]
	if id != digest.Of(trailer) {
		t.Errorf("pack name %v, want BLAKE3 of its trailer %v", id, digest.Of(trailer))
	}
	if !format.PackNamed(id, data) {
		t.Errorf("PackNamed rejects the pack's own name")
	}
	got, err := format.ParsePack(id, data)
	if err != nil {
		t.Fatalf("ParsePack: %v", err)
	}
	if !reflect.DeepEqual(got, blobs) {
		t.Errorf("ParsePack = %+v, want %+v", got, blobs)
	}
	for i, b := range got {
		if s := data[b.Offset : b.Offset+uint64(b.Length)]; !bytes.Equal(s, gbs[i].stored) {
			t.Errorf("blob %d: stored bytes %q, want %q", i, s, gbs[i].stored)
		}
	}

	seg := goldenSegment(blobs)
	enc := seg.Encode()
	if !bytes.HasPrefix(enc, []byte(format.SegmentMagic)) {
		t.Fatalf("segment starts %q, want %q", enc[:8], format.SegmentMagic)
	}
	body, err := zstdDecoder.DecodeAll(enc[len(format.SegmentMagic):], nil)
	if err != nil {
		t.Fatal(err)
	}
	back, err := format.DecodeSegment(enc)
	if err != nil {
		t.Fatalf("DecodeSegment: %v", err)
	}
	if !reflect.DeepEqual(back, seg) {
		t.Errorf("DecodeSegment(Encode(s)) = %+v, want %+v", back, seg)
	}

	g := packGolden{Pack: id, PackHex: hex.EncodeToString(data), BodyHex: hex.EncodeToString(body), Files: map[string][]digest.Digest{}}
	for _, b := range blobs {
		g.Blobs = append(g.Blobs, packBlobJSON{b.Type, b.Codec, b.ID, b.Offset, b.Length, b.RawLen})
	}
	for f, cs := range seg.Files {
		g.Files[f.String()] = cs
	}
	formattest.CheckGolden(t, filepath.Join(goldenDir, "pack.json"), g, *update)
}

// TestFormatSegmentRoundTrip encodes segments spanning several packs, in
// any order, and checks that decoding gives them back field for field.
func TestFormatSegmentRoundTrip(t *testing.T) {
	t.Parallel()
	var all []index.Blob
	for k := range 3 {
		var bs []goldenBlob
		for i := range 5 + k {
			raw := formattest.XOF(fmt.Sprintf("blob %d %d", k, i), 100+i*1000)
			bs = append(bs, goldenBlob{uint8(i % 2), index.CodecNone, raw, raw})
		}
		_, _, blobs := buildPack(t, bs)
		all = append(all, blobs...)
	}
	// encode sorts by (pack, offset); give it the blobs shuffled.
	shuffled := append([]index.Blob(nil), all...)
	for i := range shuffled {
		j := (i * 7) % len(shuffled)
		shuffled[i], shuffled[j] = shuffled[j], shuffled[i]
	}
	files := map[digest.Digest][]digest.Digest{}
	for i := range 4 {
		files[digest.Of([]byte{byte(i)})] = []digest.Digest{all[i].ID, all[i+1].ID, all[i].ID}
	}
	for _, tt := range []struct {
		name string
		seg  *format.Segment
	}{
		{"empty", &format.Segment{Blobs: []index.Blob{}, Files: map[digest.Digest][]digest.Digest{}}},
		{"blobs only", &format.Segment{Blobs: shuffled, Files: map[digest.Digest][]digest.Digest{}}},
		{"files only", &format.Segment{Blobs: []index.Blob{}, Files: files}},
		{"both", &format.Segment{Blobs: shuffled, Files: files}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := format.DecodeSegment(tt.seg.Encode())
			if err != nil {
				t.Fatal(err)
			}
			want := &format.Segment{Blobs: append([]index.Blob{}, tt.seg.Blobs...), Files: tt.seg.Files}
			sortBlobs(want.Blobs)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("DecodeSegment(Encode(s)) = %+v, want %+v", got, want)
			}
		})
	}
}

// sortBlobs orders blobs as Segment.Encode does, breaking ties by ID.
func sortBlobs(bs []index.Blob) {
	key := func(b index.Blob) string {
		var k [8]byte
		binary.BigEndian.PutUint64(k[:], b.Offset)
		return string(b.Pack[:]) + string(k[:]) + string(b.ID[:]) + fmt.Sprint(b.Length, b.RawLen, b.Type, b.Codec)
	}
	slices.SortFunc(bs, func(a, b index.Blob) int { return strings.Compare(key(a), key(b)) })
}

func TestFormatPackRejects(t *testing.T) {
	t.Parallel()
	data, id, _ := buildPack(t, goldenBlobs(t))
	n := len(data)
	tail := n - format.PackFooterLen - 3*format.PackRecordLen // first trailer record
	rec := func(i int) int { return tail + i*format.PackRecordLen }
	mod := func(f func(b []byte)) []byte {
		b := bytes.Clone(data)
		f(b)
		return b
	}
	u64 := func(off int, v uint64) func([]byte) {
		return func(b []byte) { binary.LittleEndian.PutUint64(b[off:], v) }
	}
	u32 := func(off int, v uint32) func([]byte) {
		return func(b []byte) { binary.LittleEndian.PutUint32(b[off:], v) }
	}
	blob1 := binary.LittleEndian.Uint64(data[rec(1)+34:])
	dataEnd := uint64(tail)
	for _, tt := range []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"magic only", []byte(format.PackMagic)},
		{"truncated by one", data[:n-1]},
		{"truncated footer", data[:n-format.PackFooterLen]},
		{"truncated trailer", append(bytes.Clone(data[:rec(2)]), data[n-format.PackFooterLen:]...)},
		{"no data", append([]byte(format.PackMagic), data[tail:]...)},
		{"bad header magic", mod(func(b []byte) { b[0] ^= 1 })},
		{"bad footer magic", mod(func(b []byte) { b[n-1] ^= 1 })},
		{"count one more", mod(u32(n-format.PackFooterLen, 4))},
		{"count one less", mod(u32(n-format.PackFooterLen, 2))},
		{"count zero", mod(u32(n-format.PackFooterLen, 0))},
		{"count huge", mod(u32(n-format.PackFooterLen, 1<<31))},
		{"count beyond limit", mod(u32(n-format.PackFooterLen, format.MaxPackBlobs+1))},
		{"offset in header", mod(u64(rec(0)+34, 0))},
		{"offset past data", mod(u64(rec(2)+34, dataEnd+1))},
		{"offset wraps", mod(u64(rec(2)+34, ^uint64(0)-5))},
		{"length past data", mod(u32(rec(2)+42, uint32(dataEnd)))},
		{"overlap", mod(u64(rec(1)+34, blob1-1))},
		{"gap", mod(u64(rec(1)+34, blob1+1))},
		{"out of order", mod(func(b []byte) {
			r0, r1 := bytes.Clone(b[rec(0):rec(1)]), bytes.Clone(b[rec(1):rec(2)])
			copy(b[rec(0):], r1)
			copy(b[rec(1):], r0)
		})},
		{"bad type", mod(func(b []byte) { b[rec(0)] = 2 })},
		{"bad codec", mod(func(b []byte) { b[rec(0)+1] = 3 })},
		{"raw length of plain blob", mod(u32(rec(0)+46, 13))},
	} {
		t.Run(tt.name, func(t *testing.T) {
			blobs, err := format.ParsePack(id, tt.data)
			if err == nil {
				t.Fatalf("ParsePack succeeded with %+v, want error", blobs)
			}
			if !errors.Is(err, format.ErrBadPack) {
				t.Errorf("ParsePack error %v, want ErrBadPack", err)
			}
		})
	}
	// An empty pack is valid.
	p := &format.PackBuilder{}
	p.Reset()
	empty, eid, _ := p.Finish()
	if blobs, err := format.ParsePack(eid, empty); err != nil || len(blobs) != 0 {
		t.Errorf("ParsePack(empty pack) = %v, %v; want no blobs", blobs, err)
	}
}

// segmentOf wraps a body as a segment, without checking it.
func segmentOf(body []byte) []byte {
	return zstdEncoder.EncodeAll(body, []byte(format.SegmentMagic))
}

func TestFormatSegmentRejects(t *testing.T) {
	t.Parallel()
	_, _, blobs := buildPack(t, goldenBlobs(t))
	good := goldenSegment(blobs).Encode()
	body, err := zstdDecoder.DecodeAll(good[len(format.SegmentMagic):], nil)
	if err != nil {
		t.Fatal(err)
	}
	// Offsets into the body of the golden segment: one pack, three blobs
	// of 39 to 41 bytes, one file of two chunks.
	const packsAt = 1
	blobsAt := packsAt + digest.Size
	filesAt := len(body) - (1 + digest.Size + 1 + 2*digest.Size)
	modBody := func(f func(b []byte) []byte) []byte { return segmentOf(f(bytes.Clone(body))) }
	set := func(at int, v byte) func([]byte) []byte {
		return func(b []byte) []byte { b[at] = v; return b }
	}
	if _, err := format.DecodeSegment(segmentOf(body)); err != nil {
		t.Fatalf("DecodeSegment(re-encoded golden body) = %v", err)
	}
	if body[blobsAt] != 3 || body[filesAt] != 1 || body[filesAt+1+digest.Size] != 2 {
		t.Fatalf("golden body layout changed: update the offsets of this test")
	}
	for _, tt := range []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"bad magic", append([]byte("CASIDX02"), good[8:]...)},
		{"magic only", []byte(format.SegmentMagic)},
		{"truncated frame", good[:len(good)-1]},
		{"not zstd", append([]byte(format.SegmentMagic), body...)},
		{"empty body", segmentOf(nil)},
		{"truncated body", segmentOf(body[:len(body)-1])},
		{"trailing byte", segmentOf(append(bytes.Clone(body), 0))},
		{"second frame", append(bytes.Clone(good), zstdEncoder.EncodeAll([]byte{0}, nil)...)},
		{"pack count too big", modBody(set(packsAt-1, 0x7f))},
		{"pack count zero", modBody(set(packsAt-1, 0))},
		{"blob count too big", modBody(set(blobsAt, 4))},
		{"blob count huge", modBody(func(b []byte) []byte {
			return append(append(bytes.Clone(b[:blobsAt]), 0xff, 0xff, 0xff, 0xff, 0x0f), b[blobsAt+1:]...)
		})},
		{"blob count overflows", modBody(func(b []byte) []byte {
			return append(append(bytes.Clone(b[:blobsAt]), bytes.Repeat([]byte{0xff}, 10)...), 0x01)
		})},
		{"pack number out of range", modBody(set(blobsAt+1, 1))},
		{"bad type", modBody(set(blobsAt+2, 2))},
		{"bad codec", modBody(set(blobsAt+3, 3))},
		{"length beyond u32", modBody(func(b []byte) []byte {
			// First blob: pack number, type, codec, id, offset 8 (one byte), length.
			at := blobsAt + 1 + 3 + digest.Size + 1
			return append(append(bytes.Clone(b[:at]), 0x80, 0x80, 0x80, 0x80, 0x10), b[at+1:]...)
		})},
		{"file count too big", modBody(set(filesAt, 2))},
		{"file count zero", modBody(set(filesAt, 0))},
		{"chunk count too big", modBody(set(filesAt+1+digest.Size, 3))},
		{"chunk count too small", modBody(set(filesAt+1+digest.Size, 1))},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s, err := format.DecodeSegment(tt.data)
			if err == nil {
				t.Fatalf("DecodeSegment succeeded with %+v, want error", s)
			}
			if !errors.Is(err, format.ErrBadSegment) {
				t.Errorf("DecodeSegment error %v, want ErrBadSegment", err)
			}
		})
	}
}

// allocs returns the bytes f allocates.
func allocs(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// segmentAllocBound is the most DecodeSegment may allocate for an input
// of n bytes: a zstd block of 4 bytes decodes to at most 128 KiB, and the
// decoded records take a small multiple of their encoded size.
func segmentAllocBound(n int) uint64 { return 4<<20 + 4*32768*uint64(n) }

// A segment whose zstd frame claims a huge content size must not make the
// decoder allocate that much.
//
// Not parallel: allocs counts what the whole process allocates, so the
// test runs before the parallel tests start.
func TestFormatSegmentBoundedAlloc(t *testing.T) {
	for _, size := range []uint32{1<<30 - 1, 1 << 30, 1<<32 - 1} {
		frame := []byte(format.SegmentMagic)
		// Magic, descriptor (4-byte content size, window descriptor
		// present), 1 MiB window, content size, one last RLE block of 1 byte.
		frame = append(frame, 0x28, 0xb5, 0x2f, 0xfd, 0x80, 0x50)
		frame = binary.LittleEndian.AppendUint32(frame, size)
		frame = append(frame, 0x0b, 0x00, 0x00, 'x')
		var err error
		n := allocs(func() { _, err = format.DecodeSegment(frame) })
		if !errors.Is(err, format.ErrBadSegment) {
			t.Errorf("content size %d: error %v, want ErrBadSegment", size, err)
		}
		if n > segmentAllocBound(len(frame)) {
			t.Errorf("content size %d: DecodeSegment of %d bytes allocated %d bytes, want at most %d", size, len(frame), n, segmentAllocBound(len(frame)))
		}
	}
}

// TestFormatDocVectors keeps docs/FORMAT.md in step with the golden files:
// every digest they pin must appear in it (cas/chunk checks chunks.json).
func TestFormatDocVectors(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile("../../docs/FORMAT.md")
	if err != nil {
		t.Fatal(err)
	}
	type hasDigest struct{ Digest digest.Digest }
	var tg struct{ Files, Trees []hasDigest }
	formattest.ReadGolden(t, filepath.Join(goldenDir, "trees.json"), &tg)
	var want []string
	for _, f := range tg.Files {
		want = append(want, f.Digest.Hex())
	}
	for _, tr := range tg.Trees {
		want = append(want, tr.Digest.Hex())
	}
	var pg packGolden
	formattest.ReadGolden(t, filepath.Join(goldenDir, "pack.json"), &pg)
	want = append(want, pg.Pack.Hex())
	for _, w := range want {
		if !bytes.Contains(doc, []byte(w)) {
			t.Errorf("docs/FORMAT.md lacks the golden value %s", w)
		}
	}
}

// zeroBomb returns a zstd frame of n zero bytes: small, and really
// decoding to n bytes.
func zeroBomb(t *testing.T, n int) []byte {
	t.Helper()
	var out bytes.Buffer
	w, err := zstd.NewWriter(&out, zstd.WithEncoderConcurrency(1))
	if err != nil {
		t.Fatal(err)
	}
	zeros := make([]byte, 1<<20)
	for range n >> 20 {
		if _, err := w.Write(zeros); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// A segment or a chunk that really inflates far past what it may hold
// fails without inflating it: a segment's body is parsed as it streams
// (zeros are no valid body past their first bytes), a chunk is decoded
// into its RawLen only.
//
// Not parallel: allocs counts what the whole process allocates.
func TestFormatBombsFailSmall(t *testing.T) {
	bomb := zeroBomb(t, 256<<20)
	seg := append([]byte(format.SegmentMagic), bomb...)
	var err error
	if n := allocs(func() { _, err = format.DecodeSegment(seg) }); n > 32<<20 || !errors.Is(err, format.ErrBadSegment) {
		t.Errorf("segment of %d bytes inflating to 256 MiB: %v, allocated %d bytes", len(seg), err, n)
	}
	b := index.Blob{ID: digest.Of(make([]byte, 64)), RawLen: 64, Codec: index.CodecZstd}
	if n := allocs(func() { _, err = format.DecodeChunk(b, bomb, nil) }); n > 32<<20 || !errors.Is(err, format.ErrBadChunk) {
		t.Errorf("chunk of RawLen 64 inflating to 256 MiB: %v, allocated %d bytes", err, n)
	}
}

// A segment listing a file with fewer than two chunks is refused: such a
// list could only stand in for the file's real one.
func TestFormatSegmentShortChunkList(t *testing.T) {
	t.Parallel()
	f := digest.Of([]byte("file"))
	for _, chunks := range [][]digest.Digest{{}, {digest.Of([]byte("other"))}} {
		data := (&format.Segment{Files: map[digest.Digest][]digest.Digest{f: chunks}}).Encode()
		if _, err := format.DecodeSegment(data); !errors.Is(err, format.ErrBadSegment) {
			t.Errorf("file listed with %d chunks: %v, want ErrBadSegment", len(chunks), err)
		}
	}
	two := []digest.Digest{digest.Of([]byte("a")), digest.Of([]byte("b"))}
	s, err := format.DecodeSegment((&format.Segment{Files: map[digest.Digest][]digest.Digest{f: two}}).Encode())
	if err != nil || len(s.Files[f]) != 2 {
		t.Errorf("file of two chunks: %v %v", s, err)
	}
}

// A segment whose body compresses far (many files of the same chunks, as
// sparse or zero-filled checkpoints make) decodes as any other: past the
// room decompression starts with, it is parsed as it streams.
func TestFormatSegmentCompressibleBody(t *testing.T) {
	t.Parallel()
	a, b := digest.Of([]byte("zeros")), digest.Of([]byte("more zeros"))
	chunks := make([]digest.Digest, 0, 2000)
	for i := range 2000 {
		chunks = append(chunks, []digest.Digest{a, b}[i%2])
	}
	files := map[digest.Digest][]digest.Digest{}
	for i := range 50 {
		files[digest.Of([]byte{byte(i)})] = chunks
	}
	data := (&format.Segment{Files: files}).Encode()
	s, err := format.DecodeSegment(data)
	if err != nil {
		t.Fatalf("DecodeSegment of %d bytes: %v", len(data), err)
	}
	if len(s.Files) != 50 || len(s.Files[digest.Of([]byte{7})]) != 2000 {
		t.Errorf("decoded %d files", len(s.Files))
	}
	if body := 50 * (32 + 2 + 2000*32); body < 2*len(data)+64<<10 {
		t.Fatalf("the body (%d bytes) fits the first room: the test no longer streams", body)
	}
}

// A pack is named by the BLAKE3 of its trailer; one written before that
// (named by the BLAKE3 of all its bytes, as the golden pack was until
// then) keeps its name; no other name, and no changed byte of the
// trailer, passes.
func TestPackNamed(t *testing.T) {
	t.Parallel()
	data, id, blobs := buildPack(t, goldenBlobs(t))
	const wholeName = "blake3:05955f05e8cf6858654fb25a58597c3089c9db532f674b9956e916ea08c9cf19" // the golden pack's name before
	old, err := digest.Parse(wholeName)
	if err != nil {
		t.Fatal(err)
	}
	if digest.Of(data) != old {
		t.Fatalf("the golden pack's bytes hash to %v, not its old name %v", digest.Of(data), old)
	}
	if !format.PackNamed(id, data) || !format.PackNamed(old, data) {
		t.Errorf("PackNamed(trailer name) = %v, PackNamed(whole name) = %v; want both true", format.PackNamed(id, data), format.PackNamed(old, data))
	}
	if format.PackNamed(digest.Of([]byte("another")), data) {
		t.Error("PackNamed accepts an unrelated name")
	}
	// A pack's data alone does not name it.
	if format.PackNamed(digest.Of(data[:len(data)-len(blobs)*format.PackRecordLen-format.PackFooterLen]), data) {
		t.Error("PackNamed accepts the BLAKE3 of the data area")
	}
	for _, off := range []int{len(data) - 1, len(data) - format.PackFooterLen - 1, len(data) - len(blobs)*format.PackRecordLen - format.PackFooterLen + 5} {
		bad := bytes.Clone(data)
		bad[off] ^= 1
		if format.PackNamed(id, bad) {
			t.Errorf("PackNamed accepts the pack with byte %d of %d flipped", off, len(data))
		}
	}
	if format.PackNamed(id, data[len(data)-3:]) {
		t.Error("PackNamed accepts 3 bytes")
	}
}
