package remotetest

import (
	"bytes"
	"testing"

	"github.com/cas-ml/cas/remote"
)

// Clone copies every object of src into a new in-memory backend: a
// snapshot a test can break while src stays as it was.
func Clone(t testing.TB, src remote.Backend) *remote.Mem {
	t.Helper()
	ctx := t.Context()
	dst := remote.NewMem()
	err := src.List(ctx, "", func(oi remote.ObjectInfo) error {
		b, err := remote.ReadAll(ctx, src, oi.Key)
		if err != nil {
			return err
		}
		return dst.Put(ctx, oi.Key, bytes.NewReader(b), int64(len(b)), remote.PutOptions{})
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}
