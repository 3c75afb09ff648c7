package cas

import "github.com/cas-ml/cas/cas/format"

// The tree encoding and the errors of the on-disk formats live in package
// cas/format; these names keep them where cli, manifest and the store's
// users have always found them.

// Kind is what a tree entry is (format.Kind).
type Kind = format.Kind

// Entry kinds, as written in the tree encoding.
const (
	KindFile = format.KindFile // a regular file
	KindExec = format.KindExec // a regular file with an exec bit set
	KindLink = format.KindLink // a symbolic link; its content is the target
	KindDir  = format.KindDir  // a directory; its digest is a tree's
)

// TreeEntry is one name in a directory (format.TreeEntry).
type TreeEntry = format.TreeEntry

// Tree is a directory listing, sorted by name bytes (format.Tree).
type Tree = format.Tree

// ValidName reports whether name may stand in a tree (format.ValidName).
func ValidName(name string) bool { return format.ValidName(name) }

// ParseTree decodes a canonical tree encoding (format.ParseTree).
func ParseTree(b []byte) (*Tree, error) { return format.ParseTree(b) }

// Errors of the on-disk formats, for errors.Is.
var (
	ErrBadTree    = format.ErrBadTree
	ErrBadName    = format.ErrBadName
	ErrBadPack    = format.ErrBadPack
	ErrBadSegment = format.ErrBadSegment
)
