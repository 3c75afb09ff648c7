package cas

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/cas-ml/cas/digest"
)

// Change is one difference between two trees.
type Change struct {
	Path    string `json:"path"`
	Op      string `json:"op"` // "added", "removed", "modified"
	Kind    Kind   `json:"kind"`
	OldSize int64  `json:"old_size"`
	NewSize int64  `json:"new_size"`
}

// TreeSource reads trees by digest: the store, or a HashResult.
type TreeSource func(ctx context.Context, d digest.Digest) (*Tree, error)

// StoreTrees reads trees from the store.
func (r *Repo) StoreTrees() TreeSource { return r.ReadTree }

// Trees reads trees computed by Hash.
func (h *HashResult) Trees() TreeSource {
	return func(_ context.Context, d digest.Digest) (*Tree, error) {
		if t, ok := h.trees[d]; ok {
			return t, nil
		}
		return nil, fmt.Errorf("tree %s: %w", d.Short(), ErrNotFound)
	}
}

// Diff lists what changed from a to b, file by file, in path order.
// Directories with equal digests are not descended into.
func Diff(ctx context.Context, a *Object, as TreeSource, b *Object, bs TreeSource) ([]Change, error) {
	out := []Change{}
	err := DiffEach(ctx, a, as, b, bs, func(c Change) error {
		out = append(out, c)
		return nil
	})
	return out, err
}

// DiffEach calls fn with what changed from a to b, file by file, in path
// order, as it finds it: what it holds is the trees on the path it
// walks, however many changes there are. Directories with equal digests
// are not descended into. An error from fn stops the walk and is
// returned as is.
func DiffEach(ctx context.Context, a *Object, as TreeSource, b *Object, bs TreeSource, fn func(Change) error) error {
	ea := TreeEntry{Kind: a.Kind, Digest: a.Digest, Size: a.Size}
	eb := TreeEntry{Kind: b.Kind, Digest: b.Digest, Size: b.Size}
	return diffEntries(ctx, "", &ea, as, &eb, bs, fn)
}

func diffEntries(ctx context.Context, path string, a *TreeEntry, as TreeSource, b *TreeEntry, bs TreeSource, fn func(Change) error) error {
	switch {
	case a == nil && b == nil:
		return nil
	case a != nil && b != nil && a.Kind == b.Kind && a.Digest == b.Digest:
		return nil
	case a != nil && b != nil && a.Kind == KindDir && b.Kind == KindDir:
		ta, err := as(ctx, a.Digest)
		if err != nil {
			return err
		}
		tb, err := bs(ctx, b.Digest)
		if err != nil {
			return err
		}
		i, j := 0, 0
		for i < len(ta.Entries) || j < len(tb.Entries) {
			var x, y *TreeEntry
			switch {
			case j >= len(tb.Entries) || (i < len(ta.Entries) && ta.Entries[i].Name < tb.Entries[j].Name):
				x = &ta.Entries[i]
				i++
			case i >= len(ta.Entries) || tb.Entries[j].Name < ta.Entries[i].Name:
				y = &tb.Entries[j]
				j++
			default:
				x, y = &ta.Entries[i], &tb.Entries[j]
				i++
				j++
			}
			name := x
			if name == nil {
				name = y
			}
			if err := diffEntries(ctx, filepath.Join(path, name.Name), x, as, y, bs, fn); err != nil {
				return err
			}
		}
		return nil
	case a != nil && b != nil && a.Kind != KindDir && b.Kind != KindDir:
		return fn(Change{Path: path, Op: "modified", Kind: b.Kind, OldSize: a.Size, NewSize: b.Size})
	}
	// One side missing, or a file replaced by a directory: list each file.
	if a != nil {
		if err := listAll(ctx, path, a, as, "removed", fn); err != nil {
			return err
		}
	}
	if b != nil {
		return listAll(ctx, path, b, bs, "added", fn)
	}
	return nil
}

func listAll(ctx context.Context, path string, e *TreeEntry, src TreeSource, op string, fn func(Change) error) error {
	if e.Kind != KindDir {
		c := Change{Path: path, Op: op, Kind: e.Kind}
		if op == "added" {
			c.NewSize = e.Size
		} else {
			c.OldSize = e.Size
		}
		return fn(c)
	}
	t, err := src(ctx, e.Digest)
	if err != nil {
		return err
	}
	if len(t.Entries) == 0 {
		return fn(Change{Path: path + "/", Op: op, Kind: KindDir})
	}
	for i := range t.Entries {
		if err := listAll(ctx, filepath.Join(path, t.Entries[i].Name), &t.Entries[i], src, op, fn); err != nil {
			return err
		}
	}
	return nil
}

// lastPushKey is the stat-cache "directory" under which the digest of a
// root's last push is kept; real directory paths never hold a NUL.
const lastPushKey = "\x00last-push"

// LastPush returns the digest of the last push of an absolute path.
func (r *Repo) LastPush(abs string) (*Object, bool, error) {
	m, err := r.Index.StatDir(abs, lastPushKey)
	if err != nil {
		return nil, false, err
	}
	e, ok := m[""]
	if !ok {
		return nil, false, nil
	}
	return &Object{Digest: e.Digest, Kind: Kind(e.Mode), Size: e.Size}, true, nil
}
