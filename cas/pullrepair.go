package cas

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/cas-ml/cas/cas/format"
	"github.com/cas-ml/cas/digest"
	"github.com/cas-ml/cas/index"
	"github.com/cas-ml/cas/remote"
)

// maxRepairPack bounds the bytes repairPack reads of a remote's pack: the
// most a pack can hold (a full pack and one chunk of the largest size)
// and a trailer of the most records.
const maxRepairPack = format.TargetPackBytes + format.MaxChunkLen + 64<<20

// errPackSound says that the store's copy of a pack a pull found damaged
// reads whole and sound now: there was nothing to repair.
var errPackSound = errors.New("the copy in this store reads sound whole: nothing replaced")

// repairPack replaces the store's copy of pack p, found damaged, with the
// remote's, and returns the bytes read from the remote. The remote's copy
// is read whole and checked first, every blob against its ID and the
// trailer against the pack's name: a pack is named by its trailer, so the
// copy put in place holds exactly the blobs the damaged one should have,
// and a bucket can neither take blobs from the store this way nor add
// any. The store's copy is left as it is unless it is damaged and the
// remote's is sound. Marks of damage (index.MarkDamaged) stay: a push
// still stores those chunks anew, a harmless duplicate.
func (r *Repo) repairPack(ctx context.Context, p digest.Digest) (int64, error) {
	key := format.PackKey(p)
	if _, err := r.Backend.Stat(ctx, key); err != nil {
		return 0, fmt.Errorf("pack %s: %w", p.Short(), err)
	}
	var here error
	err := r.readPack(ctx, key, func(_ index.Blob, _ []byte, berr error) error {
		here = cmp.Or(here, berr)
		return nil
	})
	if err == nil && here == nil {
		// What was read damaged may have come through a descriptor of a
		// copy another process has replaced since.
		r.packs.forget(p)
		return 0, fmt.Errorf("pack %s: %w", p.Short(), errPackSound)
	}
	where := r.remote.Location()
	oi, err := r.remote.Stat(ctx, key)
	if err != nil {
		return 0, fmt.Errorf("the copy in this store of pack %s is damaged, and %s has none: %w", p.Short(), where, err)
	}
	if oi.Size <= 0 || oi.Size > maxRepairPack {
		return 0, fmt.Errorf("the copy in this store of pack %s is damaged, and %s's is %d bytes, not a pack", p.Short(), where, oi.Size)
	}
	rc, err := r.remote.Get(ctx, key, 0, oi.Size)
	if err != nil {
		return 0, fmt.Errorf("read pack %s from %s: %w", p.Short(), where, err)
	}
	// The buffer grows with the bytes that arrive, not to the size the
	// bucket says: a bucket that lies about it makes no large allocation
	// without sending the bytes.
	data, err := io.ReadAll(io.LimitReader(rc, oi.Size))
	rc.Close()
	if err == nil && int64(len(data)) != oi.Size {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		return 0, fmt.Errorf("read pack %s from %s: %w", p.Short(), where, err)
	}
	var bad error
	err = checkPackData(p, data, func(_ index.Blob, _ []byte, berr error) error {
		bad = cmp.Or(bad, berr)
		return nil
	})
	if err = errors.Join(err, bad); err != nil {
		return 0, fmt.Errorf("the copy in this store of pack %s is damaged, and so is %s's: %w", p.Short(), where, err)
	}
	// Put over the damaged copy, not delete then put: a put to the store
	// moves its file into place whole, so a repair cut short (a full
	// disk, a kill) leaves the damaged copy, with all its sound chunks,
	// never no copy. Every writer of this name writes these bytes.
	err = r.Backend.Put(ctx, key, bytes.NewReader(data), int64(len(data)), remote.PutOptions{})
	// A file of the damaged copy held open would go on being read.
	r.packs.forget(p)
	if err != nil {
		return 0, fmt.Errorf("replace the damaged copy of pack %s: %w", p.Short(), err)
	}
	r.warn(fmt.Errorf("the copy in this store of pack %s was damaged: replaced by %s's, checked whole", p.Short(), where))
	return oi.Size, nil
}
