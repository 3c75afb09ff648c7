package cas

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cas-ml/cas/digest"
	"github.com/cas-ml/cas/remote"
)

// The hostile-store kit, part two: a world (an honest store or bucket
// holding refs/good and pins/goodpin), forged objects written into it by
// a forger, and every reader's operation run against them: resolve,
// restore (into a new DEST, into an existing empty one as `restore REF .`
// does, and with Force into a non-empty one), cat (WriteFile), ReadObject,
// ls (ReadTree, Lookup), verify, refs and pins listing, verify of the whole
// store, gc as a dry run, pull into a clean store, push after it, and an
// index rebuild. Each case asserts:
//   - no operation panics;
//   - nothing outside the DESTs changes (a snapshot of everything the test
//     owns, victims placed where ../x and ../../../outside/x land);
//   - every byte written hashes to the digest it was asked for (every
//     file in a DEST to the digest its tree names; cat writes nothing
//     unless the whole file verifies);
//   - a bad object is reported as damage (a *CorruptError or a sentinel
//     such as ErrBadTree or ErrNotFound) that names it, by Resolve or by
//     Verify;
//   - refs/good and pins/goodpin still list, resolve and restore byte for
//     byte, and listings hold only valid refs and pins.

// victim is what sits where an escaping path would write.
var victim = []byte("victim: a write outside DEST changes me\n")

// hostileWorld is one store (or bucket) holding honest data, and what the
// cases need to know about it.
type hostileWorld struct {
	t      *testing.T
	root   string         // everything the test owns
	proj   string         // root/proj: a project, holding .cas
	work   string         // root/proj/work: the DESTs go here
	casDir string         // root/proj/.cas
	bucket *remote.Mem    // the bucket, in the bucket world
	forged remote.Backend // where the forger writes: the store or the bucket
	r      *Repo          // the store, opened after forging (with the bucket as remote)

	good      Object            // refs/good, pins/goodpin: a tree
	goodFiles map[string][]byte // its files by path
	a, c, big Object            // its files a.txt, sub/c.txt (one chunk each), big.bin (many)
	aData     []byte
	bigChunks []digest.Digest
	goodPacks map[digest.Digest]bool
}

// hostileTree is the honest data: two one-chunk files and one of many
// chunks (the store chunks at 4 KiB on average).
func hostileTree() map[string][]byte {
	return map[string][]byte{
		"a.txt":     []byte("alpha: the honest bytes of a.txt\n"),
		"sub/c.txt": []byte("charlie: the honest bytes of sub/c.txt\n"),
		"big.bin":   pseudoRandom(48<<10, 77),
	}
}

// newHostileWorld builds the honest world; bucket selects where it lives:
// in root/proj/.cas (forged into the store itself), or in a bucket with
// root/proj/.cas an empty store reading from it.
func newHostileWorld(t *testing.T, bucket bool) *hostileWorld {
	t.Helper()
	ctx := t.Context()
	w := &hostileWorld{t: t, root: t.TempDir()}
	w.proj = filepath.Join(w.root, "proj")
	w.work = filepath.Join(w.proj, "work")
	w.casDir = filepath.Join(w.proj, DirName)
	for _, p := range []string{"x", "outside/x", "proj/x", "proj/work/x", "proj/work/abs"} {
		p = filepath.Join(w.root, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, victim, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	w.goodFiles = hostileTree()
	src := filepath.Join(w.root, "src")
	for p, data := range w.goodFiles {
		p = filepath.Join(src, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	params, err := NewChunkParams(4 << 10)
	if err != nil {
		t.Fatal(err)
	}
	seedDir := w.casDir
	if bucket {
		seedDir = filepath.Join(w.root, "seed", DirName)
	}
	if err := Init(seedDir, params, time.Now()); err != nil {
		t.Fatal(err)
	}
	seed, err := Open(ctx, seedDir)
	if err != nil {
		t.Fatal(err)
	}
	res, err := seed.Push(ctx, []string{src}, PushOptions{})
	if err != nil {
		t.Fatalf("push: %v", err)
	}
	w.good = Object{Digest: res.Digest, Kind: res.Kind, Size: res.Bytes}
	for _, f := range []struct {
		obj  *Object
		path string
	}{{&w.a, "a.txt"}, {&w.c, "sub/c.txt"}, {&w.big, "big.bin"}} {
		o, err := seed.Lookup(ctx, &w.good, f.path)
		if err != nil {
			t.Fatal(err)
		}
		*f.obj = *o
	}
	w.aData = w.goodFiles["a.txt"]
	chunks, ok, err := seed.Index.FileChunks(w.big.Digest)
	if err != nil || !ok || len(chunks) < 3 {
		t.Fatalf("big.bin: %d chunks (%v, %v), want several", len(chunks), ok, err)
	}
	w.bigChunks = chunks
	w.goodPacks = map[digest.Digest]bool{}
	if err := seed.closurePacks(ctx, &w.good, w.goodPacks); err != nil {
		t.Fatal(err)
	}
	be := seed.Backend
	if bucket {
		w.bucket = remote.NewMem()
		be = w.bucket
		if _, err := seed.Upload(ctx, w.bucket, nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := seed.SetRefOn(ctx, be, "good", w.good); err != nil {
		t.Fatal(err)
	}
	if _, err := seed.Pin(ctx, be, "goodpin", w.good, PinOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := seed.Close(); err != nil {
		t.Fatal(err)
	}
	if bucket {
		if err := Init(w.casDir, params, time.Now()); err != nil {
			t.Fatal(err)
		}
		w.forged = w.bucket
	} else {
		// The attacker writes the files of the store, as another program
		// (or a synced folder) would.
		if w.forged, err = remote.NewLocal(filepath.Join(w.casDir, storeDir)); err != nil {
			t.Fatal(err)
		}
	}
	return w
}

// open opens the store after forging, and reads the bucket if there is
// one. A failure is reported: one bad object must not make a store or a
// bucket unusable.
func (w *hostileWorld) open() bool {
	w.t.Helper()
	ctx := w.t.Context()
	var r *Repo
	err := hostileDo(w.t, "open", func() error {
		var err error
		r, err = Open(ctx, w.casDir)
		return err
	})
	if err != nil {
		w.t.Errorf("open the store after forging: %v; want it usable", err)
		return false
	}
	w.t.Cleanup(func() { _ = r.Close() })
	w.r = r
	if w.bucket != nil {
		if err := hostileDo(w.t, "use remote", func() error { return r.UseRemote(ctx, w.bucket) }); err != nil {
			w.t.Errorf("use the bucket after forging: %v; want it usable", err)
			return false
		}
	}
	return true
}

// errPanicked stands for the result of an operation that panicked.
var errPanicked = errors.New("panicked")

// hostileDo runs fn, turning a panic into a test error.
func hostileDo(t *testing.T, op string, fn func() error) (err error) {
	t.Helper()
	defer func() {
		if p := recover(); p != nil {
			stack := debug.Stack()
			t.Errorf("%s panicked: %v\n%s", op, p, stack[:min(len(stack), 1500)])
			err = errPanicked
		}
	}()
	return fn()
}

// isDamage reports whether err says that stored data is bad or missing,
// in a way a caller can tell apart.
func isDamage(err error) bool {
	var ce *CorruptError
	if errors.As(err, &ce) {
		return true
	}
	for _, s := range []error{ErrInvalidObject, ErrNotFound, remote.ErrNotFound, ErrBadTree, ErrBadName, ErrBadSegment, ErrBadPack,
		ErrBadRefName, ErrNoPath, ErrNotTree, digest.ErrSyntax, ErrGCMissing} {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}

// namesOne reports whether err names one of names: a CorruptError by its
// digest or path, else the one-line message a user reads.
func namesOne(err error, names []string) bool {
	if len(names) == 0 {
		return true
	}
	var ce *CorruptError
	for _, n := range names {
		if errors.As(err, &ce) && (ce.ID.Short() == n || ce.ID.Hex() == n || ce.Path == n) {
			return true
		}
		if strings.Contains(err.Error(), n) {
			return true
		}
	}
	return false
}

// hostileCase is one forgery.
type hostileCase struct {
	name string
	// where limits the case to "local" or "bucket"; "" runs it in both.
	where string
	// forge writes the forgery and returns the spec to run the object
	// operations on ("" for none) and the names an error about it must
	// mention (the ref, the key, the short digest).
	forge func(w *hostileWorld, f *forger) (spec string, names []string)
	// mayPass: the object is harmless as forged (a symlink pointing
	// anywhere, a name git would accept): it need not be reported, as long
	// as every other rule holds.
	mayPass bool
	// anyErr: errors need not be typed as damage (a filesystem limit).
	anyErr bool
	// goodMayFail: the forgery lies about refs/good's own data, so that
	// may fail to restore; it still must never yield a wrong byte.
	goodMayFail bool
	// after runs extra checks once the common ones are done.
	after func(w *hostileWorld)
}

// runHostile runs every operation against one forged world.
func runHostile(t *testing.T, c hostileCase, bucket bool) {
	w := newHostileWorld(t, bucket)
	spec, names := c.forge(w, newForger(t, w.forged))
	if !w.open() {
		return
	}
	ctx := t.Context()
	before := w.snapshot()
	var bucketBefore map[string]string
	if bucket {
		bucketBefore = backendState(t, w.bucket)
	}

	w.checkGood(c, "before")
	if spec != "" {
		w.checkTarget(c, spec, names)
	}
	w.checkListings(c, names)
	w.checkGCDryRun(c)
	if bucket && spec != "" {
		w.checkPull(c, spec, names)
	}
	w.compare(before)
	if bucket {
		// Reading a bucket never writes to it.
		compareTrees(t, "the bucket", bucketBefore, backendState(t, w.bucket))
	}

	// Writing goes on: a push and a ref, on the store and on the bucket.
	p := filepath.Join(w.root, "later", "after.txt")
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("written after the forgery\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_ = hostileDo(t, "push", func() error {
		res, err := w.r.Push(ctx, []string{p}, PushOptions{})
		if err != nil {
			t.Errorf("push after the forgery: %v", err)
			return err
		}
		obj := Object{Digest: res.Digest, Kind: res.Kind, Size: res.Bytes, Name: "after.txt"}
		be := w.r.Backend
		if bucket {
			be = w.bucket
			if _, err := w.r.Upload(ctx, be, nil); err != nil {
				t.Errorf("upload after the forgery: %v", err)
				return err
			}
		}
		if _, err := w.r.SetRefOn(ctx, be, "after", obj); err != nil && !namesOne(err, names) {
			t.Errorf("set a ref after the forgery: %v; want success, or an error naming %q", err, names)
		}
		return nil
	})
	if !bucket {
		_ = hostileDo(t, "rebuild index", func() error {
			if _, _, err := w.r.RebuildIndex(ctx); err != nil {
				t.Errorf("rebuild the index after the forgery: %v; want the intact objects indexed", err)
			}
			return nil
		})
		w.checkGood(c, "after an index rebuild")
	}
	if c.after != nil {
		c.after(w)
	}
}

// checkGood restores refs/good (and pins/goodpin) and compares every byte.
func (w *hostileWorld) checkGood(c hostileCase, when string) {
	t := w.t
	t.Helper()
	ctx := t.Context()
	for _, spec := range []string{"good", PinPrefix + "goodpin"} {
		var obj *Object
		err := hostileDo(t, "resolve "+spec, func() error {
			var err error
			obj, err = w.r.Resolve(ctx, spec)
			return err
		})
		if err != nil {
			if !c.goodMayFail {
				t.Errorf("%s: resolve the intact %s: %v; want it to work beside the forgery", when, spec, err)
			}
			continue
		}
		if obj.Digest != w.good.Digest || obj.Kind != KindDir {
			t.Errorf("%s: %s resolves to %s %v, want %s dir", when, spec, obj.Digest.Short(), obj.Kind, w.good.Digest.Short())
			continue
		}
		dest := filepath.Join(w.work, "good-"+randHex())
		err = hostileDo(t, "restore "+spec, func() error {
			_, err := w.r.Restore(ctx, obj, dest, RestoreOptions{})
			return err
		})
		if err != nil {
			if !c.goodMayFail {
				t.Errorf("%s: restore the intact %s: %v; want it to work beside the forgery", when, spec, err)
			}
			if !errors.Is(err, errPanicked) && !isDamage(err) && !c.anyErr {
				t.Errorf("%s: restore the intact %s: %v is not reported as damage", when, spec, err)
			}
		}
		got := map[string][]byte{}
		_ = filepath.WalkDir(dest, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.Type().IsRegular() {
				rel, _ := filepath.Rel(dest, p)
				got[filepath.ToSlash(rel)], _ = os.ReadFile(p)
			}
			return nil
		})
		if err == nil && len(got) != len(w.goodFiles) {
			t.Errorf("%s: restored %s holds %d files, want %d", when, spec, len(got), len(w.goodFiles))
		}
		for p, data := range got {
			if want, ok := w.goodFiles[p]; !ok || !bytes.Equal(data, want) {
				t.Errorf("%s: restored %s: %s has %d bytes (%s), want %d (%s)", when, spec, p, len(data),
					digest.Of(data).Short(), len(want), digest.Of(want).Short())
			}
		}
	}
}

// wantDamage checks an error about a forged object: it must be typed as
// damage, and, where names are given (resolving a forged ref or pin),
// name the object. Deeper errors name a path or digest of their own.
func (w *hostileWorld) wantDamage(c hostileCase, op string, err error, names []string) {
	w.t.Helper()
	if err == nil || errors.Is(err, errPanicked) || c.anyErr {
		return
	}
	if !isDamage(err) {
		w.t.Errorf("%s: got %v (%T), want a damage error (*CorruptError, ErrBadTree, ErrNotFound…)", op, err, err)
	} else if !namesOne(err, names) {
		w.t.Errorf("%s: %v does not name any of %q", op, err, names)
	}
}

// checkTarget runs the object operations on spec.
func (w *hostileWorld) checkTarget(c hostileCase, spec string, names []string) {
	t := w.t
	t.Helper()
	ctx := t.Context()
	var obj *Object
	err := hostileDo(t, "resolve", func() error {
		var err error
		obj, err = w.r.Resolve(ctx, spec)
		return err
	})
	if err != nil {
		w.wantDamage(c, "resolve "+spec, err, names)
		return
	}
	reported := false

	// verify
	err = hostileDo(t, "verify", func() error {
		rep, err := w.r.Verify(ctx, obj, spec, nil)
		if err == nil && !rep.OK() {
			reported = true
		}
		return err
	})
	if err != nil {
		reported = true
		w.wantDamage(c, "verify "+spec, err, nil)
	}
	if !reported && !c.mayPass {
		t.Errorf("%s (%s %v %d bytes, file %q) resolves and verifies: want the forgery reported as damage", spec, obj.Digest.Short(), obj.Kind, obj.Size, obj.Name)
	}

	// restore: into a new DEST, into an existing empty one (restore REF .),
	// and with Force into one holding a file.
	mine := map[string][]byte{"mine.txt": []byte("mine\n")}
	for _, v := range []struct {
		name  string
		pre   map[string][]byte
		exist bool
		force bool
	}{{"dest-new", nil, false, false}, {"dest-here", nil, true, false}, {"dest-force", mine, true, true}} {
		dest := filepath.Join(w.work, v.name)
		if v.exist {
			if err := os.MkdirAll(dest, 0o755); err != nil {
				t.Fatal(err)
			}
			for p, data := range v.pre {
				if err := os.WriteFile(filepath.Join(dest, p), data, 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}
		err := hostileDo(t, "restore "+v.name, func() error {
			_, err := w.r.Restore(ctx, obj, dest, RestoreOptions{Force: v.force})
			return err
		})
		w.wantDamage(c, "restore "+spec+" into "+v.name, err, nil)
		w.checkDest(v.name, obj, dest, v.pre)
	}

	// cat
	if obj.Kind != KindDir {
		var buf bytes.Buffer
		err := hostileDo(t, "cat", func() error { return w.r.WriteFile(ctx, obj, &buf) })
		switch {
		case err != nil && buf.Len() > 0:
			t.Errorf("cat %s: wrote %d bytes (%s) before failing with %v; want nothing written unless the whole file verifies",
				spec, buf.Len(), digest.Of(buf.Bytes()).Short(), err)
		case err == nil && digest.Of(buf.Bytes()) != obj.Digest:
			t.Errorf("cat %s: wrote %d bytes hashing to %s, want %s", spec, buf.Len(), digest.Of(buf.Bytes()).Short(), obj.Digest.Short())
		}
		w.wantDamage(c, "cat "+spec, err, nil)
	}

	// ReadObject
	_ = hostileDo(t, "read object", func() error {
		b, err := w.r.ReadObject(ctx, obj.Digest, 1<<20)
		if err == nil && digest.Of(b) != obj.Digest {
			t.Errorf("ReadObject %s: got bytes hashing to %s", obj.Digest.Short(), digest.Of(b).Short())
		}
		return nil
	})

	// ls
	if obj.Kind == KindDir {
		err := hostileDo(t, "ls", func() error {
			tr, err := w.r.ReadTree(ctx, obj.Digest)
			if err != nil {
				return err
			}
			for _, e := range tr.Entries {
				if !ValidName(e.Name) {
					t.Errorf("ls %s: entry %q, want a single path element", spec, e.Name)
				}
				if _, err := w.r.Resolve(ctx, spec+":"+e.Name); err != nil {
					w.wantDamage(c, "ls "+spec+":"+e.Name, err, nil)
				}
			}
			return nil
		})
		w.wantDamage(c, "ls "+spec, err, nil)
	}
}

// checkDest checks that every file a restore left in dest hashes to the
// digest the object (for a tree: the entry) names, and that the files
// that were there before are unchanged or properly replaced.
func (w *hostileWorld) checkDest(variant string, obj *Object, dest string, pre map[string][]byte) {
	t := w.t
	t.Helper()
	want := map[string]digest.Digest{}
	if obj.Kind == KindDir {
		w.treeDigests(obj.Digest, "", want, 0)
	}
	check := func(rel string, got []byte) {
		if old, ok := pre[rel]; ok && bytes.Equal(old, got) {
			return
		}
		var d digest.Digest
		var ok bool
		if obj.Kind == KindDir {
			d, ok = want[rel]
		} else {
			d, ok = obj.Digest, true
		}
		switch {
		case !ok:
			t.Errorf("%s: %s holds %q (%d bytes), which the tree does not name", variant, dest, rel, len(got))
		case digest.Of(got) != d:
			t.Errorf("%s: %s/%s holds %d bytes hashing to %s, want %s", variant, dest, rel, len(got), digest.Of(got).Short(), d.Short())
		}
	}
	fi, err := os.Lstat(dest)
	if err != nil {
		return
	}
	if fi.Mode().IsRegular() {
		b, _ := os.ReadFile(dest)
		check(".", b)
		return
	}
	_ = filepath.WalkDir(dest, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dest {
			return nil
		}
		rel, _ := filepath.Rel(dest, p)
		rel = filepath.ToSlash(rel)
		switch {
		case d.Type().IsRegular():
			b, _ := os.ReadFile(p)
			check(rel, b)
		case d.Type()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			check(rel, []byte(target))
		}
		return nil
	})
}

// treeDigests records the digest of every file and link below tree d, as
// far as the stored trees can be read.
func (w *hostileWorld) treeDigests(d digest.Digest, rel string, out map[string]digest.Digest, depth int) {
	tr, err := w.r.ReadTree(w.t.Context(), d)
	if err != nil || depth > 64 {
		return
	}
	for _, e := range tr.Entries {
		p := joinRel(rel, e.Name)
		if e.Kind == KindDir {
			w.treeDigests(e.Digest, p, out, depth+1)
		} else {
			out[p] = e.Digest
		}
	}
}

// validRef holds the rules every ref or pin read from a store obeys.
func validRefLike(name, key string, target digest.Digest, kind Kind, size int64, file string) error {
	switch {
	case name != key:
		return fmt.Errorf("name %q, want its key %q", name, key)
	case !ValidRefName(key):
		return fmt.Errorf("name %q is not a valid ref name", key)
	case target.IsZero():
		return fmt.Errorf("no target")
	case kind != KindFile && kind != KindExec && kind != KindDir:
		return fmt.Errorf("kind %v", kind)
	case size < 0:
		return fmt.Errorf("size %d", size)
	case file != "" && !ValidName(file):
		return fmt.Errorf("file %q is not a single path element", file)
	}
	return nil
}

// checkListings lists refs and pins (of the store, and of the bucket
// opened alone, as verify --remote does) and verifies the whole store.
func (w *hostileWorld) checkListings(c hostileCase, names []string) {
	t := w.t
	t.Helper()
	ctx := t.Context()
	view := w.r
	if w.bucket != nil {
		err := hostileDo(t, "open the bucket alone", func() error {
			var err error
			view, err = OpenRemoteOnly(ctx, w.bucket)
			return err
		})
		if err != nil {
			t.Errorf("open the bucket alone (verify --remote): %v; want it usable", err)
			return
		}
	}
	_ = hostileDo(t, "refs", func() error {
		refs, err := view.Refs(ctx)
		if !w.partialOK("list refs", err, names) {
			return nil
		}
		found := false
		for _, ref := range refs {
			found = found || ref.Name == "good"
			if ref.Name == "good" && ref.Target != w.good.Digest {
				t.Errorf("refs: good targets %s, want %s", ref.Target.Short(), w.good.Digest.Short())
			}
			if err := validRefLike(ref.Name, ref.Name, ref.Target, ref.Kind, ref.Size, ref.File); err != nil {
				t.Errorf("refs lists %q: %v", ref.Name, err)
			}
		}
		if !found {
			t.Errorf("refs: good is not listed")
		}
		return nil
	})
	_ = hostileDo(t, "pins", func() error {
		var be remote.Backend // the store's own
		if w.bucket != nil {
			be = w.bucket
		}
		pins, err := w.r.Pins(ctx, be)
		if !w.partialOK("list pins", err, names) {
			return nil
		}
		found := false
		for _, p := range pins {
			found = found || p.Name == "goodpin"
			if err := validRefLike(p.Name, p.Name, p.Target, p.Kind, p.Size, p.File); err != nil {
				t.Errorf("pins lists %q: %v", p.Name, err)
			}
		}
		if !found {
			t.Errorf("pins: goodpin is not listed")
		}
		return nil
	})
	_ = hostileDo(t, "stats", func() error {
		if _, err := view.Stats(ctx); err != nil {
			t.Errorf("stats: %v; want the intact objects counted beside a bad one", err)
		}
		return nil
	})
	_ = hostileDo(t, "verify all", func() error {
		if _, err := view.VerifyAll(ctx, nil); err != nil {
			t.Errorf("verify the whole store: %v; want a report naming the damage", err)
		}
		return nil
	})
}

// partialOK checks the error of a listing: none, or a *PartialError
// beside the intact entries, each of its errors damage naming the bad
// entry. It reports whether the entries returned are to be checked.
func (w *hostileWorld) partialOK(op string, err error, names []string) bool {
	w.t.Helper()
	if err == nil {
		return true
	}
	var pe *PartialError
	if !errors.As(err, &pe) {
		w.t.Errorf("%s: %v; want the intact entries listed beside a bad one", op, err)
		return false
	}
	for _, e := range pe.Errs {
		if !isDamage(e) {
			w.t.Errorf("%s: %v (%T) beside the listing, want a damage error", op, e, e)
		} else if !namesOne(e, names) {
			w.t.Errorf("%s: %v beside the listing does not name any of %q", op, e, names)
		}
	}
	return true
}

// backendState records every key of a backend with its ETag.
func backendState(t *testing.T, be remote.Backend) map[string]string {
	t.Helper()
	out := map[string]string{}
	if err := be.List(t.Context(), "", func(oi remote.ObjectInfo) error { out[oi.Key] = oi.ETag; return nil }); err != nil {
		t.Errorf("list %s: %v", be.Location(), err)
	}
	return out
}

// checkGCDryRun runs gc as a dry run on the forged backend: it must write
// nothing and count refs/good's packs live.
func (w *hostileWorld) checkGCDryRun(c hostileCase) {
	t := w.t
	t.Helper()
	be := w.forged
	before := backendState(t, be)
	_ = hostileDo(t, "gc dry run", func() error {
		rep, err := w.r.GC(t.Context(), be, GCOptions{DryRun: true, Grace: NoGrace})
		if err == nil && rep.LivePacks < len(w.goodPacks) {
			t.Errorf("gc dry run: %d live packs, want at least refs/good's %d", rep.LivePacks, len(w.goodPacks))
		}
		return nil
	})
	after := backendState(t, be)
	for k, e := range after {
		if before[k] != e {
			t.Errorf("gc dry run wrote %s", k)
		}
	}
	for k := range before {
		if _, ok := after[k]; !ok {
			t.Errorf("gc dry run deleted %s", k)
		}
	}
}

// checkPull pulls the forged object from the bucket into a clean store,
// then refs/good, and restores refs/good from that store alone.
func (w *hostileWorld) checkPull(c hostileCase, spec string, names []string) {
	t := w.t
	t.Helper()
	ctx := t.Context()
	dir := filepath.Join(w.root, "fresh", DirName)
	params, _ := NewChunkParams(4 << 10)
	if err := Init(dir, params, time.Now()); err != nil {
		t.Fatal(err)
	}
	fresh, err := Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := hostileDo(t, "pull: use remote", func() error { return fresh.UseRemote(ctx, w.bucket) }); err != nil {
		t.Errorf("pull: read the bucket: %v; want it usable", err)
		fresh.Close()
		return
	}
	err = hostileDo(t, "pull", func() error {
		obj, err := fresh.Resolve(ctx, spec)
		if err != nil {
			return err
		}
		if _, err = fresh.Pull(ctx, obj, nil); err != nil {
			return err
		}
		// What a pull took must hold up in the store pulled into: the
		// kind and size a ref gave included, and what its trees say of
		// what they hold.
		rep, err := fresh.Verify(ctx, obj, spec, nil)
		if err == nil && !rep.OK() {
			t.Errorf("pull %s (%s %v, %d bytes): done, yet verify finds %v; want the pull refused", spec, obj.Digest.Short(), obj.Kind, obj.Size, rep.Problems[0].Err)
		}
		return err
	})
	w.wantDamage(c, "pull "+spec, err, nil)
	err = hostileDo(t, "pull good", func() error {
		obj, err := fresh.Resolve(ctx, "good")
		if err != nil {
			return err
		}
		_, err = fresh.Pull(ctx, obj, nil)
		return err
	})
	fresh.Close()
	if err != nil {
		if !c.goodMayFail {
			t.Errorf("pull the intact refs/good: %v", err)
		}
		return
	}
	fresh, err = Open(ctx, dir)
	if err != nil {
		t.Errorf("open the store pulled into: %v; want it usable", err)
		return
	}
	defer fresh.Close()
	dest := filepath.Join(w.work, "pulled-"+randHex())
	err = hostileDo(t, "restore pulled", func() error {
		_, err := fresh.Restore(ctx, &w.good, dest, RestoreOptions{})
		return err
	})
	if err != nil && !c.goodMayFail {
		t.Errorf("restore refs/good from the store pulled into, alone: %v", err)
	}
	for p, data := range w.goodFiles {
		got, rerr := os.ReadFile(filepath.Join(dest, filepath.FromSlash(p)))
		if rerr == nil && !bytes.Equal(got, data) {
			t.Errorf("pulled refs/good: %s holds %s, want %s", p, digest.Of(got).Short(), digest.Of(data).Short())
		}
	}
}

// snapshot records everything the test owns outside the DESTs and the
// places cas may write to: the badger cache and the store's temp and lock
// directories, and the store pulled into.
func (w *hostileWorld) snapshot() map[string]string {
	t := w.t
	t.Helper()
	skip := func(rel string) bool {
		for _, p := range []string{"proj/work/dest-", "proj/work/good-", "proj/work/pulled-", "proj/work/two-", "fresh"} {
			if strings.HasPrefix(rel, p) {
				return true
			}
		}
		for _, p := range []string{"proj/.cas/index", "proj/.cas/store/tmp", "proj/.cas/store/locks", "later"} {
			if rel == p || strings.HasPrefix(rel, p+"/") {
				return true
			}
		}
		return false
	}
	return snapshotTree(t, w.root, skip)
}

// snapshotTree describes every path below root that skip does not cut.
func snapshotTree(t *testing.T, root string, skip func(rel string) bool) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		rel = filepath.ToSlash(rel)
		if p != root && skip(rel) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		switch {
		case fi.IsDir():
			out[rel] = "dir"
		case fi.Mode()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			out[rel] = "link " + target
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			out[rel] = fmt.Sprintf("file %o %s", fi.Mode().Perm(), digest.Of(b).Short())
		default:
			out[rel] = fi.Mode().String()
		}
		return nil
	})
	if err != nil {
		t.Fatalf("snapshot %s: %v", root, err)
	}
	return out
}

// compare reports every change outside the DESTs since before.
func (w *hostileWorld) compare(before map[string]string) {
	w.t.Helper()
	compareTrees(w.t, "outside DEST", before, w.snapshot())
}

func compareTrees(t *testing.T, what string, before, after map[string]string) {
	t.Helper()
	var diffs []string
	for k, v := range after {
		if before[k] != v {
			diffs = append(diffs, fmt.Sprintf("%s: got %q, want %q", k, v, before[k]))
		}
	}
	for k, v := range before {
		if _, ok := after[k]; !ok {
			diffs = append(diffs, fmt.Sprintf("%s: removed, want %q", k, v))
		}
	}
	slices.Sort(diffs)
	for _, d := range diffs {
		t.Errorf("%s changed: %s", what, d)
	}
}

func TestHostileStore(t *testing.T) {
	t.Parallel()
	for _, c := range hostileCases() {
		for _, world := range []string{"local", "bucket"} {
			if c.where != "" && c.where != world {
				continue
			}
			t.Run(c.name+"/"+world, func(t *testing.T) {
				t.Parallel() // each world is a directory of its own
				runHostile(t, c, world == "bucket")
			})
		}
	}
}
