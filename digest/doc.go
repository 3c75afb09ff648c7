// Package digest is the leaf package that names content in cas.
//
// A Digest is the BLAKE3-256 of some bytes: a file's contents, a tree's
// canonical encoding, a chunk, a pack or a manifest. Its text form is the
// OCI digest syntax "blake3:<64 lowercase hex>". Every other package may
// import this one; it must import none of them, and never change what a
// digest of given bytes is (golden vectors in testdata/ pin them).
//
// FromReaderAt hashes a big file on several cores, as subtrees of BLAKE3's
// tree merged into the same root: each 256 KiB subtree with zeebo/blake3's
// own kernels, linked in by name (zeebo.go), the edges of the tree with
// lukechampine.com/blake3/guts, which gives the chaining values zeebo
// keeps to itself; every other function hashes on one core with
// zeebo/blake3.
package digest
