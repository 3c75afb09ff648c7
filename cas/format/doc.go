// Package format holds the codecs of what the store keeps, byte for byte
// as docs/FORMAT.md specifies them: packs (PackBuilder, ParsePack,
// ParsePackTrailer), index segments (Segment, DecodeSegment; ScanSegment and
// SegmentWriter for one too large to hold), the
// canonical tree encoding whose BLAKE3 is a directory's digest (Tree,
// ParseTree), the chunk codec (EncodeChunk, DecodeChunk; EncodeFloat and
// DecodeFloat for tensors of floats, codec 2) and the backend
// keys these objects are stored under (PackKey, SegmentKey).
//
// Every decoder here takes its input as hostile: it bounds what it
// allocates, rejects anything its encoder would not write byte for byte,
// and reports it with ErrBadPack, ErrBadSegment, ErrBadTree, ErrBadName or
// ErrBadChunk. The golden vectors in testdata/golden and the fuzzers pin
// the formats; a change to either is a change of format.
//
// It turns values into bytes and back, nothing else: it never reads or
// writes a backend, knows nothing of a repository or its index cache, and
// never prints. It imports digest and, of this module, only index: the
// blob location record it encodes in pack trailers and segments is
// index.Blob (with index's Type and Codec constants), the very record the
// index keeps. That record belongs with the index, which sits below the
// store and must not import it; format, inside the store, points down at
// it. Nothing else of index is used here.
package format
