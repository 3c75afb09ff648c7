// Package cas is the store: digests of files and trees, the content-defined
// chunker, the ingest pipeline, packs, and the repository operations built
// on them (push, restore, verify, stats). The bytes of packs, index
// segments and trees are encoded and decoded by cas/format.
//
// It works with index (the local badger cache of chunk locations) and
// remote (the Backend that holds packs, index segments and refs). It never
// prints: progress goes to a Progress a caller polls, and damage it stepped
// around (an unreadable segment, a ref it skipped) to Repo.Warn.
package cas
