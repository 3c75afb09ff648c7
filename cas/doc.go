// Package cas is the store: digests of files and trees, the content-defined
// chunker, the ingest pipeline, packs, and the repository operations built
// on them (push, restore, verify, stats).
//
// It works with index (the local badger cache of chunk locations) and
// remote (the Backend that holds packs, index segments and refs). It never
// prints: progress and warnings go to the Events a caller passes in.
package cas
