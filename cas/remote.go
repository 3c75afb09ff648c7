package cas

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"sync/atomic"

	"github.com/cas-ml/cas/cas/format"
	"github.com/cas-ml/cas/digest"
	"github.com/cas-ml/cas/index"
	"github.com/cas-ml/cas/internal/par"
	"github.com/cas-ml/cas/remote"
)

// transfers is how many requests to a remote run at once.
func (r *Repo) transfers() int {
	if r.Transfers > 0 {
		return r.Transfers
	}
	return remote.DefaultConnections
}

// RemotesFile is the path of the store's remotes (remote.ConfigFile),
// which package remote reads and edits.
func (r *Repo) RemotesFile() string { return filepath.Join(r.Dir, remote.ConfigFile) }

// AddRemote records a remote of the store (remote.AddConfig), whose name
// must be a ref name without a slash. The first one added is the default.
func (r *Repo) AddRemote(c remote.Config) error {
	if !ValidRefName(c.Name) || strings.Contains(c.Name, "/") {
		return fmt.Errorf("remote name %q: %w", c.Name, ErrBadRefName)
	}
	return remote.AddConfig(r.RemotesFile(), c)
}

// UseRemote makes be the store's remote: packs the local store lacks are
// read from it with ranged GETs, so a restore needs no local copy of the
// data. Where be keeps a lookup index (docs/FORMAT.md §7a), reads look up
// the IDs the local index lacks, a few small requests each, whatever be's
// history; otherwise be's index segments are all loaded now.
//
// When it fails, the store is left without a remote: be's first request
// is often its only check (no such bucket, credentials refused), and a
// caller that goes on reading must not read through it.
func (r *Repo) UseRemote(ctx context.Context, be remote.Backend) (err error) {
	r.remote = be
	r.packs.fallback = be
	defer func() {
		if err != nil {
			r.remote, r.packs.fallback, r.lazy = nil, nil, nil
		}
	}()
	rd := r.lookupReader(be)
	lazy, err := hasLookupIndexBy(ctx, rd, be)
	if err != nil {
		return err
	}
	if !lazy {
		return r.syncIndexFrom(ctx, be)
	}
	r.lazy = newLazyRemote(be, rd)
	if err := r.forgetCollected(ctx, be); err != nil {
		return fmt.Errorf("read gc records on %s: %w", be.Location(), err)
	}
	return nil
}

// HasRemote reports whether UseRemote gave the store a remote to read
// missing data from.
func (r *Repo) HasRemote() bool { return r.remote != nil }

// TransferStats say what an upload or download moved.
type TransferStats struct {
	Objects int64   `json:"objects"`
	Bytes   int64   `json:"bytes"`
	Skipped int64   `json:"skipped"` // already there
	Seconds float64 `json:"seconds"`
}

// uploadAll copies to dst every pack, then every index segment, that dst
// lacks, listing both: what Upload falls back to when dst lost what it
// was given (a gc on dst deleted packs the store had uploaded). Where dst
// keeps a lookup index, the segments' entries go into it first.
func (r *Repo) uploadAll(ctx context.Context, dst remote.Backend, prog *Progress) (*TransferStats, error) {
	start := r.Now()
	st := &TransferStats{}
	packs, err := r.missingOn(ctx, r.Backend, dst, format.PackPrefix, st)
	if err != nil {
		return nil, err
	}
	if err := r.copyAll(ctx, r.Backend, dst, packs, st, prog); err != nil {
		return nil, err
	}
	segs, err := r.missingOn(ctx, r.Backend, dst, format.SegmentPrefix, st)
	if err != nil {
		return nil, err
	}
	if err := r.lookupEntriesFor(ctx, dst, segs); err != nil {
		return nil, err
	}
	if err := r.copyAll(ctx, r.Backend, dst, segs, st, prog); err != nil {
		return nil, err
	}
	st.Seconds = r.Now().Sub(start).Seconds()
	return st, nil
}

// lookupEntriesFor writes the lookup entries of the local segments segs
// to dst, if dst keeps a lookup index.
func (r *Repo) lookupEntriesFor(ctx context.Context, dst remote.Backend, segs []remote.ObjectInfo) error {
	if runs, err := r.lookupIndexOn(ctx, dst); err != nil || !runs {
		return err
	}
	keys := make([]string, len(segs))
	for i, oi := range segs {
		keys[i] = oi.Key
	}
	_, err := r.writeSegmentEntries(ctx, r.Backend, dst, keys, &UpgradeStats{}, nil)
	return err
}

// missingOn lists the objects under prefix that dst lacks. An object dst
// holds under the same name but with another size (cut short on the way,
// or damaged) is deleted there, to be copied again.
func (r *Repo) missingOn(ctx context.Context, src, dst remote.Backend, prefix string, st *TransferStats) ([]remote.ObjectInfo, error) {
	have := map[string]int64{}
	if err := dst.List(ctx, prefix, func(oi remote.ObjectInfo) error { have[oi.Key] = oi.Size; return nil }); err != nil {
		return nil, fmt.Errorf("list %s on %s: %w", prefix, dst.Location(), err)
	}
	var todo []remote.ObjectInfo
	err := src.List(ctx, prefix, func(oi remote.ObjectInfo) error {
		size, ok := have[oi.Key]
		switch {
		case ok && size == oi.Size:
			st.Skipped++
			return nil
		case ok:
			if err := dst.Delete(ctx, oi.Key); err != nil && !errors.Is(err, remote.ErrNotFound) {
				return fmt.Errorf("replace %s on %s, of %d bytes where %d belong: %w", oi.Key, dst.Location(), size, oi.Size, err)
			}
		}
		todo = append(todo, oi)
		return nil
	})
	return todo, err
}

// Publish makes obj available on be, named ref (none for ""), in the
// order that never lets a reader of be see a name for data be lacks:
// every pack, then every index segment (Upload), then the ref (SetRefOn,
// which first checks that be holds obj's whole closure). Without a ref it
// checks the closure all the same before it reports obj as published.
func (r *Repo) Publish(ctx context.Context, be remote.Backend, ref string, obj Object, prog *Progress) (*TransferStats, error) {
	return r.publish(ctx, be, ref, obj, prog, true)
}

// publish is Publish. Without a ref, checked says to check that be holds
// obj's closure, as setting a ref does: a caller publishing what it did
// not just push (an upload owed since an offline push, whose data a gc
// may have taken meanwhile) must not report it as stored unchecked.
func (r *Repo) publish(ctx context.Context, be remote.Backend, ref string, obj Object, prog *Progress, checked bool) (*TransferStats, error) {
	st, err := r.Upload(ctx, be, prog)
	if err != nil {
		return nil, fmt.Errorf("upload to %s: %w", be.Location(), err)
	}
	if ref == "" && !checked {
		return st, nil
	}
	check := func() error {
		if ref == "" {
			return r.CheckClosure(ctx, be, []Object{obj})
		}
		_, err := r.SetRefOn(ctx, be, ref, obj)
		return err
	}
	err = check()
	if errors.Is(err, ErrIncomplete) {
		// be lost packs it was given (a gc on it): compare it whole.
		if _, err := r.uploadAll(ctx, be, prog); err != nil {
			return nil, fmt.Errorf("upload to %s: %w", be.Location(), err)
		}
		err = check()
	}
	switch {
	case err != nil && ref == "":
		return nil, fmt.Errorf("upload to %s: %s: %w", be.Location(), obj.Digest.Short(), err)
	case err != nil:
		return nil, fmt.Errorf("set ref %s on %s: %w", ref, be.Location(), err)
	}
	return st, nil
}

// copyAll copies objects, several at once, counting them in st and prog.
func (r *Repo) copyAll(ctx context.Context, src, dst remote.Backend, todo []remote.ObjectInfo, st *TransferStats, prog *Progress) error {
	if prog != nil {
		for _, oi := range todo {
			prog.TotalBytes.Add(oi.Size)
			prog.TotalFiles.Add(1)
		}
	}
	var objects, bytes atomic.Int64
	err := par.ForEach(ctx, todo, r.transfers(), func(ctx context.Context, oi remote.ObjectInfo) error {
		if err := copyObject(ctx, src, dst, oi); err != nil {
			return err
		}
		objects.Add(1)
		bytes.Add(oi.Size)
		if prog != nil {
			prog.Files.Add(1)
			prog.Bytes.Add(oi.Size)
		}
		return nil
	})
	st.Objects += objects.Load()
	st.Bytes += bytes.Load()
	return err
}

// copyObject streams one immutable object. Into the local store, what
// arrives is checked against its name (a digest) before it stays; to a
// remote, the backend's own checksums guard the way.
func copyObject(ctx context.Context, src, dst remote.Backend, oi remote.ObjectInfo) error {
	rc, err := src.Get(ctx, oi.Key, 0, -1)
	if err != nil {
		return fmt.Errorf("read %s: %w", oi.Key, err)
	}
	defer rc.Close()
	want, named := digest.ParseHex(oi.Key[strings.LastIndexByte(oi.Key, '/')+1:])
	_, local := dst.(pather)
	if !local || named != nil {
		err = dst.Put(ctx, oi.Key, rc, oi.Size, remote.PutOptions{IfNoneMatch: true})
		if err != nil && !errors.Is(err, remote.ErrExists) {
			return fmt.Errorf("copy %s to %s: %w", oi.Key, dst.Location(), err)
		}
		return nil
	}
	h := digest.New()
	err = dst.Put(ctx, oi.Key, io.TeeReader(rc, h), oi.Size, remote.PutOptions{IfNoneMatch: true})
	if errors.Is(err, remote.ErrExists) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("copy %s to %s: %w", oi.Key, dst.Location(), err)
	}
	if digest.FromHash(h) != want && !packNamedByTrailer(ctx, dst, oi, want) {
		// Damaged on the way: take it back out.
		_ = dst.Delete(ctx, oi.Key)
		return fmt.Errorf("download %s: %w", oi.Key, &CorruptError{What: "object", ID: want})
	}
	return nil
}

// packNamedByTrailer reports whether the object oi, just copied to be, is
// a pack named want by the BLAKE3 of its trailer (format.PackNamed); its
// blobs' bytes are checked against their IDs when read.
func packNamedByTrailer(ctx context.Context, be remote.Backend, oi remote.ObjectInfo, want digest.Digest) bool {
	if id, err := format.PackIDFromKey(oi.Key); err != nil || id != want {
		return false
	}
	tail, err := readPackTail(ctx, be, want, oi.Size)
	return err == nil && digest.Of(tail) == want
}

// Pull copies into the local store the packs that hold everything obj
// needs, with what it keeps (Keeps: a run's inputs, outputs, logs…), so
// that they restore and verify without the remote.
//
// obj's kind and size usually come from a ref or pin, which a bucket can
// write as it likes, and they decide what is pulled (a size of 0 pulls
// nothing, a manifest said to be a directory keeps no closure): they are
// checked against the data first, and a *MismatchError refuses the pull
// when they differ. obj.Type is set when obj turns out to be a manifest.
//
// A copy of a pack in this store found damaged on the way (a chunk that
// fails its ID) is replaced by the remote's, once that is read whole and
// checked, and the pull starts again: pulling again repairs what pulling
// brought, as pushing again repairs what pushing stored (repairPack).
func (r *Repo) Pull(ctx context.Context, obj *Object, prog *Progress) (*TransferStats, error) {
	if r.remote == nil {
		return nil, errors.New("no remote to pull from")
	}
	repaired := map[digest.Digest]bool{}
	sound := map[digest.Digest]error{} // packs found sound whole, and how
	var fetched TransferStats
	for {
		st, err := r.pull(ctx, obj, prog)
		if st != nil {
			st.Objects += fetched.Objects
			st.Bytes += fetched.Bytes
		}
		var ce *CorruptError
		// A chunk that fails its ID, or one the pack ends before (a copy
		// cut short): repairPack finds whether the pack is damaged.
		if err == nil || ctx.Err() != nil || !errors.As(err, &ce) || ce.What != "chunk" && ce.What != "index entry" || ce.Pack.IsZero() ||
			repaired[ce.Pack] || len(repaired) >= maxPullRepairs {
			if ce != nil && sound[ce.Pack] != nil {
				err = fmt.Errorf("%w (%w)", err, sound[ce.Pack])
			}
			return st, err
		}
		repaired[ce.Pack] = true
		n, rerr := r.repairPack(ctx, ce.Pack)
		if errors.Is(rerr, errPackSound) {
			// The copy read damaged may be one replaced since, by a pull
			// of another process or of this one: read again, once.
			sound[ce.Pack] = rerr
			continue
		}
		if rerr != nil {
			return nil, fmt.Errorf("%w (%w)", err, rerr)
		}
		fetched.Objects++
		fetched.Bytes += n
	}
}

// maxPullRepairs bounds the packs one pull replaces: a store with more
// damaged is a matter for verify.
const maxPullRepairs = 16

func (r *Repo) pull(ctx context.Context, obj *Object, prog *Progress) (*TransferStats, error) {
	if err := r.checkNamed(ctx, obj); err != nil {
		return nil, err
	}
	more, whats, err := r.closureParts(ctx, obj)
	if err != nil {
		return nil, err
	}
	start := r.Now()
	st := &TransferStats{}
	need, todo, kept, err := r.pullPlan(ctx, append([]Object{*obj}, more...), st)
	if isNotFound(err) {
		// The remote's lookup index named a pack a gc has deleted: its
		// segments say where the blobs are now.
		if did, serr := r.syncLazy(ctx); serr != nil {
			return nil, errors.Join(err, serr)
		} else if did {
			st = &TransferStats{}
			need, todo, kept, err = r.pullPlan(ctx, append([]Object{*obj}, more...), st)
		}
	}
	if err != nil {
		return nil, err
	}
	if err := r.copyAll(ctx, r.remote, r.Backend, todo, st, prog); err != nil {
		return nil, err
	}
	// The local store takes nothing on a bucket's word: its segment is
	// written from what was checked here, every chunk of every pulled pack
	// against its ID and every multi-chunk file against its digest.
	blobs := kept
	pulled, good, bad := map[digest.Digest]bool{}, map[digest.Digest]bool{}, map[digest.Digest]bool{}
	for _, b := range kept {
		pulled[b.Pack], good[b.ID] = true, true
	}
	for _, oi := range todo {
		id, _ := format.PackIDFromKey(oi.Key)
		pulled[id] = true
		sound, damaged, _ := r.checkLocalPack(ctx, oi.Key)
		for _, d := range damaged {
			bad[d] = true
		}
		blobs = append(blobs, sound...)
		for _, b := range sound {
			good[b.ID] = true
		}
	}
	// What was pulled holds every blob of the closure, intact, or the
	// pull fails: a chunk the remote's pack lacks or has wrong is named.
	for _, b := range need {
		if pulled[b.Pack] && bad[b.ID] {
			return nil, fmt.Errorf("pulled %s: %w", format.PackKey(b.Pack), &CorruptError{What: "chunk", ID: b.ID})
		}
	}
	for _, b := range need {
		if pulled[b.Pack] && !good[b.ID] {
			return nil, fmt.Errorf("pulled %s: %w", format.PackKey(b.Pack), &CorruptError{What: "chunk", ID: b.ID})
		}
	}
	// The size checkNamed took from the index (which the bucket's
	// segments fed) is checked against the bytes, and so is what every
	// tree pulled says of what it holds; every file of many chunks is read
	// whole against its digest.
	check := pullCheck{r: r, lens: make(map[digest.Digest]uint32, len(blobs)),
		sizes: map[digest.Digest]int64{}, files: map[digest.Digest][]digest.Digest{}, trees: map[digest.Digest]int64{}}
	for _, b := range blobs {
		check.lens[b.ID] = b.RawLen
	}
	for i, o := range append([]Object{*obj}, more...) {
		err := error(nil)
		if o.Kind == KindDir {
			_, err = check.tree(ctx, o.Digest)
		} else if err = check.file(ctx, &o); err != nil {
			err = fmt.Errorf("pulled file %s: %w", o.Digest.Short(), err)
		}
		if err != nil && i > 0 {
			// A part of a run: which one.
			err = fmt.Errorf("%s: %w", whats[i-1], err)
		}
		if err != nil {
			return nil, err
		}
	}
	files := check.files
	if len(blobs) > 0 || len(files) > 0 {
		if _, err := r.writeSegment(ctx, blobs, files); err != nil {
			return nil, err
		}
	}
	st.Seconds = r.Now().Sub(start).Seconds()
	return st, nil
}

// MismatchError reports an object named (by a ref or a pin) as other than
// its data is: a directory that is a file, a file that is a directory, or
// a size the data does not have. The data is checked against its digest,
// so the data is right and the name is not.
type MismatchError struct {
	Digest digest.Digest
	Named  Object // the kind and size the name gave
	Is     Object // those of the data
}

func (e *MismatchError) Error() string {
	word := func(k Kind) string {
		if k == KindDir {
			return "directory"
		}
		return "file"
	}
	return fmt.Sprintf("%s is a %s of %d bytes, not the %s of %d bytes it is named as",
		e.Digest.Short(), word(e.Is.Kind), e.Is.Size, word(e.Named.Kind), e.Named.Size)
}

// Unwrap makes a MismatchError an ErrInvalidObject: what named the object
// is to be treated as damaged.
func (e *MismatchError) Unwrap() error { return ErrInvalidObject }

// checkNamed checks what obj says of its data against the data: whether
// it is a tree, and its size (a tree's from the tree, read against its
// digest; a file's from the index, which Pull checks against the bytes
// it pulls). An exec bit stays as named: the data cannot tell. Data found
// nowhere is ErrDataNotFound: its name was found, its bytes were not.
func (r *Repo) checkNamed(ctx context.Context, obj *Object) error {
	is, err := r.objectOf(ctx, obj.Digest, obj.Name)
	if errors.Is(err, ErrNotFound) && !errors.Is(err, ErrDataNotFound) {
		return fmt.Errorf("%s %s: %w", obj.Kind, obj.Digest.Short(), ErrDataNotFound)
	}
	if err != nil {
		return err
	}
	if (is.Kind == KindDir) != (obj.Kind == KindDir) || is.Size != obj.Size {
		return &MismatchError{Digest: obj.Digest, Named: *obj, Is: *is}
	}
	return nil
}

// errNotChecked says that the chunk of a file is not among the blobs a
// pull checked.
var errNotChecked = errors.New("chunk not checked by the pull")

// pullCheck checks the sizes a pull was given (by a ref, by the trees it
// pulled) against the bytes it checked, walking each tree once.
type pullCheck struct {
	r     *Repo
	lens  map[digest.Digest]uint32          // every chunk checked, against its ID and length: its length
	sizes map[digest.Digest]int64           // files checked, at this size
	files map[digest.Digest][]digest.Digest // the chunk lists of those of many chunks
	trees map[digest.Digest]int64           // trees checked, and what they hold
}

// file checks the size obj gives a file or link target. A file of many
// chunks is read whole against its digest and the size it is first met
// with, and its chunk list kept for the store's segment. A file of one
// chunk is its chunk: when the pull checked that, against its ID and its
// length, the size must be that length, or 0 for the empty file, which
// has no chunk; when a pack the store already knew holds it, it is read
// again against its digest and the size (readAgain). A file met again is
// checked against the size it was checked at.
func (c *pullCheck) file(ctx context.Context, obj *Object) error {
	if size, ok := c.sizes[obj.Digest]; ok {
		if size != obj.Size {
			return &MismatchError{Digest: obj.Digest, Named: *obj, Is: Object{Digest: obj.Digest, Kind: KindFile, Size: size}}
		}
		return nil
	}
	chunks, err := c.r.fileChunks(ctx, obj.Digest, obj.Size)
	switch {
	case err != nil:
	case len(chunks) > 1 || len(chunks) == 1 && chunks[0] != obj.Digest:
		if err = c.r.streamFile(ctx, obj.Digest, obj.Size, func([]byte) error { return nil }); err == nil {
			c.files[obj.Digest] = chunks
		}
	default:
		err = checkOneChunk(obj, c.lens)
		if errors.Is(err, errNotChecked) {
			err = c.readAgain(ctx, obj)
		}
	}
	if err == nil {
		c.sizes[obj.Digest] = obj.Size
	}
	return err
}

// readAgain reads a file of one chunk the store already held against
// its digest and the size obj gives it. Bytes that are whole at the size
// the index gives make a *MismatchError, as a chunk the pull checked
// would: the name lies, the data here is sound.
func (c *pullCheck) readAgain(ctx context.Context, obj *Object) error {
	nothing := func([]byte) error { return nil }
	err := c.r.streamFile(ctx, obj.Digest, obj.Size, nothing)
	var ce *CorruptError
	if errors.As(err, &ce) && ce.What == "file" && ce.ID == obj.Digest {
		is, ierr := c.r.objectOf(ctx, obj.Digest, "")
		if ierr == nil && is.Kind != KindDir && is.Size != obj.Size && c.r.streamFile(ctx, obj.Digest, is.Size, nothing) == nil {
			return &MismatchError{Digest: obj.Digest, Named: *obj, Is: *is}
		}
	}
	return err
}

// tree checks what tree d says of each entry against the data, as verify
// does: a directory's size against what its tree holds, a file's against
// its bytes, a link target's against maxLinkTarget too. It returns what d
// holds.
func (c *pullCheck) tree(ctx context.Context, d digest.Digest) (int64, error) {
	if size, ok := c.trees[d]; ok {
		return size, nil
	}
	t, err := c.r.ReadTree(ctx, d)
	if err != nil {
		return 0, err
	}
	for _, e := range t.Entries {
		named := &Object{Digest: e.Digest, Kind: e.Kind, Size: e.Size}
		switch {
		case e.Kind == KindDir:
			var size int64
			if size, err = c.tree(ctx, e.Digest); err == nil && size != e.Size {
				err = &MismatchError{Digest: e.Digest, Named: *named, Is: Object{Digest: e.Digest, Kind: KindDir, Size: size}}
			}
		case e.Kind == KindLink && e.Size > maxLinkTarget:
			err = fmt.Errorf("link target of %d bytes: %w", e.Size, ErrBadTree)
		default:
			err = c.file(ctx, named)
		}
		if err != nil {
			return 0, fmt.Errorf("pulled tree %s, %q: %w", d.Short(), e.Name, err)
		}
	}
	c.trees[d] = t.Size()
	return t.Size(), nil
}

// checkOneChunk checks the size obj gives a file of one chunk (or none)
// against the length of its chunk in lens, the length of every chunk
// checked against its ID and length: the chunk is the file.
// errNotChecked: it is not there. (A map, not the list of blobs: a pull
// checks every file of a tree, and a scan of the list for each made
// pulling 50,000 small files take 9.5 CPU-seconds rather than 1.5.)
func checkOneChunk(obj *Object, lens map[digest.Digest]uint32) error {
	if obj.Digest == emptyFile {
		if obj.Size != 0 {
			return &MismatchError{Digest: obj.Digest, Named: *obj, Is: Object{Digest: obj.Digest, Kind: KindFile}}
		}
		return nil
	}
	n, ok := lens[obj.Digest]
	if !ok {
		return errNotChecked
	}
	if int64(n) != obj.Size {
		return &MismatchError{Digest: obj.Digest, Named: *obj, Is: Object{Digest: obj.Digest, Kind: KindFile, Size: int64(n)}}
	}
	return nil
}

// pullPlan returns every blob of the closure of objs, where the index
// places it, and the remote's packs holding those the local store lacks.
// A pack the store holds but none of its segments names (left by a pull
// or push killed before its segment, or copied in) is vouched for by
// nothing, and a pack is named by its trailer alone: it is read whole
// and checked first. kept lists the blobs of those found sound, which
// the pull's segment names; one found damaged is taken out and pulled
// again, or it would stand in the way of the remote's copy for good.
func (r *Repo) pullPlan(ctx context.Context, objs []Object, st *TransferStats) (need map[digest.Digest]index.Blob, todo []remote.ObjectInfo, kept []index.Blob, err error) {
	packs := map[digest.Digest]bool{}
	need = map[digest.Digest]index.Blob{}
	for _, o := range objs {
		err := r.closureBlobs(ctx, &o, func(b index.Blob) {
			packs[b.Pack] = true
			need[b.ID] = b
		})
		if err != nil {
			return nil, nil, nil, err
		}
	}
	for p := range packs {
		if _, err := r.Backend.Stat(ctx, format.PackKey(p)); err == nil {
			known, err := storeKnowsPack(r.Index, p)
			if err != nil {
				return nil, nil, nil, err
			}
			if known {
				st.Skipped++
				continue
			}
			if blobs, _, ok := r.checkLocalPack(ctx, format.PackKey(p)); ok {
				st.Skipped++
				kept = append(kept, blobs...)
				continue
			}
		}
		oi, err := r.remote.Stat(ctx, format.PackKey(p))
		if err != nil {
			return nil, nil, nil, fmt.Errorf("pack %s on %s: %w", p.Short(), r.remote.Location(), err)
		}
		todo = append(todo, oi)
	}
	return need, todo, kept, nil
}

// checkLocalPack reads the store's pack at key whole and checks it
// (readPack): ok when every blob in it is sound, and damaged lists those
// that are not. A pack is named by its trailer, so damaged data can come
// under its true name: a copy with a damaged blob, or one that is not a
// pack at all (its header, which the trailer does not cover), is taken
// out, whole, or it would stand in the way of a sound one (a put never
// replaces an object).
func (r *Repo) checkLocalPack(ctx context.Context, key string) (blobs []index.Blob, damaged []digest.Digest, ok bool) {
	err := r.readPack(ctx, key, func(b index.Blob, _ []byte, berr error) error {
		if berr == nil {
			blobs = append(blobs, b)
		} else {
			damaged = append(damaged, b.ID)
		}
		return nil
	})
	if err != nil {
		r.warn(fmt.Errorf("check %s: %w", key, err))
	}
	var ce *CorruptError
	if len(damaged) == 0 && !errors.Is(err, format.ErrBadPack) && !errors.As(err, &ce) {
		return blobs, nil, err == nil // unread (an I/O error) is not found damaged
	}
	if derr := r.Backend.Delete(ctx, key); derr != nil && !isNotFound(derr) {
		r.warn(fmt.Errorf("remove the damaged copy of %s: %w", key, derr))
	}
	if id, err := format.PackIDFromKey(key); err == nil {
		r.packs.forget(id)
	}
	return nil, damaged, false
}

// closurePacks adds the packs holding obj's trees and chunks.
func (r *Repo) closurePacks(ctx context.Context, obj *Object, packs map[digest.Digest]bool) error {
	return r.closureBlobs(ctx, obj, func(b index.Blob) { packs[b.Pack] = true })
}

// closureBlobs calls fn with where the index places each blob (tree or
// chunk) obj needs.
func (r *Repo) closureBlobs(ctx context.Context, obj *Object, fn func(index.Blob)) error {
	addBlob := func(id digest.Digest) error {
		b, ok, err := r.locate(ctx, id)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("blob %s: %w", id.Short(), ErrDataNotFound)
		}
		fn(b)
		return nil
	}
	return r.walkClosure(ctx, obj, func(d digest.Digest, kind Kind, size int64) error {
		if kind == KindDir {
			return addBlob(d)
		}
		chunks, err := r.fileChunks(ctx, d, size)
		if err != nil {
			return err
		}
		for _, c := range chunks {
			if err := addBlob(c); err != nil {
				return err
			}
		}
		return nil
	})
}

// walkClosure calls fn for obj and, below a tree, for every tree, file and
// link it holds, each tree before what it holds. A tree met again (an
// identical subdirectory) is not read or walked again.
func (r *Repo) walkClosure(ctx context.Context, obj *Object, fn func(d digest.Digest, kind Kind, size int64) error) error {
	seen := map[digest.Digest]bool{}
	var walk func(d digest.Digest, kind Kind, size int64) error
	walk = func(d digest.Digest, kind Kind, size int64) error {
		if kind == KindDir {
			if seen[d] {
				return nil
			}
			seen[d] = true
		}
		if err := fn(d, kind, size); err != nil || kind != KindDir {
			return err
		}
		t, err := r.ReadTree(ctx, d)
		if err != nil {
			return err
		}
		for _, e := range t.Entries {
			if err := walk(e.Digest, e.Kind, e.Size); err != nil {
				return err
			}
		}
		return nil
	}
	return walk(obj.Digest, obj.Kind, obj.Size)
}

// syncIndexFrom loads the index segments of be (the store's backend or a
// remote) that the index lacks.
func (r *Repo) syncIndexFrom(ctx context.Context, be remote.Backend) error {
	if err := r.forgetCollected(ctx, be); err != nil {
		return fmt.Errorf("read gc records on %s: %w", be.Location(), err)
	}
	return r.syncSegments(ctx, be, false, false)
}

// syncSegments loads the segments of be the index lacks. A segment that
// vanished between the listing and the read was merged by a gc into one
// written before it was deleted: one more listing finds that one. A
// segment that cannot be read or fails its checks is skipped with a
// warning: verify reports it, and the data it named is stored again by
// the next push. On the store's own backend, a segment the index loaded
// that is no longer there makes the index rebuild (unless rebuilding):
// the cache never vouches for what the store no longer says.
func (r *Repo) syncSegments(ctx context.Context, be remote.Backend, relisted, rebuilding bool) error {
	var todo []string
	listed := map[digest.Digest]bool{}
	err := be.List(ctx, format.SegmentPrefix, func(oi remote.ObjectInfo) error {
		d, err := format.SegmentIDFromKey(oi.Key)
		if err != nil {
			return nil // not ours
		}
		listed[d] = true
		ok, err := r.Index.HasSegment(d)
		if err == nil && !ok {
			todo = append(todo, oi.Key)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("list index segments on %s: %w", be.Location(), err)
	}
	if be == r.Backend && !rebuilding {
		lost := false
		err := r.Index.StoreSegments(func(d digest.Digest) error {
			if !listed[d] {
				lost = true
				return errStop
			}
			return nil
		})
		if err != nil && !errors.Is(err, errStop) {
			return err
		}
		if lost {
			r.warn(errors.New("an index segment the local index had loaded is gone from the store: rebuilding the index"))
			_, _, err := r.RebuildIndex(ctx)
			return err
		}
	}
	gone := false
	// Fetched and checked several at once, a window at a time; indexed in
	// the listing's order. A fetched segment holds a small segment's bytes
	// or a larger one's file, never its decoded blobs.
	const window = 64
	got := make([]segmentFetch, window)
	for start := 0; start < len(todo); start += window {
		idx := make([]int, 0, window)
		for i := start; i < min(start+window, len(todo)); i++ {
			idx = append(idx, i)
		}
		err := par.ForEach(ctx, idx, r.transfers(), func(ctx context.Context, i int) error {
			fs, err := fetchSegment(ctx, be, todo[i])
			got[i-start] = segmentFetch{fs, err}
			return nil
		})
		if err != nil {
			closeFetched(got)
			return err
		}
		for _, i := range idx {
			g := got[i-start]
			got[i-start] = segmentFetch{} // let it go
			err := g.err
			if err == nil {
				err = r.indexFetched(be, g.fs)
				g.fs.close()
			}
			if errors.Is(err, remote.ErrNotFound) {
				gone = true // merged into a newer one by a gc meanwhile
				continue
			}
			if err != nil {
				if ctx.Err() != nil {
					closeFetched(got)
					return ctx.Err()
				}
				var ce *CorruptError
				var ie *InvalidError
				if errors.As(err, &ce) || errors.As(err, &ie) || errors.Is(err, ErrBadSegment) {
					r.warn(fmt.Errorf("skipped %w", err))
					continue
				}
				closeFetched(got)
				return err
			}
		}
	}
	if gone && !relisted {
		return r.syncSegments(ctx, be, true, rebuilding)
	}
	return nil
}

// OpenRemoteOnly opens a store that lives only on be, with an index
// built from be's segments (index.Spill: on disk, however many blobs they
// name): what verify --remote trusts. Close releases it.
func OpenRemoteOnly(ctx context.Context, be remote.Backend) (*Repo, error) {
	return OpenRemoteOnlyWith(ctx, be, OpenOptions{})
}

// OpenRemoteOnlyWith is OpenRemoteOnly with options.
func OpenRemoteOnlyWith(ctx context.Context, be remote.Backend, opts OpenOptions) (*Repo, error) {
	idx := index.NewSpill()
	r := newView(be, idx, opts.Clock)
	r.Warn = opts.Warn
	err := r.syncIndexFrom(ctx, be)
	if err == nil {
		err = idx.Compact()
	}
	if err != nil {
		idx.Close()
		return nil, err
	}
	return r, nil
}
