// Package index is the local index of a cas store: where each blob lives
// (pack, offset, length, codec), which chunks make up each multi-chunk
// file, which index segments and packs it has seen, and the stat cache
// that lets an unchanged re-push skip reading files.
//
// It is a cache: everything but the stat cache can be rebuilt from the
// store's index segments and pack trailers. The badger implementation
// keeps it on disk; the memory one serves a process that finds the badger
// directory held by another process, so that two cas processes never fail
// on each other's lock. Spill answers as the memory one does but keeps
// blobs and chunk lists in sorted runs in unlinked temporary files (read
// with pread, never mapped): a process's own view of a store, built from
// its segments (verify's, gc's), whose memory must not grow with the
// number of files. DigestSet and DigestMultimap are the same runs as a
// set and a multimap.
//
// index must not read a backend, know what packs or segments look like
// on the wire, or print; badger types never leave this package.
package index
