package ingest

import (
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/go-git/go-git/v5/plumbing/format/gitignore"

	"github.com/cas-ml/cas/cas/format"
	"github.com/cas-ml/cas/digest"
	"github.com/cas-ml/cas/index"
)

// readQueue bounds the files listed but not yet taken by a reader: how
// far the walk runs ahead of the reading, and so how many directories
// are open at once.
const readQueue = 256

// readersPerCore is how many file readers a push runs per core. Reading
// small files that are not in the page cache waits on the disk, one
// request per reader; a reader holds at most one small file (or a share
// of the memory budget), so more readers cost little.
const readersPerCore = 4

// pushRoot is one path given to push.
type pushRoot struct {
	abs      string
	path     string // where to read it: abs, or the target of a symlink given
	node     *node
	dir      *dirState // a directory's, while it is pushed
	sc       *scanner
	cache    func(dir string) map[string]index.StatEntry // nil: no stat cache
	patterns []gitignore.Pattern                         // the excludes given
}

// dirState is a directory being pushed: its entries, and how many parts
// of it (its listing, its subdirectories, its files being read) are not
// done. Whichever goroutine completes the last part finishes it (finish):
// stores its tree, saves its stat cache entries and lets its entries go,
// then gives back its part of its parent. So a tree goes into a pack only
// after everything below it, and memory follows the directories being
// worked on, not the size of the tree.
type dirState struct {
	node     *node
	parent   *dirState // nil for a pushed root
	root     *pushRoot // nil for the tree holding several roots
	path     string    // on disk
	rel      string    // below the pushed root, "" for the root
	children []*node   // sorted by name
	// pending counts the parts not done; the listing holds one until it
	// has handed every other part out.
	pending atomic.Int64
	// allCached: every file came from the stat cache and none was checked
	// against the store yet: finish decides whether that is needed.
	allCached bool
}

// fileJob is a file to read, and the directory waiting for it.
type fileJob struct {
	d    *dirState
	n    *node
	path string
}

// openRoots looks at every path given: what it is, and that no two
// share a name.
func (p *pusher) openRoots(paths []string) ([]*pushRoot, error) {
	var patterns []gitignore.Pattern
	for _, e := range p.opts.Excludes {
		patterns = append(patterns, gitignore.ParsePattern(e, nil))
	}
	roots := make([]*pushRoot, 0, len(paths))
	seen := map[string]bool{}
	for _, path := range paths {
		abs, err := filepath.Abs(path)
		if err != nil {
			return nil, err
		}
		rt := &pushRoot{abs: abs, patterns: patterns,
			sc: &scanner{warn: p.opts.Warn, skip: p.opts.Skip, skipName: p.opts.SkipName}}
		if p.opts.StatCache != nil {
			rt.cache = func(dir string) map[string]index.StatEntry { return p.opts.StatCache(abs, dir) }
		}
		if rt.node, rt.path, err = rt.sc.scanRoot(abs, rt.cache); err != nil {
			return nil, err
		}
		if len(paths) > 1 && seen[rt.node.name] {
			return nil, fmt.Errorf("two paths named %q: push them separately", rt.node.name)
		}
		seen[rt.node.name] = true
		roots = append(roots, rt)
	}
	return roots, nil
}

// pushRoots pushes every root and returns the top: the one root, or a
// tree holding them all.
func (p *pusher) pushRoots(roots []*pushRoot) (*node, error) {
	p.jobs = make(chan fileJob, readQueue)
	p.spare = make(chan struct{}, runtime.GOMAXPROCS(0))
	for range cap(p.spare) {
		p.spare <- struct{}{}
	}
	// Many more readers than cores: a reader waiting on a read or on the
	// pack lock leaves its core to another, and small files not in the
	// page cache are read from the disk several at once.
	var readers sync.WaitGroup
	for range readersPerCore*runtime.GOMAXPROCS(0) + 2 {
		readers.Go(p.reader)
	}
	var counting sync.WaitGroup
	if p.opts.Progress.CountAhead {
		counting.Go(func() { p.countAhead(roots) })
	}
	var err error
	for _, rt := range roots {
		if err = p.pushRoot(rt); err != nil {
			p.failWith(err)
			break
		}
	}
	close(p.jobs)
	readers.Wait()
	counting.Wait()
	if err == nil {
		err = p.ctx.Err()
	}
	if err != nil {
		return nil, err
	}
	for _, rt := range roots {
		if rt.dir != nil && rt.dir.pending.Load() != 0 {
			return nil, fmt.Errorf("%s: internal error: directory left unfinished", rt.abs)
		}
	}
	if len(roots) == 1 {
		return roots[0].node, nil
	}
	top := &dirState{node: &node{kind: format.KindDir}}
	for _, rt := range roots {
		top.children = append(top.children, rt.node)
	}
	slices.SortFunc(top.children, func(a, b *node) int { return strings.Compare(a.name, b.name) })
	return top.node, p.storeTree(top)
}

// pushRoot pushes one root: a file at once, a directory through the walk.
func (p *pusher) pushRoot(rt *pushRoot) error {
	n := rt.node
	if n.kind == format.KindDir {
		rt.dir = &dirState{node: n, root: rt, path: rt.path}
		rt.dir.pending.Store(1)
		return p.walk(rt.dir, nil, rt.patterns)
	}
	p.nfiles.Add(1)
	p.addTotals(1, n.size)
	if n.cached && !p.hashOnly {
		ok, err := p.s.HasFile(p.ctx, n.digest, n.size)
		if err != nil {
			return err
		}
		n.cached = ok
	}
	if n.cached {
		p.opts.Progress.Files.Add(1)
		p.opts.Progress.Bytes.Add(n.size)
	} else if err := p.processFile(n, rt.path); err != nil {
		return err
	}
	p.saveStat(rt, "", []*node{n})
	return nil
}

// walk lists the directory d, hands the files to read to the readers,
// walks its subdirectories (on spare goroutines while there are any), and
// gives back the listing's part of d: the last part done finishes d.
// domain is d's path below the root, as .casignore patterns see it.
func (p *pusher) walk(d *dirState, domain []string, patterns []gitignore.Pattern) error {
	if err := p.ctx.Err(); err != nil {
		return err
	}
	var cache map[string]index.StatEntry
	if d.root.cache != nil {
		cache = d.root.cache(d.rel)
	}
	children, patterns, err := d.root.sc.list(d.path, domain, patterns, cache)
	if err != nil {
		return err
	}
	d.children = children
	d.allCached = true
	var files, bytes int64
	var subdirs []*node
	for _, c := range children {
		switch {
		case c.kind == format.KindDir:
			subdirs = append(subdirs, c)
		case c.kind.IsFile():
			files++
			bytes += c.size
			if c.cached {
				p.opts.Progress.Files.Add(1)
				p.opts.Progress.Bytes.Add(c.size)
			} else {
				d.allCached = false
			}
		}
	}
	p.ndirs.Add(1)
	p.nfiles.Add(files)
	p.addTotals(files, bytes)
	if !d.allCached {
		// d is read anyway: a file the stat cache vouches for is reused
		// only if the store has its data.
		if err := p.checkCached(d); err != nil {
			return err
		}
		for _, c := range children {
			if !c.kind.IsFile() || c.cached {
				continue
			}
			d.pending.Add(1)
			select {
			case p.jobs <- fileJob{d: d, n: c, path: filepath.Join(d.path, c.name)}:
			case <-p.ctx.Done():
				return p.ctx.Err()
			}
		}
	}
	var wg sync.WaitGroup
	errs := make([]error, len(subdirs))
	for i, c := range subdirs {
		sub := &dirState{node: c, parent: d, root: d.root, path: filepath.Join(d.path, c.name), rel: joinRel(d.rel, c.name)}
		sub.pending.Store(1)
		d.pending.Add(1)
		subDomain := append(domain[:len(domain):len(domain)], c.name)
		select {
		case <-p.spare:
			wg.Go(func() {
				defer func() { p.spare <- struct{}{} }()
				if errs[i] = p.walk(sub, subDomain, patterns); errs[i] != nil {
					p.failWith(errs[i])
				}
			})
		default:
			errs[i] = p.walk(sub, subDomain, patterns)
		}
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	p.done(d)
	return nil
}

// addTotals counts files found by the push in the progress totals,
// unless a walk of their own counts them (countAhead).
func (p *pusher) addTotals(files, bytes int64) {
	if !p.opts.Progress.CountAhead {
		p.opts.Progress.TotalFiles.Add(files)
		p.opts.Progress.TotalBytes.Add(bytes)
	}
}

// countAhead counts the files and their bytes below the roots into the
// progress totals, listing each directory as the push will (excludes,
// .casignore, the store's own directory), one directory at a time. It
// warns of nothing and gives up at the first error: the push reports it.
func (p *pusher) countAhead(roots []*pushRoot) {
	var count func(sc *scanner, path string, domain []string, patterns []gitignore.Pattern) error
	count = func(sc *scanner, path string, domain []string, patterns []gitignore.Pattern) error {
		if err := p.ctx.Err(); err != nil {
			return err
		}
		children, patterns, err := sc.list(path, domain, patterns, nil)
		if err != nil {
			return err
		}
		var files, bytes int64
		var subdirs []string
		for _, c := range children {
			switch {
			case c.kind == format.KindDir:
				subdirs = append(subdirs, c.name)
			case c.kind.IsFile():
				files++
				bytes += c.size
			}
		}
		p.opts.Progress.TotalFiles.Add(files)
		p.opts.Progress.TotalBytes.Add(bytes)
		for _, name := range subdirs {
			if err := count(sc, filepath.Join(path, name), append(domain[:len(domain):len(domain)], name), patterns); err != nil {
				return err
			}
		}
		return nil
	}
	for _, rt := range roots {
		if rt.node.kind != format.KindDir {
			p.opts.Progress.TotalFiles.Add(1)
			p.opts.Progress.TotalBytes.Add(rt.node.st.Size)
			continue
		}
		quiet := &scanner{skip: rt.sc.skip, skipName: rt.sc.skipName}
		if count(quiet, rt.path, nil, rt.patterns) != nil {
			return
		}
	}
}

// reader reads the files the walk hands out, until there are no more.
func (p *pusher) reader() {
	for j := range p.jobs {
		if p.ctx.Err() != nil {
			continue // drain: the push has failed
		}
		if err := p.processFile(j.n, j.path); err != nil {
			p.failWith(err)
			continue
		}
		p.done(j.d)
	}
}

// done gives back one part of d. Completing the last finishes d and gives
// back d's part of its parent.
func (p *pusher) done(d *dirState) {
	for ; d != nil; d = d.parent {
		if d.pending.Add(-1) > 0 || p.ctx.Err() != nil {
			return
		}
		if err := p.finish(d); err != nil {
			p.failWith(err)
			return
		}
	}
}

// finish completes a directory whose parts are all done: takes it as
// stored whole if it is, else stores its tree (having checked first, if
// the listing did not, that the store has the data of the files the stat
// cache gave); then saves its stat cache entries and lets its entries go.
func (p *pusher) finish(d *dirState) error {
	whole := false
	if d.allCached {
		var err error
		if whole, err = p.whole(d); err != nil {
			return err
		}
		if !whole {
			if err := p.checkCached(d); err != nil {
				return err
			}
			for _, c := range d.children {
				if c.kind.IsFile() && !c.cached {
					if err := p.processFile(c, filepath.Join(d.path, c.name)); err != nil {
						return err
					}
				}
			}
		}
	}
	if !whole {
		if err := p.storeTree(d); err != nil {
			return err
		}
	}
	p.saveStat(d.root, d.rel, d.children)
	d.children = nil
	return nil
}

// whole reports whether d, whose files all came from the stat cache, is
// stored whole: every subdirectory is, and d's tree is in the store, so
// that by the write order everything below it is too and nothing below
// it need be read.
func (p *pusher) whole(d *dirState) (bool, error) {
	for _, c := range d.children {
		if c.kind == format.KindDir && !c.trusted {
			return false, nil
		}
	}
	if _, err := p.nodeTree(d); err != nil {
		return false, err
	}
	n := d.node
	if !p.hashOnly {
		stored, err := p.s.TreeStored(n.digest)
		if err != nil || !stored {
			return false, err
		}
		if p.opts.Trusted != nil {
			p.opts.Trusted(format.KindDir, n.digest, n.size)
			for _, c := range d.children {
				if c.kind != format.KindDir {
					p.opts.Trusted(c.kind, c.digest, c.size)
				}
			}
		}
	}
	n.trusted = true
	return true, nil
}

// checkCached keeps the stat cache's word for a file of d only where the
// store has the file's data; the others are to be read.
func (p *pusher) checkCached(d *dirState) error {
	if p.hashOnly {
		return nil
	}
	for _, c := range d.children {
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
		}
	}
	return nil
}

// nodeTree builds the tree of a directory from its entries and sets the
// directory's digest and size.
func (p *pusher) nodeTree(d *dirState) ([]byte, error) {
	n := d.node
	t := &format.Tree{Entries: make([]format.TreeEntry, len(d.children))}
	n.size = 0
	for i, c := range d.children {
		t.Entries[i] = format.TreeEntry{Name: c.name, Kind: c.kind, Size: c.size, Digest: c.digest}
		n.size += c.size
	}
	dg, enc, err := t.Digest()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", d.path, err)
	}
	n.digest = dg
	if p.trees != nil {
		p.treesMu.Lock()
		p.trees[dg] = t
		p.treesMu.Unlock()
	}
	return enc, nil
}

// storeTree stores a directory's links and tree, once every blob below it
// is in a pack.
func (p *pusher) storeTree(d *dirState) error {
	enc, err := p.nodeTree(d)
	if err != nil || p.hashOnly {
		return err
	}
	var deps []digest.Digest
	for _, c := range d.children {
		if c.kind == format.KindLink {
			if err := p.storeBlob(c.digest, []byte(c.target), index.TypeData, format.Unknown, &deps); err != nil {
				return err
			}
		}
	}
	if err := p.claims.wait(p.ctx, deps); err != nil {
		return err
	}
	// The tree, too, is in a pack before the parent's goes into one.
	deps = deps[:0]
	if err := p.storeBlob(d.node.digest, enc, index.TypeTree, format.Unknown, &deps); err != nil {
		return err
	}
	return p.claims.wait(p.ctx, deps)
}

// saveStat hands the stat cache entries of a directory's files (of the
// root itself, when it is a file) to Options.SaveStat, leaving out files
// modified just before the push started, and counts the files reused.
func (p *pusher) saveStat(rt *pushRoot, rel string, children []*node) {
	if rt == nil {
		return // the tree holding several roots: each saved its own
	}
	start := p.opts.Start.UnixNano()
	entries := make([]index.StatEntry, 0, len(children))
	var subdirs []string
	var unchanged int64
	for _, c := range children {
		switch {
		case c.kind == format.KindDir:
			subdirs = append(subdirs, c.name)
		case c.kind.IsFile():
			if c.cached {
				unchanged++
			}
			if !racy(c.st, start) {
				e := c.st
				e.Digest = c.digest
				entries = append(entries, e)
			}
		}
	}
	p.unchanged.Add(unchanged)
	if p.opts.SaveStat != nil {
		p.opts.SaveStat(rt.abs, rel, entries, subdirs)
	}
}
