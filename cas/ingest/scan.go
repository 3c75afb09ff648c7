package ingest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"

	"github.com/go-git/go-git/v5/plumbing/format/gitignore"
	"golang.org/x/sys/unix"

	"github.com/cas-ml/cas/cas/format"
	"github.com/cas-ml/cas/digest"
	"github.com/cas-ml/cas/index"
)

// IgnoreFile is the name of the per-directory exclude file (gitignore syntax).
const IgnoreFile = ".casignore"

// ErrSpecialFile reports a FIFO, socket or device, which cas skips.
var ErrSpecialFile = errors.New("not a regular file, directory or symlink")

// node is one scanned path.
type node struct {
	name     string
	path     string // on disk
	rel      string // below the pushed root, "" for the root
	kind     format.Kind
	size     int64
	digest   digest.Digest
	children []*node // of a directory, sorted by name
	st       index.StatEntry
	cached   bool // digest came from the stat cache
	stored   bool // a directory whose tree is already in the store
	target   string
}

// scanner walks a pushed path into nodes. Subdirectories are scanned in
// parallel while spare workers last.
type scanner struct {
	warn  func(path string, err error)
	cache func(dir string) map[string]index.StatEntry // nil: no stat cache
	spare chan struct{}                               // tokens for extra goroutines
	skip  string                                      // the store's own directory, never scanned
	// skipName: directories of this name (stores) are never scanned.
	skipName string

	mu      sync.Mutex // guards the counters below
	skipped []string
	files   int64
	bytes   int64
	dirs    int64
}

func newScanner(warn func(string, error), cache func(string) map[string]index.StatEntry) *scanner {
	s := &scanner{warn: warn, cache: cache, spare: make(chan struct{}, runtime.GOMAXPROCS(0))}
	for range cap(s.spare) {
		s.spare <- struct{}{}
	}
	return s
}

// statEntry fills a stat cache entry from lstat results.
func statEntry(name string, st *unix.Stat_t) index.StatEntry {
	return index.StatEntry{Name: name, Dev: st.Dev, Ino: st.Ino, Size: st.Size,
		Mtime: st.Mtim.Nano(), Ctime: st.Ctim.Nano(), Mode: st.Mode}
}

// scanRoot scans path, which may be a file, a directory or a symlink (a
// symlink given on the command line is followed, as cp and tar -h do,
// and what it points to is scanned under the link's name).
func (s *scanner) scanRoot(path string, excludes []string) (*node, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		if errors.Is(err, unix.ELOOP) {
			return nil, fmt.Errorf("%s: symlink loop: %w", path, unix.ELOOP)
		}
		return nil, &os.PathError{Op: "stat", Path: path, Err: err}
	}
	n := &node{name: filepath.Base(path), path: path}
	var lst unix.Stat_t
	if err := unix.Lstat(path, &lst); err == nil && lst.Mode&unix.S_IFMT == unix.S_IFLNK {
		// Follow the link here, once: what is read below is opened
		// without following links (O_NOFOLLOW), and the scan reads one
		// target even if the link changes meanwhile.
		resolved, err := filepath.EvalSymlinks(path)
		if err != nil {
			return nil, fmt.Errorf("follow symlink %s: %w", path, err)
		}
		if err := unix.Lstat(resolved, &st); err != nil {
			return nil, &os.PathError{Op: "lstat", Path: resolved, Err: err}
		}
		n.path = resolved
		if s.skip != "" {
			// Compare the store's directory with resolved paths below.
			if skip, err := filepath.EvalSymlinks(s.skip); err == nil {
				s.skip = skip
			}
		}
	}
	var patterns []gitignore.Pattern
	for _, e := range excludes {
		patterns = append(patterns, gitignore.ParsePattern(e, nil))
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		n.kind = format.KindDir
		return n, s.scanDir(n, nil, patterns)
	case unix.S_IFREG:
		var cache map[string]index.StatEntry
		if s.cache != nil {
			cache = s.cache("")
		}
		s.file(n, &st, cache)
		s.files, s.bytes = 1, n.size
		return n, nil
	default:
		return nil, fmt.Errorf("%s: %w", path, ErrSpecialFile)
	}
}

func (s *scanner) file(n *node, st *unix.Stat_t, cache map[string]index.StatEntry) {
	n.kind = format.KindFile
	if st.Mode&0o111 != 0 {
		n.kind = format.KindExec
	}
	n.size = st.Size
	n.st = statEntry(n.name, st)
	if c, ok := cache[n.name]; ok && c.Dev == n.st.Dev && c.Ino == n.st.Ino && c.Size == n.st.Size &&
		c.Mtime == n.st.Mtime && c.Ctime == n.st.Ctime && c.Mode == n.st.Mode {
		n.digest, n.cached = c.Digest, true
	}
}

// readIgnore parses a directory's .casignore, if any.
func readIgnore(dir string, domain []string) ([]gitignore.Pattern, error) {
	b, err := os.ReadFile(filepath.Join(dir, IgnoreFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var ps []gitignore.Pattern
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") || strings.TrimSpace(line) == "" {
			continue
		}
		ps = append(ps, gitignore.ParsePattern(line, domain))
	}
	return ps, nil
}

func (s *scanner) scanDir(n *node, domain []string, patterns []gitignore.Pattern) error {
	f, err := os.Open(n.path)
	if err != nil {
		return err
	}
	names, err := f.Readdirnames(-1)
	f.Close()
	if err != nil {
		return fmt.Errorf("read directory %s: %w", n.path, err)
	}
	own, err := readIgnore(n.path, domain)
	if err != nil {
		return err
	}
	if len(own) > 0 {
		patterns = append(append([]gitignore.Pattern(nil), patterns...), own...)
	}
	var matcher gitignore.Matcher
	if len(patterns) > 0 {
		matcher = gitignore.NewMatcher(patterns)
	}
	var cache map[string]index.StatEntry
	if s.cache != nil {
		cache = s.cache(n.rel)
	}
	slices.Sort(names)
	n.children = make([]*node, 0, len(names))
	var subdirs []*node
	var files, bytes int64
	var skipped []string
	for _, name := range names {
		c := &node{name: name, path: filepath.Join(n.path, name), rel: joinRel(n.rel, name)}
		var st unix.Stat_t
		if err := unix.Lstat(c.path, &st); err != nil {
			if errors.Is(err, unix.ENOENT) {
				continue // removed since the listing
			}
			return &os.PathError{Op: "lstat", Path: c.path, Err: err}
		}
		isDir := st.Mode&unix.S_IFMT == unix.S_IFDIR
		if isDir && ((s.skipName != "" && name == s.skipName) || c.path == s.skip) {
			continue // a store never stores itself
		}
		if matcher != nil && matcher.Match(append(domain[:len(domain):len(domain)], name), isDir) {
			continue
		}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFREG:
			s.file(c, &st, cache)
			files++
			bytes += c.size
		case unix.S_IFDIR:
			c.kind = format.KindDir
			subdirs = append(subdirs, c)
		case unix.S_IFLNK:
			target, err := os.Readlink(c.path)
			if err != nil {
				return err
			}
			c.kind, c.target, c.size = format.KindLink, target, int64(len(target))
			c.digest = digest.Of([]byte(target))
			bytes += c.size
		default:
			skipped = append(skipped, c.path)
			if s.warn != nil {
				s.warn(c.path, ErrSpecialFile)
			}
			continue
		}
		n.children = append(n.children, c)
	}
	s.mu.Lock()
	s.dirs++
	s.files += files
	s.bytes += bytes
	s.skipped = append(s.skipped, skipped...)
	s.mu.Unlock()
	// Scan subdirectories, on spare goroutines while there are any.
	var wg sync.WaitGroup
	errs := make([]error, len(subdirs))
	for i, c := range subdirs {
		sub := append(domain[:len(domain):len(domain)], c.name)
		select {
		case <-s.spare:
			wg.Add(1)
			go func() {
				defer func() { s.spare <- struct{}{}; wg.Done() }()
				errs[i] = s.scanDir(c, sub, patterns)
			}()
		default:
			errs[i] = s.scanDir(c, sub, patterns)
		}
	}
	wg.Wait()
	return errors.Join(errs...)
}

func joinRel(dir, name string) string {
	if dir == "" {
		return name
	}
	return dir + "/" + name
}
