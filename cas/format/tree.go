package format

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/cas-ml/cas/digest"
)

// Kind is what a tree entry is.
type Kind uint8

// Entry kinds, as written in the tree encoding.
const (
	KindFile Kind = iota + 1 // a regular file
	KindExec                 // a regular file with an exec bit set
	KindLink                 // a symbolic link; its content is the target
	KindDir                  // a directory; its digest is a tree's
)

var kindNames = map[Kind]string{KindFile: "file", KindExec: "exec", KindLink: "link", KindDir: "dir"}

func (k Kind) String() string {
	if s, ok := kindNames[k]; ok {
		return s
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// MarshalText implements encoding.TextMarshaler.
func (k Kind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (k *Kind) UnmarshalText(b []byte) error {
	for kind, name := range kindNames {
		if name == string(b) {
			*k = kind
			return nil
		}
	}
	return fmt.Errorf("unknown kind %q", b)
}

// IsFile reports whether entries of kind k hold file content.
func (k Kind) IsFile() bool { return k == KindFile || k == KindExec }

// TreeEntry is one name in a directory.
//
// Size is the content length of a file, the target length of a link, and
// the total size of all files and link targets below a directory.
type TreeEntry struct {
	Name   string
	Kind   Kind
	Size   int64
	Digest digest.Digest
}

// TreeMagic starts every tree encoding.
const TreeMagic = "cas-tree-v1\n"

// Tree is a directory listing. Entries are sorted by name bytes.
type Tree struct {
	Entries []TreeEntry
}

// Errors from tree parsing and construction.
var (
	ErrBadTree  = errors.New("malformed tree")
	ErrBadName  = errors.New("invalid entry name")
	errDupEntry = errors.New("duplicate name")
)

// ValidName reports whether name may stand in a tree: not empty, not "."
// or "..", no "/" and no NUL. Any other bytes are kept exactly.
func ValidName(name string) bool {
	return name != "" && name != "." && name != ".." && !strings.ContainsAny(name, "/\x00")
}

// Sort orders entries by name bytes.
func (t *Tree) Sort() {
	slices.SortFunc(t.Entries, func(a, b TreeEntry) int { return strings.Compare(a.Name, b.Name) })
}

// Size is the total size of the entries.
func (t *Tree) Size() int64 {
	var n int64
	for _, e := range t.Entries {
		n += e.Size
	}
	return n
}

// Encode returns the canonical encoding whose BLAKE3 is the tree digest:
//
//	"cas-tree-v1\n"
//	then for each entry, sorted by name bytes:
//	KIND SP HEX SP SIZE SP NAMELEN SP NAME "\n"
//
// KIND is file, exec, link or dir; HEX the 64 hex digits of the entry's
// digest; SIZE and NAMELEN decimal. docs/FORMAT.md is the reference.
func (t *Tree) Encode() ([]byte, error) {
	var b bytes.Buffer
	b.Grow(len(TreeMagic) + len(t.Entries)*96)
	b.WriteString(TreeMagic)
	var scratch [128]byte
	for i, e := range t.Entries {
		if !ValidName(e.Name) {
			return nil, fmt.Errorf("%w: %q", ErrBadName, e.Name)
		}
		if i > 0 && t.Entries[i-1].Name >= e.Name {
			if t.Entries[i-1].Name == e.Name {
				return nil, fmt.Errorf("%w: %w %q", ErrBadTree, errDupEntry, e.Name)
			}
			return nil, fmt.Errorf("%w: entries not sorted", ErrBadTree)
		}
		if _, ok := kindNames[e.Kind]; !ok || e.Size < 0 {
			return nil, fmt.Errorf("%w: entry %q", ErrBadTree, e.Name)
		}
		// One line, built in scratch without an allocation per entry.
		line := append(scratch[:0], e.Kind.String()...)
		line = append(line, ' ')
		line = hex.AppendEncode(line, e.Digest[:])
		line = append(line, ' ')
		line = strconv.AppendInt(line, e.Size, 10)
		line = append(line, ' ')
		line = strconv.AppendInt(line, int64(len(e.Name)), 10)
		line = append(line, ' ')
		b.Write(line)
		b.WriteString(e.Name)
		b.WriteByte('\n')
	}
	return b.Bytes(), nil
}

// Digest encodes the tree and hashes it.
func (t *Tree) Digest() (digest.Digest, []byte, error) {
	enc, err := t.Encode()
	if err != nil {
		return digest.Zero, nil, err
	}
	return digest.Of(enc), enc, nil
}

// IsTreeEncoding reports whether b starts like a tree encoding.
func IsTreeEncoding(b []byte) bool { return bytes.HasPrefix(b, []byte(TreeMagic)) }

// maxTreeEntries bounds what ParseTree accepts.
const maxTreeEntries = 10_000_000

// ParseTree decodes a canonical tree encoding, rejecting anything that
// Encode would not produce byte for byte.
func ParseTree(b []byte) (*Tree, error) {
	if !IsTreeEncoding(b) {
		return nil, fmt.Errorf("%w: no header", ErrBadTree)
	}
	b = b[len(TreeMagic):]
	t := &Tree{}
	var total int64 // what the tree holds: Size, which must not overflow
	for len(b) > 0 {
		if len(t.Entries) >= maxTreeEntries {
			return nil, fmt.Errorf("%w: too many entries", ErrBadTree)
		}
		var e TreeEntry
		var field []byte
		var ok bool
		if field, b, ok = cutField(b, ' ', 4); !ok {
			return nil, fmt.Errorf("%w: kind", ErrBadTree)
		}
		switch string(field) {
		case "file":
			e.Kind = KindFile
		case "exec":
			e.Kind = KindExec
		case "link":
			e.Kind = KindLink
		case "dir":
			e.Kind = KindDir
		default:
			return nil, fmt.Errorf("%w: kind %q", ErrBadTree, field)
		}
		if field, b, ok = cutField(b, ' ', 64); !ok || len(field) != 64 {
			return nil, fmt.Errorf("%w: digest", ErrBadTree)
		}
		d, err := digest.ParseHex(string(field))
		if err != nil {
			return nil, fmt.Errorf("%w: digest", ErrBadTree)
		}
		e.Digest = d
		if e.Size, b, ok = cutNumber(b); !ok || e.Size > math.MaxInt64-total {
			return nil, fmt.Errorf("%w: size", ErrBadTree)
		}
		total += e.Size
		var n int64
		if n, b, ok = cutNumber(b); !ok || n > int64(len(b))-1 || b[n] != '\n' {
			return nil, fmt.Errorf("%w: name", ErrBadTree)
		}
		e.Name = string(b[:n])
		b = b[n+1:]
		if !ValidName(e.Name) {
			return nil, fmt.Errorf("%w: %q", ErrBadName, e.Name)
		}
		if k := len(t.Entries); k > 0 && t.Entries[k-1].Name >= e.Name {
			return nil, fmt.Errorf("%w: entries not sorted or repeated at %q", ErrBadTree, e.Name)
		}
		t.Entries = append(t.Entries, e)
	}
	return t, nil
}

// cutField splits b at the first sep within limit+1 bytes.
func cutField(b []byte, sep byte, limit int) (field, rest []byte, ok bool) {
	i := bytes.IndexByte(b[:min(len(b), limit+1)], sep)
	if i < 0 {
		return nil, nil, false
	}
	return b[:i], b[i+1:], true
}

// cutNumber reads a canonical decimal (no sign, no leading zeros) and the
// space after it.
func cutNumber(b []byte) (int64, []byte, bool) {
	f, rest, ok := cutField(b, ' ', 19)
	if !ok || len(f) == 0 || (len(f) > 1 && f[0] == '0') {
		return 0, nil, false
	}
	for _, c := range f {
		if c < '0' || c > '9' {
			return 0, nil, false // ParseInt would take a sign
		}
	}
	n, err := strconv.ParseInt(string(f), 10, 64)
	if err != nil || n < 0 {
		return 0, nil, false
	}
	return n, rest, true
}

// Lookup finds name in a sorted tree.
func (t *Tree) Lookup(name string) (TreeEntry, bool) {
	i, ok := slices.BinarySearchFunc(t.Entries, name, func(e TreeEntry, n string) int { return strings.Compare(e.Name, n) })
	if !ok {
		return TreeEntry{}, false
	}
	return t.Entries[i], true
}
