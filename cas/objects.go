package cas

import (
	"context"
	"fmt"

	"github.com/cas-ml/cas/cas/ingest"
	"github.com/cas-ml/cas/digest"
)

// PutObjects stores byte slices (logs, diffs, package lists, manifests)
// as files: each one's digest is the BLAKE3 of its bytes, exactly as if a
// file holding them had been pushed. They share packs and one index
// segment, written in the usual order.
func (r *Repo) PutObjects(ctx context.Context, objs ...[]byte) ([]digest.Digest, error) {
	ids, _, err := ingest.PutBytes(ctx, r.newPushStore(false), objs)
	if err != nil {
		return nil, err
	}
	return ids, nil
}

// ReadObject returns the bytes of a stored file, checked against d.
// It is for small things held in memory (manifests, logs, diffs); max
// bounds what it will read.
func (r *Repo) ReadObject(ctx context.Context, d digest.Digest, max int64) ([]byte, error) {
	obj, err := r.objectOf(ctx, d, "")
	if err != nil {
		return nil, err
	}
	if obj.Kind == KindDir {
		return nil, fmt.Errorf("%s is a directory, not a file", d.Short())
	}
	if obj.Size > max {
		return nil, fmt.Errorf("object %s is %d bytes, more than %d", d.Short(), obj.Size, max)
	}
	return r.readWhole(ctx, d, obj.Size)
}
