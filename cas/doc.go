// Package cas is the repository: a store of files and trees named by
// their digests, opened as a Repo. It owns the operations built on the
// store's formats — push, refs and pins, resolving names and specs,
// restore, verify, stats, upload, pull and Publish — and the rules that
// keep data safe while doing them: the write order (packs, then index
// segments, then trees and manifests, then refs), which stored trees,
// files and blobs a push may reuse (its ingest.Store), and what a
// manifest keeps alive (Keeps, from manifest/schema), which gc, pin, pull
// and refs all follow.
//
// Below it: cas/ingest is the push pipeline (scan, read, chunk, hash and
// compress on every core, pack, mirror), working against the narrow
// ingest.Store this package implements; cas/format encodes and decodes
// packs, segments and trees; cas/chunk cuts files into chunks; cas/gc
// runs the two-phase collection protocol against the narrow gc.Store
// this package implements (with its mark); index caches chunk locations;
// remote holds the objects.
//
// cas must not print (progress goes to a Progress a caller polls, damage
// it stepped around to Repo.Warn), name cli flags or commands in its
// errors (they are typed: DestError, PinConflictError, …), read the wall
// clock (Repo.Clock), or import manifest beyond its schema.
package cas
