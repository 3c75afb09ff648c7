// Package schema is the experiment manifest's format: its Go types, its
// canonical JSON (RFC 8785) whose BLAKE3 is the manifest digest, and its
// closure — every object a manifest keeps alive (Parts, Walk).
//
// It is a leaf beside digest so that the store can read it: gc, pin and
// verify in package cas use Walk to know what a pinned run keeps, and
// package manifest builds and checks manifests with these types.
//
// It must not read or write a store, run commands, or print: it only
// defines, encodes and parses.
package schema
