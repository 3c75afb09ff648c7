package ingest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
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

// node is one entry of a directory being pushed. A directory's entries
// live only while it is worked on (dirState): once its tree is stored,
// its node keeps what its parent's tree needs, and nothing below it.
type node struct {
	name   string
	kind   format.Kind
	size   int64
	digest digest.Digest
	st     index.StatEntry // a file's stat data
	cached bool            // a file whose digest came from the stat cache
	// trusted: a directory taken as stored whole (Store.TreeStored),
	// nothing below it read.
	trusted bool
	target  string // a link's
}

// scanner lists the directories of one pushed path.
type scanner struct {
	warn func(path string, err error)
	skip string // the store's own directory, never scanned
	// skipName: directories of this name (stores) are never scanned.
	skipName string

	mu      sync.Mutex // guards skipped
	skipped []string
}

// statEntry fills a stat cache entry from lstat results.
func statEntry(name string, st *unix.Stat_t) index.StatEntry {
	return index.StatEntry{Name: name, Dev: st.Dev, Ino: st.Ino, Size: st.Size,
		Mtime: st.Mtim.Nano(), Ctime: st.Ctim.Nano(), Mode: st.Mode}
}

// scanRoot looks at path, which may be a file, a directory or a symlink
// (a symlink given on the command line is followed, as cp and tar -h do,
// and what it points to is pushed under the link's name). It returns the
// root's node and the path to read it at; a file's digest comes from
// cache, if its entry there still matches.
func (s *scanner) scanRoot(path string, cache func(dir string) map[string]index.StatEntry) (*node, string, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		if errors.Is(err, unix.ELOOP) {
			return nil, "", fmt.Errorf("%s: symlink loop: %w", path, unix.ELOOP)
		}
		return nil, "", &os.PathError{Op: "stat", Path: path, Err: err}
	}
	n := &node{name: filepath.Base(path)}
	var lst unix.Stat_t
	if err := unix.Lstat(path, &lst); err == nil && lst.Mode&unix.S_IFMT == unix.S_IFLNK {
		// Follow the link here, once: what is read below is opened
		// without following links (O_NOFOLLOW), and the scan reads one
		// target even if the link changes meanwhile.
		resolved, err := filepath.EvalSymlinks(path)
		if err != nil {
			return nil, "", fmt.Errorf("follow symlink %s: %w", path, err)
		}
		if err := unix.Lstat(resolved, &st); err != nil {
			return nil, "", &os.PathError{Op: "lstat", Path: resolved, Err: err}
		}
		path = resolved
		if s.skip != "" {
			// Compare the store's directory with resolved paths below.
			if skip, err := filepath.EvalSymlinks(s.skip); err == nil {
				s.skip = skip
			}
		}
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		n.kind = format.KindDir
	case unix.S_IFREG:
		var entries map[string]index.StatEntry
		if cache != nil {
			entries = cache("")
		}
		file(n, &st, entries)
	default:
		return nil, "", fmt.Errorf("%s: %w", path, ErrSpecialFile)
	}
	return n, path, nil
}

// file fills a file's node from its lstat results, and its digest from
// the stat cache if the cache's entry still matches.
func file(n *node, st *unix.Stat_t, cache map[string]index.StatEntry) {
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

// list reads the directory at path (domain: its path elements below the
// pushed root): its entries sorted by name, those excluded and special
// files left out, files given their digests where the stat cache's
// entries match. It returns the exclude patterns in force below it.
func (s *scanner) list(path string, domain []string, patterns []gitignore.Pattern,
	cache map[string]index.StatEntry) ([]*node, []gitignore.Pattern, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	// Kept open while its entries are looked at, which are then found
	// relative to it: no walk of the whole path for each of them.
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, nil, fmt.Errorf("read directory %s: %w", path, err)
	}
	dirfd := int(f.Fd())
	own, err := readIgnore(path, domain)
	if err != nil {
		return nil, nil, err
	}
	if len(own) > 0 {
		patterns = append(append([]gitignore.Pattern(nil), patterns...), own...)
	}
	var matcher gitignore.Matcher
	if len(patterns) > 0 {
		matcher = gitignore.NewMatcher(patterns)
	}
	slices.Sort(names)
	children := make([]*node, 0, len(names))
	var skipped []string
	for _, name := range names {
		c := &node{name: name}
		var st unix.Stat_t
		if err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			if errors.Is(err, unix.ENOENT) {
				continue // removed since the listing
			}
			return nil, nil, &os.PathError{Op: "lstat", Path: filepath.Join(path, name), Err: err}
		}
		isDir := st.Mode&unix.S_IFMT == unix.S_IFDIR
		if isDir && ((s.skipName != "" && name == s.skipName) || s.skip != "" && filepath.Join(path, name) == s.skip) {
			continue // a store never stores itself
		}
		if matcher != nil && matcher.Match(append(domain[:len(domain):len(domain)], name), isDir) {
			continue
		}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFREG:
			file(c, &st, cache)
		case unix.S_IFDIR:
			c.kind = format.KindDir
		case unix.S_IFLNK:
			target, err := readlinkAt(dirfd, name, st.Size)
			if err != nil {
				return nil, nil, &os.PathError{Op: "readlink", Path: filepath.Join(path, name), Err: err}
			}
			c.kind, c.target, c.size = format.KindLink, target, int64(len(target))
			c.digest = digest.Of([]byte(target))
		default:
			full := filepath.Join(path, name)
			skipped = append(skipped, full)
			if s.warn != nil {
				s.warn(full, ErrSpecialFile)
			}
			continue
		}
		children = append(children, c)
	}
	if len(skipped) > 0 {
		s.mu.Lock()
		s.skipped = append(s.skipped, skipped...)
		s.mu.Unlock()
	}
	return children, patterns, nil
}

// readlinkAt reads the target of the symlink name in the directory dirfd,
// whose lstat gave size (a hint: it may be 0, or out of date).
func readlinkAt(dirfd int, name string, size int64) (string, error) {
	buf := make([]byte, max(64, size+1))
	for {
		n, err := unix.Readlinkat(dirfd, name, buf)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return "", err
		}
		if n < len(buf) {
			return string(buf[:n]), nil
		}
		buf = make([]byte, 2*len(buf)) // cut short: the link changed
	}
}

func joinRel(dir, name string) string {
	if dir == "" {
		return name
	}
	return dir + "/" + name
}
