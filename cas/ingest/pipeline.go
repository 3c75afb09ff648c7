package ingest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cas-ml/cas/cas/chunk"
	"github.com/cas-ml/cas/cas/format"
	"github.com/cas-ml/cas/digest"
	"github.com/cas-ml/cas/index"
	"github.com/cas-ml/cas/internal/bufpool"
	"github.com/cas-ml/cas/internal/par"
	"github.com/cas-ml/cas/remote"
	"golang.org/x/sync/semaphore"
	"golang.org/x/sys/unix"
)

// ErrFileChanged reports a file that kept changing while cas read it.
var ErrFileChanged = errors.New("file changed while it was being read; stop writing to it and push again")

// A file modified this close to the start of a push is hashed again next
// time even if its stat data match, since a change within the same clock
// tick would not show in its mtime. Filesystems with whole-second
// timestamps (a zero nanosecond part) get the wider window.
const (
	RacyWindow       = 100 * time.Millisecond
	RacyWindowCoarse = 2 * time.Second
)

// racy reports whether a stat cache entry is too fresh to trust next time.
func racy(e index.StatEntry, pushStart int64) bool {
	w := RacyWindow.Nanoseconds()
	if e.Mtime%1e9 == 0 && e.Ctime%1e9 == 0 {
		w = RacyWindowCoarse.Nanoseconds()
	}
	return e.Mtime >= pushStart-w || e.Ctime >= pushStart-w
}

// pusher is the state of one push: a bounded pipeline of file readers,
// chunk hashers and one pack uploader.
type pusher struct {
	s        Store
	opts     Options
	hashOnly bool
	chunker  *chunk.Chunker
	trusted  []*node                        // directories settle took as stored, whole
	trees    map[digest.Digest]*format.Tree // hash only: every tree computed

	ctx    context.Context
	fail   context.CancelFunc
	budget *semaphore.Weighted // bytes of file data held in memory

	claimed sync.Map // chunk IDs this push stores or has stored

	packMu  sync.Mutex
	pack    *format.PackBuilder
	uploads chan *format.PackBuilder
	free    chan *format.PackBuilder

	mu       sync.Mutex
	newBlobs []index.Blob
	packKeys []string // written by this push, to sync before the segment

	mirrors                 sync.WaitGroup
	mirrored, mirroredBytes atomic.Int64
	mirrorSem               chan struct{}
	cause                   error // the first stage's failure; guarded by mu
	files                   map[digest.Digest][]digest.Digest

	chunks, newChunks, newBytes, storedBytes, packs atomic.Int64
}

// start sets the pipeline up: its context, which ends when the push does
// or a stage fails, and, when storing, the pack uploader. The returned
// finish flushes the last pack, waits for the uploader and returns the
// first error.
func (p *pusher) start(ctx context.Context) (finish func(error) error) {
	p.files = map[digest.Digest][]digest.Digest{}
	p.budget = semaphore.NewWeighted(p.memBudget())
	gctx, cancel := context.WithCancel(ctx)
	p.ctx, p.fail = gctx, cancel
	if p.hashOnly {
		return func(err error) error { cancel(); return err }
	}
	p.uploads = make(chan *format.PackBuilder)
	p.free = make(chan *format.PackBuilder, 2)
	p.pack = &format.PackBuilder{}
	p.free <- &format.PackBuilder{}
	done := make(chan error, 1)
	go func() { done <- p.uploader(gctx) }()
	if p.opts.Mirror != nil {
		p.mirrorSem = make(chan struct{}, p.s.Connections())
	}
	return func(err error) error {
		if err == nil {
			err = p.flushPack()
		}
		close(p.uploads)
		uerr := <-done
		p.mirrors.Wait()
		// A stage that fails cancels the others, which then fail with
		// context.Canceled: unless the caller cancelled, the first
		// failed stage's own error is what went wrong.
		if err == nil || errors.Is(err, context.Canceled) && ctx.Err() == nil {
			p.mu.Lock()
			cause := p.cause
			p.mu.Unlock()
			switch {
			case cause != nil:
				err = cause
			case uerr != nil:
				err = uerr
			}
		}
		cancel()
		return err
	}
}

// failWith records err as the cause of the push's failure, unless an
// earlier stage failed first, and cancels the other stages.
func (p *pusher) failWith(err error) {
	p.mu.Lock()
	if p.cause == nil && !errors.Is(err, context.Canceled) {
		p.cause = err
	}
	p.mu.Unlock()
	p.fail()
}

// memBudget is the most file data a push holds in memory at once, beside
// at most two packs being built or written.
func (p *pusher) memBudget() int64 {
	return int64(max(16<<20, 3*p.chunker.Params().Max))
}

// pushRoot is one path given to push, scanned.
type pushRoot struct {
	abs  string
	node *node
	sc   *scanner
}

// scanRoots scans every root first: totals for the progress bar, and
// what the stat cache knows.
func (p *pusher) scanRoots(paths []string) ([]pushRoot, error) {
	roots := make([]pushRoot, 0, len(paths))
	seen := map[string]bool{}
	for _, path := range paths {
		abs, err := filepath.Abs(path)
		if err != nil {
			return nil, err
		}
		var cache func(dir string) map[string]index.StatEntry
		if p.opts.StatCache != nil {
			cache = func(dir string) map[string]index.StatEntry { return p.opts.StatCache(abs, dir) }
		}
		sc := newScanner(p.opts.Warn, cache)
		sc.skip, sc.skipName = p.opts.Skip, p.opts.SkipName
		n, err := sc.scanRoot(abs, p.opts.Excludes)
		if err != nil {
			return nil, err
		}
		if len(paths) > 1 && seen[n.name] {
			return nil, fmt.Errorf("two paths named %q: push them separately", n.name)
		}
		seen[n.name] = true
		roots = append(roots, pushRoot{abs: abs, node: n, sc: sc})
		p.opts.Progress.TotalFiles.Add(sc.files)
		p.opts.Progress.TotalBytes.Add(sc.bytes)
	}
	return roots, nil
}

// storeRoots stores every file and tree under the roots and returns the
// top: the one root, or a tree holding them all.
func (p *pusher) storeRoots(roots []pushRoot) (*node, error) {
	// Reuse what the stat cache vouches for; queue every other file.
	var work []*node
	for _, rt := range roots {
		if err := p.settle(rt.node, &work); err != nil {
			return nil, err
		}
	}
	// More readers than cores: a reader waiting on a read or on the pack
	// lock leaves its core to another.
	err := par.ForEach(p.ctx, work, runtime.GOMAXPROCS(0)+2, func(_ context.Context, n *node) error {
		if err := p.processFile(n); err != nil {
			p.failWith(err)
			return err
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, rt := range roots {
		if err := p.storeTrees(rt.node); err != nil {
			return nil, err
		}
	}
	if len(roots) == 1 {
		return roots[0].node, nil
	}
	top := &node{kind: format.KindDir, stored: false}
	for _, rt := range roots {
		top.children = append(top.children, rt.node)
	}
	slices.SortFunc(top.children, func(a, b *node) int { return strings.Compare(a.name, b.name) })
	return top, p.storeTree(top)
}

// result counts what the push did.
func (p *pusher) result(roots []pushRoot, top *node) *Result {
	res := &Result{Digest: top.digest, Kind: top.kind, Size: top.size, Name: top.name, Skipped: []string{},
		Trees: p.trees, trusted: p.trusted}
	for _, rt := range roots {
		res.Files += rt.sc.files
		res.Dirs += rt.sc.dirs
		res.Skipped = append(res.Skipped, rt.sc.skipped...)
		res.Unchanged += countCached(rt.node)
		res.Roots = append(res.Roots, Root{Abs: rt.abs, Digest: rt.node.digest, Size: rt.node.size, Kind: rt.node.kind,
			StatDirs: statDirs(rt.node, p.opts.Start.UnixNano())})
	}
	res.Chunks, res.NewChunks, res.NewBytes = p.chunks.Load(), p.newChunks.Load(), p.newBytes.Load()
	res.Packs, res.StoredBytes = p.packs.Load(), p.storedBytes.Load()
	res.Mirrored, res.MirroredBytes = p.mirrored.Load(), p.mirroredBytes.Load()
	res.NewBlobs, res.ChunkLists, res.PackKeys = p.newBlobs, p.files, p.packKeys
	return res
}

func countCached(n *node) int64 {
	var c int64
	if n.kind.IsFile() && n.cached {
		c++
	}
	for _, ch := range n.children {
		c += countCached(ch)
	}
	return c
}

// statDirs collects the stat cache entries of every directory below n,
// leaving out files modified just before the push started.
func statDirs(n *node, pushStart int64) map[string][]index.StatEntry {
	out := map[string][]index.StatEntry{}
	var walk func(n *node)
	walk = func(n *node) {
		var es []index.StatEntry
		for _, c := range n.children {
			switch {
			case c.kind == format.KindDir:
				walk(c)
			case c.kind.IsFile() && !racy(c.st, pushStart):
				e := c.st
				e.Digest = c.digest
				es = append(es, e)
			}
		}
		if len(es) > 0 {
			out[n.rel] = es
		}
	}
	switch {
	case n.kind == format.KindDir:
		walk(n)
	case !racy(n.st, pushStart):
		e := n.st
		e.Digest = n.digest
		out[""] = []index.StatEntry{e}
	}
	return out
}

// settle decides, bottom up, which files need reading. A directory whose
// files all come from the stat cache and whose tree is already stored is
// complete: by the write order, so is everything below it. Elsewhere a
// cached file is trusted only if its data are in the index.
func (p *pusher) settle(n *node, work *[]*node) error {
	switch {
	case n.kind.IsFile():
		if !n.cached {
			*work = append(*work, n)
		} else {
			p.opts.Progress.Files.Add(1)
			p.opts.Progress.Bytes.Add(n.size)
		}
		return nil
	case n.kind != format.KindDir:
		return nil
	}
	complete := true
	for _, c := range n.children {
		if err := p.settle(c, work); err != nil {
			return err
		}
		if (c.kind.IsFile() && !c.cached) || (c.kind == format.KindDir && !c.stored) {
			complete = false
		}
	}
	if complete {
		if _, err := p.nodeTree(n); err != nil {
			return err
		}
		if p.hashOnly {
			n.stored = true
			return nil
		}
		stored, err := p.s.TreeStored(n.digest)
		if err != nil {
			return err
		}
		if stored {
			n.stored = true
			p.trusted = append(p.trusted, n)
			return nil
		}
	}
	if p.hashOnly {
		return nil
	}
	for _, c := range n.children {
		if !c.kind.IsFile() || !c.cached {
			continue
		}
		ok, err := p.s.HasFile(p.ctx, c.digest, c.size)
		if err != nil {
			return err
		}
		if !ok {
			c.cached = false
			p.opts.Progress.Files.Add(-1)
			p.opts.Progress.Bytes.Add(-c.size)
			*work = append(*work, c) // order does not matter: trees are built from the nodes
		}
	}
	return nil
}

// nodeTree builds the tree of a directory node from its children and
// sets the node's digest and size.
func (p *pusher) nodeTree(n *node) ([]byte, error) {
	t := &format.Tree{Entries: make([]format.TreeEntry, len(n.children))}
	n.size = 0
	for i, c := range n.children {
		t.Entries[i] = format.TreeEntry{Name: c.name, Kind: c.kind, Size: c.size, Digest: c.digest}
		n.size += c.size
	}
	d, enc, err := t.Digest()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", n.path, err)
	}
	n.digest = d
	if p.trees != nil {
		p.trees[d] = t
	}
	return enc, nil
}

// storeTrees stores, bottom up, the trees not already stored.
func (p *pusher) storeTrees(n *node) error {
	if n.kind != format.KindDir || n.stored {
		return nil
	}
	for _, c := range n.children {
		if err := p.storeTrees(c); err != nil {
			return err
		}
	}
	return p.storeTree(n)
}

func (p *pusher) storeTree(n *node) error {
	enc, err := p.nodeTree(n)
	if err != nil {
		return err
	}
	n.stored = true
	if p.hashOnly {
		return nil
	}
	for _, c := range n.children {
		if c.kind == format.KindLink {
			if err := p.storeBlob(c.digest, []byte(c.target), index.TypeData); err != nil {
				return err
			}
		}
	}
	return p.storeBlob(n.digest, enc, index.TypeTree)
}

// processFile reads, chunks, hashes and stores one file, retrying if it
// changes while being read.
func (p *pusher) processFile(n *node) error {
	var err error
	for range 3 {
		err = p.readFile(n)
		if !errors.Is(err, ErrFileChanged) {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("%s: %w", n.path, err)
	}
	p.opts.Progress.Files.Add(1)
	return nil
}

// readFile reads one file. Small files are handled whole by the calling
// worker; large ones are streamed through the shared chunk hashers.
func (p *pusher) readFile(n *node) error {
	// A raw descriptor: os.File would try to register each of 50,000 small
	// files with the poller. O_NONBLOCK keeps a FIFO swapped in since the
	// scan from blocking the open; O_NOFOLLOW refuses a swapped-in symlink.
	fd, err := unix.Open(n.path, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: n.path, Err: err}
	}
	defer unix.Close(fd)
	f := fdReader(fd)
	// The scan's lstat is the "before": if the file changed between it and
	// the end of the read, the fstat after the read shows it.
	before := n.st
	var read int64
	if p.hashOnly && before.Size > int64(p.chunker.Params().Max) {
		// Nothing is stored: no need to cut chunks, one pass hashes it.
		var d digest.Digest
		d, read, err = digest.FromReader(progressReader{f, &p.opts.Progress.Bytes})
		n.digest = d
	} else if before.Size <= int64(p.chunker.Params().Max) {
		read, err = p.readSmall(n, f, before.Size)
	} else {
		read, err = p.readLarge(n, f)
	}
	if err != nil {
		return err
	}
	var after unix.Stat_t
	if err := unix.Fstat(fd, &after); err != nil {
		return err
	}
	if after.Mode&unix.S_IFMT != unix.S_IFREG {
		return ErrSpecialFile
	}
	now := statEntry(n.name, &after)
	if read != now.Size || now.Size != before.Size || now.Mtime != before.Mtime || now.Ctime != before.Ctime ||
		now.Ino != before.Ino || now.Dev != before.Dev {
		p.opts.Progress.Bytes.Add(-read)
		// Take the new stat data as the next try's "before".
		n.st = now
		return ErrFileChanged
	}
	n.size = read
	n.st = now
	n.kind = format.KindFile
	if after.Mode&0o111 != 0 {
		n.kind = format.KindExec
	}
	return nil
}

// progressReader counts what passes through it.
type progressReader struct {
	r io.Reader
	n *atomic.Int64
}

func (pr progressReader) Read(b []byte) (int, error) {
	k, err := pr.r.Read(b)
	pr.n.Add(int64(k))
	return k, err
}

// fdReader reads a raw file descriptor, retrying on EINTR.
type fdReader int

// ReadAt reads at an offset without moving the file position.
func (fd fdReader) ReadAt(b []byte, off int64) (int, error) {
	n, err := unix.Pread(int(fd), b, off)
	if err == nil && n < len(b) {
		err = io.EOF
	}
	return max(n, 0), err
}

func (fd fdReader) Read(b []byte) (int, error) {
	for {
		n, err := unix.Read(int(fd), b)
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case err != nil:
			return 0, err
		case n == 0 && len(b) > 0:
			return 0, io.EOF
		}
		return n, nil
	}
}

// naturalCuts are the offsets where a file of a known model format
// changes from one tensor to the next (chunk.NaturalCuts).
func (p *pusher) naturalCuts(r io.ReaderAt, size int64) []int64 {
	if p.opts.NaturalCuts != nil {
		return p.opts.NaturalCuts(r, size)
	}
	return chunk.NaturalCuts(r, size)
}

func (p *pusher) acquire(n int64) error { return p.budget.Acquire(p.ctx, n) }

func (p *pusher) readSmall(n *node, f fdReader, size int64) (int64, error) {
	// One byte more than expected tells a file that grew.
	want := size + 1
	if err := p.acquire(want); err != nil {
		return 0, err
	}
	defer p.budget.Release(want)
	buf := bufpool.Get(int(want))
	defer bufpool.Put(buf)
	// One read: a regular file returns fewer bytes than asked only at its
	// end, and the fstat after the read catches a file that changed.
	k, err := f.Read(buf[:want])
	if err != nil && !errors.Is(err, io.EOF) {
		return 0, err
	}
	data := buf[:k]
	p.opts.Progress.Bytes.Add(int64(k))
	if p.hashOnly {
		n.digest = digest.Of(data)
		return int64(k), nil
	}
	var err2 error
	n.digest, err2 = p.storeBytes(data, p.naturalCuts(bytes.NewReader(data), int64(len(data))))
	return int64(k), err2
}

// storeBytes stores one file's bytes held in memory and returns its
// digest. No chunk crosses one of the natural cuts.
func (p *pusher) storeBytes(data []byte, natural []int64) (digest.Digest, error) {
	d := digest.Of(data)
	cuts := p.chunker.CutsWithin(data, 0, natural)
	if len(cuts) <= 1 {
		if len(data) == 0 {
			return d, nil
		}
		return d, p.storeBlob(d, data, index.TypeData)
	}
	ids := make([]digest.Digest, len(cuts))
	off := 0
	for i, c := range cuts {
		ids[i] = digest.Of(data[off : off+c])
		if err := p.storeBlob(ids[i], data[off:off+c], index.TypeData); err != nil {
			return d, err
		}
		off += c
	}
	p.recordFile(d, ids)
	return d, nil
}

// recordFile puts a multi-chunk file's chunk list in this push's segment
// unless the index knows it (and so a segment of the store names it: the
// index is rebuilt when one it loaded is gone).
func (p *pusher) recordFile(d digest.Digest, ids []digest.Digest) {
	if p.s.KnowsFile(d) {
		return
	}
	p.mu.Lock()
	p.files[d] = ids
	p.mu.Unlock()
}

// chunkJob is one chunk of a large file on its way to a hasher.
type chunkJob struct {
	data []byte
	id   *digest.Digest
	done func()
	// turn closes when the previous chunk is in the pack, and next when
	// this one is: a file's new chunks go into packs in file order, so a
	// restore reads runs of them with one request.
	turn, next chan struct{}
}

// readLarge streams a large file: this goroutine reads and cuts, a second
// hashes the whole file in order, and hasher goroutines hash and store the
// chunks, so one large file keeps every core busy.
func (p *pusher) readLarge(n *node, f fdReader) (int64, error) {
	lr := p.startLarge()
	total, err := lr.cut(f, n.st.Size)
	if err = lr.wait(err); err != nil {
		return 0, err
	}
	n.digest = digest.FromHash(lr.fileHash)
	if len(lr.ids) > 1 { // never hash-only: readFile hashes those in one pass
		list := make([]digest.Digest, len(lr.ids))
		for i, id := range lr.ids {
			list[i] = *id
		}
		p.recordFile(n.digest, list)
	}
	return total, nil
}

// largeRead is one large file on its way through readLarge: the chunk
// IDs in file order (filled in by the hashers), the whole-file hasher,
// and the first error any goroutine met.
type largeRead struct {
	p        *pusher
	ids      []*digest.Digest
	fileHash hash.Hash
	hashQ    chan chunkJob // to the whole-file hasher
	hashDone chan struct{}
	jobs     chan chunkJob // to the chunk hashers
	wg       sync.WaitGroup
	// turn closes when the last chunk queued is in its pack.
	turn     chan struct{}
	errMu    sync.Mutex
	firstErr error
}

// startLarge starts the whole-file hasher and one chunk hasher per core.
func (p *pusher) startLarge() *largeRead {
	lr := &largeRead{p: p, fileHash: digest.New(), hashQ: make(chan chunkJob, 8), hashDone: make(chan struct{}),
		turn: make(chan struct{})}
	close(lr.turn) // the first chunk's turn has come
	go func() {
		for j := range lr.hashQ {
			_, _ = lr.fileHash.Write(j.data)
			j.done()
		}
		close(lr.hashDone)
	}()
	nworkers := runtime.GOMAXPROCS(0)
	lr.jobs = make(chan chunkJob, nworkers)
	for range nworkers {
		lr.wg.Add(1)
		go lr.hashChunks()
	}
	return lr
}

// hashChunks hashes the chunks it is given and, in file order (turn,
// next), adds the new ones to the push's packs.
func (lr *largeRead) hashChunks() {
	defer lr.wg.Done()
	p := lr.p
	for j := range lr.jobs {
		*j.id = digest.Of(j.data)
		b, stored, err := p.prepareBlob(*j.id, j.data, index.TypeData)
		select {
		case <-j.turn:
		case <-p.ctx.Done():
		}
		if err == nil && stored != nil {
			err = p.addBlob(b, stored)
		}
		if err != nil {
			lr.setErr(err)
		}
		close(j.next)
		j.done()
	}
}

func (lr *largeRead) setErr(err error) {
	lr.errMu.Lock()
	if lr.firstErr == nil {
		lr.firstErr = err
	}
	lr.errMu.Unlock()
}

func (lr *largeRead) err() error {
	lr.errMu.Lock()
	defer lr.errMu.Unlock()
	return lr.firstErr
}

// cut reads f (size bytes) and cuts it into chunks, at content-defined
// boundaries and never across a natural one, handing each to the
// hashers. It returns the bytes read.
func (lr *largeRead) cut(f fdReader, size int64) (int64, error) {
	p := lr.p
	maxc := p.chunker.Params().Max
	const block = 4 << 20
	// buf[start:end] holds bytes read but not yet cut; it is compacted only
	// when the free space at its end runs short, so each byte moves at most
	// once or twice.
	buf := make([]byte, maxc+2*block)
	start, end := 0, 0
	// pos is the file offset of buf[start]; no chunk crosses natural[nb].
	natural := p.naturalCuts(f, size)
	pos, nb := int64(0), 0
	var total int64
	eof := false
	for {
		for !eof && end-start < maxc {
			if len(buf)-end < block {
				end = copy(buf, buf[start:end])
				start = 0
			}
			k, rerr := f.Read(buf[end:])
			end += k
			total += int64(k)
			p.opts.Progress.Bytes.Add(int64(k))
			if errors.Is(rerr, io.EOF) {
				eof = true
			} else if rerr != nil {
				return total, rerr
			}
		}
		if end == start {
			return total, nil
		}
		lim := end
		if nb < len(natural) && natural[nb]-pos < int64(end-start) {
			lim = start + int(natural[nb]-pos)
		}
		c := p.chunker.Next(buf[start:lim])
		pos += int64(c)
		for nb < len(natural) && natural[nb] <= pos {
			nb++
		}
		if err := lr.queue(buf[start : start+c]); err != nil {
			return total, err
		}
		start += c
	}
}

// queue copies one chunk out of the read buffer and gives it to a chunk
// hasher and to the file hasher, which share the copy.
func (lr *largeRead) queue(data []byte) error {
	c := len(data)
	if err := lr.p.acquire(int64(2 * c)); err != nil {
		return err
	}
	chunk := bufpool.Get(c)[:c]
	copy(chunk, data)
	id := new(digest.Digest)
	lr.ids = append(lr.ids, id)
	var refs atomic.Int32
	refs.Store(2)
	release := func() {
		if refs.Add(-1) == 0 {
			bufpool.Put(chunk)
			lr.p.budget.Release(int64(2 * c))
		}
	}
	next := make(chan struct{})
	lr.jobs <- chunkJob{data: chunk, id: id, done: release, turn: lr.turn, next: next}
	lr.turn = next
	lr.hashQ <- chunkJob{data: chunk, done: release}
	return lr.err()
}

// wait stops the hashers once they are done and returns err, else the
// first error they met.
func (lr *largeRead) wait(err error) error {
	close(lr.jobs)
	lr.wg.Wait()
	close(lr.hashQ)
	<-lr.hashDone
	if err == nil {
		err = lr.err()
	}
	return err
}

// storeBlob adds a blob to the current pack unless the store or this push
// has it already.
func (p *pusher) storeBlob(id digest.Digest, raw []byte, typ uint8) error {
	b, stored, err := p.prepareBlob(id, raw, typ)
	if err != nil || stored == nil {
		return err
	}
	return p.addBlob(b, stored)
}

// prepareBlob decides whether a blob must be stored and encodes it; a nil
// stored means the store or this push has it already.
func (p *pusher) prepareBlob(id digest.Digest, raw []byte, typ uint8) (index.Blob, []byte, error) {
	if typ == index.TypeData {
		p.chunks.Add(1)
	}
	if _, dup := p.claimed.LoadOrStore(id, struct{}{}); dup {
		return index.Blob{}, nil, nil
	}
	if ok, err := p.s.HasBlob(p.ctx, id); err != nil || ok {
		return index.Blob{}, nil, err
	}
	stored, codec := format.EncodeChunk(raw)
	if typ == index.TypeData {
		p.newChunks.Add(1)
		p.newBytes.Add(int64(len(raw)))
	}
	return index.Blob{ID: id, RawLen: uint32(len(raw)), Codec: codec, Type: typ}, stored, nil
}

// addBlob appends an encoded blob to the current pack, sending the pack
// off first when the blob would overflow it.
func (p *pusher) addBlob(b index.Blob, stored []byte) error {
	p.packMu.Lock()
	var full *format.PackBuilder
	if p.pack != nil && !p.pack.Empty() && p.pack.Size()+len(stored) > format.TargetPackBytes {
		full = p.pack
		select {
		case p.pack = <-p.free:
		case <-p.ctx.Done():
			p.pack = nil
		}
	}
	if p.pack == nil {
		p.packMu.Unlock()
		return p.ctx.Err()
	}
	p.pack.Add(b, stored)
	p.packMu.Unlock()
	if full != nil {
		select {
		case p.uploads <- full:
		case <-p.ctx.Done():
			return p.ctx.Err()
		}
	}
	return nil
}

// flushPack sends the last, partly filled pack.
func (p *pusher) flushPack() error {
	p.packMu.Lock()
	last := p.pack
	p.pack = nil
	p.packMu.Unlock()
	if last == nil || last.Empty() {
		return nil
	}
	select {
	case p.uploads <- last:
		return nil
	case <-p.ctx.Done():
		return p.ctx.Err()
	}
}

// uploader writes finished packs to the backend, then records their blobs
// in the index, in that order.
func (p *pusher) uploader(ctx context.Context) error {
	var err error
	for pb := range p.uploads {
		if err == nil {
			if err = p.writePack(ctx, pb); err != nil {
				p.failWith(err)
			}
		}
		pb.Reset()
		select {
		case p.free <- pb:
		default:
		}
	}
	return err
}

func (p *pusher) writePack(ctx context.Context, pb *format.PackBuilder) error {
	data, id, blobs := pb.Finish()
	if err := p.s.WritePack(ctx, id, data); err != nil {
		return fmt.Errorf("write pack %s: %w", id.Short(), err)
	}
	p.packs.Add(1)
	p.storedBytes.Add(int64(len(data)))
	p.mu.Lock()
	p.packKeys = append(p.packKeys, format.PackKey(id))
	p.mu.Unlock()
	if p.opts.Mirror != nil {
		p.mirror(ctx, remote.ObjectInfo{Key: format.PackKey(id), Size: int64(len(data))})
	}
	p.mu.Lock()
	p.newBlobs = append(p.newBlobs, blobs...)
	p.mu.Unlock()
	return nil
}

// mirror copies a pack just written to the mirror backend, a few at once,
// reading it back from the local store.
func (p *pusher) mirror(ctx context.Context, oi remote.ObjectInfo) {
	select {
	case p.mirrorSem <- struct{}{}:
	case <-ctx.Done():
		return
	}
	p.mirrors.Add(1)
	go func() {
		defer func() { <-p.mirrorSem; p.mirrors.Done() }()
		err := p.s.CopyPack(ctx, p.opts.Mirror, oi)
		if err == nil {
			p.mirrored.Add(1)
			p.mirroredBytes.Add(oi.Size)
		}
		if err != nil {
			p.failWith(fmt.Errorf("upload: %w", err))
		}
	}()
}
