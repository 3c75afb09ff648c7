package ingest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cas-ml/cas/cas/chunk"
	"github.com/cas-ml/cas/cas/format"
	"github.com/cas-ml/cas/digest"
	"github.com/cas-ml/cas/index"
	"github.com/cas-ml/cas/internal/bufpool"
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

// pusher is the state of one push: a walk over the directories, a pool
// of file readers, chunk hashers, and one pack uploader.
type pusher struct {
	s        Store
	opts     Options
	hashOnly bool
	chunker  *chunk.Chunker
	trees    map[digest.Digest]*format.Tree // hash only: every tree computed
	treesMu  sync.Mutex

	ctx    context.Context
	fail   context.CancelFunc
	budget *semaphore.Weighted // bytes of small files held in memory (memBudget)
	bufs   *semaphore.Weighted // read buffers of large files (bufBudget)

	jobs  chan fileJob  // files to read
	spare chan struct{} // tokens for extra walkers

	claims claims // blobs this push is storing, until a segment names them

	packMu    sync.Mutex
	pack      *format.PackBuilder
	packLen   int                               // blobs in pack
	packFiles map[digest.Digest][]digest.Digest // file lists recorded while pack was filled
	uploads   chan packJob
	batch     Batch // the uploader's: packs written, not yet indexed

	mu    sync.Mutex
	cause error // the first stage's failure; guarded by mu

	mirrors                 sync.WaitGroup
	mirrored, mirroredBytes atomic.Int64
	mirrorSem               chan struct{}

	nfiles, ndirs, unchanged                        atomic.Int64
	chunks, newChunks, newBytes, storedBytes, packs atomic.Int64
}

// packJob is a pack written (key, blobs; none if it was empty) on its way
// to the uploader, with the chunk lists of files recorded while it was
// filled: their chunks are in it or in packs before it.
type packJob struct {
	key   string
	blobs []index.Blob
	files map[digest.Digest][]digest.Digest
}

// segmentBlobs is how many blobs and file lists a batch of packs gathers
// before the Store indexes it: a segment of about 1 MiB, and what the
// push holds for it bounded, whatever the number of files.
const segmentBlobs = 1 << 14

// packBlobs is the most blobs a pack takes: a pack closes at
// format.TargetPackBytes of data or at this many blobs, whichever comes
// first, so that a pack of tiny files does not hold a batch's worth of
// blobs (and claims) on its own.
const packBlobs = 1 << 14

// start sets the pipeline up: its context, which ends when the push does
// or a stage fails, and, when storing, the pack uploader. The returned
// finish flushes the last pack, waits for the uploader and returns the
// first error.
func (p *pusher) start(ctx context.Context) (finish func(error) error) {
	p.budget = semaphore.NewWeighted(p.memBudget())
	p.bufs = semaphore.NewWeighted(p.bufBudget())
	gctx, cancel := context.WithCancel(ctx)
	p.ctx, p.fail = gctx, cancel
	if p.hashOnly {
		return func(err error) error { cancel(); return err }
	}
	p.claims.init(gctx)
	// A few packs written may wait while the uploader has a batch
	// indexed: they hold only their blobs' records.
	p.uploads = make(chan packJob, 4)
	p.pack = &format.PackBuilder{} // buffers on first use
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
		if err == nil && uerr == nil {
			uerr = p.indexBatch(gctx) // the last packs
		}
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

// memBudget is the most data of small files (read whole) a push holds in
// memory at once, beside the read buffers of large files (bufBudget) and
// at most two packs being built or written.
func (p *pusher) memBudget() int64 {
	return max(16<<20, 3*int64(p.chunker.Params().Max))
}

// bufBudget bounds the read buffers of large files, which their chunks
// are hashed and packed from (bufCharge each): two, so that one large
// file can be read into one while the chunks of the other are hashed, or
// two files read at once. A budget of their own, apart from small files':
// a push of many files of nearly Max bytes keeps to what it held before
// large files had read buffers counted.
func (p *pusher) bufBudget() int64 { return 2 * p.bufCharge() }

// result counts what the push did.
func (p *pusher) result(roots []*pushRoot, top *node) *Result {
	res := &Result{Digest: top.digest, Kind: top.kind, Size: top.size, Name: top.name, Skipped: []string{},
		Trees: p.trees}
	for _, rt := range roots {
		res.Skipped = append(res.Skipped, rt.sc.skipped...)
		res.Roots = append(res.Roots, Root{Abs: rt.abs, Digest: rt.node.digest, Size: rt.node.size, Kind: rt.node.kind})
	}
	res.Files, res.Dirs, res.Unchanged = p.nfiles.Load(), p.ndirs.Load(), p.unchanged.Load()
	res.Chunks, res.NewChunks, res.NewBytes = p.chunks.Load(), p.newChunks.Load(), p.newBytes.Load()
	res.Packs, res.StoredBytes = p.packs.Load(), p.storedBytes.Load()
	res.Mirrored, res.MirroredBytes = p.mirrored.Load(), p.mirroredBytes.Load()
	return res
}

// processFile reads, chunks, hashes and stores one file, retrying if it
// changes while being read. It returns once every blob of the file is in
// a pack, its own or one another part of the push is filling.
func (p *pusher) processFile(n *node, path string) error {
	var deps, chunks []digest.Digest
	var err error
	for range 3 {
		chunks, err = p.readFile(n, path, &deps)
		if !errors.Is(err, ErrFileChanged) {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := p.claims.wait(p.ctx, deps); err != nil {
		return err
	}
	if len(chunks) > 1 {
		p.recordFile(n.digest, chunks)
	}
	p.opts.Progress.Files.Add(1)
	return nil
}

// readFile reads one file and returns its chunk IDs. Small files are
// handled whole by the calling worker; large ones are streamed through
// the shared chunk hashers. deps gathers the blobs it relies on that
// another part of the push is adding to a pack.
func (p *pusher) readFile(n *node, path string, deps *[]digest.Digest) ([]digest.Digest, error) {
	var chunks []digest.Digest
	maxChunk := int64(p.chunker.Params().Max)
	now, kind, read, err := readChecked(path, n.name, n.st, func(f fdReader) (read int64, err error) {
		switch size := n.st.Size; {
		case p.hashOnly && (size >= digest.ParallelMin || size > maxChunk):
			// Nothing is stored: no need to cut chunks; a big file is
			// hashed on the cores free.
			n.digest, read, err = hashWhole(p.ctx, f, size, &p.opts.Progress.Bytes)
		case size <= maxChunk:
			read, chunks, err = p.readSmall(n, f, size, deps)
		default:
			read, chunks, err = p.readLarge(n, f, deps)
		}
		return read, err
	})
	if errors.Is(err, ErrFileChanged) {
		p.opts.Progress.Bytes.Add(-read)
		n.st = now // the next try's "before"
	}
	if err != nil {
		return nil, err
	}
	n.size, n.st, n.kind = read, now, kind
	return chunks, nil
}

// readChecked opens the regular file at path, has read read it, and
// checks that it did not change meanwhile: before is its stat data from
// the scan, and the fstat after the read must match it and what was
// read (else ErrFileChanged, with now the stat data to take as the next
// try's before). It returns the stat data after the read, the file's
// kind (exec or not) and the bytes read.
func readChecked(path, name string, before index.StatEntry, read func(fdReader) (int64, error)) (now index.StatEntry, kind format.Kind, n int64, err error) {
	// A raw descriptor: os.File would try to register each of 50,000 small
	// files with the poller. O_NONBLOCK keeps a FIFO swapped in since the
	// scan from blocking the open; O_NOFOLLOW refuses a swapped-in symlink.
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return now, kind, 0, &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	if n, err = read(fdReader(fd)); err != nil {
		return now, kind, n, err
	}
	var after unix.Stat_t
	if err := unix.Fstat(fd, &after); err != nil {
		return now, kind, n, err
	}
	if after.Mode&unix.S_IFMT != unix.S_IFREG {
		return now, kind, n, ErrSpecialFile
	}
	now = statEntry(name, &after)
	if n != now.Size || now.Size != before.Size || now.Mtime != before.Mtime || now.Ctime != before.Ctime ||
		now.Ino != before.Ino || now.Dev != before.Dev {
		return now, kind, n, ErrFileChanged
	}
	kind = format.KindFile
	if after.Mode&0o111 != 0 {
		kind = format.KindExec
	}
	return now, kind, n, nil
}

// hashWhole returns the digest of the size bytes of the file f, read at
// offsets on every core no other file is hashed on (digest.FromReaderAt),
// and how many bytes it read, which progress counts too: fewer than
// size, with no error, if the file ended sooner (it changed, which the
// caller's fstat tells). It stops when ctx ends.
func hashWhole(ctx context.Context, f fdReader, size int64, progress *atomic.Int64) (digest.Digest, int64, error) {
	cr := &countingReaderAt{ctx: ctx, r: f, progress: progress}
	d, err := digest.FromReaderAt(cr, size)
	if errors.Is(err, io.ErrUnexpectedEOF) {
		err = nil
	}
	return d, cr.n.Load(), err
}

// countingReaderAt counts what is read through it, in n and progress,
// and stops reading once ctx ends.
type countingReaderAt struct {
	ctx      context.Context
	r        io.ReaderAt
	n        atomic.Int64
	progress *atomic.Int64
}

func (c *countingReaderAt) ReadAt(b []byte, off int64) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	k, err := c.r.ReadAt(b, off)
	c.n.Add(int64(k))
	if c.progress != nil {
		c.progress.Add(int64(k))
	}
	return k, err
}

// fdReader reads a raw file descriptor, retrying on EINTR.
type fdReader int

// ReadAt reads at an offset without moving the file position: all of b,
// unless the file ends first (io.EOF) or a read fails.
func (fd fdReader) ReadAt(b []byte, off int64) (int, error) {
	n := 0
	for n < len(b) {
		k, err := unix.Pread(int(fd), b[n:], off+int64(n))
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case err != nil:
			return n, err
		case k == 0:
			return n, io.EOF
		}
		n += k
	}
	return n, nil
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

// layout is what the push knows of a file of a known model format: the
// offsets where it changes from one tensor to the next, and the element
// type of its tensor data (chunk.NaturalLayout).
func (p *pusher) layout(r io.ReaderAt, size int64) chunk.Layout {
	if p.opts.NaturalCuts != nil {
		return chunk.Layout{Cuts: p.opts.NaturalCuts(r, size)}
	}
	return chunk.NaturalLayout(r, size)
}

// dtypeAt is the element type of the chunk at [start, end) of a file of
// layout l: Unknown outside tensor data of a float type, and always when
// the float codec is off.
func (p *pusher) dtypeAt(l *chunk.Layout, start, end int64) format.DType {
	if p.opts.NoFloatCodec || len(l.Regions) == 0 {
		return format.Unknown
	}
	return format.DTypeFromName(l.DTypeAt(start, end))
}

func (p *pusher) acquire(n int64) error { return p.budget.Acquire(p.ctx, n) }

func (p *pusher) readSmall(n *node, f fdReader, size int64, deps *[]digest.Digest) (int64, []digest.Digest, error) {
	// One byte more than expected tells a file that grew.
	want := size + 1
	if err := p.acquire(want); err != nil {
		return 0, nil, err
	}
	defer p.budget.Release(want)
	buf := bufpool.Get(int(want))
	defer bufpool.Put(buf)
	// One read: a regular file returns fewer bytes than asked only at its
	// end, and the fstat after the read catches a file that changed.
	k, err := f.Read(buf[:want])
	if err != nil && !errors.Is(err, io.EOF) {
		return 0, nil, err
	}
	data := buf[:k]
	p.opts.Progress.Bytes.Add(int64(k))
	if p.hashOnly {
		n.digest = digest.Of(data)
		return int64(k), nil, nil
	}
	var chunks []digest.Digest
	l := p.layout(bytes.NewReader(data), int64(len(data)))
	n.digest, chunks, err = p.storeBytes(data, &l, deps)
	return int64(k), chunks, err
}

// putBytes stores bytes as a file holding them would be stored.
func (p *pusher) putBytes(data []byte) (digest.Digest, error) {
	var deps []digest.Digest
	d, chunks, err := p.storeBytes(data, &chunk.Layout{}, &deps)
	if err == nil {
		err = p.claims.wait(p.ctx, deps)
	}
	if err == nil && len(chunks) > 1 {
		p.recordFile(d, chunks)
	}
	return d, err
}

// storeBytes stores one file's bytes held in memory and returns its
// digest and, if it is more than one chunk, their IDs. No chunk crosses
// one of the natural cuts of its layout l.
func (p *pusher) storeBytes(data []byte, l *chunk.Layout, deps *[]digest.Digest) (digest.Digest, []digest.Digest, error) {
	d := digest.Of(data)
	cuts := p.chunker.CutsWithin(data, 0, l.Cuts)
	if len(cuts) <= 1 {
		if len(data) == 0 {
			return d, nil, nil
		}
		return d, nil, p.storeBlob(d, data, index.TypeData, p.dtypeAt(l, 0, int64(len(data))), deps)
	}
	ids := make([]digest.Digest, len(cuts))
	off := 0
	for i, c := range cuts {
		ids[i] = digest.Of(data[off : off+c])
		dt := p.dtypeAt(l, int64(off), int64(off+c))
		if err := p.storeBlob(ids[i], data[off:off+c], index.TypeData, dt, deps); err != nil {
			return d, nil, err
		}
		off += c
	}
	return d, ids, nil
}

// recordFile puts a multi-chunk file's chunk list in the batch of the
// pack being filled, whose segment then names it, unless the index knows
// it (and so a segment of the store names it: the index is rebuilt when
// one it loaded is gone). Its chunks are all in packs by now.
func (p *pusher) recordFile(d digest.Digest, ids []digest.Digest) {
	if p.s.KnowsFile(d) {
		return
	}
	p.packMu.Lock()
	if p.packFiles == nil {
		p.packFiles = map[digest.Digest][]digest.Digest{}
	}
	p.packFiles[d] = ids
	p.packMu.Unlock()
}

// chunkJob is one chunk of a large file on its way to a hasher.
type chunkJob struct {
	data []byte
	dt   format.DType // the element type of data
	id   *digest.Digest
	done func()
	// turn closes when the previous chunk is in the pack, and next when
	// this one is: a file's new chunks go into packs in file order, so a
	// restore reads runs of them with one request.
	turn, next chan struct{}
}

// readLarge streams a large file: this goroutine reads and cuts, a second
// hashes the whole file in order, and hasher goroutines hash and store the
// chunks, so one large file keeps every core busy. It returns the bytes
// read and the chunk IDs.
func (p *pusher) readLarge(n *node, f fdReader, deps *[]digest.Digest) (int64, []digest.Digest, error) {
	lr := p.startLarge()
	total, err := lr.cut(f, n.st.Size)
	if err = lr.wait(err); err != nil {
		return 0, nil, err
	}
	n.digest = digest.FromHash(lr.fileHash)
	*deps = append(*deps, lr.deps...)
	list := make([]digest.Digest, len(lr.ids))
	for i, id := range lr.ids {
		list[i] = *id
	}
	return total, list, nil
}

// largeRead is one large file on its way through readLarge: the chunk
// IDs in file order (filled in by the hashers), the whole-file hasher,
// the chunks another part of the push is adding to a pack, the buffers
// the file is read into, and the first error any goroutine met.
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
	errMu    sync.Mutex // guards firstErr and deps
	firstErr error
	deps     []digest.Digest
	bufs     [2]*readBuf // what cut reads into: one, or two in turn
}

// readBuf is a buffer a large file is read into. The chunks cut from it
// are hashed and packed where they lie in it, so that a byte is copied
// once on its way to the pack file (into the pack); refs counts the
// hands its chunks are in (a chunk hasher and the file hasher each).
type readBuf struct {
	data []byte
	refs sync.WaitGroup
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
		b, stored, spare, claimed, err := p.prepareBlob(*j.id, j.data, index.TypeData, j.dt)
		if claimed {
			// Not waited for here: that chunk may be this file's own,
			// behind this one in turn.
			lr.errMu.Lock()
			lr.deps = append(lr.deps, *j.id)
			lr.errMu.Unlock()
		}
		select {
		case <-j.turn:
		case <-p.ctx.Done():
		}
		if err == nil && stored != nil {
			err = p.addBlob(b, stored)
		}
		bufpool.Put(spare)
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

// largeBufSize is the size of a read buffer of a large file: room for
// the largest chunk and two reads of 4 MiB.
func (p *pusher) largeBufSize() int { return p.chunker.Params().Max + 2*largeBlock }

const largeBlock = 4 << 20

// bufCharge is what a read buffer takes from the memory budget: its
// bytes, and as many again for the compressed forms of its chunks (a
// chunk hasher encodes one into a buffer of its length, and gives that
// back before the chunk is done with).
func (p *pusher) bufCharge() int64 { return 2 * int64(p.largeBufSize()) }

// newBuf takes a read buffer out of bufBudget: the first one of
// a file waits for the budget, which is safe since the file holds none
// yet; a second one is taken only if the budget has it now (else the
// file goes on with one), so that no file waits for memory while holding
// some, and two files each waiting for a second buffer cannot stall.
func (lr *largeRead) newBuf() (*readBuf, error) {
	p := lr.p
	i := 0
	if lr.bufs[0] != nil {
		i = 1
		if !p.bufs.TryAcquire(p.bufCharge()) {
			return nil, nil
		}
	} else if err := p.bufs.Acquire(p.ctx, p.bufCharge()); err != nil {
		return nil, err
	}
	lr.bufs[i] = &readBuf{data: bufpool.Get(p.largeBufSize())}
	return lr.bufs[i], nil
}

// refill returns the buffer to read on into, which starts with tail, the
// bytes of cur after the last cut (a partial chunk). It is the other
// buffer once its chunks are done with, if the file has two or the
// budget now allows a second; else cur itself once its chunks are done
// with, tail moved to its start.
func (lr *largeRead) refill(cur *readBuf, tail []byte) (*readBuf, error) {
	next := lr.bufs[0]
	if next == cur {
		next = lr.bufs[1]
	}
	if next == nil {
		var err error
		if next, err = lr.newBuf(); err != nil {
			return nil, err
		}
		if next == nil {
			next = cur
		}
	}
	next.refs.Wait()
	copy(next.data, tail)
	return next, nil
}

// releaseBufs gives the read buffers back, once every chunk cut from
// them is done with.
func (lr *largeRead) releaseBufs() {
	for i, rb := range lr.bufs {
		if rb != nil {
			rb.refs.Wait()
			bufpool.Put(rb.data)
			lr.p.bufs.Release(lr.p.bufCharge())
			lr.bufs[i] = nil
		}
	}
}

// cut reads f (size bytes) and cuts it into chunks, at content-defined
// boundaries and never across a natural one, handing each, in place in
// its read buffer, to the hashers. It returns the bytes read: at most
// size, since a file that grew is caught by the caller's fstat, and
// reading on in step with a writer would never end.
//
// A read fills the buffer. Once the chunker finds no cut in what is left
// of it (the cut of a chunk depends only on its bytes, so a cut found
// with less data is the one it finds with more), that tail, part of one
// chunk, moves to the start of the next buffer to read into (refill),
// and only it is copied twice.
func (lr *largeRead) cut(f fdReader, size int64) (int64, error) {
	p := lr.p
	maxc := p.chunker.Params().Max
	cur, err := lr.newBuf()
	if err != nil {
		return 0, err
	}
	buf := cur.data
	// buf[start:end] holds bytes read but not yet cut; pos is the file
	// offset of buf[start]; no chunk crosses natural[nb].
	start, end := 0, 0
	l := p.layout(f, size)
	natural := l.Cuts
	pos, nb := int64(0), 0
	var total int64
	eof := false
	for {
		c := 0
		if end > start {
			lim := end
			if nb < len(natural) && natural[nb]-pos < int64(end-start) {
				lim = start + int(natural[nb]-pos)
			}
			c = p.chunker.Next(buf[start:lim])
		}
		if c == end-start && c < maxc && !eof {
			// No cut in what is left, if anything is: read more.
			if total > 0 {
				if cur, err = lr.refill(cur, buf[start:end]); err != nil {
					return total, err
				}
				buf, end, start = cur.data, end-start, 0
			}
			for !eof && end < len(buf) {
				want := int64(len(buf) - end)
				if want > size-total {
					want = size - total
				}
				if want <= 0 {
					eof = true
					break
				}
				k, rerr := f.Read(buf[end : end+int(want)])
				end += k
				total += int64(k)
				p.opts.Progress.Bytes.Add(int64(k))
				if errors.Is(rerr, io.EOF) {
					eof = true
				} else if rerr != nil {
					return total, rerr
				}
			}
			eof = eof || total >= size
			continue
		}
		if c == 0 {
			return total, nil // at EOF, all cut
		}
		dt := p.dtypeAt(&l, pos, pos+int64(c))
		pos += int64(c)
		for nb < len(natural) && natural[nb] <= pos {
			nb++
		}
		if err := lr.queue(cur, buf[start:start+c], dt); err != nil {
			return total, err
		}
		start += c
	}
}

// queue gives one chunk, in place in its read buffer rb, to a chunk
// hasher and to the file hasher.
func (lr *largeRead) queue(rb *readBuf, data []byte, dt format.DType) error {
	if err := lr.p.ctx.Err(); err != nil {
		return err
	}
	rb.refs.Add(2)
	id := new(digest.Digest)
	lr.ids = append(lr.ids, id)
	next := make(chan struct{})
	lr.jobs <- chunkJob{data: data, dt: dt, id: id, done: rb.refs.Done, turn: lr.turn, next: next}
	lr.turn = next
	lr.hashQ <- chunkJob{data: data, done: rb.refs.Done}
	return lr.err()
}

// wait stops the hashers once they are done, gives the read buffers
// back and returns err, else the first error they met.
func (lr *largeRead) wait(err error) error {
	close(lr.jobs)
	lr.wg.Wait()
	close(lr.hashQ)
	<-lr.hashDone
	lr.releaseBufs()
	if err == nil {
		err = lr.err()
	}
	return err
}

// storeBlob adds a blob to the current pack unless the store or this push
// has it already. A blob another part of the push is still adding to a
// pack goes into deps, for the caller to wait for (claims.wait) before
// anything relying on it goes into a pack.
func (p *pusher) storeBlob(id digest.Digest, raw []byte, typ uint8, dt format.DType, deps *[]digest.Digest) error {
	b, stored, spare, claimed, err := p.prepareBlob(id, raw, typ, dt)
	defer bufpool.Put(spare)
	if claimed {
		*deps = append(*deps, id)
	}
	if err != nil || stored == nil {
		return err
	}
	return p.addBlob(b, stored)
}

// prepareBlob decides whether a blob must be stored and encodes it (as
// elements of type dt: tensor data); a nil stored means the store or this
// push has it already, and claimed that another part of this push is
// still adding it to a pack. A compressed stored form is in spare, a
// buffer of bufpool the caller gives back once it has added the blob.
func (p *pusher) prepareBlob(id digest.Digest, raw []byte, typ uint8, dt format.DType) (b index.Blob, stored, spare []byte, claimed bool, err error) {
	if typ == index.TypeData {
		p.chunks.Add(1)
	}
	if mine, inPack := p.claims.claim(id); !mine {
		return index.Blob{}, nil, nil, !inPack, nil
	}
	if ok, err := p.s.HasBlob(p.ctx, id); err != nil || ok {
		p.claims.drop(id)
		return index.Blob{}, nil, nil, false, err
	}
	var codec uint8
	if len(raw) >= 512 {
		spare = bufpool.Get(len(raw))
	}
	if typ == index.TypeTree {
		stored, codec = format.EncodeTreeInto(spare, raw)
	} else {
		stored, codec = format.EncodeChunkInto(spare, raw, dt)
	}
	if codec == index.CodecNone {
		bufpool.Put(spare)
		spare = nil
	}
	if typ == index.TypeData {
		p.newChunks.Add(1)
		p.newBytes.Add(int64(len(raw)))
	}
	return index.Blob{ID: id, RawLen: uint32(len(raw)), Codec: codec, Type: typ}, stored, spare, false, nil
}

// addBlob appends an encoded blob to the current pack, writing the pack
// first when the blob would overflow it. There is one pack: the part of
// the push that fills it writes it (under packMu, so packs are written,
// and go to the uploader, in the order they were filled), and the others
// wait for it. A second pack filling meanwhile would hold another
// TargetPackBytes for the few tens of milliseconds a write takes.
func (p *pusher) addBlob(b index.Blob, stored []byte) error {
	p.packMu.Lock()
	defer p.packMu.Unlock()
	if p.pack == nil {
		return errPackClosed
	}
	if !p.pack.Empty() && (p.pack.Size()+len(stored) > format.TargetPackBytes || p.packLen >= packBlobs) {
		if err := p.sendPack(); err != nil {
			return err
		}
	}
	p.pack.Add(b, stored)
	p.packLen++
	p.claims.added(b.ID)
	return nil
}

// errPackClosed reports a blob added after the last pack was sent: a
// part of the push that outlived it, which would otherwise be lost.
var errPackClosed = errors.New("internal error: a blob added after the last pack")

// flushPack sends the last, partly filled pack.
func (p *pusher) flushPack() error {
	p.packMu.Lock()
	defer p.packMu.Unlock()
	if p.pack == nil {
		return errPackClosed
	}
	err := p.sendPack()
	p.pack = nil
	return err
}

// sendPack writes the pack being filled, if it holds anything, and hands
// it with the file lists recorded meanwhile to the uploader; p.packMu is
// held.
func (p *pusher) sendPack() error {
	job := packJob{files: p.packFiles}
	if !p.pack.Empty() {
		var err error
		if job.key, job.blobs, err = p.writePack(p.ctx, p.pack); err != nil {
			return err
		}
		p.pack.Reset() // not before: an unused builder has no buffer yet
	}
	p.packFiles, p.packLen = nil, 0
	if job.key == "" && len(job.files) == 0 {
		return nil
	}
	select {
	case p.uploads <- job:
		return nil
	case <-p.ctx.Done():
		return p.ctx.Err()
	}
}

// writePack writes a full pack to the store, and returns its key and a
// copy of its blobs (the builder's are reused).
func (p *pusher) writePack(ctx context.Context, pb *format.PackBuilder) (string, []index.Blob, error) {
	data, id, blobs := pb.Finish()
	if err := p.s.WritePack(ctx, id, data); err != nil {
		return "", nil, fmt.Errorf("write pack %s: %w", id.Short(), err)
	}
	p.packs.Add(1)
	p.storedBytes.Add(int64(len(data)))
	key := format.PackKey(id)
	if p.opts.Mirror != nil {
		p.mirror(ctx, remote.ObjectInfo{Key: key, Size: int64(len(data))})
	}
	return key, append([]index.Blob(nil), blobs...), nil
}

// uploader adds the packs written to the batch, and has the Store index
// them a batch at a time, in the order they were filled.
func (p *pusher) uploader(ctx context.Context) error {
	var err error
	for job := range p.uploads {
		if err == nil {
			if err = p.upload(ctx, job); err != nil {
				p.failWith(err)
			}
		}
	}
	return err
}

// upload adds one pack written to the batch, which the Store indexes once
// it is large enough.
func (p *pusher) upload(ctx context.Context, job packJob) error {
	if job.key != "" {
		p.batch.PackKeys = append(p.batch.PackKeys, job.key)
		if p.batch.Blobs == nil {
			// A batch closes once it holds segmentBlobs, after a pack of
			// at most packBlobs more: room for that from the start, rather
			// than a slice that doubles (and is copied) as the batch fills.
			p.batch.Blobs = make([]index.Blob, 0, segmentBlobs+packBlobs)
		}
		p.batch.Blobs = append(p.batch.Blobs, job.blobs...)
	}
	if len(job.files) > 0 && p.batch.Files == nil {
		p.batch.Files = map[digest.Digest][]digest.Digest{}
	}
	for f, chunks := range job.files {
		p.batch.Files[f] = chunks
	}
	if len(p.batch.Blobs)+len(p.batch.Files) < segmentBlobs {
		return nil
	}
	return p.indexBatch(ctx)
}

// indexBatch has the Store index the packs written since the last batch;
// from then on the index answers for their blobs, and the push forgets
// its claims on them.
func (p *pusher) indexBatch(ctx context.Context) error {
	if p.batch.Empty() {
		return nil
	}
	n, err := p.s.IndexPacks(ctx, &p.batch)
	if err != nil {
		return err
	}
	p.storedBytes.Add(n)
	p.claims.forget(p.batch.Blobs)
	// The next batch reuses the slices (the Store keeps none of them).
	p.batch = Batch{PackKeys: p.batch.PackKeys[:0], Blobs: p.batch.Blobs[:0]}
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
		switch {
		case err == nil:
			p.mirrored.Add(1)
			p.mirroredBytes.Add(oi.Size)
		case !errors.Is(err, ErrNotCopied):
			p.failWith(fmt.Errorf("upload: %w", err))
		}
	}()
}

// claims are the blobs this push is adding to its packs, from the moment
// one part of it decides to store one until a segment names it (the index
// then answers for it). A part that finds a blob claimed by another and
// not in a pack yet waits for it (wait) before anything relying on it (a
// file's chunk list, a tree) goes into a pack: so no segment names a
// tree before what lies below it, however the batches fall.
type claims struct {
	mu     sync.Mutex
	cond   sync.Cond
	inPack map[digest.Digest]bool
}

// init readies c; waiters give up once ctx ends.
func (c *claims) init(ctx context.Context) {
	c.inPack = map[digest.Digest]bool{}
	c.cond.L = &c.mu
	context.AfterFunc(ctx, func() {
		c.mu.Lock()
		c.cond.Broadcast()
		c.mu.Unlock()
	})
}

// claim reports whether id is the caller's to store (mine), and if it is
// another's, whether it is in a pack already.
func (c *claims) claim(id digest.Digest) (mine, inPack bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	in, ok := c.inPack[id]
	if !ok {
		c.inPack[id] = false
		return true, false
	}
	return false, in
}

// added records that id is in a pack.
func (c *claims) added(id digest.Digest) {
	c.mu.Lock()
	c.inPack[id] = true
	c.cond.Broadcast()
	c.mu.Unlock()
}

// drop gives up the claim on id: the store has it after all.
func (c *claims) drop(id digest.Digest) {
	c.mu.Lock()
	delete(c.inPack, id)
	c.cond.Broadcast()
	c.mu.Unlock()
}

// forget drops the claims on blobs a segment now names.
func (c *claims) forget(blobs []index.Blob) {
	c.mu.Lock()
	for _, b := range blobs {
		delete(c.inPack, b.ID)
	}
	c.mu.Unlock()
}

// wait returns once every blob of ids is in a pack (or no longer claimed:
// the store has it).
func (c *claims) wait(ctx context.Context, ids []digest.Digest) error {
	if len(ids) == 0 {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, id := range ids {
		for {
			if err := ctx.Err(); err != nil {
				return err
			}
			if in, ok := c.inPack[id]; !ok || in {
				break
			}
			c.cond.Wait()
		}
	}
	return nil
}
