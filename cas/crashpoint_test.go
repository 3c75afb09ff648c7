package cas

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cas-ml/cas/cas/format"
	"github.com/cas-ml/cas/cas/gc"
	"github.com/cas-ml/cas/clock"
	"github.com/cas-ml/cas/digest"
	"github.com/cas-ml/cas/remote"
)

// The crash-point harness: every operation that writes to a store is run
// once to count the steps it takes on the local backend (remote.LocalOp:
// each create, write, fsync, mkdir, link, rename, unlink, rmdir), then
// once per step on a fresh copy of the same store, with that step and
// every one after it failing, as if the process had been killed there.
// The store is then opened again from disk and must still verify, serve
// every ref and pin it held before byte for byte, let the operation run
// again to a result that restores byte for byte, and let gc run to the
// end without losing anything referenced.
//
// Closing the abandoned Repo stands for the kill as far as the badger
// cache goes: a killed process's writes to it are in the page cache,
// which is what Close leaves on disk too.

// errCrash is what every step fails with from the crash point on.
var errCrash = errors.New("crash point: the process died here")

// crashHook counts the steps of a Local backend and fails the one at
// failAt and all that follow (failAt 0: none).
type crashHook struct {
	mu      sync.Mutex
	failAt  int
	n       int
	steps   []string
	crashed string // the step that failed first
}

func (h *crashHook) step(op remote.LocalOp, key string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.n++
	h.steps = append(h.steps, op.String()+" "+key)
	if h.crashed != "" || h.failAt > 0 && h.n >= h.failAt {
		if h.crashed == "" {
			h.crashed = op.String() + " " + key
		}
		return errCrash
	}
	return nil
}

// crashWant is something a store must serve byte for byte.
type crashWant struct {
	spec string            // what Resolve takes: a ref name, or pins/NAME
	dir  map[string]fsNode // a tree's contents, or nil
	file []byte            // a file's contents, when dir is nil
	// unrooted: no ref or pin keeps it, so gc may collect it.
	unrooted bool
}

// crashWorld is the prior state every crash point starts from: a closed
// store directory that each run copies, with the sources of its refs.
type crashWorld struct {
	store   string    // the .cas directory to copy
	clock   time.Time // the store's clock
	wants   []crashWant
	garbage *Object // an unreferenced tree
	trash   string  // its source
	srcs    map[string]string
	objs    map[string]*Object
}

// crashOp is one operation under test.
type crashOp struct {
	name string
	// prior adds to the common prior state (r is open on it).
	prior func(t *testing.T, r *Repo, w *crashWorld)
	// run carries the operation out and returns what its result must
	// serve once it has completed.
	run func(ctx context.Context, r *Repo, w *crashWorld) ([]crashWant, error)
}

func TestCrashPoints(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("runs every operation once per crash point")
	}
	pushOp := func(srcName, ref string) func(ctx context.Context, r *Repo, w *crashWorld) ([]crashWant, error) {
		return func(ctx context.Context, r *Repo, w *crashWorld) ([]crashWant, error) {
			src := w.srcs[srcName]
			res, err := r.Push(ctx, []string{src}, PushOptions{})
			if err != nil {
				return nil, err
			}
			if _, err := r.SetRef(ctx, ref, Object{Digest: res.Digest, Kind: res.Kind, Size: res.Bytes}); err != nil {
				return nil, err
			}
			return []crashWant{{spec: ref, dir: snapshotDirErr(src)}}, nil
		}
	}
	gcOp := func(ctx context.Context, r *Repo, w *crashWorld) ([]crashWant, error) {
		_, err := r.GC(ctx, nil, GCOptions{})
		return nil, err
	}
	ops := []crashOp{
		{name: "push-new", run: pushOp("new", "grp/new")},
		{name: "re-push", prior: func(t *testing.T, r *Repo, w *crashWorld) {
			crashPushRef(t, r, w, "new", "grp/new")
		}, run: pushOp("new-copy", "grp/again")},
		{name: "put-objects", run: func(ctx context.Context, r *Repo, w *crashWorld) ([]crashWant, error) {
			objs := [][]byte{[]byte(`{"schema":"cas.manifest/v1","note":"crash points"}`), pseudoRandom(90<<10, 77)}
			ids, err := r.PutObjects(ctx, objs...)
			if err != nil {
				return nil, err
			}
			var wants []crashWant
			for i, id := range ids {
				if id != digest.Of(objs[i]) {
					return nil, fmt.Errorf("PutObjects: object %d got digest %s, want %s", i, id.Short(), digest.Of(objs[i]).Short())
				}
				wants = append(wants, crashWant{spec: id.String(), file: objs[i], unrooted: true})
			}
			return wants, nil
		}},
		{name: "pin", run: func(ctx context.Context, r *Repo, w *crashWorld) ([]crashWant, error) {
			if _, err := r.Pin(ctx, nil, "paper2", *w.objs["data"], PinOptions{Message: "again"}); err != nil {
				return nil, err
			}
			return []crashWant{{spec: PinPrefix + "paper2", dir: snapshotDirErr(w.srcs["data"])}}, nil
		}},
		{name: "pin-condemned", prior: func(t *testing.T, r *Repo, w *crashWorld) {
			// A plan condemns the garbage: the pin must leave a keep
			// marker that the sweep honours.
			w.clock = w.clock.Add(25 * time.Hour)
			if rep, err := r.GC(t.Context(), nil, GCOptions{}); err != nil || rep.Planned.Packs == 0 {
				t.Fatalf("gc mark: %+v, %v; want a plan", rep, err)
			}
		}, run: func(ctx context.Context, r *Repo, w *crashWorld) ([]crashWant, error) {
			if _, err := r.Pin(ctx, nil, "rescued", *w.garbage, PinOptions{}); err != nil {
				return nil, err
			}
			return []crashWant{{spec: PinPrefix + "rescued", dir: snapshotDirErr(w.trash)}}, nil
		}},
		{name: "gc-mark", prior: func(t *testing.T, r *Repo, w *crashWorld) {
			w.clock = w.clock.Add(25 * time.Hour)
		}, run: gcOp},
		{name: "gc-sweep", prior: func(t *testing.T, r *Repo, w *crashWorld) {
			w.clock = w.clock.Add(25 * time.Hour)
			if rep, err := r.GC(t.Context(), nil, GCOptions{}); err != nil || rep.Planned.Packs == 0 {
				t.Fatalf("gc mark: %+v, %v; want a plan", rep, err)
			}
			w.clock = w.clock.Add(25 * time.Hour)
		}, run: gcOp},
		{name: "gc-sweep-merged", prior: func(t *testing.T, r *Repo, w *crashWorld) {
			// The sweep must rewrite the one merged segment, which names
			// live and condemned packs alike.
			manySegments(t, r, w)
			if rep, err := r.GC(t.Context(), nil, GCOptions{}); err != nil || rep.Segments == 0 {
				t.Fatalf("gc merging segments: %+v, %v", rep, err)
			}
			w.clock = w.clock.Add(25 * time.Hour)
			if rep, err := r.GC(t.Context(), nil, GCOptions{}); err != nil || rep.Planned.Packs == 0 {
				t.Fatalf("gc mark: %+v, %v; want a plan", rep, err)
			}
			w.clock = w.clock.Add(25 * time.Hour)
		}, run: gcOp},
		{name: "gc-compact", prior: manySegments, run: func(ctx context.Context, r *Repo, w *crashWorld) ([]crashWant, error) {
			if _, err := r.GC(ctx, nil, GCOptions{}); err != nil {
				return nil, err
			}
			// Merged, or too few left to merge after a crash (each
			// one left is named by the merged one too).
			var n int
			err := r.Backend.List(ctx, format.SegmentPrefix, func(remote.ObjectInfo) error { n++; return nil })
			if err == nil && n > gc.CompactAbove {
				err = fmt.Errorf("gc left %d index segments, want at most %d", n, gc.CompactAbove)
			}
			return nil, err
		}},
	}
	total := 0
	for _, op := range ops {
		t.Run(op.name, func(t *testing.T) {
			w := newCrashWorld(t, op)
			n, steps := w.countSteps(t, op)
			failed := 0
			for i := 1; i <= n; i++ {
				name := fmt.Sprintf("%02d-%s", i, stepName(steps[i-1]))
				if !t.Run(name, func(t *testing.T) { w.crashAt(t, op, i) }) {
					failed++
				}
			}
			total += n
			t.Logf("%s: %d crash points, %d failed", op.name, n, failed)
		})
	}
	t.Logf("%d crash points in all", total)
}

var (
	packName = regexp.MustCompile(`packs/[0-9a-f]{2}/[0-9a-f]{64}`)
	hexName  = regexp.MustCompile(`[0-9a-f]{64}`)
	gcIDName = regexp.MustCompile(`[0-9]{8}T[0-9.]+Z-[0-9a-f]{8}`)
	fanOut   = regexp.MustCompile(`packs/[0-9a-f]{2}$`)
)

// stepName names a step the same way from run to run: "link packs/ID",
// "rmdir packs/xx", "create gc/done/ID".
func stepName(step string) string {
	step = packName.ReplaceAllString(step, "packs/ID")
	step = hexName.ReplaceAllString(step, "ID")
	step = gcIDName.ReplaceAllString(step, "ID")
	step = fanOut.ReplaceAllString(step, "packs/xx")
	return strings.NewReplacer(" ", "-", "/", "_").Replace(step)
}

// manySegments pushes enough small trees for gc to merge the segments:
// one segment per push. Every fourth gets a ref (each ref costs restores
// at every check); the others are young garbage, which a merge keeps too.
func manySegments(t *testing.T, r *Repo, w *crashWorld) {
	t.Helper()
	for i := range gc.CompactAbove {
		src := filepath.Join(t.TempDir(), "small")
		writeGenTree(t, src, []genEntry{{path: "n.txt", kind: KindFile, data: fmt.Appendf(nil, "small %d\n", i)}})
		name := fmt.Sprintf("small%d", i)
		w.srcs[name] = src
		if i%4 == 0 {
			crashPushRef(t, r, w, name, fmt.Sprintf("small/%02d", i))
		} else if _, err := r.Push(t.Context(), []string{src}, PushOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(keys(t, r.Backend, format.SegmentPrefix)); n <= gc.CompactAbove {
		t.Fatalf("%d index segments, want more than %d", n, gc.CompactAbove)
	}
}

// crashPushRef pushes the source named name and points ref at it, and
// records it as something every crash point must keep.
func crashPushRef(t *testing.T, r *Repo, w *crashWorld, name, ref string) {
	t.Helper()
	res, err := r.Push(t.Context(), []string{w.srcs[name]}, PushOptions{})
	if err != nil {
		t.Fatalf("push %s: %v", name, err)
	}
	obj := &Object{Digest: res.Digest, Kind: res.Kind, Size: res.Bytes}
	mustRef(t, r, ref, obj)
	w.objs[name] = obj
	w.wants = append(w.wants, crashWant{spec: ref, dir: snapshotDir(t, w.srcs[name])})
}

// newCrashWorld builds the prior state of op: a ref to a dataset, a ref
// moved once (its old target kept by history), a pin of a manifest with
// roots, an unreferenced push, and whatever op.prior adds.
func newCrashWorld(t *testing.T, op crashOp) *crashWorld {
	t.Helper()
	ctx := t.Context()
	base := t.TempDir()
	w := &crashWorld{store: filepath.Join(base, "prior", DirName), clock: time.Now(),
		srcs: map[string]string{}, objs: map[string]*Object{}}
	gen := func(name string, entries []genEntry) {
		src := filepath.Join(base, "src", name)
		writeGenTree(t, src, entries)
		w.srcs[name] = src
	}
	gen("data", []genEntry{
		{path: "a.bin", kind: KindFile, data: pseudoRandom(300<<10, 1)},
		{path: "sub/b.txt", kind: KindFile, data: []byte("bee\n")},
	})
	gen("v1", []genEntry{{path: "v.bin", kind: KindFile, data: pseudoRandom(150<<10, 2)}})
	gen("v2", []genEntry{{path: "v.bin", kind: KindFile, data: pseudoRandom(150<<10, 3)}})
	gen("trash", []genEntry{{path: "junk.bin", kind: KindFile, data: pseudoRandom(200<<10, 4)}})
	newFiles := []genEntry{
		{path: "fresh.bin", kind: KindFile, data: pseudoRandom(250<<10, 5)},
		{path: "shared.bin", kind: KindFile, data: pseudoRandom(300<<10, 1)}, // a.bin again
		{path: "deep/x/y.txt", kind: KindFile, data: []byte("why\n")},
	}
	gen("new", newFiles)
	gen("new-copy", newFiles) // the same content at another path: no stat cache
	w.trash = w.srcs["trash"]

	p, err := NewChunkParams(64 << 10)
	if err != nil {
		t.Fatal(err)
	}
	if err := Init(w.store, p, w.clock); err != nil {
		t.Fatal(err)
	}
	r := w.open(t)
	crashPushRef(t, r, w, "data", "data")
	crashPushRef(t, r, w, "v1", "grp/moving")
	old := w.wants[len(w.wants)-1]
	w.wants = w.wants[:len(w.wants)-1]
	crashPushRef(t, r, w, "v2", "grp/moving")
	// The first target of the moved ref stays by its history: reachable by
	// digest.
	w.wants = append(w.wants, crashWant{spec: w.objs["v1"].Digest.String(), dir: old.dir})
	man := testManifest(w.objs["data"].Digest, digest.Of(nil), 0)
	ids, err := r.PutObjects(ctx, man)
	if err != nil {
		t.Fatal(err)
	}
	manObj := Object{Digest: ids[0], Kind: KindFile, Size: int64(len(man)), Type: "manifest"}
	if _, err := r.Pin(ctx, nil, "paper", manObj, PinOptions{}); err != nil {
		t.Fatal(err)
	}
	w.wants = append(w.wants, crashWant{spec: PinPrefix + "paper", file: man})
	res, err := r.Push(ctx, []string{w.trash}, PushOptions{})
	if err != nil {
		t.Fatal(err)
	}
	w.garbage = &Object{Digest: res.Digest, Kind: res.Kind, Size: res.Bytes}
	if op.prior != nil {
		op.prior(t, r, w)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	return w
}

// open opens a store directory with the world's clock.
func (w *crashWorld) openDir(ctx context.Context, dir string) (*Repo, error) {
	r, err := Open(ctx, dir)
	if err != nil {
		return nil, err
	}
	r.Clock = clock.Func(func() time.Time { return w.clock })
	r.Transfers = 1 // one order of steps from run to run
	return r, nil
}

func (w *crashWorld) open(t *testing.T) *Repo {
	t.Helper()
	r, err := w.openDir(t.Context(), w.store)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// copyStore copies the prior state into a new directory.
func (w *crashWorld) copyStore(t *testing.T) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), DirName)
	if err := copyTree(w.store, dst); err != nil {
		t.Fatalf("copy the store: %v", err)
	}
	return dst
}

// copyTree copies regular files and directories, keeping modes and mtimes
// (gc's grace period reads the mtimes).
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		target := filepath.Join(dst, strings.TrimPrefix(p, src))
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		if !fi.Mode().IsRegular() {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if err := os.WriteFile(target, data, 0o644); err != nil {
			return err
		}
		if err := os.Chmod(target, fi.Mode().Perm()); err != nil {
			return err
		}
		return os.Chtimes(target, fi.ModTime(), fi.ModTime())
	})
}

// countSteps runs op on a copy of the prior state and returns the number
// of steps it took, and their names.
func (w *crashWorld) countSteps(t *testing.T, op crashOp) (int, []string) {
	t.Helper()
	dir := w.copyStore(t)
	r, err := w.openDir(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	h := &crashHook{}
	r.Backend.(*remote.Local).Fault = h.step
	if _, err := op.run(t.Context(), r, w); err != nil {
		t.Fatalf("%s without a crash: %v", op.name, err)
	}
	if h.n == 0 {
		t.Fatalf("%s took no step: the harness tests nothing", op.name)
	}
	return h.n, h.steps
}

// crashAt runs op on a copy of the prior state with step i failing, and
// checks what is left.
func (world *crashWorld) crashAt(t *testing.T, op crashOp, i int) {
	ctx := t.Context()
	w := new(crashWorld)
	*w = *world // its own clock
	dir := w.copyStore(t)
	r, err := w.openDir(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	h := &crashHook{failAt: i}
	r.Backend.(*remote.Local).Fault = h.step
	result, opErr := op.run(ctx, r, w)
	if err := r.Close(); err != nil {
		t.Fatalf("close the crashed store: %v", err)
	}
	if h.crashed == "" {
		t.Fatalf("step %d never came: %s takes fewer steps from run to run", i, op.name)
	}
	t.Logf("crashed at %q; %s returned %v", h.crashed, op.name, opErr)

	r, err = w.openDir(ctx, dir)
	if err != nil {
		t.Fatalf("open the crashed store: %v", err)
	}
	defer r.Close()
	wants := w.wants
	// A gc killed while sweeping holds its claim for the lease: the next
	// one runs after it.
	w.clock = w.clock.Add(gc.SweepLease(DefaultGrace) + time.Second)
	if opErr == nil {
		// It said it succeeded although a step failed: then its result
		// must be there.
		wants = append(wants, result...)
	}
	// (a), (b): the store verifies and serves what it held.
	checkCrashStore(t, r, "after the crash", wants)
	if t.Failed() {
		return
	}
	// (c): the operation runs again, and its result is whole.
	result, err = op.run(ctx, r, w)
	if err != nil {
		t.Fatalf("%s again after the crash: %v", op.name, err)
	}
	wants = append(wants, result...)
	checkCrashStore(t, r, op.name+" again", wants)
	if t.Failed() {
		return
	}
	wants = slices.DeleteFunc(wants, func(w crashWant) bool { return w.unrooted })
	// (d): gc runs to the end, keeps everything referenced, and in the
	// end collects everything else.
	// (What the first loses, the check after the second finds lost.)
	if _, err := r.GC(ctx, nil, GCOptions{}); err != nil {
		t.Fatalf("gc after the crash: %v", err)
	}
	if _, err := r.GC(ctx, nil, GCOptions{Grace: NoGrace}); err != nil {
		t.Fatalf("gc without grace after the crash: %v", err)
	}
	checkCrashStore(t, r, "after a gc without grace", wants)
	checkNoGarbage(t, r, wants)
	// The collected garbage pushed again is stored again.
	res, err := r.Push(ctx, []string{w.trash}, PushOptions{})
	if err != nil {
		t.Fatalf("push the collected data again: %v", err)
	}
	if _, err := r.SetRef(ctx, "trash", Object{Digest: res.Digest, Kind: res.Kind, Size: res.Bytes}); err != nil {
		t.Fatal(err)
	}
	checkCrashStore(t, r, "collected data pushed again", append(wants, crashWant{spec: "trash", dir: snapshotDir(t, w.trash)}))
}

// checkCrashStore checks, through r and through a view built from the
// store's own objects alone (no cached index), that everything verifies
// and that every want restores byte for byte.
func checkCrashStore(t *testing.T, r *Repo, when string, wants []crashWant) {
	t.Helper()
	ctx := t.Context()
	view, err := OpenRemoteOnly(ctx, r.Backend)
	if err != nil {
		t.Errorf("%s: open the store's objects alone: %v", when, err)
		return
	}
	for _, v := range []struct {
		name string
		r    *Repo
	}{{"store", r}, {"store without its cache", view}} {
		rep, err := v.r.VerifyAll(ctx, nil)
		if err != nil {
			t.Errorf("%s: %s: verify: %v", when, v.name, err)
			continue
		}
		if !rep.OK() {
			t.Errorf("%s: %s: verify found damage: %+v", when, v.name, rep.Problems)
		}
		for _, want := range wants {
			if err := restoreWant(ctx, v.r, want, t.TempDir()); err != nil {
				t.Errorf("%s: %s: %s: %v", when, v.name, want.spec, err)
			}
		}
	}
}

// restoreWant restores want.spec from r and compares it with what it
// must hold.
func restoreWant(ctx context.Context, r *Repo, want crashWant, tmp string) error {
	obj, err := r.Resolve(ctx, want.spec)
	if err != nil {
		return fmt.Errorf("resolve: %w", err)
	}
	rep, err := r.Verify(ctx, obj, want.spec, nil)
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	if !rep.OK() {
		return fmt.Errorf("verify: %+v", rep.Problems)
	}
	if want.dir == nil {
		var buf bytes.Buffer
		if err := r.WriteFile(ctx, obj, &buf); err != nil {
			return fmt.Errorf("read: %w", err)
		}
		if !bytes.Equal(buf.Bytes(), want.file) {
			return fmt.Errorf("got %d bytes (%s), want %d bytes (%s)", buf.Len(), digest.Of(buf.Bytes()).Short(), len(want.file), digest.Of(want.file).Short())
		}
		return nil
	}
	dest := filepath.Join(tmp, "out")
	if _, err := r.Restore(ctx, obj, dest, RestoreOptions{}); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	got, err := snapshotDirE(dest)
	if err != nil {
		return err
	}
	return diffSnapshots(got, want.dir)
}

// checkNoGarbage fails unless every pack in the store holds something
// that a want needs: a gc without grace leaves nothing else.
func checkNoGarbage(t *testing.T, r *Repo, wants []crashWant) {
	t.Helper()
	ctx := t.Context()
	view, err := OpenRemoteOnly(ctx, r.Backend)
	if err != nil {
		t.Fatal(err)
	}
	live := map[digest.Digest]bool{}
	for _, want := range wants {
		obj, err := view.Resolve(ctx, want.spec)
		if err != nil {
			t.Errorf("resolve %s: %v", want.spec, err)
			continue
		}
		if err := view.closurePacks(ctx, obj, live); err != nil {
			t.Errorf("packs of %s: %v", want.spec, err)
		}
	}
	for _, key := range keys(t, r.Backend, format.PackPrefix) {
		id, err := format.PackIDFromKey(key)
		if err != nil || !live[id] {
			t.Errorf("%s: left by a gc without grace, though nothing needs it", key)
		}
	}
}

// snapshotDirE records every path below root as snapshotDir does, and
// returns its error instead of failing a test.
func snapshotDirE(root string) (map[string]fsNode, error) {
	out := map[string]fsNode{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == root {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		switch {
		case fi.Mode().IsDir():
			out[rel] = fsNode{kind: KindDir}
		case fi.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			out[rel] = fsNode{kind: KindLink, target: target}
		case fi.Mode().IsRegular():
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			k := KindFile
			if fi.Mode()&0o111 != 0 {
				k = KindExec
			}
			out[rel] = fsNode{kind: k, data: data}
		default:
			out[rel] = fsNode{}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("snapshot %s: %w", root, err)
	}
	return out, nil
}

// snapshotDirErr is snapshotDir for sources the test wrote: it panics on
// an error, which is a broken test.
func snapshotDirErr(root string) map[string]fsNode {
	m, err := snapshotDirE(root)
	if err != nil {
		panic(err)
	}
	return m
}

// diffSnapshots returns the first difference between got and want.
func diffSnapshots(got, want map[string]fsNode) error {
	for name, w := range want {
		g, ok := got[name]
		switch {
		case !ok:
			return fmt.Errorf("%q: missing, want a %v", name, w.kind)
		case g.kind != w.kind:
			return fmt.Errorf("%q: got a %v, want a %v", name, g.kind, w.kind)
		case g.target != w.target:
			return fmt.Errorf("%q: got link target %q, want %q", name, g.target, w.target)
		case !bytes.Equal(g.data, w.data):
			return fmt.Errorf("%q: got %d bytes (%s), want %d bytes (%s)", name, len(g.data), digest.Of(g.data).Short(), len(w.data), digest.Of(w.data).Short())
		}
	}
	for name, g := range got {
		if _, ok := want[name]; !ok {
			return fmt.Errorf("%q: got an unexpected %v", name, g.kind)
		}
	}
	return nil
}
