package index

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cas-ml/cas/digest"
)

// Blob types stored in packs.
const (
	TypeData uint8 = 0 // a chunk of file content (or a whole small file)
	TypeTree uint8 = 1 // a tree encoding
)

// Codecs a blob may be stored with.
const (
	CodecNone  uint8 = 0
	CodecZstd  uint8 = 1
	CodecFloat uint8 = 2 // float byte groups (cas/format's EncodeFloat)
	// MaxCodec is the highest codec this cas reads: a pack, segment or
	// lookup run naming a higher one was written by a newer cas.
	MaxCodec = CodecFloat
)

// Blob says where a blob's stored bytes are.
type Blob struct {
	ID     digest.Digest // BLAKE3 of the raw (uncompressed) bytes
	Pack   digest.Digest
	Offset uint64 // of the stored bytes within the pack
	Length uint32 // stored length
	RawLen uint32 // length once decoded
	Codec  uint8
	Type   uint8
}

// blobValueLen is the encoded size of a Blob without its ID.
const blobValueLen = 32 + 8 + 4 + 4 + 1 + 1

func (b Blob) encodeValue() []byte {
	v := make([]byte, blobValueLen)
	copy(v, b.Pack[:])
	binary.LittleEndian.PutUint64(v[32:], b.Offset)
	binary.LittleEndian.PutUint32(v[40:], b.Length)
	binary.LittleEndian.PutUint32(v[44:], b.RawLen)
	v[48] = b.Codec
	v[49] = b.Type
	return v
}

// BlobRecordLen is the length of a Blob's record (AppendRecord).
const BlobRecordLen = digest.Size + blobValueLen

// AppendRecord appends b's record, its ID then its value, to v: a whole
// Blob in a fixed-size record, for files of blobs outside an index.
func (b Blob) AppendRecord(v []byte) []byte {
	return append(append(v, b.ID[:]...), b.encodeValue()...)
}

// ParseBlobRecord reads a record that AppendRecord wrote.
func ParseBlobRecord(v []byte) (Blob, error) {
	if len(v) != BlobRecordLen {
		return Blob{}, fmt.Errorf("bad blob record of %d bytes", len(v))
	}
	return decodeBlobValue(digest.Digest(v[:digest.Size]), v[digest.Size:])
}

func decodeBlobValue(id digest.Digest, v []byte) (Blob, error) {
	if len(v) != blobValueLen {
		return Blob{}, fmt.Errorf("blob %s: bad record of %d bytes", id.Short(), len(v))
	}
	b := Blob{ID: id, Offset: binary.LittleEndian.Uint64(v[32:]), Length: binary.LittleEndian.Uint32(v[40:]),
		RawLen: binary.LittleEndian.Uint32(v[44:]), Codec: v[48], Type: v[49]}
	copy(b.Pack[:], v)
	return b, nil
}

// StatEntry is what the stat cache remembers of a file it hashed.
type StatEntry struct {
	Name   string
	Dev    uint64
	Ino    uint64
	Size   int64
	Mtime  int64 // nanoseconds
	Ctime  int64 // nanoseconds
	Mode   uint32
	Digest digest.Digest
}

// ErrCorrupt reports an index record that cannot be decoded.
var ErrCorrupt = errors.New("corrupt record")

// Index is the local index. Implementations are safe for concurrent use
// within one process.
type Index interface {
	// Blob returns where the blob with this ID is stored.
	Blob(id digest.Digest) (Blob, bool, error)
	// AddBlobs records blobs (those of one pack, usually) and the pack,
	// replacing what was known of where they are.
	AddBlobs(pack digest.Digest, blobs []Blob) error
	// FileChunks returns the chunk IDs of a multi-chunk file. A file
	// without a record is a single chunk whose ID is the file digest.
	FileChunks(file digest.Digest) ([]digest.Digest, bool, error)
	// Files calls fn for every multi-chunk file recorded.
	Files(fn func(digest.Digest) error) error
	// AddFiles records the chunk lists of multi-chunk files.
	AddFiles(files map[digest.Digest][]digest.Digest) error
	// HasSegment reports whether the index segment was loaded.
	HasSegment(seg digest.Digest) (bool, error)
	// MarkSegment records that seg was loaded.
	MarkSegment(seg digest.Digest) error
	// HasPack reports whether the pack's blobs are recorded.
	HasPack(pack digest.Digest) (bool, error)
	// ForgetBlobs removes blobs (found damaged or lost) so that the next
	// push stores them again; their packs stay known.
	ForgetBlobs(ids []digest.Digest) error
	// MarkDamaged records copies of blobs (ID and Pack) found damaged. A
	// mark outlives Reset: a rebuild must not forget what was found.
	MarkDamaged(blobs []Blob) error
	// Damaged returns the pack of the copy of id found damaged, if any.
	Damaged(id digest.Digest) (digest.Digest, bool, error)
	// AnyDamaged reports whether any copy is marked damaged.
	AnyDamaged() (bool, error)
	// MarkRemote records that blobs and file chunk lists (by ID) were
	// learned from a remote's segments only; Remote tells. AddBlobs and
	// AddFiles, recording them from the store's own segments, clear the
	// mark. A push never counts as stored what only a remote vouches for.
	MarkRemote(ids []digest.Digest) error
	Remote(id digest.Digest) (bool, error)
	// AddRemoteBlobs records blobs learned from a remote's segments only,
	// like AddBlobs, but marks marks (their IDs, and the pack's when the
	// store's segments do not name it) as the remote's first: no blob is
	// ever recorded without its mark, even by a process killed in between
	// (the mark is what keeps a push from counting it as stored).
	AddRemoteBlobs(pack digest.Digest, blobs []Blob, marks []digest.Digest) error
	// AddRemoteFiles records chunk lists learned from a remote's segments
	// only, each marked as the remote's first.
	AddRemoteFiles(files map[digest.Digest][]digest.Digest) error
	// AnyRemote reports whether anything is marked as a remote's.
	AnyRemote() (bool, error)
	// MarkRecord records that a gc record (named by a digest of where it
	// is) was read; HasRecord tells. Like damage marks, these outlive
	// Reset: a rebuild must not make every record be read (and acted on)
	// again.
	MarkRecord(rec digest.Digest) error
	HasRecord(rec digest.Digest) (bool, error)
	// MarkStoreSegment records that seg, a segment of the store's own
	// backend (not a remote's), was loaded: MarkSegment, and a note that
	// StoreSegments lists, so a segment gone from the store can be told.
	MarkStoreSegment(seg digest.Digest) error
	// StoreSegments calls fn for every segment marked by MarkStoreSegment.
	StoreSegments(fn func(digest.Digest) error) error
	// Packs calls fn for every known pack.
	Packs(fn func(digest.Digest) error) error
	// Blobs calls fn for every known blob.
	Blobs(fn func(Blob) error) error
	// StatDir returns the stat cache of one directory of a pushed root.
	StatDir(root, dir string) (map[string]StatEntry, error)
	// PutStatDir replaces the stat cache of one directory of a pushed
	// root (no entries: forgets it), and forgets that of every directory
	// below dir that is not one of subdirs or below one: subdirs are the
	// names of dir's subdirectories now, sorted. A dir starting with a
	// NUL byte names no directory (no path holds one): it is the caller's
	// own record, and only PutStatDir of that very dir changes it.
	PutStatDir(root, dir string, entries []StatEntry, subdirs []string) error
	// Persistent is false for an in-memory index that dies with the process.
	Persistent() bool
	// Reset forgets everything (for a rebuild).
	Reset() error
	Close() error
}

func encodeStatEntries(es []StatEntry) []byte {
	// Room for every entry at the first go: a name, six varints, a digest.
	n := 0
	for _, e := range es {
		n += len(e.Name) + 6*binary.MaxVarintLen64 + digest.Size
	}
	b := make([]byte, 0, n)
	for _, e := range es {
		b = binary.AppendUvarint(b, uint64(len(e.Name)))
		b = append(b, e.Name...)
		b = binary.AppendUvarint(b, e.Dev)
		b = binary.AppendUvarint(b, e.Ino)
		b = binary.AppendVarint(b, e.Size)
		b = binary.AppendVarint(b, e.Mtime)
		b = binary.AppendVarint(b, e.Ctime)
		b = binary.AppendUvarint(b, uint64(e.Mode))
		b = append(b, e.Digest[:]...)
	}
	return b
}

func decodeStatEntries(b []byte) (map[string]StatEntry, error) {
	m := make(map[string]StatEntry)
	for len(b) > 0 {
		var e StatEntry
		n, k := binary.Uvarint(b)
		if k <= 0 || uint64(len(b)-k) < n {
			return nil, ErrCorrupt
		}
		e.Name = string(b[k : k+int(n)])
		b = b[k+int(n):]
		var vals [6]uint64
		for i := range vals {
			var v uint64
			var ok bool
			if i >= 2 && i <= 4 {
				var s int64
				s, k = binary.Varint(b)
				v, ok = uint64(s), k > 0
			} else {
				v, k = binary.Uvarint(b)
				ok = k > 0
			}
			if !ok {
				return nil, ErrCorrupt
			}
			vals[i] = v
			b = b[k:]
		}
		if len(b) < digest.Size {
			return nil, ErrCorrupt
		}
		e.Dev, e.Ino, e.Size, e.Mtime, e.Ctime, e.Mode = vals[0], vals[1], int64(vals[2]), int64(vals[3]), int64(vals[4]), uint32(vals[5])
		copy(e.Digest[:], b)
		b = b[digest.Size:]
		m[e.Name] = e
	}
	return m, nil
}
