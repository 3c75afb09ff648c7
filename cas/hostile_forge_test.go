package cas

import (
	"bytes"
	"encoding/json"
	"strconv"
	"testing"

	"github.com/cas-ml/cas/cas/format"
	"github.com/cas-ml/cas/digest"
	"github.com/cas-ml/cas/index"
	"github.com/cas-ml/cas/remote"
)

// The hostile-store kit, part one: a forger that writes objects with valid
// framing and lying contents straight into a backend, as an attacker with
// write access to a shared bucket, or to a colleague's .cas/store, could.
// It uses the package's own encoders (format.PackBuilder, format.Segment.Encode), so
// every pack and segment it writes is named by the digest of its bytes
// and decodes: only what they say is false. hostile_test.go runs every
// operation of a reader against what it forges.

// forger writes forged objects into one backend.
type forger struct {
	t  testing.TB
	be remote.Backend
}

func newForger(t testing.TB, be remote.Backend) *forger { return &forger{t: t, be: be} }

// put writes data at key, replacing whatever is there.
func (f *forger) put(key string, data []byte) {
	f.t.Helper()
	if err := f.be.Put(f.t.Context(), key, bytes.NewReader(data), int64(len(data)), remote.PutOptions{}); err != nil {
		f.t.Fatalf("forge %s: %v", key, err)
	}
}

// forgedBlob is one blob of a forged pack. ID is what the pack's trailer
// claims; stored is what the pack holds, which need not hash to ID.
type forgedBlob struct {
	id     digest.Digest
	stored []byte
	typ    uint8 // index.TypeData or index.TypeTree
	codec  uint8 // index.CodecNone unless set
	rawLen uint32
}

// pack writes a pack holding blobs, with a valid trailer and footer, under
// the digest of its bytes, and returns the blob records a segment would
// hold for it.
func (f *forger) pack(blobs ...forgedBlob) []index.Blob {
	f.t.Helper()
	var p format.PackBuilder
	for _, b := range blobs {
		raw := b.rawLen
		if raw == 0 {
			raw = uint32(len(b.stored))
		}
		p.Add(index.Blob{ID: b.id, Type: b.typ, Codec: b.codec, RawLen: raw}, b.stored)
	}
	data, id, recs := p.Finish()
	f.put(format.PackKey(id), data)
	return append([]index.Blob(nil), recs...)
}

// segment writes an index segment holding blobs and files under the
// digest of its bytes, and returns its key.
func (f *forger) segment(blobs []index.Blob, files map[digest.Digest][]digest.Digest) string {
	f.t.Helper()
	if files == nil {
		files = map[digest.Digest][]digest.Digest{}
	}
	data := (&format.Segment{Blobs: blobs, Files: files}).Encode()
	key := format.SegmentKey(digest.Of(data))
	f.put(key, data)
	return key
}

// blobs writes a pack of blobs and the segment naming it.
func (f *forger) blobs(blobs ...forgedBlob) []index.Blob {
	f.t.Helper()
	recs := f.pack(blobs...)
	f.segment(recs, nil)
	return recs
}

// data stores raw bytes honestly (their own digest, type data) and
// returns the digest.
func (f *forger) data(raw []byte) digest.Digest {
	f.t.Helper()
	d := digest.Of(raw)
	f.blobs(forgedBlob{id: d, stored: raw, typ: index.TypeData})
	return d
}

// forgedEntry is one line of a forged tree: any kind word, any name, any
// size, in the order given.
type forgedEntry struct {
	kind   string
	digest digest.Digest
	size   int64
	name   string
}

// treeBytes encodes entries in the tree format without any of Encode's
// checks: names, order, kinds and sizes are written as given.
func treeBytes(entries []forgedEntry) []byte {
	var b bytes.Buffer
	b.WriteString(format.TreeMagic)
	for _, e := range entries {
		b.WriteString(e.kind + " " + e.digest.Hex() + " " + strconv.FormatInt(e.size, 10) + " " +
			strconv.Itoa(len(e.name)) + " " + e.name + "\n")
	}
	return b.Bytes()
}

// tree stores a forged tree honestly (named by the digest of its
// encoding, type tree), so only its content lies, and returns its digest.
func (f *forger) tree(entries ...forgedEntry) digest.Digest {
	f.t.Helper()
	enc := treeBytes(entries)
	d := digest.Of(enc)
	f.blobs(forgedBlob{id: d, stored: enc, typ: index.TypeTree})
	return d
}

// json writes v, marshalled, at key.
func (f *forger) json(key string, v any) {
	f.t.Helper()
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		f.t.Fatalf("forge %s: %v", key, err)
	}
	f.put(key, b)
}

// ref writes a ref object whose JSON fields are exactly fields.
func (f *forger) ref(name string, fields map[string]any) { f.json(refPrefix+name, fields) }

// pin writes a pin object whose JSON fields are exactly fields.
func (f *forger) pin(name string, fields map[string]any) { f.json(PinPrefix+name, fields) }

// hostileRefFields returns the JSON fields of an honest ref to obj, for a case
// to change.
func hostileRefFields(name string, obj Object) map[string]any {
	m := map[string]any{"name": name, "target": obj.Digest.String(), "kind": obj.Kind.String(),
		"size": obj.Size, "time": "2026-01-02T03:04:05Z"}
	if obj.Name != "" {
		m["file"] = obj.Name
	}
	return m
}

// hostileWith returns a copy of m with the given key set (or deleted, for nil).
func hostileWith(m map[string]any, kv ...any) map[string]any {
	out := map[string]any{}
	for k, v := range m {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		k := kv[i].(string)
		if kv[i+1] == nil {
			delete(out, k)
		} else {
			out[k] = kv[i+1]
		}
	}
	return out
}
