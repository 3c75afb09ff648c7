package cas

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cas-ml/cas/cas/format"
	"github.com/cas-ml/cas/cas/gc"
	"github.com/cas-ml/cas/digest"
	"github.com/cas-ml/cas/index"
	"github.com/cas-ml/cas/remote"
)

// The hostile-store kit, part three: the forgeries. Each one is run in a
// local store and in a bucket (hostile_test.go).

// promised is a file digest whose bytes no store holds.
var promised = digest.Of([]byte("the bytes a lying index promises, stored nowhere\n"))

// evilRef writes refs/evil pointing at obj and returns its spec and names.
func evilRef(f *forger, obj Object, more ...string) (string, []string) {
	f.ref("evil", hostileRefFields("evil", obj))
	return "evil", append([]string{"evil", obj.Digest.Short()}, more...)
}

// refWith writes refs/evil as an honest ref to obj with fields changed.
func refWith(f *forger, obj Object, kv ...any) (string, []string) {
	f.ref("evil", hostileWith(hostileRefFields("evil", obj), kv...))
	return "evil", []string{"evil"}
}

// pinWith writes pins/evil as an honest pin of obj with fields changed.
func pinWith(f *forger, obj Object, kv ...any) (string, []string) {
	f.pin("evil", hostileWith(hostileRefFields("evil", obj), kv...))
	return PinPrefix + "evil", []string{"evil"}
}

// treeRef forges a tree of entries and points refs/evil at it.
func treeRef(f *forger, entries ...forgedEntry) (string, []string) {
	d := f.tree(entries...)
	var size int64
	for _, e := range entries {
		size += e.size
	}
	return evilRef(f, Object{Digest: d, Kind: KindDir, Size: size})
}

// fileEntry is a tree line for obj under name.
func fileEntry(name string, obj Object) forgedEntry {
	return forgedEntry{kind: "file", digest: obj.Digest, size: obj.Size, name: name}
}

// rawRef writes refs/evil with exactly data.
func rawRef(f *forger, data []byte) (string, []string) {
	f.put(refPrefix+"evil", data)
	return "evil", []string{"evil"}
}

// aPack returns one pack of refs/good.
func (w *hostileWorld) aPack() digest.Digest { return gc.SortedDigests(w.goodPacks)[0] }

// gcAfter runs a real gc, without grace, and checks refs/good again.
func gcAfter(c hostileCase) func(w *hostileWorld) {
	return func(w *hostileWorld) {
		_ = hostileDo(w.t, "gc", func() error {
			_, err := w.r.GC(w.t.Context(), w.forged, GCOptions{Grace: NoGrace})
			if err != nil && !isDamage(err) && !strings.Contains(err.Error(), "gc/") {
				w.t.Errorf("gc: %v; want it done, or an error naming the bad record", err)
			}
			return nil
		})
		w.checkGood(c, "after a gc")
	}
}

func hostileCases() []hostileCase {
	cases := []hostileCase{
		// Refs: the file, kind, target, size and name fields, and the
		// object itself.
		{name: "ref/file=../x", forge: func(w *hostileWorld, f *forger) (string, []string) {
			return refWith(f, w.a, "file", "../x")
		}},
		{name: "ref/file=../../../outside/x", forge: func(w *hostileWorld, f *forger) (string, []string) {
			return refWith(f, w.a, "file", "../../../outside/x")
		}},
		{name: "ref/file=..", forge: func(w *hostileWorld, f *forger) (string, []string) {
			return refWith(f, w.a, "file", "..")
		}},
		{name: "ref/file=.", forge: func(w *hostileWorld, f *forger) (string, []string) {
			return refWith(f, w.a, "file", ".")
		}},
		{name: "ref/file=a/b", forge: func(w *hostileWorld, f *forger) (string, []string) {
			return refWith(f, w.a, "file", "a/b")
		}},
		{name: "ref/file=/abs", forge: func(w *hostileWorld, f *forger) (string, []string) {
			return refWith(f, w.a, "file", "/abs")
		}},
		{name: "ref/file=NUL", forge: func(w *hostileWorld, f *forger) (string, []string) {
			return refWith(f, w.a, "file", "a\x00b")
		}},
		{name: "ref/file=.cas", mayPass: true, forge: func(w *hostileWorld, f *forger) (string, []string) {
			return refWith(f, w.a, "file", ".cas")
		}},
		{name: "ref/file=1MiB", mayPass: true, anyErr: true, forge: func(w *hostileWorld, f *forger) (string, []string) {
			return refWith(f, w.a, "file", strings.Repeat("n", 1<<20))
		}},
		{name: "ref/kind=link", forge: func(w *hostileWorld, f *forger) (string, []string) {
			target := []byte("../../../outside/x")
			d := f.data(target)
			return refWith(f, Object{Digest: d, Kind: KindLink, Size: int64(len(target)), Name: "l"})
		}},
		{name: "ref/kind=link,size=-1", forge: func(w *hostileWorld, f *forger) (string, []string) {
			target := []byte("../../../outside/x")
			d := f.data(target)
			return refWith(f, Object{Digest: d, Kind: KindLink, Size: int64(len(target)), Name: "l"}, "size", -1)
		}},
		{name: "ref/kind=unknown", forge: func(w *hostileWorld, f *forger) (string, []string) {
			return refWith(f, w.a, "kind", "blob")
		}},
		{name: "ref/kind=missing", forge: func(w *hostileWorld, f *forger) (string, []string) {
			return refWith(f, w.a, "kind", nil)
		}},
		{name: "ref/kind=dir,target=file", forge: func(w *hostileWorld, f *forger) (string, []string) {
			return refWith(f, w.a, "kind", "dir", "file", nil)
		}},
		{name: "ref/target=not-a-digest", forge: func(w *hostileWorld, f *forger) (string, []string) {
			return refWith(f, w.a, "target", "blake3:zzzz")
		}},
		{name: "ref/target=missing", forge: func(w *hostileWorld, f *forger) (string, []string) {
			return refWith(f, w.a, "target", nil)
		}},
		{name: "ref/target=absent-object", forge: func(w *hostileWorld, f *forger) (string, []string) {
			return refWith(f, w.a, "target", promised.String())
		}},
		{name: "ref/size=-1", forge: func(w *hostileWorld, f *forger) (string, []string) {
			return refWith(f, w.a, "size", -1)
		}},
		{name: "ref/size=huge", forge: func(w *hostileWorld, f *forger) (string, []string) {
			return refWith(f, w.a, "size", int64(1)<<62)
		}},
		{name: "ref/size=short", forge: func(w *hostileWorld, f *forger) (string, []string) {
			return refWith(f, w.a, "size", w.a.Size-1)
		}},
		{name: "ref/name=other", mayPass: true, forge: func(w *hostileWorld, f *forger) (string, []string) {
			return refWith(f, w.a, "name", "good")
		}},
		{name: "ref/previous=not-digests", forge: func(w *hostileWorld, f *forger) (string, []string) {
			return refWith(f, w.a, "previous", []string{"zzz"})
		}},
		{name: "ref/previous=huge", mayPass: true, forge: func(w *hostileWorld, f *forger) (string, []string) {
			prev := make([]string, 20000)
			for i := range prev {
				prev[i] = digest.Of([]byte{byte(i), byte(i >> 8)}).String()
			}
			return refWith(f, w.a, "previous", prev)
		}},
		{name: "ref/json=invalid", forge: func(w *hostileWorld, f *forger) (string, []string) {
			return rawRef(f, []byte(`{"name": "evil", "target": `))
		}},
		{name: "ref/json=empty", forge: func(w *hostileWorld, f *forger) (string, []string) {
			return rawRef(f, nil)
		}},
		{name: "ref/json=null", forge: func(w *hostileWorld, f *forger) (string, []string) {
			return rawRef(f, []byte("null"))
		}},
		{name: "ref/json=array", forge: func(w *hostileWorld, f *forger) (string, []string) {
			return rawRef(f, []byte(`["good"]`))
		}},
		{name: "ref/key=not-a-ref-name", forge: func(w *hostileWorld, f *forger) (string, []string) {
			b, _ := json.Marshal(hostileRefFields("-bad name", w.good))
			f.put(refPrefix+"-bad name", b)
			return "", []string{"-bad name"}
		}},
		{name: "ref/key=hex-prefix", forge: func(w *hostileWorld, f *forger) (string, []string) {
			b, _ := json.Marshal(hostileRefFields("deadbeef", w.a))
			f.put(refPrefix+"deadbeef", b)
			return "", []string{"deadbeef"}
		}},
		{name: "ref/directory", where: "local", mayPass: true, forge: func(w *hostileWorld, f *forger) (string, []string) {
			b, _ := json.Marshal(hostileRefFields("evil/inner", w.a))
			f.put(refPrefix+"evil/inner", b)
			if err := os.MkdirAll(filepath.Join(w.casDir, storeDir, "refs", "emptydir"), 0o755); err != nil {
				w.t.Fatal(err)
			}
			return "evil", []string{"evil"}
		}},
		{name: "ref/unreadable", where: "local", forge: func(w *hostileWorld, f *forger) (string, []string) {
			if os.Geteuid() == 0 {
				w.t.Skip("root reads a file of mode 000; ref/json=invalid covers an unreadable ref")
			}
			spec, names := refWith(f, w.a)
			if err := os.Chmod(filepath.Join(w.casDir, storeDir, "refs", "evil"), 0); err != nil {
				w.t.Fatal(err)
			}
			return spec, names
		}},

		// Pins: the same fields, read through resolvePin.
		{name: "pin/file=../x", forge: func(w *hostileWorld, f *forger) (string, []string) {
			return pinWith(f, w.a, "file", "../x")
		}},
		{name: "pin/file=../../../outside/x", forge: func(w *hostileWorld, f *forger) (string, []string) {
			return pinWith(f, w.a, "file", "../../../outside/x")
		}},
		{name: "pin/file=a/b", forge: func(w *hostileWorld, f *forger) (string, []string) {
			return pinWith(f, w.a, "file", "a/b")
		}},
		{name: "pin/kind=link,size=-1", forge: func(w *hostileWorld, f *forger) (string, []string) {
			target := []byte("../../../outside/x")
			d := f.data(target)
			return pinWith(f, Object{Digest: d, Kind: KindLink, Size: -1, Name: "l"})
		}},
		{name: "pin/kind=unknown", forge: func(w *hostileWorld, f *forger) (string, []string) {
			return pinWith(f, w.a, "kind", "socket")
		}},
		{name: "pin/target=not-a-digest", forge: func(w *hostileWorld, f *forger) (string, []string) {
			return pinWith(f, w.a, "target", "0123")
		}},
		{name: "pin/name=other", mayPass: true, forge: func(w *hostileWorld, f *forger) (string, []string) {
			return pinWith(f, w.a, "name", "goodpin")
		}},
		{name: "pin/roots=kind-lies", mayPass: true, forge: func(w *hostileWorld, f *forger) (string, []string) {
			return pinWith(f, w.a, "roots", []map[string]any{{"digest": w.a.Digest.String(), "kind": "dir", "size": 1}})
		}},
		{name: "pin/json=invalid", forge: func(w *hostileWorld, f *forger) (string, []string) {
			f.put(PinPrefix+"evil", []byte("{{{"))
			return PinPrefix + "evil", []string{"evil"}
		}},

		// Trees: names, order, kinds, sizes, targets.
		{name: "tree/name=..", forge: func(w *hostileWorld, f *forger) (string, []string) {
			return treeRef(f, fileEntry("..", w.a))
		}},
		{name: "tree/dir=..", forge: func(w *hostileWorld, f *forger) (string, []string) {
			sub := f.tree(fileEntry("x", w.a))
			return treeRef(f, forgedEntry{kind: "dir", digest: sub, size: w.a.Size, name: ".."})
		}},
		{name: "tree/name=.", forge: func(w *hostileWorld, f *forger) (string, []string) {
			return treeRef(f, fileEntry(".", w.a))
		}},
		{name: "tree/name=../x", forge: func(w *hostileWorld, f *forger) (string, []string) {
			return treeRef(f, fileEntry("../x", w.a))
		}},
		{name: "tree/name=a/b", forge: func(w *hostileWorld, f *forger) (string, []string) {
			return treeRef(f, fileEntry("a/b", w.a))
		}},
		{name: "tree/name=/abs", forge: func(w *hostileWorld, f *forger) (string, []string) {
			return treeRef(f, fileEntry("/abs", w.a))
		}},
		{name: "tree/name=empty", forge: func(w *hostileWorld, f *forger) (string, []string) {
			return treeRef(f, fileEntry("", w.a))
		}},
		{name: "tree/name=NUL", forge: func(w *hostileWorld, f *forger) (string, []string) {
			return treeRef(f, fileEntry("x\x00y", w.a))
		}},
		{name: "tree/name=300-bytes", mayPass: true, anyErr: true, forge: func(w *hostileWorld, f *forger) (string, []string) {
			return treeRef(f, fileEntry(strings.Repeat("n", 300), w.a))
		}},
		{name: "tree/.cas", mayPass: true, forge: func(w *hostileWorld, f *forger) (string, []string) {
			return dotCasTree(w, f)
		}},
		{name: "tree/unsorted", forge: func(w *hostileWorld, f *forger) (string, []string) {
			return treeRef(f, fileEntry("b", w.a), fileEntry("a", w.c))
		}},
		{name: "tree/duplicate", forge: func(w *hostileWorld, f *forger) (string, []string) {
			return treeRef(f, fileEntry("a", w.a), fileEntry("a", w.c))
		}},
		{name: "tree/kind=blob", forge: func(w *hostileWorld, f *forger) (string, []string) {
			return treeRef(f, forgedEntry{kind: "blob", digest: w.a.Digest, size: w.a.Size, name: "a"})
		}},
		{name: "tree/kind=dir,target=file", forge: func(w *hostileWorld, f *forger) (string, []string) {
			return treeRef(f, forgedEntry{kind: "dir", digest: w.a.Digest, size: w.a.Size, name: "d"})
		}},
		{name: "tree/file-size=more", forge: func(w *hostileWorld, f *forger) (string, []string) {
			return treeRef(f, forgedEntry{kind: "file", digest: w.a.Digest, size: w.a.Size + 1, name: "a"})
		}},
		{name: "tree/file-size=less", forge: func(w *hostileWorld, f *forger) (string, []string) {
			return treeRef(f, forgedEntry{kind: "file", digest: w.a.Digest, size: w.a.Size - 1, name: "a"})
		}},
		{name: "tree/file-size=second-entry-lies", forge: func(w *hostileWorld, f *forger) (string, []string) {
			return treeRef(f, fileEntry("a", w.a), forgedEntry{kind: "file", digest: w.a.Digest, size: w.a.Size + 1, name: "b"})
		}},
		{name: "tree/big-size=second-entry-lies", forge: func(w *hostileWorld, f *forger) (string, []string) {
			return treeRef(f, fileEntry("a", w.big), forgedEntry{kind: "file", digest: w.big.Digest, size: w.big.Size - 1, name: "b"})
		}},
		{name: "tree/dir-size=second-entry-lies", forge: func(w *hostileWorld, f *forger) (string, []string) {
			sub := f.tree(fileEntry("a", w.a))
			return treeRef(f, forgedEntry{kind: "dir", digest: sub, size: w.a.Size, name: "s1"},
				forgedEntry{kind: "dir", digest: sub, size: w.a.Size + 1, name: "s2"})
		}},
		{name: "tree/dir-size=wrong", forge: func(w *hostileWorld, f *forger) (string, []string) {
			sub := f.tree(fileEntry("a", w.a))
			return treeRef(f, forgedEntry{kind: "dir", digest: sub, size: w.a.Size + 1000, name: "sub"})
		}},
		{name: "tree/entry=absent", forge: func(w *hostileWorld, f *forger) (string, []string) {
			return treeRef(f, forgedEntry{kind: "file", digest: promised, size: 10, name: "f"})
		}},
		{name: "tree/link=escaping", mayPass: true, forge: func(w *hostileWorld, f *forger) (string, []string) {
			return escapingLink(w, f)
		}, after: linkThenDir},
		{name: "tree/link=NUL", mayPass: true, anyErr: true, forge: func(w *hostileWorld, f *forger) (string, []string) {
			target := []byte("a\x00b")
			return treeRef(f, forgedEntry{kind: "link", digest: f.data(target), size: int64(len(target)), name: "l"})
		}},
		{name: "tree/link=2MiB", forge: func(w *hostileWorld, f *forger) (string, []string) {
			target := []byte(strings.Repeat("t/", 1<<20))
			return treeRef(f, forgedEntry{kind: "link", digest: f.data(target), size: int64(len(target)), name: "l"})
		}},

		// Index segments that lie about where a file's bytes are.
		{name: "segment/one-chunk-of-other-bytes", forge: func(w *hostileWorld, f *forger) (string, []string) {
			f.segment(nil, map[digest.Digest][]digest.Digest{promised: {w.a.Digest}})
			return evilRef(f, Object{Digest: promised, Kind: KindFile, Size: w.a.Size, Name: "f.txt"})
		}},
		{name: "segment/one-chunk-of-other-bytes-in-tree", forge: func(w *hostileWorld, f *forger) (string, []string) {
			f.segment(nil, map[digest.Digest][]digest.Digest{promised: {w.a.Digest}})
			spec, names := treeRef(f, forgedEntry{kind: "file", digest: promised, size: w.a.Size, name: "f.txt"})
			return spec, append(names, promised.Short())
		}},
		{name: "segment/chunks-of-other-bytes", forge: func(w *hostileWorld, f *forger) (string, []string) {
			f.segment(nil, map[digest.Digest][]digest.Digest{promised: {w.a.Digest, w.c.Digest}})
			return evilRef(f, Object{Digest: promised, Kind: KindFile, Size: w.a.Size + w.c.Size, Name: "f.txt"})
		}},
		{name: "segment/chunk-absent", forge: func(w *hostileWorld, f *forger) (string, []string) {
			f.segment(nil, map[digest.Digest][]digest.Digest{promised: {w.a.Digest, digest.Of([]byte("absent"))}})
			return evilRef(f, Object{Digest: promised, Kind: KindFile, Size: w.a.Size + 6, Name: "f.txt"})
		}},
		{name: "segment/pack-absent", forge: func(w *hostileWorld, f *forger) (string, []string) {
			f.segment([]index.Blob{{ID: promised, Pack: digest.Of([]byte("no such pack")), Offset: 8, Length: 10, RawLen: 10}}, nil)
			return evilRef(f, Object{Digest: promised, Kind: KindFile, Size: 10, Name: "f.txt"})
		}},
		{name: "segment/offset-beyond-pack", forge: func(w *hostileWorld, f *forger) (string, []string) {
			f.segment([]index.Blob{{ID: promised, Pack: w.aPack(), Offset: 1 << 40, Length: 10, RawLen: 10}}, nil)
			return evilRef(f, Object{Digest: promised, Kind: KindFile, Size: 10, Name: "f.txt"})
		}},
		{name: "segment/length-beyond-pack", forge: func(w *hostileWorld, f *forger) (string, []string) {
			f.segment([]index.Blob{{ID: promised, Pack: w.aPack(), Offset: 8, Length: 32 << 20, RawLen: 32 << 20}}, nil)
			return evilRef(f, Object{Digest: promised, Kind: KindFile, Size: 32 << 20, Name: "f.txt"})
		}},
		{name: "segment/raw-length-lies", forge: func(w *hostileWorld, f *forger) (string, []string) {
			recs := f.pack(forgedBlob{id: promised, stored: []byte("0123456789"), codec: index.CodecNone})
			recs[0].RawLen = 32 << 20
			recs[0].Codec = index.CodecZstd
			f.segment(recs, nil)
			return evilRef(f, Object{Digest: promised, Kind: KindFile, Size: 32 << 20, Name: "f.txt"})
		}},
		{name: "segment/raw-length-agrees-with-ref", forge: func(w *hostileWorld, f *forger) (string, []string) {
			// An honest pack; only the segment and the ref say 5 bytes more.
			b := []byte("ten bytes!")
			recs := f.pack(forgedBlob{id: digest.Of(b), stored: b})
			recs[0].RawLen += 5
			f.segment(recs, nil)
			return evilRef(f, Object{Digest: digest.Of(b), Kind: KindFile, Size: int64(len(b)) + 5, Name: "f.txt"})
		}},
		{name: "segment/type=tree-for-data", forge: func(w *hostileWorld, f *forger) (string, []string) {
			b := []byte("data, declared a tree\n")
			d := digest.Of(b)
			f.blobs(forgedBlob{id: d, stored: b, typ: index.TypeTree})
			return evilRef(f, Object{Digest: d, Kind: KindDir, Size: int64(len(b))})
		}},
		{name: "segment/contradicts-a-chunk", goodMayFail: true, forge: func(w *hostileWorld, f *forger) (string, []string) {
			f.blobs(forgedBlob{id: w.a.Digest, stored: []byte(strings.Repeat("?", int(w.a.Size)))})
			return "", []string{w.a.Digest.Short()}
		}},
		{name: "segment/contradicts-a-file", goodMayFail: true, forge: func(w *hostileWorld, f *forger) (string, []string) {
			// One chunk of other bytes, as long as big.bin: the sizes add up.
			other := f.data(pseudoRandom(int(w.big.Size), 78))
			f.segment(nil, map[digest.Digest][]digest.Digest{w.big.Digest: {other}})
			return "", []string{w.big.Digest.Short()}
		}},
		{name: "segment/contradicts-a-file-order", goodMayFail: true, forge: func(w *hostileWorld, f *forger) (string, []string) {
			rev := append([]digest.Digest(nil), w.bigChunks...)
			rev[0], rev[len(rev)-1] = rev[len(rev)-1], rev[0]
			f.segment(nil, map[digest.Digest][]digest.Digest{w.big.Digest: rev})
			return "", []string{w.big.Digest.Short()}
		}},

		// Packs whose blobs lie.
		{name: "pack/bytes-not-the-id", forge: func(w *hostileWorld, f *forger) (string, []string) {
			f.blobs(forgedBlob{id: promised, stored: []byte("garbage, not the promised bytes")})
			return evilRef(f, Object{Digest: promised, Kind: KindFile, Size: 31, Name: "f.txt"})
		}},
		{name: "pack/other-valid-data-under-id", forge: func(w *hostileWorld, f *forger) (string, []string) {
			f.blobs(forgedBlob{id: promised, stored: w.aData})
			return evilRef(f, Object{Digest: promised, Kind: KindFile, Size: w.a.Size, Name: "f.txt"})
		}},
		{name: "pack/zstd-garbage", forge: func(w *hostileWorld, f *forger) (string, []string) {
			f.blobs(forgedBlob{id: promised, stored: []byte("\x28\xb5\x2f\xfdnot zstd at all"), codec: index.CodecZstd, rawLen: 100})
			return evilRef(f, Object{Digest: promised, Kind: KindFile, Size: 100, Name: "f.txt"})
		}},
		{name: "pack/tree-of-other-bytes", forge: func(w *hostileWorld, f *forger) (string, []string) {
			claimed := digest.Of(treeBytes([]forgedEntry{fileEntry("a.txt", w.a)}))
			f.blobs(forgedBlob{id: claimed, stored: treeBytes([]forgedEntry{fileEntry("b.txt", w.c)}), typ: index.TypeTree})
			return evilRef(f, Object{Digest: claimed, Kind: KindDir, Size: w.a.Size})
		}},
		{name: "pack/not-a-pack", forge: func(w *hostileWorld, f *forger) (string, []string) {
			b := []byte("CASPACK1 and nothing a pack needs")
			f.put(format.PackKey(digest.Of(b)), b)
			return "", []string{digest.Of(b).Short()}
		}},
		{name: "pack/name-not-its-bytes", forge: func(w *hostileWorld, f *forger) (string, []string) {
			var p format.PackBuilder
			p.Add(index.Blob{ID: promised, RawLen: 4}, []byte("abcd"))
			data, _, _ := p.Finish()
			f.put(format.PackKey(digest.Of([]byte("another name"))), data)
			return "", nil
		}},

		{name: "pack/renamed-with-honest-blob", mayPass: true, forge: func(w *hostileWorld, f *forger) (string, []string) {
			// Bytes that hash to the blob's ID, in a pack whose key is not
			// the digest of the pack: reading the blob is safe, copying the
			// pack into a store must refuse it.
			b := []byte("honest bytes in a renamed pack\n")
			var p format.PackBuilder
			p.Add(index.Blob{ID: digest.Of(b), Type: index.TypeData, RawLen: uint32(len(b))}, b)
			data, _, recs := p.Finish()
			other := digest.Of([]byte("the name of another pack"))
			f.put(format.PackKey(other), data)
			recs[0].Pack = other
			f.segment(recs, nil)
			return evilRef(f, Object{Digest: digest.Of(b), Kind: KindFile, Size: int64(len(b)), Name: "f.txt"})
		}},
		{name: "tree/deep", mayPass: true, anyErr: true, forge: func(w *hostileWorld, f *forger) (string, []string) {
			// 30 levels of 200-byte names: deeper than PATH_MAX allows.
			enc := treeBytes([]forgedEntry{fileEntry("leaf", w.a)})
			var trees []forgedBlob
			for i := range 30 {
				trees = append(trees, forgedBlob{id: digest.Of(enc), stored: enc, typ: index.TypeTree})
				name := strings.Repeat(string(rune('a'+i%26)), 200)
				enc = treeBytes([]forgedEntry{{kind: "dir", digest: digest.Of(enc), size: w.a.Size, name: name}})
			}
			trees = append(trees, forgedBlob{id: digest.Of(enc), stored: enc, typ: index.TypeTree})
			f.blobs(trees...) // one pack and one segment for all
			return evilRef(f, Object{Digest: trees[len(trees)-1].id, Kind: KindDir, Size: w.a.Size})
		}},
		{name: "ref/size=0", forge: func(w *hostileWorld, f *forger) (string, []string) {
			return refWith(f, w.a, "size", 0)
		}},

		// Honest data lost or damaged under refs/good: reported, never
		// restored wrong, and repaired by pushing the source again.
		{name: "pack/deleted", where: "local", goodMayFail: true, after: repushSource, forge: func(w *hostileWorld, f *forger) (string, []string) {
			if err := f.be.Delete(w.t.Context(), format.PackKey(w.aPack())); err != nil {
				w.t.Fatal(err)
			}
			return "good", []string{"good"}
		}},
		{name: "pack/one-byte-flipped", where: "local", goodMayFail: true, after: repushSource, forge: func(w *hostileWorld, f *forger) (string, []string) {
			data, err := remote.ReadAll(w.t.Context(), f.be, format.PackKey(w.aPack()))
			if err != nil {
				w.t.Fatal(err)
			}
			data[len(format.PackMagic)+1] ^= 0x40 // inside the first blob
			f.put(format.PackKey(w.aPack()), data)
			return "good", []string{"good"}
		}},

		// Foreign and damaged index segments: the store stays usable.
		{name: "segment/foreign-CASIDX01garbage", forge: func(w *hostileWorld, f *forger) (string, []string) {
			b := []byte("CASIDX01garbage")
			key := format.SegmentKey(digest.Of(b))
			f.put(key, b)
			return "", []string{key, digest.Of(b).Short()}
		}},
		{name: "segment/foreign-under-other-name", forge: func(w *hostileWorld, f *forger) (string, []string) {
			key := format.SegmentKey(digest.Of([]byte("a name")))
			f.put(key, []byte("CASIDX01garbage"))
			return "", []string{key}
		}},
		{name: "segment/foreign-non-hex-name", forge: func(w *hostileWorld, f *forger) (string, []string) {
			f.put(format.SegmentPrefix+"CASIDX01garbage", []byte("CASIDX01garbage"))
			return "", nil
		}},
		{name: "segment/valid-under-other-name", forge: func(w *hostileWorld, f *forger) (string, []string) {
			b := (&format.Segment{Files: map[digest.Digest][]digest.Digest{promised: {w.a.Digest}}}).Encode()
			key := format.SegmentKey(digest.Of([]byte("not its digest")))
			f.put(key, b)
			return "", []string{key}
		}},
		{name: "segment/truncated", forge: func(w *hostileWorld, f *forger) (string, []string) {
			b := (&format.Segment{Files: map[digest.Digest][]digest.Digest{promised: {w.a.Digest, w.c.Digest}}}).Encode()
			b = b[:len(b)-3]
			key := format.SegmentKey(digest.Of(b))
			f.put(key, b)
			return "", []string{key}
		}},
		{name: "segment/empty", forge: func(w *hostileWorld, f *forger) (string, []string) {
			key := format.SegmentKey(digest.Of(nil))
			f.put(key, nil)
			return "", []string{key}
		}},
	}

	// gc records: garbage, and lies about what is condemned or deleted.
	old := "2000-01-01T00:00:00Z"
	gcRecord := func(name, key string, v any) hostileCase {
		c := hostileCase{name: name}
		c.forge = func(w *hostileWorld, f *forger) (string, []string) {
			if b, ok := v.([]byte); ok {
				f.put(key, b)
			} else {
				f.json(key, v)
			}
			return "", []string{key}
		}
		c.after = func(w *hostileWorld) { gcAfter(c)(w) }
		return c
	}
	id := "20000101T000000.000Z-0badc0de"
	cases = append(cases,
		gcRecord("gc/plan=invalid-json", gc.PlansPrefix+id, []byte("{\"packs\": [")),
		gcRecord("gc/plan=not-digests", gc.PlansPrefix+id, map[string]any{"id": id, "created": old, "packs": []string{"zz"}}),
		gcRecord("gc/keep=invalid-json", gc.KeepPrefix+id, []byte("]")),
		gcRecord("gc/done=invalid-json", gc.DonePrefix+id, []byte("\x00\x01")),
		gcRecord("gc/sweep=garbage", gc.SweepPrefix+id, []byte("garbage")),
	)
	// A plan, long due, that condemns refs/good's packs; and a record of
	// a sweep that claims to have deleted them.
	for _, kind := range []string{"plan", "done"} {
		c := hostileCase{name: "gc/" + kind + "=condemns-good"}
		c.forge = func(w *hostileWorld, f *forger) (string, []string) {
			var packs []string
			for _, p := range gc.SortedDigests(w.goodPacks) {
				packs = append(packs, p.String())
			}
			key := gc.PlansPrefix + id
			if kind == "done" {
				key = gc.DonePrefix + id
			}
			f.json(key, map[string]any{"id": id, "created": old, "packs": packs, "bytes": 1})
			return "", []string{key}
		}
		c.after = func(w *hostileWorld) { gcAfter(c)(w) }
		cases = append(cases, c)
	}
	return cases
}

// repushSource pushes refs/good's source again, as a user whose restore
// failed would, and checks that refs/good then restores byte for byte.
func repushSource(w *hostileWorld) {
	t := w.t
	ctx := t.Context()
	err := hostileDo(t, "push the source again", func() error {
		res, err := w.r.Push(ctx, []string{filepath.Join(w.root, "src")}, PushOptions{})
		if err != nil {
			return err
		}
		if res.Digest != w.good.Digest {
			t.Errorf("push the source again: digest %s, want %s", res.Digest.Short(), w.good.Digest.Short())
		}
		_, err = w.r.SetRef(ctx, "good", w.good)
		return err
	})
	if err != nil {
		t.Errorf("push the source again: %v", err)
		return
	}
	w.checkGood(hostileCase{}, "after pushing the source again")
	_ = hostileDo(t, "verify after pushing the source again", func() error {
		rep, err := w.r.Verify(ctx, &w.good, "good", nil)
		switch {
		case err != nil:
			t.Errorf("verify good after pushing the source again: %v", err)
		case !rep.OK():
			t.Errorf("verify good after pushing the source again: %+v; want it whole", rep.Problems)
		}
		return nil
	})
}

// dotCasTree forges a tree holding .cas/store/refs/good (a ref to a.txt
// named ../x) and .cas/config, and points refs/evil at it.
func dotCasTree(w *hostileWorld, f *forger) (string, []string) {
	refJSON, _ := json.Marshal(hostileRefFields("good", Object{Digest: w.a.Digest, Kind: KindFile, Size: w.a.Size, Name: "../x"}))
	refObj := Object{Digest: f.data(refJSON), Kind: KindFile, Size: int64(len(refJSON))}
	cfg := []byte("{}\n")
	cfgObj := Object{Digest: f.data(cfg), Kind: KindFile, Size: int64(len(cfg))}
	refs := f.tree(fileEntry("evil2", refObj), fileEntry("good", refObj))
	store := f.tree(forgedEntry{kind: "dir", digest: refs, size: 2 * refObj.Size, name: "refs"})
	dot := f.tree(fileEntry("config", cfgObj), forgedEntry{kind: "dir", digest: store, size: 2 * refObj.Size, name: "store"})
	return treeRef(f, forgedEntry{kind: "dir", digest: dot, size: 2*refObj.Size + cfgObj.Size, name: ".cas"}, fileEntry("data.txt", w.a))
}

// escapingLink forges a tree whose link l points out of DEST.
func escapingLink(w *hostileWorld, f *forger) (string, []string) {
	target := []byte("../../../outside")
	return treeRef(f, forgedEntry{kind: "link", digest: f.data(target), size: int64(len(target)), name: "l"})
}

// linkThenDir restores the escaping link, then, with Force into the same
// DEST, a tree holding a directory l with a file x: the second restore
// must replace the link, not write through it into root/outside/x.
func linkThenDir(w *hostileWorld) {
	t := w.t
	ctx := t.Context()
	f := newForger(t, w.forged)
	spec, _ := escapingLink(w, f)
	sub := f.tree(fileEntry("x", w.a))
	d := f.tree(forgedEntry{kind: "dir", digest: sub, size: w.a.Size, name: "l"})
	f.ref("evil-dir", hostileRefFields("evil-dir", Object{Digest: d, Kind: KindDir, Size: w.a.Size}))
	if err := w.r.SyncIndex(ctx); err != nil {
		t.Fatal(err)
	}
	if w.bucket != nil {
		if err := w.r.UseRemote(ctx, w.bucket); err != nil {
			t.Fatal(err)
		}
	}
	before := w.snapshot()
	dest := filepath.Join(w.work, "two-"+randHex())
	for i, s := range []string{spec, "evil-dir"} {
		_ = hostileDo(t, "restore "+s, func() error {
			obj, err := w.r.Resolve(ctx, s)
			if err != nil {
				return err
			}
			_, err = w.r.Restore(ctx, obj, dest, RestoreOptions{Force: i > 0})
			return err
		})
	}
	w.compare(before)
}

// TestHostileRestoreIntoProject restores, with Force, into the project
// whose .cas is the open store, a tree holding .cas/store/refs/… and a
// ref whose file is .cas: the store must come out unchanged.
func TestHostileRestoreIntoProject(t *testing.T) {
	t.Parallel()
	for _, world := range []string{"local", "bucket"} {
		for _, tc := range []struct {
			name  string
			forge func(w *hostileWorld, f *forger) (string, []string)
		}{
			{"tree-with-.cas", dotCasTree},
			{"ref-file=.cas", func(w *hostileWorld, f *forger) (string, []string) {
				return refWith(f, w.a, "file", ".cas")
			}},
		} {
			t.Run(tc.name+"/"+world, func(t *testing.T) {
				w := newHostileWorld(t, world == "bucket")
				spec, _ := tc.forge(w, newForger(t, w.forged))
				if !w.open() {
					return
				}
				ctx := t.Context()
				skip := func(rel string) bool {
					return rel == "index" || strings.HasPrefix(rel, "index/") ||
						strings.HasPrefix(rel, "store/tmp") || strings.HasPrefix(rel, "store/locks")
				}
				before := snapshotTree(t, w.casDir, skip)
				var restoreErr error
				_ = hostileDo(t, "restore into the project", func() error {
					obj, err := w.r.Resolve(ctx, spec)
					if err != nil {
						restoreErr = err
						return nil
					}
					_, restoreErr = w.r.Restore(ctx, obj, w.proj, RestoreOptions{Force: true})
					return nil
				})
				compareTrees(t, "the store", before, snapshotTree(t, w.casDir, skip))
				ref, err := w.r.GetRef(ctx, "good")
				if err != nil || ref.Target != w.good.Digest || ref.File != "" {
					t.Errorf("after restore (error %v): refs/good reads %+v, %v; want it untouched", restoreErr, ref, err)
				}
			})
		}
	}
}
