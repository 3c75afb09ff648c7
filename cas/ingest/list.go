package ingest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"

	"github.com/go-git/go-git/v5/plumbing/format/gitignore"

	"github.com/cas-ml/cas/cas/format"
	"github.com/cas-ml/cas/digest"
	"github.com/cas-ml/cas/index"
	"github.com/cas-ml/cas/internal/bufpool"
)

// Lister lists a path on disk directory by directory exactly as a push of
// it would see it (excludes, .casignore, the store's own directory and
// special files left out, digests from the stat cache), for a caller that
// compares the path with a stored tree one directory at a time instead of
// hashing it whole: what it holds is the directory it was asked about.
type Lister struct {
	rt *pushRoot
}

// Entry is one entry of a directory on disk, as a push would store it.
// A link's digest is known; a file's is known when Cached (the stat
// cache's entry still matches), else Hash reads it.
type Entry struct {
	Name   string
	Kind   format.Kind
	Size   int64
	Digest digest.Digest
	Cached bool
	st     index.StatEntry
}

// Dir is a directory below the listed root.
type Dir struct {
	Path     string // where to read it
	domain   []string
	patterns []gitignore.Pattern // in force in it
}

// NewLister looks at path (a symlink given is followed, as push does) and
// returns a Lister and the root's entry, named by path's base name; when
// the root is a directory, Root is where its listing starts. Options
// used: Excludes, Warn, Skip, SkipName and StatCache.
func NewLister(path string, opts Options) (*Lister, Entry, error) {
	p := &pusher{opts: opts}
	roots, err := p.openRoots([]string{path})
	if err != nil {
		return nil, Entry{}, err
	}
	rt := roots[0]
	return &Lister{rt: rt}, entryOf(rt.node), nil
}

// Root is the root directory, when the root is one.
func (l *Lister) Root() *Dir {
	return &Dir{Path: l.rt.path, patterns: l.rt.patterns}
}

// RootPath is where to read the root, when it is a file.
func (l *Lister) RootPath() string { return l.rt.path }

// List reads d's entries, sorted by name, and returns with them d's
// subdirectory of each name, for listing it in turn.
func (l *Lister) List(d *Dir) ([]Entry, func(name string) *Dir, error) {
	var cache map[string]index.StatEntry
	if l.rt.cache != nil {
		cache = l.rt.cache(joinDomain(d.domain))
	}
	children, patterns, err := l.rt.sc.list(d.Path, d.domain, d.patterns, cache)
	if err != nil {
		return nil, nil, err
	}
	entries := make([]Entry, len(children))
	for i, c := range children {
		entries[i] = entryOf(c)
	}
	sub := func(name string) *Dir {
		return &Dir{Path: filepath.Join(d.Path, name), domain: append(d.domain[:len(d.domain):len(d.domain)], name),
			patterns: patterns}
	}
	return entries, sub, nil
}

// joinDomain is the stat cache's name of the directory below the root.
func joinDomain(domain []string) string {
	rel := ""
	for _, name := range domain {
		rel = joinRel(rel, name)
	}
	return rel
}

func entryOf(n *node) Entry {
	return Entry{Name: n.name, Kind: n.kind, Size: n.size, Digest: n.digest, Cached: n.cached, st: n.st}
}

// smallHash is the size up to which Hash reads a file in one piece.
const smallHash = 1 << 20

// Hash reads the file e at path and sets its digest, size and kind as a
// push would store them, trying again if it changes while being read
// (ErrFileChanged after three tries), as a push does.
func Hash(e *Entry, path string) error {
	var err error
	for range 3 {
		if err = hashFile(e, path); !errors.Is(err, ErrFileChanged) {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

func hashFile(e *Entry, path string) error {
	var d digest.Digest
	now, kind, read, err := readChecked(path, e.Name, e.st, func(f fdReader) (read int64, err error) {
		size := e.st.Size
		if size >= smallHash {
			d, read, err = hashWhole(context.Background(), f, size, nil)
			return read, err
		}
		// One byte more than expected tells a file that grew.
		buf := bufpool.Get(int(size) + 1)
		defer bufpool.Put(buf)
		k, err := io.ReadFull(f, buf)
		if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
			return 0, err
		}
		d = digest.Of(buf[:k])
		return int64(k), nil
	})
	if errors.Is(err, ErrFileChanged) {
		e.st = now // the next try's "before"
	}
	if err != nil {
		return err
	}
	e.Digest, e.Size, e.st, e.Kind = d, read, now, kind
	return nil
}
