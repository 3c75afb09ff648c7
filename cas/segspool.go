package cas

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"

	"github.com/cas-ml/cas/cas/format"
	"github.com/cas-ml/cas/digest"
	"github.com/cas-ml/cas/index"
	"github.com/cas-ml/cas/remote"
)

// segmentSpool gathers what an index segment will hold, too much to hold
// in memory: its blobs (each ID once, the first given) by pack, and its
// files, in runs on disk; store encodes it as it streams.
type segmentSpool struct {
	seen  *index.DigestSet
	blobs *index.DigestMultimap // pack → blob records
	files *index.DigestMultimap // file → chunk lists, each given
}

func newSegmentSpool() *segmentSpool {
	return &segmentSpool{seen: index.NewDigestSet(), blobs: index.NewDigestMultimap(), files: index.NewDigestMultimap()}
}

func (s *segmentSpool) close() {
	s.seen.Close()
	s.blobs.Close()
	s.files.Close()
}

func (s *segmentSpool) addBlob(b index.Blob) error {
	if dup, err := s.seen.Has(b.ID); err != nil || dup {
		return err
	}
	if err := s.seen.Add(b.ID); err != nil {
		return err
	}
	return s.blobs.Add(b.Pack, b.AppendRecord(make([]byte, 0, index.BlobRecordLen)))
}

// addFile records a file's chunk list; the last one given for a file is
// the one kept.
func (s *segmentSpool) addFile(f digest.Digest, chunks []digest.Digest) error {
	v := make([]byte, 0, len(chunks)*digest.Size)
	for _, c := range chunks {
		v = append(v, c[:]...)
	}
	return s.files.Add(f, v)
}

// store writes the segment on be, leaving out the files whose chunks are
// not all in survives, and returns its key; none ("") when it would hold
// nothing.
func (s *segmentSpool) store(ctx context.Context, be remote.Backend, survives func(digest.Digest) (bool, error)) (string, error) {
	var packs []digest.Digest
	nblobs := 0
	err := s.blobs.Each(func(p digest.Digest, recs [][]byte) error {
		packs = append(packs, p)
		nblobs += len(recs)
		return nil
	})
	if err != nil {
		return "", err
	}
	// A file's last chunk list, if every chunk of it survives.
	listed := func(lists [][]byte) ([]digest.Digest, error) {
		chunks := make([]digest.Digest, len(lists[len(lists)-1])/digest.Size)
		for i := range chunks {
			copy(chunks[i][:], lists[len(lists)-1][i*digest.Size:])
			if ok, err := survives(chunks[i]); err != nil || !ok {
				return nil, err
			}
		}
		return chunks, nil
	}
	nfiles := 0
	err = s.files.Each(func(_ digest.Digest, lists [][]byte) error {
		chunks, err := listed(lists)
		if chunks != nil {
			nfiles++
		}
		return err
	})
	if err != nil {
		return "", err
	}
	if nblobs == 0 && nfiles == 0 {
		return "", nil
	}
	f, err := os.CreateTemp("", "cas-segment-*")
	if err != nil {
		return "", err
	}
	os.Remove(f.Name()) // the open file stays until closed
	defer f.Close()
	h := digest.New()
	w, err := format.NewSegmentWriter(io.MultiWriter(f, h), packs, nblobs)
	if err != nil {
		return "", err
	}
	err = s.blobs.Each(func(p digest.Digest, recs [][]byte) error {
		blobs := make([]index.Blob, len(recs))
		for i, v := range recs {
			b, err := index.ParseBlobRecord(v)
			if err != nil {
				return err
			}
			blobs[i] = b
		}
		slices.SortStableFunc(blobs, func(a, b index.Blob) int { return cmp.Compare(a.Offset, b.Offset) })
		for _, b := range blobs {
			if err := w.Blob(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil && nfiles > 0 {
		err = w.Files(nfiles)
		if err == nil {
			err = s.files.Each(func(file digest.Digest, lists [][]byte) error {
				chunks, err := listed(lists)
				if err != nil || chunks == nil {
					return err
				}
				return w.File(file, chunks)
			})
		}
	}
	if err == nil {
		err = w.Close()
	}
	if err != nil {
		return "", fmt.Errorf("gc: encode index segment: %w", err)
	}
	size, err := f.Seek(0, io.SeekCurrent)
	if err != nil {
		return "", err
	}
	id := digest.FromHash(h)
	key := format.SegmentKey(id)
	if err := putOnceFile(ctx, be, key, f, size, id); err != nil {
		return "", fmt.Errorf("gc: write index segment: %w", err)
	}
	if err := remote.SyncKeys(be, key); err != nil {
		return "", err
	}
	return key, nil
}

// putOnceFile is putOnce for an object too large to hold, held in f:
// one already there under its name (id, the digest of its bytes) is kept
// only if its bytes hash to that name.
func putOnceFile(ctx context.Context, be remote.Backend, key string, f *os.File, size int64, id digest.Digest) error {
	put := func() error {
		return be.Put(ctx, key, io.NewSectionReader(f, 0, size), size, remote.PutOptions{IfNoneMatch: true})
	}
	err := put()
	if !errors.Is(err, remote.ErrExists) {
		return err
	}
	rc, err := be.Get(ctx, key, 0, -1)
	if err != nil && !errors.Is(err, remote.ErrNotFound) {
		return err
	}
	if err == nil {
		there, _, rerr := digest.FromReader(rc)
		rc.Close()
		if rerr == nil && there == id {
			return nil
		}
		if err := be.Delete(ctx, key); err != nil && !errors.Is(err, remote.ErrNotFound) {
			return err
		}
	}
	if err := put(); !errors.Is(err, remote.ErrExists) {
		return err
	}
	return nil // another writer put it back meanwhile: the same name, the same bytes
}
