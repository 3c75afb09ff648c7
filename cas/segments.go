package cas

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/cas-ml/cas/cas/format"
	"github.com/cas-ml/cas/digest"
	"github.com/cas-ml/cas/index"
	"github.com/cas-ml/cas/remote"
)

// smallSegment is the largest index segment read into memory whole. A
// larger one (a push of a million files writes one of tens of MiB) is
// copied into a temporary file as it is read, checked against its name
// and parsed on the way, then scanned from there: what reading it holds
// in memory does not grow with the number of blobs it names.
const smallSegment = 256 << 10

// fetchedSegment is an index segment read from a backend, checked
// against its name and parsed once.
type fetchedSegment struct {
	key  string
	id   digest.Digest
	data []byte   // a small segment's bytes
	file *os.File // a larger one's, in a temporary file already unlinked
	size int64
}

// fetchSegment reads the index segment at key, checks it against its
// name and that it parses.
func fetchSegment(ctx context.Context, be remote.Backend, key string) (*fetchedSegment, error) {
	rc, err := be.Get(ctx, key, 0, -1)
	if err != nil {
		return nil, fmt.Errorf("read index segment %s: %w", key, err)
	}
	defer rc.Close()
	head, err := io.ReadAll(io.LimitReader(rc, smallSegment+1))
	if err != nil {
		return nil, fmt.Errorf("read index segment %s: %w", key, err)
	}
	fs := &fetchedSegment{key: key}
	if len(head) <= smallSegment {
		fs.data, fs.size = head, int64(len(head))
		if err := fs.checkName(digest.Of(head)); err != nil {
			return nil, err
		}
		if _, err := format.DecodeSegment(head); err != nil {
			return nil, fmt.Errorf("index segment %s: %w", key, err)
		}
		return fs, nil
	}
	f, err := os.CreateTemp("", "cas-segment-*")
	if err != nil {
		return nil, err
	}
	os.Remove(f.Name()) // the open file stays until closed
	fs.file = f
	h := digest.New()
	// Copied, hashed and parsed in one pass. A parse that gives up early
	// no longer reads: the rest is still copied and hashed, since a name
	// that is wrong says the segment is damaged rather than malformed.
	pr, pw := io.Pipe()
	parsed := make(chan error, 1)
	go func() {
		err := format.ScanSegment(pr, format.SegmentVisitor{})
		pr.CloseWithError(errParseDone)
		parsed <- err
	}()
	n, err := io.Copy(io.MultiWriter(f, h, &toParser{w: pw}), io.MultiReader(bytes.NewReader(head), rc))
	pw.Close()
	perr := <-parsed
	fs.size = n
	if err != nil {
		err = fmt.Errorf("read index segment %s: %w", key, err)
	} else if err = fs.checkName(digest.FromHash(h)); err == nil && perr != nil {
		err = fmt.Errorf("index segment %s: %w", key, perr)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return fs, nil
}

// errParseDone closes the pipe to a parse that has ended.
var errParseDone = errors.New("parse done")

// toParser writes into the pipe to a parse until the parse has ended,
// then drops what it is given.
type toParser struct {
	w    *io.PipeWriter
	done bool
}

func (t *toParser) Write(p []byte) (int, error) {
	if !t.done {
		if _, err := t.w.Write(p); err != nil {
			t.done = true
		}
	}
	return len(p), nil
}

// checkName checks that the segment's bytes hash to its name.
func (fs *fetchedSegment) checkName(got digest.Digest) error {
	fs.id = got
	if got.Hex() != strings.TrimPrefix(fs.key, format.SegmentPrefix) {
		return fmt.Errorf("index segment %s: %w", fs.key, &CorruptError{What: "index segment", ID: got})
	}
	return nil
}

// scan tells v what the segment holds.
func (fs *fetchedSegment) scan(v format.SegmentVisitor) error {
	if fs.file == nil {
		seg, err := format.DecodeSegment(fs.data)
		if err != nil {
			return fmt.Errorf("index segment %s: %w", fs.key, err)
		}
		for _, b := range seg.Blobs {
			if v.Blob != nil {
				if err := v.Blob(b); err != nil {
					return err
				}
			}
		}
		for f, chunks := range seg.Files {
			if v.File != nil {
				if err := v.File(f, chunks); err != nil {
					return err
				}
			}
		}
		return nil
	}
	err := format.ScanSegment(io.NewSectionReader(fs.file, 0, fs.size), v)
	if errors.Is(err, format.ErrBadSegment) {
		return fmt.Errorf("index segment %s: %w", fs.key, err)
	}
	return err
}

// close releases the segment's bytes.
func (fs *fetchedSegment) close() {
	if fs.file != nil {
		fs.file.Close()
	}
	fs.data = nil
}

// segmentFetch is the outcome of fetching one segment of several.
type segmentFetch struct {
	fs  *fetchedSegment
	err error
}

// closeFetched releases the fetched segments left in got.
func closeFetched(got []segmentFetch) {
	for _, g := range got {
		if g.fs != nil {
			g.fs.close()
		}
	}
}

// scanSegment fetches the segment at key and tells v what it holds.
func scanSegment(ctx context.Context, be remote.Backend, key string, v format.SegmentVisitor) error {
	fs, err := fetchSegment(ctx, be, key)
	if err != nil {
		return err
	}
	defer fs.close()
	return fs.scan(v)
}

// segmentIndexer records what a segment says in an index, a batch at a
// time: the blobs of one pack, or files, as they come.
type segmentIndexer struct {
	idx       index.Index
	fromStore bool
	anyBad    bool
	pack      digest.Digest
	blobs     []index.Blob
	files     map[digest.Digest][]digest.Digest
	named     []digest.Digest // the packs the segment names, as they came
}

// indexBatch is how many blobs or files a segmentIndexer adds at once.
const indexBatch = 4096

func newSegmentIndexer(idx index.Index, fromStore bool) (*segmentIndexer, error) {
	anyBad, err := idx.AnyDamaged()
	if err != nil {
		return nil, err
	}
	return &segmentIndexer{idx: idx, fromStore: fromStore, anyBad: anyBad, files: map[digest.Digest][]digest.Digest{}}, nil
}

func (x *segmentIndexer) visitor() format.SegmentVisitor {
	return format.SegmentVisitor{Blob: x.blob, File: x.file}
}

func (x *segmentIndexer) blob(b index.Blob) error {
	if n := len(x.named); n == 0 || x.named[n-1] != b.Pack {
		x.named = append(x.named, b.Pack)
	}
	if skip, err := keepKnown(x.idx, b, x.anyBad, x.fromStore); err != nil || skip {
		return err
	}
	return x.add(b)
}

// add gathers a blob that keepKnown let in.
func (x *segmentIndexer) add(b index.Blob) error {
	if len(x.blobs) > 0 && (b.Pack != x.pack || len(x.blobs) >= indexBatch) {
		if err := x.flushBlobs(); err != nil {
			return err
		}
	}
	x.pack = b.Pack
	x.blobs = append(x.blobs, b)
	return nil
}

// flushBlobs adds the blobs of one pack gathered so far; what only a
// remote's segment names is marked as such.
func (x *segmentIndexer) flushBlobs() error {
	bs := x.blobs
	x.blobs = x.blobs[:0]
	var ids []digest.Digest
	if !x.fromStore {
		ids = make([]digest.Digest, len(bs), len(bs)+1)
		for i, b := range bs {
			ids[i] = b.ID
		}
		if known, err := storeKnowsPack(x.idx, x.pack); err != nil {
			return err
		} else if !known {
			ids = append(ids, x.pack) // a pack only the remote's segments name
		}
	}
	if !x.fromStore {
		return x.idx.AddRemoteBlobs(x.pack, bs, ids)
	}
	return x.idx.AddBlobs(x.pack, bs)
}

func (x *segmentIndexer) file(f digest.Digest, chunks []digest.Digest) error {
	if !x.fromStore {
		known, err := storeKnows(x.idx, f, func() (bool, error) { _, ok, err := x.idx.FileChunks(f); return ok, err })
		if err != nil || known {
			return err
		}
	}
	x.files[f] = chunks
	if len(x.files) >= indexBatch {
		return x.flushFiles()
	}
	return nil
}

func (x *segmentIndexer) flushFiles() error {
	files := x.files
	x.files = map[digest.Digest][]digest.Digest{}
	if !x.fromStore {
		return x.idx.AddRemoteFiles(files)
	}
	return x.idx.AddFiles(files)
}

// finish adds what is still gathered.
func (x *segmentIndexer) finish() error {
	if len(x.blobs) > 0 {
		if err := x.flushBlobs(); err != nil {
			return err
		}
	}
	if len(x.files) > 0 {
		return x.flushFiles()
	}
	return nil
}

// indexSegment records what a fetched segment says in idx, and returns
// the packs it names, sorted.
func indexSegment(idx index.Index, fs *fetchedSegment, fromStore bool) ([]digest.Digest, error) {
	x, err := newSegmentIndexer(idx, fromStore)
	if err != nil {
		return nil, err
	}
	if err := fs.scan(x.visitor()); err != nil {
		return nil, err
	}
	slices.SortFunc(x.named, func(a, b digest.Digest) int { return bytes.Compare(a[:], b[:]) })
	return slices.Compact(x.named), x.finish()
}

// getSegment reads the index segment at key whole into memory, checked
// against its name: for the callers that hold a batch of segments at a
// time (an upload, the lookup index's writers).
func getSegment(ctx context.Context, be remote.Backend, key string) (*format.Segment, digest.Digest, error) {
	fs, err := fetchSegment(ctx, be, key)
	if err != nil {
		return nil, digest.Zero, err
	}
	defer fs.close()
	seg := &format.Segment{Files: map[digest.Digest][]digest.Digest{}}
	err = fs.scan(format.SegmentVisitor{
		Blob: func(b index.Blob) error { seg.Blobs = append(seg.Blobs, b); return nil },
		File: func(f digest.Digest, chunks []digest.Digest) error { seg.Files[f] = chunks; return nil },
	})
	if err != nil {
		return nil, fs.id, fmt.Errorf("index segment %s: %w", key, err)
	}
	return seg, fs.id, nil
}
