package cas

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/semaphore"
	"golang.org/x/sys/unix"

	"github.com/cas-ml/cas/cas/format"
	"github.com/cas-ml/cas/digest"
	"github.com/cas-ml/cas/index"
	"github.com/cas-ml/cas/internal/bufpool"
	"github.com/cas-ml/cas/internal/par"
)

// RestoreOptions tune a restore.
type RestoreOptions struct {
	// Force allows writing into a destination that is not empty. Entries
	// in the way are replaced; other files there are left alone.
	Force    bool
	Progress *Progress
}

// RestoreResult counts what a restore wrote.
type RestoreResult struct {
	Path  string `json:"path"`
	Files int64  `json:"files"`
	Dirs  int64  `json:"dirs"`
	Links int64  `json:"links"`
	Bytes int64  `json:"bytes"`
}

// maxLinkTarget bounds a symlink target a restore writes (and verify
// accepts): far beyond any system's PATH_MAX.
const maxLinkTarget = 1 << 20

// ErrIntoStore reports a restore that would write into the open store's own
// directory (.cas): a stored tree may hold a .cas of its own, and no data
// may alter the store's refs or packs behind its back.
var ErrIntoStore = errors.New("refusing to write into the store's own directory")

// Destinations a restore refuses without Force, each in a *DestError.
var (
	// ErrDestNotEmpty: a tree into a directory that is not empty.
	ErrDestNotEmpty = errors.New("destination exists and is not empty")
	// ErrDestExists: a file or link onto a name that is taken.
	ErrDestExists = errors.New("destination exists")
)

// DestError is a restore refused, without Force, because something is at
// its destination: Err is ErrDestNotEmpty or ErrDestExists.
type DestError struct {
	Path string
	Err  error
}

func (e *DestError) Error() string { return e.Path + ": " + e.Err.Error() }

func (e *DestError) Unwrap() error { return e.Err }

// Restore writes obj at dest. A directory is assembled beside dest and
// renamed into place at the end, so a failed restore leaves nothing
// behind; with Force into a non-empty directory, each file is written to a
// temporary name and renamed, so no file is ever left half-written. Every
// chunk is checked against its digest before it is written, and every file
// against its digest before it, or the assembled directory holding it, is
// renamed into place.
func (r *Repo) Restore(ctx context.Context, obj *Object, dest string, opts RestoreOptions) (*RestoreResult, error) {
	if opts.Progress == nil {
		opts.Progress = &Progress{}
	}
	opts.Progress.TotalBytes.Add(obj.Size)
	// Reads in flight: enough to keep the cores busy, or, when data may
	// come from a remote, as many as it takes requests at once.
	inFlight := 2 * runtime.GOMAXPROCS(0)
	if r.remote != nil {
		inFlight = max(inFlight, r.transfers())
	}
	rs := &restorer{r: r, opts: opts, res: &RestoreResult{},
		chunkSem: semaphore.NewWeighted(int64(inFlight))}
	// Like cp and tar, create missing parents; a trailing slash on a
	// single file's DEST names a directory to put it in.
	intoDir := strings.HasSuffix(dest, "/")
	dest = filepath.Clean(dest)
	parent := filepath.Dir(dest)
	if obj.Kind != KindDir && intoDir {
		parent = dest
	}
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return nil, err
	}
	if obj.Kind != KindDir {
		return rs.res, rs.restoreSingle(ctx, obj, dest)
	}
	rel, below, inside := r.whereStore(dest)
	if inside {
		return nil, fmt.Errorf("%s: %w", dest, ErrIntoStore)
	}
	if below {
		rs.storeRel = rel
	}
	var st unix.Stat_t
	err := unix.Lstat(dest, &st)
	switch {
	case errors.Is(err, unix.ENOENT):
	case err != nil:
		return nil, &os.PathError{Op: "lstat", Path: dest, Err: err}
	case st.Mode&unix.S_IFMT != unix.S_IFDIR:
		return nil, fmt.Errorf("%s exists and is not a directory", dest)
	default:
		empty, err := isEmptyDir(dest)
		if err != nil {
			return nil, err
		}
		if !empty && !opts.Force {
			return nil, &DestError{Path: dest, Err: ErrDestNotEmpty}
		}
		rs.inPlace = true
		if empty {
			// Restore straight into it (it may be a mount point, which no
			// rename can replace) and empty it again if the restore fails.
			defer func() {
				if !rs.done {
					removeContents(dest)
				}
			}()
		}
	}
	target := dest
	if !rs.inPlace {
		removeStaleStaging(filepath.Dir(dest), r.Now().Add(-staleStaging))
		target = filepath.Join(filepath.Dir(dest), ".cas-restore-"+randHex()+"-"+truncName(filepath.Base(dest)))
		if err := os.Mkdir(target, 0o755); err != nil {
			return nil, err
		}
		defer os.RemoveAll(target) // a no-op after the rename below
		rs.staged = true
	}
	if err := rs.restoreTree(ctx, obj.Digest, target, ""); err != nil {
		return nil, err
	}
	if !rs.inPlace {
		if err := os.Rename(target, dest); err != nil {
			return nil, fmt.Errorf("move restored tree into place: %w", err)
		}
	}
	rs.done = true
	rs.res.Path = dest
	return rs.res, nil
}

// staleStaging is the age past which a staging directory beside a
// destination is taken for the leftover of a killed restore.
const staleStaging = time.Hour

// removeStaleStaging removes the staging directories (.cas-restore-*) that
// restores killed before their rename left in dir, if older than before.
func removeStaleStaging(dir string, before time.Time) {
	names, _ := filepath.Glob(filepath.Join(dir, ".cas-restore-*"))
	for _, n := range names {
		fi, err := os.Lstat(n)
		if err == nil && fi.IsDir() && fi.ModTime().Before(before) {
			_ = os.RemoveAll(n)
		}
	}
}

func truncName(s string) string {
	if len(s) > 64 {
		return s[:64]
	}
	return s
}

func randHex() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func isEmptyDir(path string) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	names, err := f.Readdirnames(1)
	if len(names) == 0 && err != nil {
		return true, nil
	}
	return false, err
}

type restorer struct {
	r        *Repo
	opts     RestoreOptions
	res      *RestoreResult
	inPlace  bool
	chunkSem *semaphore.Weighted
	mu       sync.Mutex // guards res
	done     bool
	// storeRel is where the open store lies below the destination, if
	// it does: no entry may be written there or replace a parent of it.
	storeRel string
	// staged: the tree is written into a staging directory of its own,
	// renamed into place at the end, so a file goes straight to its name.
	staged bool
	// written counts the files written, for releasePages.
	written atomic.Int64
}

// releaseFiles is how many files a restore writes between two calls of
// the index's ReleasePages. Each file costs a lookup or two in the index,
// and each lookup can map up to 64 KiB of its tables into the resident
// set: left to the releaser's own ticks, a restore of small files maps
// tens of MiB between two of them.
const releaseFiles = 64

// pageReleaser is an index that hands its mapped pages back on demand
// (index.Badger).
type pageReleaser interface{ ReleasePages() }

var _ pageReleaser = (*index.Badger)(nil)

// fileWritten counts a file written and, every releaseFiles files, has
// the index hand back the pages its lookups mapped.
func (rs *restorer) fileWritten() {
	if rs.written.Add(1)%releaseFiles != 0 {
		return
	}
	if pr, ok := rs.r.Index.(pageReleaser); ok {
		pr.ReleasePages()
	}
}

// storePaths returns where the store's directory is: its path with every
// symlink resolved, and, when .cas itself is a symlink, where that link
// lies. Writing at either would alter the store.
func (r *Repo) storePaths() []string {
	if r.Dir == "" {
		return nil
	}
	var out []string
	if real, err := filepath.EvalSymlinks(r.Dir); err == nil {
		out = append(out, real)
	}
	if parent, err := filepath.EvalSymlinks(filepath.Dir(r.Dir)); err == nil {
		if link := filepath.Join(parent, filepath.Base(r.Dir)); !slices.Contains(out, link) {
			out = append(out, link)
		}
	}
	return out
}

// resolvePath resolves the symlinks of p's longest existing prefix and
// appends the rest as it is: where p is, or would be once created.
func resolvePath(p string) (string, error) {
	p, err := filepath.Abs(p)
	if err != nil {
		return "", err
	}
	rest := ""
	for {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			return filepath.Join(real, rest), nil
		}
		parent := filepath.Dir(p)
		if parent == p {
			return "", fmt.Errorf("resolve %s: no existing parent", p)
		}
		rest = filepath.Join(filepath.Base(p), rest)
		p = parent
	}
}

// whereStore resolves dir and says where the store lies from it: rel and
// below when the store is dir or lies below it; inside when dir is the
// store or lies in it, reproductions' work directories (.cas/repro/)
// excepted, as they hold no store data.
func (r *Repo) whereStore(dir string) (rel string, below, inside bool) {
	d, err := resolvePath(dir)
	if err != nil {
		return "", false, false
	}
	for _, store := range r.storePaths() {
		if up, err := filepath.Rel(d, store); err == nil && !below && up != ".." && !strings.HasPrefix(up, "../") {
			rel, below = filepath.ToSlash(up), true
		}
		if down, err := filepath.Rel(store, d); err == nil && down != ".." && !strings.HasPrefix(down, "../") {
			down = filepath.ToSlash(down)
			inside = inside || down != ReproDir && !strings.HasPrefix(down, ReproDir+"/")
		}
	}
	return rel, below, inside
}

// ReproDir is the directory of the store's directory where reproductions
// are checked out and run by default.
const ReproDir = "repro"

// touchesStore reports whether writing entry rel (of kind k) would write
// into the store or replace a directory holding it.
func (rs *restorer) touchesStore(rel string, k Kind) bool {
	s := rs.storeRel
	switch {
	case s == "":
		return false
	case rel == s || strings.HasPrefix(rel, s+"/"):
		return true
	case strings.HasPrefix(s, rel+"/"):
		return k != KindDir
	}
	return false
}

// removeContents empties a directory, leaving the directory itself.
func removeContents(dir string) {
	f, err := os.Open(dir)
	if err != nil {
		return
	}
	names, _ := f.Readdirnames(-1)
	f.Close()
	for _, n := range names {
		os.RemoveAll(filepath.Join(dir, n))
	}
}

type fileJob struct {
	e    TreeEntry
	path string
	rel  string
}

func (rs *restorer) restoreSingle(ctx context.Context, obj *Object, dest string) error {
	var st unix.Stat_t
	err := unix.Lstat(dest, &st)
	switch {
	case errors.Is(err, unix.ENOENT):
	case err != nil:
		return &os.PathError{Op: "lstat", Path: dest, Err: err}
	case st.Mode&unix.S_IFMT == unix.S_IFDIR:
		name := obj.Name
		if name == "" {
			name = obj.Digest.Hex()
		}
		dest = filepath.Join(dest, name)
		if _, err := os.Lstat(dest); err == nil && !rs.opts.Force {
			return &DestError{Path: dest, Err: ErrDestExists}
		}
	default:
		if !rs.opts.Force {
			return &DestError{Path: dest, Err: ErrDestExists}
		}
	}
	// Neither into the store nor over it (or over a directory holding it,
	// or the .cas link to it), as for a tree's entries.
	rel, below, inside := rs.r.whereStore(filepath.Dir(dest))
	if below {
		rs.storeRel = rel
	}
	if inside || rs.touchesStore(filepath.Base(dest), obj.Kind) {
		return fmt.Errorf("%s: %w", dest, ErrIntoStore)
	}
	rs.res.Path = dest
	e := TreeEntry{Name: filepath.Base(dest), Kind: obj.Kind, Size: obj.Size, Digest: obj.Digest}
	if e.Kind == KindLink {
		return rs.writeLink(ctx, e, dest)
	}
	return rs.writeFile(ctx, fileJob{e: e, path: dest, rel: filepath.Base(dest)})
}

// restoreTree creates the directories and links of a tree as it walks
// it, and hands its files to a pool of workers as it finds them: what is
// in flight is a file per worker and the trees on the walk's path,
// whatever the number of files.
func (rs *restorer) restoreTree(ctx context.Context, d digest.Digest, dir, rel string) error {
	walk := func(ctx context.Context, send func(fileJob) error) error {
		return rs.walk(ctx, d, dir, rel, send)
	}
	return par.Stream(ctx, runtime.GOMAXPROCS(0), walk, rs.writeFile)
}

func (rs *restorer) walk(ctx context.Context, d digest.Digest, dir, rel string, send func(fileJob) error) error {
	t, err := rs.r.ReadTree(ctx, d)
	if err != nil {
		return withPath(rel, err)
	}
	rs.res.Dirs++
	for _, e := range t.Entries {
		if !ValidName(e.Name) { // ParseTree checked; never trust twice-removed code
			return fmt.Errorf("%w: %q", ErrBadName, e.Name)
		}
		path := filepath.Join(dir, e.Name)
		erel := joinRel(rel, e.Name)
		if rs.touchesStore(erel, e.Kind) {
			return fmt.Errorf("%s: %w", erel, ErrIntoStore)
		}
		switch e.Kind {
		case KindDir:
			if err := rs.makeDir(path); err != nil {
				return err
			}
			if err := rs.walk(ctx, e.Digest, path, erel, send); err != nil {
				return err
			}
		case KindLink:
			if err := rs.writeLink(ctx, e, path); err != nil {
				return withPath(erel, err)
			}
		case KindFile, KindExec:
			if err := send(fileJob{e: e, path: path, rel: erel}); err != nil {
				return err
			}
		}
	}
	return nil
}

func withPath(rel string, err error) error {
	var ce *CorruptError
	if errors.As(err, &ce) && ce.Path == "" {
		ce2 := *ce
		ce2.Path = rel
		if rel == "" {
			ce2.Path = "."
		}
		return &ce2
	}
	if rel == "" {
		return err
	}
	return fmt.Errorf("%s: %w", rel, err)
}

// makeDir creates a directory, never following a symlink that stands in
// the way: in place, whatever is not a directory is replaced.
func (rs *restorer) makeDir(path string) error {
	err := os.Mkdir(path, 0o755)
	if err == nil || !errors.Is(err, os.ErrExist) {
		return err
	}
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		return nil
	}
	if err := os.Remove(path); err != nil {
		return err
	}
	return os.Mkdir(path, 0o755)
}

func (rs *restorer) writeLink(ctx context.Context, e TreeEntry, path string) error {
	if e.Size > maxLinkTarget {
		return fmt.Errorf("link target of %d bytes: %w", e.Size, ErrBadTree)
	}
	target, err := rs.r.readWhole(ctx, e.Digest, e.Size)
	if err != nil {
		return err
	}
	tmp := filepath.Join(filepath.Dir(path), ".cas-tmp-"+randHex())
	if err := os.Symlink(string(target), tmp); err != nil {
		return err
	}
	if err := rs.replace(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	rs.res.Links++
	return nil
}

// replace renames tmp to path, first removing a directory in the way.
func (rs *restorer) replace(tmp, path string) error {
	if rs.inPlace {
		var st unix.Stat_t
		if unix.Lstat(path, &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR {
			if err := os.RemoveAll(path); err != nil {
				return err
			}
		}
	}
	return os.Rename(tmp, path)
}

// readWhole reads a small stored file (a link target, a manifest) into
// memory, checked against its digest.
func (r *Repo) readWhole(ctx context.Context, d digest.Digest, size int64) ([]byte, error) {
	var out []byte
	read := func() error {
		out = make([]byte, 0, size)
		return r.streamFile(ctx, d, size, func(b []byte) error {
			out = append(out, b...)
			return nil
		})
	}
	err := read()
	if r.retryLazy(ctx, err) {
		err = read()
	}
	return out, err
}

// streamFile reads a stored file's chunks in order, each checked against
// its ID, hands them to fn (a chunk is valid only during the call), and
// then checks the file's length and digest.
func (r *Repo) streamFile(ctx context.Context, d digest.Digest, size int64, fn func([]byte) error) error {
	chunks, err := r.fileChunks(ctx, d, size)
	if err != nil {
		return err
	}
	h := digest.New()
	var n int64
	for _, c := range chunks {
		data, err := r.fetchChunk(ctx, c)
		if err != nil {
			return err
		}
		_, _ = h.Write(data)
		n += int64(len(data))
		err = fn(data)
		bufpool.Put(data)
		if err != nil {
			return err
		}
	}
	if n != size || digest.FromHash(h) != d {
		return &CorruptError{What: "file", ID: d}
	}
	return nil
}

// writeFile writes one file to a temporary name beside its destination and
// renames it into place once its digest checks out; into a staging
// directory, where nothing stands in the way and nothing is seen before
// the whole tree is renamed into place, it writes the file at its name.
func (rs *restorer) writeFile(ctx context.Context, j fileJob) error {
	name := j.path
	if !rs.staged {
		name = filepath.Join(filepath.Dir(j.path), ".cas-tmp-"+randHex())
	}
	mode := os.FileMode(0o644)
	if j.e.Kind == KindExec {
		mode = 0o755
	}
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW, mode)
	if err != nil {
		return err
	}
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(name)
		}
	}()
	whole, err := rs.r.writeContent(ctx, f, j.e.Digest, j.e.Size, rs.chunkSem, rs.opts.Progress)
	if err != nil {
		return withPath(j.rel, err)
	}
	if !whole {
		if err := f.Truncate(j.e.Size); err != nil { // the holes writeSparse left at the end
			return fmt.Errorf("%s: %w", j.rel, err)
		}
	}
	if err := f.Chmod(mode); err != nil { // whatever the umask
		return err
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("%s: %w", j.rel, err)
	}
	ok = true
	if !rs.staged {
		if err := rs.replace(name, j.path); err != nil {
			os.Remove(name)
			return err
		}
	}
	rs.opts.Progress.Files.Add(1)
	rs.fileWritten()
	rs.mu.Lock()
	rs.res.Files++
	rs.res.Bytes += j.e.Size
	rs.mu.Unlock()
	return nil
}

// writeContent writes a stored file into f, created empty. Chunks are
// read in parallel and written at their offsets; the whole file's digest
// is computed in order as they complete, and checks every byte: a chunk
// is not checked on its own too (a second hash of each byte) unless that
// digest is wrong, when the file is written again with each chunk
// checked, which names the damaged one (and reads it from another copy,
// or the remote, where there is one). whole reports that every byte up
// to size was written: else the file is to be extended to size (holes
// where chunks were all zeros). The caller renames f into place only
// once this returns without error.
func (r *Repo) writeContent(ctx context.Context, f *os.File, d digest.Digest, size int64, sem *semaphore.Weighted, prog *Progress) (whole bool, err error) {
	again := func(check bool) (bool, error) {
		if terr := f.Truncate(0); terr != nil {
			return false, errors.Join(err, terr)
		}
		return r.writeContentOnce(ctx, f, d, size, sem, prog, check)
	}
	whole, err = r.writeContentOnce(ctx, f, d, size, sem, prog, false)
	if errors.Is(err, errFileDigest) {
		whole, err = again(true)
	}
	if r.retryLazy(ctx, err) {
		whole, err = again(true)
	}
	return whole, err
}

// errFileDigest is a file written from chunks not checked one by one
// whose digest is wrong: writeContent writes it again, checking each.
var errFileDigest = errors.New("file digest does not match")

func (r *Repo) writeContentOnce(ctx context.Context, f *os.File, d digest.Digest, size int64, sem *semaphore.Weighted, prog *Progress, check bool) (whole bool, err error) {
	blobs, offsets, err := r.fileBlobs(ctx, d, size)
	if err != nil {
		return false, err
	}
	if len(blobs) == 1 && blobs[0].ID == d {
		// The blob was looked up above: read it without a second lookup.
		// Its ID is the file digest, so reading it checks the file.
		if err := checkLens(blobs[0]); err != nil {
			return false, err
		}
		data, err := r.readBlob(ctx, blobs[0], bufpool.Get(int(blobs[0].RawLen)))
		if err != nil {
			return false, err
		}
		end, err := writeSparse(f, data, 0, false)
		prog.Bytes.Add(int64(len(data)))
		bufpool.Put(data)
		return end == size, err
	}
	out := destFile{f: f}
	if size >= preallocMin {
		if out.punch, err = preallocate(f, size); err != nil {
			return false, err
		}
	}
	got, err := r.writeUnits(ctx, out, blobs, offsets, readUnits(blobs), sem, prog, check)
	if err != nil {
		return false, err
	}
	if got != d {
		if !check {
			prog.Bytes.Add(-size)
			return false, errFileDigest
		}
		return false, &CorruptError{What: "file", ID: d}
	}
	return size == 0, nil
}

// preallocMin is the size from which a file of several chunks is
// preallocated: below it, a call more per file is more than it saves.
const preallocMin = 1 << 20

// destFile is a file a restore writes chunk by chunk; punch says its
// blocks were allocated up front, so that a hole must be punched where
// zeros are left unwritten.
type destFile struct {
	f     *os.File
	punch bool
}

// fileBlobs looks up where each chunk of a stored file lies and the offset
// in the file where each begins, checking that they add up to size.
func (r *Repo) fileBlobs(ctx context.Context, d digest.Digest, size int64) (blobs []index.Blob, offsets []int64, err error) {
	chunks, err := r.fileChunks(ctx, d, size)
	if err != nil {
		return nil, nil, err
	}
	if err := r.lookUpMissing(ctx, chunks); err != nil {
		return nil, nil, err
	}
	blobs = make([]index.Blob, len(chunks))
	offsets = make([]int64, len(chunks))
	var off int64
	for i, c := range chunks {
		b, ok, err := r.locate(ctx, c)
		if err != nil {
			return nil, nil, err
		}
		if !ok && len(chunks) == 1 && c == d {
			// No chunk list, and no chunk with the file's digest: the
			// file's record is what is missing (a lost index segment, for
			// a file of several chunks), whatever its chunks.
			return nil, nil, fmt.Errorf("neither a chunk nor a chunk list of file %s: %w", d.Short(), ErrDataNotFound)
		}
		if !ok {
			return nil, nil, fmt.Errorf("chunk %s: %w", c.Short(), ErrDataNotFound)
		}
		blobs[i], offsets[i] = b, off
		off += int64(b.RawLen)
	}
	if off != size {
		return nil, nil, &CorruptError{What: "file", ID: d}
	}
	return blobs, offsets, nil
}

// A readUnit is blobs[from:to] of a file, read with one request.
type readUnit struct{ from, to int }

// readUnits groups chunks that lie one after another in one pack, so that
// each run is one request, which matters most from a remote. A small gap
// (blobs of other files a push wrote in between) is read and skipped
// rather than costing another request.
func readUnits(blobs []index.Blob) []readUnit {
	var units []readUnit
	for i := 0; i < len(blobs); {
		j := i + 1
		end := blobs[i].Offset + uint64(blobs[i].Length)
		for j < len(blobs) && blobs[j].Pack == blobs[i].Pack && blobs[j].Offset >= end && blobs[j].Offset-end <= maxUnitGap &&
			blobs[j].Offset+uint64(blobs[j].Length)-blobs[i].Offset <= maxUnitBytes {
			end = blobs[j].Offset + uint64(blobs[j].Length)
			j++
		}
		units = append(units, readUnit{i, j})
		i = j
	}
	return units
}

// unitResult is what reading one readUnit gave: the chunks' raw bytes,
// each checked against its ID, the buffers to give back, and whether it
// holds a slot of the semaphore.
type unitResult struct {
	raws     [][]byte
	bufs     [][]byte
	err      error
	acquired bool
}

// writeUnits writes a file's chunks into f at their offsets and returns
// the digest of the chunks taken in order. It is a pipeline of three
// stages: the units are read and their chunks checked in parallel, as sem
// allows; one writer writes them in order; this goroutine hashes them in
// order and gives back their buffers and slots. One writer, because the
// kernel takes writes to a file one at a time anyway, and writers queued
// on its lock spin on a core a hash could use. The first error, in the
// file's order, cancels the reads still to come.
func (r *Repo) writeUnits(ctx context.Context, f destFile, blobs []index.Blob, offsets []int64, units []readUnit, sem *semaphore.Weighted, prog *Progress, check bool) (digest.Digest, error) {
	results := make([]chan unitResult, len(units))
	for i := range results {
		results[i] = make(chan unitResult, 1)
	}
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		for i, u := range units {
			if err := sem.Acquire(cctx, 1); err != nil {
				results[i] <- unitResult{err: err}
				continue
			}
			go func() {
				res := unitResult{acquired: true}
				res.raws, res.bufs, res.err = r.readUnit(cctx, blobs[u.from:u.to], check)
				results[i] <- res
			}()
		}
	}()
	written := make(chan unitResult, 1)
	go func() {
		failed := false
		for i, u := range units {
			res := <-results[i]
			if res.err == nil && !failed {
				res.err = writeRaws(f, res.raws, offsets[u.from:u.to])
			}
			if res.err != nil && !failed {
				failed = true
				cancel()
			}
			written <- res
		}
	}()
	h := digest.New()
	var firstErr error
	for range units {
		res := <-written
		if res.err != nil && firstErr == nil {
			firstErr = res.err
		}
		for _, raw := range res.raws {
			if firstErr == nil {
				_, _ = h.Write(raw)
				prog.Bytes.Add(int64(len(raw)))
			}
		}
		for _, b := range res.bufs {
			bufpool.Put(b)
		}
		if res.acquired {
			sem.Release(1)
		}
	}
	if firstErr != nil {
		return digest.Digest{}, firstErr
	}
	return digest.FromHash(h), nil
}

// readUnit reads the blobs of one unit and returns their raw bytes, each
// checked against its ID if check is set (else against its length only).
// The caller holds a slot of the semaphore for it.
func (r *Repo) readUnit(ctx context.Context, blobs []index.Blob, check bool) (raws, bufs [][]byte, err error) {
	raws, bufs, err = r.fetchRun(ctx, blobs, check)
	if err != nil && ctx.Err() == nil {
		// One chunk at a time, so each may come from another copy.
		raws, bufs, err = r.fetchEach(ctx, blobs, bufs)
	}
	return raws, bufs, err
}

// writeRaws writes chunks into f at their offsets: chunks that follow
// each other in the file and lie back to back in memory (read in one
// piece, stored uncompressed, with nothing between them) go out in one
// write.
func writeRaws(f destFile, raws [][]byte, offsets []int64) error {
	for k := 0; k < len(raws); {
		span, n := raws[k], 1
		for k+n < len(raws) && follows(span, raws[k+n]) && offsets[k+n] == offsets[k]+int64(len(span)) {
			span = span[:len(span)+len(raws[k+n])]
			n++
		}
		if _, err := writeSparse(f.f, span, offsets[k], f.punch); err != nil {
			return err
		}
		k += n
	}
	return nil
}

// follows reports whether b starts in memory where a ends, in the same
// array: a and b then make one slice, a[:len(a)+len(b)].
func follows(a, b []byte) bool {
	return len(b) > 0 && cap(a)-len(a) >= len(b) && &a[:len(a)+1][len(a)] == &b[0]
}

// maxUnitBytes bounds how much one read of adjacent chunks fetches, and
// maxUnitGap the bytes of other blobs it may read and skip between two.
const (
	maxUnitBytes = 4 << 20
	maxUnitGap   = 64 << 10
)

// fetchRun reads blobs that lie back to back in one pack with a single
// read and returns their raw bytes, each checked against its ID if check
// is set (else against its length only), and the buffers to give back.
func (r *Repo) fetchRun(ctx context.Context, blobs []index.Blob, check bool) (raws, bufs [][]byte, err error) {
	first, last := blobs[0], blobs[len(blobs)-1]
	n := last.Offset + uint64(last.Length) - first.Offset
	if n > format.MaxChunkLen {
		return nil, nil, &CorruptError{What: "index entry", ID: first.ID}
	}
	stored := bufpool.Get(int(n))
	bufs = append(bufs, stored)
	if err := r.packs.readAt(ctx, first.Pack, stored, int64(first.Offset)); err != nil {
		return nil, bufs, packReadError(first, err)
	}
	for _, b := range blobs {
		if err := checkLens(b); err != nil {
			return nil, bufs, err
		}
		part := stored[b.Offset-first.Offset : b.Offset-first.Offset+uint64(b.Length)]
		var dst []byte
		if b.Codec != index.CodecNone {
			dst = bufpool.Get(int(b.RawLen))
			bufs = append(bufs, dst)
		}
		decode := decodeBlob
		if !check {
			decode = decodeBlobUnchecked
		}
		raw, err := decode(b, part, dst)
		if err != nil {
			return nil, bufs, err
		}
		raws = append(raws, raw)
	}
	return raws, bufs, nil
}

// fetchEach reads blobs one by one (readBlob tries other copies of a
// damaged one), handing back the buffers of a failed fetchRun too.
func (r *Repo) fetchEach(ctx context.Context, blobs []index.Blob, bufs [][]byte) (raws, outBufs [][]byte, err error) {
	for _, b := range bufs {
		bufpool.Put(b)
	}
	for _, b := range blobs {
		if err := checkLens(b); err != nil {
			return nil, outBufs, err
		}
		raw, err := r.readBlob(ctx, b, bufpool.Get(int(b.RawLen)))
		if err != nil {
			return nil, outBufs, err
		}
		raws = append(raws, raw)
		outBufs = append(outBufs, raw)
	}
	return raws, outBufs, nil
}

func (r *Repo) fetchChunk(ctx context.Context, id digest.Digest) ([]byte, error) {
	b, ok, err := r.locate(ctx, id)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("chunk %s: %w", id.Short(), ErrDataNotFound)
	}
	if err := checkLens(b); err != nil {
		return nil, err
	}
	return r.readBlob(ctx, b, bufpool.Get(int(b.RawLen)))
}

// sparseBlock is the unit writeSparse tests for zeros: a block of zeros
// at least a page long is left as a hole. maxWrite is the most it writes
// with one call: restoring 1 GiB on Linux 6.18 (ext4) took 1.5 CPU-seconds
// with writes of 4 MiB, 1.0 with writes of 256 KiB and 1.1 with writes of
// 64 KiB (docs/benchmarks.md).
const (
	sparseBlock = 64 << 10
	maxWrite    = 256 << 10
)

// writeSparse writes b at off, leaving a hole where b is all zeros: a
// restored file is created empty and sized at the end (Truncate), so a
// hole reads as the zeros it stands for, and a sparse file stays sparse.
// The bytes between two holes go out in writes of maxWrite. In a file
// whose blocks were allocated up front (punch), the blocks under a hole
// are given back. It returns the offset just past the last byte it wrote
// (off when none).
func writeSparse(f *os.File, b []byte, off int64, punch bool) (end int64, err error) {
	const page = 4 << 10
	zeros := func(b []byte) bool { return len(b) >= page && allZero(b) }
	end = off
	for len(b) > 0 {
		n := 0 // bytes up to the next block of zeros
		for n < len(b) && !zeros(b[n:min(len(b), n+sparseBlock)]) {
			n = min(len(b), n+sparseBlock)
		}
		for n > 0 {
			w := min(n, maxWrite)
			if err := writeAll(f, b[:w], off); err != nil {
				return end, err
			}
			end = off + int64(w)
			b, off, n = b[w:], off+int64(w), n-w
		}
		z := 0 // bytes of zeros from there
		for z < len(b) && zeros(b[z:min(len(b), z+sparseBlock)]) {
			z = min(len(b), z+sparseBlock)
		}
		if z > 0 && punch {
			punchHole(f, off, int64(z))
		}
		b, off = b[z:], off+int64(z)
	}
	return end, nil
}

func allZero(b []byte) bool {
	for len(b) >= 8 {
		if binary.LittleEndian.Uint64(b) != 0 {
			return false
		}
		b = b[8:]
	}
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// writeAll writes b at off, turning a short write into an error.
func writeAll(f *os.File, b []byte, off int64) error {
	n, err := f.WriteAt(b, off)
	if err == nil && n != len(b) {
		err = fmt.Errorf("short write")
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", f.Name(), err)
	}
	return nil
}

// WriteFile writes a stored file to w, never a byte that is not part of
// it: a file stored as one chunk is checked as it streams (its chunk ID is
// its digest); any other is checked whole first, held in memory when small
// and in a temporary file otherwise, since a chunk list read from a store
// could name other valid chunks.
func (r *Repo) WriteFile(ctx context.Context, obj *Object, w io.Writer) error {
	err := r.writeFile(ctx, obj, w)
	var ce *CorruptError
	if errors.As(err, &ce) && ce.What == "file" && ce.Path == "" {
		ce.Path = obj.Name
	}
	return err
}

// spoolInMemory is the largest file WriteFile checks in memory.
const spoolInMemory = 64 << 20

func (r *Repo) writeFile(ctx context.Context, obj *Object, w io.Writer) error {
	chunks, err := r.fileChunks(ctx, obj.Digest, obj.Size)
	if err != nil {
		return err
	}
	if len(chunks) == 1 && chunks[0] == obj.Digest {
		// Streaming checks the chunk before writing it, and its ID is the
		// file digest; only a size that is not the chunk's could still
		// fail after bytes went out.
		if b, ok, err := r.locate(ctx, obj.Digest); err != nil {
			return err
		} else if !ok {
			return fmt.Errorf("chunk %s: %w", obj.Digest.Short(), ErrNotFound)
		} else if int64(b.RawLen) != obj.Size {
			return &CorruptError{What: "file", ID: obj.Digest}
		}
	}
	if len(chunks) == 0 || (len(chunks) == 1 && chunks[0] == obj.Digest) {
		return r.streamFile(ctx, obj.Digest, obj.Size, func(b []byte) error {
			_, err := w.Write(b)
			return err
		})
	}
	if obj.Size <= spoolInMemory {
		b, err := r.readWhole(ctx, obj.Digest, obj.Size)
		if err != nil {
			return err
		}
		_, err = w.Write(b)
		return err
	}
	tmp, err := os.CreateTemp("", "cas-cat-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	err = r.streamFile(ctx, obj.Digest, obj.Size, func(b []byte) error {
		_, err := tmp.Write(b)
		return err
	})
	if err != nil {
		return err
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return err
	}
	_, err = io.Copy(w, tmp)
	return err
}

// joinRel joins a slash-separated relative path and a name.
func joinRel(dir, name string) string {
	if dir == "" {
		return name
	}
	return dir + "/" + name
}
