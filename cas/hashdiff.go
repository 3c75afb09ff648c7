package cas

import (
	"context"
	"path/filepath"
	"runtime"

	"github.com/cas-ml/cas/cas/ingest"
	"github.com/cas-ml/cas/internal/par"
)

// DiffPathOptions tune DiffPath.
type DiffPathOptions struct {
	// Excludes are gitignore-style patterns applied from the path, as a
	// push of it applies them (before the .casignore files inside it).
	Excludes []string
	// Warn is told of every path skipped (FIFOs, sockets, devices).
	Warn func(path string, err error)
	// Digest asks for the path's digest too: then every file is hashed
	// (or found in the stat cache), not only those a comparison needs.
	Digest bool
}

// DiffPath compares the stored object a with path on disk, as DiffEach
// compares a with the digest Hash computes of path, and calls fn with the
// same changes in the same order; but it walks both sides together one
// directory at a time, holding the directories on the path it walks, not
// the trees of the whole path. A file is read only when its digest
// decides something: unchanged ones come from the stat cache of r (which
// may be nil), and a file whose size or kind differs from the stored one,
// or that is new, is not read. It returns what path is: its kind and
// size, and, with opts.Digest, its digest. An error from fn stops the
// walk and is returned as is.
func DiffPath(ctx context.Context, r *Repo, a *Object, as TreeSource, path string, opts DiffPathOptions,
	fn func(Change) error) (*Object, error) {
	io := ingest.Options{Excludes: opts.Excludes, Warn: opts.Warn, SkipName: DirName}
	if r != nil {
		io.Skip, io.StatCache = r.Dir, r.statCache
	}
	l, root, err := ingest.NewLister(path, io)
	if err != nil {
		return nil, err
	}
	d := &pathDiff{ctx: ctx, as: as, l: l, all: opts.Digest, fn: fn, workers: 2 * runtime.GOMAXPROCS(0)}
	b := &diskEntry{Entry: &root, path: l.RootPath()}
	if root.Kind == KindDir {
		b.dir = l.Root()
	}
	ea := TreeEntry{Kind: a.Kind, Digest: a.Digest, Size: a.Size}
	if err := d.walk("", &ea, b); err != nil {
		return nil, err
	}
	return &Object{Digest: root.Digest, Kind: root.Kind, Size: root.Size}, nil
}

// pathDiff is one DiffPath.
type pathDiff struct {
	ctx     context.Context
	as      TreeSource
	l       *ingest.Lister
	all     bool // hash every file: the digest is asked for
	fn      func(Change) error
	workers int
}

// diskEntry is an entry on disk and where to read it: a directory's
// listing, or a file's path.
type diskEntry struct {
	*ingest.Entry
	dir  *ingest.Dir
	path string
}

// needsHash reports whether the digest of b, a file on disk, must be
// read: it is not known yet, and either every digest is asked for or
// only the digest can tell b from a, the stored entry of its name.
func (d *pathDiff) needsHash(a *TreeEntry, b *ingest.Entry) bool {
	if !b.Kind.IsFile() || b.Cached || !b.Digest.IsZero() {
		return false
	}
	return d.all || (a != nil && a.Kind == b.Kind && a.Size == b.Size)
}

// walk is diffEntries with b on disk: the same cases, in the same order.
func (d *pathDiff) walk(path string, a *TreeEntry, b *diskEntry) error {
	switch {
	case a == nil && b == nil:
		return nil
	case a != nil && b != nil && a.Kind == KindDir && b.Kind == KindDir:
		return d.walkDirs(path, a, b)
	case a != nil && b != nil && a.Kind != KindDir && b.Kind != KindDir:
		if d.needsHash(a, b.Entry) {
			if err := ingest.Hash(b.Entry, b.path); err != nil {
				return err
			}
		}
		if a.Kind == b.Kind && a.Digest == b.Digest {
			return nil
		}
		return d.fn(Change{Path: path, Op: "modified", Kind: b.Kind, OldSize: a.Size, NewSize: b.Size})
	}
	// One side missing, or a file replaced by a directory: list each file.
	if a != nil {
		if err := listAll(d.ctx, path, a, d.as, "removed", d.fn); err != nil {
			return err
		}
	}
	if b != nil {
		return d.added(path, b)
	}
	return nil
}

// walkDirs compares stored directory a with directory b on disk, entry by
// entry in name order, and, when every digest is asked for, sets b's.
func (d *pathDiff) walkDirs(path string, a *TreeEntry, b *diskEntry) error {
	ta, err := d.as(d.ctx, a.Digest)
	if err != nil {
		return err
	}
	children, sub, err := d.list(b)
	if err != nil {
		return err
	}
	// Read, on several cores, the files whose digests decide something.
	var need []int
	j := 0
	for i := range children {
		c := &children[i]
		for j < len(ta.Entries) && ta.Entries[j].Name < c.Name {
			j++
		}
		var stored *TreeEntry
		if j < len(ta.Entries) && ta.Entries[j].Name == c.Name {
			stored = &ta.Entries[j]
		}
		if d.needsHash(stored, c) {
			need = append(need, i)
		}
	}
	if err := d.hash(b, children, need); err != nil {
		return err
	}
	i, j := 0, 0
	for i < len(ta.Entries) || j < len(children) {
		var x *TreeEntry
		var y *diskEntry
		switch {
		case j >= len(children) || (i < len(ta.Entries) && ta.Entries[i].Name < children[j].Name):
			x = &ta.Entries[i]
			i++
		case i >= len(ta.Entries) || children[j].Name < ta.Entries[i].Name:
			y = d.entry(b, &children[j], sub)
			j++
		default:
			x, y = &ta.Entries[i], d.entry(b, &children[j], sub)
			i++
			j++
		}
		name := ""
		if x != nil {
			name = x.Name
		} else {
			name = y.Name
		}
		if err := d.walk(filepath.Join(path, name), x, y); err != nil {
			return err
		}
	}
	return d.seal(b, children)
}

// added lists b, on disk only, as added: a file, or each file below a
// directory (an empty one as "dir/"), as listAll does a stored tree.
func (d *pathDiff) added(path string, b *diskEntry) error {
	if b.Kind != KindDir {
		if d.needsHash(nil, b.Entry) {
			if err := ingest.Hash(b.Entry, b.path); err != nil {
				return err
			}
		}
		return d.fn(Change{Path: path, Op: "added", Kind: b.Kind, NewSize: b.Size})
	}
	children, sub, err := d.list(b)
	if err != nil {
		return err
	}
	if d.all {
		var need []int
		for i := range children {
			if d.needsHash(nil, &children[i]) {
				need = append(need, i)
			}
		}
		if err := d.hash(b, children, need); err != nil {
			return err
		}
	}
	if len(children) == 0 {
		if err := d.fn(Change{Path: path + "/", Op: "added", Kind: KindDir}); err != nil {
			return err
		}
	}
	for i := range children {
		c := d.entry(b, &children[i], sub)
		if err := d.added(filepath.Join(path, c.Name), c); err != nil {
			return err
		}
	}
	return d.seal(b, children)
}

func (d *pathDiff) list(b *diskEntry) ([]ingest.Entry, func(string) *ingest.Dir, error) {
	if err := d.ctx.Err(); err != nil {
		return nil, nil, err
	}
	return d.l.List(b.dir)
}

// entry is child c of directory b, ready to be walked.
func (d *pathDiff) entry(b *diskEntry, c *ingest.Entry, sub func(string) *ingest.Dir) *diskEntry {
	e := &diskEntry{Entry: c, path: filepath.Join(b.dir.Path, c.Name)}
	if c.Kind == KindDir {
		e.dir = sub(c.Name)
	}
	return e
}

// hash reads the files of b at need, on several cores.
func (d *pathDiff) hash(b *diskEntry, children []ingest.Entry, need []int) error {
	if len(need) == 0 {
		return nil
	}
	return par.ForEach(d.ctx, need, min(d.workers, len(need)), func(_ context.Context, i int) error {
		return ingest.Hash(&children[i], filepath.Join(b.dir.Path, children[i].Name))
	})
}

// seal sets the size of directory b, and its digest when every digest is
// asked for, from its entries, as a push's tree of it has them.
func (d *pathDiff) seal(b *diskEntry, children []ingest.Entry) error {
	t := &Tree{Entries: make([]TreeEntry, 0, len(children))}
	b.Size = 0
	for _, c := range children {
		b.Size += c.Size
		if d.all {
			t.Entries = append(t.Entries, TreeEntry{Name: c.Name, Kind: c.Kind, Size: c.Size, Digest: c.Digest})
		}
	}
	if !d.all {
		return nil
	}
	dg, _, err := t.Digest()
	if err != nil {
		return err
	}
	b.Digest = dg
	return nil
}
